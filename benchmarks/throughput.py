"""Training throughput of any experiment config, timed as its training loop runs it.

    python -m benchmarks.throughput --config experiments/configs/<c>.py [<c2>.py …] [--config.<key>=<value> …]
        [--vary <key>=<v1>,<v2>,…] [--steps-per-call K] [--repeats R] [--members M [--members-in-turn]]
        [--baseline] [--no-peers] [--json out.json] [--markdown table.md]

Each config is built as `experiments.main` builds it: the file's `get_config()`, the `--config.*` overrides (given
to every config, parsed by ml_collections as experiments.main parses them), its own data set, and
`tasks.get(config.family).make_task(config, dataset)`.  `--vary key=a,b` makes a row of each config per value (the
product over several `--vary`), e.g. `--vary compute_dtype=float32,bfloat16` or `--vary conv_impl=flax,subpixel`.

What is timed is the loop's own program: `train.jit_multi_step` on the loop's mesh, with its state shardings and
compiler options, K steps per call (by default the loop's chunk, `train.next_boundary` from step 0), compiled
ahead of time and warmed up once, so the rates exclude compilation (its seconds are reported apart).  Every row's
runners are timed interleaved, repeat by repeat, so load from other processes hits them alike and ratios between
the rows of one run compare.  Reported per row, medians over the repeats: steps/s, images/s (batch × steps/s),
ms/step; XLA's FLOPs of one step and its memory plan; and, in the same repeats, optionally:

* `--members M`: M models (seeds seed … seed+M−1) as one vmapped population, the sweep's program;
  `members_speedup` is their member-steps/s over the single model's steps/s (`--members-in-turn` also times them
  one after another in one program, `lax.map`, as the sweep's `--members_in_turn`);
* `--baseline`: the Flax examples' loop, one `jax.jit(train_step)` call per host batch, the key split on the host;
* the PyTorch peer (`benchmarks/peers/`: the same network, loss, optimizer, EMA and batch) where one exists for the
  config's networks, eagerly and under `torch.compile`; skipped with one line where PyTorch is not installed or
  the config has no peer, and by `--no-peers`.

Sample-quality evaluation is turned off where a config has it (it is no part of the step, and building it may
train a classifier).  Importing this module loads only jax, numpy and gen_jax's core; configs, tasks and PyTorch are
imported when a run needs them.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import itertools
import json
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable

import jax
import numpy as np

from gen_jax import config as config_lib
from gen_jax import keys, sharding, train

# Fields of the records the tables show: (header, field, format, scale).
_COLUMNS = (
    ("config", "label", "", 1.0),
    ("family", "family", "", 1.0),
    ("batch", "batch_size", "d", 1.0),
    ("K", "steps_per_call", "d", 1.0),
    ("steps/s", "steps_per_s", ".1f", 1.0),
    ("images/s", "images_per_s", ".0f", 1.0),
    ("ms/step", "ms_per_step", ".3f", 1.0),
    ("compile s", "compile_s", ".1f", 1.0),
    ("GFLOP/step", "flops_per_step", ".3f", 1e-9),
    ("× per-step baseline", "speedup_vs_baseline", ".2f", 1.0),
    ("members: × one model", "members_speedup", ".2f", 1.0),
    ("in turn: × one model", "members_in_turn_speedup", ".2f", 1.0),
    ("× torch eager", "speedup_vs_torch_eager", ".2f", 1.0),
    ("× torch.compile", "speedup_vs_torch_compiled", ".2f", 1.0),
)


@dataclasses.dataclass(frozen=True)
class Row:
    """One timed model: a config file, the `--config.<key>=<value>` overrides it is built with, and the
    `key=value` pairs of `--vary` that distinguish it from the run's other rows of the same file."""

    path: str
    overrides: tuple[str, ...]
    varied: tuple[str, ...] = ()


def split_values(text: str) -> list[str]:
    """`a,b,(1, 2)` -> ["a", "b", "(1, 2)"]: commas inside brackets belong to a value."""
    values, depth, current = [], 0, ""
    for char in text:
        depth += (char in "([{") - (char in ")]}")
        if char == "," and depth == 0:
            values.append(current)
            current = ""
        else:
            current += char
    return [value.strip() for value in values + [current]]


