"""The conditional VAE family (gen_jax/tasks/cvae.py, gen_jax/models/cvae.py): its KL is the Gaussian formula, the
label conditions the decoder, and it trains, resumes bit for bit and draws its figures through experiments.main."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import main as experiments_main
from experiments.configs import cvae_digits
from gen_jax import checkpoint, data, trained
from gen_jax import config as config_lib
from gen_jax import train as train_lib
from gen_jax.tasks import cvae

from conftest import read_jsonl, trees_equal


def tiny_cvae_config(**overrides):
    config = cvae_digits.get_config()
    config.model.hidden = (32,)
    config.model.latent_dim = 2
    config.batch_size = 32
    config.num_steps = 40
    config.log_every = 10
    config.eval_every = 20
    config.checkpoint_every = 20
    config.keep_checkpoints = 5
    config.eval_batch_size = 200
    config.write_figures = False
    for name, value in overrides.items():
        config[name] = value
    return config


def test_kl_and_reconstruction_terms_match_a_hand_computation(digits):
    config = tiny_cvae_config()
    model = cvae.build_model(config, digits)
    x = (digits.test_images[:6] > 0.5).astype(np.float32)
    labels = digits.test_labels[:6]
    params = model.init(jax.random.key(0), x, labels, jax.random.key(1))["params"]
    key = jax.random.key(2)
    terms = cvae.per_example_terms(model, "bernoulli", params, {"image": x, "label": labels}, key)
    mean, log_var = model.apply({"params": params}, x, labels, method=model.encode)
    kl = 0.5 * np.sum(np.exp(log_var) + np.asarray(mean) ** 2 - 1.0 - log_var, axis=1)
    np.testing.assert_allclose(terms["kl"], kl, rtol=1e-5, atol=1e-6)
    z = mean + jnp.exp(0.5 * log_var) * jax.random.normal(key, mean.shape)
    p = jax.nn.sigmoid(model.apply({"params": params}, z, labels, method=model.decode))
    nll = -np.sum(x * np.log(p) + (1 - x) * np.log1p(-p), axis=(1, 2, 3))
    np.testing.assert_allclose(terms["recon_nll"], nll, rtol=1e-4)
    np.testing.assert_allclose(terms["neg_elbo"], nll + kl, rtol=1e-4)


def test_the_class_prior_kl_and_samples_follow_each_class_gaussian(digits):
    config = tiny_cvae_config()
    config.model.prior = "class"
    model = cvae.build_model(config, digits)
    x = (digits.test_images[:6] > 0.5).astype(np.float32)
    labels = digits.test_labels[:6]
    params = model.init(jax.random.key(0), x, labels, jax.random.key(1))["params"]
    assert params["prior_mean"].shape == params["prior_log_var"].shape == (10, 2)
    assert not np.any(params["prior_mean"]) and not np.any(params["prior_log_var"])  # starts at N(0, I)
    params = {
        **params,
        "prior_mean": jax.random.normal(jax.random.key(5), (10, 2)),
        "prior_log_var": 0.5 * jax.random.normal(jax.random.key(6), (10, 2)),
    }
    terms = cvae.per_example_terms(model, "bernoulli", params, {"image": x, "label": labels}, jax.random.key(2))
    mean, log_var = (np.asarray(a, np.float64) for a in model.apply({"params": params}, x, labels, method=model.encode))
    prior_mean = np.asarray(params["prior_mean"], np.float64)[labels]
    prior_var = np.exp(np.asarray(params["prior_log_var"], np.float64))[labels]
    var = np.exp(log_var)  # KL of two diagonal Gaussians, written out
    kl = 0.5 * np.sum(var / prior_var + (mean - prior_mean) ** 2 / prior_var - 1.0 + np.log(prior_var / var), axis=1)
    np.testing.assert_allclose(terms["kl"], kl, rtol=1e-5, atol=1e-6)
    # Codes drawn for class 3 come from N(μ_3, σ_3²): their mean and spread match it.
    noise = jax.random.normal(jax.random.key(7), (20_000, 2))
    z = np.asarray(model.apply({"params": params}, noise, jnp.full(20_000, 3), method=model.prior_codes))
    np.testing.assert_allclose(z.mean(0), params["prior_mean"][3], atol=0.05)
    np.testing.assert_allclose(z.std(0), np.exp(0.5 * params["prior_log_var"][3]), rtol=0.03)


def test_the_label_conditions_both_networks(digits):
    model = cvae.build_model(tiny_cvae_config(), digits)
    x = digits.test_images[:4]
    params = model.init(jax.random.key(0), x, jnp.zeros(4, jnp.int32), jax.random.key(1))["params"]
    zeros, ones = jnp.zeros(4, jnp.int32), jnp.ones(4, jnp.int32)
    z = jax.random.normal(jax.random.key(3), (4, 2))
    decode = lambda y: model.apply({"params": params}, z, y, method=model.decode)
    encode = lambda y: model.apply({"params": params}, x, y, method=model.encode)[0]
    assert not np.allclose(decode(zeros), decode(ones))
    assert not np.allclose(encode(zeros), encode(ones))


@pytest.mark.slow
def test_trains_resumes_bit_identically_and_draws_its_figures(tmp_path):
    experiments_main.run(tiny_cvae_config(num_steps=20), str(tmp_path / "split"))
    resumed = experiments_main.run(tiny_cvae_config(), str(tmp_path / "split"))
    straight = experiments_main.run(tiny_cvae_config(write_figures=True), str(tmp_path / "straight"))
    assert resumed == straight and straight["steps"] == 40
    run = trained.load_run(str(tmp_path / "straight"))  # test_mse: the codec's reconstructions, given the labels
    labels = run.dataset.test_labels
    reconstructions = run.decode(run.encode(run.test_images, labels), labels)
    assert straight["test_mse"] == pytest.approx(float(np.mean((reconstructions - run.test_images) ** 2)), rel=1e-5)
    config = tiny_cvae_config()
    task = cvae.make_task(config, data.load_dataset("digits"))
    template = task.init_state(jax.random.key(0))
    (a, _), (b, _) = (
        checkpoint.restore_latest(str(tmp_path / run / "checkpoints"), template) for run in ("split", "straight")
    )
    assert trees_equal(a, b)
    losses = [r["train/loss"] for r in read_jsonl(tmp_path / "straight" / "metrics.jsonl") if "train/loss" in r]
    assert losses[-1] < losses[0]
    assert {"reconstructions.png", "samples_by_class.png", "latent_scatter.png", "loss_curves.png"} <= {
        p.name for p in (tmp_path / "straight" / "figures").iterdir()
    }


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("beta", 0.0, "config.beta must be a positive number"),
        ("ema_decay", 1.0, r"config.ema_decay must be a number in \[0, 1\)"),
    ],
)
def test_bad_config_is_refused_before_compute(field, value, message, tmp_path):
    with pytest.raises(config_lib.ConfigError, match=message):
        experiments_main.run(tiny_cvae_config(**{field: value}), str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_runs_from_before_the_prior_field_load_and_resume_and_the_class_prior_is_part_of_the_model(tmp_path):
    old = tmp_path / "old"
    experiments_main.run(tiny_cvae_config(num_steps=20), str(old))
    assert "prior" not in json.loads((old / "model.json").read_text())["model"]  # as model.json was before
    stored = json.loads((old / "config.json").read_text())
    del stored["model"]["prior"]  # config.json as it was before the field existed
    (old / "config.json").write_text(json.dumps(stored))
    run = trained.load_run(str(old))
    labels = run.dataset.test_labels[:4]
    assert run.decode(run.encode(run.test_images[:4], labels), labels).shape == run.test_images[:4].shape
    assert experiments_main.run(tiny_cvae_config(), str(old))["steps"] == 40  # resumed with today's config
    new = tmp_path / "class_prior"
    config = tiny_cvae_config(num_steps=20)
    config.model.prior = "class"
    experiments_main.run(config, str(new))
    assert json.loads((new / "model.json").read_text())["model"]["prior"] == "class"
    with pytest.raises(train_lib.WorkdirMismatchError, match="model.prior"):
        experiments_main.run(tiny_cvae_config(), str(new))
