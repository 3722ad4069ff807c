"""A stronger GAN on the 8×8 digits: class-conditional DCGAN (one-hot labels into G, a projection discriminator),
hinge loss and spectral normalisation in D (Miyato et al. 2018), no dropout.  Same data, batch, optimiser and EMA as
gan_digits, so the two rows of docs/results.md's table differ only in the model and the loss.

    python -m experiments.main --config experiments/configs/cdcgan_hinge_sn_digits.py --workdir runs/cdcgan

About 10-15 minutes on 2 shared CPU cores; scores in docs/results.md's sample-quality table.
"""

from experiments.configs import gan_digits


def get_config():
    config = gan_digits.get_config()
    config.name = "cdcgan_hinge_sn_digits"
    config.model.architecture = "dcgan"
    config.model.conditional = True
    config.model.spectral_norm = True
    config.model.d_dropout = 0.0
    config.model.g_features = (128, 64, 32)  # 2×2×128 -> 2×2×64 -> 4×4×32 -> 8×8×1
    config.model.d_features = (64, 128)  # 8×8 -> 4×4×64 -> 2×2×128
    config.model.kernel_size = 3
    config.loss = "hinge"
    config.num_steps = 6000
    config.eval_every = 1000
    config.checkpoint_every = 2000
    return config
