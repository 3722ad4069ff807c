"""The GAN family: the tutorial's network, a step whose D and G updates touch only their own parameters, a G
gradient through the one generator pass equal to the direct one, conditioning, and training, monitoring and resume
through experiments.main."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments import main as experiments_main
from experiments.configs import dcgan_fashion_mnist
from gen_jax import checkpoint, data, keys, losses, steps, train
from gen_jax import config as config_lib
from gen_jax.models import gan, upsampling
from gen_jax.tasks import gan as gan_task

from conftest import read_jsonl, tiny_gan_config, trees_equal


def count(tree):
    return sum(int(np.size(x)) for x in jax.tree_util.tree_leaves(tree))


def shapes(module, *inputs):
    """The variables' shapes of `module` initialised on `inputs`, computed abstractly (nothing is compiled)."""
    variables = jax.eval_shape(module.init, jax.random.key(0), *inputs)
    return jax.tree_util.tree_map(lambda leaf: leaf.shape, variables)


def test_dcgan_defaults_are_the_tensorflow_tutorial_network():
    """The tutorial's model.summary(): G 2,305,472 trainable + 25,472 BatchNorm statistics, D 212,865."""
    generator, discriminator = gan.DCGANGenerator(), gan.DCGANDiscriminator()
    z, x = jnp.zeros((2, 100)), jnp.zeros((2, 28, 28, 1))
    g_vars = jax.eval_shape(generator.init, jax.random.key(0), z)
    d_vars = jax.eval_shape(discriminator.init, jax.random.key(1), x)
    assert count(g_vars["params"]) == 2_305_472
    assert count(g_vars["batch_stats"]) == 25_472
    assert count(d_vars["params"]) == 212_865
    assert jax.eval_shape(generator.apply, g_vars, z).shape == (2, 28, 28, 1)
    assert jax.eval_shape(discriminator.apply, d_vars, x).shape == (2,)
    # The config of the same name builds the same networks (fields choosing a faster computation of the same
    # function aside): the same variables, slopes and dropout.
    config = dcgan_fashion_mnist.get_config()
    dataset = data.Dataset(
        "fake",
        np.zeros((4, 28, 28, 1), np.float32),
        np.zeros(4, np.int32),
        np.zeros((4, 28, 28, 1), np.float32),
        np.zeros(4, np.int32),
        1,
        ("x",),
    )
    built_generator, built_discriminator = gan_task.build_models(config, dataset)
    assert shapes(built_generator, z) == shapes(generator, z)
    assert shapes(built_discriminator, x) == shapes(discriminator, x)
    assert built_generator.negative_slope == built_discriminator.negative_slope == 0.3
    assert built_discriminator.dropout_rate == 0.3 and config.model.latent_dim == 100 and config.batch_size == 256
    assert config.optim.learning_rate == config.d_optim.learning_rate == 1e-4 and config.loss == "non_saturating"


def make_pieces(conditional=False, loss="non_saturating"):
    """A small MLP GAN on 8×8 images with spectral norm in D (so D has batch_stats), its pieces jitted."""
    num_classes = 3 if conditional else 0
    generator = gan.MLPGenerator(image_shape=(8, 8, 1), hidden=(16,), num_classes=num_classes)
    discriminator = gan.MLPDiscriminator(
        hidden=(16,), num_classes=num_classes, spectral_norm=True, dropout_rate=0.0 if loss == "wgan_gp" else 0.3
    )
    labels = jnp.array([0, 1, 2, 1]) if conditional else None
    first = None if labels is None else labels[:1]
    g_tx, d_tx = optax.adam(1e-2), optax.adam(1e-2)
    g_vars = jax.jit(generator.init)(jax.random.key(0), jnp.zeros((1, 6)), first)
    d_vars = jax.jit(discriminator.init)(jax.random.key(1), jnp.zeros((1, 8, 8, 1)), first)
    state = steps.create_gan_state(g_vars, d_vars, g_tx, d_tx)
    pieces = steps.GANUpdates(
        *(jax.jit(piece) for piece in steps.make_gan_updates(generator, discriminator, g_tx, d_tx, loss))
    )
    real = jax.random.uniform(jax.random.key(2), (4, 8, 8, 1), minval=-1, maxval=1)
    z = jax.random.normal(jax.random.key(3), (4, 6))
    return generator, discriminator, state, pieces, real, z, labels


G_FIELDS = ("g_params", "g_opt_state", "g_batch_stats", "ema_params", "ema_batch_stats")  # no BatchNorm: {}
D_FIELDS = ("d_params", "d_opt_state", "d_batch_stats")


