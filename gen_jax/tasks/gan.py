"""The GAN as a `train.Task`: generator and discriminator from the config, their step, evaluation, snapshots, figures.

Config fields read here (beyond the common ones; `experiments/configs/common.py:gan_config` documents each):
architecture ("mlp" | "dcgan"), loss (see `losses.GAN_LOSSES`), conditional, g_hidden / d_hidden (MLP widths),
g_features / d_features / kernel_size (DCGAN), negative_slope, d_dropout, spectral_norm, d_steps, gp_weight,
ema_decay, learning_rate (G), d_learning_rate, adam_b1, adam_b2, eval_num_samples, snapshot_samples and the
sample-quality fields (sample_quality, num_samples, classifier_dir; see `sample_quality.py`).

Images are scaled to [-1, 1] inside the step (`steps.make_gan_train_step`); everything shown or scored is in
[0, 1] and comes from the EMA generator in inference mode, its BatchNorm statistics recomputed for the averaged
weights (`make_statistics_refresher`).  Snapshots of a fixed noise batch are written after
every evaluation to `figures/progress/`, and gathered at the end into a strip and a GIF.
"""

from __future__ import annotations

import glob
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gen_jax import config as config_lib
from gen_jax import data, figures, losses, sample_quality, steps
from gen_jax.models.gan import UPSAMPLINGS, DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator
from gen_jax.train import Task

ARCHITECTURES = ("mlp", "dcgan")
# Tags folded into the seed's key for the fixed noise of snapshots and figures and for the final samples.
_SNAPSHOT_TAG, _FIGURE_TAG, _SCORE_TAG, _EVAL_TAG, _STATISTICS_TAG = 30_001, 30_002, 30_003, 30_004, 30_005
_STRIP_ROWS, _STRIP_COLS = 10, 10


def _require_bool(config, *names: str) -> None:
    for name in names:
        if not isinstance(config[name], bool):
            raise config_lib.ConfigError(f"config.{name} must be True or False, got {config[name]!r}")


def _require_widths(config, name: str, min_length: int = 1) -> None:
    value = config[name]
    if (not isinstance(value, (tuple, list)) or len(value) < min_length
            or any(isinstance(w, bool) or not isinstance(w, int) or w <= 0 for w in value)):
        raise config_lib.ConfigError(f"config.{name} must be a list of at least {min_length} positive integers, "
                                     f"got {value!r}")


def validate(config, dataset: data.Dataset) -> None:
    """Checks every GAN field against its allowed values (and the data), naming the field, before any compute."""
    config_lib.require_fields(config, (
        "architecture", "loss", "conditional", "negative_slope", "d_dropout", "spectral_norm", "d_steps",
        "gp_weight", "ema_decay", "d_learning_rate", "adam_b1", "adam_b2", "eval_num_samples", "snapshot_samples",
        "sample_quality"))
    config_lib.require_choice(config, "architecture", ARCHITECTURES)
    config_lib.require_choice(config, "loss", losses.GAN_LOSSES)
    _require_bool(config, "conditional", "spectral_norm", "sample_quality")
    config_lib.require_positive_int(config, "d_steps", "eval_num_samples", "snapshot_samples")
    config_lib.require_positive(config, "d_learning_rate")
    for name in ("d_dropout", "ema_decay", "adam_b1", "adam_b2"):
        config_lib.require_fraction(config, name)
    if isinstance(config.negative_slope, bool) or not isinstance(config.negative_slope, (int, float)) \
            or config.negative_slope < 0:
        raise config_lib.ConfigError(f"config.negative_slope must be a number >= 0, got {config.negative_slope!r}")
    if config.architecture == "mlp":
        config_lib.require_fields(config, ("g_hidden", "d_hidden"))
        _require_widths(config, "g_hidden")
        _require_widths(config, "d_hidden")
    else:
        config_lib.require_fields(config, ("g_features", "d_features", "kernel_size", "upsampling"))
        config_lib.require_choice(config, "upsampling", UPSAMPLINGS)
        _require_widths(config, "g_features", min_length=2)
        _require_widths(config, "d_features")
        config_lib.require_positive_int(config, "kernel_size")
        factor = 2 ** (len(config.g_features) - 1)
        height, width, _ = dataset.image_shape
        if height % factor or width % factor:
            most = 1 + _largest_power_of_two_dividing(height, width)
            remedy = (f"give g_features at most {most} entries" if most >= 2 else
                      "the DCGAN needs even image sides: use architecture='mlp'")
            raise config_lib.ConfigError(
                f"config.g_features has {len(config.g_features)} entries, so the DCGAN generator upsamples "
                f"{factor}× and needs image sides that are multiples of {factor}; {dataset.name} images are "
                f"{height}×{width}: {remedy}")
    if config.loss == "wgan_gp":
        config_lib.require_positive(config, "gp_weight")
        if config.d_dropout:
            raise config_lib.ConfigError(
                f"config.loss='wgan_gp' differentiates the critic per example for its gradient penalty, which needs "
                f"a deterministic critic: set config.d_dropout=0.0 (got {config.d_dropout!r})")
    if config.conditional and dataset.num_classes < 2:
        raise config_lib.ConfigError(f"config.conditional=True needs labelled data; {dataset.name!r} has "
                                     f"{dataset.num_classes} class")
    sample_quality.validate_config(config)


