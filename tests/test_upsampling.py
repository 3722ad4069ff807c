"""The fast convolution layers (upsampling.py, with conv_grads.py and subpixel.py) compute Flax's nn.ConvTranspose and
nn.Conv exactly: same parameters, values and gradients; every conv model is one network under every conv_impl."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.config import CONV_IMPLS
from gen_jax.models import subpixel, upsampling
from gen_jax.models.autoencoder import ConvDecoder, ConvEncoder
from gen_jax.models.classifier import Classifier
from gen_jax.models.gan import DCGANDiscriminator, DCGANGenerator

FAST_METHODS = tuple(upsampling.METHODS)


def random(shape, seed):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


@pytest.mark.parametrize("method", FAST_METHODS)
@pytest.mark.parametrize("kernel,stride,size", [(5, 2, 7), (5, 1, 4), (4, 2, 5), (1, 3, 3)])
def test_fast_layer_is_flax_conv_transpose(method, kernel, stride, size):
    """With the weights of an nn.ConvTranspose, the fast layer gives its outputs and both of its gradients."""
    x = random((2, size, size, 3), 0)
    flax_layer = nn.ConvTranspose(4, (kernel, kernel), strides=(stride, stride), padding="SAME")
    fast_layer = upsampling.FastConvTranspose(4, (kernel, kernel), strides=(stride, stride), method=method)
    variables = flax_layer.init(jax.random.key(0), x)
    assert jax.tree.structure(variables) == jax.tree.structure(fast_layer.init(jax.random.key(0), x))
    weights = {
        "params": {
            "kernel": random(variables["params"]["kernel"].shape, 1),
            "bias": random(variables["params"]["bias"].shape, 2),
        }
    }

    def loss(layer):
        # A nonlinear read-out, so every output position weighs differently in the gradients.
        return lambda params, x: jnp.sum(jnp.sin(layer.apply({"params": params}, x)))

    expected = jax.jit(flax_layer.apply)(weights, x)
    got = jax.jit(fast_layer.apply)(weights, x)
    assert got.shape == expected.shape == (2, stride * size, stride * size, 4)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    expected_grads = jax.jit(jax.grad(loss(flax_layer), argnums=(0, 1)))(weights["params"], x)
    got_grads = jax.jit(jax.grad(loss(fast_layer), argnums=(0, 1)))(weights["params"], x)
    for e, g in zip(jax.tree.leaves(expected_grads), jax.tree.leaves(got_grads)):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4)


def test_subpixel_kernel_holds_exactly_the_transposed_kernel_taps():
    """Each tap of the k×k kernel lands exactly once in the sub-pixel kernel, and every other entry is zero."""
    kernel = jnp.arange(1, 5 * 5 * 2 * 3 + 1, dtype=jnp.float32).reshape(5, 5, 2, 3)
    stacked, _ = subpixel.subpixel_kernel(kernel, 2)
    assert stacked.shape == (3, 3, 2, 4 * 3)
    values = np.asarray(stacked)
    np.testing.assert_array_equal(np.sort(values[values != 0]), np.sort(np.asarray(kernel).ravel()))


@pytest.mark.parametrize("form", [c for c in CONV_IMPLS if c != "flax"])
def test_dcgan_generator_forms_are_one_network(form):
    """Every conv_impl of the tutorial's generator has the same parameters (initialised alike) and, with the
    same parameters, the same samples and gradients: the function class is unchanged.  (Narrower than the
    tutorial's 256-128-64 channels, to keep the test fast; the layers are the same.)"""
    z = random((4, 100), 3)
    plain = DCGANGenerator(features=(16, 8, 4), conv_impl="flax")
    fast = DCGANGenerator(features=(16, 8, 4), conv_impl=form)
    variables = plain.init(jax.random.key(1), z)
    for a, b in zip(jax.tree.leaves(variables), jax.tree.leaves(fast.init(jax.random.key(1), z))):
        np.testing.assert_array_equal(a, b)

    def loss(generator):
        def fn(params):
            images, _ = generator.apply(
                {"params": params, "batch_stats": variables["batch_stats"]}, z, train=True, mutable=["batch_stats"]
            )
            return jnp.sum(images**3)

        return fn

    np.testing.assert_allclose(jax.jit(fast.apply)(variables, z), jax.jit(plain.apply)(variables, z), atol=1e-5)
    for e, g in zip(
        jax.tree.leaves(jax.jit(jax.grad(loss(plain)))(variables["params"])),
        jax.tree.leaves(jax.jit(jax.grad(loss(fast)))(variables["params"])),
    ):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4 * float(jnp.abs(e).max()))


