"""The conditional VAE (Sohn et al. 2015) as a pure Flax module: q(z | x, y) and p(x | z, y) given the class y,
with the prior p(z | y) either N(0, I) for every class or a learned Gaussian per class.

The label enters both networks as a one-hot vector concatenated to their inputs: to the flattened image for the
encoder, to z for the decoder.  z is drawn by reparameterisation from an explicit key; the loss pieces live in
`gen_jax/losses.py`, the encoder and decoder MLPs in `autoencoder.py`.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_jax import losses

PRIORS = ("standard", "class")


class CVAE(nn.Module):
    """`encoder`: f32[B, P + K] -> f32[B, 2·D] (mean and log-variance, concatenated); `decoder`: f32[B, D + K] ->
    likelihood parameters f32[B, H, W, C], for P pixels, K = num_classes classes and a D = latent_dim code.

    `prior`: "standard" is p(z | y) = N(0, I) whatever y; "class" learns p(z | y) = N(μ_y, diag(exp(λ_y))), two
    parameters f32[K, D] (`prior_mean`, `prior_log_var`, both starting at 0, i.e. at N(0, I)), so each class's
    codes only need to fill their own Gaussian, and z drawn from p(z | y) stays among the codes of class y."""

    encoder: nn.Module
    decoder: nn.Module
    num_classes: int
    latent_dim: int
    prior: str = "standard"

    def setup(self):
        if self.prior == "class":
            shape = (self.num_classes, self.latent_dim)
            self.prior_mean = self.param("prior_mean", nn.initializers.zeros, shape)
            self.prior_log_var = self.param("prior_log_var", nn.initializers.zeros, shape)
        elif self.prior != "standard":
            raise ValueError(f"prior must be one of {PRIORS}, got {self.prior!r}")

    def _with_labels(self, h: jax.Array, labels: jax.Array) -> jax.Array:
        return jnp.concatenate([h.reshape(h.shape[0], -1), jax.nn.one_hot(labels, self.num_classes)], axis=-1)

    def encode(self, x: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
        """x: f32[B, H, W, C], labels: i32[B] -> (mean, log_var) of q(z | x, y), each f32[B, D]."""
        mean, log_var = jnp.split(self.encoder(self._with_labels(x, labels)), 2, axis=-1)
        return mean, log_var

    def decode(self, z: jax.Array, labels: jax.Array) -> jax.Array:
        """z: f32[B, D], labels: i32[B] -> parameters of p(x | z, y), f32[B, H, W, C] (logits or means)."""
        return self.decoder(self._with_labels(z, labels))

    def prior_of(self, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
        """labels: i32[B] -> (mean, log_var) of p(z | y), each f32[B, D]."""
        if self.prior == "class":
            return self.prior_mean[labels], self.prior_log_var[labels]
        zeros = jnp.zeros((labels.shape[0], self.latent_dim), jnp.float32)
        return zeros, zeros

    def kl(self, mean: jax.Array, log_var: jax.Array, labels: jax.Array) -> jax.Array:
        """KL(q(z | x, y) ‖ p(z | y)) f32[B], nats, for the posterior (mean, log_var) f32[B, D]."""
        if self.prior == "class":
            return losses.kl_diagonal_gaussians(mean, log_var, *self.prior_of(labels))
        return losses.kl_to_standard_normal(mean, log_var)

    def prior_codes(self, noise: jax.Array, labels: jax.Array) -> jax.Array:
        """z = μ_y + σ_y ⊙ ε, a draw of p(z | y) from standard-normal noise ε f32[B, D], for labels i32[B]: f32[B, D]
        (z = ε exactly under the standard prior, so one ε decoded under every label keeps the style)."""
        mean, log_var = self.prior_of(labels)
        return mean + jnp.exp(0.5 * log_var) * noise

    def __call__(self, x: jax.Array, labels: jax.Array, key: jax.Array):
        """One pass with z ~ q(z | x, y) drawn from `key`: returns (decoded, mean, log_var)."""
        mean, log_var = self.encode(x, labels)
        return self.decode(losses.reparameterize(key, mean, log_var), labels), mean, log_var
