"""Streamed against on-device training, and the memory of training from a large prepared set.

    python -m benchmarks.stream_throughput [--config experiments/configs/vae_conv_cifar10.py] [--image_size 32]
        [--batch_size 64] [--chunk 10] [--chunks 6] [--repeats 3] [--num_images 4096]
        [--rss_images 1000000] [--rss_image_size 64] [--rss_steps 100] [--scratch DIR] [--json out.json]

Steps/s: writes `num_images` random uint8 images (image_size² × 3) as a prepared directory, builds the model of
`--config` on it, and runs the loop's own program (`train.jit_multi_step`, compiled ahead) fed by the loop's own
`data.stream.Feed`, in both placements in the same process: ``device`` (the split on the device, batches gathered in
the fused scan) and ``stream`` (each chunk's batches read from the prepared directory on the host, one chunk ahead in
a thread, scanned as u8[K, B, H, W, C]).  A repeat times `chunks` chunks of `chunk` steps of each placement, one
after the other from a fresh state (the first chunk, the runtime's warm-up, is not timed); the record gives each
placement's median over the repeats and their ratio (issue 28's target: streamed ≥ 0.95× on-device).

Memory: writes `rss_images` random images (rss_image_size² × 3, and `rss_test_images` more as the test split) as a
prepared directory in `--scratch` (or reads `--rss_dir`), then trains the same model streamed from it for `rss_steps`
steps twice, each in a child process whose peak resident set size (`ru_maxrss`) is reported: the training loop
(`train.train`), whose target is under 2 GB for 1,000,000 images at 64×64×3 (12 GB of uint8; the f32 path of before
would hold 48 GB), and the whole command `python -m experiments.main` (data with its fixed in-memory sample, build,
compile, training, the final evaluation and figures).  `--rss_images 0` skips both.

The machine's load averages and the other busy processes before and after are part of the record
(`read_throughput.load_note`): the rates are those of the machine as it was.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks.read_throughput import busy_processes, environment, load_note, make_random_set

TARGET_RATIO = 0.95  # streamed steps/s over on-device steps/s (issue 28)
TARGET_RSS_BYTES = 2 * 1024**3  # peak RSS training from 1,000,000 images at 64x64x3 (issue 28)


def load_config(path: str, directory: str, batch_size: int, num_steps: int):
    """The config at `path` (its `get_config()`) training on the prepared `directory`."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("benchmark_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    config.dataset, config.image_size, config.batch_size = directory, 0, batch_size
    config.num_steps, config.log_every, config.eval_every = num_steps, num_steps, num_steps
    config.checkpoint_every, config.write_figures = num_steps, False
    if "iwae_k" in config:
        config.iwae_k = 0
    return config


def small_dataset(source, count: int = 512):
    """The first `count` rows of a prepared split as an in-memory `Dataset` (train and test), for building a task
    without loading a large split whole."""
    from gen_jax import data

    images, labels = source.read(np.arange(min(count, len(source))))
    pixels = data.unit_pixels(images, source.pixel_max)
    names = source.class_names
    return data.Dataset("benchmark", pixels, labels, pixels, labels, source.num_classes, names)


