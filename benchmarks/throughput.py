"""Training-step throughput of every model family: the fused training loop against the usual per-step loop.

    python -m benchmarks.throughput --model vae_mlp --batch-size 128 [--precision f32|bf16]
                                    [--steps-per-call K] [--repeats R] [--json out.json]
    python -m benchmarks.throughput --all [--json all.json] [--markdown table.md]

Each model is built by its experiment's own code: the experiment config (`experiments/configs/*.py`) and the
family's `make_task` (`gen_jax/tasks/`), on synthetic data of the experiment's shape that lives on the device.
Two ways of running the same `task.train_step` are timed, interleaved repeat by repeat so that load from other
processes hits both alike:

* fused — `train.jit_multi_step`, exactly the function the training loop calls: K steps in one jitted `lax.scan`,
  batches gathered on the device, keys fold_in(train_key, step);
* baseline — how the Flax examples train: one `jax.jit(train_step)` call per batch, the batch sliced on the host
  from a host-side permutation and the key split on the host.

Reported per model (medians over repeats, after a warm-up call of each): steps/s, examples/s and ms/step of both,
their ratio, compile time, the FLOPs of one step from XLA's cost analysis of the compiled step, the device's
measured peak (a large matrix product in the step's compute dtype, timed between the repeats) and the fraction
of it the fused step reaches, and the peak device memory where the backend reports it (not on CPU).

Importing this module loads only jax, flax, optax, numpy and gen_jax's core; the experiment configs and tasks
(which need ml_collections and matplotlib) are imported when a model is built.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib
import json
import platform
import statistics
import sys
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import data, train

PRECISIONS = {"f32": jnp.float32, "bf16": jnp.bfloat16}

# Fashion-MNIST's training split: the real loop gathers batches from an on-device array of this size.
DEFAULT_NUM_EXAMPLES = 60_000


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One benchmarked model: an experiment config plus the overrides that make it this variant.

    Attributes:
      config_module: the experiment config under `experiments/configs/`, e.g. "vae_mlp_fashion_mnist".
      family: which `gen_jax/tasks/` module builds it ("vae", "ae", "gan").
      batch_size: the experiment's batch size, used by `--all` and when `--batch-size` is not given.
      overrides: config fields set on top of the experiment's.
      images: how the synthetic training images look: "binary" (statically binarised) or "uniform" in [0, 1].
      description: one line for the table.
    """

    config_module: str
    family: str
    batch_size: int
    overrides: tuple[tuple[str, Any], ...] = ()
    images: str = "uniform"
    description: str = ""


MODELS: dict[str, ModelSpec] = {
    "vae_mlp": ModelSpec("vae_mlp_fashion_mnist", "vae", 128, images="binary",
                         description="MLP VAE 784-500-20, Bernoulli, Adam"),
    "vae_conv": ModelSpec("vae_conv_fashion_mnist", "vae", 128, images="binary",
                          description="conv VAE 32-64 / 256, latent 20"),
    "ae_mlp": ModelSpec("ae_digits", "ae", 128, (("dataset", "fashion_mnist"), ("hidden", (500,)),
                                                 ("latent_dim", 20)),
                        description="MLP AE 784-500-20, MSE, Adam"),
    "gan_mlp": ModelSpec("gan_digits", "gan", 64, (("dataset", "fashion_mnist"), ("sample_quality", False)),
                         description="MLP GAN G 100-256-512-784, D 784-512-256-1"),
    "dcgan": ModelSpec("dcgan_fashion_mnist", "gan", 256, (("sample_quality", False),),
                       description="TF tutorial DCGAN, Flax ConvTranspose/Conv"),
}

# The variants `--all` runs after the f32 rows: (model, precision).
EXTRA_ROWS = (("vae_mlp", "bf16"),)


def image_shape_of(config) -> tuple[int, int, int]:
    """The synthetic images' (H, W, C): every benchmarked experiment trains on 28×28×1 Fashion-MNIST."""
    if config.dataset != "fashion_mnist":
        raise ValueError(f"the benchmark makes Fashion-MNIST-shaped data; config.dataset is {config.dataset!r}")
    return (28, 28, 1)


def synthetic_dataset(image_shape: tuple[int, int, int], num_examples: int, images: str,
                      seed: int = 0) -> data.Dataset:
    """A `data.Dataset` of random images (f32 in [0, 1], or 0/1 when `images` is "binary") and labels 0-9.

    The test split is small (64 examples): the benchmark builds the task's evaluators but never runs them.
    """
    rng = np.random.default_rng(seed)

    def draw(n):
        x = rng.random((n, *image_shape), dtype=np.float32)
        return (x > 0.5).astype(np.float32) if images == "binary" else x

    return data.Dataset(name="synthetic", train_images=draw(num_examples),
                        train_labels=rng.integers(0, 10, num_examples).astype(np.int32), test_images=draw(64),
                        test_labels=rng.integers(0, 10, 64).astype(np.int32), num_classes=10,
                        class_names=tuple(str(i) for i in range(10)))


