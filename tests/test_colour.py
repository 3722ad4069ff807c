"""Colour models at 32, 64 and 128 px, `config.image_size`, and training on a prepared directory (issue 28).

The conv VAE and the DCGAN / hinge + SN networks take their depth from the image size when their widths are left
empty; the networks of today's configs (8×8 digits, 28×28 Fashion-MNIST) are unchanged, bit for bit: their initial
states' digests are kept in tests/data/param_trees.json (`python -m tests.test_colour` rewrites it, for a change that
means to alter them).
"""

import contextlib
import hashlib
import importlib
import json
import os
import pkgutil
import re
import sys
from unittest import mock

import jax
import numpy as np
import PIL.Image
import pytest

from experiments import main as experiments_main
from experiments.configs import (
    cdcgan_hinge_sn_cifar10,
    dcgan_celeb_a,
    dcgan_cifar10,
    dcgan_openclipart,
    vae_conv_cifar10,
    vae_conv_openclipart,
)
from gen_jax import data, keys, tasks
from gen_jax.models import sizing
from tests.conftest import override, train_run

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


# --- colour networks at 32, 64 and 128 px -------------------------------------------------------------------------

_COLOUR_CONFIGS = {
    "vae": vae_conv_cifar10.get_config,
    "dcgan": dcgan_cifar10.get_config,
    "cdcgan_hinge_sn": cdcgan_hinge_sn_cifar10.get_config,
}


def tiny(config, **overrides):
    """A colour config at tiny widths, batch 4 and 2 steps, evaluated once, no figures or sample quality."""
    common = dict(batch_size=4, num_steps=2, log_every=1, eval_every=2, checkpoint_every=2, write_figures=False)
    common.update(model__conv_width=2, **({"sample_quality__enabled": False} if "sample_quality" in config else {}))
    if config.family == "vae":
        common.update(model__conv_hidden=8, model__latent_dim=2, iwae_k=0, eval_batch_size=4)
    else:
        common.update(model__latent_dim=4, eval_num_samples=4, snapshot_samples=4)
    return override(config, **{**common, **overrides})


def random_dataset(name: str, side: int, channels: int = 3, num_classes: int = 3, count: int = 8) -> data.Dataset:
    """`count` uniform random images f32[side, side, channels] per split, labels cycling through the classes."""
    rng = np.random.default_rng(side)
    images = rng.uniform(size=(count, side, side, channels)).astype(np.float32)
    labels = (np.arange(count) % num_classes).astype(np.int32)
    return data.Dataset(name, images, labels, images, labels, num_classes, tuple(f"c{c}" for c in range(num_classes)))


@pytest.mark.parametrize("side", sizing.SIZES)
@pytest.mark.parametrize("channels", [1, 3])
def test_depth_follows_the_image_size(side, channels):
    """Empty widths give one stride-2 level per halving down to a 4×4 map, widths w·(1, 2, 4, 8, 8, …), and a last
    layer with the data's channels (training, below, checks the output against the images)."""
    levels = {32: 3, 64: 4, 128: 5}[side]
    dataset = random_dataset("colour", side, channels)
    widest = sizing.widths(2, levels)[-1]
    for family, get_config in _COLOUR_CONFIGS.items():
        config = tiny(get_config())
        task = tasks.get(config.family).make_task(config, dataset)
        state = jax.eval_shape(task.init_state, keys.stream(0, "init"))
        if family == "vae":
            encoder, decoder = state.params["encoder"], state.params["decoder"]
            assert tuple(encoder[f"Conv_{i}"]["kernel"].shape[-1] for i in range(levels)) == sizing.widths(2, levels)
            assert f"Conv_{levels}" not in encoder and encoder["Dense_0"]["kernel"].shape[0] == 4 * 4 * widest
            assert decoder[f"ConvTranspose_{levels - 1}"]["kernel"].shape[-1] == channels
        else:
            g, d = state.g_params, state.d_params
            assert g["Dense_0"]["kernel"].shape[-1] == 4 * 4 * sizing.widths(2, levels + 1)[-1]
            assert g[f"ConvTranspose_{levels}"]["kernel"].shape[-1] == channels
            convs = [name for name in d if name.startswith("Conv_")]
            assert len(convs) == levels and d["Dense_0"]["kernel"].shape[0] == 4 * 4 * widest


@pytest.mark.parametrize("family", sorted(_COLOUR_CONFIGS))
@pytest.mark.parametrize("side", sizing.SIZES)
def test_each_size_trains(tmp_path, family, side):
    """The conv VAE, the DCGAN and the conditional hinge + SN DCGAN train two steps at each size, through the loop."""
    config = tiny(_COLOUR_CONFIGS[family]())
    summary = train_run(config, random_dataset("colour", side), tmp_path)
    assert os.path.isdir(tmp_path / "checkpoints" / "2")
    assert all(np.isfinite(v) for v in jax.tree.leaves(summary) if isinstance(v, float))


