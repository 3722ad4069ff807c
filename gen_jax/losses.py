"""Loss pieces as pure functions of arrays: log-likelihoods, KL, ELBO, IWAE, reconstruction errors.

Every function returns one value per example (shape [B]) unless it says otherwise, so callers choose how to
reduce.  Log-likelihoods and KLs are in nats per example, summed over pixels and latent dimensions.
Neighbours: `steps.py` combines these into train steps, `metrics.py` into evaluations.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

LIKELIHOODS = ("bernoulli", "gaussian")


def _sum_per_example(values: jax.Array) -> jax.Array:
    """Sums every axis but the first: f32[B, ...] -> f32[B]."""
    return values.reshape(values.shape[0], -1).sum(axis=1)


def bernoulli_log_likelihood(logits: jax.Array, x: jax.Array) -> jax.Array:
    """log p(x | logits) under independent Bernoullis, summed over pixels.

    Args:
        logits: f32[B, ...] Bernoulli logits.
        x: f32[B, ...] targets in [0, 1] (binary, or grey values for the continuous relaxation).

    Returns:
        f32[B], nats per example: sum_i x_i log σ(l_i) + (1 - x_i) log σ(-l_i).
    """
    # log_sigmoid(-l) = log(1 - σ(l)) without the cancellation of 1 - σ(l) for large l.
    per_pixel = x * jax.nn.log_sigmoid(logits) + (1.0 - x) * jax.nn.log_sigmoid(-logits)
    return _sum_per_example(per_pixel)


def gaussian_log_likelihood(mean: jax.Array, log_scale: jax.Array, x: jax.Array) -> jax.Array:
    """log N(x; mean, exp(log_scale)²) with a diagonal covariance, summed over pixels.

    Args:
        mean: f32[B, ...].
        log_scale: log standard deviation; a scalar or broadcastable to `mean`.
        x: f32[B, ...].

    Returns:
        f32[B], nats per example.
    """
    log_scale = jnp.broadcast_to(log_scale, mean.shape)
    z = (x - mean) * jnp.exp(-log_scale)
    per_pixel = -0.5 * z**2 - log_scale - 0.5 * math.log(2 * math.pi)
    return _sum_per_example(per_pixel)


def reconstruction_log_likelihood(
        likelihood: str, decoded: jax.Array, log_scale: jax.Array | None, x: jax.Array
) -> jax.Array:
    """log p(x | z) for the decoder output `decoded` under the named likelihood: f32[B], nats."""
    if likelihood == "bernoulli":
        return bernoulli_log_likelihood(decoded, x)
    if likelihood == "gaussian":
        return gaussian_log_likelihood(decoded, log_scale, x)
    raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")


def kl_to_standard_normal(mean: jax.Array, log_var: jax.Array) -> jax.Array:
    """Analytic KL(N(mean, diag(exp(log_var))) || N(0, I)).

    Args:
        mean, log_var: f32[B, D].

    Returns:
        f32[B], nats: ½ Σ_d (exp(log_var) + mean² − 1 − log_var)  (Kingma & Welling 2014, appendix B).
    """
    return 0.5 * jnp.sum(jnp.exp(log_var) + mean**2 - 1.0 - log_var, axis=-1)


def elbo(log_likelihood: jax.Array, kl: jax.Array, beta: float = 1.0) -> jax.Array:
    """Evidence lower bound E_q[log p(x|z)] − β KL(q(z|x) || p(z)); β = 1 is the true bound (β-VAE otherwise)."""
    return log_likelihood - beta * kl


def reparameterize(key: jax.Array, mean: jax.Array, log_var: jax.Array) -> jax.Array:
    """z = mean + exp(½ log_var) ⊙ ε with ε ~ N(0, I) drawn from `key`: a sample of q(z|x) differentiable in
    (mean, log_var).  Shapes f32[..., D]."""
    eps = jax.random.normal(key, mean.shape, mean.dtype)
    return mean + jnp.exp(0.5 * log_var) * eps


def log_normal_diag(z: jax.Array, mean: jax.Array, log_var: jax.Array) -> jax.Array:
    """log N(z; mean, diag(exp(log_var))), summed over the last axis: f32[...]."""
    return -0.5 * jnp.sum(
            math.log(2 * math.pi) + log_var + (z - mean) ** 2 * jnp.exp(-log_var), axis=-1
    )


def iwae_log_marginal(log_px_given_z: jax.Array, log_pz: jax.Array, log_qz: jax.Array) -> jax.Array:
    """Importance-weighted estimate of log p(x) from K samples z_k ~ q(z|x) (Burda et al. 2016).

    Args:
        log_px_given_z, log_pz, log_qz: f32[K, B].

    Returns:
        f32[B]: log (1/K) Σ_k p(x|z_k) p(z_k) / q(z_k|x), a lower bound on log p(x) that tightens as K grows.
    """
    log_weights = log_px_given_z + log_pz - log_qz
    num_samples = log_weights.shape[0]
    return jax.nn.logsumexp(log_weights, axis=0) - math.log(num_samples)


def squared_error(reconstruction: jax.Array, x: jax.Array) -> jax.Array:
    """Mean squared error per pixel for each example: f32[B]."""
    diff = (reconstruction - x).reshape(x.shape[0], -1)
    return jnp.mean(diff**2, axis=1)