def build_task(name: str, batch_size: int, precision: str, num_examples: int):
    """(task, dataset, config) for model `name`, its compute dtype set by `precision` (parameters stay f32)."""
    spec = MODELS[name]
    config = importlib.import_module(f"experiments.configs.{spec.config_module}").get_config()
    for field, value in spec.overrides:
        config[field] = value
    config.batch_size = batch_size
    if precision != "f32":
        config.dtype = precision
    dataset = synthetic_dataset(image_shape_of(config), num_examples, spec.images)
    family = importlib.import_module(f"gen_jax.tasks.{spec.family}")
    return family.make_task(config, dataset), dataset, config


# --- timing ------------------------------------------------------------------------------------------------------


def _block(tree) -> None:
    jax.block_until_ready(tree)


def step_cost(compiled) -> dict[str, float]:
    """XLA's cost analysis of one compiled step: {"flops": …, "bytes_accessed": …} (absent keys are omitted).

    `Compiled.cost_analysis()` returned a list with one dict per computation in older JAX and a dict now.
    """
    analysis = compiled.cost_analysis()
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else {}
    analysis = analysis or {}
    return {key: float(analysis[name]) for key, name in (("flops", "flops"), ("bytes_accessed", "bytes accessed"))
            if name in analysis}


def peak_memory_bytes(device) -> int | None:
    """The device's peak bytes in use so far, where the backend reports it (GPU, TPU); None on CPU."""
    stats = device.memory_stats()
    if not stats:
        return None
    return stats.get("peak_bytes_in_use")


def make_matmul_probe(dtype, size: int, count: int) -> Callable[[], float]:
    """A function that times `count` chained size×size products in `dtype` and returns FLOP/s (2·size³ each).

    The chain runs in one jitted `fori_loop`, so dispatch does not dilute the rate on a fast device; each product
    is rescaled to keep the values finite.
    """
    a = jax.random.normal(jax.random.key(1), (size, size), jnp.float32).astype(dtype)

    @jax.jit
    def chain(x):
        return jax.lax.fori_loop(0, count, lambda _, y: (y @ a) * jnp.asarray(1.0 / size, dtype), x)

    _block(chain(a))

    def measure() -> float:
        started = time.perf_counter()
        _block(chain(a))
        return 2.0 * size**3 * count / (time.perf_counter() - started)

    return measure


def matmul_probe_for(backend: str, dtype) -> Callable[[], float]:
    """The peak probe sized for the backend: 2048² (17 GFLOP each) on CPU, 8192² on accelerators."""
    if backend == "cpu":
        return make_matmul_probe(dtype, 2048, 2)
    return make_matmul_probe(dtype, 8192, 20)


def host_batches(images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int):
    """An endless iterator of host (numpy) batches, reshuffled each epoch on the host, as a tf.data/TFDS
    pipeline feeds the Flax examples."""
    rng = np.random.default_rng(seed)
    per_epoch = len(images) // batch_size
    while True:
        order = rng.permutation(len(images))
        for i in range(per_epoch):
            idx = order[i * batch_size:(i + 1) * batch_size]
            yield {"image": images[idx], "label": labels[idx]}


