"""The IWAE objective (gen_jax/tasks/vae.py, objective "iwae"): with one sample it is the ELBO, with more it is a
tighter bound, it is the evaluation's own estimate sample for sample, and it trains and resumes bit for bit
through experiments.main."""

import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import main as experiments_main
from experiments.configs import iwae_fashion_mnist
from gen_jax import checkpoint, losses, metrics
from gen_jax import config as config_lib
from gen_jax.tasks import vae

from conftest import read_jsonl, tiny_vae_config, trees_equal


def tiny_iwae_config(**overrides):
    return tiny_vae_config(**{"objective": "iwae", "num_importance_samples": 5, **overrides})


@pytest.fixture(scope="module")
def model_and_batch(digits):
    """A tiny VAE at its initial parameters and 64 statically binarised test digits."""
    model = vae.build_model(tiny_iwae_config(), digits.image_shape)
    x = (digits.test_images[:64] > 0.5).astype(np.float32)
    params = model.init(jax.random.key(0), x[:1], jax.random.key(1))["params"]
    return model, params, {"image": jnp.asarray(x), "label": jnp.asarray(digits.test_labels[:64])}


def iwae_loss(model, k):
    return jax.jit(vae.make_iwae_loss(model, "bernoulli", k, "static"))


def losses_over_keys(loss_fn, params, batch, keys) -> np.ndarray:
    """loss_fn's loss for each key of keys[N]: f32[N]."""
    return np.asarray(jax.vmap(lambda key: loss_fn(params, batch, key)[0])(keys))


def test_with_one_sample_the_objective_is_the_elbo_of_the_same_z(model_and_batch):
    model, params, batch = model_and_batch
    key = jax.random.key(7)
    loss, aux = iwae_loss(model, 1)(params, batch, key)
    _, z_key = jax.random.split(key)
    sample_key = jax.random.fold_in(z_key, 0)  # sample 0's key
    x = batch["image"]
    terms = vae.per_example_terms(model, "bernoulli", params, x, sample_key)
    mean, log_var = model.apply({"params": params}, x, method=model.encode)
    z = losses.reparameterize(sample_key, mean, log_var)
    # The ELBO log p(x|z) − KL with the KL estimated by the same z: log q(z|x) − log p(z).
    kl_estimate = losses.log_normal_diag(z, mean, log_var) - losses.log_normal_diag(z, 0 * z, 0 * z)
    elbo = losses.elbo(-terms["recon_nll"], kl_estimate)
    np.testing.assert_allclose(loss, -np.mean(elbo), rtol=1e-6)
    assert aux["neg_elbo"] == loss == aux["neg_iwae_bound"]
    # Over many keys the one-sample objective averages to the VAE's loss (analytic KL): the same expectation.
    keys = jax.random.split(jax.random.key(8), 400)
    iwae_1 = losses_over_keys(iwae_loss(model, 1), params, batch, keys)
    analytic = losses_over_keys(vae.make_loss(model, "bernoulli", 1.0, "static"), params, batch, keys)
    standard_error = np.std(iwae_1 - analytic) / np.sqrt(len(keys))
    assert abs(np.mean(iwae_1) - np.mean(analytic)) < 4 * standard_error


def test_more_samples_give_a_tighter_bound_on_average(model_and_batch):
    model, params, batch = model_and_batch
    keys = jax.random.split(jax.random.key(9), 50)
    neg_elbo = np.mean(losses_over_keys(vae.make_loss(model, "bernoulli", 1.0, "static"), params, batch, keys))
    neg_bounds = [np.mean(losses_over_keys(iwae_loss(model, k), params, batch, keys)) for k in (5, 50)]
    assert neg_bounds[1] < neg_bounds[0] < neg_elbo


def test_the_training_bound_is_the_evaluations_estimate_sample_for_sample(model_and_batch):
    model, params, batch = model_and_batch
    key, k = jax.random.key(10), 5
    loss, _ = iwae_loss(model, k)(params, batch, key)
    _, z_key = jax.random.split(key)
    estimate = metrics.make_vae_iwae_nll(model, "bernoulli", k, metrics.sample_chunk_for(k))(
        params, batch["image"], z_key
    )
    np.testing.assert_allclose(loss, np.mean(estimate), rtol=1e-6)


@pytest.mark.slow
def test_trains_and_resumes_bit_for_bit_through_main(tmp_path, digits):
    config = tiny_iwae_config(num_steps=40, eval_every=20, iwae_k=0)
    straight = experiments_main.run(config, str(tmp_path / "straight"))
    # The same run as if it had been stopped after its checkpoint at step 20, then run again.
    shutil.copytree(tmp_path / "straight", tmp_path / "resumed")
    shutil.rmtree(tmp_path / "resumed" / "checkpoints" / "40")
    resumed = experiments_main.run(config, str(tmp_path / "resumed"))
    assert resumed == straight and straight["steps"] == 40
    assert straight["objective"] == "iwae" and straight["num_importance_samples"] == 5
    template = vae.make_task(config, digits).init_state(jax.random.key(0))
    (a, step_a), (b, step_b) = (
        checkpoint.restore_latest(str(tmp_path / run / "checkpoints"), template) for run in ("resumed", "straight")
    )
    assert step_a == step_b == 40 and trees_equal(a, b)
    records = [r for r in read_jsonl(tmp_path / "straight" / "metrics.jsonl") if "train/loss" in r]
    assert records[-1]["train/neg_iwae_bound"] < records[0]["train/neg_iwae_bound"]
    assert all(r["train/neg_iwae_bound"] <= r["train/neg_elbo"] for r in records)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"objective": "vi"}, r"config.objective must be one of 'elbo', 'iwae'; got 'vi'"),
        ({"num_importance_samples": 0}, "config.num_importance_samples must be a positive integer, got 0"),
        ({"beta": 0.5}, r"config.beta must be 1 with config.objective='iwae'"),
    ],
)
def test_bad_config_is_refused_before_compute(overrides, message, tmp_path):
    with pytest.raises(config_lib.ConfigError, match=message):
        experiments_main.run(tiny_iwae_config(**overrides), str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_the_fashion_mnist_config_is_the_vae_row_trained_on_the_five_sample_bound():
    config = iwae_fashion_mnist.get_config()
    assert (config.objective, config.num_importance_samples, config.beta) == ("iwae", 5, 1.0)
    assert (config.model.hidden, config.model.latent_dim, config.batch_size, config.num_steps) == (
        (500,),
        20,
        128,
        4680,
    )
