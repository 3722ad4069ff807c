"""The experiment contract: one command for every model family.

    python -m experiments.main --config experiments/configs/<name>.py --workdir <dir> [--config.<key>=<value> …]

<dir> receives config.json (the resolved config), model.json (what a checkpoint must match), metrics.jsonl,
tensorboard/, summary.json, figures/*.png, report.md / index.html and checkpoints/.  Running the same command
again resumes from the newest checkpoint.  Mistakes in the config, missing data and a workdir holding another
model's run are reported before any compute, and nothing in the workdir is changed by them.
"""

from __future__ import annotations

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
    """Validates `config`, loads its data, trains the family it names in `workdir`; returns the summary."""
    import jax

    from gen_jax import config as config_lib
    from gen_jax import data, train
    from gen_jax.tasks import ae, classifier, gan, vae

    from experiments import ae_vs_pca

    families = {"vae": vae.make_task, "ae": ae.make_task, "gan": gan.make_task, "classifier": classifier.make_task}
    # Experiments that train several families and compare them: (config, dataset, workdir) -> summary.
    comparisons = {"ae_vs_pca": ae_vs_pca.run}
    config_lib.validate_common(config)
    config_lib.require_fields(config, ("model",))
    config_lib.require_choice(config, "model", [*families, *comparisons])
    try:
        dataset = data.load_dataset(config.dataset, config.get("data_dir") or None)
    except ValueError as error:  # an unknown name; missing data raises DatasetUnavailableError
        raise config_lib.ConfigError(f"config.dataset: {error}") from None
    if config.model in comparisons:
        return comparisons[config.model](config, dataset, workdir)
    config_lib.validate_against_data(config, len(dataset.train_images), jax.device_count())
    task = families[config.model](config, dataset)
    train.prepare_workdir(workdir, config.to_dict(), task)
    images = data.preprocess(dataset.train_images, config.get("binarization", "none"))
    return train.train(config, workdir, task, images, dataset.train_labels)



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
