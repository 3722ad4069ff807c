"""A convolutional VAE on CIFAR-10 (32×32×3) whose depth comes from the image size: stride-2 3×3 convolutions
32-64-128 down to a 4×4 map (`conv_features=()`, `conv_width=32`; `--config.image_size=64` adds a level of 256), a
512-wide hidden layer, a 128-dimensional code, and a Gaussian likelihood on the [0, 1] pixels with one learned scale.

    python -m experiments.main --config experiments/configs/vae_conv_cifar10.py --workdir runs/vae_conv_cifar10

CIFAR-10 is read through TFDS, never downloaded: prepare it once where there is a network,
`tfds build cifar10 --file_format=array_record --data_dir=DIR`, then add `--config.data_dir=DIR`.  Not run here yet
(this machine has no network to fetch it); tests/test_colour.py trains it a few steps on `tfds.testing.mock_data`.
"""

from gen_jax.tasks import vae


def get_config():
    config = vae.default_config()
    config.name = "vae_conv_cifar10"
    config.dataset = "cifar10"
    config.model.architecture = "conv"
    config.model.conv_features = ()  # from the image size (gen_jax/models/sizing.py)
    config.model.conv_width = 32
    config.model.conv_hidden = 512
    config.model.latent_dim = 128
    config.model.likelihood = "gaussian"
    config.model.learn_scale = True
    config.batch_size = 128
    config.num_steps = 39_000  # 100 epochs of 50,000 images
    config.log_every = 390
    config.eval_every = 3900
    config.checkpoint_every = 3900
    config.iwae_k = 100  # the final IWAE bound: k = 100 on 32×32×3 (k = 1,000 would take ten times as long)
    return config
