"""Specifications for gen_jax/data/sources.py and its readers (dataset.py, fashion_mnist.py, tfds_source.py): named
data sets -> arrays, and the package's public names."""

import gzip
import importlib
import io
import os
import pkgutil
import time
import types

import numpy as np
import PIL.Image
import pytest
import tensorflow_datasets as tfds

from gen_jax import data
from gen_jax.data import sources

from conftest import idx_bytes, requires_fashion_mnist

# --- tiny TFDS data sets, prepared into a temporary data_dir -----------------------------------


def _png(image: np.ndarray) -> bytes:
    # TFDS encodes numpy images with TensorFlow; handing it PNG bytes lets it prepare without TF.
    buf = io.BytesIO()
    PIL.Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image).save(buf, format="PNG")
    return buf.getvalue()


def _digit_like(i: int) -> np.ndarray:
    """u8[6, 4, 1]: row r holds 40 * r + i, so both the example and the crop are recognisable."""
    return 40 * np.arange(6, dtype=np.uint8)[:, None, None] + i + np.zeros((6, 4, 1), np.uint8)


class GenJaxTestImages(tfds.core.GeneratorBasedBuilder):
    """Labelled grey images with train and test splits, like mnist."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(6, 4, 1)),
                    "label": tfds.features.ClassLabel(names=["a", "b", "c"]),
                }
            ),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(5, 0), "test": self._generate_examples(3, 100)}

    def _generate_examples(self, n, offset):
        for i in range(n):
            yield i, {"image": _png(_digit_like(offset + i)), "label": i % 3}


class GenJaxTestFaces(tfds.core.GeneratorBasedBuilder):
    """Unlabelled colour images with binary attributes and no test split, like celeb_a."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(6, 4, 3)),
                    "attributes": tfds.features.FeaturesDict({"Smiling": np.bool_, "Young": np.bool_}),
                }
            ),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(4), "validation": self._generate_examples(2)}

    def _generate_examples(self, n):
        for i in range(n):
            image = np.full((6, 4, 3), [50 * i, 100, 255], np.uint8)
            yield i, {"image": _png(image), "attributes": {"Smiling": i % 2 == 0, "Young": i >= 1}}


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tfds")
    for builder_cls in (GenJaxTestImages, GenJaxTestFaces):
        builder_cls(data_dir=str(root), file_format="array_record").download_and_prepare()
    return str(root)


# --- digits --------------------------------------------------------------------------------------


def test_digits_shapes_dtypes_and_range():
    ds = data.load_dataset("digits")
    assert ds.train_images.shape == (1437, 8, 8, 1) and ds.test_images.shape == (360, 8, 8, 1)
    assert ds.train_images.dtype == np.float32 and ds.train_labels.dtype == np.int32
    assert ds.train_images.min() == 0.0 and ds.train_images.max() == 1.0
    assert ds.image_shape == (8, 8, 1)
    assert ds.num_classes == 10 and ds.class_names == tuple("0123456789")
    assert set(np.unique(ds.test_labels)) == set(range(10))


def test_digits_split_is_fixed_and_disjoint():
    a, b = data.load_dataset("digits"), data.load_dataset("digits")
    np.testing.assert_array_equal(a.test_images, b.test_images)
    np.testing.assert_array_equal(a.train_labels, b.train_labels)
    train = {im.tobytes() for im in a.train_images}
    test = {im.tobytes() for im in a.test_images}
    # The 1797 digits images are all distinct, so disjoint contents means disjoint examples.
    assert len(train) == 1437 and len(test) == 360 and not train & test


def test_image_size_crops_and_resizes():
    ds = data.load_dataset("digits", image_size=4)
    assert ds.train_images.shape == (1437, 4, 4, 1) and ds.test_images.shape == (360, 4, 4, 1)
    assert ds.train_images.min() >= 0.0 and ds.train_images.max() <= 1.0


