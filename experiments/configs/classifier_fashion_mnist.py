"""The reference classifier of fashion_mnist, whose features score every generative model of fashion_mnist
(classifier FID, classifier score, precision/recall).  Its config is fixed in gen_jax/tasks/classifier.py
(`reference_config`); GAN runs and VAE runs with sample_quality.enabled=True train it into
<repo>/runs/classifiers/fashion_mnist on first use, or train it there yourself:

    python -m experiments.main --config experiments/configs/classifier_fashion_mnist.py \
        --workdir runs/classifiers/fashion_mnist
"""

from gen_jax.tasks import classifier


def get_config():
    return classifier.reference_config("fashion_mnist")
