"""Training-step throughput of every model family: the fused training loop against the usual per-step loop.

    python -m benchmarks.throughput --model vae_mlp --batch-size 128 [--precision f32|bf16]
                                    [--steps-per-call K] [--repeats R] [--json out.json]
    python -m benchmarks.throughput --all [--json all.json] [--markdown table.md]
    python -m benchmarks.throughput --model vae_mlp --members 64   (a sweep's population against one model)
    python -m benchmarks.throughput --model dcgan_dual_grad --peers   (and PyTorch's version of the same network)

Each model is built by its experiment's own code: the experiment config (`experiments/configs/*.py`) and the
family's `make_task` (`gen_jax/tasks/<config.family>.py`), on synthetic data of the experiment's shape that lives on
the device.
Two ways of running the same `task.train_step` are timed, interleaved repeat by repeat so that load from other
processes hits both alike:

* fused — `train.jit_multi_step`, exactly the function the training loop calls: K steps in one jitted `lax.scan`,
  batches gathered on the device, keys fold_in(train_key, step);
* baseline — how the Flax examples train: one `jax.jit(train_step)` call per batch, the batch sliced on the host
  from a host-side permutation and the key split on the host.

Reported per model (medians over repeats, after a warm-up call of each): steps/s, examples/s and ms/step of both,
their ratio, compile time, the FLOPs of one step from XLA's cost analysis of the compiled step, the device's
measured peak (a large matrix product in the step's compute dtype, timed between the repeats) and the fraction
of it the fused step reaches, the memory XLA planned for the fused executable, and the device's peak memory where
the backend reports it (not on CPU).  A faster formulation of a network (the DCGAN under `conv_impl`) also times
the plain f32 network's fused step in the same run: `speedup_vs_reference`.  The raw per-repeat times are in the
JSON, to judge the noise of a shared machine.

With `--peers`, the PyTorch version of the same network (`benchmarks/peers/`: the same layers, loss, optimizer, EMA
and batch, on the same synthetic data on the same device) is timed in the same repeats, eagerly and under
`torch.compile` (on CUDA: CUDA graphs), its forward passes under bf16 autocast when `--precision bf16`:
`speedup_vs_torch_eager` and `speedup_vs_torch_compiled` are the fused step's steps/s over PyTorch's.  PyTorch is
imported only then (`pip install -e '.[peers]'`).

Importing this module loads only jax, flax, optax, numpy and gen_jax's core; the experiment configs and tasks
(which need ml_collections and matplotlib) are imported when a model is built.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib
import json
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import config as config_lib
from gen_jax import data, tasks, train
from gen_jax import keys as loop_keys

# --precision -> config.compute_dtype (parameters and optimizer state stay float32).
PRECISIONS = {"f32": "float32", "bf16": "bfloat16"}

# Fashion-MNIST's training split: the real loop gathers batches from an on-device array of this size.
DEFAULT_NUM_EXAMPLES = 60_000


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One benchmarked model: an experiment config plus the overrides that make it this variant.

    Attributes:
      config_module: the experiment config under `experiments/configs/`, e.g. "vae_mlp_fashion_mnist".
      batch_size: the experiment's batch size, used when `--batch-size` is not given.
      steps_per_call: K when `--steps-per-call` is not given, on CPU (smaller for the slow conv steps, so the
        table takes minutes); 100 on accelerators.
      overrides: config fields set on top of the experiment's, by dotted path ("model.hidden").
      images: the synthetic training images: "binary" (statically binarised) or "uniform" in [0, 1].
      reference: another model whose f32 fused step is timed in the same run, for `speedup_vs_reference` (a
        faster formulation of the same network against the plain f32 one).
      description: one line for the table.
      peer: whether `benchmarks/peers/` has the PyTorch version of this network (`--peers` times it).
    """

    config_module: str
    batch_size: int
    steps_per_call: int = 100
    overrides: tuple[tuple[str, Any], ...] = ()
    images: str = "uniform"
    reference: str | None = None
    description: str = ""
    peer: bool = False


_MNIST_SHAPED = (("dataset", "fashion_mnist"),)
_NO_SAMPLE_QUALITY = (("sample_quality.enabled", False),)  # the benchmark times training, not the FID evaluator

