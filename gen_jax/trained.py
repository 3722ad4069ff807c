"""Using a trained run: rebuild its model from <run>/config.json and restore its newest checkpoint, read-only.

For work done after training — latent edits (`experiments/edit.py`), embeddings compared across runs
(`experiments/ae_vs_pca.py`) — on runs written by `experiments/main.py` of a family with a latent code.
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

    encode: f32[B, H, W, C] -> codes f32[B, D] (the AutoEncoder's code, the VAE's posterior mean).
    decode: f32[B, D] -> images f32[B, H, W, C] in [0, 1] (the decoder's mean).
    params: the restored parameters the run evaluates with (its EMA when it kept one), e.g. for reading a
      linear decoder's weights.
    train_images, test_images: preprocessed as in training (binarised when the run binarised).
    """

    workdir: str
    config: ml_collections.ConfigDict
    dataset: data.Dataset
    step: int
    encode: Callable
    decode: Callable
    params: dict
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
    with open(config_path) as f:
        stored = json.load(f)
    family = tasks.get(stored.get("family") or stored.get("model"))
    if "family" in stored:
        config = config_lib.new_config(stored)
    else:  # written before configs were nested
        if stored.get("model") == "vae" and "ema_decay" not in stored:
            stored["ema_decay"] = 0.0  # written before VAEs kept a parameter EMA: its checkpoints hold none
        config = config_lib.from_legacy(stored, family.default_config())
    if dataset is None:
        dataset = data.load_dataset(config.dataset, config.get("data_dir") or None)
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
    # Dynamic binarisation samples around the grey values, whose mean image is the grey image itself.
    binarization = "static" if config.binarization == "static" else "none"
    return TrainedRun(
        workdir=workdir,
        config=config,
        dataset=dataset,
        step=step,
        encode=encode,
        decode=decode,
        params=state.inference_params() if hasattr(state, "inference_params") else state.params,
        train_images=data.preprocess(dataset.train_images, binarization),
        test_images=test_images,
    )
