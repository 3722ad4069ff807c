"""Colour models at 32, 64 and 128 px, `config.image_size`, and training on a prepared directory (issue 28).

The conv VAE and the DCGAN / hinge + SN networks take their depth from the image size when their widths are left
empty; the networks of today's configs (8×8 digits, 28×28 Fashion-MNIST) are unchanged, bit for bit: their initial
states' digests are kept in tests/data/param_trees.json (`python -m tests.test_colour` rewrites it, for a change that
means to alter them).
"""

import hashlib
import importlib
import json
import os
import pkgutil
import sys

import jax
import numpy as np

from gen_jax import data, keys, tasks

REFERENCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "param_trees.json")
_SHAPES = {"digits": (8, 8, 1), "fashion_mnist": (28, 28, 1)}
# Today's configs, and variants of them whose networks no config names (a conv VAE on the 8×8 digits).
_VARIANTS = {"vae_digits+conv": ("vae_digits", {"model.architecture": "conv"})}


def synthetic_dataset(name: str, image_shape, num_classes: int = 10, count: int = 16) -> data.Dataset:
    """A Dataset of `count` grey images of `image_shape` with labels cycling through the classes (parameters depend on
    the shape and the classes only)."""
    images = np.full((count, *image_shape), 0.5, np.float32)
    labels = (np.arange(count) % num_classes).astype(np.int32)
    names = tuple(str(c) for c in range(num_classes))
    return data.Dataset(name, images, labels, images, labels, num_classes, names)


def state_digest(state) -> str:
    """SHA-256 over the key path, dtype, shape and bytes of every leaf of the state's networks (its fields named
    *params* or *batch_stats*: not the optimizer's state or the step): equal digests, equal networks bit for bit."""
    digest = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        field = jax.tree_util.keystr(path[:1])
        if "params" not in field and "batch_stats" not in field:
            continue
        array = np.asarray(leaf)
        digest.update(f"{jax.tree_util.keystr(path)} {array.dtype} {array.shape}".encode() + array.tobytes())
    return digest.hexdigest()


def _todays_configs() -> dict:
    """name -> config of every training config in experiments/configs (and `_VARIANTS`), sample quality off."""
    from experiments import configs
    from gen_jax import config as config_lib

    found = {}
    for module in pkgutil.iter_modules(configs.__path__):
        config_module = importlib.import_module(f"experiments.configs.{module.name}")
        if hasattr(config_module, "get_config"):
            found[module.name] = config_module.get_config()
    for name, (base, overrides) in _VARIANTS.items():
        found[name] = importlib.import_module(f"experiments.configs.{base}").get_config()
        for path, value in overrides.items():
            config_lib.set_at(found[name], path, value)
    configs_by_name = {}
    for name, config in sorted(found.items()):
        if config.get("experiment") or config.dataset not in _SHAPES:
            continue
        if "sample_quality" in config:
            config.sample_quality.enabled = False
        configs_by_name[name] = config
    return configs_by_name


def initial_state_digests() -> dict:
    """name -> `state_digest` of each of today's configs' initial state (init key from its seed)."""
    digests = {}
    for name, config in _todays_configs().items():
        dataset = synthetic_dataset(config.dataset, _SHAPES[config.dataset])
        task = tasks.get(config.family).make_task(config, dataset)
        digests[name] = state_digest(jax.jit(task.init_state)(keys.stream(config.seed, "init")))
    return digests


def test_todays_networks_are_unchanged_bit_for_bit():
    with open(REFERENCE) as f:
        reference = json.load(f)
    assert initial_state_digests() == reference


if __name__ == "__main__":
    with open(REFERENCE, "w") as f:
        json.dump(initial_state_digests(), f, indent=1, sort_keys=True)
        f.write("\n")
    sys.exit(0)