def make_rows(paths: list[str], overrides: list[str], varies: list[str]) -> list[Row]:
    """Each config path × each combination of the `--vary key=v1,v2` values (the last varies fastest).

    Raises:
      ConfigError: a `--vary` without `key=` or with an empty value.
    """
    axes = []
    for text in varies:
        key, sep, values = text.partition("=")
        key = key.strip().removeprefix("config.")
        parsed = split_values(values)
        if not sep or not key or not all(parsed):
            raise config_lib.ConfigError(f"--vary {text!r}: expected key=value1,value2,…, e.g. compute_dtype=float32")
        axes.append([f"{key}={value}" for value in parsed])
    return [
        Row(path, tuple(overrides) + tuple(f"--config.{pair}" for pair in combination), combination)
        for path in paths
        for combination in itertools.product(*axes)
    ]


def load_config(row: Row):
    """`row`'s config: its file's `get_config()` with its overrides, parsed by ml_collections as experiments.main
    parses them, sample-quality evaluation off, validated.

    Raises:
      ConfigError: one line naming the file, the override or the field that is wrong.
    """
    from absl import flags
    from ml_collections import config_flags

    if not os.path.isfile(row.path):
        raise config_lib.ConfigError(
            f"--config {row.path}: no such file; give an experiment config, e.g. experiments/configs/vae_digits.py"
        )
    argv = ["throughput", f"--config={row.path}", *row.overrides]
    values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, flag_values=values, sys_argv=argv)
    try:
        values(argv)
    except (AttributeError, KeyError) as error:
        raise config_lib.ConfigError(
            f"{' '.join(argv[1:])}: an override names a field the config does not have: "
            + str(error.args[0] if error.args else error).strip("'\"")
        ) from None
    except Exception as error:  # a config file is the user's code: whatever it raises is their mistake to fix
        message = " ".join(str(error).replace("\\n", " ").split())
        raise config_lib.ConfigError(f"{' '.join(argv[1:])}: {message}") from None
    config = values.config
    try:
        config_lib.validate_common(config)
    except config_lib.ConfigError as error:
        raise config_lib.ConfigError(f"{row.path}: {error}") from None
    if config_lib.value_at(config, "experiment"):
        raise config_lib.ConfigError(
            f"{row.path}: config.experiment={config.experiment!r} runs several trainings; time their configs instead"
        )
    if "sample_quality" in config:
        config.sample_quality.enabled = False
    return config


@dataclasses.dataclass
class Model:
    """A row built: its config, task and preprocessed training split (f32[N, H, W, C] images, i32[N] labels).

    `phase` is the index of the task's phase whose step is timed, the one that trains most of `config.num_steps`
    (a task with stages, as the VQ-VAE, runs one program per phase: `train.Task.phases`); None for a task with one
    train step.
    """

    row: Row
    config: object
    task: train.Task
    images: np.ndarray
    labels: np.ndarray
    phase: int | None = None

    @property
    def label(self) -> str:
        """The config's name, the `--vary` values and the timed phase, e.g. "vqvae_digits phase=0"."""
        return " ".join((self.config.name, *self.row.varied, *([] if self.phase is None else [f"phase={self.phase}"])))


def longest_phase(task: train.Task, num_steps: int) -> int | None:
    """The index of the phase of `task` that trains the most of `num_steps` steps; None without phases."""
    if not task.phases:
        return None
    ends = [*task.switches(), num_steps]
    lengths = [min(end, num_steps) - min(first, num_steps) for (first, _), end in zip(task.phases, ends)]
    return lengths.index(max(lengths))


def step_of(task: train.Task, phase: int | None):
    """The train step the loop runs in `phase` (`longest_phase`)."""
    return task.train_step if phase is None else task.phases[phase][1]


