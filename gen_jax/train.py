"""The one training loop, shared by every model family.

A family (AE, VAE, GAN) is described by a `Task`: how to build its state, its jitted-able
`train_step(state, batch, key) -> (state, metrics)`, its evaluation and its figures.  The loop owns the rest:
keys from (seed, step), on-device batches, fused multi-step calls, progress, metrics.jsonl and TensorBoard,
periodic evaluation, Orbax checkpoints, resume, and the stop on NaN/Inf.

Neighbours: `steps.py` (the steps), `checkpoint.py`, `data/` (batches), `tasks/` (the families),
`experiments/main.py` (the command line).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import json
import os
import socket
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from gen_jax import checkpoint, data, hyper, keys, sharding
from gen_jax import config as config_lib

Metrics = dict[str, jax.Array]
TrainStep = Callable[[Any, dict, jax.Array], tuple[Any, Metrics]]


@dataclasses.dataclass(frozen=True)
class Task:
    """What differs between model families; everything else is the loop's.

    Attributes:
      name: the family, e.g. "vae"; recorded with the checkpoints.
      signature: what a checkpoint must agree with to be resumed (`config.signature`: the family, config.model,
        the image shape and facts about the state's structure); written to model.json.
      init_state: init key -> state pytree with an int32 `step` field.
      train_step: (state, batch, key) -> (state, metrics of scalars); `batch` = {"image", "label"}.
      evaluate: (state, key) -> {name: float}, run every `eval_every` steps on the test split.
      summarize: (state, key) -> the final evaluation written to summary.json.
      make_figures: (state, key, workdir) -> [(path relative to workdir, caption)].
      loss_name: the metric watched for NaN/Inf and shown in the progress bar.
      snapshot: optional (state, step, workdir) -> None, called by process 0 after each evaluation (e.g. a
        sample grid from a fixed noise batch, for watching a GAN train).
      codec: for families with a latent code, state -> (encode, decode), the shared contract:
        encode(images f32[B, H, W, C], labels i32[B] | None = None) -> codes f32[B, D] (AE: the code;
        VAE/cVAE/AAE: the posterior mean or code; VQ-VAE: the encoder's continuous output before quantisation,
        flattened); `encode` is None for a family with no encoder (GAN).
        decode(codes f32[B, D], labels i32[B] | None = None) -> images f32[B, H, W, C] in [0, 1] (VQ-VAE quantises
        first; GAN: the (EMA) generator from its noise vector).  Conditional families (cVAE, conditional GAN)
        need `labels` and raise ValueError without them; unconditional ones ignore them.  Both are traceable JAX
        functions of their array arguments (jnp only, no NumPy conversion inside), so they can be jitted and
        exported (`experiments/export.py`).  Used by `gen_jax/trained.py` for work on trained runs (latent
        edits, embeddings, `experiments/explore.py`).
    """

    name: str
    signature: dict
    init_state: Callable[[jax.Array], Any]
    train_step: TrainStep
    evaluate: Callable[[Any, jax.Array], dict]
    summarize: Callable[[Any, jax.Array], dict]
    make_figures: Callable[[Any, jax.Array, str], list[tuple[str, str]]]
    loss_name: str = "loss"
    snapshot: Callable[[Any, int, str], None] | None = None
    codec: Callable[[Any], tuple[Callable, Callable]] | None = None


class TrainingDivergedError(FloatingPointError):
    """The loss became NaN or Inf; the message names the step and the checkpoint kept."""


class WorkdirMismatchError(ValueError):
    """The workdir holds a run of a different model; nothing in it was changed."""


class WorkdirBusyError(RuntimeError):
    """Another process is running in the workdir; the message names it, and nothing in the workdir was changed."""


class WorkdirWriteError(RuntimeError):
    """A file of the run (metrics.jsonl, summary.json, …) could not be written: full disk, no permission."""


# Held (fcntl.flock) by process 0 of the run working in a workdir, and holding its pid, host and start time.
LOCK_FILE = "lock.json"
# Where `train(resume_step=N)` moves the checkpoints after N (never deleted).
SET_ASIDE_DIR = "checkpoints_set_aside"


@contextlib.contextmanager
def workdir_lock(workdir: str):
    """Holds `<workdir>/lock.json` while the block runs, so that two runs never write one workdir.

    Process 0 takes an exclusive advisory `fcntl.flock` on the file (creating the workdir if needed) and writes
    its pid, host and start time into it; the other processes of the same multi-host run share the workdir and
    take nothing.  The kernel releases a flock when its holder exits, SIGKILL included, so a lock file left by a
    killed run never blocks the next one: it is taken over.  The file is removed when the block ends.

    Raises:
      WorkdirBusyError: another process holds the lock: one line naming it (pid, host, start time), before
        anything in the workdir was read or written.
      WorkdirWriteError: the lock file cannot be written (read-only or full file system).
    """
    if not _is_chief():
        yield
        return
    path = os.path.join(workdir, LOCK_FILE)
    try:
        os.makedirs(workdir, exist_ok=True)
        fd = _acquire_lock(path)
    except OSError as error:  # a read-only or full file system, no permission
        raise _write_error(path, error) from None
    try:
        yield
    finally:
        with contextlib.suppress(OSError):  # the workdir may have been moved, or its file system made read-only
            os.unlink(path)  # while still holding it, so no one else can have taken this file
        os.close(fd)


def _acquire_lock(path: str) -> int:
    """An open, flocked descriptor of `path` holding this process's description; WorkdirBusyError if held."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _lock_holder(fd)
            os.close(fd)
            raise WorkdirBusyError(
                f"{os.path.dirname(path)} is in use by another run ({holder}); nothing in it was changed. Wait for "
                "that run to end, or stop it, then run again."
            ) from None
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)  # its holder removed that file between our open and our lock: take the new one
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": started}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
    return fd


