"""Named image data sets as in-memory arrays: which name is read from where.

`load_dataset(name)` returns a `Dataset` of float32 images in [0, 1] (NHWC) and int32 labels:

* ``digits``: scikit-learn's bundled 8x8 digits (always available, used by tests and smoke runs).
* ``fashion_mnist``: the IDX files from ``data_dir``, from the Debian package ``dataset-fashion-mnist``
  (``/usr/share/datasets/fashion-mnist``) or, failing both, from TFDS.
* any other name: a TFDS image data set (``mnist``, ``binarized_mnist``, ``cifar10``, ``celeb_a``, ...)
  that has been prepared in a random-access format (array_record). It is read with
  ``tfds.data_source``, so TensorFlow is not needed, and never downloaded here: a missing data set
  fails at once with `DatasetUnavailableError`, which says how to provide it.

The readers are modules of their own: `dataset.py` (the `Dataset` type and its checks, `center_crop_resize`),
`fashion_mnist.py` (IDX files), `tfds_source.py` (prepared TFDS data sets).

Neighbours: `batching.py` turns the arrays into batches; `train.py` calls `load_dataset` once per run.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from gen_jax.data.dataset import Dataset, center_crop_resize
from gen_jax.data.fashion_mnist import FASHION_MNIST_FILES, read_fashion_mnist
from gen_jax.data.tfds_source import load_tfds

# Where the Debian package `dataset-fashion-mnist` puts the IDX files. Module-level so tests can point
# it elsewhere.
FASHION_MNIST_SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"

_DIGITS_NUM_TEST = 360


def load_dataset(name: str, data_dir: str | None = None, image_size: int | None = None) -> Dataset:
    """Loads a named image data set into host memory.

    Args:
      name: ``"digits"``, ``"fashion_mnist"`` or the name of a TFDS image data set (``"mnist"``,
        ``"binarized_mnist"``, ``"cifar10"``, ``"celeb_a"``, ...; TFDS's ``name/config:version``
        syntax works too).
      data_dir: for ``fashion_mnist``, a directory holding the four IDX files (else the system and
        TFDS locations are tried); for TFDS data sets, the TFDS data directory (default: TFDS's own,
        ``~/tensorflow_datasets`` or ``$TFDS_DATA_DIR``). Ignored by ``digits``.
      image_size: if given, every image is centre-cropped to a square and resized (bilinear, with
        antialiasing when shrinking) to image_size x image_size pixels, e.g. 64 for celeb_a.

    Returns:
      A `Dataset` with f32 images in [0, 1] and i32 labels.

    Raises:
      DatasetUnavailableError: the data set is known but not present here (the message says how to
        provide it), or its files are corrupt.
      ValueError: `name` is not a data set this function knows, or `image_size` is not positive.
    """
    if image_size is not None and (not isinstance(image_size, (int, np.integer)) or image_size < 1):
        raise ValueError(f"image_size must be a positive int or None; got {image_size!r}.")
    if name == "digits":
        return _resized(_load_digits(), image_size)
    if name == "fashion_mnist":
        return _load_fashion_mnist(data_dir, image_size)
    return load_tfds(name, data_dir, image_size)


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


def _load_fashion_mnist(data_dir: str | None, image_size: int | None) -> Dataset:
    """IDX files from `data_dir`, then from the Debian package, then TFDS (which also gets data_dir)."""
    for directory in ([data_dir] if data_dir else []) + [FASHION_MNIST_SYSTEM_DIR]:
        dataset = read_fashion_mnist(directory)
        if dataset is not None:
            return _resized(dataset, image_size)
    looked = " and ".join(([data_dir] if data_dir else []) + [FASHION_MNIST_SYSTEM_DIR])
    return load_tfds(
        "fashion_mnist",
        data_dir,
        image_size,
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


def _resized(ds: Dataset, image_size: int | None) -> Dataset:
    """`ds` with every image passed through `center_crop_resize` (unchanged if image_size is None)."""
    if image_size is None:
        return ds

    def resize_all(images):
        return np.stack([center_crop_resize(im, image_size) for im in images])

    return dataclasses.replace(ds, train_images=resize_all(ds.train_images), test_images=resize_all(ds.test_images))
