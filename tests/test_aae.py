"""The Adversarial AutoEncoder (gen_jax/tasks/aae.py): its discriminator only ever sees codes, its adversarial term
reaches the encoder only, it pulls the codes towards N(0, I), it keeps the codec contract, and it trains, resumes bit
for bit and draws its figures through experiments.main."""

import shutil
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments import main as experiments_main
from experiments.configs import aae_digits, aae_fashion_mnist
from gen_jax import checkpoint, data, optim, tasks
from gen_jax import config as config_lib
from gen_jax.tasks import aae

from conftest import VAE_FIGURES, max_abs_difference, override, read_jsonl, trees_equal


def tiny_aae_config(**overrides):
    config = aae_digits.get_config()
    config.model.hidden = (32,)
    config.model.d_hidden = (32,)
    config.batch_size = 32
    config.num_steps = 40
    config.log_every = 10
    config.eval_every = 20
    config.checkpoint_every = 20
    config.keep_checkpoints = 5
    config.eval_batch_size = 200
    config.write_figures = False
    config.sample_quality.enabled = False  # scored in the configs' runs; the evaluator is test_sample_quality's
    return override(config, **overrides)


class Recording(nn.Module):
    """The discriminator `inner`, calling `note` with the shape of every input it is called on (at trace time)."""

    inner: nn.Module
    note: Callable

    @nn.compact
    def __call__(self, x, labels=None, *, train=False, update_stats=False):
        self.note(tuple(x.shape))
        return self.inner(x, labels, train=train, update_stats=update_stats)


def step_pieces(config, dataset, discriminator=None):
    """(state at step 0, the jitted train step, the optimizers (tx, reg_tx, d_tx)) of `config`."""
    model, default_discriminator = aae.build_models(config, dataset.image_shape)
    discriminator = discriminator or default_discriminator
    optimizers = tuple(optim.make(config[name], config.num_steps, name) for name in ("optim", "reg_optim", "d_optim"))
    state = aae.create_state(
        model.init(jax.random.key(0), jnp.zeros((1, *dataset.image_shape))),
        discriminator.init(jax.random.key(1), jnp.zeros((1, config.model.latent_dim))),
        *optimizers,
    )
    train_step = aae.make_train_step(
        model,
        discriminator,
        *optimizers,
        reconstruction=config.model.reconstruction_loss,
        gan_loss=config.loss,
        d_steps=config.d_steps,
        binarization=config.binarization,
    )
    return state, jax.jit(train_step), optimizers


def a_batch(dataset, size=32):
    return {"image": jnp.asarray(dataset.train_images[:size]), "label": jnp.asarray(dataset.train_labels[:size])}


@pytest.mark.parametrize("loss", ["non_saturating", "wgan_gp"])
def test_one_step_shows_the_discriminator_only_codes_and_leaves_the_decoder_to_reconstruction(loss, digits):
    """Every input D is called on in a step (its updates, WGAN-GP's penalty, the encoder's phase) is a batch of codes
    [*, latent_dim]; after the step the decoder is where the reconstruction phase alone puts it, the encoder is not."""
    config = tiny_aae_config(loss=loss, d_steps=2, binarization="static")
    seen = []
    model, discriminator = aae.build_models(config, digits.image_shape)
    state, train_step, (tx, _, _) = step_pieces(config, digits, Recording(discriminator, seen.append))
    seen.clear()  # the init call
    batch = a_batch(digits)
    new_state, metrics = train_step(state, batch, jax.random.key(2))
    assert seen and all(len(shape) == 2 and shape[1] == config.model.latent_dim for shape in seen), seen
    assert np.isfinite(metrics["d_loss"]) and np.isfinite(metrics["loss"])
    assert not trees_equal(new_state.d_params, state.d_params)
    grads, _ = jax.grad(aae.make_reconstruction_loss(model, "bernoulli"), has_aux=True)(state.params, batch["image"])
    updates, _ = tx.update(grads, state.opt_state, state.params)
    reconstruction_only = optax.apply_updates(state.params, updates)
    assert max_abs_difference(new_state.params["decoder"], reconstruction_only["decoder"]) < 1e-6
    assert max_abs_difference(new_state.params["encoder"], reconstruction_only["encoder"]) > 1e-4


