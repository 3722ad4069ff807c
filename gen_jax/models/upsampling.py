"""Faster ways to compute a 'SAME' transposed convolution (Flax's `nn.ConvTranspose`) with the same parameters.

A stride-s transposed convolution is the input-gradient of a stride-s convolution: XLA computes it as a
convolution of the s-dilated input.  Its forward pass and input gradient run at full speed on XLA:CPU, but its
kernel gradient is a convolution with a dilated *input* that XLA:CPU runs through a generic loop, far slower
than the forward pass (measured on the TensorFlow DCGAN tutorial's 7×7×128 -> 14×14×64 layer in
benchmarks/README.md).  Two formulations avoid that path.  Both compute exactly the function of
`nn.ConvTranspose(features, (k, k), strides=(s, s), padding="SAME")` from the same `kernel` parameter
f32[k, k, C_in, C_out] (so initialisations and checkpoints carry over and the network can represent exactly what
it could):

* `dual_grad_conv_transpose` — the same forward pass and input gradient, with a custom VJP whose kernel gradient
  uses the duality of the transposed convolution y = Cᵀ(x) with the strided convolution C: ⟨Cᵀ(x), g⟩ = ⟨x, C(g)⟩,
  so ∂/∂w is the kernel gradient of C applied to g with cotangent x, which XLA runs on its fast path.
* `subpixel_conv_transpose` — the sub-pixel form (Shi et al. 2016): output pixel s·q + r reads the input through
  the kernel taps of phase r only, so one stride-1 convolution with ⌈k / s⌉-wide kernels and s²·C_out outputs,
  then depth-to-space, gives every phase; its kernel is gathered from the k×k one (`subpixel_kernel`), so
  gradients reach the original parameter.  It also computes the zero taps of the smaller phases (36 for 25 at
  k = 5, s = 2), and is slower than the dual gradient on XLA:CPU (measured in benchmarks/README.md).

`FastConvTranspose(method=...)` and `FastConv` are the Linen layers.  Models do not pick them directly: every conv
model (`gan.DCGANGenerator` / `DCGANDiscriminator`, `autoencoder.ConvEncoder` / `ConvDecoder`,
`classifier.Classifier`) has one attribute `conv_impl` (`config.conv_impl`, one of `config.CONV_IMPLS`) and builds
its layers through `conv` and `conv_transpose` below: "flax" = `nn.Conv` / `nn.ConvTranspose` as Flax defines
them; "dual_grad" = the same function and parameters with the fast gradients (`FastConv`,
`FastConvTranspose(method="dual_grad")`); "subpixel" = the sub-pixel transposed convolution (forward convolutions
as "dual_grad").  `benchmarks/throughput.py` times the DCGAN under each.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gen_jax.config import CONV_IMPLS

_DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def transpose_same_padding(kernel: int, stride: int) -> int:
    """The padding before the (stride-dilated) input of a 'SAME' transposed convolution, as `lax.conv_transpose`
    computes it: the output of an n-long input then has s·n positions.

    Args:
      kernel: k, the kernel's side.
      stride: s, the transposed convolution's stride.

    Returns:
      The padding in pixels of the dilated input, before it along one spatial axis.
    """
    if stride > kernel - 1:
        return kernel - 1
    return -(-(kernel + stride - 2) // 2)


def _phase_taps(kernel: int, stride: int, offset: int) -> tuple[int, np.ndarray]:
    """Which kernel tap each (phase r, shift d) uses in y[s·q + r] = Σ_d x[q + d] · w[offset − r + s·d].

    Returns (d_min, taps i32[stride, window]) with taps[r, j] the tap index for d = d_min + j, or −1 where that
    tap falls outside the kernel (its weight is zero).
    """
    shifts = [
        (t - offset + r) // stride for r in range(stride) for t in range(kernel) if (t - offset + r) % stride == 0
    ]
    d_min, d_max = min(shifts), max(shifts)
    taps = np.full((stride, d_max - d_min + 1), -1, np.int32)
    for r in range(stride):
        for j, d in enumerate(range(d_min, d_max + 1)):
            t = offset - r + stride * d
            if 0 <= t < kernel:
                taps[r, j] = t
    return d_min, taps


def _gather_taps(kernel: jax.Array, taps: np.ndarray) -> jax.Array:
    """kernel f32[k, k, I, O] -> f32[s, s, w, w, I, O]: per phase pair (r_h, r_w) the w×w taps `taps` names
    (zeros where the index is −1).  A gather of parameters, so gradients flow back to `kernel`."""
    valid = taps >= 0
    index = np.where(valid, taps, 0)
    rows = kernel[index]  # [s, w, k, I, O]
    both = rows[:, :, index]  # [s, w, s, w, I, O]
    mask = (valid[:, :, None, None] & valid[None, None, :, :]).astype(kernel.dtype)
    both = both * mask[..., None, None]
    return both.transpose(0, 2, 1, 3, 4, 5)


def subpixel_kernel(kernel: jax.Array, stride: int) -> tuple[jax.Array, tuple[int, int]]:
    """The stride-1 kernel of the sub-pixel form of a 'SAME' stride-s transposed convolution.

    Args:
      kernel: f32[k, k, C_in, C_out], the `kernel` of `nn.ConvTranspose(..., padding="SAME")` (not flipped:
        `transpose_kernel=False`, Flax's default).
      stride: s.

    Returns:
      (f32[w, w, C_in, s·s·C_out] with outputs ordered (r_h, r_w, c), (pad before, pad after)) for a stride-1
      convolution of the undilated input, w = ⌈k / s⌉ or ⌈k / s⌉ + 1.
    """
    size = kernel.shape[0]
    if kernel.shape[1] != size:
        raise ValueError(f"subpixel_kernel needs a square kernel, got {kernel.shape[:2]}")
    d_min, taps = _phase_taps(size, stride, transpose_same_padding(size, stride))
    phases = _gather_taps(kernel, taps)  # [s, s, w, w, I, O]
    window, c_in, c_out = taps.shape[1], kernel.shape[2], kernel.shape[3]
    stacked = phases.transpose(2, 3, 4, 0, 1, 5).reshape(window, window, c_in, stride * stride * c_out)
    return stacked, (-d_min, window - 1 + d_min)


def depth_to_space(x: jax.Array, stride: int) -> jax.Array:
    """Rearranges channels into space: output pixel (s·h + r_h, s·w + r_w) takes channel block (r_h, r_w).

    Args:
      x: f32[B, H, W, s·s·C] with channels ordered (r_h, r_w, c).
      stride: s.

    Returns:
      f32[B, s·H, s·W, C].
    """
    b, h, w, channels = x.shape
    c = channels // (stride * stride)
    x = x.reshape(b, h, w, stride, stride, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h * stride, w * stride, c)


def subpixel_conv_transpose(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """`lax.conv_transpose(x, kernel, (s, s), "SAME")` (Flax's `nn.ConvTranspose`, no bias) by stride-1 convolution.

    Args:
      x: f32[B, H, W, C_in].
      kernel: f32[k, k, C_in, C_out], as `nn.ConvTranspose` stores it.
      stride: s.

    Returns:
      f32[B, s·H, s·W, C_out], equal to `flax_conv_transpose(x, kernel, stride)` up to float rounding.
    """
    weights, (before, after) = subpixel_kernel(kernel, stride)
    y = lax.conv_general_dilated(x, weights, (1, 1), ((before, after), (before, after)), dimension_numbers=_DIMENSIONS)
    return depth_to_space(y, stride)


def flax_conv_transpose(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """Flax's `nn.ConvTranspose` with padding "SAME" and no bias.

    Args:
      x: f32[B, H, W, C_in].
      kernel: f32[k, k, C_in, C_out].
      stride: s.

    Returns:
      f32[B, s·H, s·W, C_out].
    """
    return lax.conv_transpose(x, kernel, (stride, stride), "SAME", dimension_numbers=_DIMENSIONS)


def kernel_grad(inputs: jax.Array, cotangent: jax.Array, size: int, stride: int, padding) -> jax.Array:
    """∂⟨conv(inputs, w), cotangent⟩/∂w for a stride-s convolution with `padding` ((before, after) per spatial axis).

    Written as one convolution in XLA's canonical layout (NHWC × HWIO, with batch and channels swapped by
    transposes) rather than the layout autodiff emits: XLA:CPU rewrites the latter into the former only outside
    loops, so inside the training loop's `lax.scan` autodiff's kernel gradients run through a generic loop, far
    slower (measured in benchmarks/README.md).

    Args:
      inputs: f32[B, H, W, I], the convolution's input.
      cotangent: f32[B, h, w, O], the output-shaped weights in ⟨conv(inputs, w), cotangent⟩ (in backprop, the
        gradient with respect to the convolution's output).
      size: k, the side of the square kernel.
      stride: s, the convolution's stride in both spatial axes.
      padding: ((before, after), (before, after)), the convolution's padding in pixels along H and W.

    Returns:
      f32[k, k, I, O], the kernel gradient in Flax's HWIO layout.
    """
    pads = tuple(
        (before, size + stride * (n - 1) - length - before)
        for (before, _), length, n in zip(padding, inputs.shape[1:3], cotangent.shape[1:3])
    )
    out = lax.conv_general_dilated(
        inputs.transpose(3, 1, 2, 0),
        cotangent.transpose(1, 2, 0, 3),
        (1, 1),
        pads,
        rhs_dilation=(stride, stride),
        dimension_numbers=_DIMENSIONS,
    )
    return out.transpose(1, 2, 0, 3)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """The padding of a stride-s 'SAME' convolution along one axis (the odd pixel goes after, as in XLA and TensorFlow).

    Args:
      size: the axis' length in pixels.
      kernel: k, the kernel's side.
      stride: s.

    Returns:
      (before, after) in pixels, so that the convolution has ⌈size / s⌉ outputs.
    """
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def canonical_grad_conv(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """Flax's `nn.Conv` with padding "SAME" and no bias, its gradients written in XLA's canonical layout.

    Values and gradients are those of `lax.conv_general_dilated` (up to float rounding), but both gradients stay on
    XLA:CPU's fast path inside `lax.scan` (see `kernel_grad`).

    Args:
      x: f32[B, H, W, C_in].
      kernel: f32[k, k, C_in, C_out].
      stride: s (not differentiated).

    Returns:
      f32[B, ⌈H / s⌉, ⌈W / s⌉, C_out].
    """
    return lax.conv_general_dilated(x, kernel, (stride, stride), "SAME", dimension_numbers=_DIMENSIONS)


def _canonical_forward(x, kernel, stride):
    return canonical_grad_conv(x, kernel, stride), (x, kernel)


def _canonical_backward(stride, residuals, g):
    x, kernel = residuals
    size = kernel.shape[0]
    padding = tuple(same_padding(length, size, stride) for length in x.shape[1:3])
    # The input gradient is the transposed convolution: g dilated by s, the kernel flipped with its channels swapped.
    dx_padding = tuple(
        (size - 1 - before, length - stride * (n - 1) - 1 - (size - 1 - before) + size - 1)
        for (before, _), length, n in zip(padding, x.shape[1:3], g.shape[1:3])
    )
    flipped = jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2)
    dx = lax.conv_general_dilated(
        g, flipped, (1, 1), dx_padding, lhs_dilation=(stride, stride), dimension_numbers=_DIMENSIONS
    )
    return dx, kernel_grad(x, g, size, stride, padding)


canonical_grad_conv.defvjp(_canonical_forward, _canonical_backward)


def _dual_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """The padding of the stride-s convolution C (of an s·size-long axis, to size outputs) whose input-gradient
    is the 'SAME' transposed convolution of a size-long axis."""
    before = kernel - 1 - transpose_same_padding(kernel, stride)
    return before, (size - 1) * stride + kernel - stride * size - before


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def dual_grad_conv_transpose(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """`flax_conv_transpose(x, kernel, stride)`, with the kernel gradient computed through the dual strided convolution.

    The values and both gradients are those of `flax_conv_transpose` (up to float rounding).

    Args:
      x: f32[B, H, W, C_in].
      kernel: f32[k, k, C_in, C_out].
      stride: s (not differentiated).

    Returns:
      f32[B, s·H, s·W, C_out].
    """
    return flax_conv_transpose(x, kernel, stride)


def _dual_grad_forward(x, kernel, stride):
    return flax_conv_transpose(x, kernel, stride), (x, kernel)


def _dual_grad_backward(stride, residuals, g):
    x, kernel = residuals
    padding = (_dual_padding(x.shape[1], kernel.shape[0], stride), _dual_padding(x.shape[2], kernel.shape[0], stride))
    # flax_conv_transpose(·, kernel) = Cᵀ for the stride-s convolution C with kernel w = kernel flipped in space and
    # its channel axes swapped, so ⟨Cᵀ(x), g⟩ = ⟨x, C(g)⟩: the input gradient is C(g) and the kernel gradient that
    # of C applied to g with cotangent x.
    dual = jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2)
    dx = lax.conv_general_dilated(g, dual, (stride, stride), padding, dimension_numbers=_DIMENSIONS)
    d_dual = kernel_grad(g, x, kernel.shape[0], stride, padding)
    return dx, jnp.flip(d_dual.transpose(0, 1, 3, 2), (0, 1))


dual_grad_conv_transpose.defvjp(_dual_grad_forward, _dual_grad_backward)


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
