"""The GAN family: generator and discriminator from the config, their step, evaluation, snapshots, figures.

Fields (see `default_config`): model.{architecture ("mlp" | "dcgan"), latent_dim, conditional, g_hidden / d_hidden
(MLP widths), g_features / d_features / kernel_size (DCGAN), negative_slope, d_dropout, spectral_norm}, loss (see
`losses.GAN_LOSSES`), d_steps, gp_weight, ema_decay, optim (G's optimizer), d_optim (D's), eval_num_samples,
snapshot_samples, sample_quality.*, conv_impl, and the common ones.

Images are scaled to [-1, 1] inside the step (`steps.make_gan_train_step`); everything shown or scored is in
[0, 1] and comes from the EMA generator in inference mode, its BatchNorm statistics recomputed for the averaged
weights (`make_statistics_refresher`).  Snapshots of a fixed noise batch are written after
every evaluation to `figures/progress/`, and gathered at the end into a strip and a GIF.
"""

from __future__ import annotations

import functools
import glob
import math
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gen_jax import config as config_lib
from gen_jax import data, figures, keys, losses, optim, sample_quality, steps
from gen_jax.models.gan import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator, dcgan_features
from gen_jax.train import Task

ARCHITECTURES = ("mlp", "dcgan")
_STRIP_ROWS, _STRIP_COLS = 10, 10


def default_config() -> ml_collections.ConfigDict:
    """The TensorFlow DCGAN tutorial's choices (Adam 1e-4 for both networks, batch 256, non-saturating loss,
    latent 100, dropout 0.3 in D)."""
    config = config_lib.base_config()
    config.family = "gan"
    config.model = ml_collections.ConfigDict(
        dict(
            architecture="dcgan",  # "mlp" | "dcgan"
            latent_dim=100,
            conditional=False,  # labels into G (one-hot with z) and D (projection)
            g_hidden=(256, 512),  # MLP generator widths
            d_hidden=(512, 256),  # MLP discriminator widths
            g_features=(256, 128, 64),  # DCGAN: coarse-map channels, then each hidden transposed conv
            d_features=(64, 128),  # DCGAN: stride-2 conv channels
            conv_width=64,  # DCGAN with g_features or d_features () (from the image size): full-resolution width
            kernel_size=5,  # DCGAN kernel side
            negative_slope=0.3,  # LeakyReLU slope in both networks
            d_dropout=0.3,  # dropout in D while training (must be 0 for wgan_gp)
            spectral_norm=False,  # spectral normalisation of every D weight
        )
    )
    config.loss = "non_saturating"  # "non_saturating" | "minimax" | "hinge" | "wgan_gp"
    config.d_steps = 1  # D updates per G update (each on the step's batch and fake batch)
    config.gp_weight = 10.0  # λ of WGAN-GP's gradient penalty (loss="wgan_gp" only)
    config.ema_decay = 0.999  # EMA of G's weights used for samples and metrics
    config.batch_size = 256
    config.optim = config_lib.optimizer_config(learning_rate=1e-4)  # G's (Keras' Adam defaults, as the tutorial)
    config.d_optim = config_lib.optimizer_config(learning_rate=1e-4)  # D's
    config.eval_num_samples = 1000  # samples for the periodic FID (the final one uses sample_quality.num_samples)
    config.snapshot_samples = 64  # fixed-noise images saved at every evaluation (figures/progress)
    config.sample_quality = config_lib.sample_quality_config(enabled=True)
    return config.lock()


