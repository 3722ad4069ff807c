"""What happens to the arrays on the way to a step: binarisation, and batches drawn on the device from a key.

The arrays are small enough to live on the accelerator, so batches are drawn inside the jitted step:
`batch_indices` / `get_batch` turn (key, step) into a batch with a fresh permutation per epoch. A run
resumed at any step therefore sees exactly the batches it would have seen without the interruption.
`batch_indices_numpy` is the same order computed on the host (the Feistel network in numpy), for a host that reads
each batch's rows from storage: its batch k is the device's batch k.

Images travel as small integer codes until the step (`Pixels`: u8 codes and the f32 table of their values, built
with numpy), so the split on the device takes a quarter of the f32 bytes and the step sees exactly the values numpy
computed (`encode_pixels`, `decode_pixels`).

Neighbours: `train.py` calls `preprocess` once and `get_batch` inside its step loop; `steps.py` calls
`dynamic_binarize` per batch when the config asks for dynamic binarisation; `sources.py` provides the arrays.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

BINARIZATIONS = ("none", "static", "dynamic")


# --- preprocessing -----------------------------------------------------------------------------


def preprocess(images: np.ndarray, binarization: str) -> np.ndarray:
    """Applies the data set-wide binarisation to f32[N, H, W, C] images in [0, 1].

    'none' returns the images as they are; 'static' thresholds them once at 0.5 (f32 0/1);
    'dynamic' also returns them unchanged, because they are resampled per batch with
    `dynamic_binarize` inside the train step.
    """
    if binarization not in BINARIZATIONS:
        raise ValueError(f"binarization must be one of {BINARIZATIONS}; got {binarization!r}.")
    if binarization == "static":
        return (images > 0.5).astype(np.float32)
    return images


def test_images(config, dataset) -> np.ndarray:
    """`dataset`'s test split as a run of `config` scores it (`eval_images` with the run's own fixed key)."""
    from gen_jax import keys

    return eval_images(dataset.test_images, config.binarization, keys.stream(config.seed, "test_binarization"))


def eval_images(images: np.ndarray, binarization: str, key: jax.Array) -> np.ndarray:
    """A held-out split f32[N, H, W, C] as a model is scored on it: `preprocess`ed, and under "dynamic" binarised
    once with the fixed `key` (the usual protocol for dynamically binarised MNIST), so every evaluation of a run,
    and every later look at it, sees the same images."""
    if binarization == "dynamic":
        return np.asarray(dynamic_binarize(key, jnp.asarray(images)))
    return preprocess(images, binarization)


def dynamic_binarize(key: jax.Array, x: jax.Array) -> jax.Array:
    """Samples x_b ~ Bernoulli(x) elementwise: a fresh binarisation of f32[...] x in [0, 1].

    Returns an array of x's shape and dtype holding 0s and 1s, with E[x_b] = x.
    """
    return jax.random.bernoulli(key, x).astype(x.dtype)


# --- uint8 until the step ---------------------------------------------------------------------


class Pixels(NamedTuple):
    """Images as codes and the table of their values: the image is `table[codes]`, looked up in the step.

    Attributes:
      codes: u8[..., H, W, C], each pixel's index into `table`.
      table: f32[256], the value of each code (built with numpy, so the step's values are numpy's bit for bit).
    """

    codes: np.ndarray | jax.Array
    table: np.ndarray | jax.Array


def unit_table(pixel_max: int, binarization: str = "none") -> np.ndarray:
    """The table f32[256] of stored pixels 0 … pixel_max as a run sees them: value / pixel_max computed by numpy (as
    `dataset.unit_pixels` computes it), then `preprocess`ed ('static' thresholds the table, not the images).  Entries
    above pixel_max are never looked up."""
    table = np.arange(256, dtype=np.float32) / np.float32(pixel_max)
    return preprocess(table, binarization)


def encode_pixels(images: np.ndarray) -> Pixels | np.ndarray:
    """f32[N, H, W, C] images as `Pixels` with table[codes] equal to `images` bit for bit, when they hold at most 256
    distinct values (8-bit data, 0/1 data, digits' 17 levels); otherwise `images` unchanged (resized images, whose
    values are many), which then travel as f32."""
    images = np.asarray(images)
    if images.dtype != np.float32 or not images.size:
        return images
    flat = images.reshape(-1)
    stride = max(1, flat.size // 65536)
    for candidates in (flat[::stride], flat):  # a sample's values first; the whole array when the sample misses some
        values = np.unique(candidates)
        if values.size > 256:
            return images
        codes = np.searchsorted(values, images).clip(0, values.size - 1).astype(np.uint8)
        if np.array_equal(values[codes].view(np.uint32), images.view(np.uint32)):
            table = np.zeros(256, np.float32)
            table[: values.size] = values
            return Pixels(codes, table)
    return images


def decode_pixels(images) -> jax.Array:
    """The f32 values of `images`: `table[codes]` gathered on the device for `Pixels`, f32 arrays as they are."""
    if isinstance(images, Pixels):
        return jnp.take(jnp.asarray(images.table), jnp.asarray(images.codes).astype(jnp.int32), mode="clip")
    return jnp.asarray(images)


def num_examples(images) -> int:
    """The number of images in f32[N, H, W, C] or `Pixels` with codes u8[N, H, W, C]."""
    return (images.codes if isinstance(images, Pixels) else images).shape[0]


# --- batching from a key, on the device --------------------------------------------------------


# Rounds of the Feistel network behind `permute`: four make it a strong pseudo-random permutation (Luby & Rackoff
# 1988) when each round function is pseudo-random.
_FEISTEL_ROUNDS = 4


def _mix32(x: jax.Array) -> jax.Array:
    """A bijective avalanche mix of u32 values (the "lowbias32" integer hash): the Feistel round function."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def permute(key: jax.Array, positions: jax.Array, num_examples: int) -> jax.Array:
    """The images of `positions` (ints in [0, num_examples)) under the pseudo-random permutation of `key`.

    A bijection of [0, num_examples) computed pointwise: a balanced Feistel network on the smallest even number of
    bits that holds num_examples, cycle-walked (re-applied until the value falls below num_examples) so it maps
    [0, num_examples) onto itself.  Computing a batch's indices costs O(batch) instead of the sort of the whole
    split that `jax.random.permutation` needs (which, run once per step, cost more than an MLP train step).

    Returns i32 of the shape of `positions`.
    """
    bits = max(2, (num_examples - 1).bit_length())
    half = (bits + 1) // 2
    mask = jnp.uint32((1 << half) - 1)
    round_keys = jax.random.bits(key, (_FEISTEL_ROUNDS,), jnp.uint32)

    def encrypt(v):
        left, right = v >> half, v & mask
        for r in range(_FEISTEL_ROUNDS):
            left, right = right, left ^ (_mix32(right ^ round_keys[r]) & mask)
        return (left << half) | right

    values = encrypt(jnp.asarray(positions).astype(jnp.uint32))
    # Walking the cycle of a bijection from a value below num_examples returns below it: the loop ends, after
    # fewer than 4 rounds on average (the domain is under 4·num_examples).
    values = lax.while_loop(
        lambda v: jnp.any(v >= num_examples), lambda v: jnp.where(v >= num_examples, encrypt(v), v), values
    )
    return values.astype(jnp.int32)


