"""Named image data sets as in-memory arrays.

`load_dataset(name)` returns a `Dataset` of float32 images in [0, 1] (NHWC) and int32 labels:

* ``digits``: scikit-learn's bundled 8x8 digits (always available, used by tests and smoke runs).
* ``fashion_mnist``: the IDX files from ``data_dir``, from the Debian package ``dataset-fashion-mnist``
  (``/usr/share/datasets/fashion-mnist``) or, failing both, from TFDS.
* any other name: a TFDS image data set (``mnist``, ``binarized_mnist``, ``cifar10``, ``celeb_a``, ...)
  that has been prepared in a random-access format (array_record). It is read with
  ``tfds.data_source``, so TensorFlow is not needed, and never downloaded here: a missing data set
  fails at once with `DatasetUnavailableError`, which says how to provide it.

Neighbours: `batching.py` turns the arrays into batches; `train.py` calls `load_dataset` once per run.
"""

from __future__ import annotations

import dataclasses
import gzip
import logging
import math
import os
import struct
import zlib

import numpy as np
import PIL.Image

_log = logging.getLogger(__name__)

# Where the Debian package `dataset-fashion-mnist` puts the IDX files. Module-level so tests can point
# it elsewhere.
FASHION_MNIST_SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"

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

_DIGITS_NUM_TEST = 360

# IDX type codes (third byte of the magic number) -> big-endian numpy dtype.
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# TFDS stores binarized_mnist pixels as uint8 0/1, not 0/255, so dividing by 255 would be wrong.
_TFDS_PIXEL_MAX = {"binarized_mnist": 1}

# Examples decoded per `__getitems__` call: large enough to amortise the call, small enough that
# full-size celeb_a images (218x178x3) of one chunk stay well under a GiB before resizing.
_TFDS_CHUNK = 1024