def steps_per_second(config, directory: str, chunk: int, chunks: int, repeats: int) -> dict:
    """Median steps/s of each placement over `repeats` alternating repeats (see the module docstring)."""
    import jax

    from gen_jax import data, keys, sharding, tasks, train
    from gen_jax.data import stream

    source = data.PreparedSource(directory)
    task = tasks.get(config.family).make_task(config, small_dataset(source))
    mesh, streams = sharding.make_mesh(), keys.loop_streams(config.seed)
    table = stream.source_table(source, config.binarization)
    feeds = {p: stream.Feed(source, table, p, mesh, streams["data"], config.batch_size) for p in ("device", "stream")}
    state, state_sharding = train.init_sharded_state(task, streams["init"], mesh)
    programs = {}
    for placement, feed in feeds.items():
        jitted = train.jit_multi_step(task.train_step, config.batch_size, mesh, state_sharding, streamed=feed.streamed)
        example = (*feed.example(chunk), streams["train"], streams["data"])
        programs[placement] = jitted.lower(state, *example, chunk).compile()
    rates = {placement: [] for placement in feeds}
    for repeat in range(repeats):
        for placement, feed in feeds.items():
            state = train.init_sharded_state(task, streams["init"], mesh)[0]
            offset = repeat * (chunks + 1) * chunk  # fresh batches each repeat: the reads are not of cached rows
            plan = [(offset + i * chunk, offset + (i + 1) * chunk) for i in range(chunks + 1)]
            feed.start(plan)
            for i, (first, end) in enumerate(plan):
                state, metrics = programs[placement](state, *feed(first, end), streams["train"], streams["data"])
                if i == 0:
                    jax.block_until_ready(metrics)
                    started = time.perf_counter()
            jax.block_until_ready((state, metrics))
            rates[placement].append(chunks * chunk / (time.perf_counter() - started))
    for feed in feeds.values():
        feed.close()
    medians = {placement: statistics.median(values) for placement, values in rates.items()}
    return {
        "model": config.name,
        "image_shape": list(source.image_shape),
        "batch_size": config.batch_size,
        "chunk_steps": chunk,
        "timed_chunks": chunks,
        "repeats": repeats,
        "steps_per_s": rates,
        "median_steps_per_s": medians,
        "stream_over_device": medians["stream"] / medians["device"],
    }