def validate(config, dataset: data.Dataset) -> None:
    """Checks every GAN field against its allowed values (and the data), naming the field, before any compute."""
    model = config.model
    config_lib.require_choice(config, "model.architecture", ARCHITECTURES)
    config_lib.require_choice(config, "loss", losses.GAN_LOSSES)
    config_lib.require_bool(config, "model.conditional", "model.spectral_norm")
    config_lib.require_positive_int(config, "model.latent_dim", "d_steps", "eval_num_samples", "snapshot_samples")
    config_lib.require_fraction(config, "model.d_dropout")
    config_lib.require_fraction(config, "ema_decay")
    config_lib.require_non_negative(config, "model.negative_slope")
    optim.validate(config, "optim")
    optim.validate(config, "d_optim")
    if model.architecture == "mlp":
        config_lib.require_widths(config, "model.g_hidden", min_length=1)
        config_lib.require_widths(config, "model.d_hidden", min_length=1)
    else:
        # () = the widths and depth from the image size (models/gan.py: dcgan_features, which names the sizes)
        config_lib.require_widths(config, "model.g_features", min_length=2 if model.g_features else 0)
        config_lib.require_widths(config, "model.d_features")
        config_lib.require_positive_int(config, "model.kernel_size", "model.conv_width")
        dcgan_features(model, dataset.image_shape, dataset.name)
        factor, (height, width, _) = 2 ** (len(model.g_features) - 1), dataset.image_shape
        if model.g_features and (height % factor or width % factor):
            common = math.gcd(height, width)
            most = (common & -common).bit_length()  # 1 + the exponent of the largest power of 2 dividing both sides
            even = "the DCGAN needs even image sides: use architecture='mlp'"
            remedy = f"give g_features at most {most} entries" if most >= 2 else even
            raise config_lib.ConfigError(
                f"config.model.g_features has {len(model.g_features)} entries, so the DCGAN generator upsamples "
                f"{factor}× and needs image sides that are multiples of {factor}; {dataset.name} images are "
                f"{height}×{width}: {remedy}"
            )
    if config.loss == "wgan_gp":
        config_lib.require_positive(config, "gp_weight")
        if model.d_dropout:
            raise config_lib.ConfigError(
                f"config.loss='wgan_gp' differentiates the critic per example for its gradient penalty, which needs "
                f"a deterministic critic: set config.model.d_dropout=0.0 (got {model.d_dropout!r})"
            )
    if model.conditional and dataset.num_classes < 2:
        raise config_lib.ConfigError(
            f"config.model.conditional=True needs labelled data; {dataset.name!r} has {dataset.num_classes} class"
        )
    sample_quality.validate_config(config)


def build_models(config, dataset: data.Dataset):
    """(generator, discriminator) the config names, for `dataset`'s image shape and classes."""
    model = config.model
    num_classes = dataset.num_classes if model.conditional else 0
    both = dict(num_classes=num_classes, negative_slope=model.negative_slope, dtype=config_lib.compute_dtype(config))
    d_only = dict(dropout_rate=model.d_dropout, spectral_norm=model.spectral_norm)
    if model.architecture == "mlp":
        return (
            MLPGenerator(image_shape=dataset.image_shape, hidden=tuple(model.g_hidden), **both),
            MLPDiscriminator(hidden=tuple(model.d_hidden), **d_only, **both),
        )
    conv = dict(kernel_size=model.kernel_size, conv_impl=config.conv_impl, **both)
    g_features, d_features = dcgan_features(model, dataset.image_shape, dataset.name)
    return (
        DCGANGenerator(image_shape=dataset.image_shape, features=g_features, **conv),
        DCGANDiscriminator(features=d_features, **d_only, **conv),
    )


@functools.partial(jax.jit, static_argnums=0)
def render(generator, params, batch_stats, z: jax.Array, labels) -> jax.Array:
    """Images f32[N, H, W, C] in [0, 1] of z f32[N, D] (labels i32[N] or None): the generator in inference mode
    (BatchNorm from running statistics); compiled once per generator and shape, whatever the parameters."""
    out = generator.apply({"params": params, "batch_stats": batch_stats}, z, labels, train=False)
    return (out + 1.0) / 2.0


@functools.partial(jax.jit, static_argnums=0)
def discriminator_probability(discriminator, d_params, d_batch_stats, x: jax.Array, labels) -> jax.Array:
    """The mean of D(x) over x f32[N, H, W, C] in [-1, 1], in inference mode."""
    logits = discriminator.apply({"params": d_params, "batch_stats": d_batch_stats}, x, labels)
    return jnp.mean(jax.nn.sigmoid(logits))


