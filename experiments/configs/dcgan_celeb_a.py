"""dcgan_cifar10's recipe on CelebA at 64×64×3: each face cropped to its centred 108×108 square (the crop of the
DCGAN TensorFlow code's CelebA runs) and resized to 64, so G and D have four levels (G: 4·4·512 -> 512 s1 -> 256 ->
128 -> 64 -> 3; D: 64 -> 128 -> 256 -> 512).  CelebA has no class labels, so no sample-quality score (its reference
classifier needs classes).

    python -m experiments.main --config experiments/configs/dcgan_celeb_a.py --workdir runs/dcgan_celeb_a

CelebA is read through TFDS, never downloaded: prepare it once where there is a network,
`tfds build celeb_a --file_format=array_record --data_dir=DIR`, then add `--config.data_dir=DIR`.  Reading it whole
into memory as f32 takes 162,770 × 64·64·3 × 4 bytes, about 8 GB.  Not run here yet; tests/test_colour.py trains
it a few steps on `tfds.testing.mock_data`.
"""

from experiments.configs import dcgan_cifar10


def get_config():
    config = dcgan_cifar10.get_config()
    config.name = "dcgan_celeb_a"
    config.dataset = "celeb_a"
    config.image_size = 64
    config.crop_size = 108
    config.sample_quality.enabled = False
    config.num_steps = 25_000  # about 20 epochs of 162,770 images
    config.eval_every = 2500
    config.checkpoint_every = 2500
    return config