MODELS: dict[str, ModelSpec] = {
    "vae_mlp": ModelSpec(
        "vae_mlp_fashion_mnist", 128, images="binary", description="MLP VAE 784-500-20, Bernoulli, Adam", peer=True
    ),
    "vae_conv": ModelSpec(
        "vae_conv_fashion_mnist", 128, 20, images="binary", description="conv VAE 32-64 / 256 hidden, latent 20"
    ),
    "ae_mlp": ModelSpec(
        "ae_digits",
        128,
        overrides=_MNIST_SHAPED + (("model.hidden", (500,)), ("model.latent_dim", 20)),
        description="MLP AE 784-500-20, MSE, Adam",
    ),
    "gan_mlp": ModelSpec(
        "gan_digits",
        64,
        overrides=_MNIST_SHAPED + _NO_SAMPLE_QUALITY,
        description="MLP GAN, G 64-256-512-784, D 784-512-256-1",
        peer=True,
    ),
    "dcgan": ModelSpec(
        "dcgan_fashion_mnist",
        256,
        2,
        overrides=_NO_SAMPLE_QUALITY + (("conv_impl", "flax"),),
        description="TF tutorial DCGAN, Flax nn.ConvTranspose (the tutorial's exact layers)",
        peer=True,
    ),
    "dcgan_dual_grad": ModelSpec(
        "dcgan_fashion_mnist",
        256,
        2,
        overrides=_NO_SAMPLE_QUALITY + (("conv_impl", "dual_grad"),),
        reference="dcgan",
        description="the same network, transposed-conv kernel gradient by duality",
        peer=True,
    ),
    "dcgan_subpixel": ModelSpec(
        "dcgan_fashion_mnist",
        256,
        2,
        overrides=_NO_SAMPLE_QUALITY + (("conv_impl", "subpixel"),),
        reference="dcgan",
        description="the same network, transposed convs in sub-pixel form",
        peer=True,
    ),
}

# What `--all` runs: (model, precision), each at its experiment's batch size.
ALL_ROWS = tuple((name, "f32") for name in MODELS) + (("vae_mlp", "bf16"), ("dcgan_dual_grad", "bf16"))


def image_shape_of(config) -> tuple[int, int, int]:
    """The synthetic images' (H, W, C) in pixels: every benchmarked experiment trains on 28×28×1 Fashion-MNIST.

    Raises:
      ValueError: `config.dataset` is not "fashion_mnist".
    """
    if config.dataset != "fashion_mnist":
        raise ValueError(f"the benchmark makes Fashion-MNIST-shaped data; config.dataset is {config.dataset!r}")
    return (28, 28, 1)


def synthetic_dataset(image_shape: tuple[int, int, int], num_examples: int, images: str, seed: int = 0) -> data.Dataset:
    """A `data.Dataset` of random images (f32 in [0, 1], or 0/1 when `images` is "binary") and labels 0-9.

    The test split is small (64 examples): the benchmark builds the task's evaluators but never runs them.

    Args:
      image_shape: (H, W, C).
      num_examples: N, the size of the training split.
      images: "binary" or "uniform".
      seed: seeds numpy's generator.

    Returns:
      A `data.Dataset` with train_images f32[N, H, W, C], train_labels i32[N], test_images f32[64, H, W, C],
      test_labels i32[64] and 10 classes.
    """
    rng = np.random.default_rng(seed)

    def draw(n):
        x = rng.random((n, *image_shape), dtype=np.float32)
        return (x > 0.5).astype(np.float32) if images == "binary" else x

    return data.Dataset(
        name="synthetic",
        train_images=draw(num_examples),
        train_labels=rng.integers(0, 10, num_examples).astype(np.int32),
        test_images=draw(64),
        test_labels=rng.integers(0, 10, 64).astype(np.int32),
        num_classes=10,
        class_names=tuple(str(i) for i in range(10)),
    )


def build_config(name: str, batch_size: int, precision: str):
    """The experiment config of model `name` with the spec's overrides, `batch_size` and the compute dtype of
    `precision` (a key of `PRECISIONS`)."""
    spec = MODELS[name]
    config = importlib.import_module(f"experiments.configs.{spec.config_module}").get_config()
    for path, value in spec.overrides:
        config_lib.set_at(config, path, value)
    config.batch_size = batch_size
    config.compute_dtype = PRECISIONS[precision]
    return config


def build_task(name: str, batch_size: int, precision: str, num_examples: int):
    """The task and its synthetic data for model `name`, its compute dtype set by `precision` (parameters stay f32).

    Args:
      name: a key of `MODELS`.
      batch_size: examples per step.
      precision: a key of `PRECISIONS`.
      num_examples: the size of the synthetic training split.

    Returns:
      (task, dataset): the family's `make_task(config, dataset)` and the `synthetic_dataset` it trains on.
    """
    config = build_config(name, batch_size, precision)
    dataset = synthetic_dataset(image_shape_of(config), num_examples, MODELS[name].images)
    return tasks.get(config.family).make_task(config, dataset), dataset


