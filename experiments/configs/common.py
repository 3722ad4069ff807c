"""Defaults every experiment config starts from; each config file overrides what makes it that experiment."""

import ml_collections


def base_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.name = "base"
    config.model = "vae"
    config.seed = 0
    config.dataset = "digits"
    config.data_dir = ""  # "" = the default places (see gen_jax/data.py)
    config.binarization = "none"  # "none" | "static" (> 0.5) | "dynamic" (Bernoulli draw per batch)
    config.batch_size = 128
    config.num_steps = 1000
    config.learning_rate = 1e-3
    config.log_every = 50
    config.eval_every = 500
    config.checkpoint_every = 500
    config.keep_checkpoints = 3
    config.latent_dim = 2
    config.eval_batch_size = 500
    return config


def vae_config() -> ml_collections.ConfigDict:
    config = base_config()
    config.model = "vae"
    config.architecture = "mlp"  # "mlp" | "conv"
    config.hidden = (500,)  # MLP widths, encoder order (the decoder mirrors them)
    config.conv_features = (32, 64)  # stride-2 conv widths, encoder order
    config.conv_hidden = 256
    config.likelihood = "bernoulli"  # "bernoulli" | "gaussian"
    config.learn_scale = False  # Gaussian only: learn one log standard deviation
    config.gaussian_log_scale = 0.0  # Gaussian only: the fixed log standard deviation
    config.beta = 1.0  # weight of the KL term; 1 is the ELBO
    config.eval_iwae_k = 0  # IWAE samples in the periodic evaluations (0 = off)
    config.iwae_k = 1000  # IWAE samples in the final evaluation (summary.json)
    return config