@dataclasses.dataclass(frozen=True, eq=False)  # eq=False: `==` on numpy fields would be ambiguous
class Dataset:
    """A labelled image data set held in host memory, checked on construction.

    Attributes:
      name: what `load_dataset` was called with.
      train_images: f32[N, H, W, C], values in [0, 1].
      train_labels: i32[N], in [0, num_classes).
      test_images: f32[M, H, W, C], values in [0, 1].
      test_labels: i32[M].
      num_classes: number of classes; 1 for data sets without labels (labels are then all 0).
      class_names: one name per class.
      attribute_names: per-image binary attributes (CelebA's 40); empty where there are none.
      train_attributes: bool[N, A] or None.
      test_attributes: bool[M, A] or None.
    """

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    num_classes: int
    class_names: tuple[str, ...]
    attribute_names: tuple[str, ...] = ()
    train_attributes: np.ndarray | None = None
    test_attributes: np.ndarray | None = None

    def __post_init__(self):
        _validate(self)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of one image."""
        return tuple(int(d) for d in self.train_images.shape[1:])


class DatasetUnavailableError(RuntimeError):
    """A named data set cannot be read here; the message says every way to provide it."""


def _validate(ds: Dataset) -> None:
    """Raises ValueError naming the data set and field when `ds` breaks the `Dataset` contract."""
    where = f"Data set {ds.name!r}"
    if ds.num_classes < 1 or len(ds.class_names) != ds.num_classes:
        raise ValueError(f"{where}: num_classes={ds.num_classes} but {len(ds.class_names)} class_names.")
    for split, images, labels, attributes in (
        ("train", ds.train_images, ds.train_labels, ds.train_attributes),
        ("test", ds.test_images, ds.test_labels, ds.test_attributes),
    ):
        if images.ndim != 4 or images.dtype != np.float32:
            raise ValueError(
                f"{where}: {split}_images must be f32[N, H, W, C]; got {images.dtype}{list(images.shape)}."
            )
        if images.shape[0] == 0:
            raise ValueError(f"{where}: the {split} split is empty.")
        if images.shape[1:] != ds.train_images.shape[1:]:
            raise ValueError(
                f"{where}: train and test images differ in shape: {ds.train_images.shape[1:]} vs {images.shape[1:]}."
            )
        lo, hi = float(images.min()), float(images.max())
        if not (lo >= 0.0 and hi <= 1.0):
            raise ValueError(f"{where}: {split}_images must lie in [0, 1]; found [{lo}, {hi}].")
        if labels.shape != images.shape[:1] or labels.dtype != np.int32:
            raise ValueError(
                f"{where}: {split}_labels must be i32[{images.shape[0]}] (one per image); "
                f"got {labels.dtype}{list(labels.shape)}."
            )
        if labels.min() < 0 or labels.max() >= ds.num_classes:
            raise ValueError(
                f"{where}: {split}_labels must lie in [0, {ds.num_classes}); found [{labels.min()}, {labels.max()}]."
            )
        if ds.attribute_names:
            want = (images.shape[0], len(ds.attribute_names))
            if attributes is None or attributes.shape != want or attributes.dtype != np.bool_:
                got = None if attributes is None else f"{attributes.dtype}{list(attributes.shape)}"
                raise ValueError(f"{where}: {split}_attributes must be bool{list(want)}; got {got}.")
        elif attributes is not None:
            raise ValueError(f"{where}: {split}_attributes given but attribute_names is empty.")


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
    return _load_tfds(name, data_dir, image_size)


# --- digits ------------------------------------------------------------------------------------


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


# --- fashion_mnist from IDX files --------------------------------------------------------------


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


def _load_fashion_mnist(data_dir: str | None, image_size: int | None) -> Dataset:
    """IDX files from `data_dir`, then from the Debian package, then TFDS (which also gets data_dir)."""
    for directory in ([data_dir] if data_dir else []) + [FASHION_MNIST_SYSTEM_DIR]:
        paths = _find_idx_files(directory)
        if paths is not None:
            _log.info("Reading fashion_mnist IDX files from %s", directory)
            return _resized(_fashion_mnist_from_idx(paths), image_size)
    looked = " and ".join(([data_dir] if data_dir else []) + [FASHION_MNIST_SYSTEM_DIR])
    return _load_tfds(
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


# --- TFDS data sets, read without TensorFlow ---------------------------------------------------


def _load_tfds(
    name: str, data_dir: str | None, image_size: int | None, extra_remedies: tuple[str, ...] = ()
) -> Dataset:
    """Reads a prepared TFDS image data set through `tfds.data_source` (no TensorFlow needed)."""
    import tensorflow_datasets as tfds  # Lazy: digits users skip the cost of importing TFDS.

    try:
        # Only reads metadata, never the network; for a name TFDS does not register, it still finds
        # a data set prepared under data_dir (e.g. a community data set built elsewhere).
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.DatasetNotFoundError:
        raise ValueError(
            f"Unknown data set {name!r}. load_dataset knows 'digits', 'fashion_mnist' and any TFDS "
            f"image data set (e.g. 'mnist', 'binarized_mnist', 'cifar10', 'celeb_a'; see "
            f"tfds.list_builders())."
        ) from None

    # Check before reading: tfds.data_source(download=False) on a missing data set fails with a
    # misleading "file format TFRECORD is not supported" error, and download=True would try the
    # network (and writing image data sets needs TensorFlow anyway).
    if not builder.is_prepared():
        raise DatasetUnavailableError(_unavailable_message(name, data_dir, builder.data_dir, extra_remedies))
    file_format = builder.info.file_format
    if file_format not in tfds.core.FileFormat.with_random_access():
        raise DatasetUnavailableError(
            f"Data set {name!r} is prepared in {builder.data_dir} in the "
            f"{getattr(file_format, 'value', file_format)} format, which only TensorFlow can read. "
            f"Prepare it again in a random-access format into another directory and pass that as "
            f"data_dir: `tfds build {name} --file_format=array_record --data_dir=DIR`."
        )

    features = builder.info.features
    if "image" not in features or not isinstance(features["image"], tfds.features.Image):
        raise ValueError(
            f"Data set {name!r} has no 'image' feature (features: {sorted(features.keys())}); "
            f"load_dataset reads image data sets only."
        )
    image_dtype = np.dtype(features["image"].np_dtype)
    if not np.issubdtype(image_dtype, np.integer):
        raise ValueError(f"Data set {name!r} stores {image_dtype} images; only integer pixels are supported.")
    pixel_max = _TFDS_PIXEL_MAX.get(builder.name, np.iinfo(image_dtype).max)

    has_labels = "label" in features and isinstance(features["label"], tfds.features.ClassLabel)
    if has_labels:
        num_classes, class_names = features["label"].num_classes, tuple(features["label"].names)
    else:  # e.g. binarized_mnist, celeb_a: one class, all labels 0.
        num_classes, class_names = 1, (builder.name,)
    attribute_names = ()
    if "attributes" in features and isinstance(features["attributes"], tfds.features.FeaturesDict):
        attribute_names = tuple(features["attributes"].keys())

    splits = builder.info.splits
    if "train" not in splits:
        raise DatasetUnavailableError(f"Data set {name!r} has no 'train' split; it has {list(splits)}.")
    test_split = next((s for s in ("test", "validation") if s in splits), None)
    if test_split is None:
        raise DatasetUnavailableError(
            f"Data set {name!r} has neither a 'test' nor a 'validation' split; it has {list(splits)}."
        )

    arrays = {}
    for split in ("train", test_split):
        _log.info("Reading %s/%s from %s", name, split, builder.data_dir)
        _check_shards(name, split, [str(p) for p in splits[split].filepaths])
        try:
            arrays[split] = _read_tfds_split(
                builder.as_data_source(split=split),
                f"{name}/{split}",
                pixel_max,
                image_size,
                has_labels,
                attribute_names,
            )
        except (OSError, RuntimeError) as error:  # a shard cut short or overwritten: array_record's reader says so
            raise DatasetUnavailableError(
                f"Data set {name!r}: split {split!r} in {builder.data_dir} cannot be read ({error}). Prepare it "
                "again (tfds build --file_format=array_record)."
            ) from None
    (train_x, train_y, train_a), (test_x, test_y, test_a) = arrays["train"], arrays[test_split]
    return Dataset(
        name=name,
        train_images=train_x,
        train_labels=train_y,
        test_images=test_x,
        test_labels=test_y,
        num_classes=num_classes,
        class_names=class_names,
        attribute_names=attribute_names,
        train_attributes=train_a,
        test_attributes=test_a,
    )


def _check_shards(name: str, split: str, paths: list[str]) -> None:
    """DatasetUnavailableError naming the first of a split's shard files that is missing or empty."""
    for path in paths:
        if not os.path.isfile(path) or os.path.getsize(path) == 0:
            state = "is empty" if os.path.isfile(path) else "is missing"
            raise DatasetUnavailableError(
                f"Data set {name!r}: shard {path} of split {split!r} {state}; copy it back, or prepare the data set "
                "again."
            )


