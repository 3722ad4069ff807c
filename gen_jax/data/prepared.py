"""Prepared data: images as uint8 in sharded ArrayRecord files, described by a JSON sidecar, read a batch at a time.

A prepared directory holds, for each split ("train", and "test" where there is one), shards
``<split>-00000.array_record``, ``<split>-00001.array_record``, … and one sidecar, ``prepared.json``:

* ``image_shape`` [H, W, C], ``dtype`` "uint8", ``pixel_max`` (the value of a full pixel: 255, or 1 for data stored
  as 0/1), ``num_classes``, ``class_names``, ``source`` (what it was made from, and how), ``skipped`` (the input
  files left out, each with its reason);
* ``splits``: per split its ``count`` and its ``shards``, each with its ``file``, ``count``, ``bytes`` and ``crc32``;
* ``fingerprint``: a SHA-256 over everything that fixes the data (`_fingerprint`): two directories with the same
  fingerprint hold the same examples in the same order.

One record is one example: its label (int32, little-endian, 4 bytes) followed by its image (uint8 H·W·C, row-major
HWC).  Shards are written with ArrayRecord's ``group_size:1`` (each record its own chunk, zstd-compressed), so any
record is read without its neighbours; `PreparedSource.read` reads a whole batch's rows with one ``__getitems__``
of Grain's ArrayRecord data source.

Neighbours: `prepare.py` makes these directories (`python -m experiments.prepare`); `batching.batch_indices_numpy`
says which rows batch k holds.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from collections.abc import Iterable, Sequence

import numpy as np

from gen_jax.data.dataset import DatasetUnavailableError

PREPARED_SIDECAR = "prepared.json"
_FORMAT = "gen_jax.prepared/1"
_RECORD = "label int32 little-endian (4 bytes), then the image uint8 H*W*C row-major (HWC)"
# group_size:1 makes every record its own chunk (random access reads one chunk); zstd:3 is zstd's own default level.
_WRITER_OPTIONS = "group_size:1,zstd:3"
_LABEL_BYTES = 4
_SHARD_BYTES = 256 << 20  # records per shard are chosen so that a shard holds about this many bytes


def _encode_record(image: np.ndarray, label: int) -> bytes:
    """One example as a record: label int32 little-endian, then the image u8[H, W, C] row-major."""
    return np.int32(label).astype("<i4").tobytes() + np.ascontiguousarray(image, np.uint8).tobytes()


def _decode_records(records: Sequence[bytes], image_shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Records of `_encode_record` back to (u8[B, H, W, C], i32[B]); ValueError if a record has the wrong length."""
    size = _LABEL_BYTES + int(np.prod(image_shape))
    joined = b"".join(records)
    if len(joined) != size * len(records) or any(len(r) != size for r in records):
        raise ValueError(f"a record is not {size} bytes long (label + {list(image_shape)} uint8 pixels)")
    rows = np.frombuffer(joined, np.uint8).reshape(len(records), size)
    labels = rows[:, :_LABEL_BYTES].copy().view("<i4").reshape(-1).astype(np.int32)
    images = rows[:, _LABEL_BYTES:].reshape(len(records), *image_shape).copy()
    return images, labels


