"""GAN generators (noise z -> image) and discriminators (image -> real/fake logit) as pure Flax modules.

Two families, each with an optional class-conditional form (`num_classes > 0`):

* `MLPGenerator` / `MLPDiscriminator`: fully connected, in the spirit of the original GAN (Goodfellow et al. 2014),
  with LeakyReLU in place of maxout.
* `DCGANGenerator` / `DCGANDiscriminator`: convolutional (Radford et al. 2016).  The defaults are exactly the
  network of the TensorFlow DCGAN tutorial for 28×28×1 images: G = Dense 7·7·256 (no bias) + BatchNorm +
  LeakyReLU(0.3) -> ConvTranspose 128 5×5 s1 -> 64 5×5 s2 (each + BatchNorm + LeakyReLU, no bias) -> 1 5×5 s2,
  tanh; D = Conv 64 5×5 s2 + LeakyReLU(0.3) + Dropout(0.3) -> Conv 128 5×5 s2 + LeakyReLU + Dropout -> Dense 1.
  Keras' defaults are kept where they differ from Flax's (Glorot-uniform kernels, BatchNorm ε = 1e-3), so the
  network can be compared with other implementations of the same tutorial.

Conventions: images are f32[B, H, W, C] in [-1, 1] (the generator ends in tanh; `tasks/gan.py` scales data from
[0, 1]); z is f32[B, latent_dim]; labels are i32[B].  The generator conditions by concatenating one-hot labels to z
(Mirza & Osindero 2014); the discriminator by a projection, logit = ψ(φ(x)) + ⟨embed(y), φ(x)⟩ (Miyato & Koyama
2018).  `train=True` uses batch statistics in BatchNorm (which then updates the `batch_stats` collection) and turns
on dropout (an rng named "dropout").  With `spectral_norm=True` every discriminator weight is divided by its
largest singular value (Miyato et al. 2018), estimated by power iteration whose vectors live in `batch_stats`
and advance only when `update_stats=True`.  Losses are in `gen_jax/losses.py`, the step in `gen_jax/steps.py`.

`dcgan_features` gives the DCGAN's widths from a config: as listed, or from the image size (32, 64, 128 px; one
stride-2 level per halving down to 4×4, `sizing.py`) where the config leaves them empty.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_jax.models import sizing, upsampling

# Keras' default kernel initialiser, which the TensorFlow tutorial's network uses.
_GLOROT = nn.initializers.glorot_uniform()


def _with_labels(z: jax.Array, labels: jax.Array | None, num_classes: int) -> jax.Array:
    """z f32[B, D] -> f32[B, D + num_classes] with one-hot labels appended (z unchanged when unconditional)."""
    if not num_classes:
        return z
    if labels is None:
        raise ValueError(f"this generator is class-conditional ({num_classes} classes): pass labels i32[B]")
    return jnp.concatenate([z, jax.nn.one_hot(labels, num_classes, dtype=z.dtype)], axis=-1)


def _apply(layer: nn.Module, h: jax.Array, spectral_norm: bool, update_stats: bool) -> jax.Array:
    """layer(h), with the layer's weights spectrally normalised when `spectral_norm` is set."""
    if spectral_norm:
        return nn.SpectralNorm(layer)(h, update_stats=update_stats)
    return layer(h)


def _logit(
    features: jax.Array, labels: jax.Array | None, num_classes: int, spectral_norm: bool, update_stats: bool, dtype: Any
) -> jax.Array:
    """The discriminator head: f32[B, F] features -> f32[B] logits, plus the class projection when conditional."""
    logit = _apply(nn.Dense(1, kernel_init=_GLOROT, dtype=dtype), features, spectral_norm, update_stats)[:, 0]
    if not num_classes:
        return logit
    if labels is None:
        raise ValueError(f"this discriminator is class-conditional ({num_classes} classes): pass labels i32[B]")
    embedded = _apply(nn.Embed(num_classes, features.shape[-1], dtype=dtype), labels, spectral_norm, update_stats)
    return logit + jnp.sum(embedded * features, axis=-1)


class MLPGenerator(nn.Module):
    """z f32[B, D] (+ labels i32[B]) -> images f32[B, H, W, C] in [-1, 1].

    Attributes:
      image_shape: (H, W, C) of the output.
      hidden: widths of the hidden Dense layers, each followed by LeakyReLU.
      num_classes: > 0 makes the generator class-conditional.
    """

    image_shape: tuple[int, int, int]
    hidden: Sequence[int] = (256, 512)
    num_classes: int = 0
    negative_slope: float = 0.2
    dtype: Any = None

    @nn.compact
    def __call__(self, z: jax.Array, labels: jax.Array | None = None, *, train: bool = False) -> jax.Array:
        del train  # no batch statistics or dropout here; the argument keeps one interface for all generators
        h = _with_labels(z, labels, self.num_classes)
        for width in self.hidden:
            h = nn.leaky_relu(nn.Dense(width, dtype=self.dtype)(h), self.negative_slope)
        h = nn.Dense(math.prod(self.image_shape), dtype=self.dtype)(h)
        return jnp.tanh(h).reshape(z.shape[0], *self.image_shape).astype(jnp.float32)


