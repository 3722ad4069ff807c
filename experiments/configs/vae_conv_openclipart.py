"""vae_conv_cifar10's model on your own images: here Debian's openclipart-png (public-domain clip art in 22 category
folders), prepared once at 64×64×3, so the encoder has four levels (32-64-128-256, down to 4×4).

    python -m experiments.prepare --images /usr/share/openclipart/png --out runs/prepared/openclipart64 \\
        --image_size 64
    python -m experiments.main --config experiments/configs/vae_conv_openclipart.py --workdir runs/vae_openclipart

Any prepared directory works the same way: `--config.dataset=<the directory>` (its size is the one it was prepared
at; the network takes its depth from it: 32, 64 or 128 px).  Run here to the end with `--record
results/vae_conv_openclipart.json` (16.5 min on 2 CPU cores): the README's own-images row, scored against the
committed classifier of the 22 categories; tests/test_colour.py trains it a few steps on a tiny prepared folder.
"""

from experiments.configs import vae_conv_cifar10
from gen_jax import config as config_lib


def get_config():
    config = vae_conv_cifar10.get_config()
    config.name = "vae_conv_openclipart"
    config.dataset = "runs/prepared/openclipart64"  # a path: a prepared directory (python -m experiments.prepare)
    config.batch_size = 64
    config.num_steps = 10_000  # about 87 epochs of its 7,328 training images (8,105 PNGs, 777 held out as test)
    config.log_every = 100
    config.eval_every = 1000
    config.checkpoint_every = 1000
    # Scored against the reference classifier of its 22 categories (committed for this prepared directory:
    # experiments/configs/classifier_openclipart64.py); n = its 777 test images.
    config.sample_quality = config_lib.sample_quality_config(enabled=True)
    return config