def _unavailable_message(name: str, data_dir: str | None, looked_in: str, extra_remedies: tuple[str, ...]) -> str:
    """The one message that says a TFDS data set is missing and every way to provide it."""
    where = (
        f"data_dir={data_dir!r}" if data_dir else "TFDS's default data_dir (~/tensorflow_datasets or $TFDS_DATA_DIR)"
    )
    remedies = [
        *extra_remedies,
        (
            f"prepare it once on a machine with network access (TFDS needs TensorFlow to write image "
            f"data sets, not to read them): `tfds build {name} --file_format=array_record "
            f"--data_dir=DIR`, or in Python tfds.builder({name!r}, data_dir=DIR)"
            f".download_and_prepare(file_format='array_record'); then copy DIR here if needed"
        ),
        ("pass data_dir=DIR (a TFDS data directory where it is prepared) to load_dataset, or set $TFDS_DATA_DIR"),
    ]
    return (
        f"Data set {name!r} is not available offline: it is not prepared in {where} "
        f"(looked for {looked_in}). To provide it:\n" + "\n".join(f"  - {r}" for r in remedies)
    )


def _read_tfds_split(
    source, label: str, pixel_max: int, image_size: int | None, has_labels: bool, attribute_names: tuple[str, ...]
):
    """Decodes a TFDS data source into (f32[N, H, W, C] in [0, 1], i32[N], bool[N, A] or None).

    Reads in chunks and resizes each image as it arrives, so full-size images never all sit in
    memory at once (celeb_a at 218x178 would take 76 GB as f32).
    """
    n = len(source)
    images = None
    labels = np.zeros((n,), np.int32)
    attributes = np.zeros((n, len(attribute_names)), np.bool_) if attribute_names else None
    for start in range(0, n, _TFDS_CHUNK):
        for i, example in enumerate(source.__getitems__(list(range(start, min(n, start + _TFDS_CHUNK)))), start):
            image = example["image"].astype(np.float32) / np.float32(pixel_max)
            if image_size is not None:
                image = center_crop_resize(image, image_size)
            if images is None:
                images = np.empty((n, *image.shape), np.float32)
            elif image.shape != images.shape[1:]:
                raise ValueError(
                    f"Images in {label} differ in size ({images.shape[1:]} and {image.shape} at "
                    f"index {i}); pass image_size= to crop and resize them to one square size."
                )
            images[i] = image
            if has_labels:
                labels[i] = example["label"]
            if attribute_names:
                attributes[i] = [example["attributes"][a] for a in attribute_names]
    if images is None:
        raise DatasetUnavailableError(f"Split {label} is empty.")
    return images, labels, attributes


# --- resizing ----------------------------------------------------------------------------------


def center_crop_resize(image: np.ndarray, size: int) -> np.ndarray:
    """Centre-crops f32[H, W, C] to a square and resizes it to f32[size, size, C].

    Bilinear interpolation (PIL, which widens the filter when shrinking, so it also antialiases).
    Values in [0, 1] stay in [0, 1].
    """
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = np.asarray(image[top : top + side, left : left + side], np.float32)
    if side == size:
        return square
    channels = [
        np.asarray(PIL.Image.fromarray(square[..., c], mode="F").resize((size, size), PIL.Image.Resampling.BILINEAR))
        for c in range(square.shape[-1])
    ]
    # Clip: float rounding in the filter can step a hair outside [0, 1].
    return np.clip(np.stack(channels, axis=-1), 0.0, 1.0)


def _resized(ds: Dataset, image_size: int | None) -> Dataset:
    """`ds` with every image passed through `center_crop_resize` (unchanged if image_size is None)."""
    if image_size is None:
        return ds

    def resize_all(images):
        return np.stack([center_crop_resize(im, image_size) for im in images])

    return dataclasses.replace(ds, train_images=resize_all(ds.train_images), test_images=resize_all(ds.test_images))
