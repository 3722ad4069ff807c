"""The reference classifier of fashion_mnist, whose features score every generative model of fashion_mnist
(classifier FID, classifier score, precision/recall).  Its config is fixed in gen_jax/tasks/classifier.py
(`reference_config`); the one this command trained is committed in gen_jax/reference_classifiers/fashion_mnist/ and
scores every run, so retrain it only when that config changes, then commit the result (and the floors
docs/results.md states):

    python -m experiments.main --config experiments/configs/classifier_fashion_mnist.py \
        --workdir runs/classifiers/fashion_mnist
    python -m experiments.commit_classifier --workdir runs/classifiers/fashion_mnist
"""

from gen_jax.tasks import classifier


def get_config():
    return classifier.reference_config("fashion_mnist")
