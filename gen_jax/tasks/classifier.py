"""The reference classifier of a data set as a `train.Task`: the feature space of the sample-quality metrics.

`reference_config(dataset)` is part of the metric's definition (as the Inception network is part of FID's): every
model of a data set is scored with the classifier this config trains, so it is fixed here, in the library, and
`experiments/configs/classifier_<dataset>.py` only returns it.  The classifiers of digits and Fashion-MNIST are
committed (`gen_jax/reference_classifiers/`); for other data `gen_jax/sample_quality.py` trains one into a cache
directory on first use and reads it back afterwards.

Fields (see `default_config`): model.{conv_features, feature_dim}, and the common ones.
"""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from gen_jax import config as config_lib
from gen_jax import data, figures, metrics, optim, steps
from gen_jax.models.classifier import Classifier
from gen_jax.train import Task

# Per data set: about 90 epochs of the 1,437 digits, about 6 epochs of Fashion-MNIST's 60,000 images.
_REFERENCE_STEPS = {"digits": 1000, "fashion_mnist": 3000}
_DEFAULT_STEPS = 3000
# Few features for digits: its floor is measured on 360 test images, too few to estimate a 128×128 covariance.
_FEATURE_DIMS = {"digits": 32}
_DEFAULT_FEATURE_DIM = 128


def default_config() -> ml_collections.ConfigDict:
    """A small convolutional classifier of the data set's labels (cross-entropy, Adam 1e-3)."""
    config = config_lib.base_config()
    config.family = "classifier"
    config.model = ml_collections.ConfigDict(
        dict(
            conv_features=(32, 64),  # stride-2 3×3 convolution widths
            feature_dim=_DEFAULT_FEATURE_DIM,  # the width of the feature layer
        )
    )
    config.eval_batch_size = 1000
    return config.lock()


def reference_config(dataset: str) -> ml_collections.ConfigDict:
    """The config of `dataset`'s reference classifier (changing it changes every sample-quality number)."""
    config = default_config()
    config.name = f"classifier_{dataset}"
    config.dataset = dataset
    config.binarization = "none"  # the classifier sees grey images in [0, 1], as the samples are scored
    config.model.feature_dim = _FEATURE_DIMS.get(dataset, _DEFAULT_FEATURE_DIM)
    config.batch_size = 128
    config.num_steps = _REFERENCE_STEPS.get(dataset, _DEFAULT_STEPS)
    config.log_every = 100
    config.eval_every = 500
    config.checkpoint_every = 500
    config.keep_checkpoints = 1
    return config


def validate(config, dataset: data.Dataset) -> None:
    config_lib.require_widths(config, "model.conv_features", min_length=1)
    config_lib.require_positive_int(config, "model.feature_dim")
    optim.validate(config)
    if dataset.num_classes < 2:
        raise config_lib.ConfigError(
            f"config.dataset: {dataset.name!r} has {dataset.num_classes} class; a "
            "classifier needs labelled data with at least 2 classes"
        )


def build_model(config, num_classes: int) -> Classifier:
    return Classifier(
        num_classes=num_classes,
        conv_features=tuple(config.model.conv_features),
        feature_dim=config.model.feature_dim,
        conv_impl=config.conv_impl,
    )


def per_example_terms(model: Classifier, params, batch: dict) -> dict[str, jax.Array]:
    """{"nll": −log p(label | x) in nats, "accuracy": 1 where the arg-max class is the label}, each f32[B]."""
    logits, _ = model.apply({"params": params}, batch["image"])
    return {
        "nll": optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]),
        "accuracy": (jnp.argmax(logits, -1) == batch["label"]).astype(jnp.float32),
    }


def make_loss(model: Classifier):
    """loss_fn(params, batch, key) -> (batch-mean cross-entropy, {"accuracy"}); deterministic, `key` unused."""

    def loss_fn(params, batch, key):
        del key
        terms = per_example_terms(model, params, batch)
        return jnp.mean(terms["nll"]), {"accuracy": jnp.mean(terms["accuracy"])}

    return loss_fn


@functools.partial(jax.jit, static_argnums=0)
def apply(model: Classifier, params, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """x f32[B, H, W, C] in [0, 1] -> (logits f32[B, K], features f32[B, F]); compiled once per model and shape,
    whatever the parameters."""
    return model.apply({"params": params}, x)


def make_apply(model: Classifier, params):
    """x f32[B, H, W, C] in [0, 1] -> (logits f32[B, K], features f32[B, F]) of these parameters (`apply`)."""
    return functools.partial(apply, model, params)


def make_task(config, dataset: data.Dataset) -> Task:
    validate(config, dataset)
    model = build_model(config, dataset.num_classes)
    tx = optim.make(config.optim, config.num_steps, "optim")
    test_split = {"image": dataset.test_images, "label": dataset.test_labels}
    terms = jax.jit(lambda params, batch, key: per_example_terms(model, params, batch))

    def init_state(key):
        params = model.init(key, jnp.zeros((1, *dataset.image_shape), jnp.float32))["params"]
        return steps.create_train_state(model, params, tx)

    def evaluate(state, key):
        del key
        return metrics.split_means(
            functools.partial(terms, state.params), test_split, config.eval_batch_size, jax.random.key(0)
        )

    def summarize(state, key):
        results = evaluate(state, key)
        return {
            "test_accuracy": results["accuracy"],
            "test_nll": results["nll"],
            "units": "accuracy in [0, 1]; nll in nats per example",
            "num_test_examples": len(dataset.test_labels),
        }

    def make_figures(state, key, workdir):
        del key
        logits = metrics.map_batches(
            lambda x, key: apply(model, state.params, x)[0],
            dataset.test_images,
            config.eval_batch_size,
            jax.random.key(0),
        )
        path = os.path.join(workdir, "figures", "misclassified.png")
        grid = misclassified_by_class(
            dataset.test_images, dataset.test_labels, np.argmax(logits, 1), dataset.num_classes
        )
        figures.save_image_grid(
            path,
            grid,
            ncols=10,
            row_labels=dataset.class_names,
            title="Misclassified test images, one row per true class",
        )
        return [
            (
                os.path.relpath(path, workdir),
                "Up to 10 misclassified test images per true class (blank where there are fewer)",
            )
        ]

    return Task(
        name="classifier",
        signature=config_lib.signature(config, dataset.image_shape),
        init_state=init_state,
        train_step=steps.make_train_step(make_loss(model)),
        evaluate=evaluate,
        summarize=summarize,
        make_figures=make_figures,
    )


def misclassified_by_class(
    images: np.ndarray, labels: np.ndarray, predicted: np.ndarray, num_classes: int, per_class: int = 10
) -> np.ndarray:
    """f32[K·per_class, H, W, C]: row k holds the first misclassified images of true class k, padded white."""
    grid = np.ones((num_classes, per_class, *images.shape[1:]), np.float32)
    for k in range(num_classes):
        wrong = np.flatnonzero((labels == k) & (predicted != k))[:per_class]
        grid[k, : len(wrong)] = images[wrong]
    return grid.reshape(-1, *images.shape[1:])
