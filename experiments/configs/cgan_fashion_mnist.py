"""A class-conditional GAN that covers Fashion-MNIST (28×28×1): the recipe of cdcgan_hinge_sn_digits — one-hot
labels into G, a projection discriminator, hinge loss, spectral normalisation in D, an EMA of G — at the image size
of Fashion-MNIST, with the widths, step count and learning rates chosen by measurement (results/cgan_fashion_mnist.json
and the README's sample-quality table).

    python -m experiments.main --config experiments/configs/cgan_fashion_mnist.py --workdir runs/cgan_fm

G: z (64) + one-hot label -> 7×7×128 -> 7×7×64 -> 14×14×32 -> 28×28×1; D: 28×28 -> 14×14×64 -> 7×7×128 -> projection.
"""

from experiments.configs import cdcgan_hinge_sn_digits


def get_config():
    config = cdcgan_hinge_sn_digits.get_config()
    config.name = "cgan_fashion_mnist"
    config.dataset = "fashion_mnist"
    config.num_steps = 6000
    config.log_every = 100
    config.eval_every = 1000
    config.checkpoint_every = 1000
    config.eval_num_samples = 1000  # the periodic FID; the final score uses sample_quality.num_samples (10,000)
    return config
