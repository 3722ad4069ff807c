"""dcgan_cifar10 made class-conditional (one-hot labels into G, a projection discriminator) with hinge loss and
spectral normalisation in D (Miyato et al. 2018; Miyato & Koyama 2018): the stronger GAN recipe of
cdcgan_hinge_sn_digits at 32×32×3, the same networks' depth from the image size.

    python -m experiments.main --config experiments/configs/cdcgan_hinge_sn_cifar10.py --workdir runs/cdcgan_cifar10

Data as dcgan_cifar10 (TFDS's cifar10 prepared in array_record).  Not run here yet; tests/test_colour.py trains it a
few steps on `tfds.testing.mock_data`.
"""

from experiments.configs import dcgan_cifar10


def get_config():
    config = dcgan_cifar10.get_config()
    config.name = "cdcgan_hinge_sn_cifar10"
    config.model.conditional = True
    config.model.spectral_norm = True
    config.loss = "hinge"
    return config
