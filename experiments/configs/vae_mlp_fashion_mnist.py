"""The Flax example's VAE on Fashion-MNIST: 784-500-20 MLP, Bernoulli on pixels binarised at 0.5, Adam 1e-3,
batch 128, 10 epochs (4,680 steps)."""

from experiments.configs import common


def get_config():
    config = common.vae_config()
    config.name = "vae_mlp_fashion_mnist"
    config.dataset = "fashion_mnist"
    config.binarization = "static"
    config.architecture = "mlp"
    config.hidden = (500,)
    config.latent_dim = 20
    config.batch_size = 128
    config.learning_rate = 1e-3
    config.num_steps = 4680
    config.log_every = 156
    config.eval_every = 468
    config.checkpoint_every = 936
    config.iwae_k = 1000
    return config
