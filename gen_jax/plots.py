"""Plots of numbers on axes: 2-D latent scatters coloured by class, curves (e.g. error against k), and the run's
metrics against the step. Pure functions of numpy arrays and records that write PNG files.

The conventions are `figures.py`'s (every ``save_*`` creates the parent directories, writes one file and returns
its path as a ``pathlib.Path``; no pyplot), and `figures` re-exports every function here, so callers write
``figures.save_curves(...)``.

Neighbours: ``metrics.py`` computes the numbers shown by ``save_curves``; ``report.py`` reads back the
``metrics.jsonl`` that ``train.py`` writes (for ``save_loss_curves``).
"""

from __future__ import annotations

import math
import numbers
import pathlib
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from gen_jax.canvas import DPI, PathLike, save

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
    fig = Figure(figsize=(6, 5), dpi=DPI)
    ax = fig.add_subplot()
    handles, names = _scatter(ax, z, labels, class_names)
    if handles:
        ax.legend(handles, names, loc="center left", bbox_to_anchor=(1.01, 0.5), markerscale=2, frameon=False)
    ax.set_xlabel("z₁")
    ax.set_ylabel("z₂")
    if title:
        ax.set_title(title)
    return save(fig, path)


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
    fig = Figure(figsize=(4 * k, 4), dpi=DPI)
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
    return save(fig, path)


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
    fig = Figure(figsize=(6, 4), dpi=DPI)
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
    return save(fig, path)


def _is_number(v) -> bool:
    """True for ints and floats (numpy included), False for bools: a flag is not a curve."""
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def save_loss_curves(
    path: PathLike, records: Sequence[Mapping], keys: Sequence[str] | None = None, step_key: str = "step"
) -> pathlib.Path:
    """Saves ``loss_curves_figure(records, keys, step_key)`` to ``path`` (PNG) and returns it as a ``pathlib.Path``."""
    return save(loss_curves_figure(records, keys, step_key), path)


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
    fig = Figure(figsize=(4 * cols, 3 * rows), dpi=DPI, layout="constrained")
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
