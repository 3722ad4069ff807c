"""The AutoEncoder family: an encoder (recognition network, x -> z) and a decoder (generative network, z -> x̂),
trained on x alone to reconstruct it through an undercomplete code of size model.latent_dim.

With model.hidden=() and the "mse" loss it is the linear AutoEncoder whose optimum spans PCA's subspace
(`experiments/ae_vs_pca.py` compares them).  Fields (see `default_config`): model.{architecture, hidden,
conv_features, conv_hidden, latent_dim, reconstruction_loss}, and the common ones; the optimizer decays its rate
with a cosine by default.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections

from gen_jax import config as config_lib
from gen_jax import data, latent_task, losses, metrics, optim, steps
from gen_jax.models import autoencoder
from gen_jax.models.autoencoder import AutoEncoder
from gen_jax.train import Task


def default_config() -> ml_collections.ConfigDict:
    """An MLP AutoEncoder 784-512-256-2 trained with MSE, Adam 1e-3 decayed to 0 by a cosine."""
    config = config_lib.base_config()
    config.family = "ae"
    config.model = ml_collections.ConfigDict(
        autoencoder.model_fields(
            reconstruction_loss="mse",  # "mse" (pixels as values) | "bernoulli" (pixels as probabilities)
        )
    )
    config.optim.schedule = "cosine"  # lets a fast rate settle (see experiments/configs/ae_vs_pca.py)
    return config.lock()


def validate(config) -> None:
    autoencoder.validate_config(config)
    config_lib.require_choice(config, "model.reconstruction_loss", losses.RECONSTRUCTION_LOSSES)
    config_lib.require_choice(config, "binarization", data.BINARIZATIONS)
    optim.validate(config)


def build_model(config, image_shape: tuple[int, int, int]) -> AutoEncoder:
    encoder, decoder = autoencoder.encoder_decoder(
        config.model, image_shape, config.model.latent_dim, config_lib.compute_dtype(config), config.conv_impl
    )
    return AutoEncoder(encoder=encoder, decoder=decoder)


def per_example_terms(model: AutoEncoder, loss: str, params, x: jax.Array, key=None) -> dict[str, jax.Array]:
    """{"loss": the configured loss (MSE per pixel, or Bernoulli nats summed over pixels), "mse": squared error per
    pixel of the reconstructed image}, each f32[B]; deterministic (`key` unused)."""
    decoded, _ = model.apply({"params": params}, x)
    return {
        "loss": losses.reconstruction_loss(loss, decoded, x),
        "mse": losses.squared_error(losses.reconstruction_mean(loss, decoded), x),
    }


def make_loss(model: AutoEncoder, loss: str, binarization: str):
    """loss_fn(params, batch, key) -> (batch-mean loss, {"mse"}) for `steps.make_train_step`; labels are not used,
    and `key` only binarises the batch when `binarization` is "dynamic"."""

    def loss_fn(params, batch, key):
        x = batch["image"]
        if binarization == "dynamic":
            x = data.dynamic_binarize(key, x)
        terms = per_example_terms(model, loss, params, x)
        return jnp.mean(terms["loss"]), {"mse": jnp.mean(terms["mse"])}

    return loss_fn


def decoder_basis(params) -> jax.Array:
    """The linear AutoEncoder's decoder columns, f32[P, k]: x̂ = W z + b with W the decoder's only kernel.

    Its span is the subspace the AutoEncoder reconstructs in, to be compared with PCA's top-k subspace.
    """
    layers = params["decoder"]
    if list(layers) != ["Dense_0"]:
        raise ValueError(f"decoder_basis needs a linear MLP decoder (hidden=()); this one has layers {sorted(layers)}")
    return layers["Dense_0"]["kernel"].T


def make_task(config, dataset: data.Dataset) -> Task:
    validate(config)
    model = build_model(config, dataset.image_shape)
    loss = config.model.reconstruction_loss
    tx = optim.make(config.optim, config.num_steps, "optim")
    test_split = latent_task.test_split_on_demand(config, dataset)
    terms = latent_task.compiled(per_example_terms, model, loss)

    def init_state(key):
        params = model.init(key, jnp.zeros((1, *dataset.image_shape), jnp.float32))["params"]
        return steps.create_train_state(model, params, tx)

    def evaluate(state, key):
        del key  # deterministic
        per_example = functools.partial(terms, state.params)
        return metrics.split_means(per_example, test_split()["image"], config.eval_batch_size, jax.random.key(0))

    def summarize(state, key):
        results = evaluate(state, key)
        return {
            "test_mse": results["mse"],
            "test_loss": results["loss"],
            "reconstruction_loss": loss,
            "latent_dim": config.model.latent_dim,
            "units": "test_mse: squared error per pixel (pixels in [0, 1]); test_loss: the training loss "
            "(mse per pixel, or bernoulli nats per example summed over pixels)",
            "num_test_examples": len(test_split()["image"]),
        }

    return latent_task.build_task(
        config,
        dataset,
        latent_task.Codec(model, loss, config.model.latent_dim, prior=latent_task.PRIORLESS),
        init_state=init_state,
        train_step=steps.make_train_step(make_loss(model, loss, config.binarization)),
        evaluate=evaluate,
        summarize=summarize,
        signature=config_lib.signature(config, dataset.image_shape),
        test_split=test_split,
    )