def build(rows: list[Row]) -> list[Model]:
    """Every row's config, data (each data set loaded once) and task, all checked before any compute.

    Raises:
      the errors of `experiments.main.user_errors` (one line each): a bad config, missing data.
    """
    from experiments import main as main_lib
    from gen_jax import data, tasks

    configs = [load_config(row) for row in rows]
    datasets = {}
    for config in configs:
        where = (config.dataset, config.get("data_dir") or "")
        if where not in datasets:
            datasets[where] = main_lib.load_data(config)
    models = []
    for row, config in zip(rows, configs):
        dataset = datasets[(config.dataset, config.get("data_dir") or "")]
        try:
            config_lib.validate_against_data(config, len(dataset.train_images), jax.device_count())
            task = tasks.get(config.family).make_task(config, dataset)
        except config_lib.ConfigError as error:
            raise config_lib.ConfigError(f"{row.path}: {error}") from None
        images = data.preprocess(dataset.train_images, config.binarization)
        phase = longest_phase(task, config.num_steps)
        models.append(Model(row, config, task, images, dataset.train_labels, phase))
    return models


# --- the timed programs: each run() advances its model K steps and returns when the device has finished ----------


def loop_runner(model: Model, steps_per_call: int, members: int = 0, in_turn: bool = False):
    """(run, compiled, compile seconds) of the training loop's program (`train.train`'s calls, in order): the state
    initialised into its shardings on the loop's mesh, the data replicated, `train.jit_multi_step` compiled for K
    steps; with `members`, a sweep's population of seeds seed … seed+M−1 (`experiments.sweep`'s mesh)."""
    config, task = model.config, model.task
    if members:
        seeds = tuple(range(config.seed, config.seed + members))
        population = train.Population(
            names=tuple(map(str, seeds)),
            seeds=seeds,
            hypers={},
            tasks=(task,) * members,
            workdirs=("",) * members,
            in_turn=in_turn,
        )
        task, streams = population.task(task), population.streams()
        mesh = sharding.make_mesh(members=1 if in_turn else sharding.members_axis_size(members, jax.device_count()))
    else:
        streams, mesh = keys.loop_streams(config.seed), sharding.make_mesh()
    state, state_sharding = train.init_sharded_state(task, streams["init"], mesh, bool(config.fsdp and not members))
    images = sharding.put_global(model.images, sharding.replicated(mesh))
    labels = sharding.put_global(model.labels, sharding.replicated(mesh))
    options = config_lib.compiler_options(config)
    started = time.perf_counter()
    compiled = (
        train.jit_multi_step(
            step_of(task, model.phase), config.batch_size, mesh, state_sharding, bool(members), options, in_turn
        )
        .lower(state, images, labels, streams["train"], streams["data"], steps_per_call)
        .compile()
    )
    compile_s = time.perf_counter() - started

    def run():
        nonlocal state
        state, metrics = compiled(state, images, labels, streams["train"], streams["data"])
        jax.device_get(metrics)  # as the loop reads them after each call
        jax.block_until_ready(state)

    return run, compiled, compile_s


def baseline_runner(model: Model, steps_per_call: int):
    """(run, compile seconds) of the Flax examples' loop: K calls of `jax.jit(train_step)`, each on a host batch
    from a host-side permutation per epoch, the key split on the host."""
    config, task = model.config, model.task
    rng, count = np.random.default_rng(config.seed), len(model.images)

    def host_batches():
        while True:
            order = rng.permutation(count)
            for start in range(0, count - config.batch_size + 1, config.batch_size):
                idx = order[start : start + config.batch_size]
                yield {"image": model.images[idx], "label": model.labels[idx]}

    batches, streams = host_batches(), keys.loop_streams(config.seed)
    state, key = task.init_state(streams["init"]), streams["train"]
    started = time.perf_counter()
    options = config_lib.compiler_options(config)
    step = jax.jit(step_of(task, model.phase), compiler_options=options).lower(state, next(batches), key).compile()
    compile_s = time.perf_counter() - started

    def run():
        nonlocal state, key
        for _ in range(steps_per_call):
            key, step_key = jax.random.split(key)
            state, metrics = step(state, next(batches), step_key)
        jax.block_until_ready((state, metrics))

    return run, compile_s


