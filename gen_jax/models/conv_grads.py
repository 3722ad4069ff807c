"""Flax's 'SAME' convolution and transposed convolution as functions whose gradients stay on XLA:CPU's fast path.

A stride-s transposed convolution is the input-gradient of a stride-s convolution: XLA computes it as a
convolution of the s-dilated input.  Its forward pass and input gradient run at full speed on XLA:CPU, but its
kernel gradient is a convolution with a dilated *input* that XLA:CPU runs through a generic loop, far slower
than the forward pass (measured in benchmarks/README.md).  `dual_grad_conv_transpose` keeps the forward pass and
input gradient and computes the kernel gradient through the duality of the transposed convolution y = Cᵀ(x) with
the strided convolution C: ⟨Cᵀ(x), g⟩ = ⟨x, C(g)⟩, so ∂/∂w is the kernel gradient of C applied to g with
cotangent x, which XLA runs on its fast path.  `canonical_grad_conv` is the forward convolution with both
gradients written in XLA's canonical layout (`kernel_grad`), which stays fast inside `lax.scan`.

Neighbours: `subpixel.py` (the other fast transposed convolution); `upsampling.py` (the Linen layers).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

# Flax's layouts: NHWC inputs and outputs, HWIO kernels.
DIMENSIONS = ("NHWC", "HWIO", "NHWC")


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


def flax_conv_transpose(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """Flax's `nn.ConvTranspose` with padding "SAME" and no bias.

    Args:
      x: f32[B, H, W, C_in].
      kernel: f32[k, k, C_in, C_out].
      stride: s.

    Returns:
      f32[B, s·H, s·W, C_out].
    """
    return lax.conv_transpose(x, kernel, (stride, stride), "SAME", dimension_numbers=DIMENSIONS)


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
        dimension_numbers=DIMENSIONS,
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
    return lax.conv_general_dilated(x, kernel, (stride, stride), "SAME", dimension_numbers=DIMENSIONS)


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
        g, flipped, (1, 1), dx_padding, lhs_dilation=(stride, stride), dimension_numbers=DIMENSIONS
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
    dx = lax.conv_general_dilated(g, dual, (stride, stride), padding, dimension_numbers=DIMENSIONS)
    d_dual = kernel_grad(g, x, kernel.shape[0], stride, padding)
    return dx, jnp.flip(d_dual.transpose(0, 1, 3, 2), (0, 1))


dual_grad_conv_transpose.defvjp(_dual_grad_forward, _dual_grad_backward)