def test_the_discriminator_pulls_the_codes_towards_the_prior(digits):
    """300 steps of the AAE and of its reconstruction phase alone (an AutoEncoder), from the same start on the same
    batches: the AAE's codes end with first two moments much closer to N(0, I)'s."""
    config = tiny_aae_config(model__latent_dim=4, binarization="static")
    model, _ = aae.build_models(config, digits.image_shape)
    images = jnp.asarray(data.preprocess(digits.train_images, "static"))
    state, train_step, (tx, _, _) = step_pieces(config, digits)
    loss_fn = aae.make_reconstruction_loss(model, "bernoulli")

    @jax.jit
    def autoencoder_step(params, opt_state, x):
        grads, _ = jax.grad(loss_fn, has_aux=True)(params, x)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    params, opt_state = state.params, state.opt_state
    for i in range(300):
        x = images[jax.random.choice(jax.random.key(i), len(images), (32,), replace=False)]
        state, _ = train_step(state, {"image": x, "label": None}, jax.random.key(1000 + i))
        params, opt_state = autoencoder_step(params, opt_state, x)
    distance = {
        name: aae.code_prior_frechet(np.asarray(model.apply({"params": p}, images, method=model.encode)))
        for name, p in (("aae", state.params), ("autoencoder", params))
    }
    assert distance["aae"] < 0.25 * distance["autoencoder"], distance


def test_codec_encodes_to_codes_and_decodes_to_images_in_the_unit_range(digits):
    assert "aae" in tasks.names()
    config = tiny_aae_config()
    task = aae.make_task(config, digits)
    state = task.init_state(jax.random.key(0))
    # The task's discriminator takes latent_dim inputs: an image (64 pixels here) cannot even be fed to it.
    assert state.d_params["Dense_0"]["kernel"].shape == (config.model.latent_dim, 32)
    encode, decode = task.codec(state)
    x, labels = digits.test_images[:5], digits.test_labels[:5]
    codes = np.asarray(encode(x))
    assert codes.shape == (5, config.model.latent_dim) and codes.dtype == np.float32
    np.testing.assert_array_equal(codes, np.asarray(encode(x, labels)))  # unconditional: labels are ignored
    images = decode(codes)
    assert images.shape == (5, *digits.image_shape) and images.min() >= 0.0 and images.max() <= 1.0
    np.testing.assert_array_equal(images, decode(codes, labels))


@pytest.mark.slow
def test_trains_resumes_bit_for_bit_and_draws_its_figures(tmp_path, digits):
    config = tiny_aae_config(write_figures=True)
    straight = experiments_main.run(config, str(tmp_path / "straight"))
    # The same run as if it had been stopped after its checkpoint at step 20, then run again.
    shutil.copytree(tmp_path / "straight", tmp_path / "resumed")
    shutil.rmtree(tmp_path / "resumed" / "checkpoints" / "40")
    resumed = experiments_main.run(tiny_aae_config(), str(tmp_path / "resumed"))  # figures once are enough
    assert resumed == straight and straight["steps"] == 40
    assert {"test_mse", "code_prior_frechet", "d_codes_test"} <= set(straight)
    template = aae.make_task(config, digits).init_state(jax.random.key(0))
    (a, step_a), (b, step_b) = (
        checkpoint.restore_latest(str(tmp_path / run / "checkpoints"), template) for run in ("resumed", "straight")
    )
    assert step_a == step_b == 40 and trees_equal(a, b)
    records = [r for r in read_jsonl(tmp_path / "straight" / "metrics.jsonl") if "train/loss" in r]
    assert records[-1]["train/loss"] < records[0]["train/loss"]
    assert {"train/d_loss", "train/d_real", "train/d_fake", "train/g_loss"} <= set(records[0])
    assert {p.name for p in (tmp_path / "straight" / "figures").iterdir()} >= VAE_FIGURES


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"loss": "lsgan"}, r"config.loss must be one of 'non_saturating', 'minimax', 'hinge', 'wgan_gp'; got 'lsgan'"),
        ({"d_steps": 0}, "config.d_steps must be a positive integer, got 0"),
        ({"model__d_hidden": ()}, r"config.model.d_hidden must be a tuple of at least 1 positive integers"),
        ({"model__reconstruction_loss": "l1"}, "config.model.reconstruction_loss must be one of 'mse', 'bernoulli'"),
        ({"d_optim__learning_rate": 0.0}, "config.d_optim.learning_rate must be a positive number"),
        ({"reg_optim__name": "lion"}, "config.reg_optim.name must be one of 'adam', 'adamw', 'sgd'; got 'lion'"),
    ],
)
def test_bad_config_is_refused_before_compute(overrides, message, tmp_path):
    with pytest.raises(config_lib.ConfigError, match=message):
        experiments_main.run(tiny_aae_config(**overrides), str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_the_fashion_mnist_config_has_the_vae_rows_widths_and_budget():
    config = aae_fashion_mnist.get_config()
    assert (config.model.hidden, config.model.latent_dim, config.binarization) == ((500,), 20, "static")
    assert (config.batch_size, config.num_steps, config.sample_quality.enabled) == (128, 4680, True)