def torch_missing() -> bool:
    """Whether PyTorch is absent (it is an optional extra); then one line says the peers are skipped."""
    import importlib.util

    if importlib.util.find_spec("torch") is not None:
        return False
    print("PyTorch is not installed: the PyTorch peers are skipped (pip install -e '.[peers]' to time them)")
    return True


class NoPeer(Exception):
    """The PyTorch side cannot be timed for this config (the message says why, in one line)."""


def peer_runners(model: Model, steps_per_call: int) -> tuple[dict[str, Callable[[], None]], dict]:
    """({"torch_eager": run, "torch_compiled": run}, facts): the PyTorch peer of the model (`benchmarks.peers`),
    each run advancing it K steps, warmed up (compiled) here.  facts: torch's version, threads and device,
    OMP_WAIT_POLICY, the compile seconds, and `torch_compiled_error` (one line) when `torch.compile` failed on this
    machine, whose runner is then left out.

    Raises:
      NoPeer: the config's networks, loss or optimizer have no peer.
    """
    from benchmarks.peers import steps as peer_steps  # PyTorch is an optional extra: `torch_missing` first

    torch, config = peer_steps.torch, model.config
    device = "cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available() else "cpu"
    precision = "bf16" if config.compute_dtype == "bfloat16" else "f32"
    facts = {
        "torch_version": torch.__version__,
        "torch_threads": peer_steps.set_threads(),
        "torch_device": device,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "torch_compile_s": None,
        "torch_compiled_error": None,
    }
    runners = {}
    for mode in peer_steps.MODES:
        try:
            run = peer_steps.make_runner(config, model.images, config.batch_size, mode, precision, device, config.seed)
        except ValueError as error:  # networks, loss or optimizer without a peer
            raise NoPeer(str(error)) from None
        started = time.perf_counter()
        try:
            run(2)
        except Exception as error:  # torch.compile needs a C++ compiler and a supported platform
            if mode == "eager":
                raise
            facts["torch_compiled_error"] = f"{type(error).__name__}: {(str(error).splitlines() or [''])[0]}"
            continue
        if mode == "compiled":
            facts["torch_compile_s"] = time.perf_counter() - started
        runners[f"torch_{mode}"] = lambda run=run: run(steps_per_call)
    return runners, facts


# --- measuring ------------------------------------------------------------------------------------------------------


def step_flops(model: Model) -> float | None:
    """XLA's count of the floating-point operations of one training step (the cost analysis of its lowered HLO;
    nothing is compiled), or None where the backend gives none."""
    from gen_jax import sweep

    state = jax.eval_shape(model.task.init_state, jax.random.key(0))
    batch = sweep.abstract_batch(model.config, model.images.shape[1:])
    analysis = jax.jit(step_of(model.task, model.phase)).lower(state, batch, jax.random.key(0)).cost_analysis()
    if isinstance(analysis, (list, tuple)):  # one dict per computation in older JAX
        analysis = analysis[0] if analysis else {}
    return float(analysis["flops"]) if analysis and "flops" in analysis else None


def xla_memory_bytes(compiled) -> int | None:
    """The memory XLA planned for one executable: arguments + outputs + temporaries − aliased (donated) bytes."""
    stats = compiled.memory_analysis()
    if stats is None:
        return None
    return int(stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes) - int(
        stats.alias_size_in_bytes
    )


