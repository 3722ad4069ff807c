"""Sample quality, measured the same way for every generative model of a data set: two kinds of scores.

* Classifier scores, on the penultimate features of a small classifier of the data set itself (the `classifier`
  family).  The reference classifiers of digits and Fashion-MNIST are committed with the package
  (`gen_jax/reference_classifiers/<dataset>/`: weights, config, test accuracy and a fingerprint of the training
  split they were trained on), so every machine gives the same numbers; a data set without one gets one trained
  once into a cache directory and reused (`config.sample_quality.classifier = "trained"` always does that).
  - classifier_fid: the Fréchet distance between Gaussians fitted to generated and real features;
  - classifier_score: exp E KL(p(y|x) ‖ p(y)), the Inception Score's formula with our classifier (1 to K classes);
  - classifier_precision / classifier_recall: k-NN manifold precision and recall (Kynkäänniemi et al. 2019, k = 3).
  They need labels; they compare models of one data set with each other, not with papers.
* Inception scores, with `config.sample_quality.inception_weights` set (`gen_jax.inception`, pytorch-fid's network
  and weights): inception_fid (the FID papers report, as pytorch-fid computes it) and inception_kid (torch-fidelity's
  KID, its mean and std over subsets of inception_kid_subset_size).  Labelled or not, every data set gets them.
  Images are quantised to 8 bits (round(x · 255) / 255) first, as pytorch-fid sees samples saved as PNG files.

Every number comes with its floor: the same metric for real held-out images (n test images in place of the n
samples), which shows what a perfect generator would get with these features and this sample count (FID's
estimate is biased upwards at finite n, so 0 is not reachable).  The reference set is n training images, the same
for every model (a fixed key); n = min(num_samples, test split size), reported as `num_samples` (360 for digits,
whose test split holds 360 images).

`make_evaluator` builds the references once; `Evaluator.summary(sampler, key)` scores any sampler
(key, count -> f32[count, H, W, C] in [0, 1]), so VAE and GAN samples are scored alike.  The metrics themselves
are pure functions in `metrics.py` and `fid.py`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import numpy as np

from gen_jax import config as config_lib
from gen_jax import data, fid, inception, keys, metrics
from gen_jax.reference_classifier import (  # noqa: F401  (re-exported: scoring's classifiers, named from here too)
    CLASSIFIER_SOURCES,
    COMMITTED_DIR,
    COMMITTED_RECORD,
    COMMITTED_WEIGHTS,
    DEFAULT_CACHE_DIR,
    ClassifierCacheError,
    FeatureClassifier,
    commit_classifier,
    committed_classifier,
    data_fingerprint,
    get_or_train_classifier,
    reference_classifier,
)

NEAREST_NEIGHBOURS = 3  # k of the k-NN manifolds, as recommended by Kynkäänniemi et al. 2019

Sampler = Callable[[jax.Array, int], np.ndarray]


# --- scoring ------------------------------------------------------------------------------------------------------


def quantised(images: np.ndarray) -> np.ndarray:
    """images f32[...] in [0, 1] -> round(x · 255) / 255, clipped to [0, 1]: what an 8-bit PNG file holds."""
    return np.round(np.clip(np.asarray(images, np.float32), 0.0, 1.0) * 255.0) / 255.0


@dataclasses.dataclass(frozen=True, eq=False)
class Evaluator:
    """Scores images against a fixed reference set of n training images, with the floor of n test images.

    Attributes:
      classifier: the reference classifier whose features give the classifier scores (None: data without labels).
      num_samples: n, the size of the reference set, of the floor's test set and of every scored sample.
      reference_features: f32[n, F] classifier features of the n training images (None without a classifier).
      floor: the scores of n test images (what a perfect generator would get), under the summary's names.
      batch_size: images per network call.
      inception: the FID Inception-v3's variables (`inception.load_variables`), None when no weights are set.
      inception_reference: f32[n, 2048] pool3 features of the n training images, quantised to 8 bits.
    """

    classifier: FeatureClassifier | None
    num_samples: int
    reference_features: np.ndarray | None
    reference_statistics: tuple[np.ndarray, np.ndarray] | None
    floor: dict
    batch_size: int
    inception: dict | None = None
    inception_reference: np.ndarray | None = None

    def embed(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """images f32[N, H, W, C] in [0, 1] -> (logits f32[N, K], features f32[N, F])."""
        return embed(self.classifier, images, self.batch_size)

    def score_images(self, images: np.ndarray, with_precision_recall: bool = True) -> dict[str, float]:
        """The classifier scores (classifier_fid, classifier_score, and classifier_precision, classifier_recall) of
        images f32[N, H, W, C] in [0, 1] against the reference; {} without a classifier.

        Precision and recall need N = num_samples: the k-NN radii of the sample set shrink as N grows.
        """
        if self.classifier is None:
            return {}
        logits, features = self.embed(images)
        scores = {
            "classifier_fid": metrics.frechet_distance_from_statistics(
                *metrics.feature_statistics(features), *self.reference_statistics
            ),
            "classifier_score": metrics.classifier_score(logits),
        }
        if with_precision_recall:
            if len(images) != self.num_samples:
                raise ValueError(
                    f"precision/recall need {self.num_samples} images (the reference size), got {len(images)}"
                )
            scores["classifier_precision"], scores["classifier_recall"] = metrics.precision_recall(
                self.reference_features, features, NEAREST_NEIGHBOURS
            )
        return scores

    def inception_scores(self, images: np.ndarray) -> dict[str, float]:
        """inception_fid, inception_kid, inception_kid_std of images f32[N, H, W, C] in [0, 1] (quantised to 8
        bits first) against the reference's pool3 features; {} when no Inception weights are set."""
        if self.inception is None:
            return {}
        features = inception.pool3_features(self.inception, quantised(images), self.batch_size)
        return fid.inception_scores(features, self.inception_reference)

    def all_scores(self, images: np.ndarray) -> dict[str, float]:
        """`score_images` and `inception_scores` of n = num_samples images."""
        return {**self.score_images(images), **self.inception_scores(images)}

    def summary(self, sampler: Sampler, key: jax.Array) -> dict:
        """The sample-quality fields of a summary.json for `sampler`, its floors and the sample count."""
        scores = self.all_scores(draw_samples(sampler, key, self.num_samples, self.batch_size))
        floors = {FLOOR_NAMES.get(name, f"{name}_floor"): value for name, value in self.floor.items()}
        fields = {**scores, **floors, "num_samples": self.num_samples}
        features = []
        if self.classifier is not None:
            fields["classifier_test_accuracy"] = self.classifier.test_accuracy
            features.append(f"classifier {self.classifier.directory}")
        if self.inception is not None:
            fields["inception_kid_subset_size"] = min(fid.KID_SUBSET_SIZE, self.num_samples)
            features.append("FID Inception-v3 pool3 (8-bit images)")
        fields["sample_quality_reference"] = (
            f"{self.num_samples} training images; floor: {self.num_samples} test images; features: "
            + "; ".join(features)
        )
        return fields


