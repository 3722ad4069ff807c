"""Orbax checkpoints of one training-state pytree: save, find the latest, restore with checks.

The state (params, optimizer state(s), step, EMA, batch statistics) is saved whole; keys and the data position
are functions of (seed, step), so restoring the state restores them too.  Every process of a multi-host run
calls these together.  Neighbours: `train.py` decides when to save; `sharding.py` decides where arrays live.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import zlib
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

# Written by process 0 into each step directory once Orbax has committed it: every file's size and CRC-32, so that
# damage is found the same way whichever file it hit, and named.
MANIFEST = "gen_jax_files.json"

# Steps saved by this process whose manifest is still to be written, by checkpoint directory.
_UNSEALED: dict[str, list[int]] = {}


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model the config describes (another model, size or latent_dim)."""


class CheckpointDamagedError(CheckpointMismatchError):
    """A checkpoint's files differ from what was written (truncated, emptied, overwritten or missing)."""


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written (full disk, no permission); the previous checkpoints are intact."""


def make_manager(directory: str, max_to_keep: int | None = None, read_only: bool = False) -> ocp.CheckpointManager:
    """A manager that keeps the newest `max_to_keep` checkpoints; saving cadence is the loop's decision.

    Args:
      directory: where the checkpoints live (a local path, made absolute, or a URI such as `gs://bucket/run`
        wherever Orbax can write one; created unless `read_only`).
      max_to_keep: how many of the newest checkpoints to keep; None keeps all.
      read_only: open existing checkpoints for restoring only (nothing is created, saved or deleted).

    Returns:
      An Orbax `CheckpointManager` holding one item per step, saved with the standard handler.  A writable one
      first removes the uncommitted `<step>.orbax-checkpoint-tmp` directories a killed save leaves behind.
    """
    _quiet_orbax()
    if read_only:
        options = ocp.CheckpointManagerOptions(read_only=True, create=False, save_interval_steps=0)
    else:
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True, cleanup_tmp_directories=True)
    # One item saved with the standard handler, so metadata can be read before a restore.
    directory = directory if "://" in str(directory) else os.path.abspath(directory)
    return ocp.CheckpointManager(directory, options=options, item_handlers=ocp.StandardCheckpointHandler())


class _ReadOnlyNotice(logging.Filter):
    """Drops Orbax's warning that a manager opened read-only is read-only: the caller asked for exactly that."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Given directory is read only")


def _ignore_closed_loop_callbacks(hook):
    """sys.unraisablehook without `RuntimeError: Event loop is closed`: TensorStore's late completion callbacks
    into the event loop of an Orbax call that has already failed (its error is the one reported)."""

    def filtered(unraisable):
        error = unraisable.exc_value
        if isinstance(error, RuntimeError) and str(error) == "Event loop is closed":
            return
        hook(unraisable)

    filtered.gen_jax_filter = True
    return filtered


def _quiet_orbax() -> None:
    """Silences the two messages Orbax prints that say nothing to a user (idempotent)."""
    if not getattr(sys.unraisablehook, "gen_jax_filter", False):
        sys.unraisablehook = _ignore_closed_loop_callbacks(sys.unraisablehook)
    absl_logger = logging.getLogger("absl")
    if not any(isinstance(f, _ReadOnlyNotice) for f in absl_logger.filters):
        absl_logger.addFilter(_ReadOnlyNotice())


def save(manager: ocp.CheckpointManager, step: int, state: Any) -> None:
    """Saves `state` as checkpoint `step` (asynchronously; `finish(manager)` joins).

    Orbax first joins the previous save; once it is committed, its manifest (`MANIFEST`: each file's size and
    CRC-32) is written, so that `verify` can later name a damaged file.

    Args:
      manager: from `make_manager`.
      step: the training step, the checkpoint's name.
      state: the whole training-state pytree.

    Raises:
      CheckpointWriteError: this save or the previous one could not write its files; committed checkpoints are
        untouched and the failed one is not committed.
    """
    pending = _UNSEALED.setdefault(str(manager.directory), [])
    try:
        manager.save(step, args=ocp.args.StandardSave(state), force=True)
    except Exception as error:  # a failed write surfaces here, or in `finish`
        raise _write_error(manager, pending[-1] if pending else step, error) from None
    _seal(manager)
    _UNSEALED[str(manager.directory)] = [step]