def make_sampler(latent_dim: int, conditional: bool, generator, num_classes: int):
    """sample(params, batch_stats, key, count, labels=None) -> images f32[count, H, W, C] in [0, 1], with
    z ~ N(0, I) and, when conditional and no labels are given, labels uniform over the classes (from `key`)."""

    def sample(params, batch_stats, key, count: int, labels=None) -> np.ndarray:
        z_key, label_key = jax.random.split(key)
        z = jax.random.normal(z_key, (count, latent_dim))
        if conditional and labels is None:
            labels = jax.random.randint(label_key, (count,), 0, num_classes)
        return np.asarray(render(generator, params, batch_stats, z, labels if conditional else None))

    return sample, functools.partial(render, generator)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _batch_statistics(generator, latent_dim: int, num_classes: int, batch_size: int, params, batch_stats, key):
    """The generator's BatchNorm statistics of one batch of `batch_size` z ~ N(0, I) drawn from `key`."""
    z_key, label_key = jax.random.split(key)
    z = jax.random.normal(z_key, (batch_size, latent_dim))
    labels = jax.random.randint(label_key, (batch_size,), 0, num_classes) if num_classes else None
    zeros = jax.tree.map(jnp.zeros_like, batch_stats)
    _, updates = generator.apply(
        {"params": params, "batch_stats": zeros}, z, labels, train=True, mutable=["batch_stats"]
    )
    # Updated from zero, a running statistic holds (1 − momentum) · this batch's statistic.
    return jax.tree.map(lambda value: value / (1.0 - generator.batch_norm_momentum), updates["batch_stats"])


def make_statistics_refresher(
    generator, latent_dim: int, num_classes: int = 0, batches: int = 10, batch_size: int = 500
):
    """refresh(params, batch_stats, key) -> BatchNorm statistics recomputed for the generator with `params`: each
    layer's batch mean and variance averaged over `batches` batches of z ~ N(0, I) (labels uniform when
    `num_classes` > 0) drawn from `key`.  Statistics-free generators get their `{}` back.

    Why: the EMA generator's weights average the iterates, while the EMA of the running statistics was gathered
    under the iterates themselves, so the two do not belong together (the effect on FID is in the README's GAN
    section).
    """
    batch_statistics = functools.partial(_batch_statistics, generator, latent_dim, num_classes, batch_size)

    def refresh(params, batch_stats, key):
        if not batch_stats:
            return batch_stats
        total = batch_statistics(params, batch_stats, jax.random.fold_in(key, 0))
        for i in range(1, batches):
            total = jax.tree.map(jnp.add, total, batch_statistics(params, batch_stats, jax.random.fold_in(key, i)))
        return jax.tree.map(lambda value: value / batches, total)

    return refresh