def prepare(model: Model, steps_per_call: int | None, members: int, in_turn: bool, baseline: bool, peers: bool):
    """(runners {kind: run}, facts for the record): the loop's program and the optional ones of one model, compiled
    and warmed up.  K is `steps_per_call`, or the loop's first chunk (`train.next_boundary`)."""
    config = model.config
    steps_per_call = steps_per_call or train.next_boundary(0, config.num_steps, train.cadences(config))
    run, compiled, compile_s = loop_runner(model, steps_per_call)
    runners = {"fused": run}
    facts = {
        "steps_per_call": steps_per_call,
        "compile_s": compile_s,
        "xla_memory_bytes": xla_memory_bytes(compiled),
        "flops_per_step": step_flops(model),
    }
    if members:
        runners["members"], _, facts["members_compile_s"] = loop_runner(model, steps_per_call, members)
        if in_turn:
            runners["members_in_turn"], _, facts["members_in_turn_compile_s"] = loop_runner(
                model, steps_per_call, members, in_turn=True
            )
    if baseline:
        runners["baseline"], facts["baseline_compile_s"] = baseline_runner(model, steps_per_call)
    if peers:
        try:
            peer, peer_facts = peer_runners(model, steps_per_call)
            runners.update(peer)
            facts.update(peer_facts)
        except NoPeer as why:
            facts["peer_skipped"] = str(why)
            print(f"{model.label}: no PyTorch peer: {why}", flush=True)
    for run in runners.values():  # the warm-up call
        run()
    return runners, facts


def record(model: Model, facts: dict, seconds: dict[str, list[float]], members: int) -> dict:
    """One row's JSON record from its facts and per-repeat seconds per step of each runner (medians reported)."""
    config = model.config
    median = {kind: statistics.median(values) for kind, values in seconds.items()}
    fused = median["fused"]
    rates = {
        "steps_per_s": 1.0 / fused,
        "images_per_s": config.batch_size / fused,
        "ms_per_step": 1e3 * fused,
        "achieved_flops_per_s": facts["flops_per_step"] / fused if facts["flops_per_step"] else None,
    }
    if "baseline" in median:
        rates.update(baseline_ms_per_step=1e3 * median["baseline"], speedup_vs_baseline=median["baseline"] / fused)
    if "members" in median:
        rates.update(members=members, member_steps_per_s=members / median["members"])
        rates["members_speedup"] = fused * members / median["members"]
    if "members_in_turn" in median:
        rates["members_in_turn_speedup"] = fused * members / median["members_in_turn"]
    for mode in ("eager", "compiled"):
        if f"torch_{mode}" in median:
            rates[f"torch_{mode}_ms_per_step"] = 1e3 * median[f"torch_{mode}"]
            rates[f"speedup_vs_torch_{mode}"] = median[f"torch_{mode}"] / fused
    return {
        "label": model.label,
        "config": model.row.path,
        "overrides": list(model.row.overrides),
        "name": config.name,
        "family": config.family,
        "dataset": config.dataset,
        "batch_size": config.batch_size,
        "compute_dtype": config.compute_dtype,
        "phase": model.phase,
        "num_examples": len(model.images),
        "repeats": len(seconds["fused"]),
        **rates,
        **facts,
        "peak_memory_bytes": (jax.devices()[0].memory_stats() or {}).get("peak_bytes_in_use"),
        "ms_per_step_repeats": {kind: [1e3 * s for s in values] for kind, values in seconds.items()},
    }


def environment() -> dict:
    """Where and when: the device and host, the versions of Python, JAX, Flax, optax (and PyTorch where loaded)."""
    import flax
    import optax

    from experiments import main as main_lib

    devices = jax.devices()
    versions = {"python": platform.python_version(), "jax": jax.__version__, "flax": flax.__version__}
    versions["optax"] = optax.__version__
    if "torch" in sys.modules:
        versions["torch"] = sys.modules["torch"].__version__
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {
            "devices": f"{len(devices)} × {devices[0].device_kind}",
            "backend": jax.default_backend(),
            "platform": platform.platform(),
            "processor": main_lib._cpu_model() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "load_average_1_5_15_min": [round(x, 2) for x in os.getloadavg()],
        },
        "versions": versions,
    }


# --- output ---------------------------------------------------------------------------------------------------------