def finish(manager: ocp.CheckpointManager) -> None:
    """Waits for the save in flight and writes its manifest; CheckpointWriteError as `save` when it failed."""
    pending = _UNSEALED.get(str(manager.directory), [])
    try:
        manager.wait_until_finished()
    except Exception as error:
        raise _write_error(manager, pending[-1] if pending else None, error) from None
    _seal(manager)


def _seal(manager: ocp.CheckpointManager) -> None:
    """Writes the manifest of each committed step this process saved (process 0; the others' files are in the
    same step directory on the shared file system)."""
    pending = _UNSEALED.pop(str(manager.directory), [])
    if jax.process_index() != 0:
        return
    for step in pending:
        step_dir = epath.Path(manager.directory) / str(step)
        if step_dir.is_dir():
            _write_manifest(step_dir)
        elif step == max(pending):  # Orbax logs some failed commits instead of raising them
            raise _write_error(manager, step, RuntimeError("Orbax did not commit it"))


def _crc32(path: epath.Path) -> int:
    crc = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            crc = zlib.crc32(chunk, crc)
    return crc


def _files(directory: epath.Path, prefix: str = "") -> dict[str, epath.Path]:
    """{path relative to `directory`: path} of every file under it, on any file system epath reads."""
    found = {}
    for path in sorted(directory.iterdir()):
        if path.is_dir():
            found.update(_files(path, f"{prefix}{path.name}/"))
        else:
            found[prefix + path.name] = path
    return found


def _write_manifest(step_dir: epath.Path) -> None:
    files = {
        relative: [path.stat().length, _crc32(path)]
        for relative, path in _files(step_dir).items()
        if not relative.startswith(MANIFEST)
    }
    text = json.dumps({"files": dict(sorted(files.items()))}, indent=0)
    if "://" in str(step_dir):  # a remote store's upload is seen whole or not at all
        (step_dir / MANIFEST).write_text(text)
        return
    tmp = step_dir / (MANIFEST + ".tmp")
    tmp.write_text(text)
    tmp.replace(step_dir / MANIFEST)