def test_bfloat16_compute_keeps_float32_parameters():
    x = random((2, 4, 4, 3), 4)
    layer = upsampling.FastConvTranspose(2, (3, 3), strides=(2, 2), dtype=jnp.bfloat16)
    variables = layer.init(jax.random.key(0), x)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(variables))
    assert layer.apply(variables, x).dtype == jnp.bfloat16


@pytest.mark.parametrize(
    "layer,message",
    [
        (upsampling.FastConvTranspose(2, (3, 3), strides=(2, 2), padding="VALID"), "padding='SAME'"),
        (upsampling.FastConvTranspose(2, (3, 5), strides=(2, 2)), "square 2-D kernel"),
        (upsampling.FastConvTranspose(2, (3, 3), strides=(2, 1)), "equal strides"),
        (upsampling.FastConvTranspose(2, (3, 3), strides=(2, 2), method="fft"), "method must be one of"),
    ],
)
def test_unsupported_layers_are_refused_by_name(layer, message):
    with pytest.raises(ValueError, match=message):
        layer.init(jax.random.key(0), jnp.zeros((1, 4, 4, 1)))


@pytest.mark.parametrize(
    "model,inputs",
    [
        (DCGANGenerator(conv_impl="nearest"), jnp.zeros((1, 100))),
        (DCGANDiscriminator(conv_impl="nearest"), jnp.zeros((1, 28, 28, 1))),
        (ConvEncoder(conv_impl="nearest"), jnp.zeros((1, 8, 8, 1))),
        (ConvDecoder((8, 8, 1), conv_impl="nearest"), jnp.zeros((1, 2))),
        (Classifier(3, conv_impl="nearest"), jnp.zeros((1, 8, 8, 1))),
    ],
)
def test_unknown_conv_impl_is_refused_by_name(model, inputs):
    with pytest.raises(ValueError, match="conv_impl must be one of"):
        model.init(jax.random.key(0), inputs)


@pytest.mark.parametrize("conv_impl", CONV_IMPLS)
def test_conv_decoder_keeps_flax_parameter_names(conv_impl):
    """The conv VAE/AE decoder's transposed convolutions carry the names Flax gives nn.ConvTranspose under every
    conv_impl, so checkpoints written before the change (and under another conv_impl) still load."""
    decoder = ConvDecoder((28, 28, 1), (64, 32), conv_impl=conv_impl)
    params = decoder.init(jax.random.key(0), jnp.zeros((1, 20)))["params"]
    shapes = {name: {k: v.shape for k, v in layer.items()} for name, layer in params.items()}
    assert shapes["ConvTranspose_0"] == {"kernel": (3, 3, 64, 32), "bias": (32,)}
    assert shapes["ConvTranspose_1"] == {"kernel": (3, 3, 32, 1), "bias": (1,)}
    assert set(shapes) == {"Dense_0", "Dense_1", "ConvTranspose_0", "ConvTranspose_1"}


@pytest.mark.parametrize("kernel,stride,size", [(5, 2, 14), (4, 3, 8)])
def test_fast_conv_is_flax_conv(kernel, stride, size):
    """FastConv, with nn.Conv's weights, gives nn.Conv's outputs and both of its gradients."""
    x = random((2, size, size, 3), 5)
    flax_layer = nn.Conv(4, (kernel, kernel), strides=(stride, stride), padding="SAME")
    fast_layer = upsampling.FastConv(4, (kernel, kernel), strides=(stride, stride))
    params = jax.tree.map(lambda p: random(p.shape, 6), flax_layer.init(jax.random.key(0), x)["params"])

    def grads(layer):
        return jax.jit(jax.grad(lambda p, x: jnp.sum(jnp.sin(layer.apply({"params": p}, x))), argnums=(0, 1)))

    np.testing.assert_allclose(
        jax.jit(fast_layer.apply)({"params": params}, x),
        jax.jit(flax_layer.apply)({"params": params}, x),
        rtol=1e-5,
        atol=1e-5,
    )
    for e, g in zip(jax.tree.leaves(grads(flax_layer)(params, x)), jax.tree.leaves(grads(fast_layer)(params, x))):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4)


