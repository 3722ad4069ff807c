"""Figures: pure functions of numpy arrays that write PNG / GIF files.

Nothing here knows about models or JAX. Callers (``experiments/main.py``, ``metrics.py``) decode or sample
first and pass plain arrays; this module only lays them out. That keeps every figure testable in
milliseconds and reusable for any model family.

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
import numbers
import os
import pathlib
import statistics
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

PathLike = str | os.PathLike

# Separator and empty-cell value in mosaics. White: the data sets we show (MNIST-like digits) are mostly
# black, so a white line keeps neighbouring tiles apart.
_PAD_VALUE = 1.0
# Inches per mosaic pixel: a 28-px tile comes out about 0.8 in wide, so a 10-column grid is ~8 in.
_INCHES_PER_PIXEL = 0.8 / 28
_MIN_INCHES, _MAX_INCHES = 2.0, 20.0
_DPI = 100


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
# Matplotlib helpers
# ----------------------------------------------------------------------------------------------------------


def _new_figure(width_in: float, height_in: float) -> Figure:
    """A pyplot-free figure of the given aspect, its longest side scaled into [_MIN_INCHES, _MAX_INCHES]."""
    longest = max(width_in, height_in, 1e-9)
    scale = min(max(1.0, _MIN_INCHES / longest), _MAX_INCHES / longest)
    return Figure(figsize=(width_in * scale, height_in * scale), dpi=_DPI)


def _save(fig: Figure, path: PathLike) -> pathlib.Path:
    """Writes ``fig`` to ``path`` (creating parents) and releases its memory."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=_DPI, bbox_inches="tight", facecolor="white")
    # A pyplot-free Figure is not in any registry, so there is nothing to close; clearing drops the
    # artists' references to the (possibly large) image arrays right away rather than at garbage collection.
    fig.clear()
    return path


