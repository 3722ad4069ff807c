"""The `Dataset` every loader returns: a labelled image set in host memory, checked against its contract when it is
made, and the one resize (`center_crop_resize`) every loader applies when asked for square images.

Neighbours: `sources.py` (`load_dataset`), `fashion_mnist.py` and `tfds_source.py` build Datasets; `batching.py`
turns their arrays into batches.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import PIL.Image


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
      fingerprint: a prepared directory's fingerprint (`prepared.py`); "" for named data sets.
      train_size, test_size: the rows of the whole splits when the arrays hold a sample of them (a large prepared
        directory: `sources.host_sample_sizes`); 0 = the arrays are the whole splits.
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
    fingerprint: str = ""
    train_size: int = 0
    test_size: int = 0

    def __post_init__(self):
        _validate(self)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of one image."""
        return tuple(int(d) for d in self.train_images.shape[1:])

    @property
    def num_train(self) -> int:
        """Rows of the whole training split (more than len(train_images) when those are a sample of it)."""
        return self.train_size or len(self.train_images)

    @property
    def is_sample(self) -> bool:
        """Whether the arrays hold a sample of the splits rather than the whole of them."""
        return self.num_train > len(self.train_images) or self.test_size > len(self.test_images)

    @property
    def store_name(self) -> str:
        """A name for what is kept per data set (a directory name, no path): the name of a named data set,
        ``prepared_<fingerprint[:16]>`` for a prepared directory, whatever path it was read from."""
        return f"prepared_{self.fingerprint[:16]}" if self.fingerprint else self.name


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


def unit_pixels(images: np.ndarray, pixel_max: int) -> np.ndarray:
    """Integer pixels u8[...] (0 … pixel_max) as f32[...] in [0, 1]: value / pixel_max, computed by numpy (the values
    `tfds_source` gives the same pixels), through a table of the pixel_max + 1 values, so no f64 or f32 copy of the
    whole array is made on the way."""
    table = np.arange(pixel_max + 1, dtype=np.float32) / np.float32(pixel_max)
    if images.size and int(images.max()) > pixel_max:
        raise ValueError(f"pixel values reach {int(images.max())}, above the data's pixel_max {pixel_max}")
    return table[images]


def center_crop_resize(image: np.ndarray, size: int, crop: int = 0) -> np.ndarray:
    """Centre-crops f32[H, W, C] to a square and resizes it to f32[size, size, C].

    The square is the largest centred one, or the centred crop × crop one when `crop` > 0 (CelebA's customary
    108 px face crop; ValueError when it does not fit).  Bilinear interpolation (PIL, which widens the filter when
    shrinking, so it also antialiases).  Values in [0, 1] stay in [0, 1].
    """
    h, w = image.shape[:2]
    if crop > min(h, w):
        raise ValueError(f"crop_size {crop} does not fit in {h}×{w} images; choose crop_size <= {min(h, w)}")
    side = crop or min(h, w)
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
