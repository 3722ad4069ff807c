"""The conditional VAE (Sohn et al. 2015) as a pure Flax module: q(z | x, y) and p(x | z, y) given the class y.

The label enters both networks as a one-hot vector concatenated to their inputs: to the flattened image for the
encoder, to z for the decoder.  z is drawn by reparameterisation from an explicit key; the loss pieces live in
`gen_jax/losses.py`, the encoder and decoder MLPs in `autoencoder.py`.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_jax import losses


class CVAE(nn.Module):
    """`encoder`: f32[B, P + K] -> f32[B, 2·D] (mean and log-variance, concatenated); `decoder`: f32[B, D + K] ->
    likelihood parameters f32[B, H, W, C], for P pixels, K = num_classes classes and a D-dimensional code."""

    encoder: nn.Module
    decoder: nn.Module
    num_classes: int

    def _with_labels(self, h: jax.Array, labels: jax.Array) -> jax.Array:
        return jnp.concatenate([h.reshape(h.shape[0], -1), jax.nn.one_hot(labels, self.num_classes)], axis=-1)

    def encode(self, x: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
        """x: f32[B, H, W, C], labels: i32[B] -> (mean, log_var) of q(z | x, y), each f32[B, D]."""
        mean, log_var = jnp.split(self.encoder(self._with_labels(x, labels)), 2, axis=-1)
        return mean, log_var

    def decode(self, z: jax.Array, labels: jax.Array) -> jax.Array:
        """z: f32[B, D], labels: i32[B] -> parameters of p(x | z, y), f32[B, H, W, C] (logits or means)."""
        return self.decoder(self._with_labels(z, labels))

    def __call__(self, x: jax.Array, labels: jax.Array, key: jax.Array):
        """One pass with z ~ q(z | x, y) drawn from `key`: returns (decoded, mean, log_var)."""
        mean, log_var = self.encode(x, labels)
        return self.decode(losses.reparameterize(key, mean, log_var), labels), mean, log_var