# --- timing ------------------------------------------------------------------------------------------------------


def xla_memory_bytes(compiled) -> int | None:
    """The memory XLA planned for one executable: arguments + outputs + temporaries − aliased (donated) bytes."""
    stats = compiled.memory_analysis()
    if stats is None:
        return None
    return int(
        stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes - stats.alias_size_in_bytes
    )


def step_cost(compiled) -> dict[str, float]:
    """XLA's cost analysis of one compiled step: {"flops": …, "bytes_accessed": …} (absent keys are omitted).

    `Compiled.cost_analysis()` returned a list with one dict per computation in older JAX and a dict now.
    """
    analysis = compiled.cost_analysis()
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else {}
    analysis = analysis or {}
    return {
        key: float(analysis[name])
        for key, name in (("flops", "flops"), ("bytes_accessed", "bytes accessed"))
        if name in analysis
    }


def peak_memory_bytes(device) -> int | None:
    """The device's peak bytes in use since the process started (so in `--all`, the largest model so far), where
    the backend reports it (GPU, TPU); None on CPU."""
    stats = device.memory_stats()
    if not stats:
        return None
    return stats.get("peak_bytes_in_use")


def make_matmul_probe(dtype, size: int, count: int) -> Callable[[], float]:
    """A function that times `count` chained size×size products in `dtype` and returns FLOP/s (2·size³ each).

    The chain runs in one jitted `fori_loop`, so dispatch does not dilute the rate on a fast device; each product
    is scaled by 1/√size, which keeps the entries of order one (no overflow, no denormals).  Products accumulate
    in float32 (`preferred_element_type`), the device's fastest form for bf16: on CPU a bf16 product with a bf16
    result ran far slower than with a float32 one (measured in benchmarks/README.md), so a bf16-result probe would
    understate the peak and overstate every fraction of it.

    Args:
      dtype: the products' input dtype (the step's compute dtype).
      size: the side of the square matrices.
      count: products per timed call.

    Returns:
      measure() -> float: runs the chain once (already compiled and warmed up) and returns its rate in FLOP/s.
    """
    a = jax.random.normal(jax.random.key(1), (size, size), jnp.float32).astype(dtype)
    scale = size**-0.5

    def product(_, y):
        return (jnp.dot(y, a, preferred_element_type=jnp.float32) * scale).astype(dtype)

    @jax.jit
    def chain(x):
        return jax.lax.fori_loop(0, count, product, x)

    jax.block_until_ready(chain(a))

    def measure() -> float:
        started = time.perf_counter()
        jax.block_until_ready(chain(a))
        return 2.0 * size**3 * count / (time.perf_counter() - started)

    return measure


def matmul_probe_for(backend: str, dtype, size: int | None = None) -> Callable[[], float]:
    """The peak probe (`make_matmul_probe`): `size`² products, by default 2048² (17 GFLOP each, 2 per call) on CPU
    and 8192² (20 per call) on accelerators.

    Args:
      backend: `jax.Device.platform`, e.g. "cpu", "gpu", "tpu".
      dtype: the products' input dtype.
      size: the matrices' side; None = the backend's default.

    Returns:
      measure() -> FLOP/s.
    """
    if backend == "cpu":
        return make_matmul_probe(dtype, size or 2048, 2)
    return make_matmul_probe(dtype, size or 8192, 20)


def host_batches(images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int):
    """An endless iterator of host (numpy) batches, reshuffled each epoch on the host, as a tf.data/TFDS
    pipeline feeds the Flax examples."""
    rng = np.random.default_rng(seed)
    per_epoch = len(images) // batch_size
    while True:
        order = rng.permutation(len(images))
        for i in range(per_epoch):
            idx = order[i * batch_size : (i + 1) * batch_size]
            yield {"image": images[idx], "label": labels[idx]}


def _fused_runner(task, batch_size: int, steps_per_call: int, images, labels, keys, options=None):
    """(run, compiled, compile seconds): run(state or None to start) -> state advances `steps_per_call` steps by
    one call of the training loop's own jitted function, `train.jit_multi_step` (given XLA compiler `options`, as the
    loop gives it `config_lib.compiler_options(config)`), compiled ahead of time."""
    started = time.perf_counter()
    compiled = (
        train.jit_multi_step(task.train_step, batch_size, compiler_options=options)
        .lower(task.init_state(keys["init"]), images, labels, keys["train"], keys["data"], steps_per_call)
        .compile()
    )
    compile_s = time.perf_counter() - started

    def run(state):
        state = task.init_state(keys["init"]) if state is None else state
        state, metrics = compiled(state, images, labels, keys["train"], keys["data"])
        jax.block_until_ready((state, metrics))
        return state

    return run, compiled, compile_s


