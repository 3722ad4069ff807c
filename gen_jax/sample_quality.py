"""Sample quality, measured the same way for every generative model of a data set.

No Inception weights can be downloaded here, so the feature space is the penultimate layer of a small classifier
trained on the data set itself (the `classifier` family), trained once into a cache directory and reused by every
later score.  On those features:

* fid: the Fréchet distance between Gaussians fitted to generated and real features ("classifier FID");
* classifier_score: exp E KL(p(y|x) ‖ p(y)), the Inception Score's formula with our classifier (1 to K classes);
* precision / recall: k-NN manifold precision and recall (Kynkäänniemi et al. 2019, k = 3).

Every number comes with its floor: the same metric for real held-out images (n test images in place of the n
samples), which shows what a perfect generator would get with this classifier and this sample count (FID's
estimate is biased upwards at finite n, so 0 is not reachable).  The reference set is n training images, the same
for every model (a fixed key); n = min(num_samples, test split size), reported as `num_samples` (360 for digits,
whose test split holds 360 images).

`make_evaluator` builds the reference once; `Evaluator.summary(sampler, key)` scores any sampler
(key, count -> f32[count, H, W, C] in [0, 1]), so VAE and GAN samples are scored alike.  The metrics themselves
are pure functions in `metrics.py`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
from collections.abc import Callable

import jax
import numpy as np

from gen_jax import checkpoint, data, keys, metrics, tasks, train
from gen_jax import config as config_lib

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CACHE_DIR = os.path.join(REPO_ROOT, "runs", "classifiers")
NEAREST_NEIGHBOURS = 3  # k of the k-NN manifolds, as recommended by Kynkäänniemi et al. 2019

Sampler = Callable[[jax.Array, int], np.ndarray]


class ClassifierCacheError(config_lib.ConfigError):
    """The cached classifier was trained with another config than the reference one; nothing was changed."""


@dataclasses.dataclass(frozen=True)
class FeatureClassifier:
    """A trained reference classifier.

    `apply(x f32[B, H, W, C] in [0, 1]) -> (logits f32[B, K], features f32[B, F])`.
    """

    dataset: str
    directory: str
    test_accuracy: float
    num_classes: int
    apply: Callable[[jax.Array], tuple[jax.Array, jax.Array]]


@contextlib.contextmanager
def _exclusive(path: str):
    """Holds an exclusive lock on `path`, so two runs never train the same cached classifier at once."""
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _from_process_0(value: int) -> int:
    """Process 0's `value`, on every process (a collective: every process waits until all have called it)."""
    if jax.process_count() == 1:
        return value
    from jax.experimental import multihost_utils

    return int(multihost_utils.broadcast_one_to_all(np.int32(value)))


def _cache_refusal(workdir: str, config, defaults) -> ClassifierCacheError | None:
    """`_check_cached_config`'s error, returned instead of raised (None where the cache is acceptable)."""
    try:
        _check_cached_config(workdir, config, defaults)
    except ClassifierCacheError as error:
        return error
    return None


def _filled(stored: dict, defaults: dict) -> dict:
    """`stored` with each field it lacks (at any depth) taken from `defaults`."""
    filled = dict(stored)
    for name, default in defaults.items():
        if name not in filled:
            filled[name] = default
        elif isinstance(default, dict) and isinstance(filled[name], dict):
            filled[name] = _filled(filled[name], default)
    return filled