def benchmark(name: str, batch_size: int | None = None, precision: str = "f32", steps_per_call: int = 100,
              repeats: int = 5, num_examples: int = DEFAULT_NUM_EXAMPLES, seed: int = 0) -> dict:
    """Times model `name` fused and per-step; returns one result record (see the module docstring).

    Each repeat runs `steps_per_call` steps per-step, then one fused call of `steps_per_call` steps, then the
    matmul probe.  Rates are medians over the repeats; compile times are those of the first (only) compilation.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {sorted(PRECISIONS)}")
    for field, value in (("steps_per_call", steps_per_call), ("repeats", repeats)):
        if value < 1:
            raise ValueError(f"{field} must be >= 1, got {value}")
    batch_size = batch_size or MODELS[name].batch_size
    task, dataset, config = build_task(name, batch_size, precision, num_examples)
    device = jax.devices()[0]
    keys = train.derive_keys(seed)

    images, labels = jnp.asarray(dataset.train_images), jnp.asarray(dataset.train_labels)
    host = host_batches(dataset.train_images, dataset.train_labels, batch_size, seed)

    # Baseline: the per-step jitted function, compiled ahead so its compile time and cost are known.
    baseline_state = task.init_state(keys["init"])
    first = next(host)
    started = time.perf_counter()
    baseline_step = jax.jit(task.train_step).lower(baseline_state, first, keys["train"]).compile()
    baseline_compile_s = time.perf_counter() - started
    cost = step_cost(baseline_step)

    # Fused: the training loop's own jitted function (its first call compiles it).
    fused = train.jit_multi_step(task.train_step, batch_size)
    fused_state = task.init_state(keys["init"])
    started = time.perf_counter()
    lowered = fused.lower(fused_state, images, labels, keys["train"], keys["data"], steps_per_call)
    fused_call = lowered.compile()
    fused_compile_s = time.perf_counter() - started

    rng = keys["train"]

    def run_baseline(state, rng):
        for _ in range(steps_per_call):
            rng, step_key = jax.random.split(rng)
            state, metrics = baseline_step(state, next(host), step_key)
        _block((state, metrics))
        return state, rng

    def run_fused(state):
        state, metrics = fused_call(state, images, labels, keys["train"], keys["data"])
        _block((state, metrics))
        return state

    probe = matmul_probe_for(device.platform, PRECISIONS[precision])
    baseline_state, rng = run_baseline(baseline_state, rng)  # warm-up
    fused_state = run_fused(fused_state)
    baseline_times, fused_times, peaks = [], [], []
    for _ in range(repeats):
        started = time.perf_counter()
        baseline_state, rng = run_baseline(baseline_state, rng)
        baseline_times.append((time.perf_counter() - started) / steps_per_call)
        started = time.perf_counter()
        fused_state = run_fused(fused_state)
        fused_times.append((time.perf_counter() - started) / steps_per_call)
        peaks.append(probe())

    seconds = statistics.median(fused_times)
    baseline_seconds = statistics.median(baseline_times)
    peak = statistics.median(peaks)
    flops = cost.get("flops")
    return {
        "model": name,
        "description": MODELS[name].description,
        "precision": precision,
        "batch_size": batch_size,
        "steps_per_call": steps_per_call,
        "repeats": repeats,
        "num_examples": num_examples,
        "steps_per_s": 1.0 / seconds,
        "examples_per_s": batch_size / seconds,
        "ms_per_step": 1e3 * seconds,
        "compile_s": fused_compile_s,
        "baseline_steps_per_s": 1.0 / baseline_seconds,
        "baseline_examples_per_s": batch_size / baseline_seconds,
        "baseline_ms_per_step": 1e3 * baseline_seconds,
        "baseline_compile_s": baseline_compile_s,
        "speedup_vs_baseline": baseline_seconds / seconds,
        "flops_per_step": flops,
        "bytes_accessed_per_step": cost.get("bytes_accessed"),
        "achieved_flops_per_s": flops / seconds if flops else None,
        "peak_flops_per_s": peak,
        "fraction_of_peak": flops / seconds / peak if flops else None,
        "peak_memory_bytes": peak_memory_bytes(device),
        **environment(device),
    }


def environment(device) -> dict[str, str]:
    """Where and when: device kind, backend, JAX version, host CPU count, UTC time."""
    return {
        "device": f"{device.platform}:{device.device_kind}",
        "backend": jax.default_backend(),
        "jax_version": jax.__version__,
        "host_cpus": str(__import__("os").cpu_count()),
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


# --- output ------------------------------------------------------------------------------------------------------


def _fmt(value, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def markdown_table(results: list[dict]) -> str:
    """The results as a Markdown table (one row per result), with the device and date above it."""
    header = ("| model | precision | batch | steps/s | examples/s | ms/step | × baseline | baseline ms/step "
              "| GFLOP/step | % of peak | compile s | peak memory |")
    lines = [header, "|" + "---|" * header.count("|")[:-1] if False else "|" + "|".join(["---"] * 12) + "|"]
    for r in results:
        memory = None if r["peak_memory_bytes"] is None else r["peak_memory_bytes"] / 2**20
        lines.append(
            f"| {r['model']} | {r['precision']} | {r['batch_size']} | {r['steps_per_s']:.1f} | "
            f"{r['examples_per_s']:.0f} | {r['ms_per_step']:.2f} | {r['speedup_vs_baseline']:.2f} | "
            f"{r['baseline_ms_per_step']:.2f} | {_fmt(r['flops_per_step'] and r['flops_per_step'] / 1e9, '.3f')} | "
            f"{_fmt(r['fraction_of_peak'] and 100 * r['fraction_of_peak'], '.0f')} | {r['compile_s']:.1f} | "
            f"{_fmt(memory, '.0f') + (' MiB' if memory is not None else '')} |")
    first = results[0]
    peaks = ", ".join(sorted({f"{r['precision']} {r['peak_flops_per_s'] / 1e9:.0f} GFLOP/s" for r in results}))
    preamble = (f"Device: {first['device']} ({first['host_cpus']} host CPUs), JAX {first['jax_version']}, "
                f"{first['date']}; measured matmul peak: {peaks}; {first['steps_per_call']} steps per fused "
                f"call, median of {first['repeats']} repeats.")
    return preamble + "\n\n" + "\n".join(lines) + "\n"
