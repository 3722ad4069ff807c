"""Sample quality (gen_jax/metrics.py, gen_jax/sample_quality.py): the Fréchet distance, classifier score and
k-NN precision/recall as pure functions of features, and the cached reference classifier that scores any sampler,
VAE included, with its floor."""

import dataclasses
import json
import os
import shutil

import jax
import numpy as np
import pytest

from experiments import main as experiments_main
from gen_jax import config as config_lib
from gen_jax import data, metrics, sample_quality
from gen_jax.tasks import classifier

from conftest import tiny_vae_config


def gaussian(n, d, seed, shift=0.0, scale=1.0):
    return np.random.default_rng(seed).normal(size=(n, d)) * scale + shift


def test_frechet_distance_of_a_set_with_itself_is_zero_and_grows_with_a_shift():
    a = gaussian(2000, 8, 0)
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    distances = [metrics.frechet_distance(a, a + shift) for shift in (0.5, 1.0, 2.0)]
    # A shift by s in every one of 8 dimensions moves the means by 8 s² and leaves the covariances alone.
    np.testing.assert_allclose(distances, [8 * 0.25, 8 * 1.0, 8 * 4.0], rtol=1e-6)
    assert (
        metrics.frechet_distance(a, gaussian(2000, 8, 1, shift=1.0))
        > metrics.frechet_distance(a, gaussian(2000, 8, 1, shift=0.5))
        > metrics.frechet_distance(a, gaussian(2000, 8, 1))
    )


def test_frechet_distance_matches_the_closed_form_for_diagonal_gaussians():
    """For diagonal covariances the distance is ‖μa − μb‖² + Σ (√σa² − √σb²)²."""
    var_a, var_b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    mean_a, mean_b = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    expected = 1.0 + 4.0 + (1 - 3) ** 2 + (2 - 1) ** 2 + 0.0
    got = metrics.frechet_distance_from_statistics(mean_a, np.diag(var_a), mean_b, np.diag(var_b))
    assert got == pytest.approx(expected, rel=1e-10)


def test_classifier_score_ranges_from_one_to_the_number_of_classes():
    confident_and_varied = 50.0 * np.eye(10)[np.arange(100) % 10]
    assert metrics.classifier_score(confident_and_varied) == pytest.approx(10.0, rel=1e-6)
    assert metrics.classifier_score(np.tile(confident_and_varied[:1], (100, 1))) == pytest.approx(1.0)
    assert metrics.classifier_score(np.zeros((100, 10))) == pytest.approx(1.0)


def test_knn_radii_by_hand():
    points = np.array([[0.0], [1.0], [3.0], [7.0]])
    # Squared distance to the 1st / 2nd nearest other point.
    np.testing.assert_allclose(metrics.knn_radii(points, 1), [1.0, 1.0, 4.0, 16.0])
    np.testing.assert_allclose(metrics.knn_radii(points, 2), [9.0, 4.0, 9.0, 36.0])


def test_precision_and_recall_separate_fidelity_from_coverage():
    real = gaussian(600, 4, 0)
    assert metrics.precision_recall(real, real.copy()) == (1.0, 1.0)
    assert metrics.precision_recall(real, gaussian(600, 4, 1, shift=20.0)) == (0.0, 0.0)
    # Mode collapse: samples only near one real point are realistic but cover little of the data.
    collapsed = real[:1] + gaussian(600, 4, 2, scale=0.05)
    precision, recall = metrics.precision_recall(real, collapsed)
    assert precision > 0.9 and recall < 0.1
    # Chunking does not change the answer.
    assert metrics.precision_recall(real, collapsed, chunk=7) == (precision, recall)


@pytest.fixture(scope="module")
def tiny_reference(tmp_path_factory):
    """A reference classifier of digits trained for a few steps into a fresh cache (the real one trains 1000)."""
    cache = str(tmp_path_factory.mktemp("classifiers"))
    steps_before = classifier._REFERENCE_STEPS["digits"]
    classifier._REFERENCE_STEPS["digits"] = 60
    try:
        dataset = data.load_dataset("digits")
        evaluator = sample_quality.make_evaluator(dataset, 10_000, cache, classifier="trained")
        yield cache, dataset, evaluator
    finally:
        classifier._REFERENCE_STEPS["digits"] = steps_before