def _check_cached_config(workdir: str, config, defaults) -> None:
    """Refuses a cached classifier trained with another config than `config`.  A field its config.json lacks was
    added to the family's config (`defaults`) since: it counts at its default, which is what the older code did."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        return
    with open(path) as f:
        stored = json.load(f)
    if config_lib.is_flat(stored):
        raise ClassifierCacheError(config_lib.flat_run_message(path))
    stored = _filled(config_lib.plain(stored), config_lib.plain(defaults))
    wanted = config_lib.plain(config)
    # data_dir says where the data was read from, not what was trained.
    differing = sorted(k for k in set(stored) | set(wanted) if k != "data_dir" and stored.get(k) != wanted.get(k))
    if differing:
        lines = "\n".join(f"  {k}: cached {stored.get(k)!r}, reference {wanted.get(k)!r}" for k in differing)
        raise ClassifierCacheError(
            f"the classifier cached in {workdir} was trained with another config than the reference one "
            f"(gen_jax/tasks/classifier.py):\n{lines}\nEvery score must use the reference classifier, so it was not "
            "reused and nothing was changed. Move that directory aside (the reference classifier is then trained "
            "again) or set config.classifier_dir to another cache directory."
        )


def get_or_train_classifier(dataset: data.Dataset, cache_dir: str | None = None) -> FeatureClassifier:
    """The reference classifier of `dataset`, from `<cache_dir>/<dataset.store_name>` (default `runs/classifiers`),
    trained there through the training loop first if it is not there yet (a partial run is resumed).

    Every process of a multi-host run calls this together.  Process 0 alone takes the cache's lock and checks what
    is cached; the others wait for its answer (a collective, so a barrier): a refused cache is refused by all, a
    classifier still to train is trained by all together (the loop is a collective program), and then every
    process loads it.
    """
    family = tasks.get("classifier")  # found by name: evaluation imports no family
    config = family.reference_config(dataset.store_name)
    task = family.make_task(config, dataset)
    cache_dir = os.path.abspath(cache_dir or DEFAULT_CACHE_DIR)
    workdir = os.path.join(cache_dir, dataset.store_name)
    summary_path = os.path.join(workdir, "summary.json")
    chief = jax.process_index() == 0
    if chief:
        os.makedirs(cache_dir, exist_ok=True)
    with _exclusive(workdir + ".lock") if chief else contextlib.nullcontext():
        refusal, status = None, 0  # 0: cached, 1: to train, 2: refused
        if chief:
            refusal = _cache_refusal(workdir, config, family.default_config())
            status = 2 if refusal else int(not os.path.exists(summary_path))
        status = _from_process_0(status)
        if status == 2:
            raise refusal or ClassifierCacheError(
                f"the classifier cached in {workdir} was trained with another config than the reference one; "
                "process 0's message says which fields differ and what to do."
            )
        if status == 1:
            if chief:
                print(
                    f"Training the reference classifier of {dataset.name} into {workdir} "
                    "(once; every later score reuses it).",
                    flush=True,
                )
            train.prepare_workdir(workdir, config.to_dict(), task)
            train.train(config, workdir, task, np.asarray(dataset.train_images), np.asarray(dataset.train_labels))
            _from_process_0(0)  # every process past process 0's summary.json
        state, _ = checkpoint.restore_latest(os.path.join(workdir, "checkpoints"), task.init_state(jax.random.key(0)))
        with open(summary_path) as f:
            accuracy = json.load(f)["test_accuracy"]
    model = family.build_model(config, dataset.num_classes)
    return FeatureClassifier(
        dataset=dataset.name,
        directory=workdir,
        test_accuracy=accuracy,
        num_classes=dataset.num_classes,
        apply=family.make_apply(model, state.params),
    )


@dataclasses.dataclass(frozen=True, eq=False)
class Evaluator:
    """Scores images against a fixed reference set of n training images, with the floor of n test images.

    Attributes:
      classifier: the reference classifier whose features are used.
      num_samples: n, the size of the reference set, of the floor's test set and of every scored sample.
      reference_features: f32[n, F] of the n training images.
      floor: the scores of n test images (what a perfect generator would get).
      batch_size: images per classifier call.
    """

    classifier: FeatureClassifier
    num_samples: int
    reference_features: np.ndarray
    reference_statistics: tuple[np.ndarray, np.ndarray]
    floor: dict
    batch_size: int

    def embed(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """images f32[N, H, W, C] in [0, 1] -> (logits f32[N, K], features f32[N, F])."""
        return embed(self.classifier, images, self.batch_size)

    def score_images(self, images: np.ndarray, with_precision_recall: bool = True) -> dict[str, float]:
        """fid, classifier_score (and precision, recall) of images f32[N, H, W, C] in [0, 1] against the reference.

        Precision and recall need N = num_samples: the k-NN radii of the sample set shrink as N grows.
        """
        logits, features = self.embed(images)
        scores = {
            "fid": metrics.frechet_distance_from_statistics(
                *metrics.feature_statistics(features), *self.reference_statistics
            ),
            "classifier_score": metrics.classifier_score(logits),
        }
        if with_precision_recall:
            if len(images) != self.num_samples:
                raise ValueError(
                    f"precision/recall need {self.num_samples} images (the reference size), got {len(images)}"
                )
            scores["precision"], scores["recall"] = metrics.precision_recall(
                self.reference_features, features, NEAREST_NEIGHBOURS
            )
        return scores

    def summary(self, sampler: Sampler, key: jax.Array) -> dict:
        """The sample-quality fields of a summary.json for `sampler`, its floors and the sample count."""
        scores = self.score_images(draw_samples(sampler, key, self.num_samples, self.batch_size))
        return {
            **scores,
            "fid_floor": self.floor["fid"],
            "classifier_score_real": self.floor["classifier_score"],
            "precision_floor": self.floor["precision"],
            "recall_floor": self.floor["recall"],
            "num_samples": self.num_samples,
            "classifier_test_accuracy": self.classifier.test_accuracy,
            "sample_quality_reference": f"{self.num_samples} training images; floor: {self.num_samples} test "
            f"images; features: {self.classifier.directory}",
        }


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
) -> Evaluator:
    """Gets (or trains) the reference classifier, draws the n reference training images and n floor test images
    (n = min(num_samples, test split size)) with `key`, and scores the floor.

    The default key is the same for every run, so every model of a data set is scored against the same images.
    """
    classifier = get_or_train_classifier(dataset, cache_dir)
    n = min(num_samples, len(dataset.test_images), len(dataset.train_images))
    train_key, test_key = jax.random.split(jax.random.key(keys.REFERENCE_SEED) if key is None else key)
    train_idx = np.asarray(jax.random.choice(train_key, len(dataset.train_images), (n,), replace=False))
    test_idx = np.asarray(jax.random.choice(test_key, len(dataset.test_images), (n,), replace=False))
    _, reference = embed(classifier, dataset.train_images[np.sort(train_idx)], batch_size)
    evaluator = Evaluator(
        classifier=classifier,
        num_samples=n,
        reference_features=reference,
        reference_statistics=metrics.feature_statistics(reference),
        floor={},
        batch_size=batch_size,
    )
    floor = evaluator.score_images(dataset.test_images[np.sort(test_idx)])
    return dataclasses.replace(evaluator, floor=floor)


# --- config -------------------------------------------------------------------------------------------------------


def validate_config(config) -> None:
    """Checks `config.sample_quality` (`config_lib.sample_quality_config`) up front, naming the field."""
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


def evaluator_from_config(config, dataset: data.Dataset) -> Evaluator | None:
    """The evaluator `config.sample_quality` asks for, or None when it is not enabled."""
    validate_config(config)
    quality = config.sample_quality
    if not quality.enabled:
        return None
    return make_evaluator(dataset, quality.num_samples, quality.classifier_dir or None)


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
