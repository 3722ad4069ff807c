"""Shared test helpers, in one place: tiny configs that train in a second or two on 2 CPU cores, tree and directory
comparisons, and a run through the loop."""

import atexit
import hashlib
import json
import os
import shutil
import struct
import sys
import tempfile

import numpy as np
import pytest


def _share_compilations() -> None:
    """One persistent compilation cache for the whole test session: its processes (pytest-xdist's workers, the
    subprocesses that the kill, resume and multi-device tests start) compile a program that another has compiled
    once, not again.  The directory is made by the first process, handed on through the environment (before jax is
    imported, so that jax reads it) and removed when that process ends; a directory the user set is kept."""
    if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
        directory = tempfile.mkdtemp(prefix="gen_jax_test_compilations_")
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        os.environ["JAX_COMPILATION_CACHE_DIR"] = directory
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")


_share_compilations()

import jax  # noqa: E402  (after the cache's environment)

jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])  # were jax imported before

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


OPENCLIPART_DIR = "/usr/share/openclipart/png"  # Debian's openclipart-png


def requires_openclipart(test):
    """Skips `test` when Debian's openclipart-png is not installed, except where GEN_JAX_REQUIRE_DATA is set (CI)."""
    if os.path.isdir(OPENCLIPART_DIR) or os.environ.get("GEN_JAX_REQUIRE_DATA"):
        return test
    return pytest.mark.skip(reason="Debian package openclipart-png not installed")(test)


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


def tiny_wae_config(**overrides):
    """An MLP Wasserstein AutoEncoder on digits (the template family) small enough that 40 steps take a second."""
    from experiments.configs import wae_digits

    config = wae_digits.get_config()
    config.name = "tiny_wae"
    config.model.hidden = (32,)
    config.model.latent_dim = 4
    config.batch_size = 32
    config.num_steps = 40
    config.log_every = 10
    config.eval_every = 20
    config.checkpoint_every = 20
    config.keep_checkpoints = 5
    config.eval_batch_size = 200
    config.write_figures = False
    config.sample_quality.enabled = False  # the evaluator is test_sample_quality's
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


def kill_after_checkpoint(command: list[str], workdir, step: int, timeout: float = 180) -> int:
    """Runs `command` (in the repository root, its own process group) until `workdir/checkpoints` holds a checkpoint
    at `step` or later, then SIGKILLs the group; returns the newest checkpoint's step.  Fails if the command ends
    first."""
    import signal
    import subprocess
    import time

    checkpoints = os.path.join(str(workdir), "checkpoints")
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.time() + timeout
        while time.time() < deadline and process.poll() is None:
            saved = os.listdir(checkpoints) if os.path.isdir(checkpoints) else []
            if any(name.isdigit() and int(name) >= step for name in saved):
                break
            time.sleep(0.05)
        assert process.poll() is None, "the command finished before it could be killed; make it longer"
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    return max(int(name) for name in os.listdir(checkpoints) if name.isdigit())


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


# Tiny runs of every family with a latent code (train.Task.codec): the explorer and export tests use them.
_CANDIDATE_ARCHITECTURES = ("mlp", "conv", "dcgan")
_SMALL_WIDTHS = {  # set where a config has the field: small convolutions, whatever the family
    "model.conv_features": (8, 16),
    "model.conv_hidden": 16,
    "model.g_features": (16, 8),
    "model.d_features": (8,),
}
_SMALL_BUDGET = {  # 30 steps: enough for a decoder whose image moves with z; one evaluation, one checkpoint
    **{name: 30 for name in ("num_steps", "log_every", "eval_every", "checkpoint_every")},
    "write_figures": False,
    "iwae_k": 0,
    "sample_quality.enabled": False,
    "vq_steps": 20,  # the VQ-VAE's first stage; its prior trains on the remaining steps
}


def _has_field(config, dotted: str) -> bool:
    node = config
    for part in dotted.split("."):
        if not hasattr(node, "keys") or part not in node:
            return False
        node = node[part]
    return True