# --- TFDS colour data sets (tfds.testing.mock_data) ----------------------------------------------------------------


@contextlib.contextmanager
def mock_tfds(num_examples: int):
    """tfds.testing.mock_data (random examples, offline), the data set reported prepared in array_record with a train
    and a test split, so that `data.load_dataset` reads it through its ordinary path."""
    import tensorflow_datasets as tfds

    split = mock.Mock(filepaths=[])
    info = "tensorflow_datasets.core.dataset_info.DatasetInfo"
    array_record = tfds.core.FileFormat.ARRAY_RECORD
    with (
        tfds.testing.mock_data(num_examples=num_examples, policy=tfds.testing.MockPolicy.USE_CODE),
        mock.patch.object(tfds.core.DatasetBuilder, "is_prepared", return_value=True),
        mock.patch(f"{info}.file_format", new_callable=mock.PropertyMock, return_value=array_record),
        mock.patch(f"{info}.splits", new_callable=mock.PropertyMock, return_value={"train": split, "test": split}),
        # mock_data's own batch read fails (it sets __getitems__ on a MagicMock, unbound): read its rows one by one.
        mock.patch.object(
            tfds.core.data_sources.base.BaseDataSource, "__getitems__", lambda self, keys: [self[k] for k in keys]
        ),
    ):
        yield


def test_crop_size_keeps_the_centred_square_before_resizing():
    """CelebA's crop: only the centred crop × crop square reaches the resized image."""
    image = np.ones((218, 178, 3), np.float32)
    image[55:163, 35:143] = 0.0  # the centred 108 × 108 square
    np.testing.assert_array_equal(data.center_crop_resize(image, 64, crop=108), np.zeros((64, 64, 3), np.float32))
    assert data.center_crop_resize(image, 64).max() == 1.0  # the largest square (178 px) holds the border


@pytest.mark.parametrize(
    "get_config, image_shape",
    [
        (vae_conv_cifar10.get_config, (32, 32, 3)),
        (cdcgan_hinge_sn_cifar10.get_config, (32, 32, 3)),
        (dcgan_celeb_a.get_config, (64, 64, 3)),
    ],
)
def test_tfds_colour_configs_train(tmp_path, get_config, image_shape):
    """cifar10 (32×32×3, 10 classes) and celeb_a (218×178×3, cropped to its centred 108 px square and resized to 64)
    come in at the configs' shapes and train a few steps from the command line's path."""
    config = tiny(get_config())
    with mock_tfds(num_examples=8):
        assert data.configured_dataset(config).image_shape == image_shape
        experiments_main.run(config, str(tmp_path))
    assert os.path.isdir(tmp_path / "checkpoints" / "2")


# --- a prepared directory -------------------------------------------------------------------------------------------


