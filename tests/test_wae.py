"""The Wasserstein AutoEncoder (gen_jax/tasks/wae.py), the template family: its MMD tells the prior from a shifted
distribution, its loss falls, its λ is sweepable, it keeps the codec contract, and it trains, resumes bit for bit and
draws its figures through experiments.main.  The explorer and export tests cover its codec with every family's."""

import shutil

import jax
import numpy as np
import pytest

from experiments import main as experiments_main
from experiments.configs import wae_digits
from gen_jax import checkpoint, sweep, tasks
from gen_jax import config as config_lib
from gen_jax.tasks import wae

from conftest import VAE_FIGURES, read_jsonl, tiny_wae_config, trees_equal


def test_the_mmd_is_near_zero_for_the_prior_and_large_for_a_shifted_distribution():
    a, b, c = (jax.random.normal(jax.random.key(i), (300, 4)) for i in range(3))
    same = float(wae.mmd_imq(a, b))
    shifted = float(wae.mmd_imq(c + 1.0, b))
    assert abs(same) < 0.01 < shifted, (same, shifted)
    # Unbiased: over many pairs of prior samples the estimate averages to 0, negative values included.
    estimates = [float(wae.mmd_imq(*jax.random.normal(jax.random.key(10 + i), (2, 20, 4)))) for i in range(50)]
    assert min(estimates) < 0 < max(estimates) and abs(np.mean(estimates)) < 0.01


def test_the_weight_of_the_mmd_is_sweepable(digits):
    config = tiny_wae_config()
    assert "mmd_weight" in sweep.step_scalars(wae.make_task(config, digits), config, digits.image_shape)


def test_codec_encodes_to_codes_and_decodes_to_images_in_the_unit_range(digits):
    assert "wae" in tasks.names()
    config = tiny_wae_config()
    task = wae.make_task(config, digits)
    encode, decode = task.codec(task.init_state(jax.random.key(0)))
    x, labels = digits.test_images[:5], digits.test_labels[:5]
    codes = np.asarray(encode(x))
    assert codes.shape == (5, config.model.latent_dim) and codes.dtype == np.float32
    np.testing.assert_array_equal(codes, np.asarray(encode(x, labels)))  # unconditional: labels are ignored
    images = np.asarray(decode(codes))
    assert images.shape == (5, *digits.image_shape) and images.min() >= 0.0 and images.max() <= 1.0


@pytest.mark.slow
def test_trains_resumes_bit_for_bit_and_draws_its_figures(tmp_path, digits):
    config = tiny_wae_config(write_figures=True)
    straight = experiments_main.run(config, str(tmp_path / "straight"))
    # The same run as if it had been stopped after its checkpoint at step 20, then run again.
    shutil.copytree(tmp_path / "straight", tmp_path / "resumed")
    shutil.rmtree(tmp_path / "resumed" / "checkpoints" / "40")
    resumed = experiments_main.run(tiny_wae_config(), str(tmp_path / "resumed"))
    assert resumed == straight and straight["steps"] == 40
    assert {"test_mse", "test_reconstruction_loss", "test_mmd"} <= set(straight)
    template = wae.make_task(config, digits).init_state(jax.random.key(0))
    (a, step_a), (b, step_b) = (
        checkpoint.restore_latest(str(tmp_path / run / "checkpoints"), template) for run in ("resumed", "straight")
    )
    assert step_a == step_b == 40 and trees_equal(a, b)
    records = [r for r in read_jsonl(tmp_path / "straight" / "metrics.jsonl") if "train/loss" in r]
    assert records[-1]["train/loss"] < records[0]["train/loss"]
    assert {"train/reconstruction", "train/mmd", "train/mse"} <= set(records[0])
    assert {p.name for p in (tmp_path / "straight" / "figures").iterdir()} >= VAE_FIGURES - {"manifold.png"}


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"mmd_weight": 0.0}, "config.mmd_weight must be a positive number"),
        ({"model__reconstruction_loss": "l1"}, "config.model.reconstruction_loss must be one of 'mse', 'bernoulli'"),
        ({"ema_decay": 1.0}, "config.ema_decay"),
    ],
)
def test_bad_config_is_refused_before_compute(overrides, message, tmp_path):
    with pytest.raises(config_lib.ConfigError, match=message):
        experiments_main.run(tiny_wae_config(**overrides), str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_the_digits_config_scores_its_samples():
    config = wae_digits.get_config()
    assert (config.family, config.dataset, config.binarization) == ("wae", "digits", "dynamic")
    assert config.sample_quality.enabled and config.model.latent_dim == 8
