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

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
from collections.abc import Callable

import jax
import numpy as np
from flax import traverse_util

from gen_jax import checkpoint, data, fid, inception, keys, metrics, tasks, train
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
            with metrics.split_over_processes(False):  # its chief-only figures may run inside a split evaluation
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


# --- committed reference classifiers ------------------------------------------------------------------------------

COMMITTED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference_classifiers")
COMMITTED_WEIGHTS = "params.npz"  # the classifier's parameters, flat: "Conv_0/kernel" -> array
COMMITTED_RECORD = "classifier.json"  # {config, test_accuracy, test_nll, num_classes, data_fingerprint, trained_by}
CLASSIFIER_SOURCES = ("committed", "trained")


def data_fingerprint(dataset: data.Dataset) -> str:
    """SHA-256 of the training split: its image shape, its pixels (f32 bytes) and its labels (i32 bytes)."""
    digest = hashlib.sha256(json.dumps(list(dataset.train_images.shape)).encode())
    digest.update(np.ascontiguousarray(dataset.train_images, np.float32).tobytes())
    digest.update(np.ascontiguousarray(dataset.train_labels, np.int32).tobytes())
    return digest.hexdigest()


def commit_classifier(workdir: str, dataset: data.Dataset, directory: str) -> None:
    """Writes the classifier trained in `workdir` (its newest checkpoint, config.json and summary.json) to
    `directory` as a committed reference classifier of `dataset` (`COMMITTED_WEIGHTS`, `COMMITTED_RECORD`)."""
    family = tasks.get("classifier")
    with open(os.path.join(workdir, "config.json")) as f:
        config = config_lib.new_config(json.load(f))
    with open(os.path.join(workdir, "summary.json")) as f:
        summary = json.load(f)
    task = family.make_task(config, dataset)
    state, _ = checkpoint.restore_latest(os.path.join(workdir, "checkpoints"), task.init_state(jax.random.key(0)))
    os.makedirs(directory, exist_ok=True)
    flat = traverse_util.flatten_dict(jax.device_get(state.params), sep="/")
    np.savez_compressed(os.path.join(directory, COMMITTED_WEIGHTS), **{k: np.asarray(v) for k, v in flat.items()})
    record = {
        "dataset": dataset.store_name,
        "config": config_lib.plain(config),
        "test_accuracy": summary["test_accuracy"],
        "test_nll": summary["test_nll"],
        "num_classes": dataset.num_classes,
        "data_fingerprint": data_fingerprint(dataset),
        "trained_by": f"python -m experiments.main --config experiments/configs/classifier_{dataset.store_name}.py",
    }
    with open(os.path.join(directory, COMMITTED_RECORD), "w") as f:
        json.dump(record, f, indent=1)
        f.write("\n")


def committed_classifier(dataset: data.Dataset, directory: str | None = None) -> FeatureClassifier | None:
    """The reference classifier committed for `dataset` (`<COMMITTED_DIR>/<store_name>`), None when there is none.

    Raises ClassifierCacheError (one line) when the loaded data's training split is not the one it was trained on
    (`data_fingerprint`): its scores would not be the committed floor's.
    """
    directory = directory or os.path.join(COMMITTED_DIR, dataset.store_name)
    if not os.path.isfile(os.path.join(directory, COMMITTED_RECORD)):
        return None
    with open(os.path.join(directory, COMMITTED_RECORD)) as f:
        record = json.load(f)
    if record["data_fingerprint"] != data_fingerprint(dataset):
        raise ClassifierCacheError(
            f"the {dataset.name} data loaded here differ from those the committed classifier in {directory} was "
            f"trained on (training split fingerprint {data_fingerprint(dataset)[:12]}…, expected "
            f"{record['data_fingerprint'][:12]}…): load the original data, or set "
            "config.sample_quality.classifier=trained to train a classifier of these"
        )
    with np.load(os.path.join(directory, COMMITTED_WEIGHTS)) as file:
        params = traverse_util.unflatten_dict({tuple(k.split("/")): jax.numpy.asarray(file[k]) for k in file.files})
    family = tasks.get("classifier")
    model = family.build_model(config_lib.new_config(record["config"]), record["num_classes"])
    return FeatureClassifier(
        dataset=dataset.name,
        directory=directory,
        test_accuracy=record["test_accuracy"],
        num_classes=record["num_classes"],
        apply=family.make_apply(model, params),
    )


def reference_classifier(dataset: data.Dataset, source: str = "committed", cache_dir: str | None = None):
    """The classifier that scores `dataset`: the committed one where there is one and `source` is "committed",
    else the one trained and cached in `cache_dir` (`get_or_train_classifier`); None for data without labels."""
    if dataset.num_classes < 2:
        return None
    if source == "committed" and (committed := committed_classifier(dataset)) is not None:
        return committed
    return get_or_train_classifier(dataset, cache_dir)


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
