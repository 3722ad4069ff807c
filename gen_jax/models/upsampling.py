"""Strided 'SAME' convolutions and transposed convolutions rewritten as stride-1 convolutions.

XLA:CPU runs a stride-1 convolution on its fast path but the gradients of strided layers poorly: the backward
pass of a stride-2 transposed convolution (w.r.t. its kernel) and of a stride-2 convolution (w.r.t. its input)
are convolutions with a dilated input, which it computes several times slower per FLOP.  These layers compute
exactly the same function as Flax's `nn.ConvTranspose` / `nn.Conv` with `padding="SAME"`, with the same `kernel`
parameter f32[k, k, C_in, C_out] (so checkpoints and initialisations carry over), using only stride-1
convolutions and reshapes:

* `SubpixelConvTranspose` — the sub-pixel form (Shi et al. 2016): output pixel (s·q + r) of a stride-s
  transposed convolution reads the input through a subset of the kernel taps that depends only on the phase r.
  So one stride-1 convolution with ⌈k / s⌉-wide kernels and s²·C_out outputs, followed by depth-to-space,
  produces all s² phases.  Its kernel is gathered from the k×k one (`subpixel_kernel`), so gradients reach the
  original parameter and the function class is unchanged.
* `SpaceToDepthConv` — the dual for a stride-s convolution: space-to-depth on the input (s×s blocks into
  channels), then one stride-1 convolution whose kernel is the k×k one regrouped by phase (`space_to_depth_kernel`).

Both are pure functions of (x, kernel) plus thin Linen wrappers; `gan.DCGANGenerator` / `DCGANDiscriminator`
select them with `upsampling="subpixel"` / `downsampling="space_to_depth"` (the defaults stay the tutorial's
exact Flax layers).  `benchmarks/throughput.py` times both forms.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

_DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) zero padding of a stride-`stride` 'SAME' convolution of one spatial axis of `size`.

    The output has ⌈size / stride⌉ positions; the odd pixel of padding goes after, as in TensorFlow and XLA.
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def transpose_same_padding(kernel: int, stride: int) -> int:
    """The padding before the (stride-dilated) input of a 'SAME' transposed convolution, as `lax.conv_transpose`
    computes it: the output of an n-long input then has s·n positions."""
    if stride > kernel - 1:
        return kernel - 1
    return -(-(kernel + stride - 2) // 2)


def _phase_taps(kernel: int, stride: int, offset: int) -> tuple[int, np.ndarray]:
    """Which kernel tap each (phase r, shift d) uses in y[s·q + r] = Σ_d x[q + d] · w[offset − r + s·d].

    Returns (d_min, taps i32[stride, window]) with taps[r, j] the tap index for d = d_min + j, or −1 where that
    tap falls outside the kernel (its weight is zero).
    """
    shifts = [(t - offset + r) // stride for r in range(stride) for t in range(kernel)
              if (t - offset + r) % stride == 0]
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
    """f32[B, H, W, s·s·C] with channels ordered (r_h, r_w, c) -> f32[B, s·H, s·W, C]."""
    b, h, w, channels = x.shape
    c = channels // (stride * stride)
    x = x.reshape(b, h, w, stride, stride, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h * stride, w * stride, c)


def space_to_depth(x: jax.Array, stride: int) -> jax.Array:
    """f32[B, s·H, s·W, C] -> f32[B, H, W, s·s·C] with channels ordered (r_h, r_w, c)."""
    b, h, w, c = x.shape
    x = x.reshape(b, h // stride, stride, w // stride, stride, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h // stride, w // stride, stride * stride * c)


def subpixel_conv_transpose(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """`lax.conv_transpose(x, kernel, (s, s), "SAME")` (Flax's `nn.ConvTranspose`, no bias) by stride-1 convolution.

    x: f32[B, H, W, C_in], kernel: f32[k, k, C_in, C_out] -> f32[B, s·H, s·W, C_out].
    """
    weights, (before, after) = subpixel_kernel(kernel, stride)
    y = lax.conv_general_dilated(x, weights, (1, 1), ((before, after), (before, after)),
                                 dimension_numbers=_DIMENSIONS)
    return depth_to_space(y, stride)


def space_to_depth_kernel(kernel: jax.Array, stride: int, pad_before: int) -> jax.Array:
    """The stride-1 kernel that applies a stride-s convolution to the space-to-depth input.

    y[q] = Σ_t x[s·q + t − p] · w[t]; writing t − p = s·d + r gives y[q] = Σ_d x_s2d[q + d, r] · w[s·d + r + p].

    Args:
      kernel: f32[k, k, C_in, C_out].
      stride: s.
      pad_before: p, the padding before the input (the same on both axes).

    Returns:
      f32[w, w, s·s·C_in, C_out], the input channels ordered (r_h, r_w, c) as `space_to_depth` makes them; the
      shift d of tap row j is d_min + j with d_min = ⌊−p / s⌋ (see `_s2d_shift`).
    """
    size = kernel.shape[0]
    d_min, d_max = _s2d_shift(size, stride, pad_before)
    taps = np.full((stride, d_max - d_min + 1), -1, np.int32)
    for r in range(stride):
        for j, d in enumerate(range(d_min, d_max + 1)):
            t = stride * d + r + pad_before
            if 0 <= t < size:
                taps[r, j] = t
    phases = _gather_taps(kernel, taps)  # [s, s, w, w, I, O]
    window, c_in, c_out = taps.shape[1], kernel.shape[2], kernel.shape[3]
    return phases.transpose(2, 3, 0, 1, 4, 5).reshape(window, window, stride * stride * c_in, c_out)


def _s2d_shift(size: int, stride: int, pad_before: int) -> tuple[int, int]:
    """The range of block shifts d that a k-wide kernel reaches from output q: t − p = s·d + r, t ∈ [0, k)."""
    return (-pad_before) // stride, (size - 1 - pad_before) // stride


def space_to_depth_conv(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """`lax.conv_general_dilated(x, kernel, (s, s), "SAME")` (Flax's `nn.Conv`, no bias) by stride-1 convolution.

    x: f32[B, H, W, C_in], kernel: f32[k, k, C_in, C_out] -> f32[B, ⌈H / s⌉, ⌈W / s⌉, C_out].  Inputs whose side is
    not a multiple of s are padded after with zeros first, which 'SAME' padding would read as zeros anyway.
    """
    size = kernel.shape[0]
    _, h, w, _ = x.shape
    if kernel.shape[1] != size:
        raise ValueError(f"space_to_depth_conv needs a square kernel, got {kernel.shape[:2]}")
    (top, _), (left, _) = same_padding(h, size, stride), same_padding(w, size, stride)
    if top != left:
        # One kernel serves both axes only when their 'SAME' paddings start alike (they do for square inputs).
        raise ValueError(f"space_to_depth_conv needs equal leading padding on both axes; {h}×{w} gives {top} and "
                         f"{left}")
    x = jnp.pad(x, ((0, 0), (0, -h % stride), (0, -w % stride), (0, 0)))
    d_min, d_max = _s2d_shift(size, stride, top)
    out_h, out_w = -(-h // stride), -(-w // stride)
    blocks_h, blocks_w = x.shape[1] // stride, x.shape[2] // stride
    padding = ((-d_min, out_h - 1 + d_max - (blocks_h - 1)), (-d_min, out_w - 1 + d_max - (blocks_w - 1)))
    weights = space_to_depth_kernel(kernel, stride, top)
    return lax.conv_general_dilated(space_to_depth(x, stride), weights, (1, 1), padding,
                                    dimension_numbers=_DIMENSIONS)


def _square(name: str, kernel_size, strides, padding) -> tuple[int, int]:
    """(k, s) from a layer's Flax-style arguments; the stride-1 forms cover square 'SAME' layers only."""
    kernel_size, strides = tuple(kernel_size), tuple(strides or (1,) * len(kernel_size))
    if len(kernel_size) != 2 or kernel_size[0] != kernel_size[1] or len(strides) != 2 or strides[0] != strides[1]:
        raise ValueError(f"{name} needs a square 2-D kernel and equal strides, got kernel_size={kernel_size}, "
                         f"strides={strides}")
    if padding != "SAME":
        raise ValueError(f"{name} computes padding='SAME' layers only, got padding={padding!r}")
    return kernel_size[0], strides[0]


class SubpixelConvTranspose(nn.Module):
    """A drop-in for `nn.ConvTranspose(features, (k, k), strides=(s, s), padding="SAME")`, computed in sub-pixel form.

    The same attributes (of those it supports), parameters (`kernel` f32[k, k, C_in, features], `bias`
    f32[features] when `use_bias`) and function: x f32[B, H, W, C_in] -> f32[B, s·H, s·W, features].
    """

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
        size, stride = _square(type(self).__name__, self.kernel_size, self.strides, self.padding)
        kernel = self.param("kernel", self.kernel_init, (size, size, x.shape[-1], self.features), self.param_dtype)
        bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype) if self.use_bias else None
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
        y = subpixel_conv_transpose(x, kernel, stride)
        return y if bias is None else y + bias


class SpaceToDepthConv(nn.Module):
    """A drop-in for `nn.Conv(features, (k, k), strides=(s, s), padding="SAME")`, computed on the space-to-depth
    input.

    The same attributes (of those it supports), parameters (`kernel` f32[k, k, C_in, features], `bias`
    f32[features] when `use_bias`) and function: x f32[B, H, W, C_in] -> f32[B, ⌈H / s⌉, ⌈W / s⌉, features].
    """

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
        size, stride = _square(type(self).__name__, self.kernel_size, self.strides, self.padding)
        kernel = self.param("kernel", self.kernel_init, (size, size, x.shape[-1], self.features), self.param_dtype)
        bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype) if self.use_bias else None
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
        y = space_to_depth_conv(x, kernel, stride)
        return y if bias is None else y + bias
