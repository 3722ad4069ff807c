"""Reading prepared data on the host: images/s of shuffled batches, as a streamed training loop reads them.

    python -m benchmarks.read_throughput [--num_images 20000] [--image_size 64] [--batch_size 256] [--repeats 5]
        [--dir D] [--json out.json]

Writes `num_images` random uint8 images (image_size x image_size x 3) as a prepared directory (`gen_jax/data/
prepared.py`: ArrayRecord shards, group_size:1) in a temporary folder, or reads the prepared directory `--dir`.  Then,
in one process, reads batch after batch as the loop would: batch k's rows from the host's batch order
(`data.batch_indices_numpy`, a fresh permutation each epoch), then `PreparedSource.read` (one `__getitems__` of
Grain's ArrayRecord data source, decoded into u8[B, H, W, C] and i32[B]).  A repeat reads `batches` batches; the
reported rate is the median over the repeats of images per second, the index computation included; the rate of
the reads alone (indices computed beforehand) and of reading the same rows one record at a time (Grain's per-element
path, on a few batches) are reported beside it.  The data was just written, so it is read from the page cache: this
measures the reader, not the disk.  The machine's load averages before and after, and the other processes that
used the CPU meanwhile, are part of the record: the rate depends on what else runs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time

import numpy as np

TARGET_IMAGES_PER_S = 20_000  # issue 28's target at 64x64x3, batch 256, one process


def make_random_set(directory: str, num_images: int, image_size: int, seed: int, num_test: int = 0) -> None:
    """Writes `num_images` uniformly random u8[image_size, image_size, 3] images (labels i % 10) as the train split
    of a prepared directory, and `num_test` more as its test split where positive."""
    from gen_jax.data import prepared

    shape = (image_size, image_size, 3)
    rng = np.random.default_rng(seed)
    splits = {}
    for split, count in (("train", num_images), ("test", num_test)):
        if count:
            examples = ((rng.integers(0, 256, shape, dtype=np.uint8), i % 10) for i in range(count))
            splits[split] = prepared.write_shards(directory, split, examples, shape)
    sidecar = {
        "image_shape": list(shape),
        "dtype": "uint8",
        "pixel_max": 255,
        "num_classes": 10,
        "class_names": [str(i) for i in range(10)],
        "splits": splits,
        "source": {"kind": "random", "seed": seed},
        "skipped": [],
    }
    prepared.write_sidecar(directory, sidecar)


def measure(directory: str, batch_size: int, batches: int, repeats: int, per_element_batches: int, seed: int) -> dict:
    """Images/s of `repeats` runs of `batches` shuffled batch reads (see the module docstring)."""
    import jax

    from gen_jax import data
    from gen_jax.data.prepared import PreparedSource

    source = PreparedSource(directory)
    n = len(source)
    key = jax.random.key(seed)
    source.read(data.batch_indices_numpy(key, 0, batch_size, n))  # open the shards' readers
    with_indices, reads_only = [], []
    for repeat in range(repeats):
        steps = range(repeat * batches, (repeat + 1) * batches)
        start = time.perf_counter()
        for step in steps:
            images, labels = source.read(data.batch_indices_numpy(key, step, batch_size, n))
        with_indices.append(batches * batch_size / (time.perf_counter() - start))
        indices = [data.batch_indices_numpy(key, step, batch_size, n) for step in steps]
        start = time.perf_counter()
        for rows in indices:
            images, labels = source.read(rows)
        reads_only.append(batches * batch_size / (time.perf_counter() - start))
    assert (
        images.shape == (batch_size, *source.image_shape) and images.dtype == np.uint8 and labels.shape == (batch_size,)
    )
    start = time.perf_counter()
    for step in range(per_element_batches):
        records = [source._source[int(i)] for i in data.batch_indices_numpy(key, step, batch_size, n)]
    per_element = per_element_batches * batch_size / (time.perf_counter() - start)
    assert len(records) == batch_size
    return {
        "num_images": n,
        "image_shape": list(source.image_shape),
        "batch_size": batch_size,
        "batches_per_repeat": batches,
        "repeats": repeats,
        "images_per_s": statistics.median(with_indices),
        "images_per_s_repeats": with_indices,
        "reads_only_images_per_s": statistics.median(reads_only),
        "reads_only_images_per_s_repeats": reads_only,
        "per_element_images_per_s": per_element,
        "per_element_batches": per_element_batches,
        "megabytes_per_s": statistics.median(with_indices) * int(np.prod(source.image_shape)) / 1e6,
        "shards": len(source.sidecar["splits"]["train"]["shards"]),
        "bytes_on_disk": sum(s["bytes"] for s in source.sidecar["splits"]["train"]["shards"]),
    }


def busy_processes(seconds: float = 1.0, threshold: float = 0.1) -> list[str]:
    """The other processes that used more than `threshold` of a core over `seconds` (from /proc), busiest first,
    as "name (share of a core)"; empty where /proc cannot be read."""

    def cpu_times() -> dict[int, tuple[str, int]]:
        times = {}
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            name, fields = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
            times[int(pid)] = (name, int(fields[11]) + int(fields[12]))  # utime + stime, in clock ticks
        return times

    try:
        before = cpu_times()
        time.sleep(seconds)
        after = cpu_times()
    except OSError:
        return []
    ticks = os.sysconf("SC_CLK_TCK") * seconds
    shares = [
        (name, (t - before[pid][1]) / ticks)
        for pid, (name, t) in after.items()
        if pid in before and pid != os.getpid() and (t - before[pid][1]) / ticks > threshold
    ]
    return [f"{name} ({share:.2f})" for name, share in sorted(shares, key=lambda s: -s[1])]


def load_note(record: dict) -> str:
    """One sentence on what else used the machine's cores during the measurement, from the record's own fields."""
    busy = record["other_busy_processes_before"] + record["other_busy_processes_after"]
    load = record["load_average_before_1_5_15_min"][0]
    cores = record["machine"]["cpu_count"]
    if not busy and load < 0.5 * cores:
        return f"the machine was otherwise idle (1-minute load average {load} on {cores} cores)"
    return (
        f"other processes were running on the {cores} cores (1-minute load average {load} before the run; busy "
        f"processes before / after it, as share of a core: {', '.join(busy) or 'none'}): the rates are those of a "
        "shared machine"
    )


def environment() -> dict:
    """Where and when: the host, its load, and the versions of what reads."""
    import array_record
    import grain
    import jax

    try:
        with open("/proc/cpuinfo") as f:
            processor = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        processor = ""
    versions = {"python": platform.python_version(), "numpy": np.__version__, "grain": grain.__version__}
    versions["array_record"] = getattr(array_record, "__version__", _distribution_version("array-record"))
    versions["jax"] = jax.__version__
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {
            "platform": platform.platform(),
            "processor": processor or platform.machine(),
            "cpu_count": os.cpu_count(),
        },
        "versions": versions,
    }


def _distribution_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num_images", type=int, default=20_000, help="images of the generated set")
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--batches", type=int, default=200, help="batches read per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--per_element_batches", type=int, default=10, help="batches read one record at a time")
    parser.add_argument("--dir", help="read this prepared directory instead of generating one")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the record here")
    args = parser.parse_args(argv)

    record = {"command": shlex.join(["python", "-m", "benchmarks.read_throughput", *(argv or sys.argv[1:])])}
    record.update(environment())
    with tempfile.TemporaryDirectory(prefix="read_throughput_") as scratch:
        directory = args.dir
        if directory is None:
            directory = scratch
            start = time.perf_counter()
            make_random_set(directory, args.num_images, args.image_size, args.seed)
            record["generate_s"] = time.perf_counter() - start
        record["load_average_before_1_5_15_min"] = [round(x, 2) for x in os.getloadavg()]
        record["other_busy_processes_before"] = busy_processes()
        record["result"] = measure(
            directory, args.batch_size, args.batches, args.repeats, args.per_element_batches, args.seed
        )
        record["load_average_after_1_5_15_min"] = [round(x, 2) for x in os.getloadavg()]
        record["other_busy_processes_after"] = busy_processes()
    result = record["result"]
    record["note"] = load_note(record)
    record["target_images_per_s"] = TARGET_IMAGES_PER_S
    record["meets_target"] = result["images_per_s"] >= TARGET_IMAGES_PER_S
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(record, f, indent=2)
            f.write("\n")
    shape = "x".join(map(str, result["image_shape"]))
    print(
        f"{result['images_per_s']:,.0f} images/s ({shape}, batch {result['batch_size']}, shuffled; reads alone "
        f"{result['reads_only_images_per_s']:,.0f}; one record at a time {result['per_element_images_per_s']:,.0f}); "
        f"target {TARGET_IMAGES_PER_S:,}; load average before {record['load_average_before_1_5_15_min']}"
    )
    return record


if __name__ == "__main__":
    main()