def test_dcgan_discriminator_forms_are_one_network():
    x = random((4, 28, 28, 1), 7)
    plain = DCGANDiscriminator(features=(8, 16), conv_impl="flax")
    fast = DCGANDiscriminator(features=(8, 16), conv_impl="dual_grad")
    variables = plain.init(jax.random.key(1), x)
    assert jax.tree.structure(variables) == jax.tree.structure(fast.init(jax.random.key(1), x))
    np.testing.assert_allclose(jax.jit(fast.apply)(variables, x), jax.jit(plain.apply)(variables, x), atol=1e-5)


# Each conv model, small: (conv_impl -> the module, the shape of its input).
CONV_MODELS = {
    "conv_encoder": (lambda c: ConvEncoder(features=(4, 8), hidden=16, outputs=3, conv_impl=c), (3, 9, 9, 2)),
    "conv_decoder": (lambda c: ConvDecoder((9, 9, 2), features=(8, 4), hidden=16, conv_impl=c), (3, 5)),
    "classifier": (lambda c: Classifier(4, conv_features=(4, 8), feature_dim=16, conv_impl=c), (3, 9, 9, 2)),
    "dcgan_generator": (lambda c: DCGANGenerator((8, 8, 1), features=(8, 4), kernel_size=3, conv_impl=c), (3, 6)),
    "dcgan_discriminator": (
        lambda c: DCGANDiscriminator(features=(4, 8), kernel_size=3, spectral_norm=True, conv_impl=c),
        (3, 8, 8, 1),
    ),
}


@pytest.mark.parametrize("name", CONV_MODELS)
def test_every_conv_impl_is_one_network(name):
    """Under each conv_impl a conv model has the same variables (names and shapes) and, from the same variables,
    the same outputs and parameter gradients: one switch that changes speed, not the model."""
    make, shape = CONV_MODELS[name]
    x = random(shape, 8)
    models = {conv_impl: make(conv_impl) for conv_impl in CONV_IMPLS}
    shapes = {c: jax.tree.map(jnp.shape, jax.eval_shape(m.init, jax.random.key(2), x)) for c, m in models.items()}
    for conv_impl in CONV_IMPLS[1:]:
        assert shapes[conv_impl] == shapes["flax"], conv_impl
    # Random variables of those shapes (made on the host: nothing to compile), positive where they are statistics.
    reference = {
        collection: jax.tree.map(lambda shape: random(shape, 9), tree, is_leaf=lambda s: isinstance(s, tuple))
        for collection, tree in shapes["flax"].items()
    }
    if "batch_stats" in reference:
        reference["batch_stats"] = jax.tree.map(lambda v: jnp.abs(v) + 0.5, reference["batch_stats"])

    @functools.partial(jax.jit, static_argnums=0)
    def outputs_and_grads(model, params):
        """The outputs and the parameter gradients of a nonlinear read-out of them, from `reference`'s state."""

        def loss(params):
            outputs = model.apply({**reference, "params": params}, x)
            return sum(jnp.sum(jnp.sin(leaf)) for leaf in jax.tree.leaves(outputs)), outputs

        return jax.grad(loss, has_aux=True)(params)[::-1]

    expected_outputs, expected_grads = outputs_and_grads(models["flax"], reference["params"])
    for conv_impl in CONV_IMPLS[1:]:
        outputs, grads = outputs_and_grads(models[conv_impl], reference["params"])
        for e, g in zip(jax.tree.leaves(expected_outputs), jax.tree.leaves(outputs), strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)
        for e, g in zip(jax.tree.leaves(expected_grads), jax.tree.leaves(grads), strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4 * max(1.0, float(jnp.abs(e).max())))