def _population_runner(
    task, batch_size: int, steps_per_call: int, images, labels, members: int, seed: int, options=None, in_turn=False
):
    """run(state or None) -> state: `members` models (seeds seed, seed+1, …) advance `steps_per_call` steps in one
    call of the loop's own population program (`train.jit_multi_step(..., population=True)`: the fused steps vmapped
    over a leading member axis, as `experiments.sweep` trains; with `in_turn`, one member after another inside the
    program, as `--members_in_turn` trains)."""
    seeds = tuple(range(seed, seed + members))
    population = train.Population(
        names=tuple(map(str, seeds)),
        seeds=seeds,
        hypers={},
        tasks=(task,) * members,
        workdirs=("",) * members,
        in_turn=in_turn,
    )
    population_task, streams = population.task(task), population.streams()
    compiled = (
        train.jit_multi_step(
            population_task.train_step, batch_size, population=True, compiler_options=options, in_turn=in_turn
        )
        .lower(
            population_task.init_state(streams["init"]),
            images,
            labels,
            streams["train"],
            streams["data"],
            steps_per_call,
        )
        .compile()
    )

    def run(state):
        state = population_task.init_state(streams["init"]) if state is None else state
        state, metrics = compiled(state, images, labels, streams["train"], streams["data"])
        jax.block_until_ready((state, metrics))
        return state

    return run


def _baseline_runner(task, dataset: data.Dataset, batch_size: int, steps_per_call: int, keys, seed: int, options=None):
    """(run, compiled, compile seconds) for the Flax examples' loop: run(state or None) -> state advances
    `steps_per_call` steps, one call of `jax.jit(train_step)` (given XLA compiler `options`) per host batch, the key
    split on the host."""
    host = host_batches(dataset.train_images, dataset.train_labels, batch_size, seed)
    started = time.perf_counter()
    compiled = (
        jax.jit(task.train_step, compiler_options=options)
        .lower(task.init_state(keys["init"]), next(host), keys["train"])
        .compile()
    )
    compile_s = time.perf_counter() - started
    rng = keys["train"]  # the host-side key, split once per step

    def run(state):
        nonlocal rng
        state = task.init_state(keys["init"]) if state is None else state
        for _ in range(steps_per_call):
            rng, step_key = jax.random.split(rng)
            state, metrics = compiled(state, next(host), step_key)
        jax.block_until_ready((state, metrics))
        return state

    return run, compiled, compile_s


def _peer_runners(config, dataset: data.Dataset, batch_size: int, precision: str, steps_per_call: int, device, seed):
    """({"torch_eager": run, "torch_compiled": run}, facts): the PyTorch peer of `config`'s model
    (`benchmarks.peers.steps.make_runner`), each run(state) -> None advancing it `steps_per_call` steps, warmed up
    (compiled) here; facts = the torch version, threads and device, OMP_WAIT_POLICY, the compile time in s, and
    `torch_compiled_error` (one line) when `torch.compile` failed on this machine, whose runner is then left out."""
    from benchmarks.peers import steps as peer_steps  # only with --peers: PyTorch is an optional extra

    torch = peer_steps.torch

    torch_device = "cuda" if device.platform == "gpu" and torch.cuda.is_available() else "cpu"
    facts = {
        "torch_version": torch.__version__,
        "torch_threads": peer_steps.set_threads(),
        "torch_device": torch_device,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "torch_compile_s": None,
        "torch_compiled_error": None,
    }
    runners = {}
    for mode in peer_steps.MODES:
        run = peer_steps.make_runner(config, dataset.train_images, batch_size, mode, precision, torch_device, seed)
        started = time.perf_counter()
        try:
            run(2)
        except Exception as error:  # torch.compile needs a C++ compiler and a supported platform
            if mode == "eager":
                raise
            facts["torch_compiled_error"] = f"{type(error).__name__}: {(str(error).splitlines() or [''])[0]}"
            continue
        if mode == "compiled":
            facts["torch_compile_s"] = time.perf_counter() - started
        runners[f"torch_{mode}"] = lambda state, run=run: run(steps_per_call)
    return runners, facts