def _largest_power_of_two_dividing(height: int, width: int) -> int:
    exponent = 0
    while height % 2 ** (exponent + 1) == 0 and width % 2 ** (exponent + 1) == 0:
        exponent += 1
    return exponent


def build_models(config, dataset: data.Dataset):
    """(generator, discriminator) the config names, for `dataset`'s image shape and classes."""
    num_classes = dataset.num_classes if config.conditional else 0
    dtype = config_lib.compute_dtype(config)
    if config.architecture == "mlp":
        return (MLPGenerator(image_shape=dataset.image_shape, hidden=tuple(config.g_hidden), num_classes=num_classes,
                             negative_slope=config.negative_slope, dtype=dtype),
                MLPDiscriminator(hidden=tuple(config.d_hidden), num_classes=num_classes,
                                 negative_slope=config.negative_slope, dropout_rate=config.d_dropout,
                                 spectral_norm=config.spectral_norm, dtype=dtype))
    return (DCGANGenerator(image_shape=dataset.image_shape, features=tuple(config.g_features),
                           kernel_size=config.kernel_size, num_classes=num_classes,
                           negative_slope=config.negative_slope, upsampling=config.upsampling, dtype=dtype),
            DCGANDiscriminator(features=tuple(config.d_features), kernel_size=config.kernel_size,
                               num_classes=num_classes, negative_slope=config.negative_slope,
                               dropout_rate=config.d_dropout, spectral_norm=config.spectral_norm, dtype=dtype,
                               # "transpose" keeps Flax's own layers throughout: the tutorial's exact computation.
                               convolution="flax" if config.upsampling == "transpose" else "canonical_grad"))


def signature(config, image_shape) -> dict:
    """The fields a checkpoint must agree with to be resumed by this config."""
    arch = ("g_hidden", "d_hidden") if config.architecture == "mlp" else ("g_features", "d_features", "kernel_size")
    return config_lib.signature(config, ("architecture", "loss", "latent_dim", "conditional", "spectral_norm") + arch,
                                image_shape)


def make_render(generator):
    """render(params, batch_stats, z f32[N, D], labels i32[N] or None) -> images f32[N, H, W, C] in [0, 1]: the
    generator in inference mode (BatchNorm from running statistics), jitted."""

    @jax.jit
    def render(params, batch_stats, z, labels):
        out = generator.apply({"params": params, "batch_stats": batch_stats}, z, labels, train=False)
        return (out + 1.0) / 2.0

    return render


def make_sampler(config, generator, num_classes: int):
    """sample(params, batch_stats, key, count, labels=None) -> images f32[count, H, W, C] in [0, 1], with
    z ~ N(0, I) and, when conditional and no labels are given, labels uniform over the classes (from `key`)."""
    render = make_render(generator)

    def sample(params, batch_stats, key, count: int, labels=None) -> np.ndarray:
        z_key, label_key = jax.random.split(key)
        z = jax.random.normal(z_key, (count, config.latent_dim))
        if config.conditional and labels is None:
            labels = jax.random.randint(label_key, (count,), 0, num_classes)
        return np.asarray(render(params, batch_stats, z, labels if config.conditional else None))

    return sample, render


