"""What every encoder/decoder family shares, so that such a family is its networks, its loss and its config.

A family describes its model once as a `Codec` (the Flax module with `encode` and `decode` methods, how a decoder
output becomes an image, the prior); `build_task` then gives it the codec of `train.Task.codec`, the sampler of
its prior, the summary's reconstruction error and sample quality, and the latent-space figures.  The family
supplies the rest: its state, its train step, its evaluation and its own summary fields.

Compiled once: the jitted functions here take the parameters as arguments and the `Codec` as a static argument
(hashed by value: equal modules and settings are one key), so each compiles once per codec and shape and serves
every state, restore and sweep member; `compiled` does the same for a family's own evaluation.  Building a task
computes and compiles nothing; the sample-quality evaluator (which may train a reference classifier) is made on
first use (`sample_quality.evaluator_on_demand`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import data, latent, losses, metrics, sample_quality
from gen_jax.train import Task

PRIORLESS = None  # `Codec.prior` of a family with no prior to sample (the plain AutoEncoder)


@dataclasses.dataclass(frozen=True)
class Codec:
    """An encoder/decoder model as pure functions of its parameters; hashable by value.

    Attributes:
      model: a Flax module with `encode(x[, labels])` and `decode(z[, labels])` methods.
      output: what a decoder output is: "bernoulli" (logits: the image is σ of it), anything else ("mse",
        "gaussian") the pixel means themselves; images are clipped to [0, 1].
      latent_dim: D, the size of a code.
      posterior: whether `encode` returns a Gaussian posterior (mean, log variance): its mean is the code.
      num_classes: K > 0 for a conditional model (both methods then take labels i32[B]); 0 otherwise.
      prior: "standard" (z ~ N(0, I)), the name of a model method (noise, labels) -> codes for a learned prior
        (the cVAE's per-class Gaussian), or `PRIORLESS` for a model without one (no sampler, no sample quality).
    """

    model: Any
    output: str
    latent_dim: int
    posterior: bool = False
    num_classes: int = 0
    prior: str | None = "standard"

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    def _apply(self, params, method: str, inputs, labels):
        args = (inputs, labels) if self.conditional else (inputs,)
        return self.model.apply({"params": params}, *args, method=method)

    def encode(self, params, x: jax.Array, labels=None) -> jax.Array:
        """Codes f32[B, D] of images x f32[B, H, W, C]: the encoder's output, or its posterior's mean."""
        out = self._apply(params, "encode", x, labels)
        return out[0] if self.posterior else out

    def decode(self, params, z: jax.Array, labels=None) -> jax.Array:
        """Images f32[B, H, W, C] in [0, 1] of codes z f32[B, D]: the decoder's mean."""
        decoded = self._apply(params, "decode", z, labels)
        kind = "bernoulli" if self.output == "bernoulli" else "mse"
        return jnp.clip(losses.reconstruction_mean(kind, decoded), 0.0, 1.0)

    def prior_codes(self, params, noise: jax.Array, labels=None) -> jax.Array:
        """Codes f32[B, D] of the prior from noise ε ~ N(0, I) f32[B, D] (and labels): ε itself for "standard"."""
        if self.prior == "standard":
            return noise
        return self._apply(params, self.prior, noise, labels)


@functools.partial(jax.jit, static_argnums=0)
def encode(codec: Codec, params, x: jax.Array, labels) -> jax.Array:
    """`Codec.encode`, compiled once per codec and shape."""
    return codec.encode(params, x, labels)


@functools.partial(jax.jit, static_argnums=0)
def decode(codec: Codec, params, z: jax.Array, labels) -> jax.Array:
    """`Codec.decode`, compiled once per codec and shape."""
    return codec.decode(params, z, labels)


@functools.partial(jax.jit, static_argnums=0)
def decode_prior(codec: Codec, params, noise: jax.Array, labels) -> jax.Array:
    """Images f32[B, H, W, C] in [0, 1] of the prior's codes for noise ε f32[B, D] (and labels i32[B])."""
    return codec.decode(params, codec.prior_codes(params, noise, labels), labels)


@functools.partial(jax.jit, static_argnums=0)
def reconstruction_errors(codec: Codec, params, batch: dict, key: jax.Array) -> dict[str, jax.Array]:
    """{"mse": f32[B]}: squared error per pixel (pixels in [0, 1]) between each image of batch {"image", "label"}
    and its reconstruction through the code (the posterior mean), as the codec and the figures show it; `key`
    unused."""
    del key
    x, labels = batch["image"], batch["label"] if codec.conditional else None
    return {"mse": losses.squared_error(codec.decode(params, codec.encode(params, x, labels), labels), x)}


@functools.partial(jax.jit, static_argnums=(0, 1))
def _call(function: Callable, static: tuple, *args):
    return function(*static, *args)


def compiled(function: Callable, *static) -> Callable:
    """`functools.partial(function, *static)`, jitted: compiled once per (function, static values) and argument
    shapes, so every task built from an equal config (a restore, a sweep member) reuses the compilation.
    `function` is module-level and the static values hashable (Flax modules, strings, numbers); the remaining
    arguments (parameters, data, keys) are traced."""
    return functools.partial(_call, function, static)


def bind(codec: Codec, params) -> tuple[Callable, Callable]:
    """(encode, decode) of `train.Task.codec` for these parameters: encode(images, labels=None) -> codes,
    decode(codes, labels=None) -> images in [0, 1].  A conditional codec raises ValueError without labels; an
    unconditional one ignores them."""

    def labels_of(labels, name):
        if not codec.conditional:
            return None
        if labels is None:
            raise ValueError(f"this model's {name} is conditional: pass labels i32[B], one class per row")
        return labels

    return (
        lambda x, labels=None: encode(codec, params, x, labels_of(labels, "encode")),
        lambda z, labels=None: decode(codec, params, z, labels_of(labels, "decode")),
    )


def sample_given(codec: Codec, params, key: jax.Array, labels) -> jax.Array:
    """Images f32[N, H, W, C] in [0, 1] of the given classes i32[N] (conditional codec), z from the prior (`key`)."""
    labels = jnp.asarray(labels)
    return decode_prior(codec, params, jax.random.normal(key, (len(labels), codec.latent_dim)), labels)


def sampler(codec: Codec, params) -> sample_quality.Sampler:
    """(key, count) -> images f32[count, H, W, C] in [0, 1]: z from the prior through the decoder; a conditional
    codec draws its classes uniformly (the first split of `key` draws z, the second the classes)."""
    if not codec.conditional:
        return lambda key, count: decode_prior(codec, params, jax.random.normal(key, (count, codec.latent_dim)), None)

    def sample(key, count):
        z_key, label_key = jax.random.split(key)
        return sample_given(codec, params, z_key, jax.random.randint(label_key, (count,), 0, codec.num_classes))

    return sample


def reconstruction_mse(codec: Codec, params, test_split: dict, batch_size: int, key: jax.Array) -> float:
    """The split mean of `reconstruction_errors` over test_split {"image", "label"}."""
    errors = functools.partial(reconstruction_errors, codec, params)
    return metrics.split_means(errors, test_split, batch_size, key)["mse"]


def quality_fields(codec: Codec, params, evaluator, test_split: dict, key: jax.Array) -> dict:
    """The sample-quality fields of a summary (`sample_quality.Evaluator.summary`) for the prior's samples, from
    fold_in(key, 1).  A conditional codec adds `conditional_accuracy` (how often a sample drawn for class y is
    classified as y) and, for its scale, `conditional_accuracy_real` (the classifier's accuracy on the test images
    as the model sees them)."""
    key = jax.random.fold_in(key, 1)
    if not codec.conditional:
        return evaluator.summary(sampler(codec, params), key)
    label_key, score_key = jax.random.split(key)
    fields = evaluator.summary(sampler(codec, params), score_key)
    labels = np.arange(evaluator.num_samples) % codec.num_classes
    logits, _ = evaluator.embed(sample_given(codec, params, label_key, labels))
    fields["conditional_accuracy"] = float(np.mean(np.argmax(logits, axis=1) == labels))
    real_logits, _ = evaluator.embed(test_split["image"])
    fields["conditional_accuracy_real"] = float(np.mean(np.argmax(real_logits, axis=1) == test_split["label"]))
    return fields


def figures(codec: Codec, params, dataset: data.Dataset, test_images, key, workdir: str, code_name: str):
    """The latent-space figures (`latent.figures_of`, or `latent.class_figures` for a conditional codec)."""
    encode_fn, decode_fn = bind(codec, params)
    if codec.conditional:
        return latent.class_figures(
            workdir,
            encode_fn,
            functools.partial(decode_prior, codec, params),
            decode_fn,
            dataset,
            test_images,
            codec.latent_dim,
            code_name,
            key,
        )
    sample = None if codec.prior is PRIORLESS else sampler(codec, params)
    return latent.figures_of(
        workdir, encode_fn, decode_fn, dataset, test_images, code_name=code_name, sample=sample, key=key
    )


def test_split_on_demand(config, dataset: data.Dataset) -> Callable[[], dict]:
    """() -> {"image": the test images as a run of `config` scores them (`data.test_images`), "label": i32[N]},
    made on the first call (dynamic binarisation computes) and kept."""
    return functools.cache(lambda: {"image": data.test_images(config, dataset), "label": dataset.test_labels})


def build_task(
    config,
    dataset: data.Dataset,
    codec: Codec,
    *,
    init_state: Callable,
    train_step: Callable,
    evaluate: Callable,
    summarize: Callable,
    signature: dict,
    test_split: Callable[[], dict],
    code_name: str = "codes",
    loss_name: str = "loss",
) -> Task:
    """The `train.Task` of an encoder/decoder family: what the family gives, and from `codec` the rest.

    Args:
      config, dataset: the run's; `config.sample_quality` (when the config has it) turns on the sample quality.
      codec: the model, seen as `Codec`.
      init_state, train_step, evaluate: as `train.Task` has them; the state's `inference_params()` are what the
        codec, samples, scores and figures use (the parameter EMA when the state keeps one).
      summarize: (state, key) -> the family's own summary fields; the sample-quality fields (`quality_fields`)
        follow them when config.sample_quality.enabled.
      signature: `config.signature(...)` with the facts of the state's structure (e.g. parameter_ema).
      test_split: `test_split_on_demand`'s, shared with the family's evaluation.
      code_name: what a code is called in the figures' captions ("codes", "posterior means").
      loss_name: the metric watched for NaN/Inf.
    """
    quality = sample_quality.evaluator_on_demand(config, dataset) if "sample_quality" in config else lambda: None

    def summary(state, key):
        fields = summarize(state, key)
        evaluator = quality()
        if evaluator is not None:
            fields.update(quality_fields(codec, state.inference_params(), evaluator, test_split(), key))
        return fields

    def make_figures(state, key, workdir):
        return figures(codec, state.inference_params(), dataset, test_split()["image"], key, workdir, code_name)

    return Task(
        name=config.family,
        signature=signature,
        init_state=init_state,
        train_step=train_step,
        evaluate=evaluate,
        summarize=summary,
        make_figures=make_figures,
        loss_name=loss_name,
        codec=lambda state: bind(codec, state.inference_params()),
    )
