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
flags.mark_flags_as_required(["config", "workdir"])


def run(config, workdir: str) -> dict:
    """Validates `config`, loads its data, trains the family it names in `workdir`; returns the summary."""
    import jax

    from gen_jax import config as config_lib
    from gen_jax import data, train
    from gen_jax.tasks import vae

    families = {"vae": vae.make_task}
    config_lib.validate_common(config)
    config_lib.require_fields(config, ("model",))
    config_lib.require_choice(config, "model", families)
    dataset = data.load_dataset(config.dataset, config.get("data_dir") or None)
    config_lib.validate_against_data(config, len(dataset.train_images))
    task = families[config.model](config, dataset)
    train.prepare_workdir(workdir, config.to_dict(), task)
    images = jax.device_put(data.preprocess(dataset.train_images, config.get("binarization", "none")))
    labels = jax.device_put(dataset.train_labels)
    return train.train(config, workdir, task, images, labels)



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
    try:
        summary = run(_CONFIG.value, workdir)
    except user_errors() as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print("summary:", ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items()))
    print(f"Figures: {os.path.join(workdir, 'figures')}  Report: {os.path.join(workdir, 'report.md')}")


if __name__ == "__main__":
    app.run(main)