def make_statistics_refresher(generator, latent_dim: int, num_classes: int = 0, batches: int = 10,
                              batch_size: int = 500):
    """refresh(params, batch_stats, key) -> BatchNorm statistics recomputed for the generator with `params`: each
    layer's batch mean and variance averaged over `batches` batches of z ~ N(0, I) (labels uniform when
    `num_classes` > 0) drawn from `key`.  Statistics-free generators get their `{}` back.

    Why: the EMA generator's weights average the iterates, while the EMA of the running statistics was gathered
    under the iterates themselves, so the two do not belong together.  Recomputing the statistics for the averaged
    weights took the tutorial DCGAN's summary FID from 56.9 to 53.2 (50 epochs on Fashion-MNIST, 10,000 samples).
    """
    momentum = getattr(generator, "batch_norm_momentum", None)

    @jax.jit
    def batch_statistics(params, batch_stats, key):
        z_key, label_key = jax.random.split(key)
        z = jax.random.normal(z_key, (batch_size, latent_dim))
        labels = jax.random.randint(label_key, (batch_size,), 0, num_classes) if num_classes else None
        zeros = jax.tree.map(jnp.zeros_like, batch_stats)
        _, updates = generator.apply({"params": params, "batch_stats": zeros}, z, labels, train=True,
                                     mutable=["batch_stats"])
        # Updated from zero, a running statistic holds (1 − momentum) · this batch's statistic.
        return jax.tree.map(lambda value: value / (1.0 - momentum), updates["batch_stats"])

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
    g_tx = optax.adam(config.learning_rate, b1=config.adam_b1, b2=config.adam_b2)
    d_tx = optax.adam(config.d_learning_rate, b1=config.adam_b1, b2=config.adam_b2)
    evaluator = sample_quality.evaluator_from_config(config, dataset)
    sample, render = make_sampler(config, generator, num_classes)
    base_key = jax.random.key(config.seed)
    test_real = dataset.test_images[:config.eval_num_samples] * 2.0 - 1.0
    test_labels = dataset.test_labels[:config.eval_num_samples]

    @jax.jit
    def discriminator_probability(d_params, d_batch_stats, x, labels):  # -> mean D(x) in inference mode
        logits = discriminator.apply({"params": d_params, "batch_stats": d_batch_stats}, x, labels)
        return jnp.mean(jax.nn.sigmoid(logits))

    refresh_statistics = make_statistics_refresher(generator, config.latent_dim,
                                                   num_classes if config.conditional else 0)

    def for_inference(state):
        """The state with the EMA generator's BatchNorm statistics recomputed for its weights, from a fixed key."""
        return state.replace(ema_batch_stats=refresh_statistics(state.ema_params, state.ema_batch_stats,
                                                                jax.random.fold_in(base_key, _STATISTICS_TAG)))

    def ema_sampler(state):
        return lambda key, count: sample(state.ema_params, state.ema_batch_stats, key, count)

    @jax.jit  # one compiled call instead of one per operation: initialising a DCGAN eagerly takes many seconds
    def init_state(key):
        g_key, d_key = jax.random.split(key)
        z = jnp.zeros((1, config.latent_dim), jnp.float32)
        x = jnp.zeros((1, *dataset.image_shape), jnp.float32)
        labels = jnp.zeros((1,), jnp.int32) if config.conditional else None
        return steps.create_gan_state(generator.init(g_key, z, labels), discriminator.init(d_key, x, labels),
                                      g_tx, d_tx)

    def evaluate(state, key):
        return scores(for_inference(state), key)

    def scores(state, key):
        """D(real) on test images and D(fake) on EMA samples (inference mode), and with sample quality on, the
        FID and classifier score of eval_num_samples EMA samples (biased upwards against the final n)."""
        fake_key, label_key = jax.random.split(jax.random.fold_in(key, _EVAL_TAG))
        labels = jnp.asarray(test_labels) if config.conditional else None
        fake = sample(state.ema_params, state.ema_batch_stats, fake_key, len(test_real), labels)
        results = {
            "d_real_test": float(discriminator_probability(state.d_params, state.d_batch_stats, test_real, labels)),
            "d_fake_ema": float(discriminator_probability(state.d_params, state.d_batch_stats, fake * 2.0 - 1.0,
                                                          labels)),
        }
        if evaluator is not None:
            scored = sample_quality.draw_samples(ema_sampler(state), label_key, config.eval_num_samples,
                                                 evaluator.batch_size)
            results.update(evaluator.score_images(scored, with_precision_recall=False))
        return results

    def summarize(state, key):
        state = for_inference(state)
        summary = {**scores(state, key), "loss": config.loss, "architecture": config.architecture,
                   "conditional": config.conditional}
        if evaluator is not None:
            summary.update(evaluator.summary(ema_sampler(state), jax.random.fold_in(base_key, _SCORE_TAG)))
        return summary

    def snapshot(state, step, workdir):
        images = fixed_noise_samples(for_inference(state), config.snapshot_samples)
        directory = os.path.join(workdir, "figures", "progress")
        os.makedirs(directory, exist_ok=True)
        np.save(os.path.join(directory, f"step_{step:08d}.npy"), np.round(images * 255).astype(np.uint8))
        figures.save_image_grid(os.path.join(directory, f"step_{step:08d}.png"), images,
                                ncols=int(np.ceil(np.sqrt(len(images)))), title=f"Fixed noise, step {step}")

    def fixed_noise_samples(state, count):
        labels = jnp.arange(count) % num_classes if config.conditional else None
        return sample(state.ema_params, state.ema_batch_stats, jax.random.fold_in(base_key, _SNAPSHOT_TAG), count,
                      labels)

    def make_figures(state, key, workdir):
        del key
        return gan_figures(config, sample, render, for_inference(state), dataset,
                           jax.random.fold_in(base_key, _FIGURE_TAG), workdir)

    train_step = steps.make_gan_train_step(
        generator, discriminator, g_tx, d_tx, config.loss, config.latent_dim, d_steps=config.d_steps,
        gp_weight=float(config.gp_weight), ema_decay=float(config.ema_decay), conditional=config.conditional)
    return Task(name="gan", signature=signature(config, dataset.image_shape), init_state=init_state,
                train_step=train_step, evaluate=evaluate, summarize=summarize, make_figures=make_figures,
                loss_name="d_loss", snapshot=snapshot)