@pytest.mark.slow
def test_evaluator_scores_real_images_near_the_floor_and_noise_far_from_it(tiny_reference):
    cache, dataset, evaluator = tiny_reference
    assert evaluator.num_samples == len(dataset.test_images) == 360  # capped at the test split
    assert os.path.exists(os.path.join(cache, "digits", "summary.json"))

    def real_sampler(key, count):  # held-out images, drawn at random: as good as a generator can be
        return dataset.test_images[np.asarray(jax.random.choice(key, len(dataset.test_images), (count,)))]

    def noise_sampler(key, count):
        return np.asarray(jax.random.uniform(key, (count, *dataset.image_shape)))

    real = evaluator.summary(real_sampler, jax.random.key(1))
    noise = evaluator.summary(noise_sampler, jax.random.key(1))
    assert {
        "classifier_fid",
        "classifier_fid_floor",
        "classifier_score",
        "classifier_precision",
        "classifier_recall",
        "num_samples",
    } <= set(real)
    assert real["num_samples"] == noise["num_samples"] == 360
    assert real["classifier_fid_floor"] == noise["classifier_fid_floor"] == evaluator.floor["classifier_fid"]
    assert real["classifier_fid"] < 2 * real["classifier_fid_floor"] + 1.0
    assert noise["classifier_fid"] > 10 * real["classifier_fid"]
    assert noise["classifier_recall"] < 0.2 < 0.5 < real["classifier_recall"]
    assert noise["classifier_precision"] < real["classifier_precision"]
    assert noise["classifier_score"] < real["classifier_score"]


@pytest.mark.slow
def test_cached_classifier_is_reused_and_a_foreign_one_is_refused(tiny_reference, tmp_path):
    cache, dataset, evaluator = tiny_reference
    checkpoints = os.path.join(cache, "digits", "checkpoints")
    before = sorted(os.listdir(checkpoints))
    again = sample_quality.get_or_train_classifier(dataset, cache)
    assert sorted(os.listdir(checkpoints)) == before
    assert again.test_accuracy == evaluator.classifier.test_accuracy

    # A classifier trained before a field was added to the config (its config.json lacks the field, here at the
    # default) is the reference one still.
    older = str(tmp_path / "older")
    shutil.copytree(cache, older)
    config_path = os.path.join(older, "digits", "config.json")
    with open(config_path) as f:
        stored = json.load(f)
    assert stored.pop("cpu_convolutions") == "ynnpack" and stored["model"].pop("conv_features")
    with open(config_path, "w") as f:
        json.dump(stored, f)
    assert sample_quality.get_or_train_classifier(dataset, older).test_accuracy == again.test_accuracy
    assert sorted(os.listdir(os.path.join(older, "digits", "checkpoints"))) == before

    foreign = str(tmp_path / "classifiers")
    shutil.copytree(cache, foreign)
    config_path = os.path.join(foreign, "digits", "config.json")
    with open(config_path) as f:
        stored = json.load(f)
    stored["model"]["feature_dim"] = 7
    with open(config_path, "w") as f:
        json.dump(stored, f)
    with pytest.raises(sample_quality.ClassifierCacheError, match="feature_dim"):
        sample_quality.get_or_train_classifier(dataset, foreign)
    assert sorted(os.listdir(os.path.join(foreign, "digits", "checkpoints"))) == before


@pytest.mark.slow
def test_vae_summary_carries_the_same_sample_quality_fields(tiny_reference, tmp_path):
    cache, _, evaluator = tiny_reference
    config = tiny_vae_config(num_steps=20, checkpoint_every=20, eval_every=20, iwae_k=0)
    config.sample_quality.enabled = True
    config.sample_quality.classifier_dir = cache
    config.sample_quality.classifier = "trained"
    summary = experiments_main.run(config, str(tmp_path))
    assert summary["classifier_fid_floor"] == evaluator.floor["classifier_fid"]
    assert summary["num_samples"] == 360
    assert summary["classifier_fid"] > summary["classifier_fid_floor"]


