"""A convolutional VAE on Fashion-MNIST, same data, likelihood and budget as vae_mlp_fashion_mnist."""

from experiments.configs import common


def get_config():
    config = common.vae_config()
    config.name = "vae_conv_fashion_mnist"
    config.dataset = "fashion_mnist"
    config.binarization = "static"
    config.architecture = "conv"
    config.conv_features = (32, 64)
    config.conv_hidden = 256
    config.latent_dim = 20
    config.batch_size = 128
    config.learning_rate = 1e-3
    config.num_steps = 4680
    config.log_every = 156
    config.eval_every = 468
    config.checkpoint_every = 936
    config.iwae_k = 1000
    return config