def _lock_holder(fd: int) -> str:
    """'pid 123 on host h, started …' from a held lock file (its holder writes it just after locking)."""
    for _ in range(20):
        try:
            holder = json.loads(os.pread(fd, 4096, 0))
            return f"pid {holder['pid']} on host {holder['host']}, started {holder['started']}"
        except (ValueError, KeyError, TypeError):
            time.sleep(0.05)
    return "a process that has not yet written who it is"


def make_multi_step(train_step: TrainStep, batch_size: int, batch_sharding=None) -> Callable:
    """Builds run(state, images, labels, train_key, data_key, num_steps) -> (state, metrics stacked [num_steps]).

    Runs `num_steps` steps inside one `lax.scan` over data that already lives on the device: the step's key is
    fold_in(train_key, step) and its batch comes from the epoch permutation of (data_key, epoch), so any step
    is reproducible from (seed, step) alone and the split into calls does not change the result.  Each step
    computes only its own batch's indices (`data.batch_indices`, O(batch_size)), never a whole permutation.
    """

    def run(state, images, labels, train_key, data_key, num_steps):
        def one_step(state, _):
            step = state.step
            image, label = data.get_batch(images, labels, data_key, step, batch_size, batch_sharding)
            return train_step(state, {"image": image, "label": label}, jax.random.fold_in(train_key, step))

        return jax.lax.scan(one_step, state, None, length=num_steps)

    return run


def make_population_multi_step(
    train_step: TrainStep, batch_size: int, batch_sharding=None, spmd_axis=None, in_turn: bool = False
):
    """`make_multi_step` for a sweep's population: run(state, images, labels, train_keys, data_keys, num_steps)
    with a leading member axis [M] on the state, the keys and the metrics ([M, num_steps]).

    The whole fused loop is `jax.vmap`ped: member m takes its own batches (from data_keys[m]) and keys (from
    train_keys[m]); the data set is shared.  `spmd_axis` names the mesh axis the member axis is split over.  With
    `in_turn` the members' loops run one after another inside the same program (`lax.map`) instead of as one
    batched loop: the same function, for devices on which the batched form is slower than M single models (XLA:CPU's
    batched convolutions; benchmarks/README.md).
    """
    run = make_multi_step(train_step, batch_size, batch_sharding)

    def population_run(state, images, labels, train_keys, data_keys, num_steps):
        member = lambda state, train_key, data_key: run(state, images, labels, train_key, data_key, num_steps)
        if in_turn:
            return jax.lax.map(lambda args: member(*args), (state, train_keys, data_keys))
        return jax.vmap(member, spmd_axis_name=spmd_axis)(state, train_keys, data_keys)

    return population_run


