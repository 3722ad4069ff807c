"""The shared parts of the encoder/decoder families (gen_jax/latent_task.py): building a task computes nothing and
makes the sample-quality evaluator only when a summary needs it; codecs, samplers and the reference classifier
compile once per shape, whatever the state they serve."""

import contextlib

import jax
import numpy as np
import pytest

from gen_jax import keys, latent_task, sample_quality, tasks
from gen_jax.tasks import classifier, gan

from conftest import override, tiny_config

LATENT_FAMILIES = ("ae", "vae", "cvae", "aae", "wae")


@contextlib.contextmanager
def lowerings():
    """The names of the functions JAX lowers for compilation inside the block (a cached compilation lowers none)."""
    seen = []

    def listen(event, duration, **kwargs):
        if event == "/jax/core/compile/jaxpr_to_mlir_module_duration":
            seen.append(kwargs.get("fun_name", "?"))

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        yield seen
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)


def two_states(family, digits):
    """(config, a task of it, two different initial states)."""
    config = tiny_config(family)
    task = tasks.get(family).make_task(config, digits)
    init = jax.jit(task.init_state)
    return config, task, init(jax.random.key(0)), init(jax.random.key(1))


@pytest.mark.parametrize("family", LATENT_FAMILIES)
def test_codecs_and_samplers_compile_once_for_every_state_and_task(family, digits):
    """The codec and the evaluation of a second state, and of a second task of the same config (a restore, a sweep
    member), on the same shapes run the programs compiled for the first: no lowering at all."""
    config, task, state_a, state_b = two_states(family, digits)
    x, labels = digits.test_images[:8], np.asarray(digits.test_labels[:8], np.int32)

    def use(task, state):
        task.evaluate(state, jax.random.key(0))
        encode, decode = task.codec(state)
        return np.asarray(decode(encode(x, labels), labels))

    first = use(task, state_a)
    again = tasks.get(family).make_task(config, digits)
    with lowerings() as lowered:
        second = use(task, state_b)
        use(again, state_a)
    assert not lowered, lowered
    assert not np.array_equal(first, second)  # two states, two models: the compiled code takes the parameters


def test_the_prior_sampler_compiles_once_for_every_state(digits):
    config, task, state_a, state_b = two_states("vae", digits)
    codec = latent_task.Codec(
        tasks.get("vae").build_model(config, digits.image_shape), "bernoulli", config.model.latent_dim, posterior=True
    )
    first = latent_task.sampler(codec, state_a.inference_params())(jax.random.key(0), 16)
    with lowerings() as lowered:
        second = latent_task.sampler(codec, state_b.inference_params())(jax.random.key(0), 16)
    assert not lowered and not np.array_equal(first, second)


def test_the_gan_generator_and_the_reference_classifier_compile_once(digits):
    config, task, state_a, state_b = two_states("gan", digits)
    z = np.zeros((4, config.model.latent_dim), np.float32)
    task.codec(state_a)[1](z)
    classifier_config = classifier.reference_config("digits")
    model = classifier.build_model(classifier_config, digits.num_classes)
    init = jax.jit(classifier.make_task(classifier_config, digits).init_state)
    params = [init(jax.random.key(i)).params for i in range(2)]
    classifier.make_apply(model, params[0])(digits.test_images[:4])
    with lowerings() as lowered:
        task.codec(state_b)[1](z)
        gan.make_task(config, digits).codec(state_a)[1](z)
        classifier.make_apply(model, params[1])(digits.test_images[:4])
    assert not lowered, lowered


@pytest.mark.parametrize("family", [*LATENT_FAMILIES[1:], "gan"])
def test_a_task_is_built_without_compiling_and_makes_its_evaluator_when_summarising(family, digits, monkeypatch):
    """make_task neither compiles nor builds the sample-quality evaluator (which may train a classifier): the
    first summary builds it, once, after the run's workdir checks."""
    made = []
    monkeypatch.setattr(sample_quality, "evaluator_from_config", lambda config, dataset: made.append(config))
    config = override(tiny_config(family), **{"sample_quality.enabled": True})
    with lowerings() as lowered:
        task = tasks.get(family).make_task(config, digits)
    assert not lowered and not made
    state = jax.jit(task.init_state)(keys.stream(config.seed, "init"))
    task.summarize(state, jax.random.key(0))
    task.summarize(state, jax.random.key(1))
    assert len(made) == 1


def test_a_conditional_codec_needs_labels(digits):
    config, task, state, _ = two_states("cvae", digits)
    encode, decode = task.codec(state)
    with pytest.raises(ValueError, match="conditional: pass labels"):
        encode(digits.test_images[:2])
    with pytest.raises(ValueError, match="conditional: pass labels"):
        decode(np.zeros((2, config.model.latent_dim), np.float32))


@pytest.mark.parametrize("family", [*LATENT_FAMILIES, "gan", "classifier"])
def test_building_a_task_compiles_nothing(family, digits):
    config = tiny_config(family)
    with lowerings() as lowered:
        tasks.get(family).make_task(config, digits)
    assert not lowered, lowered