def test_center_crop_keeps_the_middle_square():
    image = _digit_like(0).astype(np.float32) / 255.0  # 6 rows x 4 columns
    np.testing.assert_array_equal(data.center_crop_resize(image, 4), image[1:5])
    small = data.center_crop_resize(np.full((7, 5, 3), 0.25, np.float32), 2)
    assert small.shape == (2, 2, 3)
    np.testing.assert_allclose(small, 0.25, atol=1e-6)


def test_dataset_rejects_mismatched_labels():
    images = np.zeros((3, 2, 2, 1), np.float32)
    with pytest.raises(ValueError, match="train_labels"):
        data.Dataset("x", images, np.zeros((2,), np.int32), images, np.zeros((3,), np.int32), 1, ("x",))


# --- fashion_mnist ---------------------------------------------------------------------------------


def _write_fashion(directory, n_train=3, n_test=2, gz=True):
    rng = np.random.RandomState(0)
    arrays = (
        rng.randint(0, 256, (n_train, 4, 5), np.uint8),
        np.arange(n_train, dtype=np.uint8),
        rng.randint(0, 256, (n_test, 4, 5), np.uint8),
        np.arange(n_test, dtype=np.uint8) + 7,
    )
    for base, array in zip(data.FASHION_MNIST_FILES, arrays):
        if gz:
            with gzip.open(os.path.join(directory, base + ".gz"), "wb") as f:
                f.write(idx_bytes(array))
        else:
            with open(os.path.join(directory, base), "wb") as f:
                f.write(idx_bytes(array))
    return arrays


@requires_fashion_mnist
def test_fashion_mnist_from_system_package():
    ds = data.load_dataset("fashion_mnist")
    assert ds.train_images.shape == (60000, 28, 28, 1) and ds.test_images.shape == (10000, 28, 28, 1)
    assert ds.train_images.min() == 0.0 and ds.train_images.max() == 1.0
    assert set(np.unique(ds.train_labels)) == set(range(10))
    assert ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot"


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_from_idx_files_in_data_dir(tmp_path, gz):
    train_x, train_y, test_x, test_y = _write_fashion(tmp_path, gz=gz)
    ds = data.load_dataset("fashion_mnist", data_dir=str(tmp_path))
    np.testing.assert_allclose(ds.train_images[..., 0], train_x / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.train_labels, train_y)
    np.testing.assert_allclose(ds.test_images[..., 0], test_x / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.test_labels, test_y)
    assert ds.num_classes == 10


