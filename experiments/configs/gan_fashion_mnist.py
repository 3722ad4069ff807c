"""An unconditional GAN that covers Fashion-MNIST (28×28×1): cgan_fashion_mnist's recipe — DCGAN layers, hinge
loss, spectral normalisation in D, an EMA of G, G's Adam at 8e-4 against D's 2e-4 — without the labels, 12,000
steps.  Seeds 0–2 in one sweep (results/sweep_gan_fashion_mnist.json; 50.3 min on 2 CPU cores): FID 14.4 ± 1.2
(floor 0.334), precision 0.461 ± 0.006, recall 0.561 ± 0.008 over 10,000 samples each (docs/results.md's sample-quality
and model-zoo tables; seed 0 alone: results/superseded/gan_fashion_mnist.json).

    python -m experiments.main --config experiments/configs/gan_fashion_mnist.py --workdir runs/gan_fm
    python -m experiments.sweep --config experiments/configs/gan_fashion_mnist.py \\
        --workdir runs/sweep_gan_fashion_mnist --sweep seed=0:3 --members_in_turn
"""

from experiments.configs import cgan_fashion_mnist


def get_config():
    config = cgan_fashion_mnist.get_config()
    config.name = "gan_fashion_mnist"
    config.model.conditional = False
    config.num_steps = 12000
    return config
