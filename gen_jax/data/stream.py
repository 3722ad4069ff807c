"""Where the training split lives while a run trains: on the device, or streamed from the host a chunk at a time.

Both placements feed the same fused program the same batches (`batching.batch_indices` on the device,
`batching.batch_indices_numpy` on the host: batch k is the same rows either way), as `batching.Pixels` (u8 codes
looked up in an f32 table inside the step) where the data has at most 256 values, so the step sees the same f32
values whichever placement, device count or process count a run uses:

* ``device``: the whole split is put on every device once; each step gathers its batch inside the fused scan.
* ``stream``: before each chunk of K steps the host reads those steps' batch rows (one `read` of a `PreparedSource`,
  or of the in-memory split through `ArraySource`) and hands them to the program as scan inputs u8[K, B, H, W, C],
  one chunk ahead in a background thread, so reading overlaps the previous chunk's compute.  Each process reads only
  the rows of the global batch its own devices hold (`sharding.process_rows`) and the global array is assembled with
  `jax.make_array_from_process_local_data`.  A resumed run needs no iterator state: its position is the checkpoint's
  step.
* ``auto``: ``device`` when the split takes at most `DEVICE_SHARE` of a device's memory, else ``stream``.

The data a run trains on is recorded in ``<workdir>/data.json`` (its fingerprint); resuming on other data is refused.

Neighbours: `fused.py` (the programs that take either placement's inputs), `train.py` (the loop that calls `Feed`),
`prepared.py` (`PreparedSource`, `read_steps`).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
from collections.abc import Iterable

import jax
import numpy as np

from gen_jax.config import ConfigError
from gen_jax.data.batching import Pixels, encode_pixels, unit_table
from gen_jax.data.prepared import read_steps

PLACEMENTS = ("auto", "device", "stream")
# `auto` keeps the split on the device when it takes at most this share of one device's memory (the rest is left to
# the model, its optimizer state, activations and XLA's scratch).
DEVICE_SHARE = 0.5
DATA_RECORD = "data.json"
# Chunks read ahead of the one the device computes: one in flight while one waits, so a slow read has a chunk's slack.
_READ_AHEAD = 2
_READ_ROWS = 4096  # rows per read when a prepared split is read whole (the device placement)


class PlacementError(ConfigError):
    """The requested placement cannot hold the data (too large for the device, or not available for this run)."""


class DataMismatchError(ValueError):
    """A run would resume on data other than the data its checkpoints were trained on."""


class ArraySource:
    """An in-memory split read by rows like a `PreparedSource`: `read(indices)` -> (codes[B, H, W, C], i32[B]).

    Attributes:
      codes: u8[N, H, W, C] codes (or f32[N, H, W, C] images, for data of more than 256 values).
      table: f32[256] the codes' values, or None for f32 images.
      fingerprint: SHA-256 of the codes, their table and the labels.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        encoded = encode_pixels(np.asarray(images))
        self.codes, self.table = encoded if isinstance(encoded, Pixels) else (encoded, None)
        self.labels = np.asarray(labels, np.int32)
        self.image_shape = tuple(int(d) for d in self.codes.shape[1:])
        digest = hashlib.sha256(f"{self.codes.dtype}{list(self.codes.shape)}".encode())
        for array in (self.codes, self.labels) if self.table is None else (self.codes, self.table, self.labels):
            digest.update(np.ascontiguousarray(array).data)
        self.fingerprint = digest.hexdigest()

    def __len__(self) -> int:
        return len(self.labels)

    def read(self, indices) -> tuple[np.ndarray, np.ndarray]:
        indices = np.asarray(indices, np.int64).reshape(-1)
        return self.codes[indices], self.labels[indices]


def read_whole(source) -> tuple[np.ndarray, np.ndarray]:
    """Every row of `source` (codes [N, H, W, C], i32[N]): an `ArraySource`'s own arrays, else read `_READ_ROWS`
    rows a call into one array (so no list of all the records is held at once)."""
    if isinstance(source, ArraySource):
        return source.codes, source.labels
    codes, labels = np.empty((len(source), *source.image_shape), np.uint8), np.empty(len(source), np.int32)
    for start in range(0, len(source), _READ_ROWS):
        rows = np.arange(start, min(len(source), start + _READ_ROWS))
        codes[rows], labels[rows] = source.read(rows)
    return codes, labels