def verify(directory: str, step: int) -> None:
    """Checks every file of checkpoint `step` against its manifest, before Orbax reads any of them.

    A checkpoint without a manifest (written before manifests existed, or killed between commit and manifest) is
    not checked here; Orbax's own reading then finds what it can.

    Raises:
      CheckpointDamagedError: naming the step and the first damaged file (missing, of another size, or other
        bytes than were written).
    """
    step_dir = epath.Path(directory) / str(step)
    if not (step_dir / MANIFEST).exists():
        return
    try:
        files = json.loads((step_dir / MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        raise _damaged(directory, step, MANIFEST, "cannot be read") from None
    for name, (size, crc) in files.items():
        path = step_dir / name
        if not path.exists() or path.is_dir():
            raise _damaged(directory, step, name, "is missing")
        if path.stat().length != size:
            raise _damaged(directory, step, name, f"holds {path.stat().length} bytes, {size} were written")
        if _crc32(path) != crc:
            raise _damaged(directory, step, name, "holds other bytes than were written (CRC-32)")


def _damaged(directory: str, step: int, name: str, what: str) -> CheckpointDamagedError:
    return CheckpointDamagedError(
        f"checkpoint {step} in {directory} is damaged: {step}/{name} {what}; nothing was changed."
    )


# TensorStore's messages name files as `local file "<path>"` and end in a long JSON spec; keep the file and the
# reason a person can act on.
_FILE_IN_MESSAGE = re.compile(r'(?:local file|Failed writing:) "([^"]*[^/"])"')
_OS_ERROR = re.compile(r": ([^:\[\]]+?) \[os_error_code='(\d+)'\]")


def _short_cause(error: Exception, limit: int = 160) -> str:
    """`error` in a few words: the OS error or the file and what was wrong with it, without TensorStore's spec."""
    if isinstance(error, OSError) and error.strerror:
        return f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    message = str(error)
    os_error = _OS_ERROR.search(message)
    if os_error:
        return os_error.group(1)
    message = re.split(r" \[(?:tensorstore_spec|source locations)|See full TensorStore details", message)[0]
    files = _FILE_IN_MESSAGE.findall(message)
    if files:
        after = message.rsplit(files[-1], 1)[1].lstrip('": ').strip()
        message = f"{files[-1]}: {after}" if after else files[-1]
    message = " ".join(message.split()) or type(error).__name__
    return message if len(message) <= limit else message[: limit - 1] + "…"


def _write_error(manager: ocp.CheckpointManager, step: int | None, error: Exception) -> CheckpointWriteError:
    _UNSEALED.pop(str(manager.directory), None)
    committed = [s for s in manager.all_steps() if step is None or s < step]
    kept = f"step {max(committed)} and earlier are intact" if committed else "no earlier checkpoint exists"
    return CheckpointWriteError(
        f"checkpoint {step if step is not None else ''} could not be written in {manager.directory} "
        f"({_short_cause(error, 80)}); {kept}.\n"
        "  Free space (or make the directory writable), then run the same command again: it resumes from the "
        "newest intact checkpoint."
    )


def newest_intact_before(manager: ocp.CheckpointManager, step: int) -> int | None:
    """The newest checkpoint before `step` whose files match its manifest (or that has none), or None."""
    for earlier in sorted((s for s in manager.all_steps() if s < step), reverse=True):
        try:
            verify(str(manager.directory), earlier)
        except CheckpointDamagedError:
            continue
        return earlier
    return None


def set_aside(manager: ocp.CheckpointManager, steps: list[int], destination: str) -> list[str]:
    """Moves checkpoints `steps` out of the manager's directory into `destination/<step>` (a rename, nothing is
    deleted; `<step>.1`, `<step>.2`, … when that name is taken) and reloads the manager.  Process 0 moves.

    Returns:
      The new paths.
    """
    moved = []
    if jax.process_index() == 0:
        epath.Path(destination).mkdir(parents=True, exist_ok=True)
        for step in steps:
            target, n = epath.Path(destination) / str(step), 0
            while target.exists():
                n += 1
                target = epath.Path(destination) / f"{step}.{n}"
            (epath.Path(manager.directory) / str(step)).rename(target)
            moved.append(str(target))
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("gen_jax.checkpoint.set_aside")
    manager.reload()
    return moved


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
        raise CheckpointDamagedError(
            f"checkpoint {step} in {manager.directory} cannot be read ({_short_cause(error)}); nothing was changed."
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
      CheckpointDamagedError: its files are damaged (named when the manifest can tell) or cannot be read; kept.
      CheckpointMismatchError: the checkpoint does not fit `target`; it is kept.
    """
    verify(str(manager.directory), step)
    check_compatible(manager, step, target)
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, target)
    try:
        return manager.restore(step, args=ocp.args.StandardRestore(abstract))
    except Exception as error:  # damaged files the manifest could not vouch for: report, keep them
        empty = _empty_files(epath.Path(manager.directory) / str(step))
        cause = f"{step}/{empty[0]} is empty" if empty else _short_cause(error)
        raise CheckpointDamagedError(
            f"checkpoint {step} in {manager.directory} could not be restored ({cause}); nothing was changed."
        ) from None


def _empty_files(step_dir: epath.Path) -> list[str]:
    """The files of a step directory that hold no bytes (Orbax writes none empty), relative to it."""
    return [relative for relative, path in _files(step_dir).items() if path.stat().length == 0]


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
