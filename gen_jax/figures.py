"""Figures: pure functions of numpy arrays that write PNG / GIF files.

Nothing here knows about models or JAX. Callers (``experiments/main.py``, ``metrics.py``) decode or sample
first and pass plain arrays; this module only lays them out. That keeps every figure testable in
milliseconds and reusable for any model family.

This module lays images out: grids of samples, reconstructions, the latent manifold, interpolations, edit rows
and GIFs. Plots of numbers (latent scatters, curves, the run's metrics) are `plots.py`'s, re-exported here, so
``figures.save_*`` names every figure; both draw through `canvas.py`.

Conventions:
  * Images are ``f32[N, H, W, C]`` with values in [0, 1] and ``C`` = 1 (grey) or 3 (RGB). Values outside
    [0, 1] are clipped, not rescaled, so a decoder that overshoots shows as saturated rather than as a
    silently different contrast.
  * Every ``save_*`` function creates the parent directories, writes one file and returns its path as a
    ``pathlib.Path``.
  * Figures are built on ``matplotlib.figure.Figure`` directly, never through ``pyplot``: there is no global
    figure registry to leak into, no backend to switch, and it works headless (PNG goes through Agg).

Neighbours: ``metrics.py`` computes the numbers shown by ``save_curves``; ``report.py`` reads back the
``metrics.jsonl`` that ``train.py`` writes (for ``save_loss_curves``) and links the figures into the run's page.
"""

from __future__ import annotations

import math
import pathlib
import statistics
from collections.abc import Sequence

import numpy as np

from gen_jax.canvas import PathLike, mosaic_figure, save
from gen_jax.plots import (
    loss_curves_figure,
    save_curves,
    save_embeddings_side_by_side,
    save_latent_scatter,
    save_loss_curves,
)

__all__ = [
    "loss_curves_figure",
    "manifold_latents",
    "save_curves",
    "save_edit_rows",
    "save_embeddings_side_by_side",
    "save_gif",
    "save_image_grid",
    "save_interpolations",
    "save_latent_scatter",
    "save_loss_curves",
    "save_manifold_grid",
    "save_reconstructions",
    "tile_images",
]

# Separator and empty-cell value in mosaics. White: the data sets we show (MNIST-like digits) are mostly
# black, so a white line keeps neighbouring tiles apart.
_PAD_VALUE = 1.0


# ----------------------------------------------------------------------------------------------------------
# Array helpers
# ----------------------------------------------------------------------------------------------------------


def _as_images(images, name: str = "images") -> np.ndarray:
    """Validates and clips a batch of images.

    Args:
      images: array-like f32[N, H, W, C], C in {1, 3}.
      name: argument name, for error messages.

    Returns:
      f32[N, H, W, C] clipped to [0, 1].
    """
    x = np.asarray(images, dtype=np.float32)
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(
            f"{name} must have shape [N, H, W, C] with C = 1 (grey) or 3 (RGB); got shape {x.shape}. "
            "Add a trailing channel axis to grey images (x[..., None])."
        )
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {x.shape}); pass at least one image.")
    # NaN would clip to NaN and render as garbage; show it as black so the rest of the figure stays readable.
    return np.clip(np.nan_to_num(x, nan=0.0), 0.0, 1.0)


def tile_images(images, ncols: int) -> np.ndarray:
    """Lays images out row-major in a grid with a 1-pixel separator between tiles.

    Args:
      images: f32[N, H, W, C] in [0, 1] (clipped), C = 1 or 3.
      ncols: tiles per row. The grid has ``cols = min(ncols, N)`` columns and ``rows = ceil(N / cols)`` rows.

    Returns:
      f32[rows*H + rows-1, cols*W + cols-1, C]: tile (r, c) = ``images[r*cols + c]`` occupies
      ``[r*(H+1) : r*(H+1)+H, c*(W+1) : c*(W+1)+W]``. Separator pixels and the empty cells after the last
      image are 1.0 (white). There is no outer border, so a 1-image mosaic is that image.
    """
    x = _as_images(images)
    if int(ncols) < 1:
        raise ValueError(f"ncols must be >= 1; got {ncols}.")
    n, h, w, c = x.shape
    cols = min(int(ncols), n)
    rows = math.ceil(n / cols)
    out = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1, c), _PAD_VALUE, dtype=np.float32)
    for i in range(n):
        r, col = divmod(i, cols)
        out[r * (h + 1) : r * (h + 1) + h, col * (w + 1) : col * (w + 1) + w] = x[i]
    return out


