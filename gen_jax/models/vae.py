"""The Variational AutoEncoder (Kingma & Welling 2014) as a pure Flax module.

The encoder maps x to the mean and log-variance of a diagonal Gaussian q(z|x); z is drawn with the
reparameterisation trick from an explicit key; the decoder maps z to the parameters of p(x|z) (Bernoulli logits,
or a Gaussian mean whose log standard deviation is fixed or learned).  Encoders and decoders come from
`autoencoder.py`; the loss pieces live in `gen_jax/losses.py`.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_jax import losses


class VAE(nn.Module):
    """`encoder`: x -> f32[B, 2·latent_dim] (mean and log-variance, concatenated); `decoder`: z -> f32[B, H, W, C].

    Attributes:
      learn_scale: for a Gaussian likelihood, learn one log standard deviation shared by all pixels.
      fixed_log_scale: the log standard deviation used when it is not learned.
    """

    encoder: nn.Module
    decoder: nn.Module
    learn_scale: bool = False
    fixed_log_scale: float = 0.0

    def setup(self):
        if self.learn_scale:
            self.log_scale = self.param("log_scale", nn.initializers.zeros, ())

    def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """x: f32[B, H, W, C] -> (mean, log_var), each f32[B, D]."""
        mean, log_var = jnp.split(self.encoder(x), 2, axis=-1)
        return mean, log_var

    def decode(self, z: jax.Array) -> jax.Array:
        """z: f32[B, D] -> likelihood parameters f32[B, H, W, C] (logits or means)."""
        return self.decoder(z)

    def observation_log_scale(self) -> jax.Array:
        """Log standard deviation of a Gaussian p(x|z): learned or fixed (unused by the Bernoulli)."""
        if self.learn_scale:
            return self.log_scale
        return jnp.asarray(self.fixed_log_scale, jnp.float32)

    def __call__(self, x: jax.Array, key: jax.Array):
        """One pass with z ~ q(z|x) drawn from `key`.

        Args:
          x: f32[B, H, W, C].
          key: a PRNG key for the reparameterised draw of z.

        Returns:
          (decoded f32[B, H, W, C] likelihood parameters, mean f32[B, D], log_var f32[B, D], the observation's log
          standard deviation, a scalar).
        """
        mean, log_var = self.encode(x)
        z = losses.reparameterize(key, mean, log_var)
        return self.decode(z), mean, log_var, self.observation_log_scale()
