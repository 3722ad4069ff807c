"""Encoders and decoders shared by the AutoEncoder and the VAE, and the AutoEncoder itself.

Pure Flax Linen modules: no randomness, no state beyond parameters.  Images are f32[B, H, W, C]; latent codes
f32[B, D].  The VAE (`vae.py`) reuses these encoders with a doubled output (mean and log-variance).  `dtype` is
the layers' computation dtype (parameters stay f32); outputs are always f32, so losses are computed in f32.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_jax import config as config_lib
from gen_jax.models import sizing, upsampling

Activation = Callable[[jax.Array], jax.Array]


def identity(x: jax.Array) -> jax.Array:
    """The activation of a linear layer: x unchanged, any shape."""
    return x


class MLPEncoder(nn.Module):
    """x: f32[B, H, W, C] -> f32[B, outputs]: flatten, hidden Dense layers with `activation`, linear output.

    With `hidden=()` this is one linear map: the encoder of the linear AutoEncoder that PCA solves.
    """

    hidden: Sequence[int]
    outputs: int
    activation: Activation = nn.relu
    dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = x.reshape(x.shape[0], -1)
        for width in self.hidden:
            h = self.activation(nn.Dense(width, dtype=self.dtype)(h))
        return nn.Dense(self.outputs, dtype=self.dtype)(h).astype(jnp.float32)


class MLPDecoder(nn.Module):
    """z: f32[B, D] -> f32[B, H, W, C] (logits or means, whatever the likelihood reads)."""

    hidden: Sequence[int]
    image_shape: tuple[int, int, int]
    activation: Activation = nn.relu
    dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        h = z
        for width in self.hidden:
            h = self.activation(nn.Dense(width, dtype=self.dtype)(h))
        h = nn.Dense(math.prod(self.image_shape), dtype=self.dtype)(h)
        return h.reshape(z.shape[0], *self.image_shape).astype(jnp.float32)


class ConvEncoder(nn.Module):
    """x: f32[B, H, W, C] -> f32[B, outputs]: stride-2 3×3 convolutions, one hidden Dense, linear output.

    nn.Conv semantics; conv_impl only changes how gradients are computed: every value of `config.CONV_IMPLS` gives
    the same function, parameter tree and checkpoints ("dual_grad" and "subpixel": `upsampling.FastConv`, whose
    gradients stay fast inside the training loop's `lax.scan` on XLA:CPU).
    """

    features: Sequence[int] = (32, 64)
    hidden: int = 256
    outputs: int = 2
    dtype: jnp.dtype | None = None
    conv_impl: str = "dual_grad"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = x
        for i, width in enumerate(self.features):
            conv = upsampling.conv(width, (3, 3), (2, 2), conv_impl=self.conv_impl, name=f"Conv_{i}", dtype=self.dtype)
            h = nn.relu(conv(h))
        h = h.reshape(h.shape[0], -1)
        h = nn.relu(nn.Dense(self.hidden, dtype=self.dtype)(h))
        return nn.Dense(self.outputs, dtype=self.dtype)(h).astype(jnp.float32)


class ConvDecoder(nn.Module):
    """z: f32[B, D] -> f32[B, H, W, C]: Dense to a coarse map, stride-2 transposed convolutions up, crop.

    The coarse map is ceil(H / 2^n) on a side for n = len(features), so any image size works (8×8 digits,
    28×28 Fashion-MNIST, 32-128 px colour with `sizing.widths`); the last layer is linear with C channels.

    nn.ConvTranspose semantics; conv_impl only changes how gradients are computed (and, under "subpixel", how the
    transposed convolutions are evaluated): every value of `config.CONV_IMPLS` gives the same function, parameter
    tree and checkpoints.  "dual_grad" computes the kernel gradient by `upsampling.dual_grad_conv_transpose`, which
    XLA:CPU runs faster than Flax's (measured in benchmarks/README.md).
    """

    image_shape: tuple[int, int, int]
    features: Sequence[int] = (64, 32)
    hidden: int = 256
    dtype: jnp.dtype | None = None
    conv_impl: str = "dual_grad"

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        height, width, channels = self.image_shape
        factor = 2 ** len(self.features)
        coarse_h, coarse_w = -(-height // factor), -(-width // factor)
        h = nn.relu(nn.Dense(self.hidden, dtype=self.dtype)(z))
        h = nn.relu(nn.Dense(coarse_h * coarse_w * self.features[0], dtype=self.dtype)(h))
        h = h.reshape(z.shape[0], coarse_h, coarse_w, self.features[0])
        for i, out_features in enumerate((*self.features[1:], channels)):
            h = upsampling.conv_transpose(
                out_features, (3, 3), (2, 2), conv_impl=self.conv_impl, name=f"ConvTranspose_{i}", dtype=self.dtype
            )(h)
            if i < len(self.features) - 1:
                h = nn.relu(h)
        return h[:, :height, :width, :].astype(jnp.float32)


class AutoEncoder(nn.Module):
    """Deterministic AutoEncoder: `encoder` (x -> z, the recognition network) and `decoder` (z -> x̂)."""

    encoder: nn.Module
    decoder: nn.Module

    def encode(self, x: jax.Array) -> jax.Array:
        """x: f32[B, H, W, C] -> codes f32[B, D]."""
        return self.encoder(x)

    def decode(self, z: jax.Array) -> jax.Array:
        """z: f32[B, D] -> decoder output f32[B, H, W, C] (the image under "mse", logits under "bernoulli")."""
        return self.decoder(z)

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Returns (decoder output f32[B, H, W, C], code f32[B, D])."""
        z = self.encode(x)
        return self.decode(z), z


ARCHITECTURES = ("mlp", "conv")


def model_fields(**overrides) -> dict:
    """The encoder/decoder fields of a family's `config.model` (families add their own):

    architecture ("mlp" | "conv"); hidden: MLP widths, encoder order (the decoder mirrors them; () = linear);
    conv_features: stride-2 convolution widths, encoder order, or () for a depth from the image size
    (`sizing.py`: 32, 64 or 128 px, widths conv_width · 1, 2, 4, 8, … down to a 4×4 map); conv_hidden: the conv
    models' Dense width; latent_dim: the code's size.
    """
    fields = dict(
        architecture="mlp", hidden=(512, 256), conv_features=(32, 64), conv_width=32, conv_hidden=256, latent_dim=2
    )
    fields.update(overrides)
    return fields


def validate_config(config) -> None:
    """Checks the encoder/decoder fields of `config.model` (architecture, hidden, conv_features, conv_width,
    conv_hidden, latent_dim), naming the field, for every family built on `encoder_decoder` (which checks the image
    size against an empty conv_features)."""
    config_lib.require_choice(config, "model.architecture", ARCHITECTURES)
    config_lib.require_widths(config, "model.hidden")
    config_lib.require_widths(config, "model.conv_features")
    config_lib.require_positive_int(config, "model.conv_width", "model.conv_hidden", "model.latent_dim")


def encoder_decoder(
    model_config, image_shape: tuple[int, int, int], code_size: int, dtype=None, conv_impl: str = "dual_grad"
):
    """The encoder (x: f32[B, H, W, C] -> f32[B, code_size]) and decoder (z -> f32[B, H, W, C]) a model config names.

    Args:
      model_config: `config.model` with architecture ("mlp" | "conv"), hidden (MLP widths, encoder order; the
        decoder mirrors them; () = linear), conv_features (stride-2 widths, encoder order; () = from the image size
        with conv_width, `sizing.py`) and conv_hidden.
      image_shape: (H, W, C) of the data.
      code_size: the encoder's output width (latent_dim for an AutoEncoder, 2·latent_dim for a VAE).
      dtype: the layers' computation dtype (None = float32).
      conv_impl: how the conv architecture computes its convolutions (`config.conv_impl`, one of
        `config.CONV_IMPLS`); the same function and parameters under each.

    Raises:
      ConfigError: conv_features is () and the images are not square of a side in `sizing.SIZES` (the message
        names the sizes).
    """
    if model_config.architecture == "mlp":
        hidden = tuple(model_config.hidden)
        return (
            MLPEncoder(hidden=hidden, outputs=code_size, dtype=dtype),
            MLPDecoder(hidden=hidden[::-1], image_shape=image_shape, dtype=dtype),
        )
    features = tuple(model_config.conv_features) or sizing.widths(
        model_config.conv_width, sizing.levels(image_shape, "model.conv_features")
    )
    return (
        ConvEncoder(
            features=features, hidden=model_config.conv_hidden, outputs=code_size, dtype=dtype, conv_impl=conv_impl
        ),
        ConvDecoder(
            image_shape=image_shape,
            features=features[::-1],
            hidden=model_config.conv_hidden,
            dtype=dtype,
            conv_impl=conv_impl,
        ),
    )