def epoch_permutation(key: jax.Array, epoch, num_examples: int) -> jax.Array:
    """The order in which epoch `epoch` (an int, possibly traced) visits the examples: i32[num_examples]."""
    return permute(jax.random.fold_in(key, epoch), jnp.arange(num_examples), num_examples)


def batch_indices(key: jax.Array, step, batch_size: int, num_examples: int) -> jax.Array:
    """Indices i32[batch_size] of the examples in batch `step` (an int >= 0, may be traced in jit).

    Each epoch is steps_per_epoch = num_examples // batch_size batches of that epoch's permutation;
    the remaining num_examples % batch_size examples of each epoch are skipped (a different few
    each epoch). Depends only on (key, step), so a resumed run draws the same batches.  Only the batch's own
    positions of the permutation are computed.
    """
    if not 1 <= batch_size <= num_examples:
        raise ValueError(f"batch_size must be between 1 and the number of examples ({num_examples}); got {batch_size}.")
    steps_per_epoch = num_examples // batch_size
    step = jnp.asarray(step)
    epoch, position = step // steps_per_epoch, step % steps_per_epoch
    positions = position * batch_size + jnp.arange(batch_size)
    return permute(jax.random.fold_in(key, epoch), positions, num_examples)


def get_batch(
    images: jax.Array,
    labels: jax.Array,
    key: jax.Array,
    step,
    batch_size: int,
    batch_sharding: jax.sharding.Sharding | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Gathers batch `step` of the full arrays: the one place a training batch is built.

    Args:
      images: f32[N, H, W, C], the whole split, or `Pixels` with u8[N, H, W, C] codes (only the batch's codes are
        gathered; the batch is then looked up in the table).
      labels: i32[N].
      key: the data key; with `step` it fixes the batch (see `batch_indices`).
      step: an int >= 0, may be traced in jit.
      batch_size: examples per batch, in [1, N].
      batch_sharding: if given (inside jit, e.g. the batch split over a mesh's data axis), the indices and
        both outputs are constrained to it with `lax.with_sharding_constraint`.

    Returns:
      (f32[batch_size, H, W, C], i32[batch_size]): examples `batch_indices(key, step, batch_size, N)`.
    """
    count = num_examples(images)
    if count != labels.shape[0]:
        raise ValueError(f"images has {count} examples but labels has {labels.shape[0]}.")
    idx = batch_indices(key, step, batch_size, count)
    if batch_sharding is not None:
        idx = lax.with_sharding_constraint(idx, batch_sharding)
    if isinstance(images, Pixels):
        images = Pixels(jnp.take(images.codes, idx, axis=0), images.table)
    else:
        images = jnp.take(images, idx, axis=0)
    batch = decode_pixels(images), jnp.take(labels, idx, axis=0)
    if batch_sharding is not None:
        batch = lax.with_sharding_constraint(batch, batch_sharding)
    return batch


# --- the same batches on the host, in numpy ----------------------------------------------------


def feistel_round_keys(key: jax.Array, epoch: int) -> np.ndarray:
    """The round keys u32[4] of epoch `epoch`'s permutation, as `permute` draws them from `fold_in(key, epoch)`.

    Four random words per epoch, drawn with `jax.random` (on the host's default device, eagerly) so that they are
    the very bits the device draws; everything after them is `permute_numpy`.
    """
    return np.asarray(jax.random.bits(jax.random.fold_in(key, epoch), (_FEISTEL_ROUNDS,), jnp.uint32))


def _mix32_numpy(x: np.ndarray) -> np.ndarray:
    """`_mix32` on a u32 numpy array (multiplications wrap modulo 2^32, as on the device)."""
    x = x ^ (x >> 16)
    x = x * np.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * np.uint32(0x846CA68B)
    return x ^ (x >> 16)


def permute_numpy(round_keys: np.ndarray, positions: np.ndarray, num_examples: int) -> np.ndarray:
    """`permute` in numpy: the images of `positions` (ints in [0, num_examples)) under the permutation whose round
    keys are `round_keys` (u32[4], from `feistel_round_keys`).  Equal to `permute` element for element.

    Returns i32 of the shape of `positions`.
    """
    bits = max(2, (num_examples - 1).bit_length())
    half = (bits + 1) // 2
    mask = np.uint32((1 << half) - 1)
    round_keys = np.asarray(round_keys, np.uint32)

    def encrypt(v):
        left, right = v >> half, v & mask
        for r in range(_FEISTEL_ROUNDS):
            left, right = right, left ^ (_mix32_numpy(right ^ round_keys[r]) & mask)
        return (left << half) | right

    values = encrypt(np.asarray(positions).astype(np.uint32))
    while (outside := values >= num_examples).any():
        values[outside] = encrypt(values[outside])
    return values.astype(np.int32)


def batch_indices_numpy(key: jax.Array, step: int, batch_size: int, num_examples: int) -> np.ndarray:
    """`batch_indices` computed on the host: i32[batch_size], the rows of batch `step` (a Python int >= 0).

    What a host reading batches from storage asks for, so that its batch `step` is the device's batch `step`; the
    Feistel network runs in numpy, only the epoch's four round keys come from `jax.random` (`feistel_round_keys`).
    """
    if not 1 <= batch_size <= num_examples:
        raise ValueError(f"batch_size must be between 1 and the number of examples ({num_examples}); got {batch_size}.")
    steps_per_epoch = num_examples // batch_size
    epoch, position = divmod(int(step), steps_per_epoch)
    positions = position * batch_size + np.arange(batch_size)
    return permute_numpy(feistel_round_keys(key, epoch), positions, num_examples)
