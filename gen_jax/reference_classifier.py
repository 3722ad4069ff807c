"""The reference classifiers that classifier scores use: committed with the package, or trained and cached.

A committed classifier (`gen_jax/reference_classifiers/<dataset>/`: `params.npz`, and `classifier.json` with its
config, test accuracy and a fingerprint of the training split) gives every machine the same floor and scores; a
data set without one gets one trained once, through the training loop, into a cache directory and reused.
`reference_classifier` chooses; `sample_quality` scores with what it returns.
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

from gen_jax import checkpoint, data, metrics, tasks, train
from gen_jax import config as config_lib

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CACHE_DIR = os.path.join(REPO_ROOT, "runs", "classifiers")


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
    stored = config_lib.with_defaults(config_lib.plain(stored), config_lib.plain(defaults))
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


# --- committed ------------------------------------------------------------------------------

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
        "trained_by": f"python -m experiments.main --config experiments/configs/{config.name}.py",
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