def manifold_latents(n: int, extent_quantile: float = 0.95) -> np.ndarray:
    """An n x n grid over a 2-D latent plane, spaced evenly in N(0, 1) probability rather than in z.

    Even spacing in probability (Kingma & Welling 2014, fig. 4) puts as many grid points in the dense centre
    of the prior as in its tails, so each tile covers the same prior mass.

    Args:
      n: points per axis (>= 1).
      extent_quantile: the outermost point sits at this N(0, 1) quantile (and at 1 - it), in (0.5, 1).
        0.95 spans z in [-1.645, 1.645].

    Returns:
      f32[n*n, 2], row-major like the displayed grid: entry ``i*n + j`` is ``(z1[j], z2[i])`` with z1
      increasing left→right and z2 *decreasing* top→bottom, so the image grid reads like a plot with z2 up.
      The grid is symmetric about 0 (mean exactly 0 up to rounding).
    """
    if int(n) < 1:
        raise ValueError(f"n must be >= 1; got {n}.")
    if not 0.5 < extent_quantile < 1.0:
        raise ValueError(f"extent_quantile must be in (0.5, 1); got {extent_quantile}.")
    n = int(n)
    probs = np.linspace(1.0 - extent_quantile, extent_quantile, n) if n > 1 else np.array([0.5])
    normal = statistics.NormalDist()
    z = np.array([normal.inv_cdf(float(p)) for p in probs])
    # inv_cdf is symmetric only up to rounding; enforce it so the grid's mean is exactly 0.
    z = 0.5 * (z - z[::-1])
    z1, z2 = np.meshgrid(z, z[::-1])  # z2 reversed: top row = largest z2.
    return np.stack([z1.ravel(), z2.ravel()], axis=-1).astype(np.float32)


# ----------------------------------------------------------------------------------------------------------
# Image figures
# ----------------------------------------------------------------------------------------------------------


def save_image_grid(
    path: PathLike,
    images,
    ncols: int = 10,
    title: str | None = None,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
) -> pathlib.Path:
    """Saves images as a grid (e.g. samples from a generator).

    Args:
      path: output PNG path.
      images: f32[N, H, W, C] in [0, 1], C = 1 or 3.
      ncols: tiles per row (the grid has ``min(ncols, N)`` columns).
      title: figure title.
      row_labels: one string per grid row, shown on the left.
      col_labels: one string per grid column, shown on top.

    Returns:
      ``path`` as a ``pathlib.Path``.
    """
    x = _as_images(images)
    cols = min(int(ncols), x.shape[0])
    rows = math.ceil(x.shape[0] / cols)
    mosaic = tile_images(x, cols)
    fig = mosaic_figure(mosaic, title, x.shape[1:3], rows, cols, row_labels, col_labels)
    return save(fig, path)


def save_reconstructions(
    path: PathLike, inputs, reconstructions, title: str | None = None, ncols: int = 10
) -> pathlib.Path:
    """Saves inputs above their reconstructions: row pairs (input, reconstruction) of ``ncols`` each.

    Args:
      path: output PNG path.
      inputs: f32[N, H, W, C] in [0, 1].
      reconstructions: f32[N, H, W, C], same shape as ``inputs``.
      title: figure title.
      ncols: images per row; N > ncols gives ceil(N / ncols) pairs of rows.

    Returns:
      ``path`` as a ``pathlib.Path``.
    """
    x = _as_images(inputs, "inputs")
    y = _as_images(reconstructions, "reconstructions")
    if x.shape != y.shape:
        raise ValueError(f"inputs {x.shape} and reconstructions {y.shape} must have the same shape.")
    n = x.shape[0]
    cols = min(int(ncols), n)
    chunks = math.ceil(n / cols)
    # Pad both to a whole number of rows with blank (white) tiles so each input stays above its own
    # reconstruction in every chunk, the last included.
    pad = chunks * cols - n
    blank = np.full((pad, *x.shape[1:]), _PAD_VALUE, np.float32)
    x = np.concatenate([x, blank]).reshape(chunks, 1, cols, *x.shape[1:])
    y = np.concatenate([y, blank]).reshape(chunks, 1, cols, *y.shape[1:])
    interleaved = np.concatenate([x, y], axis=1).reshape(-1, *x.shape[3:])  # [chunks*2*cols, H, W, C]
    mosaic = tile_images(interleaved, cols)
    row_labels = ["input", "recon."] * chunks
    fig = mosaic_figure(mosaic, title, x.shape[3:5], 2 * chunks, cols, row_labels=row_labels)
    return save(fig, path)