def read_snapshots(workdir: str) -> tuple[list[int], np.ndarray]:
    """The steps and the images f32[S, N, H, W, C] in [0, 1] of the snapshots in `workdir/figures/progress`."""
    paths = sorted(glob.glob(os.path.join(workdir, "figures", "progress", "step_*.npy")))
    if not paths:
        return [], np.zeros((0,), np.float32)
    steps_done = [int(os.path.basename(p)[len("step_"):-len(".npy")]) for p in paths]
    return steps_done, np.stack([np.load(p).astype(np.float32) / 255.0 for p in paths])


def evenly_spaced(count: int, keep: int) -> np.ndarray:
    """Up to `keep` indices into range(count), evenly spaced, always including the first and the last."""
    return np.unique(np.linspace(0, count - 1, min(keep, count)).round().astype(int))


def gan_figures(config, sample, render, state, dataset: data.Dataset, key: jax.Array,
                workdir: str) -> list[tuple[str, str]]:
    """Samples of the EMA and of the raw generator, interpolations in z, and the progress strip and GIF."""
    figure_dir = os.path.join(workdir, "figures")
    made = []

    def add(path, caption):
        made.append((os.path.relpath(path, workdir), caption))

    rows = dataset.num_classes if config.conditional else 10
    labels = jnp.repeat(jnp.arange(rows), 10) if config.conditional else None
    row_labels = list(dataset.class_names) if config.conditional else None
    how = ", one row per class" if config.conditional else ""
    add(figures.save_image_grid(os.path.join(figure_dir, "samples.png"),
                                sample(state.ema_params, state.ema_batch_stats, key, rows * 10, labels),
                                ncols=10, row_labels=row_labels, title="Samples of the EMA generator"),
        f"{rows * 10} samples of the generator's exponential moving average (z ~ N(0, I){how})")
    add(figures.save_image_grid(os.path.join(figure_dir, "samples_raw.png"),
                                sample(state.g_params, state.g_batch_stats, key, rows * 10, labels),
                                ncols=10, row_labels=row_labels, title="Samples of the raw generator"),
        "The same z through the generator's current weights (no averaging): compare with samples.png")

    pair_key, label_key = jax.random.split(jax.random.fold_in(key, 1))
    ends = jax.random.normal(pair_key, (2, 6, config.latent_dim))
    weights = jnp.linspace(0.0, 1.0, 10)[None, :, None]
    paths = ends[0][:, None, :] * (1 - weights) + ends[1][:, None, :] * weights  # [6, 10, D]
    path_labels = jnp.repeat(jax.random.randint(label_key, (6,), 0, dataset.num_classes), 10) \
        if config.conditional else None
    strips = np.asarray(render(state.ema_params, state.ema_batch_stats, paths.reshape(60, -1), path_labels))
    add(figures.save_interpolations(os.path.join(figure_dir, "interpolations.png"),
                                    strips.reshape(6, 10, *dataset.image_shape),
                                    title="Straight lines in z through the EMA generator"),
        "Straight paths between pairs of z ~ N(0, I)" + (" (one class per row)" if config.conditional else ""))

    steps_done, snapshots = read_snapshots(workdir)
    if steps_done:
        keep = evenly_spaced(len(steps_done), _STRIP_ROWS)
        columns = min(_STRIP_COLS, snapshots.shape[1])
        strip = snapshots[keep, :columns].reshape(-1, *snapshots.shape[2:])
        add(figures.save_image_grid(os.path.join(figure_dir, "progress.png"), strip, ncols=columns,
                                    row_labels=[f"step {steps_done[i]}" for i in keep],
                                    title="The same noise over training"),
            "The EMA generator's images of one fixed noise batch at evaluations during training (rows)")
        side = int(np.ceil(np.sqrt(snapshots.shape[1])))
        gif = figures.save_gif(os.path.join(figure_dir, "progress.gif"),
                               [figures.tile_images(frame, side) for frame in snapshots])
        add(gif, "Animation: the fixed noise batch at every evaluation")
    return made
