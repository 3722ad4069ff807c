"""Named image data sets as in-memory arrays: which name is read from where.

`load_dataset(name)` returns a `Dataset` of float32 images in [0, 1] (NHWC) and int32 labels:

* ``digits``: scikit-learn's bundled 8x8 digits (always available, used by tests and smoke runs).
* ``fashion_mnist``: the IDX files from ``data_dir``, from the Debian package ``dataset-fashion-mnist``
  (``/usr/share/datasets/fashion-mnist``) or, failing both, from TFDS.
* a path to a prepared directory (``python -m experiments.prepare``; a name that is an existing directory or starts
  with ``/``, ``.`` or ``~``): read through `PreparedSource`, class names from its sidecar.  Each split is held whole
  when the splits fit `HOST_SAMPLE_BYTES` as f32, else as a fixed sample of its rows (`host_sample_sizes`): what
  evaluation, the reference classifier and the figures see, while training reads every row of the split from the
  directory.
* any other name: a TFDS image data set (``mnist``, ``binarized_mnist``, ``cifar10``, ``celeb_a``, ...)
  that has been prepared in a random-access format (array_record). It is read with
  ``tfds.data_source``, so TensorFlow is not needed, and never downloaded here: a missing data set
  fails at once with `DatasetUnavailableError`, which says how to provide it.

The readers are modules of their own: `dataset.py` (the `Dataset` type and its checks, `center_crop_resize`,
`unit_pixels`), `fashion_mnist.py` (IDX files), `tfds_source.py` (prepared TFDS data sets), `prepared.py` (prepared
directories).

Neighbours: `batching.py` turns the arrays into batches; `experiments/main.py` calls `configured_dataset` once per
run.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from gen_jax.data.dataset import Dataset, DatasetUnavailableError, center_crop_resize, unit_pixels
from gen_jax.data.fashion_mnist import FASHION_MNIST_FILES, read_fashion_mnist
from gen_jax.data.prepared import PreparedSource
from gen_jax.data.tfds_source import load_tfds

# Where the Debian package `dataset-fashion-mnist` puts the IDX files. Module-level so tests can point
# it elsewhere.
FASHION_MNIST_SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"

_DIGITS_NUM_TEST = 360
# Rows of a prepared directory read per `PreparedSource.read` when loading it: bounds the records held at once.
_PREPARED_CHUNK = 4096
# A prepared set is held in host memory whole when its splits fit this many bytes of f32 pixels together, else as a
# sample of that size (`host_sample_sizes`; 64×64×3: 10,922 images): evaluation and figures stay bounded however
# large the set.
HOST_SAMPLE_BYTES = 512 << 20


def configured_dataset(config) -> Dataset:
    """The data set a run's config names: config.dataset (a name or a prepared directory), from config.data_dir,
    at config.image_size (0 = its own size) with config.crop_size (0 = the largest centred square); fields a stored
    config lacks read as their defaults."""
    return load_dataset(
        config.dataset,
        config.get("data_dir") or None,
        config.get("image_size") or None,
        config.get("crop_size") or 0,
    )


def is_prepared_path(name: str) -> bool:
    """Whether `name` names a prepared directory rather than a data set: an existing directory, a path (starts with
    /, . or ~), or a name in an existing directory (``runs/prepared/openclipart64`` where ``runs/prepared`` is one)."""
    parent = os.path.dirname(name)
    return os.path.isdir(name) or name.startswith(("/", ".", "~")) or bool(parent and os.path.isdir(parent))


def load_dataset(name: str, data_dir: str | None = None, image_size: int | None = None, crop_size: int = 0) -> Dataset:
    """Loads a named image data set, or a prepared directory, into host memory.

    Args:
      name: ``"digits"``, ``"fashion_mnist"``, a prepared directory (`is_prepared_path`), or the name of a TFDS
        image data set (``"mnist"``, ``"binarized_mnist"``, ``"cifar10"``, ``"celeb_a"``, ...; TFDS's
        ``name/config:version`` syntax works too).
      data_dir: for ``fashion_mnist``, a directory holding the four IDX files (else the system and
        TFDS locations are tried); for TFDS data sets, the TFDS data directory (default: TFDS's own,
        ``~/tensorflow_datasets`` or ``$TFDS_DATA_DIR``). Ignored by ``digits``.
      image_size: if given, every image is centre-cropped to a square and resized (bilinear, with
        antialiasing when shrinking) to image_size x image_size pixels, e.g. 64 for celeb_a.  A prepared
        directory has the size it was prepared at: image_size must be that size or None.
      crop_size: with image_size, the side of the centred square cropped before resizing; 0 = the largest.

    Returns:
      A `Dataset` with f32 images in [0, 1] and i32 labels.

    Raises:
      DatasetUnavailableError: the data set is known but not present here (the message says how to
        provide it), or its files are corrupt (a prepared directory without its sidecar, a shard missing or
        damaged).
      ValueError: `name` is not a data set this function knows, `image_size` is not positive, `crop_size` does not
        fit, or a prepared directory is of another size than `image_size`.
    """
    if image_size is not None and (not isinstance(image_size, (int, np.integer)) or image_size < 1):
        raise ValueError(f"image_size must be a positive int or None; got {image_size!r}.")
    if name == "digits":
        return _resized(_load_digits(), image_size, crop_size)
    if name == "fashion_mnist":
        return _load_fashion_mnist(data_dir, image_size, crop_size)
    if is_prepared_path(name):
        return _load_prepared(name, image_size)
    return load_tfds(name, data_dir, image_size, crop_size=crop_size)


def _load_prepared(directory: str, image_size: int | None) -> Dataset:
    """A prepared directory's train and test splits whole, through `PreparedSource`, as a Dataset named `directory`."""
    if not os.path.isdir(os.path.expanduser(directory)):
        raise DatasetUnavailableError(
            f"Prepared data {directory} does not exist: make it with `python -m experiments.prepare --images DIR "
            f"--out {directory}` (or --tfds NAME), or set config.dataset to a prepared directory"
        )
    splits = [PreparedSource(os.path.expanduser(directory), split) for split in ("train", "test")]
    height, width, _ = splits[0].image_shape
    if image_size is not None and (height, width) != (image_size, image_size):
        raise ValueError(
            f"{directory} was prepared at {height}×{width} and image_size={image_size} asks for another size: leave "
            f"image_size at 0, or prepare the images again with --image_size {image_size}"
        )
    sizes = host_sample_sizes(len(splits[0]), len(splits[1]), splits[0].image_shape)
    (train_images, train_labels), (test_images, test_labels) = (
        _read_rows(source, host_sample_rows(len(source), size)) for source, size in zip(splits, sizes)
    )
    source = splits[0]
    return Dataset(
        name=directory,
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
        test_labels=test_labels,
        num_classes=source.num_classes,
        class_names=source.class_names,
        fingerprint=source.fingerprint,
        train_size=len(splits[0]),
        test_size=len(splits[1]),
    )


