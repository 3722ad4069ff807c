"""Shared test fixtures: tiny configs that train in a second or two on 2 CPU cores."""

import os
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)


def tiny_vae_config(**overrides):
    """An MLP VAE on digits small enough that a few hundred steps take about a second."""
    from experiments.configs import common

    config = common.vae_config()
    config.name = "tiny_vae"
    config.dataset = "digits"
    config.binarization = "dynamic"
    config.hidden = (32,)
    config.latent_dim = 2
    config.batch_size = 32
    config.num_steps = 60
    config.log_every = 10
    config.eval_every = 30
    config.checkpoint_every = 20
    config.keep_checkpoints = 10
    config.eval_batch_size = 200
    config.iwae_k = 10
    config.conv_features = (8, 16)
    config.conv_hidden = 32
    config.write_figures = False  # test_train checks the figures once, explicitly
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


@pytest.fixture
def vae_config():
    return tiny_vae_config
