"""Shared test helpers, in one place: tiny configs that train in a second or two on 2 CPU cores, tree and directory
comparisons, and a run through the loop."""

import hashlib
import json
import os
import struct
import sys

import jax
import numpy as np
import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)


# What a finished VAE run with write_figures draws (the 2-D latent adds the manifold).
VAE_FIGURES = {
    "reconstructions.png",
    "samples.png",
    "latent_scatter.png",
    "manifold.png",
    "interpolations.png",
    "loss_curves.png",
}


def requires_fashion_mnist(test):
    """Skips `test` when Debian's dataset-fashion-mnist is not installed, except where GEN_JAX_REQUIRE_DATA is set
    (CI sets it: there a missing data set fails the test instead of hiding it)."""
    from gen_jax.data import sources

    present = os.path.isdir(sources.FASHION_MNIST_SYSTEM_DIR)
    if present or os.environ.get("GEN_JAX_REQUIRE_DATA"):
        return test
    return pytest.mark.skip(reason="Debian package dataset-fashion-mnist not installed")(test)


def idx_bytes(array: np.ndarray) -> bytes:
    """`array` (uint8) as an IDX file's bytes: the format of the MNIST and Fashion-MNIST files."""
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def override(config, **overrides):
    """Sets each field of the (locked) config; nested fields as `model__hidden=(32,)` (i.e. config.model.hidden).
    A field the config does not define raises, so a misspelt override cannot be silently ignored."""
    from gen_jax import config as config_lib

    for name, value in overrides.items():
        config_lib.set_at(config, name.replace("__", "."), value)
    return config


def tiny_vae_config(**overrides):
    """An MLP VAE on digits small enough that a few hundred steps take about a second."""
    from gen_jax.tasks import vae

    config = vae.default_config()
    config.name = "tiny_vae"
    config.dataset = "digits"
    config.binarization = "dynamic"
    config.model.hidden = (32,)
    config.model.latent_dim = 2
    config.model.conv_features = (8, 16)
    config.model.conv_hidden = 32
    config.batch_size = 32
    config.num_steps = 60
    config.log_every = 10
    config.eval_every = 30
    config.checkpoint_every = 20
    config.keep_checkpoints = 10
    config.eval_batch_size = 200
    config.iwae_k = 10
    config.write_figures = False  # test_train checks the figures once, explicitly
    return override(config, **overrides)


def tiny_ae_config(**overrides):
    """An MLP AutoEncoder on digits small enough that a hundred steps take well under a second."""
    from gen_jax.tasks import ae

    config = ae.default_config()
    config.name = "tiny_ae"
    config.dataset = "digits"
    config.model.hidden = (32,)
    config.model.latent_dim = 4
    config.model.conv_features = (8,)
    config.model.conv_hidden = 16
    config.batch_size = 32
    config.num_steps = 80
    config.log_every = 10
    config.eval_every = 40
    config.checkpoint_every = 40
    config.keep_checkpoints = 5
    config.eval_batch_size = 200
    return override(config, **overrides)


def tiny_gan_config(**overrides):
    """An MLP GAN on digits small enough that a hundred steps take about a second; no sample quality (the
    reference classifier is exercised in test_sample_quality.py)."""
    from gen_jax.tasks import gan

    config = gan.default_config()
    config.name = "tiny_gan"
    config.dataset = "digits"
    config.model.architecture = "mlp"
    config.model.g_hidden = (32,)
    config.model.d_hidden = (32,)
    config.model.latent_dim = 8
    config.batch_size = 32
    config.num_steps = 40
    config.log_every = 10
    config.eval_every = 20
    config.checkpoint_every = 20
    config.eval_num_samples = 50
    config.snapshot_samples = 16
    config.sample_quality.enabled = False
    return override(config, **overrides)


def _leaves_by_path(tree) -> tuple[list[str], list]:
    """The leaves' key paths (e.g. ".params['encoder']['Dense_0']['kernel']") and the leaves: a tree's array
    structure, without the static fields (optimizer, apply_fn) a train state carries."""
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [jax.tree_util.keystr(path) for path, _ in flat], [leaf for _, leaf in flat]


def trees_equal(a, b) -> bool:
    """The same leaves at the same paths, bit for bit (two empty or truncated trees do not compare equal to full
    ones: the paths are compared first)."""
    (paths_a, leaves_a), (paths_b, leaves_b) = _leaves_by_path(a), _leaves_by_path(b)
    if paths_a != paths_b:
        return False
    return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(leaves_a, leaves_b))


def max_abs_difference(a, b) -> float:
    """The largest |a − b| over all leaves of two trees with the same paths (AssertionError otherwise)."""
    (paths_a, leaves_a), (paths_b, leaves_b) = _leaves_by_path(a), _leaves_by_path(b)
    assert paths_a == paths_b and paths_a, (paths_a, paths_b)
    return float(
        max(
            np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)), initial=0.0)
            for x, y in zip(leaves_a, leaves_b)
        )
    )


def snapshot(directory) -> dict:
    """Path -> sha256 of every file under `directory`."""
    digests = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                digests[os.path.relpath(path, directory)] = hashlib.sha256(f.read()).hexdigest()
    return digests


def train_run(config, dataset, workdir, task=None):
    """Trains `config` in `workdir` through the loop (resuming what is there); returns the summary."""
    from gen_jax import data, tasks, train

    task = task or tasks.get(config.family).make_task(config, dataset)
    train.prepare_workdir(str(workdir), config.to_dict(), task)
    images = data.preprocess(dataset.train_images, config.binarization)
    return train.train(
        config, str(workdir), task, jax.device_put(images), jax.device_put(dataset.train_labels), show_progress=False
    )


def read_jsonl(path) -> list[dict]:
    """The records of a JSON-lines file such as a run's metrics.jsonl."""
    with open(path) as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="session")
def straight_run(digits, tmp_path_factory):
    """A tiny AutoEncoder trained through the loop without interruption: (config, workdir, summary, initial mse).
    Session-wide: test_autoencoder.py checks it, test_editing.py edits with it."""
    from gen_jax import keys
    from gen_jax.tasks import ae

    config = tiny_ae_config()
    task = ae.make_task(config, digits)
    initial = task.evaluate(jax.jit(task.init_state)(keys.stream(config.seed, "init")), None)["mse"]
    workdir = tmp_path_factory.mktemp("straight")
    return config, workdir, train_run(config, digits, workdir, task), initial


@pytest.fixture
def vae_config():
    return tiny_vae_config


@pytest.fixture(scope="session")
def digits():
    from gen_jax import data

    return data.load_dataset("digits")
