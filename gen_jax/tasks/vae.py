"""The VAE as a `train.Task`: model from the config, its step, its evaluation, its figures.

Config fields read here (beyond the common ones): architecture ("mlp" | "conv"), hidden (MLP widths),
conv_features, conv_hidden, likelihood ("bernoulli" | "gaussian"), learn_scale, gaussian_log_scale, beta,
binarization ("none" | "static" | "dynamic"), eval_batch_size, eval_iwae_k (periodic), iwae_k (final), ema_decay
(an EMA of the parameters, used for every evaluation, sample and figure; 0 = the last iterate), and
sample_quality / num_samples / classifier_dir (samples scored as GAN samples are, see `sample_quality.py`).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gen_jax import config as config_lib
from gen_jax import data, figures, losses, metrics, pca, sample_quality, steps
from gen_jax.models.autoencoder import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder
from gen_jax.models.vae import VAE
from gen_jax.train import Task

ARCHITECTURES = ("mlp", "conv")


def validate(config) -> None:
    config_lib.require_fields(config, ("architecture", "likelihood", "beta", "binarization", "iwae_k",
                                       "eval_iwae_k", "eval_batch_size", "ema_decay"))
    config_lib.require_fraction(config, "ema_decay")
    config_lib.require_choice(config, "architecture", ARCHITECTURES)
    config_lib.require_choice(config, "likelihood", losses.LIKELIHOODS)
    config_lib.require_choice(config, "binarization", data.BINARIZATIONS)
    config_lib.require_positive(config, "beta")
    config_lib.require_positive_int(config, "eval_batch_size")
    for name in ("iwae_k", "eval_iwae_k"):
        if isinstance(config[name], bool) or not isinstance(config[name], int) or config[name] < 0:
            raise config_lib.ConfigError(f"config.{name} must be an integer >= 0 (0 turns IWAE off), "
                                         f"got {config[name]!r}")
    if config.likelihood == "bernoulli" and config.binarization == "none":
        print("note: Bernoulli likelihood on grey values (binarization='none'): the continuous relaxation; "
              "its nats are not comparable with binarised results.")


def encoder_decoder(config, image_shape: tuple[int, int, int], code_size: int):
    """The encoder (x -> f32[B, code_size]) and decoder (z -> f32[B, H, W, C]) the config names."""
    dtype = config_lib.compute_dtype(config)
    if config.architecture == "mlp":
        hidden = tuple(config.hidden)
        return (MLPEncoder(hidden=hidden, outputs=code_size, dtype=dtype),
                MLPDecoder(hidden=hidden[::-1], image_shape=image_shape, dtype=dtype))
    features = tuple(config.conv_features)
    return (ConvEncoder(features=features, hidden=config.conv_hidden, outputs=code_size, dtype=dtype),
            ConvDecoder(image_shape=image_shape, features=features[::-1], hidden=config.conv_hidden, dtype=dtype))


def build_model(config, image_shape: tuple[int, int, int]) -> VAE:
    encoder, decoder = encoder_decoder(config, image_shape, 2 * config.latent_dim)
    return VAE(encoder=encoder, decoder=decoder, learn_scale=bool(config.learn_scale),
               fixed_log_scale=float(config.gaussian_log_scale))


def prepare_test_images(config, images: np.ndarray, key: jax.Array) -> np.ndarray:
    """The test split as the model is scored on it: statically binarised, or binarised once with a fixed key
    when training binarises dynamically (the usual protocol for dynamically binarised MNIST)."""
    if config.binarization == "dynamic":
        return np.asarray(data.dynamic_binarize(key, jnp.asarray(images)))
    return data.preprocess(images, config.binarization)


def signature(config, image_shape) -> dict:
    """The fields a checkpoint must agree with to be resumed by this config."""
    arch = ("hidden",) if config.architecture == "mlp" else ("conv_features", "conv_hidden")
    # Whether the state holds an EMA of the parameters is part of its structure; the decay itself is not.
    return {**config_lib.signature(config, ("architecture", "latent_dim", "likelihood", "learn_scale") + arch,
                                   image_shape), "parameter_ema": config.ema_decay > 0}


def as_images(config, decoded: jax.Array) -> np.ndarray:
    """Decoder output -> displayable f32[B, H, W, C] in [0, 1]: Bernoulli means or clipped Gaussian means."""
    if config.likelihood == "bernoulli":
        decoded = jax.nn.sigmoid(decoded)
    return np.clip(np.asarray(decoded), 0.0, 1.0)


def codec(config, model: VAE, params):
    """Jitted encode (x: f32[B, H, W, C] -> posterior mean f32[B, D]) and decode (z -> pixel means f32[B, H, W, C]
    in [0, 1]): the VAE seen as an AutoEncoder, for latent edits and embeddings (`tasks/trained.py`)."""
    variables = {"params": params}
    encode = jax.jit(lambda x: model.apply(variables, x, method=model.encode)[0])
    decoded = jax.jit(lambda z: model.apply(variables, z, method=model.decode))
    return encode, lambda z: as_images(config, decoded(z))


def make_task(config, dataset: data.Dataset) -> Task:
    validate(config)
    model = build_model(config, dataset.image_shape)
    tx = optax.adam(config.learning_rate)
    test_images = prepare_test_images(config, dataset.test_images,
                                      jax.random.fold_in(jax.random.key(config.seed), 10_000))
    periodic_eval = metrics.make_vae_evaluator(model, config.likelihood, config.eval_batch_size,
                                               config.eval_iwae_k)
    final_eval = metrics.make_vae_evaluator(model, config.likelihood, config.eval_batch_size, config.iwae_k)
    quality = sample_quality.evaluator_from_config(config, dataset)  # None unless config.sample_quality

    def init_state(key):
        params_key, z_key = jax.random.split(key)
        dummy = jnp.zeros((1, *dataset.image_shape), jnp.float32)
        params = model.init(params_key, dummy, z_key)["params"]
        return steps.create_train_state(model, params, tx, config.ema_decay)

    def evaluate(state, key):
        return periodic_eval(state.inference_params(), test_images, key)

    def summarize(state, key):
        results = final_eval(state.inference_params(), test_images, key)
        summary = {"test_neg_elbo": results["neg_elbo"], "likelihood": config.likelihood,
                   "binarization": config.binarization, "units": "nats per example, summed over pixels",
                   "num_test_examples": len(test_images)}
        if config.iwae_k:
            summary.update(test_iwae_nll=results["iwae_nll"], iwae_k=config.iwae_k)
        if quality is not None:  # pixel means of z ~ N(0, I) decoded, as in figures/samples.png
            _, decode = codec(config, model, state.inference_params())
            summary.update(quality.summary(lambda k, n: decode(jax.random.normal(k, (n, config.latent_dim))),
                                           jax.random.fold_in(key, 1)))
        return summary

    def make_figures(state, key, workdir):
        return vae_figures(config, model, state.inference_params(), dataset, test_images, key, workdir)

    return Task(name="vae", signature=signature(config, dataset.image_shape), init_state=init_state,
                train_step=steps.make_vae_train_step(model, config.likelihood, config.beta, config.binarization),
                evaluate=evaluate, summarize=summarize, make_figures=make_figures)


def interpolation_pairs(labels: np.ndarray, num_pairs: int) -> list[tuple[int, int]]:
    """Pairs of test indices with different classes (i -> j), taken in order so the figure is reproducible."""
    pairs, used = [], set()
    for i in range(len(labels)):
        for j in range(i + 1, len(labels)):
            if labels[i] != labels[j] and i not in used and j not in used:
                pairs.append((i, j))
                used.update((i, j))
                break
        if len(pairs) == num_pairs:
            break
    return pairs


def vae_figures(config, model, params, dataset, test_images, key, workdir) -> list[tuple[str, str]]:
    """Reconstructions, samples from N(0, I), the latent scatter, the manifold grid (2-D latents) and
    interpolation strips, written under <workdir>/figures."""
    figure_dir = os.path.join(workdir, "figures")
    variables = {"params": params}
    decode = jax.jit(lambda z: model.apply(variables, z, method=model.decode))
    encode = jax.jit(lambda x: model.apply(variables, x, method=model.encode))
    sample_key, _ = jax.random.split(key)
    made = []

    def add(path, caption):
        made.append((os.path.relpath(path, workdir), caption))

    inputs = test_images[:20]
    means, _ = encode(inputs)
    add(figures.save_reconstructions(os.path.join(figure_dir, "reconstructions.png"), inputs,
                                     as_images(config, decode(means)), title="Test inputs and reconstructions"),
        "Test images (rows 1, 3) and their reconstructions from the posterior mean (rows 2, 4)")

    z = jax.random.normal(sample_key, (100, config.latent_dim))
    add(figures.save_image_grid(os.path.join(figure_dir, "samples.png"), as_images(config, decode(z)),
                                ncols=10, title="Samples: z ~ N(0, I), decoded (means)"),
        "100 samples: z ~ N(0, I) through the decoder (pixel means shown)")

    count = min(len(test_images), 2000)
    all_means = np.concatenate([np.asarray(encode(test_images[i:i + 500])[0]) for i in range(0, count, 500)])
    labels = dataset.test_labels[:count]
    if config.latent_dim == 2:
        points, how = all_means, "posterior means"
    else:
        projection = pca.fit(jnp.asarray(all_means), 2)
        points, how = np.asarray(pca.encode(projection, jnp.asarray(all_means))), \
            "posterior means projected on their first two principal components"
    add(figures.save_latent_scatter(os.path.join(figure_dir, "latent_scatter.png"), points, labels,
                                    class_names=dataset.class_names, title=f"Test set: {how}"),
        f"Latent space of {count} test images ({how}), coloured by class")

    if config.latent_dim == 2:
        grid = 20
        decoded = decode(jnp.asarray(figures.manifold_latents(grid)))
        add(figures.save_manifold_grid(os.path.join(figure_dir, "manifold.png"), as_images(config, decoded), grid,
                                       title="Decoded 2-D latent manifold"),
            "The decoder over a 20×20 grid of the latent plane (N(0, 1) quantiles 5%–95%)")

    pairs = interpolation_pairs(dataset.test_labels, 6)
    weights = jnp.linspace(0.0, 1.0, 10)[:, None]
    starts, _ = encode(test_images[np.array([i for i, _ in pairs])])
    ends, _ = encode(test_images[np.array([j for _, j in pairs])])
    paths = starts[:, None, :] * (1 - weights) + ends[:, None, :] * weights  # [P, S, D]
    strips = as_images(config, decode(paths.reshape(-1, config.latent_dim)))
    add(figures.save_interpolations(os.path.join(figure_dir, "interpolations.png"),
                                    strips.reshape(len(pairs), 10, *dataset.image_shape),
                                    title="Interpolating between test images in latent space"),
        "Straight paths between the posterior means of pairs of test images of different classes")
    return made
