"""The Adversarial AutoEncoder family (Makhzani et al. 2015): an AutoEncoder whose codes a discriminator pushes
towards the prior N(0, I), so that z ~ N(0, I) through the decoder gives new images.

The AutoEncoder and the GAN in one model: the encoder (x -> code, `models/autoencoder.py`) is the generator of
codes; the discriminator (`models/gan.MLPDiscriminator`, here on codes f32[B, latent_dim], never on images) tells
prior samples ("real") from codes ("fake").  One step is the paper's two phases on one batch (`make_train_step`):
reconstruction (encoder and decoder, `optim`), then regularisation (D, `d_optim`, with the GAN's own
discriminator update and any of `losses.GAN_LOSSES`; then the encoder alone against D, `reg_optim`).  Separate
optimizers per phase, as in the paper: Adam then scales each phase's step by its own gradient, so the adversarial
term is not drowned by a reconstruction loss summed over pixels.

Evaluations, samples and figures use the EMA of the AutoEncoder's parameters (`ema_decay`).  Evaluation reports
the test reconstruction error, D's view of test codes and of prior samples, and `code_prior_frechet`, the Fréchet
distance between the Gaussian fitted to the test codes and N(0, I) (0 when their means and covariances agree).

Fields (see `default_config`): model.{architecture, hidden, conv_features, conv_hidden, latent_dim,
reconstruction_loss, d_hidden}, loss, d_steps, gp_weight, ema_decay, optim (reconstruction phase), reg_optim
(the encoder's regularisation phase), d_optim (D), sample_quality.*, and the common ones.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import struct

from gen_jax import config as config_lib
from gen_jax import data, latent_task, losses, metrics, optim, sample_quality, steps
from gen_jax.models import autoencoder
from gen_jax.models.autoencoder import AutoEncoder
from gen_jax.models.gan import MLPDiscriminator
from gen_jax.train import Task


def default_config() -> ml_collections.ConfigDict:
    """An MLP AAE 784-500-D, Bernoulli reconstruction, a 256-256 code discriminator, Adam 1e-3 in every phase."""
    config = config_lib.base_config()
    config.family = "aae"
    config.model = ml_collections.ConfigDict(
        autoencoder.model_fields(
            hidden=(500,),
            reconstruction_loss="bernoulli",  # "bernoulli" (nats, pixels as probabilities) | "mse"
            d_hidden=(256, 256),  # the code discriminator's widths
        )
    )
    config.loss = "non_saturating"  # the GAN loss on codes: "non_saturating" | "minimax" | "hinge" | "wgan_gp"
    config.d_steps = 1  # D updates per AutoEncoder update
    config.gp_weight = 10.0  # λ of WGAN-GP's gradient penalty (loss="wgan_gp" only)
    config.ema_decay = 0.99  # EMA of the AutoEncoder's parameters for evaluation, samples and figures; 0 = last
    config.reg_optim = config_lib.optimizer_config()  # the encoder's, in the regularisation phase
    config.d_optim = config_lib.optimizer_config()  # D's
    config.sample_quality = config_lib.sample_quality_config(enabled=False)
    return config.lock()


def validate(config) -> None:
    """Checks every AAE field, naming it, before any compute."""
    autoencoder.validate_config(config)
    config_lib.require_choice(config, "model.reconstruction_loss", losses.RECONSTRUCTION_LOSSES)
    config_lib.require_widths(config, "model.d_hidden", min_length=1)
    config_lib.require_choice(config, "binarization", data.BINARIZATIONS)
    config_lib.require_choice(config, "loss", losses.GAN_LOSSES)
    config_lib.require_positive_int(config, "d_steps")
    config_lib.require_fraction(config, "ema_decay")
    if config.loss == "wgan_gp":
        config_lib.require_positive(config, "gp_weight")
    optim.validate(config, "optim")
    optim.validate(config, "reg_optim")
    optim.validate(config, "d_optim")
    sample_quality.validate_config(config)


def build_models(config, image_shape: tuple[int, int, int]) -> tuple[AutoEncoder, MLPDiscriminator]:
    """(the AutoEncoder x f32[B, H, W, C] -> (decoded, code f32[B, D]), the discriminator code f32[B, D] -> logit
    f32[B])."""
    dtype = config_lib.compute_dtype(config)
    encoder, decoder = autoencoder.encoder_decoder(
        config.model, image_shape, config.model.latent_dim, dtype, config.conv_impl
    )
    return AutoEncoder(encoder=encoder, decoder=decoder), MLPDiscriminator(
        hidden=tuple(config.model.d_hidden), dtype=dtype
    )


@struct.dataclass
class AAEState:
    """Everything an AAE run resumes from, as one pytree of arrays (the optimizers themselves are not saved).

    Attributes:
      step: i32[], the number of completed steps.
      params: the AutoEncoder's ({"encoder", "decoder"}).
      opt_state: the reconstruction phase's optimizer state (encoder and decoder).
      reg_opt_state: the regularisation phase's optimizer state (the encoder only).
      d_params, d_opt_state: the code discriminator's parameters and optimizer state.
      d_batch_stats: its spectral-norm vectors ({} without; the GAN step's discriminator update keeps them).
      ema_params: the exponential moving average of `params`, used by evaluations, samples and figures.
    """

    step: jax.Array
    params: Any
    opt_state: Any
    reg_opt_state: Any
    d_params: Any
    d_opt_state: Any
    d_batch_stats: Any
    ema_params: Any

    def inference_params(self):
        return self.ema_params


def create_state(ae_variables: dict, d_variables: dict, tx, reg_tx, d_tx) -> AAEState:
    """The state at step 0 from the networks' `init` variables; the EMA starts at the AutoEncoder itself."""
    params, d_params = ae_variables["params"], d_variables["params"]
    return AAEState(
        step=jnp.asarray(0, jnp.int32),
        params=params,
        opt_state=tx.init(params),
        reg_opt_state=reg_tx.init(params["encoder"]),
        d_params=d_params,
        d_opt_state=d_tx.init(d_params),
        d_batch_stats=d_variables.get("batch_stats", {}),
        # A copy, not an alias: the loop donates the state's buffers, and one buffer must not appear twice.
        ema_params=jax.tree.map(jnp.copy, params),
    )


def make_reconstruction_loss(model: AutoEncoder, reconstruction: str):
    """loss_fn(params, x) -> (batch-mean reconstruction loss, {"mse"}): the reconstruction phase's objective, the
    AutoEncoder's (`losses.reconstruction_loss`: MSE per pixel, or Bernoulli nats summed over pixels); mse is the
    squared error per pixel of the reconstructed image."""

    def loss_fn(params, x):
        decoded, _ = model.apply({"params": params}, x)
        mse = losses.squared_error(losses.reconstruction_mean(reconstruction, decoded), x)
        return jnp.mean(losses.reconstruction_loss(reconstruction, decoded, x)), {"mse": jnp.mean(mse)}

    return loss_fn


def make_encoder_adversarial_loss(model: AutoEncoder, discriminator, gan_loss: str):
    """loss_fn(encoder_params, x, d_variables, key) -> batch mean of the GAN generator loss of D(E(x)): the
    regularisation phase's objective for the encoder, the generator of codes (`losses.generator_loss`, nats for the
    logistic losses); a function of the encoder's parameters only; `key` drives D's dropout."""

    def loss_fn(encoder_params, x, d_variables, key):
        codes = model.encoder.apply({"params": encoder_params}, x)
        logits = discriminator.apply(d_variables, codes, None, train=True, rngs={"dropout": key})
        return jnp.mean(losses.generator_loss(gan_loss, logits))

    return loss_fn


def make_train_step(
    model: AutoEncoder,
    discriminator,
    tx: optax.GradientTransformation,
    reg_tx: optax.GradientTransformation,
    d_tx: optax.GradientTransformation,
    *,
    reconstruction: str,
    gan_loss: str,
    d_steps: int = 1,
    gp_weight: float = 10.0,
    ema_decay: float = 0.99,
    binarization: str = "none",
):
    """The AAE step (state: `AAEState`) -> (state, metrics): the two phases of Makhzani et al. on one batch.

    1. Reconstruction: one `tx` step of encoder and decoder on `make_reconstruction_loss`.
    2. Regularisation: `d_steps` updates of D on [z ~ N(0, I); E(x)] (prior samples "real", codes of the updated
       encoder "fake") by the GAN's own discriminator update (`steps.make_gan_updates`; the codes are data to it,
       no gradient reaches the AutoEncoder); then one `reg_tx` step of the encoder alone on
       `make_encoder_adversarial_loss` against the updated D.
    3. The EMA of the AutoEncoder's parameters.

    The step key is split into the binarisation key (binarization "dynamic"), the prior key (one z per example), one
    key per D update and the encoder's key.  Metrics: loss (the reconstruction loss), mse, grad_norm, g_loss,
    g_grad_norm, and D's (d_loss, d_real = mean D(z), d_fake = mean D(E(x)), gp under WGAN-GP, d_grad_norm) of its
    last update.
    """
    # The GAN step's discriminator update is reused as it is; its generator side is replaced by the encoder's below.
    d_update = steps.make_gan_updates(
        None, discriminator, reg_tx, d_tx, gan_loss, gp_weight=gp_weight
    ).discriminator_update
    reconstruction_loss = make_reconstruction_loss(model, reconstruction)
    adversarial_loss = make_encoder_adversarial_loss(model, discriminator, gan_loss)

    def train_step(state: AAEState, batch: dict, key: jax.Array):
        binarize_key, prior_key, d_key, g_key = jax.random.split(key, 4)
        x = batch["image"]
        if binarization == "dynamic":
            x = data.dynamic_binarize(binarize_key, x)
        (loss, aux), grads = jax.value_and_grad(reconstruction_loss, has_aux=True)(state.params, x)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        state = state.replace(params=params, opt_state=opt_state)

        codes = model.apply({"params": params}, x, method=model.encode)
        prior = jax.random.normal(prior_key, codes.shape, codes.dtype)
        for d_step_key in jax.random.split(d_key, d_steps):
            state, d_metrics = d_update(state, prior, codes, None, d_step_key)
        d_variables = {"params": state.d_params, "batch_stats": state.d_batch_stats}
        g_loss, g_grads = jax.value_and_grad(adversarial_loss)(params["encoder"], x, d_variables, g_key)
        g_updates, reg_opt_state = reg_tx.update(g_grads, state.reg_opt_state, params["encoder"])
        params = {**params, "encoder": optax.apply_updates(params["encoder"], g_updates)}

        step_size = 1.0 - steps.ema_decay_at(state.step, ema_decay)
        state = state.replace(
            step=state.step + 1,
            params=params,
            reg_opt_state=reg_opt_state,
            ema_params=optax.incremental_update(params, state.ema_params, step_size),
        )
        metrics = {"loss": loss, **aux, "grad_norm": optax.tree.norm(grads), "g_loss": g_loss}
        return state, {**metrics, "g_grad_norm": optax.tree.norm(g_grads), **d_metrics}

    return train_step


def code_prior_frechet(codes: np.ndarray) -> float:
    """Fréchet distance between the Gaussian fitted to codes f[N, D] and the prior N(0, I): how far the codes' first
    two moments are from the prior's (0 when they agree), in squared code units."""
    dim = codes.shape[1]
    return metrics.frechet_distance_from_statistics(*metrics.feature_statistics(codes), np.zeros(dim), np.eye(dim))


def evaluation_terms(model: AutoEncoder, discriminator, reconstruction: str, params, d_variables, x, prior) -> dict:
    """Per test example x f32[B, H, W, C]: reconstruction loss, mse, the code, D(code) and D(z) for the prior
    samples z f32[B, D]; each f32[B] (the code f32[B, D])."""
    decoded, codes = model.apply({"params": params}, x)
    return {
        "reconstruction": losses.reconstruction_loss(reconstruction, decoded, x),
        "mse": losses.squared_error(losses.reconstruction_mean(reconstruction, decoded), x),
        "code": codes,
        "d_codes": jax.nn.sigmoid(discriminator.apply(d_variables, codes)),
        "d_prior": jax.nn.sigmoid(discriminator.apply(d_variables, prior)),
    }


def make_task(config, dataset: data.Dataset) -> Task:
    validate(config)
    model, discriminator = build_models(config, dataset.image_shape)
    reconstruction, latent_dim = config.model.reconstruction_loss, config.model.latent_dim
    tx = optim.make(config.optim, config.num_steps, "optim")
    reg_tx = optim.make(config.reg_optim, config.num_steps, "reg_optim")
    d_tx = optim.make(config.d_optim, config.num_steps, "d_optim")
    test_split = latent_task.test_split_on_demand(config, dataset)

    terms = latent_task.compiled(evaluation_terms, model, discriminator, reconstruction)

    @jax.jit
    def init_state(key):
        ae_key, d_key = jax.random.split(key)
        x = jnp.zeros((1, *dataset.image_shape), jnp.float32)
        return create_state(
            model.init(ae_key, x), discriminator.init(d_key, jnp.zeros((1, latent_dim), jnp.float32)), tx, reg_tx, d_tx
        )

    def evaluate(state, key):
        """Test-split means of reconstruction, mse, d_codes, d_prior (D's probability of "prior" for the test codes
        and for as many prior samples), and code_prior_frechet; the EMA AutoEncoder, the current D."""
        d_variables = {"params": state.d_params, "batch_stats": state.d_batch_stats}

        def batch_terms(x, batch_key):
            return terms(state.inference_params(), d_variables, x, jax.random.normal(batch_key, (len(x), latent_dim)))

        values = metrics.map_batches(batch_terms, test_split()["image"], config.eval_batch_size, key)
        codes = values.pop("code")
        return {
            **{name: float(np.mean(v)) for name, v in values.items()},
            "code_prior_frechet": code_prior_frechet(codes),
        }

    def summarize(state, key):
        results = evaluate(state, key)
        return {
            "test_mse": results["mse"],
            "test_reconstruction_loss": results["reconstruction"],
            "code_prior_frechet": results["code_prior_frechet"],
            "d_codes_test": results["d_codes"],
            "d_prior": results["d_prior"],
            "reconstruction_loss": reconstruction,
            "binarization": config.binarization,
            "latent_dim": latent_dim,
            "units": "test_mse: squared error per pixel (pixels in [0, 1]); test_reconstruction_loss: the training "
            "reconstruction loss (mse per pixel, or bernoulli nats per example summed over pixels); "
            "code_prior_frechet: squared code units",
            "num_test_examples": len(test_split()["image"]),
        }

    train_step = make_train_step(
        model,
        discriminator,
        tx,
        reg_tx,
        d_tx,
        reconstruction=reconstruction,
        gan_loss=config.loss,
        d_steps=config.d_steps,
        gp_weight=float(config.gp_weight),
        ema_decay=float(config.ema_decay),
        binarization=config.binarization,
    )
    return latent_task.build_task(
        config,
        dataset,
        latent_task.Codec(model, reconstruction, latent_dim),
        init_state=init_state,
        train_step=train_step,
        evaluate=evaluate,
        summarize=summarize,
        signature=config_lib.signature(config, dataset.image_shape),
        test_split=test_split,
    )
