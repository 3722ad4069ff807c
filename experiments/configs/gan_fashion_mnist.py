"""An unconditional GAN that covers Fashion-MNIST (28×28×1): cgan_fashion_mnist's recipe — DCGAN layers, hinge
loss, spectral normalisation in D, an EMA of G — without the labels (results/gan_fashion_mnist.json and the README's
sample-quality table).

    python -m experiments.main --config experiments/configs/gan_fashion_mnist.py --workdir runs/gan_fm
"""

from experiments.configs import cgan_fashion_mnist


def get_config():
    config = cgan_fashion_mnist.get_config()
    config.name = "gan_fashion_mnist"
    config.model.conditional = False
    return config