@pytest.mark.parametrize("corruption", ["truncated_gz", "bad_magic", "short_payload"])
def test_corrupt_idx_file_names_the_file(tmp_path, corruption):
    _write_fashion(tmp_path)
    path = os.path.join(tmp_path, "train-images-idx3-ubyte.gz")
    with open(path, "rb") as f:
        raw = f.read()
    if corruption == "truncated_gz":
        raw = raw[: len(raw) // 2]
    elif corruption == "bad_magic":
        raw = gzip.compress(b"\x12\x34" + gzip.decompress(raw)[2:])
    else:
        raw = gzip.compress(gzip.decompress(raw)[:-7])
    with open(path, "wb") as f:
        f.write(raw)
    with pytest.raises(data.DatasetUnavailableError, match="train-images-idx3-ubyte.gz") as err:
        data.load_dataset("fashion_mnist", data_dir=str(tmp_path))
    assert err.value.__cause__ is None  # One message, no chained gzip/zlib traceback.
    assert err.value.__context__ is None or err.value.__suppress_context__


def test_fashion_mnist_unavailable_lists_every_remedy(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "FASHION_MNIST_SYSTEM_DIR", str(tmp_path / "no-such-dir"))
    with pytest.raises(data.DatasetUnavailableError) as err:
        data.load_dataset("fashion_mnist", data_dir=str(tmp_path))
    message = str(err.value)
    for needle in (
        "'fashion_mnist'",
        "apt-get install dataset-fashion-mnist",
        "train-images-idx3-ubyte",
        "tfds build fashion_mnist",
        "download_and_prepare",
        "data_dir",
    ):
        assert needle in message


# --- TFDS, offline and without TensorFlow ------------------------------------------------------------


def test_tfds_images_and_labels_come_out_right(tfds_dir):
    ds = data.load_dataset("gen_jax_test_images", data_dir=tfds_dir)
    assert ds.train_images.shape == (5, 6, 4, 1) and ds.test_images.shape == (3, 6, 4, 1)
    assert ds.train_images.dtype == np.float32 and ds.train_labels.dtype == np.int32
    # TFDS shuffles examples when it prepares them; pixel [0, 0] says which example each one is.
    order = np.argsort(ds.train_images[:, 0, 0, 0])
    for i in range(5):
        np.testing.assert_allclose(ds.train_images[order[i]], _digit_like(i) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.train_labels[order], [0, 1, 2, 0, 1])
    test_order = np.argsort(ds.test_images[:, 0, 0, 0])
    np.testing.assert_allclose(ds.test_images[test_order[2]], _digit_like(102) / 255.0, rtol=1e-6)
    assert ds.num_classes == 3 and ds.class_names == ("a", "b", "c")
    assert ds.attribute_names == () and ds.train_attributes is None


def test_tfds_attributes_unlabelled_validation_fallback_and_resize(tfds_dir):
    ds = data.load_dataset("gen_jax_test_faces", data_dir=tfds_dir, image_size=2)
    assert ds.train_images.shape == (4, 2, 2, 3) and ds.test_images.shape == (2, 2, 2, 3)
    order = np.argsort(ds.train_images[:, 0, 0, 0])  # TFDS shuffled them; red = 50 * index.
    np.testing.assert_allclose(
        ds.train_images[order[3]], np.broadcast_to([150 / 255, 100 / 255, 1.0], (2, 2, 3)), atol=1e-6
    )
    assert ds.num_classes == 1 and not ds.train_labels.any() and not ds.test_labels.any()
    assert ds.attribute_names == ("Smiling", "Young")
    np.testing.assert_array_equal(
        ds.train_attributes[order], [[True, False], [False, True], [True, True], [False, True]]
    )
    assert ds.test_attributes.shape == (2, 2) and ds.test_attributes.dtype == np.bool_


def test_unprepared_tfds_data_set_fails_fast_with_remedies(tmp_path):
    start = time.monotonic()
    with pytest.raises(data.DatasetUnavailableError) as err:
        data.load_dataset("mnist", data_dir=str(tmp_path))
    assert time.monotonic() - start < 5.0  # No download attempt, no network wait.
    message = str(err.value)
    for needle in (
        "'mnist'",
        "not available offline",
        "tfds build mnist",
        "download_and_prepare",
        "data_dir",
        str(tmp_path),
    ):
        assert needle in message


def test_unknown_name_lists_what_is_known(tmp_path):
    with pytest.raises(ValueError) as err:
        data.load_dataset("no_such_data_set_xyz", data_dir=str(tmp_path))
    message = str(err.value)
    assert "'no_such_data_set_xyz'" in message
    for needle in ("digits", "fashion_mnist", "TFDS image data set"):
        assert needle in message
    assert err.value.__suppress_context__  # No TFDS traceback with its list of 1000+ names.


# --- the package -------------------------------------------------------------------------------------


def test_package_reexports_the_public_names_of_its_modules():
    """`from gen_jax import data` is the interface: every public name of every module in the package is on it."""
    modules = [importlib.import_module(f"gen_jax.data.{m.name}") for m in pkgutil.iter_modules(data.__path__)]
    assert {"batching", "dataset", "fashion_mnist", "sources", "tfds_source"} <= {
        m.__name__.split(".")[-1] for m in modules
    }
    defined = {
        name: value
        for module in modules
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and getattr(value, "__module__", module.__name__) == module.__name__
    }
    assert sorted(data.__all__) == sorted(defined)
    for name, value in defined.items():
        assert getattr(data, name) is value, name
