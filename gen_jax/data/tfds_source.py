"""A prepared TFDS image data set read into a `Dataset` through `tfds.data_source`: no TensorFlow, no network.

`load_tfds(name, data_dir, image_size)` reads a data set prepared in a random-access format (array_record) and
never downloads: a data set that is not prepared here fails at once with a `DatasetUnavailableError` that says
every way to provide it, and a damaged shard is named in one line.
"""

from __future__ import annotations

import logging
import os
from typing import NamedTuple

import numpy as np

from gen_jax.data.dataset import Dataset, DatasetUnavailableError, center_crop_resize, unit_pixels

_log = logging.getLogger(__name__)

# TFDS stores binarized_mnist pixels as uint8 0/1, not 0/255, so dividing by 255 would be wrong.
_TFDS_PIXEL_MAX = {"binarized_mnist": 1}

# Examples decoded per `__getitems__` call: large enough to amortise the call, small enough that
# full-size celeb_a images (218x178x3) of one chunk stay well under a GiB before resizing.
_TFDS_CHUNK = 1024


class _Layout(NamedTuple):
    """What a data set's features say about its examples: how to scale pixels, its classes and attributes."""

    pixel_max: int
    has_labels: bool
    num_classes: int
    class_names: tuple[str, ...]
    attribute_names: tuple[str, ...]


def load_tfds(
    name: str,
    data_dir: str | None,
    image_size: int | None,
    extra_remedies: tuple[str, ...] = (),
    crop_size: int = 0,
) -> Dataset:
    """Reads a prepared TFDS image data set through `tfds.data_source` (no TensorFlow needed).

    Args:
      name: a TFDS data set name (``name/config:version`` works too).
      data_dir: the TFDS data directory; None = TFDS's own (``~/tensorflow_datasets`` or ``$TFDS_DATA_DIR``).
      image_size: if given, each image is centre-cropped and resized to image_size x image_size as it is read.
      extra_remedies: ways to provide the data set listed before TFDS's own when it is not prepared here.
      crop_size: with image_size, the side of the centred square cropped before resizing (0 = the largest).

    Returns:
      A `Dataset` with f32 images in [0, 1]; its test split is "test", else "validation". Data sets without a
      ClassLabel "label" have one class (all labels 0).

    Raises:
      DatasetUnavailableError: the data set is not prepared here, is prepared in a format only TensorFlow reads,
        lacks a train or test/validation split, or a shard is missing, empty or unreadable.
      ValueError: TFDS does not know `name`, or it is not a data set of integer-pixel images.
    """
    builder = _prepared_builder(name, data_dir, extra_remedies)
    layout = _image_layout(name, builder)
    splits = builder.info.splits
    if "train" not in splits:
        raise DatasetUnavailableError(f"Data set {name!r} has no 'train' split; it has {list(splits)}.")
    test_split = next((s for s in ("test", "validation") if s in splits), None)
    if test_split is None:
        raise DatasetUnavailableError(
            f"Data set {name!r} has neither a 'test' nor a 'validation' split; it has {list(splits)}."
        )
    resize = (image_size, crop_size) if image_size is not None else None
    arrays = {split: _read_split(name, builder, split, layout, resize) for split in ("train", test_split)}
    (train_x, train_y, train_a), (test_x, test_y, test_a) = arrays["train"], arrays[test_split]
    return Dataset(
        name=name,
        train_images=train_x,
        train_labels=train_y,
        test_images=test_x,
        test_labels=test_y,
        num_classes=layout.num_classes,
        class_names=layout.class_names,
        attribute_names=layout.attribute_names,
        train_attributes=train_a,
        test_attributes=test_a,
    )


def _prepared_builder(name: str, data_dir: str | None, extra_remedies: tuple[str, ...]):
    """The TFDS builder of `name`, checked to be prepared under `data_dir` in a format read without TensorFlow."""
    import tensorflow_datasets as tfds  # Lazy: digits users skip the cost of importing TFDS.

    try:
        # Only reads metadata, never the network; for a name TFDS does not register, it still finds
        # a data set prepared under data_dir (e.g. a community data set built elsewhere).
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.DatasetNotFoundError:
        raise ValueError(
            f"Unknown data set {name!r}. load_dataset knows 'digits', 'fashion_mnist', a prepared directory (a "
            f"path that exists) and any TFDS "
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
    return builder


def _image_layout(name: str, builder) -> _Layout:
    """Reads pixel scale, classes and attributes off the builder's features; ValueError unless integer images."""
    import tensorflow_datasets as tfds

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
    return _Layout(pixel_max, has_labels, num_classes, class_names, attribute_names)


def _read_split(name: str, builder, split: str, layout: _Layout, resize: tuple[int, int] | None):
    """One split as (f32[N, H, W, C], i32[N], bool[N, A] or None), each image resized to (image_size, crop_size)
    when `resize` is given; a damaged shard as DatasetUnavailableError."""
    _log.info("Reading %s/%s from %s", name, split, builder.data_dir)
    _check_shards(name, split, [str(p) for p in builder.info.splits[split].filepaths])
    try:
        return _decode(builder.as_data_source(split=split), f"{name}/{split}", layout, resize)
    except (OSError, RuntimeError) as error:  # a shard cut short or overwritten: array_record's reader says so
        raise DatasetUnavailableError(
            f"Data set {name!r}: split {split!r} in {builder.data_dir} cannot be read ({error}). Prepare it "
            "again (tfds build --file_format=array_record)."
        ) from None


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


def _decode(source, label: str, layout: _Layout, resize: tuple[int, int] | None):
    """Decodes a TFDS data source into (f32[N, H, W, C] in [0, 1], i32[N], bool[N, A] or None).

    Reads in chunks and resizes each image as it arrives, so full-size images never all sit in
    memory at once (celeb_a at 218x178 would take 76 GB as f32).
    """
    attribute_names = layout.attribute_names
    n = len(source)
    images = None
    labels = np.zeros((n,), np.int32)
    attributes = np.zeros((n, len(attribute_names)), np.bool_) if attribute_names else None
    for start in range(0, n, _TFDS_CHUNK):
        for i, example in enumerate(source.__getitems__(list(range(start, min(n, start + _TFDS_CHUNK)))), start):
            image = unit_pixels(example["image"], layout.pixel_max)
            if resize is not None:
                image = center_crop_resize(image, *resize)
            if images is None:
                images = np.empty((n, *image.shape), np.float32)
            elif image.shape != images.shape[1:]:
                raise ValueError(
                    f"Images in {label} differ in size ({images.shape[1:]} and {image.shape} at "
                    f"index {i}); pass image_size= to crop and resize them to one square size."
                )
            images[i] = image
            if layout.has_labels:
                labels[i] = example["label"]
            if attribute_names:
                attributes[i] = [example["attributes"][a] for a in attribute_names]
    if images is None:
        raise DatasetUnavailableError(f"Split {label} is empty.")
    return images, labels, attributes
