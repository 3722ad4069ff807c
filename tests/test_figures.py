"""Tests for gen_jax/figures.py (and the plots.py it re-exports): every figure writes a readable image; layouts and
grids are exact."""

import numpy as np
import pytest
from PIL import Image

from gen_jax import figures

H, W = 8, 6  # Tiny, non-square tiles: catches H/W mix-ups.


def _images(n, c, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, H, W, c)).astype(np.float32)


def _assert_png(path, min_side=50):
    """The file exists, is a PNG PIL can decode, and is not a degenerate few-pixel image."""
    assert path.exists() and path.stat().st_size > 0
    with Image.open(path) as im:
        assert im.format == "PNG"
        im.load()
        assert min(im.size) >= min_side, im.size


# --- tile_images -----------------------------------------------------------------------------------------


def test_tile_images_layout_is_exact():
    # 5 constant images in 3 columns -> 2 rows; the 6th cell is empty.
    imgs = np.stack([np.full((2, 3, 1), 0.1 * (i + 1), np.float32) for i in range(5)])
    m = figures.tile_images(imgs, ncols=3)
    assert m.shape == (2 * 2 + 1, 3 * 3 + 2, 1)
    for i in range(5):
        r, c = divmod(i, 3)
        np.testing.assert_allclose(m[r * 3 : r * 3 + 2, c * 4 : c * 4 + 3], 0.1 * (i + 1), rtol=1e-6)
    # Separators: row 2 and columns 3, 7 are white; the empty last cell is white too.
    assert np.all(m[2] == 1.0)
    assert np.all(m[:, 3] == 1.0) and np.all(m[:, 7] == 1.0)
    assert np.all(m[3:5, 8:11] == 1.0)


def test_tile_images_clips_and_single_image_is_identity():
    x = np.array([[[[-1.0, 0.5, 2.0]]]], np.float32)  # [1, 1, 1, 3]
    m = figures.tile_images(x, ncols=10)
    np.testing.assert_array_equal(m, [[[0.0, 0.5, 1.0]]])


def test_tile_images_fewer_images_than_columns():
    assert figures.tile_images(_images(3, 3), ncols=10).shape == (H, 3 * W + 2, 3)


def test_tile_images_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\[N, H, W, C\]"):
        figures.tile_images(np.zeros((4, H, W)), ncols=2)
    with pytest.raises(ValueError, match="ncols"):
        figures.tile_images(_images(2, 1), ncols=0)


# --- manifold_latents ------------------------------------------------------------------------------------


def test_manifold_latents_shape_symmetry_and_order():
    n = 5
    z = figures.manifold_latents(n)
    assert z.shape == (n * n, 2) and z.dtype == np.float32
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-6)
    grid = z.reshape(n, n, 2)
    # Top row has the highest z2; z2 decreases down the rows and is constant along a row.
    assert np.all(np.diff(grid[:, 0, 1]) < 0)
    assert np.all(grid[0, :, 1] == grid[0, 0, 1])
    # First column has the lowest z1; z1 increases along a row and is constant down a column.
    assert np.all(np.diff(grid[0, :, 0]) > 0)
    assert np.all(grid[:, 0, 0] == grid[0, 0, 0])
    # Extent: the 5% and 95% quantiles of N(0, 1).
    np.testing.assert_allclose(grid[0, 0], [-1.6448536, 1.6448536], rtol=1e-5)


def test_manifold_latents_single_point_is_origin():
    np.testing.assert_array_equal(figures.manifold_latents(1), [[0.0, 0.0]])


def test_manifold_latents_rejects_bad_quantile():
    with pytest.raises(ValueError, match="extent_quantile"):
        figures.manifold_latents(3, extent_quantile=0.4)


# --- image figures ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("c", [1, 3])
def test_image_figures_write_pngs(tmp_path, c):
    p = figures.save_image_grid(
        tmp_path / "a" / "grid.png",
        _images(12, c),
        ncols=4,
        title="samples",
        row_labels=["r0", "r1", "r2"],
        col_labels=list("abcd"),
    )
    _assert_png(p)
    # 13 pairs with 10 per row: two chunks, the second padded with blanks.
    p = figures.save_reconstructions(tmp_path / "recon.png", _images(13, c), _images(13, c, seed=1), title="r")
    _assert_png(p)
    p = figures.save_manifold_grid(tmp_path / "manifold.png", _images(9, c), n=3, title="manifold")
    _assert_png(p)
    strips = _images(3 * 7, c).reshape(3, 7, H, W, c)
    _assert_png(figures.save_interpolations(tmp_path / "interp.png", strips, title="interp"))
    rows = _images(2 * 5, c).reshape(2, 5, H, W, c)
    p = figures.save_edit_rows(tmp_path / "edit.png", rows, alphas=[-2, -1, 0, 1, 2], row_labels=["x", "y"])
    _assert_png(p)