def benchmark(
    name: str,
    batch_size: int | None = None,
    precision: str = "f32",
    steps_per_call: int | None = None,
    repeats: int = 5,
    num_examples: int = DEFAULT_NUM_EXAMPLES,
    peak_size: int | None = None,
    seed: int = 0,
    members: int = 0,
    peers: bool = False,
    reference: bool = True,
    members_in_turn: bool = False,
) -> dict:
    """Times model `name` fused and per-step (and its reference, if it has one); returns one result record.

    Each repeat runs `steps_per_call` steps per-step, one fused call of `steps_per_call` steps, the reference's
    fused call, then the matmul probe.  Rates are medians over the repeats, after one warm-up of each.

    Args:
      name: a key of `MODELS`.
      batch_size: examples per step; None = the experiment's.
      precision: a key of `PRECISIONS`.
      steps_per_call: K, steps per fused call (and per timed per-step run); None = the spec's on CPU, 100 elsewhere.
      repeats: timed repeats after the warm-up.
      num_examples: the size of the synthetic on-device training split.
      peak_size: the side of the matmul probe's matrices; None = the backend's default.
      seed: seeds the keys and the host-side batch order.
      members: with M > 0, also time M models trained as one vmapped population (`experiments.sweep`'s program):
        `member_steps_per_s` and `members_speedup`, its aggregate member-steps/s over the single fused model's.
      members_in_turn: with `members`, also time the M models one after another in one program (`lax.map`, the
        sweep's --members_in_turn): `members_in_turn_speedup`, on the same scale.
      peers: also time the PyTorch peer (a model whose spec has `peer`), eager and compiled:
        `speedup_vs_torch_eager` and `speedup_vs_torch_compiled` (the fused step's steps/s over PyTorch's), their
        ms per step and per-repeat times, and the torch facts of `_peer_runners`.  None where not timed.
      reference: time the spec's reference too (False skips it: the plain DCGAN's fused step takes minutes on CPU).

    Returns:
      A JSON-ready dict: rates in steps/s and examples/s, times in ms per step (`ms_per_step_repeats` and
      `baseline_ms_per_step_repeats` per repeat), compile times in s, FLOPs per step, the probe's peak and the
      achieved rate in FLOP/s, `fraction_of_peak` in [0, 1], the speed-ups as ratios, memory in bytes, and
      `environment(device)`.

    Raises:
      ValueError: an unknown model or precision, a size that is not a positive integer, or a batch larger than
        `num_examples`.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    spec = MODELS[name]
    device = jax.devices()[0]
    batch_size = batch_size or spec.batch_size
    steps_per_call = steps_per_call or (spec.steps_per_call if device.platform == "cpu" else 100)
    for field, value in (("batch_size", batch_size), ("steps_per_call", steps_per_call), ("repeats", repeats)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{field} must be a positive integer, got {value!r}")
    if not batch_size <= num_examples:
        raise ValueError(f"batch_size ({batch_size}) must not exceed num_examples ({num_examples})")

    task, dataset = build_task(name, batch_size, precision, num_examples)
    config = build_config(name, batch_size, precision)
    options = config_lib.compiler_options(config, device.platform)
    keys = loop_keys.loop_streams(seed)
    images, labels = jnp.asarray(dataset.train_images), jnp.asarray(dataset.train_labels)

    run_baseline, baseline_compiled, baseline_compile_s = _baseline_runner(
        task, dataset, batch_size, steps_per_call, keys, seed, options
    )
    cost = step_cost(baseline_compiled)
    run_fused, fused_compiled, compile_s = _fused_runner(
        task, batch_size, steps_per_call, images, labels, keys, options
    )
    runners = {"baseline": run_baseline, "fused": run_fused}
    timed_reference = spec.reference if reference else None
    if timed_reference is not None:
        # The plain network both ways: its fused step, and its per-step loop (on CPU, XLA compiles its gradient
        # convolutions far slower inside the scan), so the comparison is with its faster way to train.
        reference_task, _ = build_task(spec.reference, batch_size, "f32", num_examples)
        reference_options = config_lib.compiler_options(
            build_config(spec.reference, batch_size, "f32"), device.platform
        )
        runners["reference"] = _fused_runner(
            reference_task, batch_size, steps_per_call, images, labels, keys, reference_options
        )[0]
        runners["reference_baseline"] = _baseline_runner(
            reference_task, dataset, batch_size, steps_per_call, keys, seed, reference_options
        )[0]

    if members:
        runners["population"] = _population_runner(
            task, batch_size, steps_per_call, images, labels, members, seed, options
        )
        if members_in_turn:
            runners["population_in_turn"] = _population_runner(
                task, batch_size, steps_per_call, images, labels, members, seed, options, in_turn=True
            )
    peer_facts = {}
    if peers and spec.peer:
        peer_runners, peer_facts = _peer_runners(config, dataset, batch_size, precision, steps_per_call, device, seed)
        runners.update(peer_runners)

    probe = matmul_probe_for(device.platform, PRECISIONS[precision], peak_size)
    states = {kind: None for kind in runners}
    times = {kind: [] for kind in runners}
    peaks = []
    for repeat in range(repeats + 1):  # repeat 0 is the warm-up
        for kind, run in runners.items():
            started = time.perf_counter()
            states[kind] = run(states[kind])
            if repeat:
                times[kind].append((time.perf_counter() - started) / steps_per_call)
        if repeat:
            peaks.append(probe())

    seconds = {kind: statistics.median(values) for kind, values in times.items()}
    peak = statistics.median(peaks)
    flops = cost.get("flops")
    result = {
        "model": name,
        "description": spec.description,
        "precision": precision,
        "batch_size": batch_size,
        "steps_per_call": steps_per_call,
        "repeats": repeats,
        "num_examples": num_examples,
        "compiler_options": options,
        "steps_per_s": 1.0 / seconds["fused"],
        "examples_per_s": batch_size / seconds["fused"],
        "ms_per_step": 1e3 * seconds["fused"],
        "compile_s": compile_s,
        "baseline_steps_per_s": 1.0 / seconds["baseline"],
        "baseline_examples_per_s": batch_size / seconds["baseline"],
        "baseline_ms_per_step": 1e3 * seconds["baseline"],
        "baseline_compile_s": baseline_compile_s,
        "speedup_vs_baseline": seconds["baseline"] / seconds["fused"],
        "reference": timed_reference,
        "reference_ms_per_step": 1e3 * seconds["reference"] if timed_reference else None,
        "reference_baseline_ms_per_step": 1e3 * seconds["reference_baseline"] if timed_reference else None,
        "speedup_vs_reference": (
            min(seconds["reference"], seconds["reference_baseline"]) / seconds["fused"] if timed_reference else None
        ),
        "members": members or None,
        "member_steps_per_s": members / seconds["population"] if members else None,
        "members_speedup": seconds["fused"] * members / seconds["population"] if members else None,
        "members_in_turn_speedup": (
            seconds["fused"] * members / seconds["population_in_turn"] if "population_in_turn" in seconds else None
        ),
        "population_ms_per_call_repeats": [1e3 * t * steps_per_call for t in times["population"]] if members else None,
        **{
            field: (1e3 * seconds[kind] if kind in seconds else None)
            for field, kind in (
                ("torch_eager_ms_per_step", "torch_eager"),
                ("torch_compiled_ms_per_step", "torch_compiled"),
            )
        },
        "speedup_vs_torch_eager": seconds["torch_eager"] / seconds["fused"] if "torch_eager" in seconds else None,
        "speedup_vs_torch_compiled": (
            seconds["torch_compiled"] / seconds["fused"] if "torch_compiled" in seconds else None
        ),
        "torch_eager_ms_per_step_repeats": [1e3 * t for t in times["torch_eager"]] if "torch_eager" in times else None,
        "torch_compiled_ms_per_step_repeats": (
            [1e3 * t for t in times["torch_compiled"]] if "torch_compiled" in times else None
        ),
        **peer_facts,
        "flops_per_step": flops,
        "bytes_accessed_per_step": cost.get("bytes_accessed"),
        "achieved_flops_per_s": flops / seconds["fused"] if flops else None,
        "peak_flops_per_s": peak,
        "fraction_of_peak": flops / seconds["fused"] / peak if flops else None,
        "ms_per_step_repeats": [1e3 * t for t in times["fused"]],
        "baseline_ms_per_step_repeats": [1e3 * t for t in times["baseline"]],
        "xla_memory_bytes": xla_memory_bytes(fused_compiled),
        "peak_memory_bytes": peak_memory_bytes(device),
        **environment(device),
    }
    return result


def environment(device) -> dict[str, str]:
    """Where and when: device, backend, JAX and Python versions, host CPU count, UTC time."""
    return {
        "device": f"{device.platform}:{device.device_kind}",
        "backend": jax.default_backend(),
        "jax_version": jax.__version__,
        "python": platform.python_version(),
        "host_cpus": os.cpu_count(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


# --- output ------------------------------------------------------------------------------------------------------


def _fmt(value, spec: str, scale: float = 1.0, unit: str = "") -> str:
    """A table cell: "—" for a missing value, text as it is, a number scaled and formatted."""
    if value is None:
        return "—"
    return format(value if scale == 1.0 else value * scale, spec) + unit


_COLUMNS = (  # (header, field, format, scale, unit)
    ("model", "model", "", 1.0, ""),
    ("precision", "precision", "", 1.0, ""),
    ("batch", "batch_size", "d", 1.0, ""),
    ("steps/s", "steps_per_s", ".1f", 1.0, ""),
    ("examples/s", "examples_per_s", ".0f", 1.0, ""),
    ("ms/step", "ms_per_step", ".2f", 1.0, ""),
    ("× per-step baseline", "speedup_vs_baseline", ".2f", 1.0, "×"),
    ("× plain f32 Flax layers", "speedup_vs_reference", ".2f", 1.0, "×"),
    ("× torch eager", "speedup_vs_torch_eager", ".2f", 1.0, "×"),
    ("× torch.compile", "speedup_vs_torch_compiled", ".2f", 1.0, "×"),
    ("GFLOP/step", "flops_per_step", ".3f", 1e-9, ""),
    ("% of matmul peak", "fraction_of_peak", ".0f", 100.0, "%"),
    ("compile s", "compile_s", ".1f", 1.0, ""),
    ("XLA memory", "xla_memory_bytes", ".0f", 2.0**-20, " MiB"),
    ("device peak memory", "peak_memory_bytes", ".0f", 2.0**-20, " MiB"),
)


def markdown_table(results: list[dict]) -> str:
    """The results as a Markdown table, one row per result, under a line naming the device, date and peak.

    Args:
      results: records from `benchmark`, at least one.

    Returns:
      Markdown text ending in a newline.
    """
    with_peers = any(r.get("speedup_vs_torch_eager") for r in results)
    columns = [c for c in _COLUMNS if with_peers or not c[1].startswith("speedup_vs_torch")]
    lines = ["| " + " | ".join(header for header, *_ in columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for r in results:
        lines.append(
            "| " + " | ".join(_fmt(r.get(field), spec, scale, unit) for _, field, spec, scale, unit in columns) + " |"
        )
    first = results[0]
    peak_of = {
        precision: statistics.median(r["peak_flops_per_s"] for r in results if r["precision"] == precision)
        for precision in dict.fromkeys(r["precision"] for r in results)
    }
    peaks = "; ".join(f"{precision} {peak / 1e9:.0f} GFLOP/s" for precision, peak in peak_of.items())
    preamble = (
        f"{first['device']} ({first['host_cpus']} host CPUs), JAX {first['jax_version']}, {first['date']}. "
        f"Measured matmul peak: {peaks}. Medians of {first['repeats']} repeats; the fused step runs "
        f"K = {', '.join(sorted({str(r['steps_per_call']) for r in results}))} steps per call."
    )
    peer = next((r for r in results if r.get("torch_version")), None)
    if peer:
        failed = sorted({r["torch_compiled_error"] for r in results if r.get("torch_compiled_error")})
        preamble += (
            f" PyTorch {peer['torch_version']} on {peer['torch_device']}, {peer['torch_threads']} threads "
            f"(OMP_WAIT_POLICY={peer['omp_wait_policy']}), timed in the same repeats; × torch = the fused step's "
            "steps/s over PyTorch's." + (f" torch.compile failed: {'; '.join(failed)}." if failed else "")
        )
    return preamble + "\n\n" + "\n".join(lines) + "\n"


def print_result(result: dict) -> None:
    """One result as readable lines on stdout."""
    print(
        f"{result['model']} ({result['description']}), {result['precision']}, batch {result['batch_size']}, "
        f"{result['steps_per_call']} steps per fused call, {result['device']}"
    )
    print(
        f"  fused:    {result['steps_per_s']:9.1f} steps/s {result['examples_per_s']:10.0f} examples/s "
        f"{result['ms_per_step']:9.2f} ms/step   compile {result['compile_s']:.1f} s"
    )
    print(
        f"  baseline: {result['baseline_steps_per_s']:9.1f} steps/s {result['baseline_examples_per_s']:10.0f} "
        f"examples/s {result['baseline_ms_per_step']:9.2f} ms/step   compile {result['baseline_compile_s']:.1f} s"
        f"   -> fused is {result['speedup_vs_baseline']:.2f}× the baseline"
    )
    if result["reference"]:
        print(
            f"  reference {result['reference']} (f32): fused {result['reference_ms_per_step']:.2f} ms/step, per-step "
            f"{result['reference_baseline_ms_per_step']:.2f} ms/step -> {result['speedup_vs_reference']:.2f}× "
            "faster than its faster way"
        )
    if result.get("members"):
        print(
            f"  {result['members']} members in one vmapped program: {result['member_steps_per_s']:.1f} member-steps/s "
            f"= {result['members_speedup']:.2f}× the single fused model's steps/s"
        )
    if result.get("members_in_turn_speedup"):
        print(f"  the same members in turn in one program: {result['members_in_turn_speedup']:.2f}×")
    if result.get("torch_version"):
        compiled = (
            f"compiled {result['torch_compiled_ms_per_step']:.2f} ms/step -> {result['speedup_vs_torch_compiled']:.2f}×"
            if result["torch_compiled_ms_per_step"]
            else f"compiled failed ({result['torch_compiled_error']})"
        )
        print(
            f"  PyTorch {result['torch_version']} ({result['torch_device']}, {result['torch_threads']} threads): eager "
            f"{result['torch_eager_ms_per_step']:.2f} ms/step -> fused is {result['speedup_vs_torch_eager']:.2f}×; "
            + compiled
        )
    print(
        f"  {_fmt(result['flops_per_step'], '.3f', 1e-9)} GFLOP/step (XLA cost analysis), "
        f"{_fmt(result['achieved_flops_per_s'], '.1f', 1e-9)} GFLOP/s = "
        f"{_fmt(result['fraction_of_peak'], '.0f', 100.0)}% of the measured matmul peak "
        f"{result['peak_flops_per_s'] / 1e9:.1f} GFLOP/s; memory: XLA "
        f"{_fmt(result['xla_memory_bytes'], '.0f', 2.0**-20, ' MiB')}, device peak "
        f"{_fmt(result['peak_memory_bytes'], '.0f', 2.0**-20, ' MiB')}",
        flush=True,
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.throughput", description=__doc__.split("\n\n")[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", choices=tuple(MODELS), help="one model to time")
    which.add_argument("--all", action="store_true", help="every model (and the bf16 rows) at its experiment's batch")
    parser.add_argument("--batch-size", type=int, help="default: the experiment's batch size")
    parser.add_argument(
        "--precision",
        choices=tuple(PRECISIONS),
        default="f32",
        help="compute dtype of matmuls and convolutions; parameters stay f32",
    )
    parser.add_argument("--steps-per-call", type=int, help="K, the steps fused per call (default 100; 2 for DCGANs)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats after the warm-up (default 5)")
    parser.add_argument(
        "--num-examples",
        type=int,
        default=DEFAULT_NUM_EXAMPLES,
        help="size of the synthetic on-device training split (default 60000, as Fashion-MNIST)",
    )
    parser.add_argument(
        "--peak-size",
        type=int,
        help="side of the matrices of the peak probe (default 2048 on CPU, "
        "8192 on accelerators; smaller only for quick checks)",
    )
    parser.add_argument(
        "--members",
        type=int,
        default=0,
        help="also time M models trained as one vmapped population (a sweep), against M times the single model",
    )
    parser.add_argument(
        "--members-in-turn",
        action="store_true",
        help="with --members: also time the M models one after another in one program (a sweep's --members_in_turn)",
    )
    parser.add_argument(
        "--peers",
        action="store_true",
        help="also time the PyTorch version of each network (eager and torch.compile) in the same repeats; "
        "needs PyTorch (pip install -e '.[peers]')",
    )
    parser.add_argument(
        "--no-reference",
        action="store_true",
        help="skip the plain network a faster formulation is compared with (its fused DCGAN step takes minutes on CPU)",
    )
    parser.add_argument("--only", nargs="+", choices=tuple(MODELS), help="with --all: just these models")
    parser.add_argument("--json", help="write the result(s) here as JSON")
    parser.add_argument("--markdown", help="write the table here as Markdown")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict]:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    command = "python -m benchmarks.throughput " + shlex.join(argv)
    if args.all:
        rows = [row for row in ALL_ROWS if not args.only or row[0] in args.only]
    else:
        rows = [(args.model, args.precision)]
    results = []
    for name, precision in rows:
        result = benchmark(
            name,
            args.batch_size,
            precision,
            args.steps_per_call,
            args.repeats,
            args.num_examples,
            args.peak_size,
            members=args.members,
            members_in_turn=args.members_in_turn,
            peers=args.peers,
            reference=not args.no_reference,
        )
        result["command"] = command
        print_result(result)
        results.append(result)
        if args.json:  # rewritten after each row, so a long --all run leaves what it has measured
            with open(args.json, "w") as f:
                json.dump(results if args.all else result, f, indent=2)
                f.write("\n")
    table = markdown_table(results)
    print("\n" + table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
