"""Latent editing with a trained run of a family with an encoder: AE, VAE, cVAE, … ("make only the eyes bigger").

    python -m experiments.edit --workdir <run> --attribute <class name | class index | CelebA attribute>
        [--alphas=-2,-1,-0.5,0,0.5,1,2] [--num_images=8] [--max_train_images=20000]

Reads <run>/config.json, rebuilds the model, restores the newest checkpoint in <run>/checkpoints (read-only),
computes the attribute vector on the training split — the mean code of the images that have the attribute minus
the mean code of those that do not (on digits and Fashion-MNIST the attribute is a class) — then moves the codes
of test images that lack the attribute along it with strength α and decodes them.  Writes
<run>/figures/edit_<attribute>.png: one row per test image, one column per α (the α = 0 column is the plain
reconstruction).  The maths is in `gen_jax/editing.py`.
"""

from __future__ import annotations

import os
import re
import sys

import numpy as np
from absl import app, flags, logging

from gen_jax import data, editing, figures, latent
from gen_jax.trained import TrainedRun, load_run


def resolve_attribute(dataset: data.Dataset, attribute: str) -> tuple[str, np.ndarray, np.ndarray]:
    """Which images have `attribute`.

    Args:
      dataset: the run's data set.
      attribute: a CelebA attribute name, a class name or a class index (as text).

    Returns:
      (name, bool[N_train], bool[N_test]): the attribute's name and, per training and test image, whether it has it.

    Raises:
      ValueError: naming the allowed attributes and class indices, when `attribute` is none of them.
    """
    if attribute in dataset.attribute_names:
        column = dataset.attribute_names.index(attribute)
        return attribute, dataset.train_attributes[:, column], dataset.test_attributes[:, column]
    if attribute in dataset.class_names:
        index = dataset.class_names.index(attribute)
    elif attribute.isdigit() and int(attribute) < dataset.num_classes:
        index = int(attribute)
    else:
        allowed = ", ".join(map(repr, dataset.attribute_names + dataset.class_names))
        raise ValueError(
            f"--attribute {attribute!r} is not an attribute of {dataset.name}; choose one of {allowed} "
            f"or a class index in 0..{dataset.num_classes - 1}"
        )
    return dataset.class_names[index], dataset.train_labels == index, dataset.test_labels == index


def edit_figure(run: TrainedRun, attribute: str, alphas: list[float], num_images: int, max_train_images: int) -> str:
    """Writes <workdir>/figures/edit_<attribute>.png for `run` (see the module docstring).

    Args:
      run: a trained run of a family with an encoder (`load_run`); a conditional one decodes each row under its
        image's own label.
      attribute: as `resolve_attribute` takes it.
      alphas: edit strengths α, one column each, in multiples of the attribute vector.
      num_images: test images without the attribute to edit, one row each.
      max_train_images: the first this many training images give the attribute vector.

    Returns:
      The path of the figure written.
    """
    if run.encode is None:
        raise ValueError(f"{run.workdir}: a {run.config.family} run has no encoder; editing needs one (ae, vae, …)")
    name, train_has, test_has = resolve_attribute(run.dataset, attribute)
    train_labels = run.dataset.train_labels[:max_train_images].astype(np.int32)
    codes = latent.encode_in_batches(run.encode, run.train_images[:max_train_images], labels=train_labels)
    vector = editing.attribute_vector(codes, train_has[:max_train_images])
    chosen = np.flatnonzero(~test_has)[:num_images]
    labels = run.dataset.test_labels[chosen].astype(np.int32)
    rows = editing.edit_rows(
        lambda x: run.encode(x, labels),
        lambda z: run.decode(z, np.repeat(labels, len(alphas))),  # edit_rows decodes row by row, α fastest
        run.test_images[chosen],
        vector,
        alphas,
    )
    labels = [run.dataset.class_names[label] for label in run.dataset.test_labels[chosen]]
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
    return str(
        figures.save_edit_rows(
            os.path.join(run.workdir, "figures", f"edit_{safe}.png"),
            rows,
            alphas,
            row_labels=labels,
            title=f"{run.config.family} (step {run.step}): code + α·(mean code with '{name}' − mean without)",
        )
    )


def main(argv):
    logging.set_verbosity(logging.WARNING)  # Orbax logs every file it reads at INFO
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    options = flags.FLAGS
    try:
        alphas = [float(a) for a in options.alphas]
    except ValueError:
        raise app.UsageError(f"--alphas must be numbers separated by commas, got {','.join(options.alphas)}") from None
    if options.num_images < 1 or options.max_train_images < 1:
        raise app.UsageError("--num_images and --max_train_images must be positive")
    try:
        run = load_run(os.path.abspath(options.workdir))
        path = edit_figure(run, options.attribute, alphas, options.num_images, options.max_train_images)
    except (FileNotFoundError, ValueError, data.DatasetUnavailableError) as error:
        # ConfigError and CheckpointMismatchError are ValueErrors too.
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(f"Wrote {path}")


def define_flags() -> None:
    # Defined when run as a program, not at import: tests import this module, and so may experiments.main,
    # which has a --workdir of its own.
    flags.DEFINE_string("workdir", None, "A run directory written by experiments.main of a family with an encoder.")
    flags.DEFINE_string("attribute", None, "A class name or index, or a CelebA attribute name.")
    flags.DEFINE_list("alphas", ["-2", "-1", "-0.5", "0", "0.5", "1", "2"], "Edit strengths α.")
    flags.DEFINE_integer("num_images", 8, "Test images (rows) to edit.")
    flags.DEFINE_integer(
        "max_train_images", 20_000, "Training images encoded for the attribute vector (the first ones)."
    )
    flags.mark_flags_as_required(["workdir", "attribute"])


if __name__ == "__main__":
    define_flags()
    app.run(main)
