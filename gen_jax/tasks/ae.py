"""The AutoEncoder as a `train.Task`: an encoder (recognition network, x -> z) and a decoder (generative
network, z -> x̂), trained on x alone to reconstruct it through an undercomplete code of size latent_dim.

Config fields read here (beyond the common ones): architecture ("mlp" | "conv"), hidden (MLP widths; () gives
the linear AutoEncoder that PCA solves), conv_features, conv_hidden, reconstruction_loss ("mse" | "bernoulli"),
lr_schedule ("constant" | "cosine"), binarization, eval_batch_size.  The encoders and decoders are the VAE's
(`tasks/vae.encoder_decoder`); `experiments/ae_vs_pca.py` compares this family with PCA.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gen_jax import config as config_lib
from gen_jax import data, figures, losses, metrics, pca, steps
from gen_jax.models.autoencoder import AutoEncoder
from gen_jax.tasks import vae
from gen_jax.train import Task

LR_SCHEDULES = ("constant", "cosine")


def validate(config) -> None:
    config_lib.require_fields(config, ("architecture", "hidden", "conv_features", "conv_hidden",
                                       "reconstruction_loss", "lr_schedule", "binarization", "eval_batch_size"))
    config_lib.require_choice(config, "architecture", vae.ARCHITECTURES)
    config_lib.require_choice(config, "reconstruction_loss", losses.RECONSTRUCTION_LOSSES)
    config_lib.require_choice(config, "lr_schedule", LR_SCHEDULES)
    config_lib.require_choice(config, "binarization", data.BINARIZATIONS)
    config_lib.require_positive_int(config, "eval_batch_size", "conv_hidden")
    for name in ("hidden", "conv_features"):
        widths = config[name]
        if not isinstance(widths, (tuple, list)) or not all(
                isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in widths):
            raise config_lib.ConfigError(f"config.{name} must be a tuple of positive integers "
                                         f"(() for none), got {widths!r}")
    if config.architecture == "conv" and not config.conv_features:
        raise config_lib.ConfigError("config.conv_features must name at least one convolution width when "
                                     "config.architecture is 'conv', got ()")


def build_model(config, image_shape: tuple[int, int, int]) -> AutoEncoder:
    encoder, decoder = vae.encoder_decoder(config, image_shape, config.latent_dim)
    return AutoEncoder(encoder=encoder, decoder=decoder)


def signature(config, image_shape) -> dict:
    """The fields a checkpoint must agree with to be resumed by this config."""
    arch = ("hidden",) if config.architecture == "mlp" else ("conv_features", "conv_hidden")
    return config_lib.signature(config, ("dataset", "architecture", "latent_dim", "reconstruction_loss") + arch,
                                image_shape)


def make_optimizer(config) -> optax.GradientTransformation:
    """Adam at config.learning_rate, constant or cosine-decayed to 0 at config.num_steps.

    The decay lets a fast rate settle: the linear AutoEncoder on Fashion-MNIST (k = 8, 32; 8000 steps of 128)
    ends 4–9% above PCA's error at a constant 1e-2, 0.4–0.7% above at a constant 1e-3, 0.01–0.2% above with
    1e-2 decayed.
    """
    if config.lr_schedule == "cosine":
        return optax.adam(optax.cosine_decay_schedule(config.learning_rate, config.num_steps))
    return optax.adam(config.learning_rate)


def as_images(config, decoded: jax.Array) -> np.ndarray:
    """Decoder output -> displayable f32[B, H, W, C] in [0, 1]."""
    return np.clip(np.asarray(losses.reconstruction_mean(config.reconstruction_loss, decoded)), 0.0, 1.0)


def decoder_basis(params) -> jax.Array:
    """The linear AutoEncoder's decoder columns, f32[P, k]: x̂ = W z + b with W the decoder's only kernel.

    Its span is the subspace the AutoEncoder reconstructs in, to be compared with PCA's top-k subspace.
    """
    layers = params["decoder"]
    if list(layers) != ["Dense_0"]:
        raise ValueError(f"decoder_basis needs a linear MLP decoder (hidden=()); this one has layers "
                         f"{sorted(layers)}")
    return layers["Dense_0"]["kernel"].T


def make_task(config, dataset: data.Dataset) -> Task:
    validate(config)
    model = build_model(config, dataset.image_shape)
    tx = make_optimizer(config)
    test_images = vae.prepare_test_images(config, dataset.test_images,
                                          jax.random.fold_in(jax.random.key(config.seed), 10_000))
    evaluator = metrics.make_ae_evaluator(model, config.reconstruction_loss, config.eval_batch_size)

    def init_state(key):
        params = model.init(key, jnp.zeros((1, *dataset.image_shape), jnp.float32))["params"]
        return steps.create_train_state(model, params, tx)

    def evaluate(state, key):
        del key  # deterministic
        return evaluator(state.params, test_images)

    def summarize(state, key):
        results = evaluate(state, key)
        return {"test_mse": results["mse"], "test_loss": results["loss"],
                "reconstruction_loss": config.reconstruction_loss, "latent_dim": config.latent_dim,
                "units": "test_mse: squared error per pixel (pixels in [0, 1]); test_loss: the training loss "
                         "(mse per pixel, or bernoulli nats per example summed over pixels)",
                "num_test_examples": len(test_images)}

    def make_figures(state, key, workdir):
        encode, decode = codec(config, model, state.params)
        return latent_figures(encode, decode, config.latent_dim, dataset, test_images, workdir)

    return Task(name="ae", signature=signature(config, dataset.image_shape), init_state=init_state,
                train_step=steps.make_ae_train_step(model, config.reconstruction_loss, config.binarization),
                evaluate=evaluate, summarize=summarize, make_figures=make_figures)


def codec(config, model: AutoEncoder, params):
    """Jitted encode (x: f32[B, H, W, C] -> z: f32[B, k]) and decode (z -> image f32[B, H, W, C] in [0, 1])."""
    variables = {"params": params}
    encode = jax.jit(lambda x: model.apply(variables, x, method=model.encode))
    decoded = jax.jit(lambda z: model.apply(variables, z, method=model.decode))
    return encode, lambda z: as_images(config, decoded(z))


def encode_in_batches(encode, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """Codes f32[N, k] of images f32[N, H, W, C], encoded `batch_size` at a time to bound memory."""
    return np.concatenate([np.asarray(encode(images[i:i + batch_size])) for i in range(0, len(images), batch_size)])


def plane_points(codes: np.ndarray) -> tuple[np.ndarray, str]:
    """Codes f32[N, k] -> (f32[N, 2] points to scatter, how they were made): the codes themselves when k = 2,
    else their projection on their own first two principal components."""
    if codes.shape[1] == 2:
        return codes, "codes"
    if codes.shape[1] == 1:
        return np.stack([codes[:, 0], np.zeros_like(codes[:, 0])], axis=1), "codes (1-D, on a line)"
    projection = pca.fit(jnp.asarray(codes), 2)
    return np.asarray(pca.encode(projection, jnp.asarray(codes))), "codes projected on their first two PCs"


def latent_figures(encode, decode, latent_dim: int, dataset: data.Dataset, test_images: np.ndarray,
                   workdir: str) -> list[tuple[str, str]]:
    """Reconstructions, the latent scatter of up to 2000 test images coloured by class, and interpolation strips
    between test images of different classes, written under <workdir>/figures."""
    figure_dir = os.path.join(workdir, "figures")
    made = []

    def add(path, caption):
        made.append((os.path.relpath(path, workdir), caption))

    inputs = test_images[:20]
    add(figures.save_reconstructions(os.path.join(figure_dir, "reconstructions.png"), inputs,
                                     decode(encode(inputs)), title="Test inputs and reconstructions"),
        "Test images (rows 1, 3) and their reconstructions through the k-dimensional code (rows 2, 4)")

    count = min(len(test_images), 2000)
    points, how = plane_points(encode_in_batches(encode, test_images[:count]))
    add(figures.save_latent_scatter(os.path.join(figure_dir, "latent_scatter.png"), points,
                                    dataset.test_labels[:count], class_names=dataset.class_names,
                                    title=f"Test set: {how}"),
        f"Latent space of {count} test images ({how}), coloured by class")

    pairs = vae.interpolation_pairs(dataset.test_labels, 6)
    weights = np.linspace(0.0, 1.0, 10)[:, None]
    starts = np.asarray(encode(test_images[np.array([i for i, _ in pairs])]))
    ends = np.asarray(encode(test_images[np.array([j for _, j in pairs])]))
    paths = starts[:, None, :] * (1 - weights) + ends[:, None, :] * weights  # [P, S, k]
    strips = decode(jnp.asarray(paths.reshape(-1, latent_dim)))
    add(figures.save_interpolations(os.path.join(figure_dir, "interpolations.png"),
                                    strips.reshape(len(pairs), 10, *dataset.image_shape),
                                    title="Interpolating between test images in latent space"),
        "Straight paths between the codes of pairs of test images of different classes")
    return made
