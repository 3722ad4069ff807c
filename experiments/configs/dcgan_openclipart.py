"""dcgan_cifar10's recipe on your own images: here Debian's openclipart-png (public-domain clip art in 22 category
folders), prepared once at 64×64×3, so G and D have four levels (G: 4·4·512 -> 512 s1 -> 256 -> 128 -> 64 -> 3;
D: 64 -> 128 -> 256 -> 512).  Scored against a reference classifier trained on its 22 categories.

    python -m experiments.prepare --images /usr/share/openclipart/png --out runs/prepared/openclipart64 \\
        --image_size 64
    python -m experiments.main --config experiments/configs/dcgan_openclipart.py --workdir runs/dcgan_openclipart

Any prepared directory works the same way: `--config.dataset=<the directory>` (at the size it was prepared at: 32,
64 or 128 px for these networks); `--config.model.conditional=True` conditions on its categories.  Not run to the
end here: at 64 px its step takes about 19 s on 2 CPU cores (benchmarks/README.md), 10,000 steps want a GPU;
tests/test_colour.py trains it a few steps on a tiny prepared folder.
"""

from experiments.configs import dcgan_cifar10


def get_config():
    config = dcgan_cifar10.get_config()
    config.name = "dcgan_openclipart"
    config.dataset = "runs/prepared/openclipart64"  # a path: a prepared directory (python -m experiments.prepare)
    config.batch_size = 64
    config.num_steps = 10_000  # about 87 epochs of its 7,328 training images (8,105 PNGs, 777 held out as test)
    config.log_every = 100
    config.eval_every = 1000
    config.checkpoint_every = 1000
    return config
