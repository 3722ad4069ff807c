"""The sub-pixel form of a 'SAME' transposed convolution (Shi et al. 2016): a stride-1 convolution, then
depth-to-space.

Output pixel s·q + r reads the input through the kernel taps of phase r only, so one stride-1 convolution with
⌈k / s⌉-wide kernels and s²·C_out outputs, then depth-to-space, gives every phase; its kernel is gathered from the
k×k one (`subpixel_kernel`), so gradients reach the original parameter.  It also computes the zero taps of the
smaller phases (36 for 25 at k = 5, s = 2), and is slower than the dual gradient on XLA:CPU (measured in
benchmarks/README.md).

Neighbours: `conv_grads.py` (the dual-gradient form, and the 'SAME' padding both follow); `upsampling.py` (the
Linen layers).
"""

from __future__ import annotations

import jax
import numpy as np
from jax import lax

from gen_jax.models.conv_grads import DIMENSIONS, transpose_same_padding


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
    y = lax.conv_general_dilated(x, weights, (1, 1), ((before, after), (before, after)), dimension_numbers=DIMENSIONS)
    return depth_to_space(y, stride)
