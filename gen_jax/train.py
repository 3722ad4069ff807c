"""The one training loop, shared by every model family.

A family (AE, VAE, GAN, …) is described by a `Task` (`task.py`): how to build its state, its jit-able
`train_step(state, batch, key) -> (state, metrics)`, its evaluation and its figures.  The loop owns the rest, and
reads top to bottom in `train`:

1. `restore_or_init`: the state from the newest checkpoint (or the one asked for), else initialised, on the mesh;
2. `compile_chunks`: every program the run will call (one per phase and chunk length, `fused.chunks`), compiled
   before any step is timed;
3. `_Loop.run`: each chunk run to the next boundary, then the actions due there: stop on NaN/Inf, log
   (metrics.jsonl, TensorBoard), evaluate (and snapshot), save an Orbax checkpoint;
4. `finish`: each model's summary, figures and report page.

The run directory (lock, signature, logs) is `workdir.py`'s, a sweep's members as one state `population.py`'s, the
fused multi-step program `fused.py`'s; their names, and `Task`, are importable from here too.  Neighbours:
`steps.py` (the steps), `checkpoint.py`, `data/` (batches), `tasks/` (the families), `experiments/main.py`.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import jax
import numpy as np

from gen_jax import checkpoint, keys, preemption, sharding
from gen_jax import config as config_lib
from gen_jax import metrics as metrics_lib
from gen_jax import workdir as workdir_lib
from gen_jax.data import stream
from gen_jax.fused import (  # noqa: F401  (re-exported: the loop's program, imported from here by its users)
    Metrics,
    TrainStep,
    chunk_length,
    chunks,
    jit_multi_step,
    make_multi_step,
    make_population_multi_step,
    next_boundary,
)
from gen_jax.population import Population, PopulationState, member  # noqa: F401  (re-exported)
from gen_jax.task import Task  # noqa: F401  (re-exported: every family imports it from here)
from gen_jax.workdir import (  # noqa: F401  (re-exported: the run directory's names, imported from here by its users)
    LOCK_FILE,
    SET_ASIDE_DIR,
    WorkdirBusyError,
    WorkdirMismatchError,
    WorkdirWriteError,
    is_chief,
    prepare_workdir,
    rewind_metrics,
    workdir_lock,
    write_json,
)


class TrainingDivergedError(FloatingPointError):
    """The loss became NaN or Inf; the message names the step and the checkpoint kept."""


@dataclasses.dataclass(frozen=True)
class _View:
    """One model the loop reports on: a single run (`index` None) or member `index` of a population, with its own
    task (evaluation, summary, figures), directory and streams."""

    index: int | None
    task: Task
    workdir: str
    streams: dict[str, jax.Array]


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
    source=None,
) -> dict:
    """Trains `task` to `config.num_steps`, resuming from the newest checkpoint in `workdir/checkpoints`.

    A resumed run first rewinds metrics.jsonl and TensorBoard to the restored step, so each step is logged once.

    Args:
      config: the validated run config (reads seed, batch_size, num_steps, log_every, eval_every,
        checkpoint_every, keep_checkpoints, write_figures, and fsdp if present).
      workdir: prepared by `prepare_workdir`.
      task: the family's task; for a population, the template whose step every member runs.
      images, labels: f32[N, H, W, C] and i32[N], the preprocessed training split (every process holds it whole);
        None where `source` is given.
      mesh: the devices to train on; all of them (`sharding.make_mesh()`) by default.
      population: a sweep's members, trained as one state with a leading member axis (one vmapped, fused program;
        one checkpoint in `workdir/checkpoints`); each member logs, evaluates, summarises and draws figures in its
        own directory with its own task.  A member whose loss turns NaN/Inf is reported and left out of the
        evaluations from then on; the others train on.
      resume_step: resume from this checkpoint instead of the newest (e.g. the newest is damaged); the checkpoints
        after it are moved to `<workdir>/checkpoints_set_aside/`, not deleted.
      source: where the training split is read from instead of `images`/`labels` (a `data.PreparedSource`, whose
        pixels the step scales and, under static binarisation, thresholds).  The split trains on the device or
        streamed from the host (`config.placement`, `data.stream`); its fingerprint is kept in `<workdir>/data.json`.

    Returns:
      The final summary (also written to `<workdir>/summary.json`); for a population {member name: summary},
      each also in `<member workdir>/summary.json`.

    Raises:
      checkpoint.CheckpointDamagedError: the checkpoint to resume from is damaged; the message names the file and
        the `resume_step` to fall back to.  checkpoint.CheckpointWriteError, WorkdirWriteError: a save or a log
        could not be written; the committed checkpoints are intact.  TrainingDivergedError: the loss (every
        member's, for a population) became NaN/Inf.  data.DataMismatchError: the checkpoints were trained on other
        data.  data.PlacementError: `config.placement` cannot hold the data (before any compute).
        preemption.Stopped: SIGTERM or SIGINT arrived (in any process); the checkpoint of the step the loop
        stopped at is saved.
    """
    mesh = mesh if mesh is not None else sharding.make_mesh()
    sharding.check_batch_divides(config.batch_size, mesh)
    run_task, streams, views = _views(config.seed, task, workdir, population)
    manager = checkpoint.make_manager(os.path.join(workdir, "checkpoints"), config.keep_checkpoints)
    source = source if source is not None else stream.ArraySource(images, labels)
    data_record = stream.check_data(workdir, source, manager.latest_step() is not None)
    feed = stream.make_feed(config, source, mesh, streams["data"], population is not None)
    fsdp = bool(config.get("fsdp", False))
    state, state_sharding = restore_or_init(run_task, streams["init"], mesh, manager, workdir, resume_step, fsdp)
    start = int(np.ravel(jax.device_get(state.step))[0])
    if is_chief():
        for view in views:
            rewind_metrics(os.path.join(view.workdir, "metrics.jsonl"), start)
        if hasattr(config, "to_dict"):
            write_json(os.path.join(workdir, "config.json"), config.to_dict())
        write_json(os.path.join(workdir, stream.DATA_RECORD), data_record)
    feed.start(chunks(start, config.num_steps, cadences(config), task.switches()))
    keys_in = (streams["train"], streams["data"])
    programs = compile_chunks(run_task, config, start, mesh, state_sharding, population, state, (feed, *keys_in))
    inputs = lambda first, end: (*feed(first, end), *keys_in)  # noqa: E731
    loop = _Loop(config, workdir, task, views, manager, population, start, show_progress)
    with preemption.StopRequests() as stops:  # SIGTERM/SIGINT: stop at the next boundary, checkpoint saved
        try:
            plan = chunks(start, config.num_steps, cadences(config), task.switches())
            state = loop.run(state, inputs, programs, plan, stops)
        finally:
            loop.close()
            feed.close()
    summaries = finish(config, views, sharding.to_local(state), loop.diverged, max(start, config.num_steps))
    if population is None:
        return summaries[None]
    return {name: summaries[index] for index, name in enumerate(population.names)}


def cadences(config) -> tuple[int, int, int]:
    """(log_every, eval_every, checkpoint_every): the steps at which the loop stops to act."""
    return config.log_every, config.eval_every, config.checkpoint_every


def _views(seed: int, task: Task, workdir: str, population: Population | None) -> tuple[Task, dict, list[_View]]:
    """(the task the loop trains, its streams {name: key} from `seed`, the models it reports on): `task` itself for
    a single run; for a population its members as one state (`Population.task`), with streams stacked [M] and one
    view per member."""
    if population is None:
        streams = keys.loop_streams(seed)
        return task, streams, [_View(None, task, workdir, streams)]
    streams = population.streams()
    views = [
        _View(index, member_task, member_dir, {name: key[index] for name, key in streams.items()})
        for index, (member_task, member_dir) in enumerate(zip(population.tasks, population.workdirs))
    ]
    return population.task(task), streams, views


def init_sharded_state(task: Task, key: jax.Array, mesh, fsdp: bool = False):
    """(state, its shardings): the state initialised directly into its place on the mesh."""
    state_sharding = sharding.state_shardings(jax.eval_shape(task.init_state, key), mesh, fsdp)
    return jax.jit(task.init_state, out_shardings=state_sharding)(key), state_sharding


def restore_or_init(task: Task, key: jax.Array, mesh, manager, workdir: str, resume_step=None, fsdp=False):
    """(state, its shardings): checkpoint `resume_step` (or the newest) of `manager` restored into the current mesh's
    shardings, whatever device count wrote it; `task.init_state(key)` where there is none.

    With `resume_step`, the checkpoints after it are moved to `<workdir>/checkpoints_set_aside/`, not deleted.

    Raises:
      checkpoint.CheckpointMismatchError: no checkpoint `resume_step`, or one of another shape; nothing was changed.
      checkpoint.CheckpointDamagedError: the checkpoint is damaged; the message says which earlier one to resume.
    """
    state, state_sharding = init_sharded_state(task, key, mesh, fsdp)
    if resume_step is not None and resume_step not in manager.all_steps():
        raise checkpoint.CheckpointMismatchError(
            f"resume_step={resume_step}: {workdir}/checkpoints holds no checkpoint {resume_step} (it holds steps "
            f"{manager.all_steps()}); nothing was changed."
        )
    latest = manager.latest_step() if resume_step is None else resume_step
    if latest is None:
        return state, state_sharding
    try:
        state = checkpoint.restore(manager, latest, state)
    except checkpoint.CheckpointDamagedError as error:
        raise checkpoint.CheckpointDamagedError(f"{error}{_fall_back_hint(manager, latest, workdir)}") from None
    newer = [s for s in manager.all_steps() if s > latest]
    if newer:
        moved = checkpoint.set_aside(manager, newer, os.path.join(workdir, SET_ASIDE_DIR))
        if is_chief():
            print(f"Moved the checkpoints after step {latest} to {', '.join(moved)}.", flush=True)
    if is_chief():
        print(f"Resumed from the checkpoint at step {latest} in {workdir}/checkpoints.", flush=True)
    return state, state_sharding


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


def compile_chunks(task: Task, config, start: int, mesh, state_sharding, population, state, inputs) -> dict:
    """{(phase, length): the compiled program} for every call of the run from step `start` (`fused.chunks`),
    compiled ahead (`.lower(...).compile()`), so the loop's timings exclude compilation and a run compiles only
    the programs it calls.  `inputs`: (the `data.stream.Feed`, train key, data key) as the programs take them."""
    options, in_turn = config_lib.compiler_options(config), population is not None and population.in_turn
    feed, *keys_in = inputs
    jitted, programs = {}, {}
    for first, end in chunks(start, config.num_steps, cadences(config), task.switches()):
        phase, train_step = task.phase_at(first)
        if (phase, end - first) in programs:
            continue
        if phase not in jitted:
            jitted[phase] = jit_multi_step(
                train_step,
                config.batch_size,
                mesh,
                state_sharding,
                population is not None,
                options,
                in_turn,
                feed.streamed,
            )
        example = (*feed.example(end - first), *keys_in)
        programs[phase, end - first] = jitted[phase].lower(state, *example, end - first).compile()
    length, positive = chunk_length(cadences(config)), [every for every in cadences(config) if every > 0]
    if is_chief() and positive and length < min(positive):
        print(
            f"Training in chunks of {length} steps, the greatest common divisor of log_every, eval_every and "
            "checkpoint_every; cadences that are multiples of one another give longer chunks.",
            flush=True,
        )
    return programs


class _Loop:
    """Runs the chunks in order and, at each boundary, the actions due there.

    Between boundaries it holds the metrics of the chunks not yet read back (read only where an action is due, so
    chunks between actions follow each other without waiting on the host), the metrics and training seconds since
    the last log record, and the members whose loss became NaN/Inf (`diverged`: index -> step).
    """

    def __init__(self, config, workdir, task, views, manager, population, start: int, show_progress: bool):
        self.config, self.workdir, self.task, self.views = config, workdir, task, views
        self.manager, self.population = manager, population
        self.logs = [workdir_lib.MetricsLog(view.workdir, start) for view in views]
        self.diverged: dict[int | None, int] = {}
        self.unread: list[tuple[int, Any]] = []  # (first step, metrics on the device) of the chunks not yet read
        self.window: list[dict] = []  # the host metrics since the last log record
        self.seconds = 0.0  # the training time since the last log record
        self.progress = None
        if show_progress and is_chief():
            from tqdm import tqdm

            self.progress = tqdm(
                total=config.num_steps, initial=start, desc=task.name, unit="step", dynamic_ncols=True, mininterval=1.0
            )

    def run(self, state, inputs, programs: dict, plan, stops: preemption.StopRequests | None = None) -> Any:
        """Calls `programs` along `plan` ((first, end) steps per chunk) from `state`, each on `inputs(first, end)` (its
        data and keys); returns the final state.

        Where `stops` asks to stop at a boundary, the actions due there run with a checkpoint among them, and
        `preemption.Stopped` is raised (the save may still be in flight: `close` waits for it)."""
        started = time.perf_counter()
        for first, end in plan:
            phase, _ = self.task.phase_at(first)
            state, metrics = programs[phase, end - first](state, *inputs(first, end))
            self.unread.append((first, metrics))
            due = self.due(end)
            stop = stops is not None and stops.requested()
            if stop:
                due = due | {"checkpoint"}
            if not due:
                continue
            self.read_back()
            self.seconds += time.perf_counter() - started
            self.act(state, end, due)
            if stop:
                raise stops.stopping(end)
            started = time.perf_counter()
        return state

    def due(self, step: int) -> set[str]:
        """The actions due at the end of step `step`: "log", "eval", "checkpoint" (all three at the last step)."""
        config, last = self.config, step == self.config.num_steps
        everies = {"log": config.log_every, "eval": config.eval_every, "checkpoint": config.checkpoint_every}
        return {action for action, every in everies.items() if last or (every > 0 and step % every == 0)}

    def read_back(self) -> None:
        """Brings the unread chunks' metrics to the host, checks their losses (`check_finite`), and adds them to the
        log window."""
        for first, metrics in self.unread:
            metrics = jax.device_get(metrics)
            self.check_finite(metrics, first)
            self.window.append(metrics)
        self.unread = []

    def check_finite(self, metrics: dict, first: int) -> None:
        """Stops a single run whose loss is NaN/Inf (TrainingDivergedError naming the step and the checkpoint
        kept); for a population, leaves such a member out from now on, and stops when every member is out."""
        name = self.task.loss_name
        for view in self.views:
            losses = np.asarray(member(metrics, view.index)[name])
            bad = np.flatnonzero(~np.isfinite(losses))
            if not bad.size or view.index in self.diverged:
                continue
            message = f"{name} became {losses[bad[0]]} at step {first + int(bad[0])}"
            if self.population is None:
                raise TrainingDivergedError(
                    f"{self.task.name}: {message}. Training stopped; the last good checkpoint (step "
                    f"{self.manager.latest_step()}) is kept in {self.workdir}/checkpoints. Lower the learning rate or "
                    "check the data, then run again to resume from it."
                )
            self.diverged[view.index] = first + int(bad[0])
            if is_chief():
                print(f"member {self.population.names[view.index]}: {message}; left out from now on.", flush=True)
        if self.population is not None and len(self.diverged) == len(self.views):
            raise TrainingDivergedError(
                f"{self.task.name}: every member's {name} became NaN/Inf (first at step "
                f"{min(self.diverged.values())}); the last good checkpoint (step {self.manager.latest_step()}) is kept."
            )

    def act(self, state, step: int, due: set[str]) -> None:
        """The progress bar, then the actions `due` at `step`, in this order: log, evaluate (and snapshot), save."""
        if self.progress is not None:
            shown = np.ravel(np.asarray(self.window[-1][self.task.loss_name]))[-1]
            self.progress.update(step - self.progress.n)
            self.progress.set_postfix({self.task.loss_name: f"{float(shown):.4g}"}, refresh=False)
        live = [(view, log) for view, log in zip(self.views, self.logs) if view.index not in self.diverged]
        if "log" in due:
            self.log(step, live)
        if "eval" in due:
            local_state = sharding.to_local(state)
            for view, log in live:
                member_state = member(local_state, view.index)
                with metrics_lib.split_over_processes():  # each process evaluates its share of the batches
                    scores = view.task.evaluate(member_state, view.streams["eval"])
                log.write(step, {f"eval/{k}": v for k, v in scores.items()})
                if view.task.snapshot is not None and is_chief() and workdir_lib.writes_local_files(view.workdir):
                    view.task.snapshot(member_state, step, view.workdir)
        if "checkpoint" in due:
            checkpoint.save(self.manager, step, state)

    def log(self, step: int, live) -> None:
        """One record per live model at `step`: the mean of each metric over the steps since the last record, and
        train/steps_per_sec, those steps over the seconds they took (compilation, evaluation and saves excluded; a
        program's first call still carries the runtime's one-time start-up, small beside a real log window)."""
        window = jax.tree.map(lambda *chunk: np.concatenate(chunk, axis=-1), *self.window)
        for view, log in live:
            metrics = member(window, view.index)
            record = {f"train/{k}": float(np.mean(v)) for k, v in metrics.items()}
            record["train/steps_per_sec"] = len(metrics[self.task.loss_name]) / self.seconds
            log.write(step, record)
        self.window, self.seconds = [], 0.0

    def close(self) -> None:
        """Closes the progress bar, waits for the last checkpoint save, closes the logs."""
        if self.progress is not None:
            self.progress.close()
        try:
            checkpoint.finish(self.manager)
        finally:
            for log in self.logs:
                log.close()


def finish(config, views: list[_View], state, diverged: dict, steps: int) -> dict:
    """{view index: its summary}, each written to `<its workdir>/summary.json` with, when `config.write_figures`,
    its figures, loss curves and report page; a diverged member's summary says where it diverged.  `state`: the
    final state on the host (`sharding.to_local`)."""
    summaries = {}
    for view in views:
        if view.index in diverged:
            summary = {"diverged_at_step": diverged[view.index], "steps": steps}
        else:
            member_state = member(state, view.index)
            with metrics_lib.split_over_processes():  # each process evaluates its share of the batches
                summary = {**view.task.summarize(member_state, view.streams["eval"]), "steps": steps}
        if is_chief():
            write_json(os.path.join(view.workdir, "summary.json"), summary)
        figures = config.get("write_figures", True) and view.index not in diverged
        if is_chief() and figures and workdir_lib.writes_local_files(view.workdir):
            _write_figures(config, view.task, member_state, view.streams["eval"], view.workdir, summary)
        summaries[view.index] = summary
    return summaries


def _write_figures(config, task: Task, state, key, workdir: str, summary: dict) -> None:
    """The task's figures, the loss curves and the report page of a finished run (or sweep member)."""
    from gen_jax import figures, report

    figure_list = task.make_figures(state, key, workdir)
    metrics_path = os.path.join(workdir, "metrics.jsonl")
    curves = figures.save_loss_curves(
        os.path.join(workdir, "figures", "loss_curves.png"), report.read_metrics(metrics_path)
    )
    figure_list.append((os.path.relpath(curves, workdir), "Training and evaluation curves"))
    report.write_report(workdir, f"{task.name} — {config.get('name', task.name)}", summary, figure_list)
