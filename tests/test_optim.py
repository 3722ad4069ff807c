"""gen_jax/optim.py: the optimizer built from config.optim, in one place."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gen_jax import config as config_lib
from gen_jax import optim


def params():
    return {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}


def test_the_default_is_exactly_optax_adam_so_old_checkpoints_fit():
    tx = optim.make(config_lib.optimizer_config(learning_rate=1e-3), 100, "optim")
    grads = jax.tree.map(lambda p: p * 0.5 + 0.1, params())
    ours, theirs = tx.init(params()), optax.adam(1e-3).init(params())
    assert jax.tree.structure(ours) == jax.tree.structure(theirs)
    updates, _ = tx.update(grads, ours, params())
    expected, _ = optax.adam(1e-3).update(grads, theirs, params())
    for a, b in zip(jax.tree.leaves(updates), jax.tree.leaves(expected)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "schedule, at_start, at_end", [("constant", 0.1, 0.1), ("cosine", 0.1, 0.0), ("warmup_cosine", 0.0, 0.0)]
)
def test_schedules_start_and_end_where_they_say(schedule, at_start, at_end):
    rate = optim.learning_rate(config_lib.optimizer_config(learning_rate=0.1, schedule=schedule, warmup_steps=10), 100)
    value = (lambda step: float(rate(step))) if callable(rate) else (lambda step: rate)
    assert value(0) == pytest.approx(at_start, abs=1e-7) and value(100) == pytest.approx(at_end, abs=1e-7)
    if schedule == "warmup_cosine":
        assert value(10) == pytest.approx(0.1)


def test_clipping_bounds_the_update_of_a_huge_gradient():
    tx = optim.make(config_lib.optimizer_config(name="sgd", learning_rate=1.0, b1=0.0, clip_norm=1.0), 10, "optim")
    grads = jax.tree.map(lambda p: jnp.full_like(p, 1e6), params())
    updates, _ = tx.update(grads, tx.init(params()), params())
    assert float(optax.tree.norm(updates)) == pytest.approx(1.0, rel=1e-5)


def test_adamw_decays_the_weights_and_plain_adam_refuses_a_decay():
    config = config_lib.base_config()
    config.optim.weight_decay = 0.1
    with pytest.raises(config_lib.ConfigError, match="config.optim.weight_decay=0.1 needs config.optim.name='adamw'"):
        optim.validate(config)
    config.optim.name = "adamw"
    optim.validate(config)
    tx = optim.make(config.optim, 10, "optim")
    zeros = jax.tree.map(jnp.zeros_like, params())
    updates, _ = tx.update(zeros, tx.init(params()), params())
    np.testing.assert_allclose(updates["w"], -1e-3 * 0.1 * params()["w"], rtol=1e-6)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("name", "rmsprop", "config.optim.name must be one of"),
        ("learning_rate", 0.0, "config.optim.learning_rate must be a positive number"),
        ("b2", 1.0, r"config.optim.b2 must be a number in \[0, 1\)"),
        ("clip_norm", -1.0, "config.optim.clip_norm must be a number >= 0"),
    ],
)
def test_bad_optimizer_fields_are_named(field, value, message):
    config = config_lib.base_config()
    config.optim[field] = value
    with pytest.raises(config_lib.ConfigError, match=message):
        optim.validate(config)


def test_a_sweep_member_s_scalars_replace_the_config_s_at_trace_time():
    """`hyper.overriding` gives the update another learning rate (a sweep member's), read under the optimizer's own
    path only: "d_optim.learning_rate" leaves an optimizer built at "optim" alone."""
    from gen_jax import hyper

    tx = optim.make(config_lib.optimizer_config(name="sgd", learning_rate=0.1, b1=0.0), 10, "optim")
    grads, state = params(), tx.init(params())
    plain, _ = tx.update(grads, state, params())
    with hyper.overriding({"optim.learning_rate": 0.3}) as asked:
        tripled, _ = tx.update(grads, state, params())
    with hyper.overriding({"d_optim.learning_rate": 0.3}):
        untouched, _ = tx.update(grads, state, params())
    np.testing.assert_allclose(tripled["w"], 3 * plain["w"], rtol=1e-6)
    np.testing.assert_array_equal(untouched["w"], plain["w"])
    assert {"optim.learning_rate", "optim.b1", "optim.clip_norm"} <= asked
