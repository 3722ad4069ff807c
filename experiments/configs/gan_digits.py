"""The original GAN's recipe on scikit-learn's 8×8 digits: MLPs for G and D, the non-saturating loss, dropout in D
(Goodfellow et al. 2014; LeakyReLU in place of maxout, Adam as recommended by Radford et al. 2016)."""

from experiments.configs import common


def get_config():
    config = common.gan_config()
    config.name = "gan_digits"
    config.dataset = "digits"
    config.architecture = "mlp"
    config.loss = "non_saturating"
    config.latent_dim = 64
    config.g_hidden = (256, 512)
    config.d_hidden = (512, 256)
    config.negative_slope = 0.2
    config.d_dropout = 0.3
    config.batch_size = 64
    config.learning_rate = 2e-4
    config.d_learning_rate = 2e-4
    config.adam_b1 = 0.5
    config.num_steps = 10_000
    config.log_every = 200
    config.eval_every = 1000
    config.checkpoint_every = 2000
    config.eval_num_samples = 360  # the digits test split: the final score uses the same count
    return config
