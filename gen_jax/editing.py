"""Latent-space editing ("make only the eyes bigger"): attribute vectors and moving codes along them.

An attribute vector is the mean code of the images that have an attribute minus the mean code of those that do
not; adding α times it to an image's code and decoding strengthens (α > 0) or removes (α < 0) the attribute
while the rest of the code, and so the rest of the image, stays.  Pure functions of arrays: the encoder and
decoder come from a trained AutoEncoder or VAE (`experiments/edit.py` loads them from a run).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


def attribute_vector(codes: jax.Array, has_attribute: jax.Array) -> jax.Array:
    """mean(codes[has_attribute]) − mean(codes[~has_attribute]).

    Args:
      codes: f32[N, D], latent codes (AutoEncoder codes or VAE posterior means) of a labelled set.
      has_attribute: bool[N], which of them show the attribute; both groups must be non-empty.

    Returns:
      f32[D], in the units of the codes.
    """
    codes = jnp.asarray(codes)
    has_attribute = jnp.asarray(has_attribute)
    if has_attribute.shape != codes.shape[:1] or has_attribute.dtype != jnp.bool_:
        raise ValueError(
            f"has_attribute must be bool[{codes.shape[0]}] (one flag per code), got "
            f"{has_attribute.dtype}{list(has_attribute.shape)}"
        )
    count = int(has_attribute.sum())
    if count in (0, len(has_attribute)):
        raise ValueError(
            f"the attribute vector needs codes both with and without the attribute; "
            f"{count} of {len(has_attribute)} have it"
        )
    # Weighted means rather than boolean indexing: one matrix product, no shapes that depend on the data.
    with_weights = has_attribute / count
    without_weights = ~has_attribute / (len(has_attribute) - count)
    return (with_weights - without_weights) @ codes


def edit(codes: jax.Array, vector: jax.Array, alphas: jax.Array) -> jax.Array:
    """Codes moved along `vector`: out[b, a] = codes[b] + alphas[a] · vector.

    Args:
      codes: f32[B, D]; vector: f32[D]; alphas: f32[A] edit strengths (0 leaves a code as it is).

    Returns:
      f32[B, A, D].
    """
    alphas = jnp.asarray(alphas, jnp.float32)
    return codes[:, None, :] + alphas[None, :, None] * vector


def edit_rows(
    encode: Callable[[jax.Array], jax.Array],
    decode: Callable[[jax.Array], jax.Array],
    images: jax.Array,
    vector: jax.Array,
    alphas: jax.Array,
) -> jax.Array:
    """Decoded edits of `images`: row b, column a is decode(encode(images[b]) + alphas[a] · vector).

    Args:
      encode: f32[B, H, W, C] -> f32[B, D]; decode: f32[M, D] -> f32[M, H, W, C].
      images: f32[B, H, W, C]; vector: f32[D]; alphas: f32[A].

    Returns:
      f32[B, A, H, W, C]; the column where α = 0 is the plain reconstruction decode(encode(images)).
    """
    codes = jnp.asarray(encode(images))
    moved = edit(codes, vector, alphas)
    decoded = jnp.asarray(decode(moved.reshape(-1, codes.shape[-1])))
    return decoded.reshape(*moved.shape[:2], *decoded.shape[1:])