class MLPDiscriminator(nn.Module):
    """images f32[B, H, W, C] (+ labels i32[B]) -> logits f32[B] (large = real).

    Attributes:
      hidden: widths of the hidden Dense layers, each followed by LeakyReLU and dropout.
      dropout_rate: dropout after each hidden layer when `train=True`.
      spectral_norm: normalise every weight by its largest singular value.
    """

    hidden: Sequence[int] = (512, 256)
    num_classes: int = 0
    negative_slope: float = 0.2
    dropout_rate: float = 0.0
    spectral_norm: bool = False
    dtype: Any = None

    @nn.compact
    def __call__(
        self, x: jax.Array, labels: jax.Array | None = None, *, train: bool = False, update_stats: bool = False
    ) -> jax.Array:
        h = x.reshape(x.shape[0], -1)
        for width in self.hidden:
            h = _apply(nn.Dense(width, dtype=self.dtype), h, self.spectral_norm, update_stats)
            h = nn.leaky_relu(h, self.negative_slope)
            h = nn.Dropout(self.dropout_rate, deterministic=not train)(h)
        return _logit(h, labels, self.num_classes, self.spectral_norm, update_stats, self.dtype).astype(jnp.float32)


class DCGANGenerator(nn.Module):
    """z f32[B, D] (+ labels i32[B]) -> images f32[B, H, W, C] in [-1, 1]; defaults = the TF tutorial's network.

    Dense to an (H / 2^s) × (W / 2^s) × features[0] map, then one transposed convolution per remaining entry of
    `features` (the first at stride 1, the others at stride 2) and a last stride-2 one to C channels: s =
    len(features) - 1 stride-2 steps, so H and W must be multiples of 2^s (28 -> 7 -> 7 -> 14 -> 28).  Every
    layer but the last is bias-free and followed by BatchNorm and LeakyReLU; the last by tanh.

    nn.ConvTranspose semantics; conv_impl only changes how gradients are computed (and, under "subpixel", how the
    transposed convolutions are evaluated): every value gives the same function, parameter tree and checkpoints.

    Attributes:
      image_shape: (H, W, C) of the output.
      features: channels of the coarse map and of each hidden transposed convolution.
      kernel_size: side of every transposed-convolution kernel.
      dtype: computation dtype (parameters stay f32); None = f32.
      conv_impl: one of `config.CONV_IMPLS`: "flax" = Flax's `nn.ConvTranspose` (the tutorial's layer);
        "dual_grad" = the same with a kernel gradient XLA:CPU computes much faster (measured in
        benchmarks/README.md); "subpixel" = one stride-1 convolution and depth-to-space (`upsampling.py`).
    """

    image_shape: tuple[int, int, int] = (28, 28, 1)
    features: Sequence[int] = (256, 128, 64)
    kernel_size: int = 5
    num_classes: int = 0
    negative_slope: float = 0.3
    batch_norm_momentum: float = 0.99
    batch_norm_epsilon: float = 1e-3  # Keras' default (Flax's is 1e-5)
    dtype: Any = None
    conv_impl: str = "dual_grad"

    def coarse_shape(self) -> tuple[int, int]:
        """(h, w) in pixels of the map the Dense layer produces: (H, W) / 2^(len(features) - 1).

        Raises:
          ValueError: naming the sizes, when H or W is not a multiple of 2^(len(features) - 1).
        """
        factor = 2 ** (len(self.features) - 1)
        height, width, _ = self.image_shape
        if height % factor or width % factor:
            raise ValueError(
                f"DCGANGenerator with features={tuple(self.features)} upsamples {factor}× "
                f"(len(features) - 1 stride-2 steps), so the image height and width must be multiples "
                f"of {factor}; got {height}×{width}"
            )
        return height // factor, width // factor

    def _normalize_activate(self, h: jax.Array, train: bool) -> jax.Array:
        h = nn.BatchNorm(
            use_running_average=not train,
            momentum=self.batch_norm_momentum,
            epsilon=self.batch_norm_epsilon,
            dtype=self.dtype,
        )(h)
        return nn.leaky_relu(h, self.negative_slope)

    def _upsample(self, h: jax.Array, features: int, stride: int, index: int) -> jax.Array:
        """The ×stride upsampling layer: a 'SAME' transposed convolution without bias."""
        layer = upsampling.conv_transpose(
            features,
            (self.kernel_size, self.kernel_size),
            (stride, stride),
            conv_impl=self.conv_impl,
            name=f"ConvTranspose_{index}",
            padding="SAME",
            use_bias=False,
            kernel_init=_GLOROT,
            dtype=self.dtype,
        )
        return layer(h)

    @nn.compact
    def __call__(self, z: jax.Array, labels: jax.Array | None = None, *, train: bool = False) -> jax.Array:
        height, width = self.coarse_shape()
        h = _with_labels(z, labels, self.num_classes)
        h = nn.Dense(height * width * self.features[0], use_bias=False, kernel_init=_GLOROT, dtype=self.dtype)(h)
        h = self._normalize_activate(h, train).reshape(z.shape[0], height, width, self.features[0])
        for i, features in enumerate(self.features[1:]):
            h = self._normalize_activate(self._upsample(h, features, 1 if i == 0 else 2, i), train)
        h = self._upsample(h, self.image_shape[-1], 2, len(self.features) - 1)
        return jnp.tanh(h).astype(jnp.float32)


