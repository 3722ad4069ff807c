"""The demo: an MLP VAE on scikit-learn's bundled 8×8 digits (no download), under two minutes on 2 CPU cores."""

from experiments.configs import common


def get_config():
    config = common.vae_config()
    config.name = "vae_digits"
    config.dataset = "digits"
    config.binarization = "dynamic"  # digits are grey levels; Bernoulli draws keep the likelihood honest
    config.hidden = (256, 128)
    config.latent_dim = 8
    config.batch_size = 64
    config.num_steps = 3000
    config.learning_rate = 1e-3
    config.log_every = 100
    config.eval_every = 500
    config.checkpoint_every = 1000
    config.iwae_k = 1000
    return config