def jit_multi_step(
    train_step: TrainStep,
    batch_size: int,
    mesh=None,
    state_sharding=None,
    population: bool = False,
    compiler_options: dict[str, str] | None = None,
    in_turn: bool = False,
) -> Callable:
    """`make_multi_step` (or, with `population`, `make_population_multi_step`) jitted as the loop runs it:
    num_steps static, the state's buffers donated, XLA given `compiler_options` (`config_lib.compiler_options`).

    With a `mesh`, the shardings are declared here: the state as `state_sharding` (replicated by default), data
    and keys replicated, every batch split over the mesh's `data` axis (and a population's members over its
    `members` axis, where it has one), metrics returned replicated.
    """
    if population:
        spmd_axis = sharding.MEMBERS_AXIS if mesh is not None and sharding.MEMBERS_AXIS in mesh.axis_names else None
        batch_sharding = None if mesh is None else sharding.batch_sharding(mesh)
        fused = make_population_multi_step(train_step, batch_size, batch_sharding, spmd_axis, in_turn)
    else:
        fused = make_multi_step(train_step, batch_size, None if mesh is None else sharding.batch_sharding(mesh))
    if mesh is None:
        return jax.jit(fused, static_argnums=5, donate_argnums=0, compiler_options=compiler_options)
    replicated = sharding.replicated(mesh)
    state_sharding = replicated if state_sharding is None else state_sharding
    return jax.jit(
        fused,
        in_shardings=(state_sharding, replicated, replicated, replicated, replicated),
        out_shardings=(state_sharding, replicated),
        static_argnums=5,
        donate_argnums=0,
        compiler_options=compiler_options,
    )


@struct.dataclass
class PopulationState:
    """A sweep's members as one training state.

    Attributes:
      members: the family's state with a leading member axis [M] on every leaf.
      hypers: each member's swept scalars, {config path: f32[M]}, given to the step through `hyper.overriding`.
    """

    members: Any
    hypers: dict

    @property
    def step(self):
        return self.members.step


@dataclasses.dataclass(frozen=True)
class Population:
    """What the loop needs to train a sweep's M members as one state (`gen_jax/sweep.py` builds it).

    Attributes:
      names: each member's name, e.g. "seed=3,beta=0.5"; its files go to `workdirs`.
      seeds: each member's seed: its init, train, data and eval streams (`keys.loop_streams`).
      hypers: {config path: f32[M]}, the swept scalars the step reads through `hyper.value`.
      tasks: each member's own task, built from its own config: it evaluates, summarises and draws that member.
      workdirs: each member's directory (metrics.jsonl, summary.json, figures).
      in_turn: train the members one after another inside the program instead of batched
        (`make_population_multi_step`).
    """

    names: tuple[str, ...]
    seeds: tuple[int, ...]
    hypers: dict
    tasks: tuple[Task, ...]
    workdirs: tuple[str, ...]
    in_turn: bool = False

    def task(self, template: Task) -> Task:
        """The task the loop trains: `template`'s step vmapped over the members by the loop, each member's step
        traced with its own swept scalars; init from stacked keys [M]."""
        hypers = {path: jnp.asarray(values, jnp.float32) for path, values in self.hypers.items()}

        def init_state(init_keys):
            return PopulationState(members=jax.vmap(template.init_state)(init_keys), hypers=hypers)

        def train_step(state: PopulationState, batch, key):
            with hyper.overriding(state.hypers):
                members, metrics = template.train_step(state.members, batch, key)
            return state.replace(members=members), metrics

        return dataclasses.replace(template, init_state=init_state, train_step=train_step)

    def streams(self) -> dict[str, jax.Array]:
        """The loop's streams, each stacked over the members: {name: key[M]}."""
        each = [keys.loop_streams(seed) for seed in self.seeds]
        return {name: jnp.stack([streams[name] for streams in each]) for name in each[0]}


