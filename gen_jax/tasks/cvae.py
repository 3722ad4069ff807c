"""The conditional VAE family: a VAE of x given its class y, q(z | x, y) and p(x | z, y) (Sohn et al. 2015).

Training maximises the ELBO of log p(x | y); evaluation reports its per-example terms over the test split.  Samples
are drawn per class: the same z decoded under every label keeps the style and changes the class (latent editing
done by conditioning).  With sample quality on, the reference classifier also scores how often a sample drawn for
class y is classified as y (`conditional_accuracy`), and, for its scale, how often it labels the test images as the
model sees them (binarised or not) correctly (`conditional_accuracy_real`).  Every evaluation, sample and figure
uses the parameter EMA.

Fields (see `default_config`): model.{hidden, latent_dim, likelihood, prior}, beta, ema_decay, sample_quality.*, and the
common ones.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections

from gen_jax import config as config_lib
from gen_jax import data, hyper, latent_task, losses, metrics, optim, sample_quality, steps
from gen_jax.models.autoencoder import MLPDecoder, MLPEncoder
from gen_jax.models.cvae import CVAE, PRIORS
from gen_jax.train import Task


def default_config() -> ml_collections.ConfigDict:
    """An MLP cVAE 784+K-500-D with a Bernoulli likelihood, Adam 1e-3, and a parameter EMA for evaluation."""
    config = config_lib.base_config()
    config.family = "cvae"
    config.model = ml_collections.ConfigDict(
        dict(
            hidden=(500,),  # MLP widths, encoder order (the decoder mirrors them)
            latent_dim=2,
            likelihood="bernoulli",  # "bernoulli" | "gaussian" (unit variance)
            prior="standard",  # p(z | y): "standard" N(0, I) for every class | "class" a learned Gaussian per class
        )
    )
    config.beta = 1.0  # weight of the KL term; 1 is the ELBO
    config.ema_decay = 0.99  # EMA of the parameters for evaluation, samples and figures; 0 = the last iterate
    config.sample_quality = config_lib.sample_quality_config(enabled=False)
    return config.lock()


def validate(config, dataset: data.Dataset) -> None:
    config_lib.require_widths(config, "model.hidden")
    config_lib.require_positive_int(config, "model.latent_dim")
    config_lib.require_choice(config, "model.likelihood", losses.LIKELIHOODS)
    config_lib.require_choice(config, "model.prior", PRIORS)
    config_lib.require_choice(config, "binarization", data.BINARIZATIONS)
    config_lib.require_positive(config, "beta")
    config_lib.require_fraction(config, "ema_decay")
    optim.validate(config)
    sample_quality.validate_config(config)
    if dataset.num_classes < 2:
        raise config_lib.ConfigError(
            f"config.dataset: the cvae conditions on class labels; {dataset.name!r} has {dataset.num_classes} class"
        )


def build_model(config, dataset: data.Dataset) -> CVAE:
    hidden, dtype = tuple(config.model.hidden), config_lib.compute_dtype(config)
    return CVAE(
        encoder=MLPEncoder(hidden=hidden, outputs=2 * config.model.latent_dim, dtype=dtype),
        decoder=MLPDecoder(hidden=hidden[::-1], image_shape=dataset.image_shape, dtype=dtype),
        num_classes=dataset.num_classes,
        latent_dim=config.model.latent_dim,
        prior=config.model.prior,
    )


def per_example_terms(model: CVAE, likelihood: str, params, batch: dict, key: jax.Array) -> dict[str, jax.Array]:
    """The ELBO of log p(x | y) term by term, one z ~ q(z | x, y) from `key`; each f32[B], nats.

    Returns {"neg_elbo": −ELBO, "recon_nll": −log p(x | z, y), "kl": KL(q(z | x, y) ‖ p(z | y))}.
    """
    x, labels = batch["image"], batch["label"]
    decoded, mean, log_var = model.apply({"params": params}, x, labels, key)
    log_likelihood = losses.reconstruction_log_likelihood(likelihood, decoded, jnp.zeros(()), x)
    kl = model.apply({"params": params}, mean, log_var, labels, method=model.kl)
    return {"neg_elbo": -(log_likelihood - kl), "recon_nll": -log_likelihood, "kl": kl}


def make_loss(model: CVAE, likelihood: str, beta: float, binarization: str):
    """loss_fn(params, batch, key) -> (−ELBO_β batch mean, {neg_elbo, recon_nll, kl} batch means)."""

    def loss_fn(params, batch, key):
        binarize_key, z_key = jax.random.split(key)
        if binarization == "dynamic":
            batch = {**batch, "image": data.dynamic_binarize(binarize_key, batch["image"])}
        terms = per_example_terms(model, likelihood, params, batch, z_key)
        loss = -jnp.mean(losses.elbo(-terms["recon_nll"], terms["kl"], hyper.value("beta", beta)))
        return loss, {name: jnp.mean(value) for name, value in terms.items()}

    return loss_fn


def make_task(config, dataset: data.Dataset) -> Task:
    validate(config, dataset)
    model = build_model(config, dataset)
    likelihood = config.model.likelihood
    tx = optim.make(config.optim, config.num_steps, "optim")
    codec = latent_task.Codec(
        model, likelihood, config.model.latent_dim, posterior=True, num_classes=dataset.num_classes, prior="prior_codes"
    )
    test_split = latent_task.test_split_on_demand(config, dataset)
    terms = latent_task.compiled(per_example_terms, model, likelihood)

    def init_state(key):
        params_key, z_key = jax.random.split(key)
        x = jnp.zeros((1, *dataset.image_shape), jnp.float32)
        params = model.init(params_key, x, jnp.zeros((1,), jnp.int32), z_key)["params"]
        return steps.create_train_state(model, params, tx, config.ema_decay)

    def evaluate(state, key):
        per_example = functools.partial(terms, state.inference_params())
        return metrics.split_means(per_example, test_split(), config.eval_batch_size, key)

    def summarize(state, key):
        results = evaluate(state, key)
        params = state.inference_params()
        return {
            "test_neg_elbo": results["neg_elbo"],
            "test_mse": latent_task.reconstruction_mse(codec, params, test_split(), config.eval_batch_size, key),
            "likelihood": likelihood,
            "binarization": config.binarization,
            "units": "nats per example, summed over pixels: −ELBO of log p(x | y); test_mse: squared error per pixel "
            "(pixels in [0, 1]) of the reconstruction from the posterior mean given the label",
            "num_test_examples": len(test_split()["label"]),
        }

    return latent_task.build_task(
        config,
        dataset,
        codec,
        init_state=init_state,
        train_step=steps.make_train_step(make_loss(model, likelihood, config.beta, config.binarization)),
        evaluate=evaluate,
        summarize=summarize,
        signature=config_lib.signature(config, dataset.image_shape, parameter_ema=config.ema_decay > 0),
        test_split=test_split,
        code_name="posterior means given the label",
    )
