"""Tests for gen_jax/editing.py (attribute vectors, edits) and experiments/edit.py (edits from a trained run)."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from experiments import edit
from gen_jax import checkpoint, editing, keys, latent, train, trained
from gen_jax.tasks import ae, vae

from conftest import tiny_ae_config, tiny_vae_config


def test_attribute_vector_is_the_difference_of_group_means():
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(30, 5)).astype(np.float32)
    has = rng.random(30) < 0.3
    expected = codes[has].mean(axis=0) - codes[~has].mean(axis=0)
    np.testing.assert_allclose(editing.attribute_vector(codes, has), expected, rtol=1e-5, atol=1e-6)


def test_attribute_vector_needs_both_groups():
    codes = np.zeros((4, 2), np.float32)
    with pytest.raises(ValueError, match="both with and without"):
        editing.attribute_vector(codes, np.ones(4, bool))
    with pytest.raises(ValueError, match=r"bool\[4\]"):
        editing.attribute_vector(codes, np.ones(3, bool))


def test_edit_moves_codes_linearly_along_the_vector():
    codes = jnp.arange(6.0).reshape(2, 3)
    vector = jnp.array([1.0, -2.0, 0.5])
    moved = editing.edit(codes, vector, [-2.0, 0.0, 1.5])
    assert moved.shape == (2, 3, 3)
    np.testing.assert_array_equal(moved[:, 1], codes)
    np.testing.assert_allclose(moved[:, 2] - moved[:, 0], 3.5 * jnp.broadcast_to(vector, (2, 3)))


def test_zero_strength_edit_is_the_plain_reconstruction(digits):
    dataset = digits
    config = tiny_ae_config()
    task = ae.make_task(config, dataset)
    encode, decode = task.codec(jax.jit(task.init_state)(jax.random.key(0)))
    images = dataset.test_images[:5]
    vector = jnp.ones(config.model.latent_dim)
    rows = editing.edit_rows(encode, decode, images, vector, [-1.0, 0.0, 2.0])
    assert rows.shape == (5, 3, *dataset.image_shape)
    np.testing.assert_allclose(rows[:, 1], decode(encode(images)), atol=1e-6)
    assert not np.allclose(rows[:, 0], rows[:, 1])


def _edit_3(run):
    path = edit.edit_figure(run, "3", [-2.0, 0.0, 2.0], num_images=4, max_train_images=500)
    assert path == os.path.join(run.workdir, "figures", "edit_3.png")
    with Image.open(path) as image:
        assert min(image.size) > 50
    # What the figure shows: the α = 0 column is the plain reconstruction, and the decoder is given the codes
    # moved by exactly α times the attribute vector (mean code of the 3s − mean code of the others).
    codes = latent.encode_in_batches(run.encode, run.train_images[:500])
    is_3 = run.dataset.train_labels[:500] == 3
    vector = codes[is_3].mean(axis=0) - codes[~is_3].mean(axis=0)
    images = run.test_images[:4]
    seen = []

    def decode(z):
        seen.append(np.asarray(z))
        return run.decode(z)

    rows = editing.edit_rows(run.encode, decode, images, editing.attribute_vector(codes, is_3), [-2.0, 0.0, 2.0])
    np.testing.assert_allclose(rows[:, 1], run.decode(run.encode(images)), atol=1e-6)
    moved = seen[0].reshape(4, 3, -1)
    base = np.asarray(run.encode(images))
    for column, alpha in enumerate([-2.0, 0.0, 2.0]):
        np.testing.assert_allclose(moved[:, column], base + alpha * vector, rtol=1e-4, atol=1e-5)


def test_edit_figure_from_a_trained_autoencoder(straight_run):
    config, workdir, _, _ = straight_run
    run = trained.load_run(str(workdir))
    assert run.step == config.num_steps
    _edit_3(run)
    with pytest.raises(ValueError, match="not an attribute of digits"):
        edit.resolve_attribute(run.dataset, "Eyeglasses")


def test_edit_figure_from_a_vae_checkpoint(digits, tmp_path):
    """The VAE path: posterior means as codes.  An untrained checkpoint is enough to check the plumbing."""
    config = tiny_vae_config()
    task = vae.make_task(config, digits)
    train.prepare_workdir(str(tmp_path), config.to_dict(), task)
    manager = checkpoint.make_manager(str(tmp_path / "checkpoints"), 1)
    checkpoint.save(manager, 0, jax.jit(task.init_state)(keys.stream(config.seed, "init")))
    manager.wait_until_finished()
    run = trained.load_run(str(tmp_path), digits)
    assert run.config.family == "vae" and run.encode(run.test_images[:2]).shape == (2, config.model.latent_dim)
    _edit_3(run)


def test_load_run_explains_a_directory_without_a_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json does not exist"):
        trained.load_run(str(tmp_path))
