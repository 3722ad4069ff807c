"""Tests for the AutoEncoder family (gen_jax/tasks/ae.py, its step and evaluator) and experiments/ae_vs_pca.py:
training lowers the loss, resume is bit-identical, the linear AutoEncoder finds PCA's solution."""

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import ae_vs_pca
from experiments.configs import ae_vs_pca as ae_vs_pca_config
from gen_jax import config as config_lib
from gen_jax import keys, pca, train
from gen_jax.tasks import ae

from conftest import override, read_jsonl, tiny_ae_config, train_run


def _train(config, dataset, workdir, task=None):
    return train_run(config, dataset, workdir, task)


def _train_in_scan(config, dataset):
    """Trains outside the loop (no logging, evaluation or figures): the final state and the stacked metrics."""
    task = ae.make_task(config, dataset)
    streams = keys.loop_streams(config.seed)
    run = jax.jit(train.make_multi_step(task.train_step, config.batch_size), static_argnums=5)
    state, metrics = run(
        jax.jit(task.init_state)(streams["init"]),
        jnp.asarray(dataset.train_images),
        jnp.asarray(dataset.train_labels),
        streams["train"],
        streams["data"],
        config.num_steps,
    )
    return task, state, metrics


def test_training_lowers_the_test_error(straight_run):
    _, workdir, summary, initial = straight_run
    assert summary["test_mse"] < 0.7 * initial
    records = read_jsonl(workdir / "metrics.jsonl")
    losses = [r["train/loss"] for r in records if "train/loss" in r]
    assert losses[-1] < 0.7 * losses[0]
    for name in ("reconstructions.png", "latent_scatter.png", "interpolations.png"):
        assert (workdir / "figures" / name).exists()


def test_bernoulli_autoencoder_learns(digits):
    config = tiny_ae_config(model__reconstruction_loss="bernoulli", optim__learning_rate=3e-3)
    _, _, metrics = _train_in_scan(config, digits)
    assert float(metrics["loss"][-10:].mean()) < 0.9 * float(metrics["loss"][:10].mean())
    assert float(metrics["mse"][-10:].mean()) < 0.7 * float(metrics["mse"][:10].mean())


def test_conv_autoencoder_maps_images_to_codes_and_back(digits):
    config = tiny_ae_config(model__architecture="conv")
    model = ae.build_model(config, digits.image_shape)
    x = jnp.asarray(digits.test_images[:3])
    decoded, code = jax.jit(lambda x: model.init_with_output(jax.random.key(0), x)[0])(x)
    assert code.shape == (3, config.model.latent_dim) and decoded.shape == x.shape


def test_resume_is_bit_identical(digits, tmp_path, straight_run):
    """Stopped after the checkpoint at step 40 and run again, training ends exactly where an uninterrupted run
    does (the cosine schedule's position comes back with the optimizer state)."""
    config, _, straight, _ = straight_run
    task = ae.make_task(config, digits)

    def stop_at_the_end(state, key):
        if int(state.step) == config.num_steps:
            raise KeyboardInterrupt
        return task.evaluate(state, key)

    with pytest.raises(KeyboardInterrupt):
        _train(config, digits, tmp_path, dataclasses.replace(task, evaluate=stop_at_the_end))
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["40"]
    resumed = _train(config, digits, tmp_path)
    assert resumed["test_mse"] == straight["test_mse"]


def test_linear_autoencoder_finds_pca(digits):
    """Trained on the digits, the linear AE reconstructs the test split within 2% of PCA (fitted on the training
    split), and its decoder spans PCA's top-k subspace.  k = 4 has clear eigenvalue gaps on both sides."""
    k = 4
    config = tiny_ae_config(
        model__hidden=(), model__latent_dim=k, num_steps=1500, batch_size=256, optim__learning_rate=2e-2
    )
    task, state, _ = _train_in_scan(config, digits)
    reference = ae_vs_pca.pca_results(digits.train_images, digits.test_images, [k])
    assert task.evaluate(state, None)["mse"] < 1.02 * reference["test_mse"][0]
    angles = ae_vs_pca.principal_angles_deg(reference["fits"][0], state.params)
    assert max(angles) < 2.0, angles


def test_config_errors_name_the_field(digits):
    for field, value, expected in (
        ("model__reconstruction_loss", "l1", "config.model.reconstruction_loss must be one of"),
        ("optim__schedule", "step", "config.optim.schedule must be one of"),
        ("model__hidden", (32, -1), "config.model.hidden must be a tuple of positive integers"),
        ("model__architecture", "rnn", "config.model.architecture must be one of"),
    ):
        with pytest.raises(config_lib.ConfigError, match=expected):
            ae.make_task(tiny_ae_config(**{field: value}), digits)


def test_ks_are_capped_at_the_data_dimension():
    assert ae_vs_pca.capped_ks((32, 2, 8, 100, 64), 64) == [2, 8, 32, 64]


def test_decoder_basis_needs_a_linear_decoder(digits):
    task = ae.make_task(tiny_ae_config(), digits)
    with pytest.raises(ValueError, match="linear MLP decoder"):
        ae.decoder_basis(jax.eval_shape(task.init_state, jax.random.key(0)).params)


@pytest.mark.slow
def test_ae_vs_pca_writes_the_comparison(digits, tmp_path):
    config = ae_vs_pca_config.get_config()
    override(
        config,
        ks=(2,),
        num_steps=60,
        linear_num_steps=60,
        model__hidden=(16,),
        eval_every=60,
        checkpoint_every=60,
        log_every=20,
    )
    summary = ae_vs_pca.run(config, digits, str(tmp_path))
    saved = json.loads((tmp_path / "summary.json").read_text())
    for key in ("k", "pca_mse", "linear_ae_mse", "ae_mse", "principal_angles_deg"):
        assert saved[key] == summary[key]
    assert saved["k"] == [2] and len(saved["principal_angles_deg"][0]) == 2
    fit = pca.fit(jnp.asarray(digits.train_images), 2)
    reconstruction = np.asarray(pca.reconstruct(fit, jnp.asarray(digits.test_images)))
    expected_pca = np.mean((reconstruction - digits.test_images) ** 2)
    assert saved["pca_mse"][0] == pytest.approx(expected_pca, rel=1e-4)
    for name in ("error_vs_k.png", "embeddings_2d.png", "reconstructions.png"):
        assert (tmp_path / "figures" / name).exists()
    assert (tmp_path / "linear_ae_k2" / "checkpoints" / "60").exists()
    member_summary = (tmp_path / "linear_ae_k2" / "summary.json").read_text()
    with pytest.raises(train.WorkdirMismatchError):  # a workdir holding another run is left alone
        ae_vs_pca.run(config, digits, str(tmp_path / "linear_ae_k2"))
    assert (tmp_path / "linear_ae_k2" / "summary.json").read_text() == member_summary
    assert not (tmp_path / "linear_ae_k2" / "linear_ae_k2").exists()
