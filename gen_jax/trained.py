"""Using a trained run: rebuild its model from <run>/config.json and restore its newest checkpoint, read-only.

For work done after training — latent edits (`experiments/edit.py`), embeddings compared across runs
(`experiments/ae_vs_pca.py`), the explorer and the ONNX export (`experiments/explore.py`, `experiments/export.py`)
— on runs written by `experiments/main.py` of a family with a latent code (`train.Task.codec`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable

import jax
import ml_collections
import numpy as np

from gen_jax import checkpoint, data, keys, tasks
from gen_jax import config as config_lib


@dataclasses.dataclass(frozen=True)
class TrainedRun:
    """A trained run's model as two functions, and the data as the model sees it.

    encode: (images f32[B, H, W, C], labels i32[B] | None = None) -> codes f32[B, D] (the AutoEncoder's code, the
      VAE's posterior mean); None for a family with no encoder (GAN).
    decode: (codes f32[B, D], labels i32[B] | None = None) -> images f32[B, H, W, C] in [0, 1] (the decoder's
      mean, the EMA generator).  Both follow `train.Task.codec`.
    latent_dim: D, the size of a code.
    conditional: whether decode needs labels (cVAE, conditional GAN): it raises ValueError without them.
    params: the restored parameters the run evaluates with (its EMA when it kept one), e.g. for reading a
      linear decoder's weights; None for a state without one parameter tree (the GAN's two networks).
    train_images, test_images: preprocessed as in training (binarised when the run binarised).
    """

    workdir: str
    config: ml_collections.ConfigDict
    dataset: data.Dataset
    step: int
    encode: Callable | None
    decode: Callable
    latent_dim: int
    conditional: bool
    params: dict | None
    train_images: np.ndarray
    test_images: np.ndarray


def load_run(workdir: str, dataset: data.Dataset | None = None) -> TrainedRun:
    """Rebuilds the model of the run in `workdir` and restores its newest checkpoint.

    Args:
      workdir: a run directory written by `experiments/main.py`.
      dataset: the run's data set when the caller has it loaded already; read from the run's config otherwise.

    Raises:
      FileNotFoundError: no config.json or no checkpoint there.
      ConfigError: not a run of a family with a latent code (`Task.codec`), or `dataset` is not the run's.
    """
    config_path = os.path.join(workdir, "config.json")
    if not os.path.isfile(config_path):
        raise FileNotFoundError(
            f"{config_path} does not exist: the run directory must be one written by python -m experiments.main"
        )
    with open(config_path, "rb") as f:
        try:
            stored = json.loads(f.read())
        except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
            raise config_lib.ConfigError(
                f"{config_path} is not valid JSON ({error}); the run config is damaged"
            ) from None
    if not isinstance(stored, dict):
        raise config_lib.ConfigError(f"{config_path} holds a {type(stored).__name__}, not a run's config")
    if config_lib.is_flat(stored):
        raise config_lib.ConfigError(config_lib.flat_run_message(config_path))
    family = tasks.get(stored.get("family"))
    defaults = config_lib.plain(family.default_config())  # fields added since the run was written
    config = config_lib.new_config(config_lib.with_defaults(config_lib.with_added_fields(stored), defaults))
    if dataset is None:
        dataset = data.configured_dataset(config)
    elif dataset.name != config.dataset:
        raise config_lib.ConfigError(f"{workdir} was trained on {config.dataset!r}, not on {dataset.name!r}")
    task = family.make_task(config, dataset)
    if task.codec is None:
        raise config_lib.ConfigError(
            f"{config_path}: family {config.family!r} has no latent code (its task has no codec); use a run of a "
            "family with one, such as ae or vae"
        )
    # Jitted: one compilation instead of one per initialiser op; only the structure matters, the values are replaced.
    template = jax.jit(task.init_state)(keys.stream(config.seed, "init"))
    state, step = checkpoint.restore_latest(os.path.join(workdir, "checkpoints"), template)
    encode, decode = task.codec(state)
    # The same fixed key as the task's own test set, so a dynamically binarised run sees the same test images.
    test_images = data.test_images(config, dataset)
    if encode is None:
        latent_dim = int(config.model.latent_dim)
    else:
        latent_dim = int(encode(test_images[:1], np.asarray(dataset.test_labels[:1], np.int32)).shape[-1])
    conditional = needs_labels(decode, latent_dim)
    # Dynamic binarisation samples around the grey values, whose mean image is the grey image itself.
    binarization = "static" if config.binarization == "static" else "none"
    return TrainedRun(
        workdir=workdir,
        config=config,
        dataset=dataset,
        step=step,
        encode=encode,
        decode=decode,
        latent_dim=latent_dim,
        conditional=conditional,
        params=state.inference_params() if hasattr(state, "inference_params") else getattr(state, "params", None),
        train_images=data.preprocess(dataset.train_images, binarization),
        test_images=test_images,
    )


def needs_labels(decode: Callable, latent_dim: int) -> bool:
    """Whether `decode` (`train.Task.codec`'s) is conditional: it raises ValueError when called without labels."""
    try:
        decode(np.zeros((1, latent_dim), np.float32))
    except ValueError:
        return True
    return False
