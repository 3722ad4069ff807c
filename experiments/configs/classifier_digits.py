"""The reference classifier of digits, whose features score every generative model of digits (classifier FID,
classifier score, precision/recall).  Its config is fixed in gen_jax/tasks/classifier.py (`reference_config`); GAN
runs and VAE runs with sample_quality.enabled=True train it into <repo>/runs/classifiers/digits on first use, or
train it there yourself:

    python -m experiments.main --config experiments/configs/classifier_digits.py \
        --workdir runs/classifiers/digits
"""

from gen_jax.tasks import classifier


def get_config():
    return classifier.reference_config("digits")