def _image_folder(root, side: tuple[int, int] = (40, 48)):
    """Two class folders of 12 random RGB PNGs each, `side` (H, W) pixels."""
    rng = np.random.default_rng(0)
    for name in ("cats", "dogs"):
        os.makedirs(root / name)
        for i in range(12):
            PIL.Image.fromarray(rng.integers(0, 256, (*side, 3), np.uint8)).save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A prepared directory of 32×32×3 images in two classes, train and test splits."""
    folder = _image_folder(tmp_path_factory.mktemp("images"))
    out = tmp_path_factory.mktemp("prepared") / "set32"
    data.prepare_images(str(folder), str(out), image_size=32, test_fraction=0.25, progress=False)
    return out


def test_a_prepared_directory_loads_whole_as_its_pixels(prepared):
    dataset = data.load_dataset(str(prepared))
    train, test = data.PreparedSource(str(prepared), "train"), data.PreparedSource(str(prepared), "test")
    images, labels = train.read(np.arange(len(train)))
    assert dataset.class_names == ("cats", "dogs") and dataset.num_classes == 2
    assert dataset.train_images.dtype == np.float32 and len(dataset.test_images) == len(test)
    np.testing.assert_array_equal(dataset.train_images, images.astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(dataset.train_labels, labels)
    assert dataset.store_name == f"prepared_{train.fingerprint[:16]}"


def test_a_large_prepared_split_is_held_as_a_sample_and_trained_whole(tmp_path, prepared, monkeypatch, capsys):
    """Beyond HOST_SAMPLE_BYTES a split is held in memory as the fixed sample `host_sample_rows` names (evaluation,
    scores, figures), while the command trains on every row: a batch larger than the sample is accepted and said
    once.  A sweep, which holds its training split on the device, is refused in one line, nothing written."""
    from experiments import sweep as experiments_sweep

    train, test = data.PreparedSource(str(prepared), "train"), data.PreparedSource(str(prepared), "test")
    monkeypatch.setattr(data.sources, "HOST_SAMPLE_BYTES", (len(train) + len(test)) * 32 * 32 * 3 * 4)
    assert not data.load_dataset(str(prepared)).is_sample  # both splits fit: whole
    monkeypatch.setattr(data.sources, "HOST_SAMPLE_BYTES", 10 * 32 * 32 * 3 * 4)  # 10 images of 32×32×3 as f32
    assert data.host_sample_sizes(len(train), len(test), train.image_shape) == (5, 5) and len(test) > 5
    dataset = data.load_dataset(str(prepared))
    rows = data.host_sample_rows(len(train), 5)
    assert len(rows) == 5 < len(train) and np.all(np.diff(rows) > 0) and rows.max() < len(train)
    np.testing.assert_array_equal(rows, data.host_sample_rows(len(train), 5))  # fixed
    images, labels = train.read(rows)
    np.testing.assert_array_equal(dataset.train_images, data.unit_pixels(images, train.pixel_max))
    np.testing.assert_array_equal(dataset.train_labels, labels)
    assert dataset.is_sample and dataset.num_train == len(train) and len(dataset.test_images) == 5
    config = tiny(vae_conv_openclipart.get_config(), dataset=str(prepared), batch_size=8, placement="stream")
    capsys.readouterr()
    experiments_main.run(config, str(tmp_path / "run"))
    assert f"training reads all {len(train)} training images" in capsys.readouterr().out
    assert os.path.isdir(tmp_path / "run" / "checkpoints" / "2")
    with pytest.raises(experiments_main.user_errors()[0], match="more than the 5 held in memory"):
        experiments_sweep.run(config, str(tmp_path / "sweep"), ["seed=0,1"], show_progress=False)
    assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize(
    "get_config, overrides",
    [(vae_conv_openclipart.get_config, {}), (dcgan_openclipart.get_config, {"model__conditional": True})],
)
def test_a_prepared_directory_trains(tmp_path, prepared, get_config, overrides):
    """`--config.dataset=<prepared directory>` trains (the openclipart configs, on a tiny prepared folder)."""
    config = tiny(get_config(), dataset=str(prepared), **overrides)
    experiments_main.run(config, str(tmp_path / "run"))
    assert os.path.isdir(tmp_path / "run" / "checkpoints" / "2")


# --- bad input: one line, nothing written ---------------------------------------------------------------------------


def _damaged_copies(prepared, root):
    """(a copy without its sidecar, a copy with a shard cut short) of the prepared directory."""
    import shutil

    no_sidecar, cut = root / "no_sidecar", root / "cut"
    shutil.copytree(prepared, no_sidecar)
    os.remove(no_sidecar / data.PREPARED_SIDECAR)
    shutil.copytree(prepared, cut)
    with open(cut / "train-00000.array_record", "r+b") as f:
        f.truncate(100)
    return str(no_sidecar), str(cut)


def test_bad_input_is_one_line_and_writes_nothing(tmp_path, prepared, capsys):
    no_sidecar, cut = _damaged_copies(prepared, tmp_path)
    vae, gan = vae_conv_openclipart.get_config, dcgan_openclipart.get_config
    cases = [
        (vae, {"dataset": no_sidecar}, "has no prepared.json"),
        (gan, {"dataset": cut}, "shard train-00000.array_record has 100 bytes"),
        (vae, {"dataset": str(tmp_path / "nowhere" / "set")}, "does not exist: make it with"),
        (vae, {"dataset": "digits"}, r"conv_features=\(\) .* 32, 64 or 128 px; the images are 8×8"),
        (gan, {"dataset": "digits"}, r"config.model.g_features=\(\) .* 32, 64 or 128 px; digits images are 8×8"),
        (vae, {"dataset": str(prepared), "image_size": 64}, "prepared at 32×32 and image_size=64"),
        (vae, {"dataset": str(prepared), "image_size": -1}, "config.image_size must be an integer >= 0"),
        (gan, {"dataset": "cifar10", "image_size": 0}, "config.crop_size=108 crops before resizing"),
    ]
    for get_config, overrides, match in cases:
        config = tiny(get_config(), **overrides)
        if match.startswith("config.crop_size"):
            config.crop_size = 108
        capsys.readouterr()
        assert experiments_main.run_or_report(config, str(tmp_path / "run")) is None
        error = capsys.readouterr().err
        assert error.startswith("error: ") and error.count("\n") == 1, error
        assert re.search(match, error), (match, error)
        assert not (tmp_path / "run").exists()


if __name__ == "__main__":
    with open(REFERENCE, "w") as f:
        json.dump(initial_state_digests(), f, indent=1, sort_keys=True)
        f.write("\n")
    sys.exit(0)