class DCGANDiscriminator(nn.Module):
    """images f32[B, H, W, C] (+ labels i32[B]) -> logits f32[B]; defaults = the TF tutorial's network.

    One stride-2 'SAME' convolution per entry of `features`, each followed by LeakyReLU and dropout, then a
    Dense layer to one logit.

    nn.Conv semantics; conv_impl only changes how gradients are computed: every value gives the same function,
    parameter tree and checkpoints.

    Attributes:
      features: channels of each convolution.
      kernel_size: side of every convolution kernel.
      dropout_rate: dropout after each convolution when `train=True`.
      spectral_norm: normalise every weight by its largest singular value.
      dtype: computation dtype (parameters stay f32); None = f32.
      conv_impl: one of `config.CONV_IMPLS`: "flax" = Flax's `nn.Conv` (the tutorial's layer); "dual_grad" and
        "subpixel" = the same function and parameters with gradients that XLA:CPU keeps on its fast path inside
        the training loop's `lax.scan` (`upsampling.FastConv`).
    """

    features: Sequence[int] = (64, 128)
    kernel_size: int = 5
    num_classes: int = 0
    negative_slope: float = 0.3
    dropout_rate: float = 0.3
    spectral_norm: bool = False
    dtype: Any = None
    conv_impl: str = "dual_grad"

    @nn.compact
    def __call__(
        self, x: jax.Array, labels: jax.Array | None = None, *, train: bool = False, update_stats: bool = False
    ) -> jax.Array:
        h = x
        for i, features in enumerate(self.features):
            conv = upsampling.conv(
                features,
                (self.kernel_size, self.kernel_size),
                (2, 2),
                conv_impl=self.conv_impl,
                name=f"Conv_{i}",
                padding="SAME",
                kernel_init=_GLOROT,
                dtype=self.dtype,
            )
            h = nn.leaky_relu(_apply(conv, h, self.spectral_norm, update_stats), self.negative_slope)
            h = nn.Dropout(self.dropout_rate, deterministic=not train)(h)
        h = h.reshape(h.shape[0], -1)
        return _logit(h, labels, self.num_classes, self.spectral_norm, update_stats, self.dtype).astype(jnp.float32)


def dcgan_features(model_config, image_shape: tuple[int, int, int], dataset_name: str = "the"):
    """(g_features, d_features) of the DCGAN a `config.model` names for images of `image_shape` (H, W, C).

    Each is the config's tuple when it is given; an empty one (`()`) comes from the image size with
    `model_config.conv_width` = w: at 64 px (4 levels) G = (8w, 8w, 4w, 2w, w), a 4×4×8w map grown by a stride-1
    and four stride-2 transposed convolutions, and D = (w, 2w, 4w, 8w), four stride-2 convolutions down to 4×4;
    32 px drops the widest level, 128 px adds one at 8w.

    Raises:
      ConfigError: a width field is () and the images are not square of a side in `sizing.SIZES` (named).
    """
    g_features, d_features = tuple(model_config.g_features), tuple(model_config.d_features)
    if not g_features:
        count = sizing.levels(image_shape, "model.g_features", dataset_name) + 1
        g_features = sizing.widths(model_config.conv_width, count)[::-1]
    if not d_features:
        d_features = sizing.widths(
            model_config.conv_width, sizing.levels(image_shape, "model.d_features", dataset_name)
        )
    return g_features, d_features
