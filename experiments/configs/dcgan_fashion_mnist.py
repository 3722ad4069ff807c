"""The TensorFlow DCGAN tutorial's network and training choices on Fashion-MNIST (28×28×1): G = Dense 7·7·256 ->
ConvTranspose 128 s1 -> 64 s2 -> 1 s2 (BatchNorm + LeakyReLU(0.3), tanh), D = Conv 64 s2 -> 128 s2 (LeakyReLU,
Dropout 0.3) -> Dense 1; non-saturating loss, Adam 1e-4 for both, batch 256, z ~ N(0, I) of 100 dimensions.

The tutorial trains 50 epochs (11,700 steps); the default here is the budget of ~15 minutes on 2 CPU cores.  Raise
it with --config.num_steps=11700 on an accelerator.
"""

from experiments.configs import common


def get_config():
    config = common.gan_config()  # the tutorial's network and optimiser are the GAN defaults
    config.name = "dcgan_fashion_mnist"
    config.dataset = "fashion_mnist"
    config.num_steps = 300
    config.log_every = 25
    config.eval_every = 100
    config.checkpoint_every = 100
    config.eval_num_samples = 1000
    return config
