"""The matplotlib side of every figure: a pyplot-free `Figure` sized to its content, a mosaic drawn on it pixel-exact
with optional tile labels, and saving it (parents created, memory released).

Figures are built on ``matplotlib.figure.Figure`` directly, never through ``pyplot``: there is no global figure
registry to leak into, no backend to switch, and it works headless (PNG goes through Agg).

Neighbours: `figures.py` (mosaics of images) and `plots.py` (scatters and curves) draw with these.
"""

from __future__ import annotations

import os
import pathlib

import numpy as np
from matplotlib.figure import Figure

PathLike = str | os.PathLike

DPI = 100
# Inches per mosaic pixel: a 28-px tile comes out about 0.8 in wide, so a 10-column grid is ~8 in.
_INCHES_PER_PIXEL = 0.8 / 28
_MIN_INCHES, _MAX_INCHES = 2.0, 20.0


def new_figure(width_in: float, height_in: float) -> Figure:
    """A pyplot-free figure of the given aspect, its longest side scaled into [_MIN_INCHES, _MAX_INCHES]."""
    longest = max(width_in, height_in, 1e-9)
    scale = min(max(1.0, _MIN_INCHES / longest), _MAX_INCHES / longest)
    return Figure(figsize=(width_in * scale, height_in * scale), dpi=DPI)


def save(fig: Figure, path: PathLike) -> pathlib.Path:
    """Writes ``fig`` to ``path`` (creating parents) and releases its memory."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight", facecolor="white")
    # A pyplot-free Figure is not in any registry, so there is nothing to close; clearing drops the
    # artists' references to the (possibly large) image arrays right away rather than at garbage collection.
    fig.clear()
    return path


def mosaic_figure(
    mosaic: np.ndarray, title=None, tile_hw=None, rows=0, cols=0, row_labels=None, col_labels=None
) -> Figure:
    """One-axes figure showing an f32[h, w, C] mosaic at ~_INCHES_PER_PIXEL, with optional tile labels and title.

    The mosaic is laid out as `figures.tile_images` lays it (1-pixel separators); ``tile_hw``, ``rows`` and ``cols``
    (the tiles' (H, W) and the grid's size) are needed only with labels.
    """
    hm, wm = mosaic.shape[:2]
    fig = new_figure(wm * _INCHES_PER_PIXEL, hm * _INCHES_PER_PIXEL)
    ax = fig.add_axes((0, 0, 1, 1))
    _show_mosaic(ax, mosaic)
    if row_labels is not None or col_labels is not None:
        _label_tiles(ax, tile_hw, rows, cols, row_labels, col_labels)
    if title:
        # ax.set_title (not suptitle): matplotlib lifts an axes title above top tick labels (column labels).
        ax.set_title(title)
    return fig


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
