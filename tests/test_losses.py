"""Loss pieces: each checked against a value computed another way."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax import losses


def test_kl_of_standard_normal_is_zero():
    mean = jnp.zeros((3, 5))
    log_var = jnp.zeros((3, 5))
    np.testing.assert_allclose(losses.kl_to_standard_normal(mean, log_var), 0.0, atol=1e-7)


def test_kl_matches_monte_carlo():
    mean = jnp.array([[0.5, -1.0]])
    log_var = jnp.array([[-0.3, 0.4]])
    z = losses.reparameterize(
        jax.random.key(0), jnp.broadcast_to(mean, (200_000, 2)), jnp.broadcast_to(log_var, (200_000, 2))
    )
    monte_carlo = jnp.mean(
        losses.log_normal_diag(z, mean, log_var) - losses.log_normal_diag(z, jnp.zeros(2), jnp.zeros(2))
    )
    np.testing.assert_allclose(losses.kl_to_standard_normal(mean, log_var)[0], monte_carlo, rtol=2e-2)


def test_kl_is_positive_away_from_prior():
    kl = losses.kl_to_standard_normal(jnp.array([[1.0, 0.0]]), jnp.array([[0.0, 1.0]]))
    # ½(1 + 0) + ½(e - 1 - 1) by hand.
    np.testing.assert_allclose(kl, [0.5 + 0.5 * (math.e - 2.0)], rtol=1e-6)


def test_bernoulli_log_likelihood_by_hand():
    logits = jnp.array([[[0.0, 2.0]], [[-1.0, 3.0]]])
    x = jnp.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    sigmoid = lambda v: 1 / (1 + math.exp(-v))
    expected = [math.log(0.5) + math.log(1 - sigmoid(2.0)), math.log(1 - sigmoid(-1.0)) + math.log(sigmoid(3.0))]
    np.testing.assert_allclose(losses.bernoulli_log_likelihood(logits, x), expected, rtol=1e-6)


def test_bernoulli_log_likelihood_stable_for_large_logits():
    value = losses.bernoulli_log_likelihood(jnp.array([[200.0, -200.0]]), jnp.array([[0.0, 1.0]]))
    np.testing.assert_allclose(value, [-400.0], rtol=1e-6)


def test_gaussian_log_likelihood_by_hand():
    mean = jnp.array([[0.0, 1.0]])
    x = jnp.array([[1.0, 1.0]])
    log_scale = jnp.log(2.0)
    per_pixel = lambda d: -0.5 * (d / 2.0) ** 2 - math.log(2.0) - 0.5 * math.log(2 * math.pi)
    np.testing.assert_allclose(
        losses.gaussian_log_likelihood(mean, log_scale, x), [per_pixel(1.0) + per_pixel(0.0)], rtol=1e-6
    )


def test_unknown_likelihood_is_named():
    with pytest.raises(ValueError, match="bernoulli"):
        losses.reconstruction_log_likelihood("poisson", jnp.zeros((1, 2)), None, jnp.zeros((1, 2)))


def test_reparameterize_moments_and_gradient():
    mean = jnp.full((100_000, 1), 2.0)
    log_var = jnp.full((100_000, 1), math.log(0.25))
    z = losses.reparameterize(jax.random.key(1), mean, log_var)
    np.testing.assert_allclose(z.mean(), 2.0, atol=1e-2)
    np.testing.assert_allclose(z.std(), 0.5, atol=1e-2)
    grad = jax.grad(lambda m: losses.reparameterize(jax.random.key(1), m, jnp.zeros(1)).sum())(jnp.zeros(1))
    np.testing.assert_allclose(grad, [1.0])


def test_iwae_with_one_sample_is_the_single_sample_bound():
    log_px, log_pz, log_qz = jnp.array([[-3.0, -4.0]]), jnp.array([[-1.0, -2.0]]), jnp.array([[-0.5, -0.1]])
    np.testing.assert_allclose(losses.iwae_log_marginal(log_px, log_pz, log_qz), [-3.5, -5.9], rtol=1e-6)


def test_iwae_is_log_mean_of_weights():
    log_w = jnp.log(jnp.array([[1.0], [3.0]]))
    value = losses.iwae_log_marginal(log_w, jnp.zeros_like(log_w), jnp.zeros_like(log_w))
    np.testing.assert_allclose(value, [math.log(2.0)], rtol=1e-6)


def test_elbo_weights_kl():
    np.testing.assert_allclose(losses.elbo(jnp.array([-10.0]), jnp.array([2.0]), beta=0.5), [-11.0])


def test_squared_error_is_per_pixel_mean():
    np.testing.assert_allclose(losses.squared_error(jnp.ones((2, 2, 2, 1)), jnp.zeros((2, 2, 2, 1))), [1.0, 1.0])
