"""Fashion-MNIST from its four IDX files (gzipped or not), and the IDX format those files (and MNIST's) are in.

`read_fashion_mnist(directory)` returns the `Dataset` when the directory holds the files, None when it holds none
of them, and a one-line `DatasetUnavailableError` naming the file when some are missing, unreadable or
inconsistent. Which directories are tried, and the TFDS fallback, are `sources.py`'s.
"""

from __future__ import annotations

import gzip
import logging
import math
import os
import struct
import zlib

import numpy as np

from gen_jax.data.dataset import Dataset, DatasetUnavailableError

_log = logging.getLogger(__name__)

FASHION_MNIST_CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

# (train images, train labels, test images, test labels), each also accepted with a ".gz" suffix.
FASHION_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

# IDX type codes (third byte of the magic number) -> big-endian numpy dtype.
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str) -> np.ndarray:
    """Reads one IDX file (as used by MNIST and Fashion-MNIST), gzipped if its name ends in .gz.

    Returns:
      The array with the shape and (native-endian) dtype the header declares.

    Raises:
      DatasetUnavailableError: naming the file, if it cannot be read, is not IDX or is truncated.
    """
    try:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError.
        raise DatasetUnavailableError(f"Cannot read IDX file {path}: {e}. Replace it with an intact copy.") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _IDX_DTYPES:
        raise DatasetUnavailableError(
            f"{path} is not an IDX file: its magic number is {raw[:4].hex() or 'missing'}, expected "
            f"00 00, a type code in {sorted(hex(c) for c in _IDX_DTYPES)} and the number of "
            f"dimensions. Replace it with an intact copy."
        )
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetUnavailableError(f"IDX file {path} is truncated inside its header.")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    want = header + math.prod(shape) * dtype.itemsize
    if len(raw) != want:
        raise DatasetUnavailableError(
            f"IDX file {path} has {len(raw)} bytes but its header (shape {list(shape)}, "
            f"{dtype.name}) implies {want}: the file is truncated or corrupt. Replace it."
        )
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read_fashion_mnist(directory: str) -> Dataset | None:
    """Fashion-MNIST from the four IDX files in `directory`, or None if it holds none of them.

    Returns:
      A `Dataset` named "fashion_mnist": f32[N, H, W, 1] images in [0, 1] (pixel / 255), i32 labels, 10 classes.

    Raises:
      DatasetUnavailableError: some of the four files are missing, or one is unreadable, corrupt or does not
        match the others; the message names the file.
    """
    paths = _find_idx_files(directory)
    if paths is None:
        return None
    _log.info("Reading fashion_mnist IDX files from %s", directory)
    return _fashion_mnist_from_idx(paths)


def _find_idx_files(directory: str) -> tuple[str, ...] | None:
    """Paths of the four Fashion-MNIST IDX files in `directory`, or None if it holds none of them."""
    found, missing = [], []
    for base in FASHION_MNIST_FILES:
        paths = [os.path.join(directory, base + ext) for ext in (".gz", "")]
        hit = next((p for p in paths if os.path.isfile(p)), None)
        found.append(hit)
        if hit is None:
            missing.append(base + "[.gz]")
    if len(missing) == len(FASHION_MNIST_FILES):
        return None
    if missing:
        raise DatasetUnavailableError(
            f"{directory} holds only some of the Fashion-MNIST IDX files; missing: "
            f"{', '.join(missing)}. Put all four there (gzipped or not)."
        )
    return tuple(found)


def _fashion_mnist_from_idx(paths: tuple[str, ...]) -> Dataset:
    """Builds the Dataset from the four IDX files (train images, train labels, test ...)."""
    train_x, train_y, test_x, test_y = (read_idx(p) for p in paths)
    for x, y, px, py in ((train_x, train_y, paths[0], paths[1]), (test_x, test_y, paths[2], paths[3])):
        if x.ndim != 3 or x.dtype != np.uint8 or y.ndim != 1 or len(x) != len(y):
            raise DatasetUnavailableError(
                f"Fashion-MNIST files do not match: {px} holds {x.dtype}{list(x.shape)} (want uint8 "
                f"[N, H, W]) and {py} holds {y.dtype}{list(y.shape)} (want [N] labels)."
            )
        if y.max(initial=0) >= len(FASHION_MNIST_CLASS_NAMES):
            raise DatasetUnavailableError(f"{py} holds label {y.max()}; Fashion-MNIST has 10 classes.")
    return Dataset(
        name="fashion_mnist",
        train_images=(train_x[..., None] / np.float32(255)).astype(np.float32),
        train_labels=train_y.astype(np.int32),
        test_images=(test_x[..., None] / np.float32(255)).astype(np.float32),
        test_labels=test_y.astype(np.int32),
        num_classes=10,
        class_names=FASHION_MNIST_CLASS_NAMES,
    )