def _fingerprint(sidecar: dict) -> str:
    """SHA-256 (hex) of what fixes a prepared set's examples: format, shape, dtype, pixel scale, classes, and every
    split's count and shards (file, count, bytes, CRC32).  Not its source path, its skipped files or its location:
    a copied or moved directory keeps its fingerprint."""
    fixed = {key: sidecar[key] for key in ("format", "image_shape", "dtype", "pixel_max", "num_classes", "class_names")}
    fixed["splits"] = sidecar["splits"]
    return hashlib.sha256(json.dumps(fixed, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _file_crc32(path: str) -> int:
    """CRC-32 (zlib's) of a file's bytes, read in 1 MiB blocks."""
    crc = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            crc = zlib.crc32(block, crc)
    return crc


def write_shards(
    directory: str, split: str, examples: Iterable[tuple[np.ndarray, int]], image_shape: tuple[int, int, int]
) -> dict:
    """Writes `examples` ((u8[H, W, C], label) pairs, in order) as the shards of `split` in `directory`.

    Returns the split's sidecar entry: {"count", "shards": [{"file", "count", "bytes", "crc32"}, …]}.  A split with
    no examples has no shards.
    """
    from array_record.python.array_record_module import ArrayRecordWriter

    per_shard = max(1, _SHARD_BYTES // (_LABEL_BYTES + int(np.prod(image_shape))))
    shards, writer, in_shard = [], None, 0

    def close():
        writer.close()
        path = os.path.join(directory, shards[-1]["file"])
        shards[-1].update(count=in_shard, bytes=os.path.getsize(path), crc32=_file_crc32(path))

    for image, label in examples:
        if image.shape != tuple(image_shape) or image.dtype != np.uint8:
            raise ValueError(f"an image of split {split!r} is {image.dtype}{list(image.shape)}, not uint8{image_shape}")
        if writer is None or in_shard == per_shard:
            if writer is not None:
                close()
            shards.append({"file": f"{split}-{len(shards):05d}.array_record"})
            writer, in_shard = ArrayRecordWriter(os.path.join(directory, shards[-1]["file"]), _WRITER_OPTIONS), 0
        writer.write(_encode_record(image, label))
        in_shard += 1
    if writer is not None:
        close()
    return {"count": sum(s["count"] for s in shards), "shards": shards}


def write_sidecar(directory: str, sidecar: dict) -> dict:
    """Completes `sidecar` with its format and fingerprint and writes it as `directory`/prepared.json; returns it."""
    sidecar = {"format": _FORMAT, "record": _RECORD, **sidecar}
    sidecar["fingerprint"] = _fingerprint(sidecar)
    with open(os.path.join(directory, PREPARED_SIDECAR), "w") as f:
        json.dump(sidecar, f, indent=1)
        f.write("\n")
    return sidecar


def read_sidecar(directory: str) -> dict:
    """The sidecar of a prepared directory, checked: DatasetUnavailableError in one line when the directory or its
    sidecar is missing, unreadable, of another format, or does not match its own fingerprint."""
    path = os.path.join(directory, PREPARED_SIDECAR)
    if not os.path.isdir(directory):
        raise DatasetUnavailableError(f"Prepared data {directory} is not a directory.")
    if not os.path.isfile(path):
        raise DatasetUnavailableError(
            f"{directory} has no {PREPARED_SIDECAR}: it is not a prepared data directory (or its preparation did not "
            "finish); make one with `python -m experiments.prepare`."
        )
    try:
        with open(path) as f:
            sidecar = json.load(f)
        if sidecar.get("format") != _FORMAT:
            raise ValueError(f"format {sidecar.get('format')!r}, expected {_FORMAT!r}")
        if sidecar["fingerprint"] != _fingerprint(sidecar):
            raise ValueError("its fingerprint does not match its contents")
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DatasetUnavailableError(
            f"{path} is damaged ({error}); prepare the data again with `python -m experiments.prepare`."
        ) from None
    return sidecar


class PreparedSource:
    """One split of a prepared directory, read by rows: `read(indices)` -> (u8[B, H, W, C], i32[B]).

    Opening reads the sidecar and checks that every shard is there with its recorded size (cheap); `verify()` also
    checks their CRC-32s (reads every byte).  Either fails with a one-line `DatasetUnavailableError` naming the
    directory and the shard.  Reads are thread-safe (Grain's ArrayRecord data source shares one reader per shard).

    Attributes:
      directory, split: what was opened.
      image_shape: (H, W, C).  num_classes, class_names, pixel_max: as in the sidecar.
      fingerprint: the sidecar's fingerprint (the whole directory's, every split's).
    """

    def __init__(self, directory: str, split: str = "train"):
        self.directory = os.path.abspath(directory)
        self.sidecar = read_sidecar(self.directory)
        if split not in self.sidecar["splits"]:
            raise DatasetUnavailableError(
                f"Prepared data {self.directory} has no {split!r} split; it has {sorted(self.sidecar['splits'])}."
            )
        self.split = split
        self.image_shape = tuple(int(d) for d in self.sidecar["image_shape"])
        self.num_classes = int(self.sidecar["num_classes"])
        self.class_names = tuple(self.sidecar["class_names"])
        self.pixel_max = int(self.sidecar["pixel_max"])
        self.fingerprint = self.sidecar["fingerprint"]
        self._shards = self.sidecar["splits"][split]["shards"]
        self._count = int(self.sidecar["splits"][split]["count"])
        for shard in self._shards:
            path = self._path(shard)
            if not os.path.isfile(path):
                self._damaged(shard, "is missing")
            if os.path.getsize(path) != shard["bytes"]:
                self._damaged(shard, f"has {os.path.getsize(path)} bytes, not the {shard['bytes']} it was written with")
        import grain  # Lazy: only a streamed run pays for importing Grain.

        # "file[start:end]" names the records of each shard without opening it (the counts are the sidecar's).
        self._source = grain.sources.ArrayRecordDataSource([f"{self._path(s)}[0:{s['count']}]" for s in self._shards])

    def __len__(self) -> int:
        return self._count

    def read(self, indices: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The examples at `indices` (ints in [0, len)), in that order, with one `__getitems__` call.

        Returns:
          (u8[B, H, W, C], i32[B]), B = len(indices); fresh, writable arrays.
        """
        indices = np.asarray(indices, np.int64).reshape(-1)
        if indices.size and (indices.min() < 0 or indices.max() >= self._count):
            raise IndexError(f"indices must lie in [0, {self._count}); got [{indices.min()}, {indices.max()}].")
        try:
            records = self._source.__getitems__(indices.tolist()) if indices.size else []
            return _decode_records(records, self.image_shape)
        except (OSError, RuntimeError, ValueError) as error:
            raise DatasetUnavailableError(
                f"Prepared data {self.directory} ({self.split}) cannot be read ({' '.join(str(error).split())}); "
                "check it with PreparedSource.verify() or prepare it again."
            ) from None

    def verify(self) -> None:
        """Checks every shard's CRC-32 against the sidecar (reads all of them); DatasetUnavailableError naming the
        first damaged shard."""
        for shard in self._shards:
            if _file_crc32(self._path(shard)) != shard["crc32"]:
                self._damaged(shard, "does not match its CRC-32")

    def _path(self, shard: dict) -> str:
        return os.path.join(self.directory, shard["file"])

    def _damaged(self, shard: dict, state: str):
        raise DatasetUnavailableError(
            f"Prepared data {self.directory}: shard {shard['file']} {state}; copy it back or prepare the data again."
        )


def read_steps(
    source: PreparedSource, key, first_step: int, num_steps: int, batch_size: int, rows: slice = slice(None)
) -> tuple[np.ndarray, np.ndarray]:
    """The batches of steps first_step … first_step + num_steps - 1, read on the host as a fused scan takes them.

    Batch k holds the rows `batching.batch_indices_numpy(key, k, batch_size, len(source))`, the rows the device's
    `get_batch(…, key, k, batch_size)` gathers; `rows` keeps a part of each batch (the part this process's devices
    hold, e.g. slice(64, 128)).  All the steps' rows are read with one `source.read`.

    Returns:
      (u8[num_steps, b, H, W, C], i32[num_steps, b]), b the length of `rows` within batch_size.
    """
    from gen_jax.data.batching import batch_indices_numpy

    indices = np.stack(
        [
            batch_indices_numpy(key, step, batch_size, len(source))[rows]
            for step in range(first_step, first_step + num_steps)
        ]
    )
    images, labels = source.read(indices.reshape(-1))
    return images.reshape(*indices.shape, *source.image_shape), labels.reshape(indices.shape)
