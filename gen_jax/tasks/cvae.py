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
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gen_jax import config as config_lib
from gen_jax import data, figures, hyper, latent, losses, metrics, optim, sample_quality, steps
from gen_jax.models.autoencoder import MLPDecoder, MLPEncoder
from gen_jax.models.cvae import CVAE, PRIORS
from gen_jax.train import Task

_SAMPLES_PER_CLASS = 10


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
    likelihood, latent_dim, num_classes = config.model.likelihood, config.model.latent_dim, dataset.num_classes
    tx = optim.make(config.optim, config.num_steps, "optim")
    test_split = {
        "image": data.test_images(config, dataset),
        "label": dataset.test_labels,
    }
    terms = jax.jit(functools.partial(per_example_terms, model, likelihood))
    quality = sample_quality.evaluator_from_config(config, dataset)

    def as_images(decoded):
        return jnp.clip(jax.nn.sigmoid(decoded) if likelihood == "bernoulli" else decoded, 0.0, 1.0)

    def init_state(key):
        params_key, z_key = jax.random.split(key)
        x = jnp.zeros((1, *dataset.image_shape), jnp.float32)
        params = model.init(params_key, x, jnp.zeros((1,), jnp.int32), z_key)["params"]
        return steps.create_train_state(model, params, tx, config.ema_decay)

    def codec(state):
        """(encode: the posterior mean given the label, decode: the decoder's mean given the label) as
        `train.Task.codec` specifies; both need `labels` i32[B]."""
        variables = {"params": state.inference_params()}
        encode = jax.jit(lambda x, y: model.apply(variables, x, y, method=model.encode)[0])
        decode = jax.jit(lambda z, y: as_images(model.apply(variables, z, y, method=model.decode)))

        def needs_labels(function, name):
            def call(inputs, labels=None):
                if labels is None:
                    raise ValueError(f"the cvae's {name} is conditional: pass labels i32[B], one class per row")
                return function(inputs, labels)

            return call

        return needs_labels(encode, "encode"), needs_labels(decode, "decode")

    def decoder(state):
        return codec(state)[1]

    def prior_codes(state, noise, labels):
        return model.apply({"params": state.inference_params()}, noise, labels, method=model.prior_codes)

    def sample(state, key, labels):
        """Images f32[N, H, W, C] in [0, 1] of the given classes i32[N], z ~ p(z | y) from `key`."""
        labels = jnp.asarray(labels)
        noise = jax.random.normal(key, (len(labels), latent_dim))
        return decoder(state)(prior_codes(state, noise, labels), labels)

    def evaluate(state, key):
        return metrics.split_means(
            functools.partial(terms, state.inference_params()), test_split, config.eval_batch_size, key
        )

    @jax.jit
    def reconstruction_errors(params, batch, key):
        """{"mse": f32[B]}: squared error per pixel of the decoder's mean at the posterior mean, given the label."""
        del key
        x, y = batch["image"], batch["label"]
        mean, _ = model.apply({"params": params}, x, y, method=model.encode)
        return {
            "mse": losses.squared_error(as_images(model.apply({"params": params}, mean, y, method=model.decode)), x)
        }

    def summarize(state, key):
        results = evaluate(state, key)
        errors = functools.partial(reconstruction_errors, state.inference_params())
        summary = {
            "test_neg_elbo": results["neg_elbo"],
            "test_mse": metrics.split_means(errors, test_split, config.eval_batch_size, key)["mse"],
            "likelihood": likelihood,
            "binarization": config.binarization,
            "units": "nats per example, summed over pixels: −ELBO of log p(x | y); test_mse: squared error per pixel "
            "(pixels in [0, 1]) of the reconstruction from the posterior mean given the label",
            "num_test_examples": len(test_split["label"]),
        }
        if quality is not None:
            label_key, score_key = jax.random.split(jax.random.fold_in(key, 1))

            def sampler(k, count):  # classes uniform, as the data's are
                z_key, y_key = jax.random.split(k)
                return sample(state, z_key, jax.random.randint(y_key, (count,), 0, num_classes))

            summary.update(quality.summary(sampler, score_key))
            labels = np.arange(quality.num_samples) % num_classes
            drawn = sample(state, label_key, labels)
            logits, _ = quality.embed(drawn)
            summary["conditional_accuracy"] = float(np.mean(np.argmax(logits, axis=1) == labels))
            # What real data scores: the same classifier on the test images as this model sees them (binarised
            # like its training data), the reading of conditional_accuracy's scale.
            real_logits, _ = quality.embed(test_split["image"])
            summary["conditional_accuracy_real"] = float(np.mean(np.argmax(real_logits, axis=1) == test_split["label"]))
        return summary

    def make_figures(state, key, workdir):
        figure_dir = os.path.join(workdir, "figures")
        made = []
        encode = codec(state)[0]
        inputs, labels = test_split["image"][:20], test_split["label"][:20]
        path = figures.save_reconstructions(
            os.path.join(figure_dir, "reconstructions.png"),
            inputs,
            decoder(state)(encode(inputs, labels), labels),
            title="Test inputs and reconstructions",
        )
        made.append((path, "Test images (rows 1, 3) and their reconstructions from the posterior mean given the label"))
        noise = jnp.tile(jax.random.normal(key, (_SAMPLES_PER_CLASS, latent_dim)), (num_classes, 1))
        labels = jnp.repeat(jnp.arange(num_classes), _SAMPLES_PER_CLASS)
        grid = decoder(state)(prior_codes(state, noise, labels), labels)
        path = figures.save_image_grid(
            os.path.join(figure_dir, "samples_by_class.png"),
            grid,
            ncols=_SAMPLES_PER_CLASS,
            row_labels=list(dataset.class_names),
            title="Same noise (columns), every class (rows)",
        )
        made.append(
            (
                path,
                "Each column one ε ~ N(0, I), z = μ_y + σ_y ε (z = ε with the standard prior) decoded under every "
                "label y: the style kept, the class changed",
            )
        )
        count = min(len(test_split["label"]), 2000)
        codes = np.concatenate(
            [
                np.asarray(encode(test_split["image"][i : i + 500], test_split["label"][i : i + 500]))
                for i in range(0, count, 500)
            ]
        )
        points, how = latent.plane_points(codes)
        path = figures.save_latent_scatter(
            os.path.join(figure_dir, "latent_scatter.png"),
            points,
            test_split["label"][:count],
            class_names=dataset.class_names,
            title=f"Test set: {how.replace('codes', 'posterior means', 1)} given the label",
        )
        made.append((path, f"Posterior means of {count} test images given their labels, coloured by class"))
        return [(os.path.relpath(p, workdir), caption) for p, caption in made]

    return Task(
        name="cvae",
        signature=config_lib.signature(config, dataset.image_shape, parameter_ema=config.ema_decay > 0),
        init_state=init_state,
        train_step=steps.make_train_step(make_loss(model, likelihood, config.beta, config.binarization)),
        evaluate=evaluate,
        summarize=summarize,
        make_figures=make_figures,
        codec=codec,
    )
