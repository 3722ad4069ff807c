"""The reference classifier of digits, whose features score every generative model of digits (classifier FID,
classifier score, precision/recall).  Its config is fixed in gen_jax/tasks/classifier.py (`reference_config`); the
one this command trained is committed in gen_jax/reference_classifiers/digits/ and scores every run, so retrain it
only when that config changes, then commit the result (and the floors docs/results.md states):

    python -m experiments.main --config experiments/configs/classifier_digits.py \
        --workdir runs/classifiers/digits
    python -m experiments.commit_classifier --workdir runs/classifiers/digits
"""

from gen_jax.tasks import classifier


def get_config():
    return classifier.reference_config("digits")
