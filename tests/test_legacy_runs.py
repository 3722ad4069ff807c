"""Runs written before configs were nested (tests/data/legacy_runs, made by commit 8972bdc) are refused in one line
that names the version that wrote them, and nothing in them is changed: by a training command, by the tools that
load a trained run, and as a cached reference classifier."""

import json
import os
import shutil

import pytest

from experiments import main as experiments_main
from gen_jax import config as config_lib
from gen_jax import data, sample_quality, train, trained

from conftest import REPO_ROOT, snapshot, tiny_vae_config

LEGACY_VAE = os.path.join(REPO_ROOT, "tests", "data", "legacy_runs", "vae")
NAMES_THE_VERSION = r"written by gen_jax before commit 539d987 \(2026-11-30\), when configs were flat"


@pytest.fixture
def legacy_run(tmp_path):
    return str(shutil.copytree(LEGACY_VAE, tmp_path / "vae"))


def test_training_in_a_legacy_run_is_refused_in_one_line_and_changes_nothing(legacy_run):
    before = snapshot(legacy_run)
    with pytest.raises(train.WorkdirMismatchError, match=NAMES_THE_VERSION) as error:
        experiments_main.run(tiny_vae_config(num_steps=40), legacy_run)
    assert "\n" not in str(error.value) and "model.json" in str(error.value)
    assert snapshot(legacy_run) == before


def test_loading_a_legacy_run_for_latent_work_is_refused_in_one_line(legacy_run):
    before = snapshot(legacy_run)
    with pytest.raises(config_lib.ConfigError, match=NAMES_THE_VERSION):
        trained.load_run(legacy_run)
    assert snapshot(legacy_run) == before


def test_a_legacy_cached_classifier_is_refused_in_one_line(tmp_path):
    cache = tmp_path / "classifiers"
    shutil.copytree(LEGACY_VAE, cache / "digits")  # a flat config.json where the classifier's would be
    with pytest.raises(sample_quality.ClassifierCacheError, match=NAMES_THE_VERSION):
        sample_quality.get_or_train_classifier(data.load_dataset("digits"), str(cache))


def test_todays_configs_are_not_taken_for_flat_ones():
    assert config_lib.is_flat({"model": "vae", "hidden": [32]})
    assert config_lib.is_flat({"family": "vae", "hidden": [32], "image_shape": [8, 8, 1]})
    signature = config_lib.signature(tiny_vae_config(), (8, 8, 1))
    assert not config_lib.is_flat(signature) and not config_lib.is_flat(tiny_vae_config().to_dict())


def test_a_run_written_before_fields_were_added_loads_with_them_at_their_defaults(tmp_path):
    """A nested run's config.json from before image_size, placement or inception_weights existed still loads."""
    workdir = str(tmp_path / "run")
    experiments_main.run(tiny_vae_config(num_steps=4, checkpoint_every=4, eval_every=4, write_figures=False), workdir)
    path = os.path.join(workdir, "config.json")
    with open(path) as f:
        stored = json.load(f)
    for name in ("image_size", "crop_size", "placement"):
        stored.pop(name)
    stored["sample_quality"].pop("inception_weights")
    with open(path, "w") as f:
        json.dump(stored, f)
    run = trained.load_run(workdir)
    assert run.step == 4 and run.config.image_size == 0 and run.config.placement == "auto"
    assert run.config.sample_quality.inception_weights == ""