def markdown_table(results: list[dict]) -> str:
    """The records as a Markdown table, one row each; columns no record has are left out."""
    columns = [column for column in _COLUMNS if any(r.get(column[1]) is not None for r in results)]
    lines = ["| " + " | ".join(header for header, *_ in columns) + " |", "|" + "---|" * len(columns)]
    for r in results:
        cells = [
            "—" if r.get(field) is None else format(r[field] * scale if scale != 1.0 else r[field], spec)
            for _, field, spec, scale in columns
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_json(path: str, payload: dict) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(payload, f, indent=2)
        f.write("\n")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        """A mistake on the command line as one line (a ConfigError), not argparse's usage text."""
        raise config_lib.ConfigError(f"{message} (python -m benchmarks.throughput --help lists the options)")


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """The options, and the `--config.<key>=<value>` overrides in their order; any other argument is an error."""
    parser = _Parser(prog="python -m benchmarks.throughput", description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--config", nargs="+", action="extend", required=True, help="experiment config file(s)")
    parser.add_argument("--vary", action="append", default=[], help="key=v1,v2: a row per value (repeatable)")
    parser.add_argument("--steps-per-call", type=int, help="K, steps per call (default: the loop's chunk)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats after the warm-up (default 5)")
    parser.add_argument("--members", type=int, default=0, help="also time M models as one population (a sweep)")
    parser.add_argument(
        "--members-in-turn", action="store_true", help="with --members: also the M models in turn in one program"
    )
    parser.add_argument("--baseline", action="store_true", help="also time the per-step loop of the Flax examples")
    parser.add_argument("--no-peers", action="store_true", help="do not time the PyTorch peers")
    parser.add_argument("--json", help="write the records, machine and versions here (rewritten after each repeat)")
    parser.add_argument("--markdown", help="write the table here")
    args, rest = parser.parse_known_args(argv)
    unknown = [arg for arg in rest if not (arg.startswith("--config.") and "=" in arg)]
    if unknown:
        parser.error(f"unrecognised arguments: {' '.join(unknown)}; config overrides are --config.<key>=<value>")
    for name in ("steps_per_call", "repeats", "members"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "members" else 1):
            parser.error(f"--{name.replace('_', '-')} must be {'>= 0' if name == 'members' else 'positive'}")
    if args.members_in_turn and not args.members:
        parser.error("--members-in-turn needs --members M")
    return args, rest


def run(argv: list[str]) -> list[dict]:
    """Builds every row, compiles and warms up its runners, times them all interleaved; prints each row's rates and
    the table, writes the JSON and Markdown asked for; returns the records."""
    args, overrides = parse_args(argv)
    models = build(make_rows(args.config, overrides, args.vary))
    peers = not args.no_peers and not torch_missing()
    prepared = []
    for model in models:
        runners, facts = prepare(model, args.steps_per_call, args.members, args.members_in_turn, args.baseline, peers)
        prepared.append((model, runners, facts))
        print(f"{model.label}: compiled in {facts['compile_s']:.1f} s, K = {facts['steps_per_call']}", flush=True)
    payload = {"command": "python -m benchmarks.throughput " + shlex.join(argv), **environment(), "results": []}
    seconds = [{kind: [] for kind in runners} for _, runners, _ in prepared]
    for repeat in range(args.repeats):
        for (_, runners, facts), times in zip(prepared, seconds):
            for kind, run_once in runners.items():
                started = time.perf_counter()
                run_once()
                times[kind].append((time.perf_counter() - started) / facts["steps_per_call"])
        payload["results"] = [record(m, f, s, args.members) for (m, _, f), s in zip(prepared, seconds)]
        if args.json:  # a run stopped early leaves what it has measured
            write_json(args.json, payload)
        print(f"repeat {repeat + 1}/{args.repeats} done", flush=True)
    table = markdown_table(payload["results"])
    print(f"\n{payload['machine']['devices']}, JAX {payload['versions']['jax']}, {payload['date']}\n\n{table}")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table)
    return payload["results"]


def main(argv: list[str] | None = None) -> list[dict]:
    """`run`, with a mistake in the input (a bad config, an override, missing data) printed as one line `error: …`
    and exit status 2."""
    from experiments import main as main_lib

    try:
        return run(sys.argv[1:] if argv is None else argv)
    except main_lib.user_errors() as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