def host_sample_sizes(train_count: int, test_count: int, image_shape: tuple[int, int, int]) -> tuple[int, int]:
    """How many images of each split of a prepared set are held in host memory: all of them when both splits fit
    `HOST_SAMPLE_BYTES` as f32; else the test split up to half of that and the training split the rest."""
    fit = max(2, HOST_SAMPLE_BYTES // (4 * int(np.prod(image_shape))))
    if train_count + test_count <= fit:
        return train_count, test_count
    test = min(test_count, fit // 2)
    return min(train_count, fit - test), test


def host_sample_rows(count: int, size: int) -> np.ndarray:
    """The `size` rows of a split of `count` held in host memory (`host_sample_sizes`): all of them, or `size` drawn
    without replacement by a fixed seed (the same on every machine and in every run), in increasing order.
    Returns i64[min(size, count)]."""
    if count <= size:
        return np.arange(count)
    return np.sort(np.random.default_rng(0).choice(count, size, replace=False))


def _read_rows(source: PreparedSource, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The examples of a prepared split at `rows`: (f32[n, H, W, C] in [0, 1], i32[n]), read `_PREPARED_CHUNK` rows
    a call, so no more than that many records are held at once beside the result."""
    images = np.empty((len(rows), *source.image_shape), np.float32)
    labels = np.empty((len(rows),), np.int32)
    for start in range(0, len(rows), _PREPARED_CHUNK):
        part = slice(start, start + _PREPARED_CHUNK)
        chunk_images, labels[part] = source.read(rows[part])
        images[part] = unit_pixels(chunk_images, source.pixel_max)
    return images, labels


def _load_digits() -> Dataset:
    """scikit-learn's 1797 8x8 digits, split once and for all into 1437 train / 360 test."""
    from sklearn.datasets import load_digits  # Lazy: only this loader needs scikit-learn.

    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)[..., None]  # Pixel values are 0..16.
    labels = bunch.target.astype(np.int32)
    # A fixed seed, not the run's seed: the test set must be the same for every run and every user.
    order = np.random.RandomState(0).permutation(len(images))
    test, train = order[:_DIGITS_NUM_TEST], order[_DIGITS_NUM_TEST:]
    return Dataset(
        name="digits",
        train_images=images[train],
        train_labels=labels[train],
        test_images=images[test],
        test_labels=labels[test],
        num_classes=10,
        class_names=tuple(str(d) for d in range(10)),
    )


def _load_fashion_mnist(data_dir: str | None, image_size: int | None, crop_size: int) -> Dataset:
    """IDX files from `data_dir`, then from the Debian package, then TFDS (which also gets data_dir)."""
    for directory in ([data_dir] if data_dir else []) + [FASHION_MNIST_SYSTEM_DIR]:
        dataset = read_fashion_mnist(directory)
        if dataset is not None:
            return _resized(dataset, image_size, crop_size)
    looked = " and ".join(([data_dir] if data_dir else []) + [FASHION_MNIST_SYSTEM_DIR])
    return load_tfds(
        "fashion_mnist",
        data_dir,
        image_size,
        crop_size=crop_size,
        extra_remedies=(
            (
                "install the Debian package: apt-get install dataset-fashion-mnist "
                f"(puts the IDX files in {FASHION_MNIST_SYSTEM_DIR})"
            ),
            (
                f"or put the four IDX files ({', '.join(FASHION_MNIST_FILES)}, each optionally .gz) in a "
                f"directory and pass data_dir=that directory (looked for them in {looked})"
            ),
        ),
    )


def _resized(ds: Dataset, image_size: int | None, crop_size: int = 0) -> Dataset:
    """`ds` with every image passed through `center_crop_resize` (unchanged if image_size is None)."""
    if image_size is None:
        return ds

    def resize_all(images):
        return np.stack([center_crop_resize(im, image_size, crop_size) for im in images])

    return dataclasses.replace(ds, train_images=resize_all(ds.train_images), test_images=resize_all(ds.test_images))
