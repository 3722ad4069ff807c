"""Faster ways to compute a 'SAME' transposed convolution (Flax's `nn.ConvTranspose`) with the same parameters.

A stride-s transposed convolution is the input-gradient of a stride-s convolution: XLA computes it as a
convolution of the s-dilated input.  Its forward pass and input gradient run at full speed on XLA:CPU, but its
kernel gradient is a convolution with a dilated *input* that XLA:CPU runs through a generic loop, far slower
than the forward pass (measured on the TensorFlow DCGAN tutorial's 7×7×128 -> 14×14×64 layer in
benchmarks/README.md).  Two formulations avoid that path.  Both compute exactly the function of
`nn.ConvTranspose(features, (k, k), strides=(s, s), padding="SAME")` from the same `kernel` parameter
f32[k, k, C_in, C_out] (so initialisations and checkpoints carry over and the network can represent exactly what
it could):

* `dual_grad_conv_transpose` (`conv_grads.py`) — the same forward pass and input gradient, with a custom VJP
  whose kernel gradient goes through the dual strided convolution, which XLA runs on its fast path.
* `subpixel_conv_transpose` (`subpixel.py`) — the sub-pixel form (Shi et al. 2016): one stride-1 convolution and
  depth-to-space, its kernel gathered from the k×k one so gradients reach the original parameter; slower than the
  dual gradient on XLA:CPU (measured in benchmarks/README.md).

This module holds the Linen layers: `FastConvTranspose(method=...)`, and `FastConv`, the forward convolution with
the gradients of `conv_grads.canonical_grad_conv`.  Models do not pick them directly: every conv model
(`gan.DCGANGenerator` / `DCGANDiscriminator`, `autoencoder.ConvEncoder` / `ConvDecoder`, `classifier.Classifier`)
has one attribute `conv_impl` (`config.conv_impl`, one of `config.CONV_IMPLS`) and builds its layers through
`conv` and `conv_transpose` below: "flax" = `nn.Conv` / `nn.ConvTranspose` as Flax defines them; "dual_grad" = the
same function and parameters with the fast gradients (`FastConv`, `FastConvTranspose(method="dual_grad")`);
"subpixel" = the sub-pixel transposed convolution (forward convolutions as "dual_grad").  `benchmarks/throughput.py`
times the DCGAN under each.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_jax.config import CONV_IMPLS
from gen_jax.models.conv_grads import canonical_grad_conv, dual_grad_conv_transpose
from gen_jax.models.subpixel import subpixel_conv_transpose


def _square(kernel_size, strides, padding) -> tuple[int, int]:
    """(k, s) from Flax-style layer arguments; the fast layers cover square 'SAME' layers only."""
    kernel_size, strides = tuple(kernel_size), tuple(strides or (1,) * len(kernel_size))
    if len(kernel_size) != 2 or kernel_size[0] != kernel_size[1] or len(strides) != 2 or strides[0] != strides[1]:
        raise ValueError(
            f"the fast convolutions need a square 2-D kernel and equal strides, got "
            f"kernel_size={kernel_size}, strides={strides}"
        )
    if padding != "SAME":
        raise ValueError(f"the fast convolutions compute padding='SAME' layers only, got padding={padding!r}")
    return kernel_size[0], strides[0]


# How `FastConvTranspose` computes the transposed convolution; both give `flax_conv_transpose`'s function.
METHODS = {"dual_grad": dual_grad_conv_transpose, "subpixel": subpixel_conv_transpose}


class _SameConvLayer(nn.Module):
    """The attributes and parameters shared with Flax's `nn.Conv` / `nn.ConvTranspose` (those the fast layers
    support: square kernels, equal strides, 'SAME' padding); each subclass says how it `convolve`s."""

    features: int
    kernel_size: Sequence[int]
    strides: Sequence[int] | None = None
    padding: str = "SAME"
    use_bias: bool = True
    kernel_init: Any = nn.initializers.lecun_normal()
    bias_init: Any = nn.initializers.zeros
    dtype: Any = None
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        size, stride = _square(self.kernel_size, self.strides, self.padding)
        kernel = self.param("kernel", self.kernel_init, (size, size, x.shape[-1], self.features), self.param_dtype)
        bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype) if self.use_bias else None
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
        y = self.convolve(x, kernel, stride)
        return y if bias is None else y + bias


class FastConvTranspose(_SameConvLayer):
    """A drop-in for `nn.ConvTranspose(features, (k, k), strides=(s, s), padding="SAME")`: the same attributes (of
    those it supports), parameters (`kernel` f32[k, k, C_in, features], `bias` f32[features] when `use_bias`)
    and function, x f32[B, H, W, C_in] -> f32[B, s·H, s·W, features], computed by `METHODS[method]`."""

    method: str = "dual_grad"

    def convolve(self, x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
        if self.method not in METHODS:
            raise ValueError(f"FastConvTranspose.method must be one of {tuple(METHODS)}, got {self.method!r}")
        return METHODS[self.method](x, kernel, stride)


class FastConv(_SameConvLayer):
    """A drop-in for `nn.Conv(features, (k, k), strides=(s, s), padding="SAME")`: the same attributes (of those it
    supports), parameters and function, x f32[B, H, W, C_in] -> f32[B, ⌈H / s⌉, ⌈W / s⌉, features], with the
    gradients of `canonical_grad_conv` (fast inside the training loop's scan on XLA:CPU)."""

    def convolve(self, x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
        return canonical_grad_conv(x, kernel, stride)


def _check_conv_impl(conv_impl: str) -> None:
    if conv_impl not in CONV_IMPLS:
        raise ValueError(
            f"conv_impl must be one of {CONV_IMPLS}, got {conv_impl!r}; set config.conv_impl (or the "
            "model's conv_impl attribute) to one of them"
        )


def conv(
    features: int,
    kernel_size: Sequence[int],
    strides: Sequence[int] | None = None,
    *,
    conv_impl: str,
    name: str,
    **kwargs: Any,
) -> nn.Module:
    """`nn.Conv(features, kernel_size, strides, name=name, **kwargs)`, its gradients computed as `conv_impl` says.

    Every `conv_impl` gives the same function of the same parameters (`kernel` f32[k, k, C_in, features], `bias`
    f32[features] when `use_bias`) under the same name, so parameter trees and checkpoints are shared by all:
    "flax" = Flax's `nn.Conv`; "dual_grad" and "subpixel" = `FastConv` (gradients on XLA:CPU's fast path inside
    the training loop's `lax.scan`; square kernels, equal strides and 'SAME' padding only).

    Args:
      features: C_out.
      kernel_size: (k, k).
      strides: (s, s); None = (1, 1).
      conv_impl: one of `config.CONV_IMPLS`.
      name: the layer's name.  Pass the name Flax would give `nn.Conv` (`Conv_{i}` for the module's i-th one):
        the fast layer would otherwise be auto-named after its own class.
      **kwargs: further `nn.Conv` attributes (padding, use_bias, kernel_init, bias_init, dtype, param_dtype).

    Returns:
      An unbound Linen layer, x f32[B, H, W, C_in] -> f32[B, ⌈H / s⌉, ⌈W / s⌉, features] under 'SAME' padding.

    Raises:
      ValueError: `conv_impl` is not one of `config.CONV_IMPLS`.
    """
    _check_conv_impl(conv_impl)
    if conv_impl == "flax":
        return nn.Conv(features, kernel_size, strides=strides, name=name, **kwargs)
    return FastConv(features, kernel_size, strides=strides, name=name, **kwargs)


def conv_transpose(
    features: int,
    kernel_size: Sequence[int],
    strides: Sequence[int] | None = None,
    *,
    conv_impl: str,
    name: str,
    **kwargs: Any,
) -> nn.Module:
    """`nn.ConvTranspose(features, kernel_size, strides, name=name, **kwargs)`, computed as `conv_impl` says.

    Every `conv_impl` gives the same function of the same parameters (`kernel` f32[k, k, C_in, features], `bias`
    f32[features] when `use_bias`) under the same name: "flax" = Flax's `nn.ConvTranspose`; "dual_grad" =
    `FastConvTranspose(method="dual_grad")` (kernel gradient by duality); "subpixel" =
    `FastConvTranspose(method="subpixel")` (one stride-1 convolution and depth-to-space).  The fast forms cover
    square kernels, equal strides and 'SAME' padding only.

    Args:
      features: C_out.
      kernel_size: (k, k).
      strides: (s, s); None = (1, 1).
      conv_impl: one of `config.CONV_IMPLS`.
      name: the layer's name.  Pass the name Flax would give `nn.ConvTranspose` (`ConvTranspose_{i}` for the
        module's i-th one): the fast layer would otherwise be auto-named after its own class.
      **kwargs: further `nn.ConvTranspose` attributes (padding, use_bias, kernel_init, bias_init, dtype,
        param_dtype).

    Returns:
      An unbound Linen layer, x f32[B, H, W, C_in] -> f32[B, s·H, s·W, features] under 'SAME' padding.

    Raises:
      ValueError: `conv_impl` is not one of `config.CONV_IMPLS`.
    """
    _check_conv_impl(conv_impl)
    if conv_impl == "flax":
        return nn.ConvTranspose(features, kernel_size, strides=strides, name=name, **kwargs)
    return FastConvTranspose(features, kernel_size, strides=strides, name=name, method=conv_impl, **kwargs)