@pytest.mark.slow
def test_cvae_summary_scores_its_class_conditional_samples_and_real_data_on_the_same_scale(tiny_reference, tmp_path):
    from test_cvae import tiny_cvae_config

    cache, dataset, evaluator = tiny_reference
    config = tiny_cvae_config(num_steps=20)
    config.model.prior = "class"
    config.sample_quality.enabled = True
    config.sample_quality.classifier_dir = cache
    config.sample_quality.classifier = "trained"
    summary = experiments_main.run(config, str(tmp_path))
    assert summary["classifier_fid_floor"] == evaluator.floor["classifier_fid"] and summary["num_samples"] == 360
    assert 0.0 <= summary["conditional_accuracy"] <= 1.0
    # The scale: the classifier on the test images as the model sees them (dynamically binarised with the run's key).
    logits, _ = evaluator.embed(data.test_images(config, dataset))
    real = np.mean(np.argmax(logits, axis=1) == dataset.test_labels)
    assert summary["conditional_accuracy_real"] == pytest.approx(real, abs=1e-12)
    assert summary["conditional_accuracy_real"] > 0.5  # even a 60-step classifier reads binarised digits


def test_the_evaluator_on_demand_checks_the_config_now_and_is_made_once_when_asked(digits, monkeypatch):
    made = []
    monkeypatch.setattr(sample_quality, "make_evaluator", lambda *args, **kwargs: made.append(args) or len(made))
    config = tiny_vae_config(**{"sample_quality.enabled": True, "sample_quality.num_samples": 50})
    get = sample_quality.evaluator_on_demand(config, digits)
    assert not made
    assert get() == get() == 1 and len(made) == 1
    config = tiny_vae_config(**{"sample_quality.enabled": True, "sample_quality.num_samples": 2})
    with pytest.raises(config_lib.ConfigError, match="num_samples must be at least"):
        sample_quality.evaluator_on_demand(config, digits)


@pytest.mark.slow
def test_a_classifier_written_by_commit_classifier_scores_as_the_trained_one(tiny_reference, tmp_path):
    cache, dataset, evaluator = tiny_reference
    sample_quality.commit_classifier(os.path.join(cache, "digits"), dataset, str(tmp_path))
    committed = sample_quality.committed_classifier(dataset, str(tmp_path))
    assert committed.test_accuracy == evaluator.classifier.test_accuracy
    images = dataset.test_images[:50]
    for ours, theirs in zip(committed.apply(images), evaluator.classifier.apply(images)):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))


# --- Inception scores ---------------------------------------------------------------------------------------------

INCEPTION_KEYS = {
    "inception_fid",
    "inception_fid_floor",
    "inception_kid",
    "inception_kid_std",
    "inception_kid_floor",
    "inception_kid_std_floor",
    "inception_kid_subset_size",
}
CLASSIFIER_KEYS = {
    "classifier_fid",
    "classifier_fid_floor",
    "classifier_score",
    "classifier_score_real",
    "classifier_precision",
    "classifier_precision_floor",
    "classifier_recall",
    "classifier_recall_floor",
    "classifier_test_accuracy",
}


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory):
    """A weights file of the FID Inception-v3's structure with drawn values: He-scaled kernels, unit batch norms,
    so that features stay of order one and differ between images (the published weights cannot be downloaded)."""
    from gen_jax import inception

    rng = np.random.default_rng(0)
    arrays = {}
    for name, shape in inception.variable_shapes().items():
        if name.endswith("/kernel"):
            arrays[name] = rng.standard_normal(shape, np.float32) * np.float32(np.sqrt(2.0 / np.prod(shape[:3])))
        else:
            arrays[name] = (np.ones if name.endswith(("/var", "/scale")) else np.zeros)(shape, np.float32)
    path = str(tmp_path_factory.mktemp("inception") / "inception_fid.npz")
    inception.save_variables(arrays, path)
    return path


