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

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file (experiments/configs/*.py).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and figures.")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None,
    "Multi-host runs: host:port of process 0. Without it, JAX_COORDINATOR_ADDRESS (and JAX_NUM_PROCESSES, "
    "JAX_PROCESS_ID) are read; with neither the run is single-process.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Multi-host runs: the number of processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "Multi-host runs: this process's index.")
flags.mark_flags_as_required(["config", "workdir"])


def run(config, workdir: str) -> dict:
    """Validates `config`, loads its data, trains the family it names in `workdir`; returns the summary.

    `config.family` names the family module (`gen_jax/tasks/<family>.py`, found by `tasks.get`); a non-empty
    `config.experiment` names instead an experiment module (`experiments/<experiment>.py`) whose
    `run(config, dataset, workdir)` trains and compares several runs.
    """
    import jax

    from gen_jax import config as config_lib
    from gen_jax import data, tasks, train

    config_lib.validate_common(config)
    family = tasks.get(config_lib.value_at(config, "family"))
    experiment = None
    if config_lib.value_at(config, "experiment"):
        experiment = _experiment(config.experiment)
    try:
        dataset = data.load_dataset(config.dataset, config.get("data_dir") or None)
    except ValueError as error:  # an unknown name; missing data raises DatasetUnavailableError
        raise config_lib.ConfigError(f"config.dataset: {error}") from None
    if experiment is not None:
        return experiment.run(config, dataset, workdir)
    config_lib.validate_against_data(config, len(dataset.train_images), jax.device_count())
    task = family.make_task(config, dataset)
    train.prepare_workdir(workdir, config.to_dict(), task)
    images = data.preprocess(dataset.train_images, config.binarization)
    return train.train(config, workdir, task, images, dataset.train_labels)


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
        raise config_lib.ConfigError(f"config.experiment: no experiment module experiments/{name}.py with a "
                                     "run(config, dataset, workdir)")
    return module


def user_errors() -> tuple[type[Exception], ...]:
    """The errors that describe a mistake in the input: shown as one message, without a traceback."""
    from gen_jax import checkpoint, config, data, train
    return (config.ConfigError, data.DatasetUnavailableError, train.WorkdirMismatchError,
            checkpoint.CheckpointMismatchError, train.TrainingDivergedError)


def main(argv):
    # Orbax logs every file it writes at INFO; keep the console for progress and errors.
    logging.set_verbosity(logging.WARNING)
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    workdir = os.path.abspath(_WORKDIR.value)
    from gen_jax import sharding
    if sharding.distributed_requested(_COORDINATOR.value):
        sharding.initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    try:
        summary = run(_CONFIG.value, workdir)
    except user_errors() as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print("summary:", ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items()))
    print(f"Figures: {os.path.join(workdir, 'figures')}  Report: {os.path.join(workdir, 'report.md')}")


if __name__ == "__main__":
    app.run(main)
