"""A DCGAN on CIFAR-10 (32×32×3) whose depth comes from the image size (`g_features=()`, `d_features=()`,
conv_width = 64: gen_jax/models/gan.py's `dcgan_features`): G = Dense 4·4·512 -> ConvTranspose 256 s1 -> 128 s2 ->
64 s2 -> 3 s2, tanh; D = Conv 64 -> 128 -> 256, each stride 2, down to 4×4, then Dense 1; one more level per
doubling of the side (`--config.image_size=64`).  5×5 kernels, BatchNorm and LeakyReLU(0.3) in G, LeakyReLU and no
dropout in D; non-saturating loss, Adam 2e-4 with β1 = 0.5 for both networks and batch 128 (Radford et al. 2016),
an EMA of G for samples and scores.

    python -m experiments.main --config experiments/configs/dcgan_cifar10.py --workdir runs/dcgan_cifar10

CIFAR-10 is read through TFDS, never downloaded: prepare it once where there is a network,
`tfds build cifar10 --file_format=array_record --data_dir=DIR`, then add `--config.data_dir=DIR`.  Not run here yet
(this machine has no network to fetch it); tests/test_colour.py trains it a few steps on `tfds.testing.mock_data`.
"""

from gen_jax.tasks import gan


def get_config():
    config = gan.default_config()
    config.name = "dcgan_cifar10"
    config.dataset = "cifar10"
    config.model.g_features = ()  # from the image size (gen_jax/models/sizing.py)
    config.model.d_features = ()
    config.model.conv_width = 64
    config.model.d_dropout = 0.0
    config.batch_size = 128
    for optim in (config.optim, config.d_optim):
        optim.learning_rate, optim.b1 = 2e-4, 0.5
    config.num_steps = 11_700  # 30 epochs of 50,000 images
    config.log_every = 100
    config.eval_every = 1170
    config.checkpoint_every = 1170
    return config
