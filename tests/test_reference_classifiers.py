"""The committed reference classifiers (gen_jax/reference_classifiers/<dataset>/): every machine scores with them,
so each reproduces the test accuracy and floors docs/results.md states for it, to the digits shown there."""

import dataclasses
import json
import os
import re

import numpy as np
import pytest

from experiments import readme_tables
from gen_jax import config as config_lib
from gen_jax import data, sample_quality
from gen_jax.tasks import classifier

from conftest import OPENCLIPART_DIR, REPO_ROOT, requires_fashion_mnist, requires_openclipart

MARKER = "<!-- committed reference classifiers -->"
# The committed name of openclipart-png's classifier: its prepared directory's store_name (experiments/configs/
# classifier_openclipart64.py).
OPENCLIPART_64 = "prepared_5cc0879106bdddbf"


def stated_rows() -> dict[str, list[str]]:
    """{data set: its cells} of the committed classifiers' table in docs/results.md (after `MARKER`)."""
    with open(os.path.join(REPO_ROOT, "docs", "results.md")) as f:
        page = f.read()
    table = page[page.index(MARKER) :].split("\n\n")[1]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines()[2:]]
    return {row[0]: row[1:] for row in rows}


def measured_cells(name: str) -> list[str]:
    """The table's cells measured now with the committed classifier of `name` (a data set or a prepared directory):
    test accuracy, n, the four floors, formatted as the table shows them."""
    dataset = data.load_dataset(name)
    evaluator = sample_quality.make_evaluator(dataset, 10_000)
    assert evaluator.classifier.directory == os.path.join(sample_quality.COMMITTED_DIR, dataset.store_name)
    logits, _ = evaluator.embed(dataset.test_images)
    accuracy = float(np.mean(np.argmax(logits, 1) == dataset.test_labels))
    assert accuracy == pytest.approx(evaluator.classifier.test_accuracy, abs=1e-6)  # as recorded when committed
    floor = evaluator.floor
    return [
        f"{accuracy:.4f}",
        f"{evaluator.num_samples:,}",
        readme_tables.significant(floor["classifier_fid"]),
        readme_tables.significant(floor["classifier_score"]),
        f"{floor['classifier_precision']:.3f}",
        f"{floor['classifier_recall']:.3f}",
    ]


def test_digits_classifier_reproduces_its_stated_accuracy_and_floors():
    assert measured_cells("digits") == stated_rows()["digits"][:6]


@requires_fashion_mnist
def test_fashion_mnist_classifier_reproduces_its_stated_accuracy_and_floors():
    assert measured_cells("fashion_mnist") == stated_rows()["fashion_mnist"][:6]


@requires_openclipart
def test_openclipart_classifier_reproduces_its_stated_accuracy_and_floors(tmp_path):
    """openclipart-png prepared at 64×64 as the README says gives the committed classifier's data (its fingerprint
    names the committed directory), and that classifier the stated accuracy and floors."""
    out = tmp_path / "openclipart64"
    data.prepare_images(OPENCLIPART_DIR, str(out), image_size=64, progress=False)
    name = data.load_dataset(str(out)).store_name
    assert measured_cells(str(out)) == stated_rows()[name][:6]


def test_every_committed_classifier_is_stated_small_and_of_todays_reference_config():
    committed = sorted(os.listdir(sample_quality.COMMITTED_DIR))
    assert committed == sorted(stated_rows()) == ["digits", "fashion_mnist", OPENCLIPART_64]
    for name in committed:
        directory = os.path.join(sample_quality.COMMITTED_DIR, name)
        # Small enough to ship: the 64×64×3 classifier's dense layer reads 16×16×64 features (7.9 MB).
        assert os.path.getsize(os.path.join(directory, sample_quality.COMMITTED_WEIGHTS)) < 8_500_000
        with open(os.path.join(directory, sample_quality.COMMITTED_RECORD)) as f:
            record = json.load(f)
        # A changed reference config must be trained and committed again; data_dir says only where data was read,
        # name and dataset how the data set was named (a prepared directory's path, its committed name the
        # directory's fingerprint).
        where = ("data_dir", "name", "dataset")
        stored = {k: v for k, v in record["config"].items() if k not in where}
        wanted = {k: v for k, v in config_lib.plain(classifier.reference_config(name)).items() if k not in where}
        assert stored == wanted


def test_other_data_under_a_committed_name_are_refused_in_one_line(digits):
    images = digits.train_images.copy()
    images[0, 0, 0, 0] = 1.0 - images[0, 0, 0, 0]
    other = dataclasses.replace(digits, train_images=images)
    with pytest.raises(sample_quality.ClassifierCacheError, match="classifier=trained") as error:
        sample_quality.reference_classifier(other)
    assert "\n" not in str(error.value) and re.search(r"fingerprint [0-9a-f]{12}", str(error.value))


def test_unlabelled_data_have_no_classifier(digits):
    one_class = dataclasses.replace(
        digits,
        train_labels=np.zeros_like(digits.train_labels),
        test_labels=np.zeros_like(digits.test_labels),
        num_classes=1,
        class_names=("images",),
    )
    assert sample_quality.reference_classifier(one_class) is None
