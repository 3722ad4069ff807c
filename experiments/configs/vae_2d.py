"""A VAE with a 2-D latent space on Fashion-MNIST, for the pictures: scatter by class, the decoded manifold,
interpolation paths.  `--config.dataset=digits` gives the same pictures for the digits in seconds."""

from experiments.configs import common


def get_config():
    config = common.vae_config()
    config.name = "vae_2d"
    config.dataset = "fashion_mnist"
    config.binarization = "static"
    config.architecture = "mlp"
    config.hidden = (512, 256)
    config.latent_dim = 2
    config.batch_size = 128
    config.num_steps = 4680
    config.log_every = 156
    config.eval_every = 936
    config.checkpoint_every = 936
    config.iwae_k = 1000
    return config
