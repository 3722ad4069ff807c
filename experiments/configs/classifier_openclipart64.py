"""The reference classifier of openclipart-png prepared at 64×64×3 (its 22 category folders as classes), whose
features score every generative model trained on that prepared directory (classifier FID, precision/recall).  Its
config is the reference one (gen_jax/tasks/classifier.py, `reference_config`) on the prepared directory; the one
this command trained is committed in gen_jax/reference_classifiers/prepared_<fingerprint>/ (the directory's
`store_name`), so every machine that prepares the same images scores with it:

    python -m experiments.prepare --images /usr/share/openclipart/png --out runs/prepared/openclipart64 \\
        --image_size 64
    python -m experiments.main --config experiments/configs/classifier_openclipart64.py \\
        --workdir runs/classifiers/openclipart64
    python -m experiments.commit_classifier --workdir runs/classifiers/openclipart64

Images prepared by another Pillow may differ in a bit or two, and so in fingerprint: that machine then trains a
classifier of its own for them (once, cached), and its scores are not the committed floor's.
"""

from gen_jax.tasks import classifier


def get_config():
    config = classifier.reference_config("openclipart64")
    config.dataset = "runs/prepared/openclipart64"  # a path: a prepared directory (python -m experiments.prepare)
    return config
