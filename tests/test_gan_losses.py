"""GAN losses (gen_jax/losses.py): values against hand computation, the saturation that motivates the
non-saturating loss, and WGAN-GP's gradient penalty against finite differences."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax import losses

REAL = jnp.array([0.0, 2.0])
FAKE = jnp.array([0.0, -0.5])


def softplus(x):
    return math.log1p(math.exp(x))


def test_discriminator_losses_match_hand_computation():
    logistic = [2 * math.log(2), softplus(-2.0) + softplus(-0.5)]
    for kind in ("non_saturating", "minimax"):
        np.testing.assert_allclose(losses.discriminator_loss(kind, REAL, FAKE), logistic, rtol=1e-6)
    # max(0, 1 - r) + max(0, 1 + f): (1 + 1, 0 + 0.5)
    np.testing.assert_allclose(losses.discriminator_loss("hinge", REAL, FAKE), [2.0, 0.5], rtol=1e-6)
    np.testing.assert_allclose(losses.discriminator_loss("wgan_gp", REAL, FAKE), [0.0, -2.5], rtol=1e-6)


def test_generator_losses_match_hand_computation():
    np.testing.assert_allclose(losses.generator_loss("non_saturating", FAKE), [math.log(2), softplus(0.5)], rtol=1e-6)
    np.testing.assert_allclose(losses.generator_loss("minimax", FAKE), [-math.log(2), -softplus(-0.5)], rtol=1e-6)
    for kind in ("hinge", "wgan_gp"):
        np.testing.assert_allclose(losses.generator_loss(kind, FAKE), [0.0, 0.5], rtol=1e-6)


def test_minimax_saturates_where_non_saturating_does_not():
    """When D confidently rejects a fake (logit -10), log(1 - D) has almost no gradient; -log D has about -1."""

    def slope(kind):
        return float(jax.grad(lambda f: losses.generator_loss(kind, f[None])[0])(jnp.asarray(-10.0)))

    assert -1e-3 < slope("minimax") < 0
    assert slope("non_saturating") == pytest.approx(-1.0, abs=1e-3)


def test_unknown_loss_is_named():
    with pytest.raises(ValueError, match="hinge"):
        losses.discriminator_loss("wasserstein", REAL, FAKE)
    with pytest.raises(ValueError, match="non_saturating"):
        losses.generator_loss("lsgan", FAKE)


def test_gradient_penalty_of_linear_critic_is_hand_computable():
    """critic(x) = Σ w·x has gradient w everywhere: the penalty is (‖w‖ - 1)² for every α."""
    real = jax.random.normal(jax.random.key(0), (3, 2, 2, 1))
    fake = jax.random.normal(jax.random.key(1), (3, 2, 2, 1))
    alpha = jnp.array([0.0, 0.3, 1.0])
    for w, expected in ((0.5, 0.0), (1.0, 1.0), (2.0, 9.0)):  # ‖w‖ = 2|w| over 4 pixels
        penalty = losses.gradient_penalty(lambda x, w=w: jnp.sum(w * x), real, fake, alpha)
        np.testing.assert_allclose(penalty, [expected] * 3, atol=1e-5)


def test_gradient_penalty_matches_finite_differences():
    """A nonlinear critic: the penalty equals (‖∇‖ - 1)² with ∇ from central differences at α·real + (1-α)·fake."""
    key_a, key_b, key_r, key_f, key_alpha = jax.random.split(jax.random.key(2), 5)
    a = jax.random.normal(key_a, (5, 12)) * 0.5
    b = jax.random.normal(key_b, (5,))

    def critic(x):  # one example f32[2, 3, 2] -> scalar
        return jnp.sum(b * jnp.tanh(a @ x.reshape(-1)))

    real = jax.random.normal(key_r, (4, 2, 3, 2))
    fake = jax.random.normal(key_f, (4, 2, 3, 2))
    alpha = jax.random.uniform(key_alpha, (4,))
    penalty = np.asarray(losses.gradient_penalty(critic, real, fake, alpha))

    step = 1e-2
    shifts = step * np.eye(12, dtype=np.float32).reshape(12, 2, 3, 2)
    critic_batch = jax.jit(jax.vmap(critic))
    for i in range(4):
        point = np.asarray(alpha[i] * real[i] + (1 - alpha[i]) * fake[i], np.float32)
        grad = (np.asarray(critic_batch(point + shifts)) - np.asarray(critic_batch(point - shifts))) / (2 * step)
        assert penalty[i] == pytest.approx((np.linalg.norm(grad) - 1.0) ** 2, rel=1e-3, abs=1e-5)


def test_gradient_penalty_uses_per_example_arguments_and_stays_finite_at_zero_gradient():
    """critic_args are vmapped with the examples (a conditional critic), and a flat critic (∇ = 0) has penalty 1
    with finite gradients thanks to the ε under the square root."""
    real = jnp.ones((2, 1, 1, 1))
    fake = jnp.zeros((2, 1, 1, 1))
    labels = jnp.array([1.0, 3.0])
    penalty = losses.gradient_penalty(
        lambda x, y: jnp.sum(y * x), real, fake, jnp.array([0.5, 0.5]), critic_args=(labels,)
    )
    np.testing.assert_allclose(penalty, [0.0, 4.0], atol=1e-5)

    def flat_penalty(scale):
        return jnp.mean(losses.gradient_penalty(lambda x: scale * 0.0 * jnp.sum(x), real, fake, jnp.array([0.2, 0.7])))

    value, grad = jax.value_and_grad(flat_penalty)(1.0)
    assert float(value) == pytest.approx(1.0, abs=1e-5)
    assert np.isfinite(float(grad))
