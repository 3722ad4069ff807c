"""Preparing data: a folder of images, or a TFDS data set, written as a prepared directory (`prepared.py`).

`prepare_images(folder, out, …)` and `prepare_tfds(name, out, …)` check their input first (a bad one is a one-line
`PrepareError` and nothing is written), then decode every image, centre-crop it to a square, resize it and write it
as uint8 into a hidden directory beside `out`, renamed to `out` only once complete: `out` is never overwritten and
never left half-written.

Image folders:
* classes: each top-level sub-folder is a class (images in deeper folders belong to their top-level one), named by
  the folder and numbered in sorted order; a folder without sub-folders is one class, named by the folder.  Images
  both at the top level and in sub-folders is an error (which class would they be?).
* images: files ending in `IMAGE_EXTENSIONS` (any case), hidden files and folders left out, in sorted order of
  their path relative to the folder (the same order on every machine).
* pixels: EXIF orientation applied; transparency (RGBA, LA, palette or grey with a transparent colour) composited
  over white; 16-bit grey scaled to 8 bits; then RGB (or grey, ITU-R 601-2 luma, with channels=1).
* size: centre crop to a square, then PIL's bilinear filter (`RESAMPLE`, antialiased when shrinking: the filter of
  `dataset.center_crop_resize`, here on 8-bit pixels) to image_size x image_size.
* test split: a file is held out when the first 8 bytes of SHA-256(relative path), read as a fraction of 2^64, fall
  below test_fraction: the same files on every machine, and adding files never moves others between splits.
* what cannot be used (a file that cannot be decoded, an image over max_pixels, floating-point pixels) is left out
  and listed in the sidecar's "skipped" with its reason, never a crash.

TFDS: a data set prepared here in a random-access format (array_record) is read with `tfds` data sources (no
TensorFlow; `tfds.testing.mock_data` works too); its train split and its test split (default "test", else
"validation") become the prepared train and test splits, in TFDS's order, labels from its ClassLabel "label" (none:
one class).  Pixels are stored as they are (pixel_max 1 for binarized_mnist's 0/1), resized only with image_size.

Neighbours: `experiments/prepare.py` is the command line; `prepared.py` writes the shards and the sidecar.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import numpy as np
import PIL.Image
import PIL.ImageOps

from gen_jax.data import prepared
from gen_jax.data.dataset import DatasetUnavailableError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm")
RESAMPLE = PIL.Image.Resampling.BILINEAR
# PIL's own decompression-bomb limit (it refuses twice this much outright).
DEFAULT_MAX_PIXELS = PIL.Image.MAX_IMAGE_PIXELS
_CHUNK = 256  # files decoded per round of the thread pool: bounds what waits in memory


class PrepareError(ValueError):
    """Input that cannot be prepared (a folder without images, an --out that exists, an unknown TFDS name …): the
    message says what was wrong and what to do, in one line.  Raised before anything is written."""


class _ImageFolder(NamedTuple):
    """What `_scan_folder` found: the images of a folder and their classes, in the order they are written.

    Attributes:
      root: the folder, absolute.
      class_names: one name per class, sorted.
      files: (path relative to root, label) pairs, sorted by path.
    """

    root: str
    class_names: tuple[str, ...]
    files: tuple[tuple[str, int], ...]


class _Unusable(Exception):
    """An input file left out of a prepared set; the message is the reason listed in the sidecar."""


# --- image folders -------------------------------------------------------------------------------------------


def _scan_folder(root: str) -> _ImageFolder:
    """Lists a folder's images and their classes (see the module docstring); PrepareError if it is not a folder, holds
    no images, or holds images both at its top level and in sub-folders."""
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise PrepareError(f"--images {root} is not a folder; give the folder that holds your images.")
    paths, others = [], 0
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = [s for s in subfolders if not s.startswith(".")]
        for name in names:
            if name.startswith("."):
                continue
            if name.lower().endswith(IMAGE_EXTENSIONS):
                paths.append(os.path.relpath(os.path.join(folder, name), root).replace(os.sep, "/"))
            else:
                others += 1
    if not paths:
        raise PrepareError(
            f"--images {root} holds no images (files ending in {', '.join(IMAGE_EXTENSIONS)}; {others} other files); "
            "give the folder that holds them."
        )
    paths.sort()
    top = [p for p in paths if "/" not in p]
    if len(top) == len(paths):
        return _ImageFolder(root, (os.path.basename(root) or "images",), tuple((p, 0) for p in paths))
    if top:
        raise PrepareError(
            f"--images {root} holds images both at its top level (e.g. {top[0]}) and in sub-folders, which are "
            "classes; move them into a sub-folder of their own."
        )
    class_names = tuple(sorted({p.split("/", 1)[0] for p in paths}))
    label = {name: i for i, name in enumerate(class_names)}
    return _ImageFolder(root, class_names, tuple((p, label[p.split("/", 1)[0]]) for p in paths))


def _held_out(relative_path: str, test_fraction: float) -> bool:
    """Whether the file at `relative_path` (as in `_ImageFolder.files`) belongs to the test split."""
    digest = hashlib.sha256(relative_path.encode()).digest()
    return int.from_bytes(digest[:8], "big") < test_fraction * 2.0**64


def center_crop_resize_u8(image: PIL.Image.Image, size: int) -> np.ndarray:
    """Centre-crops an 'L' or 'RGB' image to a square and resizes it with `RESAMPLE`: u8[size, size, C], C = 1 or 3."""
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    square = image.crop((left, top, left + side, top + side))
    if side != size:
        square = square.resize((size, size), RESAMPLE)
    pixels = np.asarray(square, np.uint8)
    return pixels[..., None] if pixels.ndim == 2 else pixels


def _flatten(image: PIL.Image.Image, channels: int) -> PIL.Image.Image:
    """An image of any mode as 'RGB' (channels=3) or 'L' (channels=1): transparency composited over white, 16-bit
    grey scaled to 8 bits.  _Unusable for floating-point pixels."""
    if image.mode == "F":
        raise _Unusable("floating-point pixels are not supported")
    if image.mode.startswith("I"):  # 16-bit grey (PNG's "I;16", or "I" holding 0..65535)
        grey = np.clip(np.rint(np.asarray(image, np.float64) / 257.0), 0, 255).astype(np.uint8)
        image = PIL.Image.fromarray(grey, "L")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = PIL.Image.alpha_composite(PIL.Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return image.convert("L" if channels == 1 else "RGB")


def _load_image(path: str, size: int, channels: int, max_pixels: int) -> np.ndarray:
    """One image file as it is prepared: u8[size, size, channels].  _Unusable (its message the reason) when the file
    cannot be decoded or is over max_pixels; the size is checked from the header, before the pixels are decoded."""
    try:
        with PIL.Image.open(path) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise _Unusable(f"{width}x{height} is over max_pixels={max_pixels}")
            return center_crop_resize_u8(_flatten(PIL.ImageOps.exif_transpose(image), channels), size)
    except _Unusable:
        raise
    except PIL.Image.DecompressionBombError as error:
        raise _Unusable(f"refused as a decompression bomb ({error})") from None
    except Exception as error:  # PIL raises many kinds (OSError, SyntaxError, ValueError, …) on a damaged file
        raise _Unusable(f"cannot be decoded ({type(error).__name__}: {' '.join(str(error).split())})") from None


def prepare_images(
    folder: str,
    out: str,
    image_size: int = 64,
    test_fraction: float = 0.1,
    channels: int = 3,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    workers: int = 2,
    progress: bool = True,
) -> dict:
    """Prepares a folder of images (see the module docstring) as the prepared directory `out`.

    Args:
      folder: the images; its top-level sub-folders are the classes.
      out: the directory to make; it must not exist or be empty.
      image_size: the side of the square images written.
      test_fraction: the share of files held out as the test split, in [0, 1); 0 writes no test split.
      channels: 3 (RGB) or 1 (grey).
      max_pixels: images with more pixels (width x height) are skipped, before they are decoded.
      workers: threads decoding images.
      progress: whether to show a progress bar (tqdm, on stderr).

    Returns:
      The sidecar written (`prepared.py`), with the files left out under "skipped".

    Raises:
      PrepareError: a bad argument, a folder without images, a split with no files, or an `out` that cannot be made;
        nothing is written.
    """
    _check_positive("image_size", image_size)
    _check_positive("max_pixels", max_pixels)
    _check_positive("workers", workers)
    if channels not in (1, 3):
        raise PrepareError(f"channels must be 1 (grey) or 3 (RGB); got {channels}.")
    if not 0 <= test_fraction < 1:
        raise PrepareError(f"test_fraction must lie in [0, 1); got {test_fraction}.")
    out = _check_out(out)
    scan = _scan_folder(folder)
    splits = {"train": [], "test": []}
    for path, label in scan.files:
        splits["test" if _held_out(path, test_fraction) else "train"].append((path, label))
    if not test_fraction:
        del splits["test"]
    for split, files in splits.items():
        if not files:
            raise PrepareError(
                f"--images {scan.root}: none of its {len(scan.files)} images falls in the {split} split with "
                f"test_fraction={test_fraction}; change test_fraction (0 for no test split) or add images."
            )
    shape = (image_size, image_size, channels)
    skipped = []

    def examples(split, bar) -> Iterator[tuple[np.ndarray, int]]:
        files = splits[split]
        read = lambda path: _load_image(os.path.join(scan.root, path), image_size, channels, max_pixels)
        for (path, label), result in zip(files, _map_in_order(read, [p for p, _ in files], workers)):
            bar.update()
            if isinstance(result, _Unusable):
                skipped.append({"file": path, "reason": str(result)})
            else:
                yield result, label

    source = {
        "kind": "images",
        "path": scan.root,
        "image_size": image_size,
        "channels": channels,
        "test_fraction": test_fraction,
        "max_pixels": max_pixels,
        "method": "EXIF orientation applied; transparency composited over white; centre crop to a square; "
        "PIL bilinear resize (antialiased when shrinking); test split: SHA-256 of the relative path below "
        "test_fraction",
    }
    with warnings.catch_warnings():  # images over PIL's limit are refused by our own check, with a reason
        warnings.simplefilter("ignore", PIL.Image.DecompressionBombWarning)
        return _write(
            out, list(splits), examples, shape, 255, scan.class_names, source, skipped, len(scan.files), progress
        )


# --- TFDS ----------------------------------------------------------------------------------------------------


def prepare_tfds(
    name: str,
    out: str,
    data_dir: str | None = None,
    train_split: str = "train",
    test_split: str | None = None,
    image_size: int | None = None,
    workers: int = 2,
    progress: bool = True,
) -> dict:
    """Prepares a TFDS image data set (see the module docstring) as the prepared directory `out`.

    Args:
      name: a TFDS name (``name/config:version`` works too).
      out: the directory to make; it must not exist or be empty.
      data_dir: the TFDS data directory; None = TFDS's own.
      train_split, test_split: the TFDS splits (TFDS slicing works: "train[:90%]") written as train and test;
        test_split None = "test", else "validation" where the data set has no "test".
      image_size: if given, images are centre-cropped and resized to image_size x image_size; else they are kept
        as they are and must all have one size.
      workers: threads decoding examples.
      progress: whether to show a progress bar.

    Returns:
      The sidecar written.

    Raises:
      PrepareError: an unknown name, a data set that is not an image data set or is not prepared here in a
        random-access format, a split it lacks, images of several sizes without image_size, or a bad `out`.
      DatasetUnavailableError: a shard of the TFDS data set cannot be read.  In every case nothing is written.
    """
    import tensorflow_datasets as tfds  # Lazy: only preparing from TFDS pays for importing it.

    from gen_jax.data.tfds_source import _image_layout

    if image_size is not None:
        _check_positive("image_size", image_size)
    _check_positive("workers", workers)
    out = _check_out(out)
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.DatasetNotFoundError:
        raise PrepareError(f"--tfds {name!r}: TFDS knows no such data set; see tfds.list_builders().") from None
    try:
        layout = _image_layout(name, builder)
    except ValueError as error:
        raise PrepareError(str(error)) from None
    known = set(builder.info.splits)  # empty under tfds.testing.mock_data
    if test_split is None:
        test_split = "validation" if known and "test" not in known and "validation" in known else "test"
    sources = {}
    for split, tfds_split in (("train", train_split), ("test", test_split)):
        base = tfds_split.split("[", 1)[0]
        if known and base not in known:
            raise PrepareError(f"--tfds {name!r} has no split {base!r}; it has {sorted(known)}.")
        sources[split] = _tfds_source(builder, name, tfds_split, data_dir)
    stored = builder.info.features["image"].shape
    if image_size is None and (stored[0] is None or stored[1] is None):
        raise PrepareError(f"--tfds {name!r} has images of several sizes; pass --image_size to crop and resize them.")
    channels = stored[2] or np.asarray(sources["train"][0]["image"]).shape[-1]
    shape = (image_size or stored[0], image_size or stored[1], channels)

    def read(source, i) -> tuple[np.ndarray, int]:
        example = source[i]
        image = np.asarray(example["image"], np.uint8)
        image = image.reshape(image.shape[:2] + (-1,))
        if image_size is not None:
            image = center_crop_resize_u8(PIL.Image.fromarray(image[..., 0] if channels == 1 else image), image_size)
        return image, int(example["label"]) if layout.has_labels else 0

    def examples(split, bar) -> Iterator[tuple[np.ndarray, int]]:
        source = sources[split]
        for example in _map_in_order(lambda i: read(source, i), range(len(source)), workers, catch=False):
            bar.update()
            if example[0].shape != shape:
                raise PrepareError(
                    f"--tfds {name!r}: images differ in size ({list(shape)} and {list(example[0].shape)}); pass "
                    "--image_size to crop and resize them to one square size."
                )
            yield example

    source = {
        "kind": "tfds",
        "name": name,
        "data_dir": data_dir,
        "splits": {"train": train_split, "test": test_split},
        "image_size": image_size,
        "method": "TFDS pixels as stored" + ("" if image_size is None else "; centre crop, PIL bilinear resize"),
    }
    total = sum(len(s) for s in sources.values())
    try:
        return _write(
            out, list(sources), examples, shape, layout.pixel_max, layout.class_names, source, [], total, progress
        )
    except (OSError, RuntimeError) as error:  # a TFDS shard cut short or overwritten: array_record says so
        raise DatasetUnavailableError(
            f"--tfds {name!r} cannot be read ({' '.join(str(error).split())}); prepare it again with TFDS."
        ) from None


def _tfds_source(builder, name: str, split: str, data_dir: str | None):
    """The random-access TFDS data source of `split`; PrepareError when it is not prepared in such a format here."""
    try:
        return builder.as_data_source(split=split)
    except (NotImplementedError, FileNotFoundError, ValueError, AssertionError) as error:
        where = f"--data_dir {data_dir}" if data_dir else "TFDS's default data_dir (~/tensorflow_datasets)"
        raise PrepareError(
            f"--tfds {name!r} split {split!r} is not prepared in a random-access format in {where} "
            f"({type(error).__name__}); prepare it with `tfds build {name} --file_format=array_record "
            "--data_dir=DIR` and pass --data_dir DIR."
        ) from None


# --- what both share -----------------------------------------------------------------------------------------


def _check_positive(flag: str, value) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise PrepareError(f"{flag} must be a positive integer; got {value!r}.")


def _check_out(out: str) -> str:
    """`out` as an absolute path that may be made: missing, or an empty directory; PrepareError otherwise."""
    out = os.path.abspath(out)
    if os.path.exists(out) and not (os.path.isdir(out) and not os.listdir(out)):
        raise PrepareError(
            f"--out {out} exists and is not an empty directory; prepare never overwrites: choose another."
        )
    return out


def _map_in_order(function: Callable, items: Sequence, workers: int, catch: bool = True) -> Iterator:
    """function(item) for each item, in order, computed by `workers` threads a chunk at a time (PIL decodes and
    resizes without holding the GIL).  With `catch`, an `_Unusable` is yielded in place of its result."""

    def call(item):
        try:
            return function(item)
        except _Unusable as unusable:
            if not catch:
                raise
            return unusable

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for start in range(0, len(items), _CHUNK):
            yield from pool.map(call, items[start : start + _CHUNK])


def _write(out, splits, examples, shape, pixel_max, class_names, source, skipped, total, progress):
    """Writes the examples of each split (`examples(split, bar)`: (u8[H, W, C], label) pairs, in order) into a hidden
    directory beside `out`, then the sidecar, then renames it to `out`; on any error the hidden directory is removed
    and `out` is left as it was."""
    from tqdm import tqdm

    parent = os.path.dirname(out)
    try:
        os.makedirs(parent, exist_ok=True)
        work = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.partial-", dir=parent)
    except OSError as error:
        raise PrepareError(
            f"--out {out} cannot be made ({error.strerror or error}); choose a place you can write."
        ) from None
    try:
        with tqdm(total=total, unit="image", desc=f"preparing {os.path.basename(out)}", disable=not progress) as bar:
            written = {split: prepared.write_shards(work, split, examples(split, bar), shape) for split in splits}
        for split, entry in written.items():
            if not entry["count"]:
                first = skipped[0] if skipped else {"file": "-", "reason": "-"}
                raise PrepareError(
                    f"no image of the {split} split could be used ({len(skipped)} skipped, e.g. {first['file']}: "
                    f"{first['reason']})."
                )
        sidecar = prepared.write_sidecar(
            work,
            {
                "image_shape": list(shape),
                "dtype": "uint8",
                "pixel_max": int(pixel_max),
                "num_classes": len(class_names),
                "class_names": list(class_names),
                "splits": written,
                "source": source,
                "skipped": skipped,
            },
        )
        os.chmod(work, 0o755)  # mkdtemp's 0o700 would hide the data from other users
        os.rename(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return sidecar