def init_sharded_state(task: Task, key: jax.Array, mesh, fsdp: bool = False):
    """(state, its shardings): the state initialised directly into its place on the mesh."""
    state_sharding = sharding.state_shardings(jax.eval_shape(task.init_state, key), mesh, fsdp)
    return jax.jit(task.init_state, out_shardings=state_sharding)(key), state_sharding


def next_boundary(step: int, num_steps: int, cadences: tuple[int, ...]) -> int:
    """The first step after `step` at which the loop must stop and log, evaluate or save."""
    candidates = [num_steps] + [(step // every + 1) * every for every in cadences if every > 0]
    return min(candidates)


def _is_chief() -> bool:
    return jax.process_index() == 0


def write_json(path: str, payload: dict) -> None:
    # Write-then-rename, so a killed process never leaves half a file where a whole one was.
    tmp = path + ".tmp"
    try:
        with open(tmp, "w") as f:
            json.dump(payload, f, indent=2, sort_keys=True, default=_json_default)
            f.write("\n")
        os.replace(tmp, path)
    except OSError as error:
        raise _write_error(path, error) from None


def _write_error(path: str, error: OSError) -> WorkdirWriteError:
    return WorkdirWriteError(
        f"{path} could not be written ({error.strerror or error}); the checkpoints are intact. Free space (or make "
        "the directory writable), then run the same command again to resume."
    )


def rewind_metrics(path: str, step: int) -> None:
    """Keeps the records of `path` (metrics.jsonl) with step <= `step`, the step a run resumes from, so that the
    steps it logs again appear once.  Rewritten whole and renamed into place; a line cut short by a kill is
    dropped; an absent file is left absent."""
    if not os.path.exists(path):
        return
    with open(path) as f:
        lines = f.readlines()
    kept = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("step", 0) <= step:
            kept.append(line if line.endswith("\n") else line + "\n")
    if kept != lines:
        tmp = path + ".tmp"
        try:
            with open(tmp, "w") as f:
                f.writelines(kept)
            os.replace(tmp, path)
        except OSError as error:
            raise _write_error(path, error) from None


def _json_default(value):
    if isinstance(value, (np.generic, jax.Array)):
        return np.asarray(value).tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def prepare_workdir(workdir: str, config_dict: dict, task: Task) -> None:
    """Creates the workdir, or checks that the run already in it is of the same model, before any compute.

    The model signature is kept in `<workdir>/model.json`; a different one is an error that names each field,
    and nothing in the workdir is written.  A model.json written before configs were nested (flat fields) is
    compared field by field in today's shape (`config.legacy_signature_differences`) and left as it is.
    """
    signature_path = os.path.join(workdir, "model.json")
    if os.path.exists(signature_path):
        with open(signature_path) as f:
            stored = json.load(f)
        _check_signature(workdir, stored, config_dict, task)
    elif os.path.isdir(os.path.join(workdir, "checkpoints")) and os.listdir(os.path.join(workdir, "checkpoints")):
        raise WorkdirMismatchError(
            f"{workdir}/checkpoints holds checkpoints but no model.json says which model wrote them; "
            "they are left untouched. Choose a new --workdir."
        )
    if not _is_chief():
        return
    os.makedirs(os.path.join(workdir, "figures"), exist_ok=True)
    if not os.path.exists(signature_path):
        write_json(signature_path, task.signature)
    config_path = os.path.join(workdir, "config.json")
    # On resume the config is rewritten only once the checkpoint has been restored (`train`), so a refused
    # resume leaves the workdir as it was.
    if not os.path.exists(config_path):
        write_json(config_path, config_dict)


def _flatten(tree: dict, prefix: str = "") -> dict:
    """{"model": {"hidden": [32]}} -> {"model.hidden": [32]}."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _check_signature(workdir: str, stored: dict, config_dict: dict, task: Task) -> None:
    """WorkdirMismatchError (one line naming each differing field) unless `stored` (the workdir's model.json)
    matches the task's signature."""
    wanted = config_lib.plain(task.signature)
    if "model" in stored or "model" not in wanted:
        stored_flat, wanted_flat = _flatten(stored), _flatten(wanted)
        differing = sorted(k for k in set(stored_flat) | set(wanted_flat) if stored_flat.get(k) != wanted_flat.get(k))
        shown = {k: (stored_flat.get(k), wanted_flat.get(k)) for k in differing}
    else:  # a model.json written before configs were nested
        config = config_lib.new_config(config_dict)
        extras = {k: v for k, v in wanted.items() if k not in ("family", "model", "image_shape")}
        differing = config_lib.legacy_signature_differences(stored, config, tuple(wanted["image_shape"]), extras)
        now = {**wanted["model"], **wanted, "dataset": config.get("dataset")}
        shown = {k: (stored.get(k), now.get(k)) for k in differing}
    if differing:
        fields = "; ".join(f"{k}: workdir has {old!r}, config asks for {new!r}" for k, (old, new) in shown.items())
        raise WorkdirMismatchError(
            f"{workdir} holds a run of a different model ({fields}); nothing in it was changed. Resume with the "
            "config that run used, or choose a new --workdir."
        )


class _Log:
    """metrics.jsonl and TensorBoard, written by process 0 only.  `start`: the step the run starts from; TensorBoard
    hides what an earlier, interrupted process logged after it (`purge_step`), as `rewind_metrics` drops it from
    metrics.jsonl."""

    def __init__(self, workdir: str, start: int = 0):
        self.enabled = _is_chief()
        self.path = os.path.join(workdir, "metrics.jsonl")
        self.tensorboard = None
        if self.enabled:
            from tensorboardX import SummaryWriter  # writes event files without TensorFlow

            events = os.path.join(workdir, "tensorboard")
            resumed = os.path.isdir(events) and bool(os.listdir(events))
            self.tensorboard = SummaryWriter(events, purge_step=start + 1 if resumed else None)

    def write(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        try:
            with open(self.path, "a") as f:
                f.write(json.dumps({"step": step, **values}, default=_json_default) + "\n")
        except OSError as error:
            raise _write_error(self.path, error) from None
        for name, value in values.items():
            self.tensorboard.add_scalar(name, value, step)
        self.tensorboard.flush()

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


def _fall_back_hint(manager, step: int, workdir: str) -> str:
    """What follows a damaged checkpoint's error: a line saying which earlier checkpoint to resume from and how,
    or, where there is none, the end of the error's own line."""
    earlier = checkpoint.newest_intact_before(manager, step)
    if earlier is None:
        return " No earlier checkpoint is intact: start afresh in a new --workdir."
    return (
        f"\n  To resume from step {earlier}, the newest intact checkpoint before it, run the same command with "
        f"--resume_step={earlier}; the checkpoints after it are then moved to {workdir}/{SET_ASIDE_DIR}/."
    )


def _first_non_finite(values: np.ndarray) -> int | None:
    bad = np.flatnonzero(~np.isfinite(values))
    return int(bad[0]) if bad.size else None


def _member(tree: Any, index: int | None) -> Any:
    """Member `index` of a population's stacked tree (a `PopulationState` gives its members'), or `tree` itself
    for a single run (`index` None)."""
    if index is None:
        return tree
    if isinstance(tree, PopulationState):
        tree = tree.members
    return jax.tree_util.tree_map(lambda leaf: leaf[index], tree)


def train(
    config,
    workdir: str,
    task: Task,
    images: np.ndarray,
    labels: np.ndarray,
    mesh=None,
    show_progress: bool = True,
    population: Population | None = None,
    resume_step: int | None = None,
) -> dict:
    """Trains `task` to `config.num_steps`, resuming from the newest checkpoint in `workdir/checkpoints`.

    A resumed run first rewinds metrics.jsonl and TensorBoard to the restored step, so each step is logged once.

    Args:
      config: the validated run config (reads seed, batch_size, num_steps, log_every, eval_every,
        checkpoint_every, keep_checkpoints, write_figures, and fsdp if present).
      workdir: prepared by `prepare_workdir`.
      task: the family's task; for a population, the template whose step every member runs.
      images, labels: f32[N, H, W, C] and i32[N], the preprocessed training split (every process holds it whole).
      mesh: the devices to train on; all of them (`sharding.make_mesh()`) by default.
      population: a sweep's members, trained as one state with a leading member axis (one vmapped, fused program;
        one checkpoint in `workdir/checkpoints`); each member logs, evaluates, summarises and draws figures in its
        own directory with its own task.  A member whose loss turns NaN/Inf is reported and left out of the
        evaluations from then on; the others train on.
      resume_step: resume from this checkpoint instead of the newest (e.g. the newest is damaged); the checkpoints
        after it are moved to `<workdir>/checkpoints_set_aside/`, not deleted.

    Returns:
      The final summary (also written to `<workdir>/summary.json`); for a population {member name: summary},
      each also in `<member workdir>/summary.json`.

    Raises:
      checkpoint.CheckpointDamagedError: the checkpoint to resume from is damaged; the message names the file and
        the `resume_step` to fall back to.  checkpoint.CheckpointWriteError, WorkdirWriteError: a save or a log
        could not be written; the committed checkpoints are intact.
    """
    mesh = mesh if mesh is not None else sharding.make_mesh()
    sharding.check_batch_divides(config.batch_size, mesh)
    if population is None:
        streams = keys.loop_streams(config.seed)
        views = [(None, task, workdir, streams)]  # (member index, its task, its directory, its streams)
        run_task = task
    else:
        streams = population.streams()
        views = [
            (index, member_task, member_dir, {name: key[index] for name, key in streams.items()})
            for index, (member_task, member_dir) in enumerate(zip(population.tasks, population.workdirs))
        ]
        run_task = population.task(task)
    manager = checkpoint.make_manager(os.path.join(workdir, "checkpoints"), config.keep_checkpoints)
    state, state_sharding = init_sharded_state(run_task, streams["init"], mesh, bool(config.get("fsdp", False)))
    latest = manager.latest_step() if resume_step is None else resume_step
    if resume_step is not None and resume_step not in manager.all_steps():
        raise checkpoint.CheckpointMismatchError(
            f"resume_step={resume_step}: {workdir}/checkpoints holds no checkpoint {resume_step} (it holds steps "
            f"{manager.all_steps()}); nothing was changed."
        )
    if latest is not None:
        # Restores into the current mesh's shardings, whatever device count wrote the checkpoint.
        try:
            state = checkpoint.restore(manager, latest, state)
        except checkpoint.CheckpointDamagedError as error:
            raise checkpoint.CheckpointDamagedError(f"{error}{_fall_back_hint(manager, latest, workdir)}") from None
        newer = [s for s in manager.all_steps() if s > latest]
        if newer:
            moved = checkpoint.set_aside(manager, newer, os.path.join(workdir, SET_ASIDE_DIR))
            if _is_chief():
                print(f"Moved the checkpoints after step {latest} to {', '.join(moved)}.", flush=True)
        if _is_chief():
            print(f"Resumed from the checkpoint at step {latest} in {workdir}/checkpoints.", flush=True)
    if _is_chief():
        for _, _, view_dir, _ in views:
            rewind_metrics(os.path.join(view_dir, "metrics.jsonl"), latest or 0)
    if _is_chief() and hasattr(config, "to_dict"):
        write_json(os.path.join(workdir, "config.json"), config.to_dict())
    images = sharding.put_global(images, sharding.replicated(mesh))
    labels = sharding.put_global(labels, sharding.replicated(mesh))
    multi_step = jit_multi_step(
        run_task.train_step,
        config.batch_size,
        mesh,
        state_sharding,
        population is not None,
        config_lib.compiler_options(config),
        population is not None and population.in_turn,
    )

    step = int(np.ravel(jax.device_get(state.step))[0])
    logs = [_Log(view_dir, step) for _, _, view_dir, _ in views]
    diverged: dict[int | None, int] = {}  # member index -> the step its loss first became NaN/Inf
    cadences = (config.log_every, config.eval_every, config.checkpoint_every)
    progress = None
    if show_progress and _is_chief():
        from tqdm import tqdm

        progress = tqdm(
            total=config.num_steps, initial=step, desc=task.name, unit="step", dynamic_ncols=True, mininterval=1.0
        )
    try:
        while step < config.num_steps:
            target = next_boundary(step, config.num_steps, cadences)
            started = time.perf_counter()
            new_state, metrics = multi_step(state, images, labels, streams["train"], streams["data"], target - step)
            metrics = jax.device_get(metrics)
            elapsed = time.perf_counter() - started
            for index, *_ in views:
                losses = np.asarray(_member(metrics, index)[task.loss_name])
                bad = _first_non_finite(losses)
                if bad is None or index in diverged:
                    continue
                message = f"{task.loss_name} became {losses[bad]} at step {step + bad}"
                if population is None:
                    kept = manager.latest_step()
                    raise TrainingDivergedError(
                        f"{task.name}: {message}. Training stopped; the last good checkpoint (step {kept}) is kept in "
                        f"{workdir}/checkpoints. Lower the learning rate or check the data, then run again to "
                        "resume from it."
                    )
                diverged[index] = step + bad
                if _is_chief():
                    print(f"member {population.names[index]}: {message}; left out from now on.", flush=True)
            if population is not None and len(diverged) == len(views):
                raise TrainingDivergedError(
                    f"{task.name}: every member's {task.loss_name} became NaN/Inf (first at step "
                    f"{min(diverged.values())}); the last good checkpoint (step {manager.latest_step()}) is kept."
                )
            state, step = new_state, target
            if progress is not None:
                shown = np.ravel(np.asarray(metrics[task.loss_name]))[-1]
                progress.update(target - progress.n)
                progress.set_postfix({task.loss_name: f"{float(shown):.4g}"}, refresh=False)
            live = [(view, log) for view, log in zip(views, logs) if view[0] not in diverged]
            if step % config.log_every == 0 or step == config.num_steps:
                for (index, _, _, _), log in live:
                    member_metrics = _member(metrics, index)
                    record = {f"train/{k}": float(np.mean(v)) for k, v in member_metrics.items()}
                    record["train/steps_per_sec"] = len(member_metrics[task.loss_name]) / elapsed
                    log.write(step, record)
            if step % config.eval_every == 0 or step == config.num_steps:
                local_state = sharding.to_local(state)
                for (index, view_task, view_dir, view_streams), log in live:
                    member_state = _member(local_state, index)
                    scores = view_task.evaluate(member_state, view_streams["eval"])
                    log.write(step, {f"eval/{k}": v for k, v in scores.items()})
                    if view_task.snapshot is not None and _is_chief():
                        view_task.snapshot(member_state, step, view_dir)
            if step % config.checkpoint_every == 0 or step == config.num_steps:
                checkpoint.save(manager, step, state)
    finally:
        if progress is not None:
            progress.close()
        try:
            checkpoint.finish(manager)
        finally:
            for log in logs:
                log.close()

    local_state = sharding.to_local(state)
    summaries = {}
    for (index, view_task, view_dir, view_streams), log in zip(views, logs):
        if index in diverged:
            summary = {"diverged_at_step": diverged[index], "steps": step}
        else:
            member_state = _member(local_state, index)
            summary = {**view_task.summarize(member_state, view_streams["eval"]), "steps": step}
        if _is_chief():
            write_json(os.path.join(view_dir, "summary.json"), summary)
        if _is_chief() and config.get("write_figures", True) and index not in diverged:
            _write_figures(config, view_task, member_state, view_streams["eval"], view_dir, log.path, summary)
        summaries[index] = summary
    if population is None:
        return summaries[None]
    return {name: summaries[index] for index, name in enumerate(population.names)}


def _write_figures(config, task: Task, state, key, workdir: str, metrics_path: str, summary: dict) -> None:
    """The task's figures, the loss curves and the report page of a finished run (or sweep member)."""
    from gen_jax import figures, report

    figure_list = task.make_figures(state, key, workdir)
    curves = figures.save_loss_curves(
        os.path.join(workdir, "figures", "loss_curves.png"), report.read_metrics(metrics_path)
    )
    figure_list.append((os.path.relpath(curves, workdir), "Training and evaluation curves"))
    report.write_report(workdir, f"{task.name} — {config.get('name', task.name)}", summary, figure_list)