def save_manifold_grid(
    path: PathLike, decoded, n: int, title: str | None = None, extent_quantile: float | None = 0.95
) -> pathlib.Path:
    """Saves the decoded 2-D latent manifold as an n x n grid, z1 along x and z2 up.

    Args:
      path: output PNG path.
      decoded: f32[n*n, H, W, C], decoder means at ``manifold_latents(n, extent_quantile)``, in that order.
      n: points per axis.
      title: figure title.
      extent_quantile: the value given to ``manifold_latents``; used only to label the axes with z values.
        None leaves the axes unlabelled.

    Returns:
      ``path`` as a ``pathlib.Path``.
    """
    x = _as_images(decoded, "decoded")
    if x.shape[0] != n * n:
        raise ValueError(f"decoded has {x.shape[0]} images; expected n*n = {n * n} (from manifold_latents(n)).")
    fig = mosaic_figure(tile_images(x, n), title)
    if extent_quantile is not None:
        ax = fig.axes[0]
        h, w = x.shape[1:3]
        z = manifold_latents(n, extent_quantile)
        # Label the first, middle and last tiles only: n labels per axis would collide for n >= 15.
        idx = sorted({0, n // 2, n - 1})
        ax.set_xticks([j * (w + 1) + (w - 1) / 2 for j in idx])
        ax.set_xticklabels([f"{z[j, 0]:.2f}" for j in idx])
        ax.set_yticks([i * (h + 1) + (h - 1) / 2 for i in idx])
        ax.set_yticklabels([f"{z[i * n, 1]:.2f}" for i in idx])
        ax.set_xlabel("z₁")
        ax.set_ylabel("z₂")
    return save(fig, path)


def _image_rows(rows, name: str, axes: str) -> np.ndarray:
    """Rows of images as f32[R, S, H, W, C] (``axes`` names R and S in the message), or ValueError naming ``name``."""
    x = np.asarray(rows, dtype=np.float32)
    if x.ndim != 5:
        raise ValueError(f"{name} must have shape [{axes}, H, W, C]; got {x.shape}.")
    return x


def save_interpolations(path: PathLike, strips, title: str | None = None) -> pathlib.Path:
    """Saves latent interpolations: one row per pair, morphing left→right.

    Args:
      path: output PNG path.
      strips: f32[P, S, H, W, C] in [0, 1]: P rows of S images each.
      title: figure title.

    Returns:
      ``path`` as a ``pathlib.Path``.
    """
    s = _image_rows(strips, "strips", "P, S")
    p, steps = s.shape[:2]
    fig = mosaic_figure(tile_images(s.reshape(p * steps, *s.shape[2:]), steps), title)
    return save(fig, path)


def _format_alpha(a: float) -> str:
    """'α=-2.0' for tenths, full precision ('α=0.25') otherwise, so columns never look equal when they aren't."""
    a = float(a)
    return f"α={a:.1f}" if abs(a * 10 - round(a * 10)) < 1e-9 else f"α={a:g}"


def save_edit_rows(
    path: PathLike, rows, alphas: Sequence[float], row_labels: Sequence[str] | None = None, title: str | None = None
) -> pathlib.Path:
    """Saves latent edits (z + α·direction): one row per example or attribute, one column per α.

    Args:
      path: output PNG path.
      rows: f32[R, A, H, W, C] in [0, 1].
      alphas: A edit strengths; columns are titled "α=-2.0" etc.
      row_labels: R strings shown on the left.
      title: figure title.

    Returns:
      ``path`` as a ``pathlib.Path``.
    """
    r = _image_rows(rows, "rows", "R, A")
    n_rows, n_alpha = r.shape[:2]
    alphas = list(alphas)
    if len(alphas) != n_alpha:
        raise ValueError(f"got {len(alphas)} alphas for {n_alpha} columns in rows {r.shape}.")
    mosaic = tile_images(r.reshape(n_rows * n_alpha, *r.shape[2:]), n_alpha)
    fig = mosaic_figure(mosaic, title, r.shape[2:4], n_rows, n_alpha, row_labels, [_format_alpha(a) for a in alphas])
    return save(fig, path)


# ----------------------------------------------------------------------------------------------------------
# GIF
# ----------------------------------------------------------------------------------------------------------


def _to_uint8(frame) -> np.ndarray:
    """f32[h, w, C] or f32[h, w] in [0, 1] -> uint8[h, w] (grey) or uint8[h, w, 3] (RGB)."""
    f = np.asarray(frame, dtype=np.float32)
    if f.ndim == 3 and f.shape[-1] == 1:
        f = f[..., 0]
    if not (f.ndim == 2 or (f.ndim == 3 and f.shape[-1] == 3)):
        raise ValueError(f"each frame must be f32[h, w, 1|3] or f32[h, w]; got shape {f.shape}.")
    return np.round(np.clip(np.nan_to_num(f), 0.0, 1.0) * 255).astype(np.uint8)


def save_gif(path: PathLike, frames: Sequence[np.ndarray], duration_ms: int = 300) -> pathlib.Path:
    """Saves frames as a looping animated GIF (e.g. samples from a fixed z across training).

    Pillow merges consecutive *identical* frames into one longer frame, so ``n_frames`` of the file can be
    smaller than ``len(frames)`` when nothing changed between them.

    Args:
      path: output GIF path.
      frames: list of f32[h, w, C] (C = 1 or 3) or f32[h, w] in [0, 1], all the same shape, e.g.
        ``tile_images`` mosaics.
      duration_ms: display time per frame.

    Returns:
      ``path`` as a ``pathlib.Path``.
    """
    from PIL import Image

    if len(frames) == 0:
        raise ValueError("frames is empty; pass at least one f32[h, w, C] frame.")
    arrays = [_to_uint8(f) for f in frames]
    if any(a.shape != arrays[0].shape for a in arrays):
        shapes = sorted({a.shape for a in arrays})
        raise ValueError(f"all frames must have the same shape; got {shapes}.")
    images = [Image.fromarray(a) for a in arrays]
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:], duration=int(duration_ms), loop=0)
    return path