def make_task(config, dataset: data.Dataset) -> Task:
    validate(config, dataset)
    generator, discriminator = build_models(config, dataset)
    num_classes = dataset.num_classes
    latent_dim, conditional = config.model.latent_dim, config.model.conditional
    g_tx = optim.make(config.optim, config.num_steps, "optim")
    d_tx = optim.make(config.d_optim, config.num_steps, "d_optim")
    evaluator = sample_quality.evaluator_on_demand(config, dataset)  # made on first use
    sample, render = make_sampler(latent_dim, conditional, generator, num_classes)
    test_real = dataset.test_images[: config.eval_num_samples] * 2.0 - 1.0
    test_labels = dataset.test_labels[: config.eval_num_samples]

    refresh_statistics = make_statistics_refresher(generator, latent_dim, num_classes if conditional else 0)

    def for_inference(state):
        """The state with the EMA generator's BatchNorm statistics recomputed for its weights, from a fixed key."""
        return state.replace(
            ema_batch_stats=refresh_statistics(
                state.ema_params, state.ema_batch_stats, keys.stream(config.seed, "gan_statistics")
            )
        )

    def codec(state):
        """(None, decode) as `train.Task.codec` specifies: the GAN has no encoder; decode(z f32[B, latent_dim],
        labels i32[B] | None) is the EMA generator in inference mode (BatchNorm statistics recomputed for its
        weights), images in [0, 1].  A conditional GAN needs `labels`; an unconditional one ignores them."""
        state = for_inference(state)
        params, batch_stats = state.ema_params, state.ema_batch_stats

        def decode(z, labels=None):
            if conditional and labels is None:
                raise ValueError("this GAN is conditional: pass labels i32[B], one class per row")
            return render(params, batch_stats, z, labels if conditional else None)

        return None, decode

    def ema_sampler(state):
        return lambda key, count: sample(state.ema_params, state.ema_batch_stats, key, count)

    @jax.jit  # one compiled call instead of one per operation: initialising a DCGAN eagerly takes many seconds
    def init_state(key):
        g_key, d_key = jax.random.split(key)
        z = jnp.zeros((1, latent_dim), jnp.float32)
        x = jnp.zeros((1, *dataset.image_shape), jnp.float32)
        labels = jnp.zeros((1,), jnp.int32) if conditional else None
        return steps.create_gan_state(
            generator.init(g_key, z, labels), discriminator.init(d_key, x, labels), g_tx, d_tx
        )

    def scores(state, key):
        """D(real) on test images and D(fake) on EMA samples (inference mode), and with sample quality on, the
        FID and classifier score of eval_num_samples EMA samples (biased upwards against the final n)."""
        fake_key, label_key = jax.random.split(jax.random.fold_in(key, keys.TAGS["gan_eval"]))
        labels = jnp.asarray(test_labels) if conditional else None
        fake = sample(state.ema_params, state.ema_batch_stats, fake_key, len(test_real), labels)
        d_of = functools.partial(discriminator_probability, discriminator, state.d_params, state.d_batch_stats)
        results = {"d_real_test": float(d_of(test_real, labels)), "d_fake_ema": float(d_of(fake * 2.0 - 1.0, labels))}
        if (quality := evaluator()) is not None:
            scored = sample_quality.draw_samples(
                ema_sampler(state), label_key, config.eval_num_samples, quality.batch_size
            )
            results.update(quality.score_images(scored, with_precision_recall=False))
        return results

    def summarize(state, key):
        state = for_inference(state)
        summary = {
            **scores(state, key),
            "loss": config.loss,
            "architecture": config.model.architecture,
            "conditional": conditional,
        }
        if (quality := evaluator()) is not None:
            summary.update(quality.summary(ema_sampler(state), keys.stream(config.seed, "gan_score")))
        return summary

    def snapshot(state, step, workdir):
        """Writes figures/progress/step_<step>.{npy,png}: the EMA generator's images of one fixed noise batch."""
        state, count = for_inference(state), config.snapshot_samples
        labels = jnp.arange(count) % num_classes if conditional else None
        images = sample(
            state.ema_params, state.ema_batch_stats, keys.stream(config.seed, "gan_snapshot"), count, labels
        )
        directory = os.path.join(workdir, "figures", "progress")
        os.makedirs(directory, exist_ok=True)
        np.save(os.path.join(directory, f"step_{step:08d}.npy"), np.round(images * 255).astype(np.uint8))
        figures.save_image_grid(
            os.path.join(directory, f"step_{step:08d}.png"),
            images,
            ncols=int(np.ceil(np.sqrt(len(images)))),
            title=f"Fixed noise, step {step}",
        )

    def make_figures(state, key, workdir):
        state, key = for_inference(state), keys.stream(config.seed, "gan_figures")  # the figures' own fixed key
        return gan_figures(latent_dim, conditional, sample, render, state, dataset, key, workdir)

    train_step = steps.make_gan_train_step(
        generator,
        discriminator,
        g_tx,
        d_tx,
        config.loss,
        latent_dim,
        d_steps=config.d_steps,
        gp_weight=float(config.gp_weight),
        ema_decay=float(config.ema_decay),
        conditional=conditional,
    )
    return Task(
        name="gan",
        signature=config_lib.signature(config, dataset.image_shape, loss=config.loss),
        init_state=init_state,
        train_step=train_step,
        evaluate=lambda state, key: scores(for_inference(state), key),
        summarize=summarize,
        make_figures=make_figures,
        loss_name="d_loss",
        snapshot=snapshot,
        codec=codec,
    )


