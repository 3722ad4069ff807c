"""The TensorFlow DCGAN tutorial's network and training choices on Fashion-MNIST (28×28×1): G = Dense 7·7·256 ->
ConvTranspose 128 s1 -> 64 s2 -> 1 s2 (BatchNorm + LeakyReLU(0.3), tanh), D = Conv 64 s2 -> 128 s2 (LeakyReLU,
Dropout 0.3) -> Dense 1; non-saturating loss, Adam 1e-4 for both, batch 256, z ~ N(0, I) of 100 dimensions.

The default is the tutorial's 50 epochs (11,700 steps): minutes on a GPU.  On 2 CPU cores this network does not
fit a 15-minute budget (about 180 GFLOP per step; see the README's GAN section).
"""

from experiments.configs import common


def get_config():
    config = common.gan_config()  # the tutorial's network and optimiser are the GAN defaults
    config.name = "dcgan_fashion_mnist"
    config.dataset = "fashion_mnist"
    config.num_steps = 11_700  # 50 epochs of 60,000 images at batch 256, as in the tutorial
    config.log_every = 117
    config.eval_every = 1170  # every 5 epochs: a snapshot of the fixed noise and a 1,000-sample FID
    config.checkpoint_every = 2340
    config.eval_num_samples = 1000
    return config