def unlabelled(dataset: data.Dataset) -> data.Dataset:
    """`dataset` without its labels, as a prepared folder of one class holds it."""
    return dataclasses.replace(
        dataset,
        name="unlabelled_digits",
        train_labels=np.zeros_like(dataset.train_labels),
        test_labels=np.zeros_like(dataset.test_labels),
        num_classes=1,
        class_names=("images",),
    )


def test_samples_are_quantised_to_8_bits_as_png_files_hold_them():
    x = np.array([-0.1, 0.0, 0.5 / 255, 0.3, 1.0, 1.2], np.float32)
    codes = np.array([0, 0, 0, 76, 255, 255], np.float32)  # what ToTensor makes of a PNG: u8 / 255 in f32
    np.testing.assert_array_equal(sample_quality.quantised(x), codes / np.float32(255))
    assert np.all(np.abs(sample_quality.quantised(x[1:5]) - x[1:5]) <= 0.5 / 255 + 1e-7)


def test_without_inception_weights_one_line_says_how_to_provide_them(digits, capsys):
    config = tiny_vae_config(**{"sample_quality.enabled": True, "sample_quality.num_samples": 8})
    assert sample_quality.evaluator_from_config(config, unlabelled(digits)) is None
    out = capsys.readouterr().out
    assert (
        out.count("\n") == 1 and "no labels" in out and "experiments.fid_weights" in out and "inception_weights" in out
    )


def test_a_bad_inception_weights_path_is_one_line_before_any_compute(tmp_path):
    config = tiny_vae_config(**{"sample_quality.enabled": True, "sample_quality.inception_weights": "/no/such.npz"})
    with pytest.raises(config_lib.ConfigError, match="do not exist") as error:
        experiments_main.run(config, str(tmp_path / "run"))
    assert "\n" not in str(error.value) and not os.path.exists(tmp_path / "run")
    (tmp_path / "other.npz").write_bytes(b"not a zip file")
    config.sample_quality.inception_weights = str(tmp_path / "other.npz")
    with pytest.raises(config_lib.ConfigError, match="not an .npz") as error:
        sample_quality.validate_config(config)
    assert "\n" not in str(error.value)


@pytest.mark.slow
def test_unlabelled_data_get_inception_scores_without_a_classifier(digits, inception_weights):
    config = tiny_vae_config(
        **{
            "sample_quality.enabled": True,
            "sample_quality.num_samples": 8,
            "sample_quality.inception_weights": inception_weights,
        }
    )
    evaluator = sample_quality.evaluator_from_config(config, unlabelled(digits))
    assert evaluator.classifier is None and evaluator.num_samples == 8

    def noise_sampler(key, count):
        return np.asarray(jax.random.uniform(key, (count, *digits.image_shape)))

    summary = evaluator.summary(noise_sampler, jax.random.key(1))
    assert set(summary) == INCEPTION_KEYS | {"num_samples", "sample_quality_reference"}
    assert summary["inception_kid_subset_size"] == 8
    assert summary["inception_fid"] > summary["inception_fid_floor"] > 0
    assert summary["inception_kid"] > summary["inception_kid_floor"]


@pytest.mark.slow
def test_labelled_data_get_both_kinds_of_scores_in_a_run_summary(inception_weights, tmp_path):
    config = tiny_vae_config(num_steps=20, checkpoint_every=20, eval_every=20, iwae_k=0)
    config.sample_quality.enabled = True
    config.sample_quality.num_samples = 8
    config.sample_quality.inception_weights = inception_weights
    summary = experiments_main.run(config, str(tmp_path))
    assert set(summary) >= INCEPTION_KEYS | CLASSIFIER_KEYS
    assert summary["classifier_test_accuracy"] == pytest.approx(0.975)  # the committed digits classifier
    assert "reference_classifiers" in summary["sample_quality_reference"]