def read_snapshots(workdir: str) -> tuple[list[int], np.ndarray]:
    """The steps and the images f32[S, N, H, W, C] in [0, 1] of the snapshots in `workdir/figures/progress`."""
    paths = sorted(glob.glob(os.path.join(workdir, "figures", "progress", "step_*.npy")))
    if not paths:
        return [], np.zeros((0,), np.float32)
    steps_done = [int(os.path.basename(p)[len("step_") : -len(".npy")]) for p in paths]
    return steps_done, np.stack([np.load(p).astype(np.float32) / 255.0 for p in paths])


def evenly_spaced(count: int, keep: int) -> np.ndarray:
    """Up to `keep` indices into range(count), evenly spaced, always including the first and the last."""
    return np.unique(np.linspace(0, count - 1, min(keep, count)).round().astype(int))


def gan_figures(
    latent_dim: int, conditional: bool, sample, render, state, dataset: data.Dataset, key: jax.Array, workdir: str
) -> list[tuple[str, str]]:
    """Samples of the EMA and of the raw generator, interpolations in z, and the progress strip and GIF."""
    figure_dir = os.path.join(workdir, "figures")
    made = []

    def add(path, caption):
        made.append((os.path.relpath(path, workdir), caption))

    rows = dataset.num_classes if conditional else 10
    labels = jnp.repeat(jnp.arange(rows), 10) if conditional else None
    row_labels = list(dataset.class_names) if conditional else None
    how = ", one row per class" if conditional else ""
    add(
        figures.save_image_grid(
            os.path.join(figure_dir, "samples.png"),
            sample(state.ema_params, state.ema_batch_stats, key, rows * 10, labels),
            ncols=10,
            row_labels=row_labels,
            title="Samples of the EMA generator",
        ),
        f"{rows * 10} samples of the generator's exponential moving average (z ~ N(0, I){how})",
    )
    add(
        figures.save_image_grid(
            os.path.join(figure_dir, "samples_raw.png"),
            sample(state.g_params, state.g_batch_stats, key, rows * 10, labels),
            ncols=10,
            row_labels=row_labels,
            title="Samples of the raw generator",
        ),
        "The same z through the generator's current weights (no averaging): compare with samples.png",
    )

    pair_key, label_key = jax.random.split(jax.random.fold_in(key, 1))
    ends = jax.random.normal(pair_key, (2, 6, latent_dim))
    weights = jnp.linspace(0.0, 1.0, 10)[None, :, None]
    paths = ends[0][:, None, :] * (1 - weights) + ends[1][:, None, :] * weights  # [6, 10, D]
    path_labels = jnp.repeat(jax.random.randint(label_key, (6,), 0, dataset.num_classes), 10) if conditional else None
    strips = np.asarray(render(state.ema_params, state.ema_batch_stats, paths.reshape(60, -1), path_labels))
    add(
        figures.save_interpolations(
            os.path.join(figure_dir, "interpolations.png"),
            strips.reshape(6, 10, *dataset.image_shape),
            title="Straight lines in z through the EMA generator",
        ),
        "Straight paths between pairs of z ~ N(0, I)" + (" (one class per row)" if conditional else ""),
    )

    steps_done, snapshots = read_snapshots(workdir)
    if steps_done:
        keep = evenly_spaced(len(steps_done), _STRIP_ROWS)
        columns = min(_STRIP_COLS, snapshots.shape[1])
        strip = snapshots[keep, :columns].reshape(-1, *snapshots.shape[2:])
        add(
            figures.save_image_grid(
                os.path.join(figure_dir, "progress.png"),
                strip,
                ncols=columns,
                row_labels=[f"step {steps_done[i]}" for i in keep],
                title="The same noise over training",
            ),
            "The EMA generator's images of one fixed noise batch at evaluations during training (rows)",
        )
        side = int(np.ceil(np.sqrt(snapshots.shape[1])))
        gif = figures.save_gif(
            os.path.join(figure_dir, "progress.gif"), [figures.tile_images(frame, side) for frame in snapshots]
        )
        add(gif, "Animation: the fixed noise batch at every evaluation")
    return made
