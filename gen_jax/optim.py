"""The optimizer and its learning-rate schedule, built from a config's `optim` sub-config in one place.

`make(optim, num_steps)` reads `config_lib.optimizer_config`'s fields.  With the defaults (Adam, a constant rate,
no clipping) it is exactly `optax.adam(learning_rate)`, so the optimizer state has the structure checkpoints have
always had; clipping adds an `optax.chain` around it.
"""

from __future__ import annotations

import optax

from gen_jax import config as config_lib

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


def learning_rate(optim, num_steps: int) -> float | optax.Schedule:
    """The rate: a constant, or a schedule of the step (cosine decay to 0 at `num_steps`, optionally warmed up)."""
    if optim.schedule == "cosine":
        return optax.cosine_decay_schedule(optim.learning_rate, num_steps)
    if optim.schedule == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(0.0, optim.learning_rate, optim.warmup_steps, num_steps)
    return optim.learning_rate


def make(optim, num_steps: int) -> optax.GradientTransformation:
    """The optimizer `optim` names (see `config_lib.optimizer_config`), for a run of `num_steps` steps.

    Args:
      optim: the optimizer sub-config (name, learning_rate, schedule, warmup_steps, b1, b2, eps, weight_decay,
        clip_norm).
      num_steps: the run's length, where decaying schedules reach 0.

    Returns:
      An `optax.GradientTransformation`.
    """
    rate = learning_rate(optim, num_steps)
    if optim.name == "adam":
        tx = optax.adam(rate, b1=optim.b1, b2=optim.b2, eps=optim.eps)
    elif optim.name == "adamw":
        tx = optax.adamw(rate, b1=optim.b1, b2=optim.b2, eps=optim.eps, weight_decay=optim.weight_decay)
    else:
        tx = optax.sgd(rate, momentum=optim.b1 or None)
    if optim.clip_norm:
        tx = optax.chain(optax.clip_by_global_norm(optim.clip_norm), tx)
    return tx
