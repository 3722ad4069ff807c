"""The VQ-VAE (van den Oord et al. 2017) and its PixelCNN prior over the code grid, as pure Flax modules and functions.

The encoder maps an image f32[B, H, W, C] to a grid of continuous vectors z_e f32[B, h, w, D] (h = ⌈H / 2^n⌉ for n
stride-2 convolutions); each is replaced by its nearest codebook row e_k (K rows of D numbers), and the decoder maps
the grid of chosen rows back to likelihood parameters f32[B, H, W, C].  The gradient crosses the quantiser by the
straight-through estimator: z_q = z_e + stop_gradient(e − z_e), whose value is e and whose gradient with respect to
z_e is the identity.  The codebook's learning rules (the EMA update, the dead-code reset) are pure functions here;
the training step that applies them, and the codebook's loss term, live in `gen_jax/tasks/vqvae.py`.

The prior (van den Oord et al. 2016, PixelCNN) models the grid of code indices i32[B, h, w] autoregressively in
raster order: p(k) = Π_i p(k_i | k_<i), each a categorical over the K codes.  Masked convolutions make the logits at
position i a function of positions < i only: the first layer's mask (type A) hides the centre, later ones (type B)
show it, and every mask hides the rows below and the columns to the right on the centre row.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.models import upsampling

# --- the quantiser ----------------------------------------------------------------------------------------------


def squared_distances(z: jax.Array, codebook: jax.Array) -> jax.Array:
    """‖z_n − e_k‖² for z f32[N, D] and codebook f32[K, D]: f32[N, K]."""
    return jnp.sum(z**2, axis=-1, keepdims=True) - 2.0 * z @ codebook.T + jnp.sum(codebook**2, axis=-1)[None, :]


def nearest_codes(z_e: jax.Array, codebook: jax.Array) -> jax.Array:
    """The index of the nearest codebook row (Euclidean) of each vector: z_e f32[..., D] -> i32[...]."""
    flat = z_e.reshape(-1, z_e.shape[-1])
    return jnp.argmin(squared_distances(flat, codebook), axis=-1).astype(jnp.int32).reshape(z_e.shape[:-1])


def straight_through(z_e: jax.Array, e: jax.Array) -> jax.Array:
    """z_e + stop_gradient(e − z_e): the value of e, the gradient of z_e (d/dz_e is the identity), any shape."""
    return z_e + jax.lax.stop_gradient(e - z_e)


def quantize(z_e: jax.Array, codebook: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Replaces each vector of z_e f32[..., D] by its nearest row of codebook f32[K, D].

    Returns:
      (z_q f32[..., D], the straight-through quantised vectors (value e, gradient to z_e);
       e f32[..., D], the chosen rows themselves (gradient to the codebook);
       indices i32[...], the chosen rows' indices).
    """
    indices = nearest_codes(z_e, codebook)
    e = codebook[indices]
    return straight_through(z_e, e), e, indices


def code_counts(indices: jax.Array, num_codes: int) -> jax.Array:
    """How often each of the K codes occurs in indices i32[...]: f32[K]."""
    return jnp.zeros((num_codes,), jnp.float32).at[indices.reshape(-1)].add(1.0)


def perplexity(counts: jax.Array) -> jax.Array:
    """exp(entropy) of the code usage f32[K] (counts, any scale): from 1 (one code used) to K (all used equally)."""
    p = counts / jnp.maximum(jnp.sum(counts), 1e-12)
    return jnp.exp(-jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0)))


def ema_codebook(
    ema: dict, z_e: jax.Array, indices: jax.Array, decay: float, epsilon: float = 1e-5
) -> tuple[dict, jax.Array]:
    """One EMA codebook update (van den Oord et al. 2017, appendix A.1).

    N_k ← γ N_k + (1 − γ) n_k and m_k ← γ m_k + (1 − γ) Σ_{i: k_i = k} z_i, for n_k the batch's assignments to code
    k; then e_k = m_k / Ñ_k with the Laplace-smoothed count Ñ_k = (N_k + ε) / (Σ N + K ε) · Σ N.

    Args:
      ema: {"counts": f32[K], "sums": f32[K, D]}.
      z_e: f32[N, D], the batch's encoder outputs; indices: i32[N], their codes.
      decay: γ in [0, 1).

    Returns:
      (the updated ema, the new codebook f32[K, D]).
    """
    num_codes = ema["counts"].shape[0]
    one_hot = jax.nn.one_hot(indices, num_codes, dtype=z_e.dtype)
    counts = decay * ema["counts"] + (1.0 - decay) * jnp.sum(one_hot, axis=0)
    sums = decay * ema["sums"] + (1.0 - decay) * one_hot.T @ z_e
    total = jnp.sum(counts)
    smoothed = (counts + epsilon) / (total + num_codes * epsilon) * total
    return {"counts": counts, "sums": sums}, sums / smoothed[:, None]


