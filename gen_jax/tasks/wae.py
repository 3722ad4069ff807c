"""The Wasserstein AutoEncoder family, WAE-MMD (Tolstikhin et al. 2018): an AutoEncoder whose codes are pulled
towards the prior N(0, I) by a maximum mean discrepancy, so that z ~ N(0, I) through the decoder gives new images.

The loss of a batch is the reconstruction cost plus λ · MMD(codes, prior samples), the MMD estimated without bias
with the inverse multiquadratics kernel k(x, y) = C / (C + ‖x − y‖²), summed over the paper's scales C = s · 2D
(D the code size, s in `KERNEL_SCALES`).  The encoder is deterministic, as the paper's WAE-MMD on MNIST.
Evaluations, samples and figures use the parameter EMA.

Fields (see `default_config`): model.{architecture, hidden, conv_features, conv_hidden, latent_dim,
reconstruction_loss}, mmd_weight (λ), ema_decay, sample_quality.*, and the common ones.

Adding a family, with this file as the template:
  1. `gen_jax/tasks/<family>.py` with `default_config()` (`config.family` = the module's name) and
     `make_task(config, dataset) -> train.Task`; found by name, no list to edit.  An encoder/decoder family
     describes its model as a `latent_task.Codec` and gets its codec, sampler, sample quality and figures from
     `latent_task.build_task`; `make_task` computes nothing (the helper makes the heavy parts on first use).
  2. Opt-ins: `config.sample_quality` (`config_lib.sample_quality_config`) scores the prior's samples;
     `hyper.value("<field>", value)` in the loss makes a scalar sweepable; `ema_decay` with
     `steps.create_train_state(..., ema_decay)` keeps a parameter EMA; what the state's structure depends on goes
     into the resume signature (`config_lib.signature(..., parameter_ema=...)`).
  3. `experiments/configs/<family>_<data>.py` (its docstring gives the command) and `tests/test_<family>.py`: a few
     steps on digits (`tests/conftest.py`'s tiny configs); the explorer and export tests find the family's codec.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections

from gen_jax import config as config_lib
from gen_jax import data, hyper, latent_task, losses, metrics, optim, sample_quality, steps
from gen_jax.models import autoencoder
from gen_jax.tasks import ae
from gen_jax.train import Task

KERNEL_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)  # s of C = s · 2D, as Tolstikhin et al.
_MMD_EVAL_CODES = 1000  # test codes in the evaluation's MMD estimate


def default_config() -> ml_collections.ConfigDict:
    """An MLP WAE 784-500-8, Bernoulli reconstruction, λ = 10, Adam 1e-3, and a parameter EMA for evaluation."""
    config = config_lib.base_config()
    config.family = "wae"
    config.model = ml_collections.ConfigDict(
        autoencoder.model_fields(hidden=(500,), latent_dim=8, reconstruction_loss="bernoulli")  # | "mse"
    )
    config.mmd_weight = 10.0  # λ, the weight of the MMD term (sweepable)
    config.ema_decay = 0.99  # EMA of the parameters for evaluation, samples and figures; 0 = the last iterate
    config.sample_quality = config_lib.sample_quality_config(enabled=False)
    return config.lock()


def validate(config) -> None:
    ae.validate(config)
    config_lib.require_positive(config, "mmd_weight")
    config_lib.require_fraction(config, "ema_decay")
    sample_quality.validate_config(config)


def mmd_imq(codes: jax.Array, prior: jax.Array) -> jax.Array:
    """The unbiased estimate of MMD² between codes f32[N, D] and prior samples f32[N, D] under the inverse
    multiquadratics kernel, summed over `KERNEL_SCALES`; f32[], squared kernel units (0 in expectation when the
    codes follow the prior)."""
    n, dim = codes.shape
    off_diagonal = 1.0 - jnp.eye(n)

    def kernel(x, y, c):
        return c / (c + jnp.sum((x[:, None, :] - y[None, :, :]) ** 2, axis=-1))

    total = jnp.zeros(())
    for scale in KERNEL_SCALES:
        c = scale * 2.0 * dim
        within = jnp.sum((kernel(codes, codes, c) + kernel(prior, prior, c)) * off_diagonal) / (n * (n - 1))
        total += within - 2.0 * jnp.mean(kernel(codes, prior, c))
    return total


@jax.jit
def prior_mmd(codes: jax.Array, key: jax.Array) -> jax.Array:
    """`mmd_imq` of codes f32[N, D] and as many samples of N(0, I) drawn from `key`."""
    return mmd_imq(codes, jax.random.normal(key, codes.shape))


def make_loss(model, reconstruction: str, mmd_weight: float, binarization: str):
    """loss_fn(params, batch, key) -> (batch-mean reconstruction loss + λ · MMD, {reconstruction, mmd, mse}) for
    `steps.make_train_step`; `key` binarises the batch (when "dynamic") and draws the prior samples."""

    def loss_fn(params, batch, key):
        binarize_key, prior_key = jax.random.split(key)
        x = batch["image"]
        if binarization == "dynamic":
            x = data.dynamic_binarize(binarize_key, x)
        decoded, codes = model.apply({"params": params}, x)
        rec = jnp.mean(losses.reconstruction_loss(reconstruction, decoded, x))
        mmd = mmd_imq(codes, jax.random.normal(prior_key, codes.shape, codes.dtype))
        mse = jnp.mean(losses.squared_error(losses.reconstruction_mean(reconstruction, decoded), x))
        return rec + hyper.value("mmd_weight", mmd_weight) * mmd, {"reconstruction": rec, "mmd": mmd, "mse": mse}

    return loss_fn


def make_task(config, dataset: data.Dataset) -> Task:
    validate(config)
    model = ae.build_model(config, dataset.image_shape)
    reconstruction, latent_dim = config.model.reconstruction_loss, config.model.latent_dim
    codec = latent_task.Codec(model, reconstruction, latent_dim)
    tx = optim.make(config.optim, config.num_steps, "optim")
    test_split = latent_task.test_split_on_demand(config, dataset)
    terms = latent_task.compiled(ae.per_example_terms, model, reconstruction)

    def init_state(key):
        params = model.init(key, jnp.zeros((1, *dataset.image_shape), jnp.float32))["params"]
        return steps.create_train_state(model, params, tx, config.ema_decay)

    def evaluate(state, key):
        """Test-split means of the reconstruction loss and mse, and the MMD of the first 1,000 test codes."""
        params, images = state.inference_params(), test_split()["image"]
        results = metrics.split_means(functools.partial(terms, params), images, config.eval_batch_size, key)
        codes = latent_task.encode(codec, params, images[:_MMD_EVAL_CODES], None)
        return {"reconstruction": results["loss"], "mse": results["mse"], "mmd": float(prior_mmd(codes, key))}

    def summarize(state, key):
        results = evaluate(state, key)
        return {
            "test_mse": results["mse"],
            "test_reconstruction_loss": results["reconstruction"],
            "test_mmd": results["mmd"],
            "reconstruction_loss": reconstruction,
            "binarization": config.binarization,
            "latent_dim": latent_dim,
            "units": "test_mse: squared error per pixel (pixels in [0, 1]); test_reconstruction_loss: mse per pixel, "
            "or bernoulli nats per example summed over pixels; test_mmd: MMD² of test codes and N(0, I), IMQ kernel",
            "num_test_examples": len(test_split()["image"]),
        }

    return latent_task.build_task(
        config,
        dataset,
        codec,
        init_state=init_state,
        train_step=steps.make_train_step(make_loss(model, reconstruction, config.mmd_weight, config.binarization)),
        evaluate=evaluate,
        summarize=summarize,
        signature=config_lib.signature(config, dataset.image_shape, parameter_ema=config.ema_decay > 0),
        test_split=test_split,
    )
