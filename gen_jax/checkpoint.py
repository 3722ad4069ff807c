"""Orbax checkpoints of one training-state pytree: save, find the latest, restore with checks.

The state (params, optimizer state(s), step, EMA, batch statistics) is saved whole; keys and the data position
are functions of (seed, step), so restoring the state restores them too.  Every process of a multi-host run
calls these together.  Neighbours: `train.py` decides when to save; `sharding.py` decides where arrays live.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model the config describes (another model, size or latent_dim)."""


def make_manager(directory: str, max_to_keep: int | None = None, read_only: bool = False) -> ocp.CheckpointManager:
    """A manager that keeps the newest `max_to_keep` checkpoints; saving cadence is the loop's decision.

    Args:
      directory: where the checkpoints live (made absolute; created unless `read_only`).
      max_to_keep: how many of the newest checkpoints to keep; None keeps all.
      read_only: open existing checkpoints for restoring only (nothing is created, saved or deleted).

    Returns:
      An Orbax `CheckpointManager` holding one item per step, saved with the standard handler.
    """
    if read_only:
        options = ocp.CheckpointManagerOptions(read_only=True, create=False, save_interval_steps=0)
    else:
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
    # One item saved with the standard handler, so metadata can be read before a restore.
    return ocp.CheckpointManager(
        os.path.abspath(directory), options=options, item_handlers=ocp.StandardCheckpointHandler()
    )


def save(manager: ocp.CheckpointManager, step: int, state: Any) -> None:
    """Saves `state` as checkpoint `step` (asynchronously; `manager.wait_until_finished()` joins).

    Args:
      manager: from `make_manager`.
      step: the training step, the checkpoint's name.
      state: the whole training-state pytree.
    """
    manager.save(step, args=ocp.args.StandardSave(state), force=True)


def _key_name(entry) -> str:
    for attribute in ("key", "name", "idx"):  # DictKey, GetAttrKey, SequenceKey
        if hasattr(entry, attribute):
            return str(getattr(entry, attribute))
    return str(entry)


def _describe_leaves(tree: Any) -> dict[str, tuple]:
    """'params/encoder/Dense_0/kernel' -> shape, for a state or for its checkpoint metadata alike (the metadata
    names dataclass fields and named tuples as dict keys and sequence indices)."""
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {
        "/".join(_key_name(entry) for entry in path): tuple(getattr(leaf, "shape", np.shape(leaf)))
        for path, leaf in flat
    }


def check_compatible(manager: ocp.CheckpointManager, step: int, target: Any) -> None:
    """Raises CheckpointMismatchError naming the differing arrays when checkpoint `step` does not fit `target`.

    Reads only the checkpoint's metadata, so a mismatch is reported before anything is loaded or trained.

    Args:
      manager: from `make_manager`.
      step: the checkpoint to check.
      target: a state pytree (arrays or ShapeDtypeStructs) whose leaf paths and shapes the checkpoint must match.

    Raises:
      CheckpointMismatchError: the checkpoint cannot be read, or an array is missing or of another shape.
    """
    try:
        stored = manager.item_metadata(step)
    except Exception as error:  # a truncated or foreign directory: say which, keep the files
        raise CheckpointMismatchError(
            f"checkpoint {step} in {manager.directory} cannot be read ({type(error).__name__}: {error}). "
            "It is left untouched; point --workdir at a new directory to start afresh."
        ) from None
    stored_shapes = _describe_leaves(stored)
    wanted_shapes = _describe_leaves(target)
    problems = []
    for name in sorted(set(stored_shapes) | set(wanted_shapes)):
        have, want = stored_shapes.get(name), wanted_shapes.get(name)
        if have != want:
            problems.append(
                f"{name}: checkpoint {have if have is not None else 'missing'}, "
                f"model {want if want is not None else 'missing'}"
            )
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more arrays" if len(problems) > 3 else "")
        raise CheckpointMismatchError(
            f"checkpoint {step} in {manager.directory} was written by a different model ({shown}); it is left "
            "untouched. Use the config it was trained with, or a new --workdir."
        )


def restore(manager: ocp.CheckpointManager, step: int, target: Any) -> Any:
    """Restores checkpoint `step` into the structure, dtypes and shardings of `target`.

    Args:
      manager: from `make_manager`.
      step: the checkpoint to restore.
      target: a state pytree of arrays that the checkpoint must fit; their shardings say where the restored arrays go.

    Returns:
      The restored state, shaped, typed and sharded like `target`.

    Raises:
      CheckpointMismatchError: the checkpoint does not fit `target` or its files cannot be read; they are kept.
    """
    check_compatible(manager, step, target)
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, target)
    try:
        return manager.restore(step, args=ocp.args.StandardRestore(abstract))
    except Exception as error:  # corrupt or truncated files: report, keep them for the user to inspect
        raise CheckpointMismatchError(
            f"checkpoint {step} in {manager.directory} could not be restored ({type(error).__name__}: "
            f"{str(error)[:300]}). It is left untouched; move it aside to resume from an earlier one, "
            "or choose a new --workdir."
        ) from None


def restore_latest(directory: str, target: Any) -> tuple[Any, int]:
    """The newest checkpoint under `directory`, read-only, shaped like `target` (for evaluation or editing after
    training).

    Args:
      directory: a checkpoint directory (`<workdir>/checkpoints`).
      target: a state pytree the checkpoint must fit.

    Returns:
      (state, step).

    Raises:
      FileNotFoundError: there is no checkpoint in `directory`.
      CheckpointMismatchError: as `restore`.
    """
    manager = make_manager(directory, read_only=True)
    step = manager.latest_step()
    if step is None:
        raise FileNotFoundError(f"no checkpoint in {directory}; train first (python -m experiments.main …)")
    return restore(manager, step, target), step
