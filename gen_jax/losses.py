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
    # x log σ(l) + (1 − x) log σ(−l) = x l − softplus(l), and softplus(l) = max(l, 0) + log1p(exp(−|l|)) is
    # stable for any l.  Written out because XLA:CPU runs it faster than two jax.nn.log_sigmoid calls (measured in
    # benchmarks/README.md).  −|l| is min(l, −l) so that at l = 0 the two ties' half-gradients add up to the true
    # derivative σ(0) = ½.
    softplus = jnp.maximum(logits, 0.0) + jnp.log1p(jnp.exp(jnp.minimum(logits, -logits)))
    per_pixel = x * logits - softplus
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
    """log p(x | z) for the decoder output `decoded` under the named likelihood.

    Args:
        likelihood: one of `LIKELIHOODS`.
        decoded: f32[B, ...], Bernoulli logits or the Gaussian mean.
        log_scale: the Gaussian's log standard deviation (scalar or broadcastable); unused by the Bernoulli.
        x: f32[B, ...] targets.

    Returns:
        f32[B], nats per example summed over pixels.
    """
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


def kl_diagonal_gaussians(mean: jax.Array, log_var: jax.Array, prior_mean: jax.Array, prior_log_var: jax.Array):
    """Analytic KL(N(mean, diag(exp(log_var))) || N(prior_mean, diag(exp(prior_log_var)))).

    Args:
        mean, log_var: f32[B, D], the posterior.
        prior_mean, prior_log_var: f32[B, D] (or broadcastable), the prior.

    Returns:
        f32[B], nats: ½ Σ_d (exp(log_var − prior_log_var) + (mean − prior_mean)² exp(−prior_log_var) − 1
        + prior_log_var − log_var); `kl_to_standard_normal` where the prior is N(0, I).
    """
    precision = jnp.exp(-prior_log_var)
    return 0.5 * jnp.sum(
        jnp.exp(log_var) * precision + (mean - prior_mean) ** 2 * precision - 1.0 + prior_log_var - log_var, axis=-1
    )


def elbo(log_likelihood: jax.Array, kl: jax.Array, beta: float = 1.0) -> jax.Array:
    """Evidence lower bound E_q[log p(x|z)] − β KL(q(z|x) || p(z)); β = 1 is the true bound (β-VAE otherwise).

    Args:
        log_likelihood: f32[B], log p(x|z) in nats.
        kl: f32[B], KL(q(z|x) || p(z)) in nats.
        beta: weight of the KL term.

    Returns:
        f32[B], nats per example.
    """
    return log_likelihood - beta * kl


def reparameterize(key: jax.Array, mean: jax.Array, log_var: jax.Array) -> jax.Array:
    """z = mean + exp(½ log_var) ⊙ ε with ε ~ N(0, I) drawn from `key`: a sample of q(z|x) differentiable in
    (mean, log_var).

    Args:
        key: a PRNG key.
        mean, log_var: f32[..., D].

    Returns:
        f32[..., D], one z per row.
    """
    eps = jax.random.normal(key, mean.shape, mean.dtype)
    return mean + jnp.exp(0.5 * log_var) * eps


def log_normal_diag(z: jax.Array, mean: jax.Array, log_var: jax.Array) -> jax.Array:
    """log N(z; mean, diag(exp(log_var))), summed over the last axis.

    Args:
        z, mean, log_var: f32[..., D] (broadcastable to one another).

    Returns:
        f32[...], nats.
    """
    return -0.5 * jnp.sum(math.log(2 * math.pi) + log_var + (z - mean) ** 2 * jnp.exp(-log_var), axis=-1)


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
    """Mean squared error per pixel for each example.

    Args:
        reconstruction, x: f32[B, ...].

    Returns:
        f32[B], in squared pixel units, averaged over pixels.
    """
    diff = (reconstruction - x).reshape(x.shape[0], -1)
    return jnp.mean(diff**2, axis=1)


# The AutoEncoder's reconstruction losses: "mse" reads the decoder output as the image, "bernoulli" as logits.
RECONSTRUCTION_LOSSES = ("mse", "bernoulli")


def reconstruction_loss(kind: str, decoded: jax.Array, x: jax.Array) -> jax.Array:
    """The AutoEncoder's loss for decoder output `decoded` f32[B, ...] and targets x f32[B, ...]: f32[B].

    "mse": mean squared error per pixel (the loss PCA minimises); "bernoulli": −log p(x | logits = decoded),
    nats per example summed over pixels (the continuous relaxation when x holds grey values).
    """
    if kind == "mse":
        return squared_error(decoded, x)
    if kind == "bernoulli":
        return -bernoulli_log_likelihood(decoded, x)
    raise ValueError(f"reconstruction loss must be one of {RECONSTRUCTION_LOSSES}, got {kind!r}")


