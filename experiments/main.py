"""The experiment contract: one command for every model family.

    python -m experiments.main --config experiments/configs/<name>.py --workdir <dir> [--config.<key>=<value> …]

<dir> receives config.json (the resolved config), model.json (what a checkpoint must match), metrics.jsonl,
tensorboard/, summary.json, figures/*.png, report.md / index.html and checkpoints/.  Running the same command
again resumes from the newest checkpoint.  Mistakes in the config, missing data and a workdir holding another
model's run are reported before any compute, and nothing in the workdir is changed by them.
"""

from __future__ import annotations

import importlib
import os
import sys
import time

from absl import app, flags, logging
from ml_collections import config_flags

STARTED = time.monotonic()  # when the command started (this module is imported first): a record's wall time

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file (experiments/configs/*.py).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and figures.")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address",
    None,
    "Multi-host runs: host:port of process 0. Without it, JAX_COORDINATOR_ADDRESS (and JAX_NUM_PROCESSES, "
    "JAX_PROCESS_ID) are read; with neither the run is single-process.",
)
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Multi-host runs: the number of processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "Multi-host runs: this process's index.")
_RECORD = flags.DEFINE_string(
    "record",
    None,
    "Also write the run's results record here (results/<name>.json): the command, date, machine, versions, "
    "resolved config and summary; docs/results.md's tables are made from these files (experiments/readme_tables.py).",
)
_RESUME_STEP = flags.DEFINE_integer(
    "resume_step",
    None,
    "Resume from this checkpoint instead of the newest (e.g. when the newest is damaged); the checkpoints after it "
    "are moved to <workdir>/checkpoints_set_aside/, not deleted.",
)
flags.mark_flags_as_required(["config", "workdir"])


def run(config, workdir: str, resume_step: int | None = None) -> dict:
    """Validates `config`, loads its data, trains the family it names in `workdir`; returns the summary.

    `config.family` names the family module (`gen_jax/tasks/<family>.py`, found by `tasks.get`); a non-empty
    `config.experiment` names instead an experiment module (`experiments/<experiment>.py`) whose
    `run(config, dataset, workdir)` trains and compares several runs.  Once the config and data are accepted, the
    workdir is locked (`train.workdir_lock`) until the run ends: a second run in it is refused.
    """
    import jax

    from gen_jax import config as config_lib
    from gen_jax import data, tasks, train

    config_lib.validate_common(config)
    family = tasks.get(config_lib.value_at(config, "family"))
    experiment = None
    if config_lib.value_at(config, "experiment"):
        experiment = _experiment(config.experiment)
    dataset = load_data(config)
    if dataset.is_sample and jax.process_index() == 0:
        print(
            f"{dataset.name}: training reads all {dataset.num_train:,} training images from the directory; "
            f"evaluation, scores and figures use the {len(dataset.test_images):,} test and "
            f"{len(dataset.train_images):,} training images held in memory (a fixed sample: data.host_sample_rows)",
            flush=True,
        )
    if experiment is not None:
        with train.workdir_lock(workdir):
            return experiment.run(config, dataset, workdir)
    config_lib.validate_against_data(config, dataset.num_train, jax.device_count())
    task = family.make_task(config, dataset)
    source = train_source(config, dataset)
    data.stream.resolve_placement(config, source)  # a placement that cannot be is refused before the workdir is made
    with train.workdir_lock(workdir):
        train.prepare_workdir(workdir, config.to_dict(), task)
        return train.train(config, workdir, task, None, None, resume_step=resume_step, source=source)


def train_source(config, dataset):
    """Where a run reads its training split, by rows, on the device or streamed as config.placement says: a prepared
    directory's train split (`data.PreparedSource`), else the data set's, preprocessed (`data.ArraySource`)."""
    from gen_jax import data

    if data.is_prepared_path(config.dataset):
        return data.PreparedSource(os.path.expanduser(config.dataset), "train")
    return data.ArraySource(data.preprocess(dataset.train_images, config.binarization), dataset.train_labels)


def load_data(config):
    """The data set config.dataset names (from config.data_dir where given, at config.image_size); an unknown name is a
    ConfigError naming the field, missing data a DatasetUnavailableError (both one line, before any compute)."""
    from gen_jax import config as config_lib
    from gen_jax import data

    try:
        return data.configured_dataset(config)
    except ValueError as error:  # an unknown name; missing data raises DatasetUnavailableError
        raise config_lib.ConfigError(f"config.dataset: {error}") from None


def _experiment(name: str):
    """The experiment module `experiments/<name>.py` with a `run`; ConfigError naming the field otherwise."""
    from gen_jax import config as config_lib

    module = None
    if isinstance(name, str) and name.isidentifier():
        try:
            module = importlib.import_module(f"experiments.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"experiments.{name}":
                raise
    if module is None or not hasattr(module, "run") or name == "main":
        raise config_lib.ConfigError(
            f"config.experiment: no experiment module experiments/{name}.py with a run(config, dataset, workdir)"
        )
    return module


def user_errors() -> tuple[type[Exception], ...]:
    """The errors that describe a mistake in the input, or a fault of the files or the disk: shown as one message
    (a hint may follow on further lines), without a traceback."""
    from gen_jax import checkpoint, config, data, train

    return (
        config.ConfigError,
        data.DatasetUnavailableError,
        train.WorkdirMismatchError,
        train.WorkdirBusyError,
        train.WorkdirWriteError,
        checkpoint.CheckpointMismatchError,
        checkpoint.CheckpointWriteError,
        data.stream.DataMismatchError,
        train.TrainingDivergedError,
    )


def jax_process_index() -> int:
    import jax

    return jax.process_index()


def _cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), or "" where there is none."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        return ""


def write_record(
    path: str,
    argv: list[str],
    config,
    summary: dict,
    program: str = "experiments.main",
    started: float | None = None,
    first_step: int = 0,
) -> None:
    """Writes the results record of a finished run: {command, date (UTC), machine, versions, config, summary}, and
    with `started` (the command's `time.monotonic()` at its start) "wall_s": the command's wall time in seconds
    (start-up, data, compile, training, evaluation, figures; only this invocation's if it resumed a run), with the
    machine's load averages over 1, 5 and 15 minutes when it ended (how busy the machine was while it ran, the
    command itself included), and "first_step" when the command resumed a run (the wall time covers the steps from
    there on).

    `program` is the module the command ran (`python -m <program> <argv[1:]>`): `experiments.sweep` (whose summary
    is sweep.json's content) and the explorer's latency benchmark write their records here too."""
    import datetime
    import json
    import platform

    import flax
    import jax
    import optax

    devices = jax.devices()
    record = {
        "command": " ".join([f"python -m {program}", *argv[1:]]),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {
            "platform": platform.platform(),
            "processor": _cpu_model() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "devices": f"{len(devices)} × {devices[0].device_kind}",
        },
        "versions": {
            "python": platform.python_version(),
            "jax": jax.__version__,
            "flax": flax.__version__,
            "optax": optax.__version__,
        },
        "config": config.to_dict(),
        "summary": summary,
    }
    if started is not None:
        record["wall_s"] = round(time.monotonic() - started, 1)
        record["load_average_1_5_15_min"] = [round(x, 2) for x in os.getloadavg()]
    if first_step:
        record["first_step"] = first_step
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(record, f, indent=2, sort_keys=True, default=lambda v: list(v) if isinstance(v, tuple) else str(v))
        f.write("\n")


def checkpointed_step(workdir: str, resume_step: int | None = None) -> int:
    """The step a run in `workdir` starts from: `resume_step` if given, else its newest checkpoint's (the step
    directories under checkpoints/), else 0."""
    if resume_step is not None:
        return resume_step
    from etils import epath

    directory = epath.Path(workdir) / "checkpoints"
    steps = [int(path.name) for path in directory.iterdir() if path.name.isdigit()] if directory.is_dir() else []
    return max(steps, default=0)


def main(argv):
    # Orbax logs every file it writes at INFO and the files it cannot parse at ERROR; every failure reaches the user
    # as one line of ours (below), so keep the console for progress and those lines.
    logging.set_verbosity(logging.FATAL)
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    workdir = _WORKDIR.value if "://" in _WORKDIR.value else os.path.abspath(_WORKDIR.value)  # gs://… as given
    from gen_jax import preemption, sharding

    if sharding.distributed_requested(_COORDINATOR.value):
        sharding.initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
        preemption.register()
    first_step = checkpointed_step(workdir, _RESUME_STEP.value)
    with preemption.interruptible(workdir):  # SIGTERM / SIGINT: one line, exit status 143 / 130
        summary = run_or_report(_CONFIG.value, workdir, _RESUME_STEP.value)
    if summary is None:
        sys.exit(2)
    if _RECORD.value and jax_process_index() == 0:
        write_record(_RECORD.value, sys.argv, _CONFIG.value, summary, started=STARTED, first_step=first_step)
    print("summary:", ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items()))
    print(f"Figures: {os.path.join(workdir, 'figures')}  Report: {os.path.join(workdir, 'report.md')}")


def run_or_report(config, workdir: str, resume_step: int | None = None) -> dict | None:
    """`run`, with a mistake in the input or a fault (`user_errors`) printed as one line `error: …` on stderr (and
    its hint lines): None then."""
    try:
        return run(config, workdir, resume_step)
    except user_errors() as error:
        print(f"error: {error}", file=sys.stderr)
        return None


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with every mistake in a flag or a --config override (a field the config does not have,
    a value of the wrong type) reported in one line and exit status 2, before anything runs."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        message = str(error)
    except (AttributeError, KeyError, TypeError, ValueError) as error:
        message = (
            "a --config override names a field the config does not have, or gives it a value of the wrong type: "
            f"{error}"
        )
    message = " ".join(message.replace("\\n", " ").replace("\n", " ").split()).replace("\\'", "'")
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
