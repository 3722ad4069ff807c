"""Scalars a sweep may vary between its members: read where the train step uses them, at trace time.

A family reads each such scalar inside its step, `hyper.value("beta", beta)`, rather than baking the config's float
into a closure.  In a single run this returns `default` (the config's own Python number), so the step compiles
exactly as it always has.  While `experiments.sweep` traces its members' step under `overriding`, it returns that
member's value instead: a traced scalar of the vmapped member axis, so one compiled program trains members that
differ in it.  What a step reads this way is what a sweep may vary (`sweepable` finds it by tracing); everything
else, and anything that changes an array's shape, can only be the same for every member.

Paths are the config's dotted field names: "beta", "ema_decay", "gp_weight", "optim.learning_rate",
"d_optim.b1", ….
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping
from typing import Any

# (the traced values of the member being traced, the set that records every path the step asks for) or None.
_ACTIVE: contextvars.ContextVar[tuple[Mapping[str, Any], set[str]] | None] = contextvars.ContextVar(
    "gen_jax_hyper", default=None
)


def value(path: str, default: Any) -> Any:
    """The value of config field `path` as the step being traced must use it.

    Args:
      path: the field's dotted name in the config, e.g. "optim.learning_rate".
      default: the config's own value, what a single run uses.

    Returns:
      `default`, or, inside `overriding(values)` with `path` in `values`, that (traced) value.
    """
    active = _ACTIVE.get()
    if active is None:
        return default
    values, asked = active
    asked.add(path)
    return values.get(path, default)


@contextlib.contextmanager
def overriding(values: Mapping[str, Any]) -> Iterator[set[str]]:
    """Within the block, `value(path, …)` returns `values[path]` for the paths it holds.

    Yields the set of every path the traced code asked for (overridden or not), filled as the block runs: the
    scalars this step reads through `value`, i.e. what a sweep can vary.
    """
    asked: set[str] = set()
    token = _ACTIVE.set((values, asked))
    try:
        yield asked
    finally:
        _ACTIVE.reset(token)