def reset_dead_codes(
    codebook: jax.Array, unused_steps: jax.Array, z_e: jax.Array, key: jax.Array, dead_after: int
) -> tuple[jax.Array, jax.Array]:
    """Codes unused for `dead_after` steps or more, each replaced by an encoder output of the batch drawn uniformly.

    Args:
      codebook: f32[K, D]; unused_steps: i32[K]; z_e: f32[N, D], the batch's encoder outputs; key: the draw's key.

    Returns:
      (the codebook f32[K, D], dead bool[K]: which rows were replaced).
    """
    dead = unused_steps >= dead_after
    picks = jax.random.randint(key, (codebook.shape[0],), 0, z_e.shape[0])
    return jnp.where(dead[:, None], z_e[picks], codebook), dead


# --- the VQ-VAE -------------------------------------------------------------------------------------------------


class VQEncoder(nn.Module):
    """x: f32[B, H, W, C] -> z_e f32[B, ⌈H / 2^n⌉, ⌈W / 2^n⌉, D]: n = len(features) stride-2 3×3 convolutions, a
    3×3 convolution, then a 1×1 convolution to D = embedding_dim (ReLU between, none at the end)."""

    features: Sequence[int]
    embedding_dim: int
    dtype: jnp.dtype | None = None
    conv_impl: str = "dual_grad"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h, n = x, len(self.features)
        for i, width in enumerate(self.features):
            h = nn.relu(
                upsampling.conv(width, (3, 3), (2, 2), conv_impl=self.conv_impl, name=f"Conv_{i}", dtype=self.dtype)(h)
            )
        h = nn.relu(
            upsampling.conv(self.features[-1], (3, 3), conv_impl=self.conv_impl, name=f"Conv_{n}", dtype=self.dtype)(h)
        )
        conv = upsampling.conv(
            self.embedding_dim, (1, 1), conv_impl=self.conv_impl, name=f"Conv_{n + 1}", dtype=self.dtype
        )
        return conv(h).astype(jnp.float32)


class VQDecoder(nn.Module):
    """z_q f32[B, h, w, D] -> f32[B, H, W, C] (Bernoulli logits or Gaussian means): a 3×3 convolution to features[0],
    then one stride-2 3×3 transposed convolution per width (the last to C channels, linear), cropped to H × W."""

    image_shape: tuple[int, int, int]
    features: Sequence[int]
    dtype: jnp.dtype | None = None
    conv_impl: str = "dual_grad"

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        height, width, channels = self.image_shape
        conv = upsampling.conv(self.features[0], (3, 3), conv_impl=self.conv_impl, name="Conv_0", dtype=self.dtype)
        h = nn.relu(conv(z))
        outputs = (*self.features[1:], channels)
        for i, out_features in enumerate(outputs):
            h = upsampling.conv_transpose(
                out_features, (3, 3), (2, 2), conv_impl=self.conv_impl, name=f"ConvTranspose_{i}", dtype=self.dtype
            )(h)
            if i < len(outputs) - 1:
                h = nn.relu(h)
        return h[:, :height, :width, :].astype(jnp.float32)


