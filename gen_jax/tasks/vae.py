"""The Variational AutoEncoder family (Kingma & Welling 2014): what differs from the loop's defaults.

The model (`models/vae.py`) encodes x to q(z|x) = N(mean, diag exp(log_var)), draws z by reparameterisation from
an explicit key and decodes it to p(x|z) (Bernoulli logits, or a Gaussian mean).  Training maximises the
(β-weighted) ELBO, or with `objective = "iwae"` the k-sample importance-weighted bound (IWAE, Burda et al. 2016),
k = `num_importance_samples`; evaluation reports the ELBO's per-example terms over the test split, and IWAE
estimates.  Every evaluation, sample and figure uses the EMA of the parameters when `ema_decay` > 0.

Fields (see `default_config`): model.{architecture, hidden, conv_features, conv_hidden, latent_dim, likelihood,
learn_scale, gaussian_log_scale}, objective, num_importance_samples, beta, eval_iwae_k, iwae_k, ema_decay,
sample_quality.*, and the common ones.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gen_jax import config as config_lib
from gen_jax import data, hyper, latent_task, losses, metrics, optim, sample_quality, steps
from gen_jax.models import autoencoder
from gen_jax.models.vae import VAE
from gen_jax.train import Task

OBJECTIVES = ("elbo", "iwae")


def default_config() -> ml_collections.ConfigDict:
    """An MLP VAE 784-500-D with a Bernoulli likelihood, Adam 1e-3, and a parameter EMA for evaluation."""
    config = config_lib.base_config()
    config.family = "vae"
    config.model = ml_collections.ConfigDict(
        autoencoder.model_fields(
            hidden=(500,),
            likelihood="bernoulli",  # "bernoulli" | "gaussian"
            learn_scale=False,  # Gaussian only: learn one log standard deviation
            gaussian_log_scale=0.0,  # Gaussian only: the fixed log standard deviation
        )
    )
    config.objective = "elbo"  # the training objective: "elbo" | "iwae" (the k-sample bound, Burda et al. 2016)
    config.num_importance_samples = 1  # objective "iwae": k, the importance samples per example in training
    config.beta = 1.0  # weight of the KL term; 1 is the ELBO (objective "elbo" only)
    config.eval_iwae_k = 0  # IWAE samples in the periodic evaluations (0 = off)
    config.iwae_k = 1000  # IWAE samples in the final evaluation (summary.json; 0 = off)
    config.ema_decay = 0.99  # EMA of the parameters for evaluation, samples and figures; 0 = the last iterate
    config.sample_quality = config_lib.sample_quality_config(enabled=False)
    return config.lock()


def validate(config) -> None:
    autoencoder.validate_config(config)
    config_lib.require_choice(config, "model.likelihood", losses.LIKELIHOODS)
    config_lib.require_bool(config, "model.learn_scale")
    config_lib.require_choice(config, "binarization", data.BINARIZATIONS)
    config_lib.require_choice(config, "objective", OBJECTIVES)
    config_lib.require_positive_int(config, "num_importance_samples")
    config_lib.require_positive(config, "beta")
    if config.objective == "iwae" and config.beta != 1.0:
        raise config_lib.ConfigError(
            f"config.beta must be 1 with config.objective='iwae' (the IWAE bound has no KL weight), got {config.beta}"
        )
    config_lib.require_non_negative_int(config, "iwae_k", "eval_iwae_k", meaning=" (0 turns IWAE off)")
    config_lib.require_fraction(config, "ema_decay")
    optim.validate(config)
    sample_quality.validate_config(config)
    if config.model.likelihood == "bernoulli" and config.binarization == "none":
        print(
            "note: Bernoulli likelihood on grey values (binarization='none'): the continuous relaxation; "
            "its nats are not comparable with binarised results."
        )


def build_model(config, image_shape: tuple[int, int, int]) -> VAE:
    encoder, decoder = autoencoder.encoder_decoder(
        config.model, image_shape, 2 * config.model.latent_dim, config_lib.compute_dtype(config), config.conv_impl
    )
    return VAE(
        encoder=encoder,
        decoder=decoder,
        learn_scale=bool(config.model.learn_scale),
        fixed_log_scale=float(config.model.gaussian_log_scale),
    )


def per_example_terms(model: VAE, likelihood: str, params, x: jax.Array, key: jax.Array) -> dict[str, jax.Array]:
    """The ELBO's terms for each example, with one z ~ q(z|x) drawn from `key`; each f32[B], nats.

    Returns {"neg_elbo": −ELBO, "recon_nll": −log p(x|z), "kl": KL(q(z|x) ‖ N(0, I))}: what training averages over a
    batch and evaluation over the test split.
    """
    decoded, mean, log_var, log_scale = model.apply({"params": params}, x, key)
    log_likelihood = losses.reconstruction_log_likelihood(likelihood, decoded, log_scale, x)
    kl = losses.kl_to_standard_normal(mean, log_var)
    return {"neg_elbo": -(log_likelihood - kl), "recon_nll": -log_likelihood, "kl": kl}


def make_loss(model: VAE, likelihood: str, beta: float, binarization: str):
    """loss_fn(params, batch, key) -> (−ELBO_β batch mean, {neg_elbo, recon_nll, kl} batch means) for
    `steps.make_train_step`; `key` binarises the batch (when "dynamic") and draws z."""

    def loss_fn(params, batch, key):
        binarize_key, z_key = jax.random.split(key)
        x = batch["image"]
        if binarization == "dynamic":
            x = data.dynamic_binarize(binarize_key, x)
        terms = per_example_terms(model, likelihood, params, x, z_key)
        loss = -jnp.mean(losses.elbo(-terms["recon_nll"], terms["kl"], hyper.value("beta", beta)))
        return loss, {name: jnp.mean(value) for name, value in terms.items()}

    return loss_fn


def make_iwae_loss(model: VAE, likelihood: str, num_samples: int, binarization: str):
    """loss_fn(params, batch, key) -> (−IWAE_k batch mean, {neg_iwae_bound, neg_elbo} batch means) for
    `steps.make_train_step`: the k-sample bound of Burda et al. 2016, k = `num_samples`,

        L_k(x) = log (1/k) Σ_i p(x|z_i) p(z_i) / q(z_i|x),   z_i ~ q(z|x),

    nats per example, with z_i drawn from fold_in(z key, i) (`metrics.vae_log_weights`, the evaluation's own
    log-weights).  L_1 is the ELBO with its KL estimated by the one sample, log p(x|z) − (log q(z|x) − log p(z)),
    bit for bit; L_k ≥ L_1 in expectation and tightens towards log p(x) as k grows.  `neg_elbo` is minus the mean
    of the k log-weights (that single-sample ELBO, averaged over the k samples).  `key` binarises the batch (when
    "dynamic") and draws the z_i.
    """
    indices = jnp.arange(num_samples)

    def loss_fn(params, batch, key):
        binarize_key, z_key = jax.random.split(key)
        x = batch["image"]
        if binarization == "dynamic":
            x = data.dynamic_binarize(binarize_key, x)
        variables = {"params": params}
        posterior = model.apply(variables, x, method=model.encode)
        log_weights = metrics.vae_log_weights(model, likelihood, variables, x, posterior, z_key, indices)  # [k, B]
        bound = jax.nn.logsumexp(log_weights, axis=0) - math.log(num_samples)
        loss = -jnp.mean(bound)
        return loss, {"neg_iwae_bound": loss, "neg_elbo": -jnp.mean(log_weights)}

    return loss_fn


def make_task(config, dataset: data.Dataset) -> Task:
    validate(config)
    model = build_model(config, dataset.image_shape)
    likelihood = config.model.likelihood
    tx = optim.make(config.optim, config.num_steps, "optim")
    codec = latent_task.Codec(model, likelihood, config.model.latent_dim, posterior=True)
    test_split = latent_task.test_split_on_demand(config, dataset)
    terms = latent_task.compiled(per_example_terms, model, likelihood)
    iwae = {
        k: metrics.make_vae_iwae_nll(model, likelihood, k, metrics.sample_chunk_for(k))
        for k in {config.iwae_k, config.eval_iwae_k}
        if k
    }

    def init_state(key):
        params_key, z_key = jax.random.split(key)
        params = model.init(params_key, jnp.zeros((1, *dataset.image_shape), jnp.float32), z_key)["params"]
        return steps.create_train_state(model, params, tx, config.ema_decay)

    def scores(params, key, iwae_k):
        """Test-split means: neg_elbo, recon_nll, kl (one z per example) and, with iwae_k, iwae_nll; nats."""
        elbo_key, iwae_key = jax.random.split(key)
        images = test_split()["image"]
        results = metrics.split_means(functools.partial(terms, params), images, config.eval_batch_size, elbo_key)
        if iwae_k:  # smaller batches: each example carries iwae_k decoder passes
            per_example = metrics.map_batches(
                functools.partial(iwae[iwae_k], params), images, max(1, config.eval_batch_size // 5), iwae_key
            )
            results["iwae_nll"] = float(np.mean(per_example))
        return results

    def summarize(state, key):
        params = state.inference_params()
        results = scores(params, key, config.iwae_k)
        summary = {
            "test_neg_elbo": results["neg_elbo"],
            "test_mse": latent_task.reconstruction_mse(codec, params, test_split(), config.eval_batch_size, key),
            "likelihood": likelihood,
            "binarization": config.binarization,
            "units": "nats per example, summed over pixels; test_mse: squared error per pixel (pixels in [0, 1]) of "
            "the reconstruction from the posterior mean",
            "num_test_examples": len(test_split()["image"]),
        }
        if config.iwae_k:
            summary.update(test_iwae_nll=results["iwae_nll"], iwae_k=config.iwae_k)
        if config.objective == "iwae":
            summary.update(objective="iwae", num_importance_samples=config.num_importance_samples)
        return summary

    if config.objective == "iwae":
        loss_fn = make_iwae_loss(model, likelihood, config.num_importance_samples, config.binarization)
    else:
        loss_fn = make_loss(model, likelihood, config.beta, config.binarization)
    return latent_task.build_task(
        config,
        dataset,
        codec,
        init_state=init_state,
        train_step=steps.make_train_step(loss_fn),
        evaluate=lambda state, key: scores(state.inference_params(), key, config.eval_iwae_k),
        summarize=summarize,
        signature=config_lib.signature(config, dataset.image_shape, parameter_ema=config.ema_decay > 0),
        test_split=test_split,
        code_name="posterior means",
    )