@pytest.mark.parametrize("loss", ["non_saturating", "wgan_gp"])
def test_discriminator_and_generator_updates_touch_only_their_own_parameters(loss):
    _, _, state, pieces, real, z, labels = make_pieces(loss=loss)
    fake, pullback, g_stats = pieces.generate(state, z, labels)
    state = state.replace(g_batch_stats=g_stats)

    after_d, d_metrics = pieces.discriminator_update(state, real, fake, labels, jax.random.key(4))
    for field in G_FIELDS:
        assert trees_equal(getattr(after_d, field), getattr(state, field)), field
    for field in D_FIELDS:  # the spectral-norm vectors advance with D
        assert not trees_equal(getattr(after_d, field), getattr(state, field)), field
    assert ("gp" in d_metrics) == (loss == "wgan_gp")

    after_g, _ = pieces.generator_update(after_d, fake, pullback, labels, jax.random.key(5))
    for field in D_FIELDS:
        assert trees_equal(getattr(after_g, field), getattr(after_d, field)), field
    for field in ("g_params", "g_opt_state", "ema_params"):
        assert not trees_equal(getattr(after_g, field), getattr(after_d, field)), field


def test_generator_gradient_through_the_one_pass_equals_the_direct_gradient():
    """G's gradient reaches its parameters through the VJP of the pass that made the fake batch for D: it must
    equal differentiating G-then-D directly."""
    generator, discriminator, state, pieces, _, z, labels = make_pieces(conditional=True)
    fake, pullback, _ = pieces.generate(state, z, labels)
    d_variables = {"params": state.d_params, "batch_stats": state.d_batch_stats}
    dropout = jax.random.key(6)

    def loss_of_fake(x):
        logits = discriminator.apply(d_variables, x, labels, train=True, rngs={"dropout": dropout})
        return jnp.mean(losses.generator_loss("non_saturating", logits))

    (through_pass,) = pullback(jax.jit(jax.grad(loss_of_fake))(fake))

    def direct(g_params):
        x, _ = generator.apply(
            {"params": g_params, "batch_stats": state.g_batch_stats}, z, labels, train=True, mutable=["batch_stats"]
        )
        return loss_of_fake(x)

    expected = jax.jit(jax.grad(direct))(state.g_params)
    for a, b in zip(jax.tree_util.tree_leaves(through_pass), jax.tree_util.tree_leaves(expected)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_labels_condition_both_networks():
    generator, discriminator, state, _, real, z, _ = make_pieces(conditional=True)
    g_vars = {"params": state.g_params, "batch_stats": state.g_batch_stats}
    d_vars = {"params": state.d_params, "batch_stats": state.d_batch_stats}
    zeros, ones = jnp.zeros(4, jnp.int32), jnp.ones(4, jnp.int32)
    assert not np.allclose(generator.apply(g_vars, z, zeros), generator.apply(g_vars, z, ones))
    assert not np.allclose(discriminator.apply(d_vars, real, zeros), discriminator.apply(d_vars, real, ones))
    with pytest.raises(ValueError, match="labels"):
        generator.apply(g_vars, z)


def test_ema_follows_tensorflow_num_updates_rule():
    np.testing.assert_allclose(steps.ema_decay_at(jnp.array([0, 90, 100_000]), 0.999), [0.1, 0.91, 0.999], rtol=1e-6)


def test_recomputed_batch_statistics_are_those_of_the_weights_used():
    """Inference with the refreshed statistics ≈ the same generator normalising a large batch by its own
    statistics; with the statistics a generator was initialised with (means 0, variances 1) it is far off."""
    generator = gan.DCGANGenerator(image_shape=(8, 8, 1), features=(16, 8), kernel_size=3)
    z = jax.random.normal(jax.random.key(1), (4000, 6))
    variables = generator.init(jax.random.key(0), z[:1])
    # Weights unlike their initialisation, so every layer's activations are far from zero mean and unit variance.
    params = jax.tree.map(lambda w: w * 3.0 + 0.5, variables["params"])
    refresh = gan_task.make_statistics_refresher(generator, latent_dim=6, batches=4, batch_size=1000)
    refreshed = refresh(params, variables["batch_stats"], jax.random.key(2))
    own_statistics, _ = generator.apply(
        {"params": params, "batch_stats": variables["batch_stats"]}, z, train=True, mutable=["batch_stats"]
    )
    with_refreshed = generator.apply({"params": params, "batch_stats": refreshed}, z)
    with_initial = generator.apply({"params": params, "batch_stats": variables["batch_stats"]}, z)
    error = float(jnp.mean(jnp.abs(with_refreshed - own_statistics)))
    assert error < 0.05  # the statistics come from other z: 4,000 draws estimate them to ~2%
    assert float(jnp.mean(jnp.abs(with_initial - own_statistics))) > 5 * error
    assert gan_task.make_statistics_refresher(gan.MLPGenerator((8, 8, 1)), 6)(None, {}, jax.random.key(0)) == {}


@pytest.mark.slow
def test_training_monitors_resumes_bit_identically_and_draws_figures(tmp_path):
    experiments_main.run(tiny_gan_config(num_steps=20, write_figures=False), str(tmp_path))
    summary = experiments_main.run(tiny_gan_config(), str(tmp_path))  # resumes at 20: networks, optimizers, EMA

    # The same 40 steps without the interruption, through the loop's own fused step: keys come from (seed, step).
    config, dataset = tiny_gan_config(), data.load_dataset("digits")
    task = gan_task.make_task(config, dataset)
    streams = keys.loop_streams(config.seed)
    straight, _ = train.jit_multi_step(task.train_step, config.batch_size)(
        task.init_state(streams["init"]),
        jnp.asarray(dataset.train_images),
        jnp.asarray(dataset.train_labels),
        streams["train"],
        streams["data"],
        40,
    )
    resumed, step = checkpoint.restore_latest(str(tmp_path / "checkpoints"), task.init_state(streams["init"]))
    assert step == 40
    assert trees_equal(straight, resumed)

    records = read_jsonl(tmp_path / "metrics.jsonl")
    train_keys = set().union(*(r for r in records if "train/d_loss" in r))
    assert {
        "train/d_loss",
        "train/g_loss",
        "train/d_real",
        "train/d_fake",
        "train/d_grad_norm",
        "train/g_grad_norm",
    } <= train_keys
    assert {"d_real_test", "d_fake_ema", "loss", "steps"} <= set(summary)
    progress = sorted(os.listdir(tmp_path / "figures" / "progress"))
    assert progress == ["step_00000020.npy", "step_00000020.png", "step_00000040.npy", "step_00000040.png"]
    assert {"samples.png", "samples_raw.png", "interpolations.png", "progress.png", "progress.gif"} <= set(
        os.listdir(tmp_path / "figures")
    )


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"loss": "lsgan"}, "config.loss"),
        ({"loss": "wgan_gp", "model__d_dropout": 0.3}, "config.model.d_dropout"),
        ({"model__architecture": "dcgan", "model__g_features": (8, 8, 8, 8, 8)}, "config.model.g_features"),
        ({"ema_decay": 1.0}, "config.ema_decay"),
        ({"model__negative_slope": -0.1}, "config.model.negative_slope"),
        ({"d_steps": 0}, "config.d_steps"),
        ({"d_optim__b1": 1.0}, r"config.d_optim.b1 must be a number in \[0, 1\)"),
    ],
)
def test_bad_config_is_refused_before_compute(tmp_path, overrides, message):
    with pytest.raises(config_lib.ConfigError, match=message):
        experiments_main.run(tiny_gan_config(**overrides), str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_eigen_cpu_convolutions_keep_the_function_and_change_only_the_kernels():
    """`config.cpu_convolutions = "eigen"` (what dcgan_fashion_mnist trains with) compiles the same function with
    other kernels: the DCGAN's two kinds of layer (its stride-2 transposed convolution and convolution, as
    `conv_impl="dual_grad"` computes them), at sizes where XLA's default runs them in YNNPACK, give the same values
    and gradients without YNNPACK's convolutions, to float rounding.  The option is not given off CPU."""
    eigen = config_lib.CPU_CONVOLUTIONS["eigen"]
    assert config_lib.compiler_options(tiny_gan_config(cpu_convolutions="eigen"), "cpu") == eigen
    assert config_lib.compiler_options(tiny_gan_config(cpu_convolutions="eigen"), "gpu") is None
    assert config_lib.compiler_options(tiny_gan_config(), "cpu") is None
    shapes = [(16, 7, 7, 32), (5, 5, 32, 16), (5, 5, 16, 16)]
    x, up, down = (jax.random.normal(jax.random.key(i), shape) / 10 for i, shape in enumerate(shapes))

    def loss(x, up, down):
        h = upsampling.dual_grad_conv_transpose(x, up, 2)
        return jnp.sum(jnp.sin(upsampling.canonical_grad_conv(jnp.tanh(h), down, 2)))

    compiled = {
        name: jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)), compiler_options=options)
        .lower(x, up, down)
        .compile()
        for name, options in (("default", None), ("eigen", eigen))
    }
    entry = {name: c.as_text()[c.as_text().index("ENTRY") :] for name, c in compiled.items()}
    assert "ynn_fusion" in entry["default"] and "ynn_fusion" not in entry["eigen"]
    assert " convolution(" in entry["eigen"]
    expected, got = compiled["default"](x, up, down), compiled["eigen"](x, up, down)
    for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(got)):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
