"""The optimizer and its learning-rate schedule, built from a config's `optim` sub-config in one place.

`make(optim, num_steps)` reads `config_lib.optimizer_config`'s fields.  With the defaults (Adam, a constant rate,
no clipping) it is exactly `optax.adam(learning_rate)`, so the optimizer state has the structure checkpoints have
always had; clipping adds an `optax.chain` around it.
"""

from __future__ import annotations

import optax

from gen_jax import config as config_lib
from gen_jax import hyper

NAMES = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "warmup_cosine")


def validate(config, path: str = "optim") -> None:
    """Checks the optimizer sub-config at `config.<path>`, naming each field."""
    config_lib.require_choice(config, f"{path}.name", NAMES)
    config_lib.require_choice(config, f"{path}.schedule", SCHEDULES)
    config_lib.require_positive(config, f"{path}.learning_rate", f"{path}.eps")
    config_lib.require_fraction(config, f"{path}.b1")
    config_lib.require_fraction(config, f"{path}.b2")
    config_lib.require_non_negative(config, f"{path}.weight_decay", f"{path}.clip_norm")
    config_lib.require_non_negative_int(config, f"{path}.warmup_steps")
    optim = config_lib.value_at(config, path)
    if optim.weight_decay and optim.name != "adamw":
        raise config_lib.ConfigError(
            f"config.{path}.weight_decay={optim.weight_decay} needs config.{path}.name='adamw' (decoupled decay); "
            f"got name={optim.name!r}"
        )
    if optim.schedule == "warmup_cosine" and optim.warmup_steps >= config.num_steps:
        raise config_lib.ConfigError(
            f"config.{path}.warmup_steps ({optim.warmup_steps}) must be below config.num_steps ({config.num_steps})"
        )


# The optimizer's scalars a sweep may vary per member (`gen_jax/hyper.py`); the rest fix its structure.
SCALARS = ("learning_rate", "b1", "b2", "eps", "weight_decay", "clip_norm")


def learning_rate(optim, num_steps: int, peak: float | None = None) -> float | optax.Schedule:
    """The rate: a constant, or a schedule of the step (cosine decay to 0 at `num_steps`, optionally warmed up).

    `peak` replaces `optim.learning_rate` (a sweep member's traced value); the schedule's shape is `optim`'s.
    """
    peak = optim.learning_rate if peak is None else peak
    if optim.schedule == "cosine":
        return optax.cosine_decay_schedule(peak, num_steps)
    if optim.schedule == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(0.0, peak, optim.warmup_steps, num_steps)
    return peak


def _build(optim, num_steps: int, scalars: dict) -> optax.GradientTransformation:
    """The optimizer of `optim`'s name, schedule and structure with `scalars` (a value for each of SCALARS)."""
    rate = learning_rate(optim, num_steps, scalars["learning_rate"])
    b1, b2, eps = scalars["b1"], scalars["b2"], scalars["eps"]
    if optim.name == "adam":
        tx = optax.adam(rate, b1=b1, b2=b2, eps=eps)
    elif optim.name == "adamw":
        tx = optax.adamw(rate, b1=b1, b2=b2, eps=eps, weight_decay=scalars["weight_decay"])
    else:
        tx = optax.sgd(rate, momentum=b1 if optim.b1 else None)
    if optim.clip_norm:
        tx = optax.chain(optax.clip_by_global_norm(scalars["clip_norm"]), tx)
    return tx


def make(optim, num_steps: int, path: str) -> optax.GradientTransformation:
    """The optimizer `optim` names (see `config_lib.optimizer_config`), for a run of `num_steps` steps.

    Its scalars (SCALARS) are read when the update is traced, through `hyper.value(f"{path}.<name>", …)`: a single
    run gets exactly the optax optimizer of the config's numbers, and a sweep can give each member its own.  Which
    optimizer, which schedule, and whether momentum or clipping is on at all are fixed by `optim`.

    Args:
      optim: the optimizer sub-config (name, learning_rate, schedule, warmup_steps, b1, b2, eps, weight_decay,
        clip_norm).
      num_steps: the run's length, where decaying schedules reach 0.
      path: where `optim` sits in the run's config ("optim", or "d_optim" for a discriminator's).

    Returns:
      An `optax.GradientTransformation` whose state has the structure of the plain optax optimizer's.
    """
    defaults = {name: optim[name] for name in SCALARS}
    plain = _build(optim, num_steps, defaults)

    def update(updates, state, params=None):
        scalars = {name: hyper.value(f"{path}.{name}", default) for name, default in defaults.items()}
        return _build(optim, num_steps, scalars).update(updates, state, params)

    return optax.GradientTransformation(plain.init, update)