def tiny_config(family: str, architecture: str | None = None):
    """A config of `family` that trains a few steps on digits in seconds: conftest's tiny_<family>_config when
    there is one, else the family's default config on digits; with `architecture` (model.architecture) and small
    convolution widths where the config has those fields."""
    from gen_jax import config as config_lib
    from gen_jax import tasks

    maker = globals().get(f"tiny_{family}_config")
    if maker is not None:
        config = maker()
    else:
        config = tasks.get(family).default_config()
        config.dataset, config.batch_size, config.eval_batch_size = "digits", 32, 200
    for name, value in {**_SMALL_BUDGET, **_SMALL_WIDTHS}.items():
        if _has_field(config, name):
            config_lib.set_at(config, name, value)
    if architecture is not None:
        config_lib.set_at(config, "model.architecture", architecture)
    return config


def _builds(config, dataset) -> bool:
    from gen_jax import config as config_lib
    from gen_jax import tasks

    try:
        return tasks.get(config.family).make_task(config, dataset).codec is not None
    except config_lib.ConfigError:
        return False


_codec_variants = None


def codec_variants() -> list[tuple[str, str | None]]:
    """(family, architecture) for every family in `tasks.names()` whose task has a codec, and every value of
    model.architecture among mlp / conv / dcgan that its config accepts (None: a family without the field).
    Families merged later are covered without editing this list."""
    global _codec_variants
    if _codec_variants is None:
        from gen_jax import data, tasks

        dataset = data.load_dataset("digits")
        found = []
        for family in tasks.names():
            config = tiny_config(family)
            if not _has_field(config, "model.architecture"):  # a config error here is a bug of the tiny config
                found += [(family, None)] if tasks.get(family).make_task(config, dataset).codec is not None else []
                continue
            found += [(family, a) for a in _CANDIDATE_ARCHITECTURES if _builds(tiny_config(family, a), dataset)]
        _codec_variants = found
    return _codec_variants


def variant_id(variant) -> str:
    family, architecture = variant
    return family if architecture is None else f"{family}-{architecture}"


def write_initial_run(config, dataset, workdir) -> None:
    """Writes in `workdir` what the loop writes before its first step: model.json, config.json and a checkpoint of
    the initial state at step 0.  A run to load (`trained.load_run`) without compiling a train step, which for the
    convolutional models costs far more than the tests that only read the run."""
    from gen_jax import checkpoint, keys, tasks, train

    task = tasks.get(config.family).make_task(config, dataset)
    train.prepare_workdir(str(workdir), config.to_dict(), task)
    with open(os.path.join(workdir, "config.json"), "w") as f:
        json.dump(config.to_dict(), f)
    manager = checkpoint.make_manager(os.path.join(workdir, "checkpoints"))
    checkpoint.save(manager, 0, jax.jit(task.init_state)(keys.stream(config.seed, "init")))
    manager.wait_until_finished()
    manager.close()


@pytest.fixture(scope="session")
def tiny_run_dir(digits, tmp_path_factory):
    """tiny_run_dir(family, architecture, trained=False) -> the workdir of a tiny run of that variant
    (`tiny_config`), made once per session and shared by every test that asks for it: trained a few steps through
    the loop when `trained`, else at step 0 (`write_initial_run`)."""
    made = {}

    def get(family: str, architecture: str | None = None, trained: bool = False) -> str:
        key = (family, architecture, trained)
        if key not in made:
            workdir = tmp_path_factory.mktemp(variant_id((family, architecture)))
            config = tiny_config(family, architecture)
            if trained:
                train_run(config, digits, workdir)
            else:
                write_initial_run(config, digits, workdir)
            made[key] = str(workdir)
        return made[key]

    return get


@pytest.fixture(scope="session")
def tiny_trained_run(tiny_run_dir, digits):
    """tiny_trained_run(family, architecture, trained=False) -> `trained.load_run` of `tiny_run_dir`'s run, loaded
    once per session (restoring and compiling a run costs more than the tests that use it)."""
    from gen_jax import trained as trained_lib

    loaded = {}

    def get(family: str, architecture: str | None = None, trained: bool = False):
        key = (family, architecture, trained)
        if key not in loaded:
            loaded[key] = trained_lib.load_run(tiny_run_dir(family, architecture, trained), digits)
        return loaded[key]

    return get


def pytest_collection_modifyitems(items):
    """The tests marked slow run first (in their files' order): pytest-xdist's workers (`make test` runs
    `pytest -n auto`) then start on the long tests together instead of one worker ending the session on them."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