def test_save_image_grid_rejects_wrong_label_count(tmp_path):
    with pytest.raises(ValueError, match="row_labels"):
        figures.save_image_grid(tmp_path / "g.png", _images(4, 1), ncols=2, row_labels=["only one"])


def test_save_manifold_grid_checks_count(tmp_path):
    with pytest.raises(ValueError, match="n\\*n"):
        figures.save_manifold_grid(tmp_path / "m.png", _images(8, 1), n=3)


def test_alpha_column_titles():
    assert figures._format_alpha(-2) == "α=-2.0"
    assert figures._format_alpha(0.5) == "α=0.5"
    assert figures._format_alpha(0.25) == "α=0.25"


# --- scatter and curves ----------------------------------------------------------------------------------


def test_scatter_figures_write_pngs(tmp_path):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(200, 2)).astype(np.float32)
    labels = rng.integers(0, 10, size=200)
    names = [f"class {i}" for i in range(10)]
    _assert_png(figures.save_latent_scatter(tmp_path / "s.png", z, labels, names, title="VAE means"))
    _assert_png(figures.save_latent_scatter(tmp_path / "s_nolabels.png", z, None))
    p = figures.save_embeddings_side_by_side(tmp_path / "side.png", {"PCA": z, "AE": -z, "VAE": 2 * z}, labels, names)
    _assert_png(p)
    with pytest.raises(ValueError, match=r"\[N, 2\]"):
        figures.save_latent_scatter(tmp_path / "bad.png", rng.normal(size=(10, 3)), np.zeros(10, int))


def test_save_curves(tmp_path):
    curves = {"PCA": ([1, 2, 4, 8], [0.5, 0.3, 0.2, 0.1]), "AE": ([1, 2, 4], [0.4, 0.2, 0.1])}
    _assert_png(figures.save_curves(tmp_path / "c.png", curves, "k", "MSE per pixel", title="err", logy=True))


def test_save_loss_curves_defaults_to_numeric_keys(tmp_path):
    records = [{"step": s, "train/loss": 100.0 / (s + 1), "note": "x", "flag": True} for s in range(0, 50, 5)]
    records += [{"step": 25, "eval/neg_elbo": 95.0}, {"step": 50, "eval/neg_elbo": 93.0}]
    _assert_png(figures.save_loss_curves(tmp_path / "loss.png", records))
    # The numeric keys, in the order first seen (not the string, not the bool, not the step), each its own data.
    fig = figures.loss_curves_figure(records)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == ["train/loss", "eval/neg_elbo"]
    (loss_line,), (eval_line,) = panels[0].get_lines(), panels[1].get_lines()
    assert list(loss_line.get_xdata()) == list(range(0, 50, 5))
    np.testing.assert_allclose(loss_line.get_ydata(), [100.0 / (s + 1) for s in range(0, 50, 5)])
    assert list(eval_line.get_xdata()) == [25, 50] and list(eval_line.get_ydata()) == [95.0, 93.0]
    # A key absent from every record gets an empty panel (no line, "no data") rather than an error.
    _assert_png(figures.save_loss_curves(tmp_path / "loss2.png", records, keys=["train/loss", "missing"]))
    empty = [ax for ax in figures.loss_curves_figure(records, keys=["train/loss", "missing"]).axes if ax.get_visible()][
        1
    ]
    assert empty.get_title() == "missing" and not empty.get_lines()
    assert [t.get_text() for t in empty.texts] == ["no data"]
    with pytest.raises(ValueError, match="no numeric metrics"):
        figures.save_loss_curves(tmp_path / "none.png", [{"step": 1}])


# --- GIF -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("c", [1, 3])
def test_save_gif_frame_count(tmp_path, c):
    frames = [figures.tile_images(_images(4, c, seed=i), ncols=2) for i in range(5)]
    p = figures.save_gif(tmp_path / "g" / "anim.gif", frames, duration_ms=100)
    with Image.open(p) as im:
        assert im.format == "GIF"
        assert im.n_frames == 5
        assert im.size == (frames[0].shape[1], frames[0].shape[0])


def test_save_gif_rejects_mixed_shapes(tmp_path):
    with pytest.raises(ValueError, match="same shape"):
        figures.save_gif(tmp_path / "g.gif", [np.zeros((4, 4, 1)), np.zeros((5, 4, 1))])