def measured(command: list[str]) -> tuple[str, int, float]:
    """Runs `command` as a child process: (its stdout, its own peak RSS in bytes (`os.wait4`'s ru_maxrss), its wall
    time in seconds); RuntimeError with the end of its stderr when it fails."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if child.returncode:
            raise RuntimeError(f"the memory run {shlex.join(command[1:4])} failed: {err.read()[-2000:]}")
        return out.read(), usage.ru_maxrss * 1024, wall  # Linux: KiB


def peak_rss(config_path: str, directory: str, batch_size: int, steps: int) -> dict:
    """The memory of training `config_path`'s model `steps` steps streamed from the prepared `directory`, measured
    twice, each in a child process of its own: "training", the loop itself (`train.train` fed the directory, the
    model built on 512 of its images, no evaluation data held), and "command", the command
    `python -m experiments.main` on the directory (data with its in-memory sample, build, compile, training, final
    evaluation and figures).  Each: peak RSS in bytes and wall time."""
    from gen_jax.data import PreparedSource

    source = PreparedSource(directory)
    training = [sys.executable, "-m", "benchmarks.stream_throughput", "--child_rss", directory]
    training += ["--config", config_path, "--batch_size", str(batch_size), "--rss_steps", str(steps)]
    _, training_peak, training_wall = measured(training)
    with tempfile.TemporaryDirectory(prefix="stream_rss_") as workdir:
        command = [sys.executable, "-m", "experiments.main", "--config", config_path, "--workdir", workdir]
        overrides = memory_run_overrides(load_config(config_path, directory, batch_size, steps), steps)
        command += [f"--config.{key}={value}" for key, value in overrides]
        printed, command_peak, command_wall = measured(command)
    return {
        "peak_rss_bytes": training_peak,
        "wall_s": round(training_wall, 1),
        "images": len(source),
        "test_images": len(PreparedSource(directory, "test")),
        "image_shape": list(source.image_shape),
        "steps": steps,
        "batch_size": batch_size,
        "command": {
            "command": shlex.join(["python", *command[1:6], "<a temporary directory>", *command[7:]]),
            "peak_rss_bytes": command_peak,
            "wall_s": round(command_wall, 1),
            "printed": [line for line in printed.splitlines() if "held in memory" in line],
        },
    }


def child_rss(config_path: str, directory: str, batch_size: int, steps: int) -> None:
    """The training memory run itself: trains streamed through `train.train` (`peak_rss` measures it)."""
    from gen_jax import data, tasks, train

    source = data.PreparedSource(directory)
    config = load_config(config_path, directory, batch_size, steps)
    config.placement = "stream"
    task = tasks.get(config.family).make_task(config, small_dataset(source))
    with tempfile.TemporaryDirectory(prefix="stream_rss_") as workdir:
        train.prepare_workdir(workdir, config.to_dict(), task)
        train.train(config, workdir, task, None, None, show_progress=False, source=source)


def memory_run_overrides(config, steps: int) -> list[tuple[str, object]]:
    """The --config overrides that make the command train `config` (from `load_config`) as the memory run: its set,
    streamed, `steps` steps evaluated and checkpointed once at the end, no IWAE bound (a 100-sample bound over
    thousands of 64 px test images would be most of its time)."""
    overrides = [("dataset", config.dataset), ("image_size", 0), ("placement", "stream")]
    overrides += [("batch_size", config.batch_size), *((key, steps) for key in ("num_steps", "log_every"))]
    overrides += [("eval_every", steps), ("checkpoint_every", steps)]
    return overrides + ([("iwae_k", 0)] if "iwae_k" in config else [])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="experiments/configs/vae_conv_cifar10.py")
    parser.add_argument("--image_size", type=int, default=32)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--chunk", type=int, default=10, help="steps per fused call")
    parser.add_argument("--chunks", type=int, default=6, help="timed calls per repeat and placement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--num_images", type=int, default=4096, help="images of the set the steps/s are timed on")
    parser.add_argument("--rss_images", type=int, default=1_000_000, help="images of the memory run's set; 0: none")
    parser.add_argument("--rss_image_size", type=int, default=64)
    parser.add_argument("--rss_steps", type=int, default=100)
    parser.add_argument("--rss_dir", help="train the memory run on this prepared directory instead")
    parser.add_argument("--scratch", help="where the generated sets are written (default: a temporary folder)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the record here")
    parser.add_argument("--rss_test_images", type=int, default=10_000, help="the memory run's test split")
    parser.add_argument("--child_rss", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_rss:
        child_rss(args.config, args.child_rss, args.batch_size, args.rss_steps)
        return {}
    record = {"command": shlex.join(["python", "-m", "benchmarks.stream_throughput", *(argv or sys.argv[1:])])}
    record.update(environment())
    record["load_average_before_1_5_15_min"] = [round(x, 2) for x in os.getloadavg()]
    record["other_busy_processes_before"] = busy_processes()
    with tempfile.TemporaryDirectory(prefix="stream_throughput_", dir=args.scratch) as scratch:
        small = os.path.join(scratch, "small")
        os.makedirs(small)
        make_random_set(small, args.num_images, args.image_size, args.seed)
        config = load_config(args.config, small, args.batch_size, args.chunk)
        record["result"] = steps_per_second(config, small, args.chunk, args.chunks, args.repeats)
        if args.rss_images or args.rss_dir:
            large = args.rss_dir
            if large is None:
                large = os.path.join(scratch, "large")
                os.makedirs(large)
                started = time.perf_counter()
                make_random_set(large, args.rss_images, args.rss_image_size, args.seed, args.rss_test_images)
                record["rss_generate_s"] = round(time.perf_counter() - started, 1)
            record["memory"] = peak_rss(args.config, large, args.batch_size, args.rss_steps)
    record["load_average_after_1_5_15_min"] = [round(x, 2) for x in os.getloadavg()]
    record["other_busy_processes_after"] = busy_processes()
    record["note"] = load_note(record)
    result = record["result"]
    record["target_stream_over_device"] = TARGET_RATIO
    record["meets_ratio_target"] = result["stream_over_device"] >= TARGET_RATIO
    if "memory" in record:
        record["target_peak_rss_bytes"] = TARGET_RSS_BYTES
        record["meets_rss_target"] = record["memory"]["peak_rss_bytes"] < TARGET_RSS_BYTES
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(record, f, indent=2)
            f.write("\n")
    medians = result["median_steps_per_s"]
    line = (
        f"{result['model']} {'x'.join(map(str, result['image_shape']))}, batch {result['batch_size']}: on device "
        f"{medians['device']:.2f} steps/s, streamed {medians['stream']:.2f} ({result['stream_over_device']:.3f}x)"
    )
    if "memory" in record:
        memory = record["memory"]
        line += f"; peak RSS {memory['peak_rss_bytes'] / 1e9:.2f} GB training from {memory['images']:,} images"
        line += f" ({memory['command']['peak_rss_bytes'] / 1e9:.2f} GB the whole command)"
    print(f"{line}; load average before {record['load_average_before_1_5_15_min']}")
    return record


if __name__ == "__main__":
    main()