def _show_mosaic(ax, mosaic: np.ndarray) -> None:
    """Draws an f32[h, w, C] mosaic pixel-exact (no smoothing), grey maps to a fixed 0..1 grey scale."""
    if mosaic.shape[-1] == 1:
        ax.imshow(mosaic[..., 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(mosaic, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _label_tiles(ax, tile_hw, rows: int, cols: int, row_labels=None, col_labels=None) -> None:
    """Puts row labels on the left and column labels on top, centred on the tiles of a mosaic."""
    h, w = tile_hw
    if row_labels is not None:
        row_labels = list(row_labels)
        if len(row_labels) != rows:
            raise ValueError(f"row_labels has {len(row_labels)} entries but the grid has {rows} rows.")
        ax.set_yticks([r * (h + 1) + (h - 1) / 2 for r in range(rows)])
        ax.set_yticklabels([str(s) for s in row_labels])
        ax.tick_params(axis="y", length=0)
    if col_labels is not None:
        col_labels = list(col_labels)
        if len(col_labels) != cols:
            raise ValueError(f"col_labels has {len(col_labels)} entries but the grid has {cols} columns.")
        ax.xaxis.tick_top()
        ax.set_xticks([c * (w + 1) + (w - 1) / 2 for c in range(cols)])
        ax.set_xticklabels([str(s) for s in col_labels])
        ax.tick_params(axis="x", length=0)


def _mosaic_figure(
    mosaic: np.ndarray, title=None, tile_hw=None, rows=0, cols=0, row_labels=None, col_labels=None
) -> Figure:
    """One-axes figure showing a mosaic at ~_INCHES_PER_PIXEL, with optional tile labels and title."""
    hm, wm = mosaic.shape[:2]
    fig = _new_figure(wm * _INCHES_PER_PIXEL, hm * _INCHES_PER_PIXEL)
    ax = fig.add_axes((0, 0, 1, 1))
    _show_mosaic(ax, mosaic)
    if row_labels is not None or col_labels is not None:
        _label_tiles(ax, tile_hw, rows, cols, row_labels, col_labels)
    if title:
        # ax.set_title (not suptitle): matplotlib lifts an axes title above top tick labels (column labels).
        ax.set_title(title)
    return fig


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
    fig = _mosaic_figure(mosaic, title, x.shape[1:3], rows, cols, row_labels, col_labels)
    return _save(fig, path)


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
    fig = _mosaic_figure(mosaic, title, x.shape[3:5], 2 * chunks, cols, row_labels=row_labels)
    return _save(fig, path)


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
    fig = _mosaic_figure(tile_images(x, n), title)
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
    return _save(fig, path)


def save_interpolations(path: PathLike, strips, title: str | None = None) -> pathlib.Path:
    """Saves latent interpolations: one row per pair, morphing left→right.

    Args:
      path: output PNG path.
      strips: f32[P, S, H, W, C] in [0, 1]: P rows of S images each.
      title: figure title.

    Returns:
      ``path`` as a ``pathlib.Path``.
    """
    s = np.asarray(strips, dtype=np.float32)
    if s.ndim != 5:
        raise ValueError(f"strips must have shape [P, S, H, W, C]; got {s.shape}.")
    p, steps = s.shape[:2]
    fig = _mosaic_figure(tile_images(s.reshape(p * steps, *s.shape[2:]), steps), title)
    return _save(fig, path)


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
    r = np.asarray(rows, dtype=np.float32)
    if r.ndim != 5:
        raise ValueError(f"rows must have shape [R, A, H, W, C]; got {r.shape}.")
    n_rows, n_alpha = r.shape[:2]
    alphas = list(alphas)
    if len(alphas) != n_alpha:
        raise ValueError(f"got {len(alphas)} alphas for {n_alpha} columns in rows {r.shape}.")
    mosaic = tile_images(r.reshape(n_rows * n_alpha, *r.shape[2:]), n_alpha)
    fig = _mosaic_figure(mosaic, title, r.shape[2:4], n_rows, n_alpha, row_labels, [_format_alpha(a) for a in alphas])
    return _save(fig, path)


# ----------------------------------------------------------------------------------------------------------
# Latent-space scatter plots
# ----------------------------------------------------------------------------------------------------------


def _scatter(ax, z: np.ndarray, labels, class_names=None):
    """Scatters f32[N, 2] points coloured by integer class; returns (handles, names) for a legend.

    Up to 20 classes get distinct qualitative colours and a legend; more than that get a continuous colour
    map and no legend (a 100-entry legend is unreadable).
    """
    z = np.asarray(z, dtype=np.float32)
    if z.ndim != 2 or z.shape[1] != 2:
        raise ValueError(f"z must have shape [N, 2]; got {z.shape}. Project to 2-D first (e.g. PCA).")
    # Small points, some transparency: MNIST-sized sets have 10k points that would otherwise hide each other.
    size = float(np.clip(2e4 / max(len(z), 1), 2, 30))
    if labels is None:
        ax.scatter(z[:, 0], z[:, 1], s=size, alpha=0.6, linewidths=0)
        return [], []
    labels = np.asarray(labels).reshape(-1)
    if labels.shape[0] != z.shape[0]:
        raise ValueError(f"labels has {labels.shape[0]} entries but z has {z.shape[0]} points.")
    classes = np.unique(labels)
    if len(classes) > 20:
        ax.scatter(z[:, 0], z[:, 1], c=labels, cmap="viridis", s=size, alpha=0.6, linewidths=0)
        return [], []
    cmap = "tab10" if len(classes) <= 10 else "tab20"
    import matplotlib  # Local: only the colour-map registry is needed, not pyplot.

    colours = matplotlib.colormaps[cmap]
    handles, names = [], []
    for i, k in enumerate(classes):
        m = labels == k
        handles.append(ax.scatter(z[m, 0], z[m, 1], s=size, alpha=0.6, linewidths=0, color=colours(i)))
        if class_names is not None and isinstance(k, numbers.Integral) and 0 <= int(k) < len(class_names):
            names.append(str(class_names[int(k)]))
        else:
            names.append(str(k))
    return handles, names


def save_latent_scatter(
    path: PathLike, z, labels, class_names: Sequence[str] | None = None, title: str | None = None
) -> pathlib.Path:
    """Saves a 2-D latent scatter coloured by class, with a legend.

    Args:
      path: output PNG path.
      z: f32[N, 2] latent codes (means, for a VAE).
      labels: int[N] class ids, or None for one colour.
      class_names: names indexed by class id; default the ids themselves.
      title: axes title.

    Returns:
      ``path`` as a ``pathlib.Path``.
    """
    fig = Figure(figsize=(6, 5), dpi=_DPI)
    ax = fig.add_subplot()
    handles, names = _scatter(ax, z, labels, class_names)
    if handles:
        ax.legend(handles, names, loc="center left", bbox_to_anchor=(1.01, 0.5), markerscale=2, frameon=False)
    ax.set_xlabel("z₁")
    ax.set_ylabel("z₂")
    if title:
        ax.set_title(title)
    return _save(fig, path)


def save_embeddings_side_by_side(
    path: PathLike,
    embeddings: Mapping[str, np.ndarray],
    labels,
    class_names: Sequence[str] | None = None,
    title: str | None = None,
) -> pathlib.Path:
    """Saves one 2-D scatter panel per method (e.g. PCA, AE, VAE) with a shared legend.

    Each panel keeps its own axis limits: the methods' coordinates are not comparable, only the cluster
    structure is.

    Args:
      path: output PNG path.
      embeddings: panel title -> f32[N, 2], all for the same N examples in the same order.
      labels: int[N] class ids shared by all panels, or None.
      class_names: names indexed by class id.
      title: figure title.

    Returns:
      ``path`` as a ``pathlib.Path``.
    """
    if not embeddings:
        raise ValueError("embeddings is empty; pass at least one name -> f32[N, 2] entry.")
    k = len(embeddings)
    fig = Figure(figsize=(4 * k, 4), dpi=_DPI)
    axes = fig.subplots(1, k, squeeze=False)[0]
    handles, names = [], []
    for ax, (name, z) in zip(axes, embeddings.items()):
        handles, names = _scatter(ax, z, labels, class_names)
        ax.set_title(str(name))
        ax.set_xticks([])
        ax.set_yticks([])
    if handles:
        fig.legend(handles, names, loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=2, frameon=False)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


# ----------------------------------------------------------------------------------------------------------
# Curves
# ----------------------------------------------------------------------------------------------------------


def save_curves(
    path: PathLike,
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    xlabel: str,
    ylabel: str,
    title: str | None = None,
    logy: bool = False,
) -> pathlib.Path:
    """Saves line plots with markers, one line per named curve (e.g. reconstruction error vs k).

    Args:
      path: output PNG path.
      curves: legend name -> (xs f32[M], ys f32[M]); M may differ between curves.
      xlabel, ylabel: axis labels (put the units in them).
      title: axes title.
      logy: log-scale y axis.

    Returns:
      ``path`` as a ``pathlib.Path``.
    """
    fig = Figure(figsize=(6, 4), dpi=_DPI)
    ax = fig.add_subplot()
    for name, (xs, ys) in curves.items():
        xs, ys = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
        if xs.shape != ys.shape:
            raise ValueError(f"curve {name!r}: xs {xs.shape} and ys {ys.shape} must have the same shape.")
        ax.plot(xs, ys, marker="o", markersize=4, label=str(name))
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if len(curves) > 1:
        ax.legend()
    if title:
        ax.set_title(title)
    return _save(fig, path)


def _is_number(v) -> bool:
    """True for ints and floats (numpy included), False for bools: a flag is not a curve."""
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def save_loss_curves(
    path: PathLike, records: Sequence[Mapping], keys: Sequence[str] | None = None, step_key: str = "step"
) -> pathlib.Path:
    """Saves ``loss_curves_figure(records, keys, step_key)`` to ``path`` (PNG) and returns it as a ``pathlib.Path``."""
    return _save(loss_curves_figure(records, keys, step_key), path)


def loss_curves_figure(records: Sequence[Mapping], keys: Sequence[str] | None = None, step_key: str = "step") -> Figure:
    """One subplot per metric against the step, from records as read by ``report.read_metrics``.

    Train and eval metrics are logged at different cadences, so each key is plotted from only the records
    that carry it (and a step).

    Args:
      records: dicts such as ``{"step": 100, "train/loss": 93.1, "eval/neg_elbo": 95.0}``.
      keys: metrics to plot, one subplot each (titled by the key); default every numeric key except ``step_key``,
        in the order first seen.  A key no record carries gets a panel with no line and the text "no data".
      step_key: the x-axis key.

    Returns:
      The figure (one visible axis per key, in order).
    """
    if keys is None:
        keys = []
        for rec in records:
            for k, v in rec.items():
                if k != step_key and k not in keys and _is_number(v):
                    keys.append(k)
    keys = list(keys)
    if not keys:
        raise ValueError(
            f"no numeric metrics to plot in {len(records)} records (other than {step_key!r}); "
            "check the metrics file is the right one and the run logged at least one step."
        )
    cols = min(3, len(keys))
    rows = math.ceil(len(keys) / cols)
    fig = Figure(figsize=(4 * cols, 3 * rows), dpi=_DPI, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, key in zip(axes, keys):
        pts = [(r[step_key], r[key]) for r in records if _is_number(r.get(step_key)) and _is_number(r.get(key))]
        if pts:
            xs, ys = zip(*pts)
            # Markers only when sparse: eval points every few thousand steps would otherwise be invisible.
            ax.plot(xs, ys, marker="o" if len(pts) <= 30 else None, markersize=3)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(key)
        ax.set_xlabel(step_key)
        ax.grid(True, alpha=0.3)
    for ax in axes[len(keys) :]:
        ax.set_visible(False)
    return fig


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
