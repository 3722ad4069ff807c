"""Checks on run configs, done once before any compute, with errors that name the field and what is allowed.

Configs are `ml_collections.ConfigDict`s written as data in `experiments/configs/*.py`; each model family adds
its own checks (in `gen_jax/tasks/`) on top of `validate_common`.
"""

from __future__ import annotations

from typing import Iterable


class ConfigError(ValueError):
    """A config value is missing, of the wrong kind, or outside what is allowed."""


COMMON_FIELDS = ("seed", "dataset", "batch_size", "num_steps", "learning_rate", "eval_every",
                 "checkpoint_every", "latent_dim", "log_every", "keep_checkpoints")


def require_fields(config, names: Iterable[str]) -> None:
    missing = [name for name in names if name not in config]
    if missing:
        raise ConfigError(f"config is missing {', '.join(missing)}; every config sets these "
                          "(see experiments/configs/vae_digits.py for an example)")


def require_positive_int(config, *names: str) -> None:
    for name in names:
        value = config[name]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"config.{name} must be a positive integer, got {value!r}")


def require_positive(config, *names: str) -> None:
    for name in names:
        value = config[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ConfigError(f"config.{name} must be a positive number, got {value!r}")


def require_fraction(config, name: str, upper_inclusive: bool = False) -> None:
    """config[name] must be a number in [0, 1) (or [0, 1] with `upper_inclusive`)."""
    value = config[name]
    inside = isinstance(value, (int, float)) and not isinstance(value, bool) and (
        0.0 <= value <= 1.0 if upper_inclusive else 0.0 <= value < 1.0)
    if not inside:
        raise ConfigError(f"config.{name} must be a number in [0, 1{']' if upper_inclusive else ')'}, got {value!r}")


def require_choice(config, name: str, allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    if config[name] not in allowed:
        raise ConfigError(f"config.{name} must be one of {', '.join(map(repr, allowed))}; got {config[name]!r}")


def validate_common(config) -> None:
    """Checks the fields every experiment has; the data-dependent checks follow in `validate_against_data`."""
    require_fields(config, COMMON_FIELDS)
    if isinstance(config.seed, bool) or not isinstance(config.seed, int) or config.seed < 0:
        raise ConfigError(f"config.seed must be a non-negative integer, got {config.seed!r}")
    require_positive_int(config, "batch_size", "num_steps", "eval_every", "checkpoint_every", "latent_dim",
                         "log_every", "keep_checkpoints")
    require_positive(config, "learning_rate")
    if not isinstance(config.dataset, str) or not config.dataset:
        raise ConfigError(f"config.dataset must name a data set, got {config.dataset!r}")


def validate_against_data(config, num_train: int, num_devices: int = 1) -> None:
    """Checks that need the data: the batch fits in the training split and divides over the devices."""
    if config.batch_size > num_train:
        raise ConfigError(f"config.batch_size ({config.batch_size}) is larger than the {config.dataset} training "
                          f"split ({num_train} examples); choose batch_size <= {num_train}")
    if config.batch_size % num_devices:
        raise ConfigError(f"config.batch_size ({config.batch_size}) does not divide over the {num_devices} devices; "
                          f"choose a multiple of {num_devices}")


# config.compute_dtype -> the `dtype` given to the Flax layers (None = float32).  Parameters, optimizer state and
# losses stay float32 whatever it is: bfloat16 is compute precision only.
COMPUTE_DTYPES = {"float32": None, "bfloat16": "bfloat16"}


def compute_dtype(config) -> str | None:
    """The layers' computation dtype named by config.compute_dtype ("float32" when the field is absent)."""
    name = config.get("compute_dtype", "float32")
    if name not in COMPUTE_DTYPES:
        raise ConfigError(f"config.compute_dtype must be one of {', '.join(map(repr, COMPUTE_DTYPES))}; got {name!r}")
    return COMPUTE_DTYPES[name]


def signature(config, fields: Iterable[str], image_shape: tuple[int, ...]) -> dict:
    """The JSON-able values of `fields` plus the image shape: what a checkpoint must match to be resumed."""
    def plain(value):
        return list(value) if isinstance(value, (tuple, list)) else value
    return {**{name: plain(config[name]) for name in fields}, "image_shape": list(image_shape)}
