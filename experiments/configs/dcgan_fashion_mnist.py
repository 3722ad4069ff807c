"""The TensorFlow DCGAN tutorial's network and training choices on Fashion-MNIST (28×28×1): G = Dense 7·7·256 ->
ConvTranspose 128 s1 -> 64 s2 -> 1 s2 (BatchNorm + LeakyReLU(0.3), tanh), D = Conv 64 s2 -> 128 s2 (LeakyReLU,
Dropout 0.3) -> Dense 1; non-saturating loss, Adam 1e-4 for both, batch 256, z ~ N(0, I) of 100 dimensions.

    python -m experiments.main --config experiments/configs/dcgan_fashion_mnist.py --workdir runs/dcgan_fm

The default budget, 200 steps (under one epoch), takes 6 to 15 minutes on 2 shared CPU cores.  The tutorial trains
50 epochs: --config.num_steps=11700 --config.eval_every=1170, about a minute of training on one H100.  Both rows
are in docs/results.md's sample-quality table.
"""

from gen_jax.tasks import gan


def get_config():
    config = gan.default_config()  # the tutorial's network and optimiser are the GAN defaults
    config.name = "dcgan_fashion_mnist"
    config.dataset = "fashion_mnist"
    config.num_steps = 200  # the CPU budget; the tutorial's 50 epochs of 60,000 images at batch 256 are 11,700
    config.log_every = 10
    config.eval_every = 50  # a snapshot of the fixed noise and a 1,000-sample FID
    config.checkpoint_every = 50
    config.cpu_convolutions = "eigen"  # XLA:CPU's faster kernels for these 5×5 convolutions (benchmarks/README.md)
    return config
