"""The fast convolution layers compute Flax's nn.ConvTranspose and nn.Conv exactly: same parameters, values and
gradients."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.models import upsampling
from gen_jax.models.gan import UPSAMPLINGS, DCGANDiscriminator, DCGANGenerator

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
    weights = {"params": {"kernel": random(variables["params"]["kernel"].shape, 1),
                          "bias": random(variables["params"]["bias"].shape, 2)}}

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
    stacked, _ = upsampling.subpixel_kernel(kernel, 2)
    assert stacked.shape == (3, 3, 2, 4 * 3)
    values = np.asarray(stacked)
    np.testing.assert_array_equal(np.sort(values[values != 0]), np.sort(np.asarray(kernel).ravel()))


@pytest.mark.parametrize("form", [u for u in UPSAMPLINGS if u != "transpose"])
def test_dcgan_generator_forms_are_one_network(form):
    """Every upsampling form of the tutorial's generator has the same parameters (initialised alike) and, with the
    same parameters, the same samples and gradients: the function class is unchanged.  (Narrower than the
    tutorial's 256-128-64 channels, to keep the test fast; the layers are the same.)"""
    z = random((4, 100), 3)
    plain, fast = DCGANGenerator(features=(16, 8, 4)), DCGANGenerator(features=(16, 8, 4), upsampling=form)
    variables = plain.init(jax.random.key(1), z)
    for a, b in zip(jax.tree.leaves(variables), jax.tree.leaves(fast.init(jax.random.key(1), z))):
        np.testing.assert_array_equal(a, b)

    def loss(generator):
        def fn(params):
            images, _ = generator.apply({"params": params, "batch_stats": variables["batch_stats"]}, z, train=True,
                                        mutable=["batch_stats"])
            return jnp.sum(images ** 3)
        return fn

    np.testing.assert_allclose(jax.jit(fast.apply)(variables, z), jax.jit(plain.apply)(variables, z), atol=1e-5)
    for e, g in zip(jax.tree.leaves(jax.jit(jax.grad(loss(plain)))(variables["params"])),
                    jax.tree.leaves(jax.jit(jax.grad(loss(fast)))(variables["params"]))):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4 * float(jnp.abs(e).max()))


def test_bfloat16_compute_keeps_float32_parameters():
    x = random((2, 4, 4, 3), 4)
    layer = upsampling.FastConvTranspose(2, (3, 3), strides=(2, 2), dtype=jnp.bfloat16)
    variables = layer.init(jax.random.key(0), x)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(variables))
    assert layer.apply(variables, x).dtype == jnp.bfloat16


@pytest.mark.parametrize("layer,message", [
    (upsampling.FastConvTranspose(2, (3, 3), strides=(2, 2), padding="VALID"), "padding='SAME'"),
    (upsampling.FastConvTranspose(2, (3, 5), strides=(2, 2)), "square 2-D kernel"),
    (upsampling.FastConvTranspose(2, (3, 3), strides=(2, 1)), "equal strides"),
    (upsampling.FastConvTranspose(2, (3, 3), strides=(2, 2), method="fft"), "method must be one of"),
])
def test_unsupported_layers_are_refused_by_name(layer, message):
    with pytest.raises(ValueError, match=message):
        layer.init(jax.random.key(0), jnp.zeros((1, 4, 4, 1)))


def test_unknown_generator_upsampling_is_refused():
    with pytest.raises(ValueError, match="upsampling must be one of"):
        DCGANGenerator(upsampling="nearest").init(jax.random.key(0), jnp.zeros((1, 100)))


def test_conv_decoder_keeps_flax_parameter_names():
    """The conv VAE/AE decoder computes its transposed convolutions with the dual gradient, under the names Flax
    gives nn.ConvTranspose, so checkpoints written before the change still load."""
    from gen_jax.models.autoencoder import ConvDecoder

    params = ConvDecoder((28, 28, 1), (64, 32)).init(jax.random.key(0), jnp.zeros((1, 20)))["params"]
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

    np.testing.assert_allclose(jax.jit(fast_layer.apply)({"params": params}, x),
                               jax.jit(flax_layer.apply)({"params": params}, x), rtol=1e-5, atol=1e-5)
    for e, g in zip(jax.tree.leaves(grads(flax_layer)(params, x)), jax.tree.leaves(grads(fast_layer)(params, x))):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4)


def test_dcgan_discriminator_forms_are_one_network():
    x = random((4, 28, 28, 1), 7)
    plain = DCGANDiscriminator(features=(8, 16))
    fast = DCGANDiscriminator(features=(8, 16), convolution="canonical_grad")
    variables = plain.init(jax.random.key(1), x)
    assert jax.tree.structure(variables) == jax.tree.structure(fast.init(jax.random.key(1), x))
    np.testing.assert_allclose(jax.jit(fast.apply)(variables, x), jax.jit(plain.apply)(variables, x), atol=1e-5)