def reconstruction_mean(kind: str, decoded: jax.Array) -> jax.Array:
    """The reconstructed image the decoder output stands for: itself under "mse", σ(logits) under "bernoulli".

    Args:
        kind: one of `RECONSTRUCTION_LOSSES`.
        decoded: f32[B, ...], the decoder output.

    Returns:
        f32[B, ...], the same shape, in pixel units.
    """
    if kind == "bernoulli":
        return jax.nn.sigmoid(decoded)
    return decoded


# --- GAN losses --------------------------------------------------------------------------------------------------
# Functions of discriminator logits (f32[B]; D(x) = σ(logit) for the logistic losses, a critic value for WGAN),
# one value per example; real and fake examples are paired by index, so batch means are the usual expectations.

GAN_LOSSES = ("non_saturating", "minimax", "hinge", "wgan_gp")


def logistic_discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """−log D(x) − log(1 − D(G(z))) = softplus(−real) + softplus(fake): f32[B], nats (Goodfellow et al. 2014).

    The discriminator loss of both the minimax and the non-saturating GAN.
    """
    return jax.nn.softplus(-real_logits) + jax.nn.softplus(fake_logits)


def minimax_generator_loss(fake_logits: jax.Array) -> jax.Array:
    """log(1 − D(G(z))) = −softplus(fake): f32[B], the original minimax objective for G (saturates when D wins)."""
    return -jax.nn.softplus(fake_logits)


def non_saturating_generator_loss(fake_logits: jax.Array) -> jax.Array:
    """−log D(G(z)) = softplus(−fake): f32[B], the heuristic G loss with strong gradients early in training."""
    return jax.nn.softplus(-fake_logits)


def hinge_discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """max(0, 1 − real) + max(0, 1 + fake): f32[B] (Lim & Ye 2017; Miyato et al. 2018)."""
    return jax.nn.relu(1.0 - real_logits) + jax.nn.relu(1.0 + fake_logits)


def wasserstein_critic_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """fake − real: f32[B], the critic's side of the Wasserstein-1 dual (Arjovsky et al. 2017)."""
    return fake_logits - real_logits


def negated_fake_logit(fake_logits: jax.Array) -> jax.Array:
    """−fake: f32[B], the generator loss of the hinge GAN and of the WGAN."""
    return -fake_logits


def discriminator_loss(kind: str, real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """The named GAN's discriminator loss (without WGAN-GP's penalty, which `gradient_penalty` adds).

    Args:
        kind: one of `GAN_LOSSES`.
        real_logits, fake_logits: f32[B], D's logits (a critic value for "wgan_gp") on real and generated images.

    Returns:
        f32[B], one loss per example (nats for the logistic losses).
    """
    if kind in ("non_saturating", "minimax"):
        return logistic_discriminator_loss(real_logits, fake_logits)
    if kind == "hinge":
        return hinge_discriminator_loss(real_logits, fake_logits)
    if kind == "wgan_gp":
        return wasserstein_critic_loss(real_logits, fake_logits)
    raise ValueError(f"GAN loss must be one of {GAN_LOSSES}, got {kind!r}")


def generator_loss(kind: str, fake_logits: jax.Array) -> jax.Array:
    """The named GAN's generator loss.

    Args:
        kind: one of `GAN_LOSSES`.
        fake_logits: f32[B], D's logits (a critic value for "wgan_gp") on generated images.

    Returns:
        f32[B], one loss per example (nats for the logistic losses).
    """
    if kind == "non_saturating":
        return non_saturating_generator_loss(fake_logits)
    if kind == "minimax":
        return minimax_generator_loss(fake_logits)
    if kind in ("hinge", "wgan_gp"):
        return negated_fake_logit(fake_logits)
    raise ValueError(f"GAN loss must be one of {GAN_LOSSES}, got {kind!r}")


def gradient_penalty(
    critic, real: jax.Array, fake: jax.Array, alpha: jax.Array, eps: float = 1e-12, critic_args: tuple = ()
) -> jax.Array:
    """WGAN-GP's penalty (‖∇ₓ critic(x̂)‖₂ − 1)² at x̂ = α·real + (1 − α)·fake (Gulrajani et al. 2017).

    Args:
      critic: (one example f32[H, W, C], *one row of each critic_args) -> scalar; differentiated in its first
        argument, per example, with `vmap(grad(critic))`.
      real, fake: f32[B, H, W, C].
      alpha: f32[B], one α ~ U[0, 1] per example.
      eps: added under the square root, so the norm's gradient stays finite where ∇critic = 0.
      critic_args: per-example arrays [B, ...] passed alongside (e.g. the labels of a conditional critic).

    Returns:
      f32[B], the penalty per example (callers weight it, λ = 10 in the paper).
    """
    alpha = alpha.reshape(-1, *([1] * (real.ndim - 1)))
    interpolated = alpha * real + (1.0 - alpha) * fake
    grads = jax.vmap(jax.grad(critic))(interpolated, *critic_args)
    norms = jnp.sqrt(_sum_per_example(grads**2) + eps)
    return (norms - 1.0) ** 2