# A floor's summary name where it is not <score>_floor: the classifier score of real images is its "_real".
FLOOR_NAMES = {"classifier_score": "classifier_score_real"}


def embed(classifier: FeatureClassifier, images: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """images f32[N, H, W, C] in [0, 1] -> (logits f32[N, K], features f32[N, F]), in batches of `batch_size`."""

    def both(x, key):
        del key
        logits, features = classifier.apply(x)
        return np.concatenate([np.asarray(logits), np.asarray(features)], axis=1)

    outputs = metrics.map_batches(both, np.asarray(images, np.float32), batch_size, jax.random.key(0))
    return outputs[:, : classifier.num_classes], outputs[:, classifier.num_classes :]


def draw_samples(sampler: Sampler, key: jax.Array, count: int, batch_size: int) -> np.ndarray:
    """`count` images from sampler(key_i, batch_size) for keys fold_in(key, i); one batch shape, so one compile."""
    batches = [np.asarray(sampler(jax.random.fold_in(key, i), batch_size)) for i in range(-(-count // batch_size))]
    return np.concatenate(batches)[:count]


def make_evaluator(
    dataset: data.Dataset,
    num_samples: int,
    cache_dir: str | None = None,
    key: jax.Array | None = None,
    batch_size: int = 500,
    classifier: str = "committed",
    inception_weights: str = "",
) -> Evaluator:
    """Gets the reference classifier (`reference_classifier`: committed, or trained and cached; none for data
    without labels) and the Inception weights where given, draws the n reference training images and n floor test
    images (n = min(num_samples, test split size)) with `key`, and scores the floor.

    The default key is the same for every run, so every model of a data set is scored against the same images.
    """
    feature_classifier = reference_classifier(dataset, classifier, cache_dir)
    variables = inception.load_variables(inception_weights) if inception_weights else None
    n = min(num_samples, len(dataset.test_images), len(dataset.train_images))
    train_key, test_key = jax.random.split(jax.random.key(keys.REFERENCE_SEED) if key is None else key)
    train_idx = np.asarray(jax.random.choice(train_key, len(dataset.train_images), (n,), replace=False))
    test_idx = np.asarray(jax.random.choice(test_key, len(dataset.test_images), (n,), replace=False))
    reference_images = dataset.train_images[np.sort(train_idx)]
    reference = None if feature_classifier is None else embed(feature_classifier, reference_images, batch_size)[1]
    evaluator = Evaluator(
        classifier=feature_classifier,
        num_samples=n,
        reference_features=reference,
        reference_statistics=None if reference is None else metrics.feature_statistics(reference),
        floor={},
        batch_size=batch_size,
        inception=variables,
        inception_reference=None
        if variables is None
        else inception.pool3_features(variables, quantised(reference_images), batch_size),
    )
    return dataclasses.replace(evaluator, floor=evaluator.all_scores(dataset.test_images[np.sort(test_idx)]))


# --- config -------------------------------------------------------------------------------------------------------


def validate_config(config) -> None:
    """Checks `config.sample_quality` (`config_lib.sample_quality_config`) up front, naming the field; a configured
    Inception weights file that is missing or not one is refused here, before any compute (one line).  A stored
    config written before a field existed reads it at its default."""
    config_lib.require_bool(config, "sample_quality.enabled")
    if config.sample_quality.enabled:
        config_lib.require_positive_int(config, "sample_quality.num_samples")
        if config.sample_quality.num_samples < NEAREST_NEIGHBOURS + 1:
            raise config_lib.ConfigError(
                f"config.sample_quality.num_samples must be at least {NEAREST_NEIGHBOURS + 1} "
                f"(k-NN precision/recall with k = {NEAREST_NEIGHBOURS}), "
                f"got {config.sample_quality.num_samples}"
            )
        if not isinstance(config.sample_quality.classifier_dir, str):
            raise config_lib.ConfigError(
                f"config.sample_quality.classifier_dir must be a directory path ('' = "
                f"{DEFAULT_CACHE_DIR}), got {config.sample_quality.classifier_dir!r}"
            )
        source = config.sample_quality.get("classifier", "committed")
        if source not in CLASSIFIER_SOURCES:
            raise config_lib.ConfigError(
                f"config.sample_quality.classifier must be one of {', '.join(CLASSIFIER_SOURCES)}, got {source!r}"
            )
        weights = config.sample_quality.get("inception_weights", "")
        if not isinstance(weights, str):
            raise config_lib.ConfigError(
                f"config.sample_quality.inception_weights must be the path of an .npz ('' = no Inception scores), "
                f"got {weights!r}"
            )
        if weights:
            inception.check_weights_file(weights)


def evaluator_from_config(config, dataset: data.Dataset) -> Evaluator | None:
    """The evaluator `config.sample_quality` asks for, or None when it is not enabled or nothing can score
    `dataset` (no labels and no Inception weights); without Inception weights one line says how to provide them."""
    validate_config(config)
    quality = config.sample_quality
    if not quality.enabled:
        return None
    weights = quality.get("inception_weights", "")
    if not weights and jax.process_index() == 0:
        scored = (
            f"none ({dataset.name} has no labels for a classifier)"
            if dataset.num_classes < 2
            else "classifier scores only"
        )
        print(
            f"Sample quality: {scored}; sample_quality.inception_weights is not set: for Inception FID and KID, "
            f"{inception.HOW_TO_GET_WEIGHTS}.",
            flush=True,
        )
    if not weights and dataset.num_classes < 2:
        return None
    return make_evaluator(
        dataset,
        quality.num_samples,
        quality.classifier_dir or None,
        classifier=quality.get("classifier", "committed"),
        inception_weights=weights,
    )


def evaluator_on_demand(config, dataset: data.Dataset) -> Callable[[], Evaluator | None]:
    """() -> `evaluator_from_config(config, dataset)`, made on the first call and kept; the config is checked now.

    What a family's `make_task` holds instead of the evaluator: building a task stays cheap (the reference
    classifier may have to be trained), and the evaluator is made after the run's workdir checks, only by a run
    that scores samples.
    """
    validate_config(config)
    made = []

    def get() -> Evaluator | None:
        if not made:
            made.append(evaluator_from_config(config, dataset))
        return made[0]

    return get
