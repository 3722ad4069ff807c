"""An MLP AutoEncoder with an 8-D code on scikit-learn's 8×8 digits, trained with MSE: about a minute on 2 CPU
cores.  `--config.hidden='()'` makes it the linear AutoEncoder, `--config.architecture=conv` convolutional."""

from experiments.configs import common


def get_config():
    config = common.ae_config()
    config.name = "ae_digits"
    config.dataset = "digits"
    config.hidden = (256, 128)
    config.latent_dim = 8
    config.batch_size = 64
    config.num_steps = 4000
    config.learning_rate = 1e-3
    config.log_every = 100
    config.eval_every = 500
    config.checkpoint_every = 1000
    return config