def code_grid(image_shape: tuple[int, int, int], num_downsamplings: int) -> tuple[int, int]:
    """(h, w), the code grid of an image of `image_shape` (H, W, C) after `num_downsamplings` stride-2 'SAME' layers."""
    height, width = image_shape[:2]
    for _ in range(num_downsamplings):
        height, width = -(-height // 2), -(-width // 2)
    return height, width


class VQVAE(nn.Module):
    """`encoder` (x -> z_e f32[B, h, w, D]), the codebook (parameter "codebook" f32[K, D]) and `decoder`
    (z_q f32[B, h, w, D] -> likelihood parameters f32[B, H, W, C])."""

    encoder: nn.Module
    decoder: nn.Module
    num_codes: int
    embedding_dim: int

    def setup(self):
        # Uniform in ±√(3 / D): unit variance per vector, the scale of a fresh encoder's outputs.
        scale = math.sqrt(3.0 / self.embedding_dim)
        self.codebook = self.param(
            "codebook",
            lambda key, shape: jax.random.uniform(key, shape, jnp.float32, -scale, scale),
            (self.num_codes, self.embedding_dim),
        )

    def encode(self, x: jax.Array) -> jax.Array:
        """x: f32[B, H, W, C] -> z_e f32[B, h, w, D], the continuous encoder outputs before quantisation."""
        return self.encoder(x)

    def quantize(self, z_e: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """z_e f32[B, h, w, D] -> (z_q straight-through, e the chosen rows, indices i32[B, h, w]); see `quantize`."""
        return quantize(z_e, self.codebook)

    def decode(self, z_q: jax.Array) -> jax.Array:
        """z_q f32[B, h, w, D] -> likelihood parameters f32[B, H, W, C] (logits or means)."""
        return self.decoder(z_q)

    def decode_indices(self, indices: jax.Array) -> jax.Array:
        """indices i32[B, h, w] -> likelihood parameters f32[B, H, W, C]: the decoder of the codebook rows named."""
        return self.decoder(self.codebook[indices])

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
        """Returns (decoded f32[B, H, W, C] from the straight-through z_q, z_e, e, indices i32[B, h, w])."""
        z_e = self.encode(x)
        z_q, e, indices = self.quantize(z_e)
        return self.decode(z_q), z_e, e, indices


# --- the prior --------------------------------------------------------------------------------------------------


def causal_mask(size: int, mask_type: str) -> np.ndarray:
    """f32[k, k, 1, 1]: 1 on the kernel taps a raster-order masked convolution may read, 0 elsewhere.

    Rows above the centre are read; on the centre row the columns left of the centre, and the centre itself for
    type "B" (not for type "A", which must not see the position it predicts); nothing below.
    """
    if mask_type not in ("A", "B"):
        raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
    centre = size // 2
    mask = np.zeros((size, size), np.float32)
    mask[:centre, :] = 1.0
    mask[centre, : centre + (mask_type == "B")] = 1.0
    return mask[:, :, None, None]


class MaskedConv(nn.Module):
    """A stride-1 'SAME' k×k convolution whose kernel is multiplied by `causal_mask(k, mask_type)`: x f32[B, h, w, C]
    -> f32[B, h, w, features].  Parameters `kernel` f32[k, k, C, features] and `bias` f32[features]; the masked taps
    get zero gradient, so they never matter."""

    features: int
    kernel_size: int
    mask_type: str
    dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k = self.kernel_size
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (k, k, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
        mask = jnp.asarray(causal_mask(k, self.mask_type), kernel.dtype)
        return upsampling.canonical_grad_conv(x, kernel * mask, 1) + bias


class PixelCNNPrior(nn.Module):
    """An autoregressive prior over code grids: one-hot codes f32[B, h, w, K] -> logits f32[B, h, w, K] of
    p(k_i | k_<i) at every position i (raster order).

    A type-A masked k×k convolution (k = `first_kernel`), `num_layers` residual blocks h + MaskedConvB(ReLU(h))
    (3×3, type B), then two 1×1 layers (ReLU between) to K logits.  The logits at position i never depend on the
    input at positions ≥ i.
    """

    num_codes: int
    features: int = 64
    num_layers: int = 4
    first_kernel: int = 5
    dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(self, codes: jax.Array) -> jax.Array:
        h = MaskedConv(self.features, self.first_kernel, "A", dtype=self.dtype)(codes)
        for _ in range(self.num_layers):
            h = h + MaskedConv(self.features, 3, "B", dtype=self.dtype)(nn.relu(h))
        h = nn.relu(nn.Dense(self.features, dtype=self.dtype)(nn.relu(h)))
        return nn.Dense(self.num_codes, dtype=self.dtype)(h).astype(jnp.float32)


def prior_log_prob(prior: PixelCNNPrior, params, indices: jax.Array) -> jax.Array:
    """log p(k) of code grids indices i32[B, h, w] under the prior: f32[B], nats per image summed over the grid."""
    logits = prior.apply({"params": params}, jax.nn.one_hot(indices, prior.num_codes))
    log_p = jnp.take_along_axis(jax.nn.log_softmax(logits), indices[..., None], axis=-1)
    return jnp.sum(log_p, axis=(1, 2, 3))


def sample_prior(prior: PixelCNNPrior, params, key: jax.Array, count: int, grid: tuple[int, int]) -> jax.Array:
    """`count` code grids i32[count, h, w] drawn from the prior, one position at a time in raster order.

    Position i (0 ≤ i < h·w) is drawn with fold_in(key, i) from the logits computed on the grid holding the draws
    at positions < i (zeros after them, which the mask hides); a `lax.fori_loop` of h·w full passes.
    """
    height, width = grid
    num_codes = prior.num_codes

    def draw(i, flat):
        logits = prior.apply({"params": params}, jax.nn.one_hot(flat.reshape(count, height, width), num_codes))
        at_i = jax.lax.dynamic_index_in_dim(logits.reshape(count, height * width, num_codes), i, axis=1, keepdims=False)
        drawn = jax.random.categorical(jax.random.fold_in(key, i), at_i).astype(jnp.int32)
        return jax.lax.dynamic_update_index_in_dim(flat, drawn, i, axis=1)

    flat = jax.lax.fori_loop(0, height * width, draw, jnp.zeros((count, height * width), jnp.int32))
    return flat.reshape(count, height, width)