def source_table(source, binarization: str) -> np.ndarray | None:
    """The f32[256] table the step looks `source`'s codes up in: an `ArraySource`'s own (its images were preprocessed
    already), a `PreparedSource`'s pixels / pixel_max with `binarization`'s static threshold; None for f32 images."""
    if isinstance(source, ArraySource):
        return source.table
    return unit_table(source.pixel_max, binarization)


def split_bytes(source) -> int:
    """Bytes of `source`'s whole split on one device as the device placement holds it (codes and labels)."""
    itemsize = 1 if source_table(source, "none") is not None else 4
    return len(source) * (int(np.prod(source.image_shape)) * itemsize + 4)


def device_memory_bytes() -> int:
    """The memory of this process's first device (its allocator's limit); for a CPU device, the host's memory."""
    stats = jax.local_devices()[0].memory_stats() or {}
    if stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _size(nbytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if nbytes < 1000 or unit == "TB":
            return f"{nbytes:.3g} {unit}"
        nbytes /= 1000


def choose_placement(requested: str, nbytes: int, memory: int, population: bool = False) -> tuple[str, str]:
    """(placement, why): `requested` resolved against a split of `nbytes` on devices of `memory` bytes.

    Raises:
      PlacementError: "device" asked for a split over its budget (DEVICE_SHARE of `memory`); "stream" asked for a
        sweep's population (its members draw different batches, so each would need its own stream).
    """
    if requested not in PLACEMENTS:
        raise PlacementError(f"config.placement must be one of {PLACEMENTS}; got {requested!r}")
    budget = int(DEVICE_SHARE * memory)
    fits = nbytes <= budget
    sizes = f"the training split takes {_size(nbytes)}, the device budget is {_size(budget)}"
    sizes += f" ({DEVICE_SHARE:.0%} of {_size(memory)})"
    if population and requested == "stream":
        raise PlacementError(
            "config.placement='stream' cannot train a sweep's population (each member draws its own batches); "
            "use placement 'device' or 'auto'"
        )
    if requested == "device" and not fits:
        raise PlacementError(
            f"config.placement='device' cannot hold the data: {sizes}; use placement 'stream' or 'auto'"
        )
    if requested == "auto" and population and not fits:
        raise PlacementError(f"a sweep's population trains on the device, and {sizes}; train its members one by one")
    if requested == "auto":
        return ("device", f"auto: it fits; {sizes}") if fits else ("stream", f"auto: it does not fit; {sizes}")
    return requested, f"config.placement; {sizes}"


def resolve_placement(config, source, population: bool = False) -> tuple[str, str]:
    """(placement, why) for a run of `config` (its `placement`, "auto" where a stored config lacks it) training on
    `source`; PlacementError in one line, before any compute, when that placement cannot be."""
    requested = config.get("placement", "auto")
    return choose_placement(requested, split_bytes(source), device_memory_bytes(), population)


def check_data(workdir: str, source, resumed: bool) -> dict:
    """`<workdir>/data.json`'s record of `source` ({fingerprint, count, image_shape}), checked against the one a
    resumed run wrote.

    Raises:
      DataMismatchError: `resumed` and the recorded fingerprint differs from `source`'s; nothing was changed.
    """
    record = {"fingerprint": source.fingerprint, "count": len(source), "image_shape": list(source.image_shape)}
    path = os.path.join(workdir, DATA_RECORD)
    if resumed and os.path.isfile(path):
        with open(path) as f:
            old = json.load(f)
        if old.get("fingerprint") != record["fingerprint"]:
            raise DataMismatchError(
                f"{workdir} was trained on other data ({old.get('count')} images {old.get('image_shape')}, fingerprint "
                f"{str(old.get('fingerprint'))[:12]}…; this data: {record['count']} images {record['image_shape']}, "
                f"{record['fingerprint'][:12]}…): resume it on the data it was trained on, or start in a new --workdir"
            )
    return record


def make_feed(config, source, mesh, data_key, population: bool = False) -> Feed:
    """The `Feed` of a run of `config` (reads placement, batch_size, binarization) training on `source` over `mesh`,
    in the placement `resolve_placement` gives; which one and why is printed once (by process 0)."""
    placement, why = resolve_placement(config, source, population)
    if jax.process_index() == 0:
        print(f"Data placement: {placement} ({why}).", flush=True)
    table = source_table(source, config.binarization)
    return Feed(source, table, placement, mesh, data_key, config.batch_size)


def _on_host(key: jax.Array) -> jax.Array:
    """This process's copy of a replicated key on the host's CPU device, so that drawing the batch order there
    (`batching.feistel_round_keys`, in the reading thread) never queues behind the accelerator's running program."""
    try:
        cpu = jax.local_devices(backend="cpu")[0]
    except RuntimeError:
        return key
    return jax.device_put(key.addressable_data(0), cpu)


class Feed:
    """The data inputs of each chunk's program, (images, labels), in one placement.

    `feed(first, end)` gives the inputs of the chunk of steps first … end - 1; `example(length)` their shapes (with
    shardings) for compiling ahead; `streamed` whether the program takes per-chunk batches (`fused.make_multi_step`).
    After `start(plan)`, a streamed feed reads the chunks of `plan` in that order, `_READ_AHEAD` ahead, in a thread
    (a chunk asked for out of that order is read when asked).
    """

    def __init__(self, source, table, placement: str, mesh, data_key, batch_size: int):
        from gen_jax import sharding

        self.source, self.placement, self.streamed = source, placement, placement == "stream"
        self.data_key, self.batch_size = _on_host(data_key), batch_size
        replicated = sharding.replicated(mesh)
        self.table = None if table is None else sharding.put_global(np.asarray(table, np.float32), replicated)
        self.sharding = sharding.NamedSharding(mesh, sharding.PartitionSpec(None, sharding.DATA_AXIS))
        self.rows = sharding.process_rows(self.sharding, (1, batch_size), axis=1)
        self.pending: list[tuple[tuple[int, int], concurrent.futures.Future]] = []
        self.plan = iter(())
        self.pool = concurrent.futures.ThreadPoolExecutor(1, "gen_jax-stream") if self.streamed else None
        self.whole = None
        if not self.streamed:
            codes, labels = read_whole(source)
            self.whole = (self._images(sharding.put_global(codes, replicated)), sharding.put_global(labels, replicated))

    def start(self, plan: Iterable[tuple[int, int]]) -> None:
        """Begins reading the chunks of `plan` ((first, end) steps each, in the order they will be asked for)."""
        self.plan = iter(plan)
        for _ in range(_READ_AHEAD):
            self._read_next()

    def _images(self, codes):
        return codes if self.table is None else Pixels(codes, self.table)

    def _read_next(self) -> None:
        if self.pool is None:
            return
        chunk = next(self.plan, None)
        if chunk is not None:
            self.pending.append((chunk, self.pool.submit(self._read, *chunk)))

    def _read(self, first: int, end: int):
        """Chunk first … end - 1's batches (this process's rows) read and placed on the devices as global arrays."""
        codes, labels = read_steps(self.source, self.data_key, first, end - first, self.batch_size, self.rows)
        length = end - first
        images = jax.make_array_from_process_local_data(
            self.sharding, codes, (length, self.batch_size, *self.source.image_shape)
        )
        labels = jax.make_array_from_process_local_data(self.sharding, labels, (length, self.batch_size))
        return self._images(images), labels

    def __call__(self, first: int, end: int):
        if not self.streamed:
            return self.whole
        if not self.pending or self.pending[0][0] != (first, end):
            self.pending.insert(0, ((first, end), self.pool.submit(self._read, first, end)))
        (_, future), self.pending = self.pending[0], self.pending[1:]
        self._read_next()
        return future.result()

    def example(self, length: int):
        """(images, labels) as the program of a `length`-step chunk takes them: the device arrays themselves, or
        `jax.ShapeDtypeStruct`s of one chunk's batches."""
        if not self.streamed:
            return self.whole
        dtype = np.uint8 if self.table is not None else np.float32
        shape = (length, self.batch_size, *self.source.image_shape)
        images = jax.ShapeDtypeStruct(shape, dtype, sharding=self.sharding)
        labels = jax.ShapeDtypeStruct(shape[:2], np.int32, sharding=self.sharding)
        return self._images(images), labels

    def close(self) -> None:
        """Stops reading ahead (a read under way finishes; nothing waits for it)."""
        if self.pool is not None:
            for _, future in self.pending:
                future.cancel()
            self.pool.shutdown(wait=False)
