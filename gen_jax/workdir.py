"""The run's directory: who may write it (the lock), whether the run in it is this model (config and signature),
and its files: metrics.jsonl and TensorBoard (`MetricsLog`), rewound on resume (`rewind_metrics`), and JSON written
whole or not at all (`write_json`).

Every write is process 0's (`is_chief`); the other processes of a multi-host run share the directory.  Neighbours:
`train.py` (the loop that calls these), `checkpoint.py` (the checkpoints inside the directory).
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import socket
import time

import jax
import numpy as np
from etils import epath

from gen_jax import config as config_lib


class WorkdirMismatchError(ValueError):
    """The workdir holds a run of a different model; nothing in it was changed."""


class WorkdirBusyError(RuntimeError):
    """Another process is running in the workdir; the message names it, and nothing in the workdir was changed."""


class WorkdirWriteError(RuntimeError):
    """A file of the run (metrics.jsonl, summary.json, …) could not be written: full disk, no permission."""


# Held (fcntl.flock) by process 0 of the run working in a workdir, and holding its pid, host and start time.
LOCK_FILE = "lock.json"
# Where `train(resume_step=N)` moves the checkpoints after N (never deleted).
SET_ASIDE_DIR = "checkpoints_set_aside"


@contextlib.contextmanager
def workdir_lock(workdir: str):
    """Holds `<workdir>/lock.json` while the block runs, so that two runs never write one workdir.

    Process 0 takes an exclusive advisory `fcntl.flock` on the file (creating the workdir if needed) and writes
    its pid, host and start time into it; the other processes of the same multi-host run share the workdir and
    take nothing.  The kernel releases a flock when its holder exits, SIGKILL included, so a lock file left by a
    killed run never blocks the next one: it is taken over.  The file is removed when the block ends.

    A remote workdir (`gs://…`, any URI `is_remote`) takes no lock: such stores have no advisory locks; the run
    says so once and goes on.

    Raises:
      WorkdirBusyError: another process holds the lock: one line naming it (pid, host, start time), before
        anything in the workdir was read or written.
      WorkdirWriteError: the lock file cannot be written (read-only or full file system).
    """
    if not is_chief():
        yield
        return
    if is_remote(workdir):
        _say_once(
            f"{workdir} is not on a local file system: it cannot be locked, so a second run in it would not be "
            "refused; start one run per workdir."
        )
        yield
        return
    path = os.path.join(workdir, LOCK_FILE)
    try:
        os.makedirs(workdir, exist_ok=True)
        fd = _acquire_lock(path)
    except OSError as error:  # a read-only or full file system, no permission
        raise write_error(path, error) from None
    try:
        yield
    finally:
        with contextlib.suppress(OSError):  # the workdir may have been moved, or its file system made read-only
            os.unlink(path)  # while still holding it, so no one else can have taken this file
        os.close(fd)


def _acquire_lock(path: str) -> int:
    """An open, flocked descriptor of `path` holding this process's description; WorkdirBusyError if held."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _lock_holder(fd)
            os.close(fd)
            raise WorkdirBusyError(
                f"{os.path.dirname(path)} is in use by another run ({holder}); nothing in it was changed. Wait for "
                "that run to end, or stop it, then run again."
            ) from None
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)  # its holder removed that file between our open and our lock: take the new one
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": started}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
    return fd


def _lock_holder(fd: int) -> str:
    """'pid 123 on host h, started …' from a held lock file (its holder writes it just after locking)."""
    for _ in range(20):
        try:
            holder = json.loads(os.pread(fd, 4096, 0))
            return f"pid {holder['pid']} on host {holder['host']}, started {holder['started']}"
        except (ValueError, KeyError, TypeError):
            time.sleep(0.05)
    return "a process that has not yet written who it is"


def is_remote(path: str) -> bool:
    """Whether `path` is a URI (`gs://bucket/…`, `s3://…`) rather than a local path: read and written through
    `etils.epath`, as Orbax reads and writes it, without locks or appends."""
    return "://" in str(path)


def writes_local_files(workdir: str) -> bool:
    """Whether figures and report pages (written with local file APIs) go into `workdir`: not into a remote one,
    which the run says once."""
    if not is_remote(workdir):
        return True
    _say_once(f"{workdir} is not on a local file system: no figures or report pages are written there.")
    return False


_SAID: set[str] = set()


def _say_once(message: str) -> None:
    """Prints `message` the first time this process is asked to."""
    if message not in _SAID:
        _SAID.add(message)
        print(message, flush=True)


def is_chief() -> bool:
    """Whether this is process 0, the one that writes the run's files."""
    return jax.process_index() == 0


def write_json(path: str, payload: dict) -> None:
    """Writes `payload` to `path` as indented JSON (NumPy and JAX scalars and arrays as lists), then renames it
    into place, so a killed process never leaves half a file where a whole one was; WorkdirWriteError if it
    cannot."""
    try:
        write_whole(path, json.dumps(payload, indent=2, sort_keys=True, default=_json_default) + "\n")
    except OSError as error:
        raise write_error(path, error) from None


def write_whole(path: str, text: str) -> None:
    """Writes `text` to `path` so that a reader finds the old file or the new one, never half of it: locally into
    `<path>.tmp`, then renamed into place; in a remote store (`is_remote`) in one upload, which such stores make
    visible whole or not at all."""
    if is_remote(path):
        epath.Path(path).write_text(text)
        return
    tmp = epath.Path(path + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def write_error(path: str, error: OSError) -> WorkdirWriteError:
    """The one-line error for a run file that could not be written."""
    return WorkdirWriteError(
        f"{path} could not be written ({error.strerror or error}); the checkpoints are intact. Free space (or make "
        "the directory writable), then run the same command again to resume."
    )


def rewind_metrics(path: str, step: int) -> None:
    """Keeps the records of `path` (metrics.jsonl) with step <= `step`, the step a run resumes from, so that the
    steps it logs again appear once.  Rewritten whole and renamed into place; a line cut short by a kill is
    dropped; an absent file is left absent."""
    if not epath.Path(path).exists():
        return
    lines = epath.Path(path).read_text().splitlines(keepends=True)
    kept = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("step", 0) <= step:
            kept.append(line if line.endswith("\n") else line + "\n")
    if kept != lines:
        try:
            write_whole(path, "".join(kept))
        except OSError as error:
            raise write_error(path, error) from None


def _json_default(value):
    if isinstance(value, (np.generic, jax.Array)):
        return np.asarray(value).tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def prepare_workdir(workdir: str, config_dict: dict, task) -> None:
    """Creates the workdir, or checks that the run already in it is of the same model, before any compute.

    The model signature is kept in `<workdir>/model.json`; a different one is an error that names each field,
    and nothing in the workdir is written.  A model.json written before configs were nested (flat fields) is
    refused in one line naming the version that wrote it.  `task`: the run's `train.Task` (its `signature` is what
    is kept and compared).
    """
    signature_path, checkpoints = epath.Path(workdir) / "model.json", epath.Path(workdir) / "checkpoints"
    if signature_path.exists():
        stored = json.loads(signature_path.read_text())
        _check_signature(workdir, stored, task)
    elif checkpoints.is_dir() and any(checkpoints.iterdir()):
        raise WorkdirMismatchError(
            f"{workdir}/checkpoints holds checkpoints but no model.json says which model wrote them; "
            "they are left untouched. Choose a new --workdir."
        )
    if not is_chief():
        return
    (epath.Path(workdir) / "figures").mkdir(parents=True, exist_ok=True)
    if not signature_path.exists():
        write_json(str(signature_path), task.signature)
    config_path = epath.Path(workdir) / "config.json"
    # On resume the config is rewritten only once the checkpoint has been restored (`train`), so a refused
    # resume leaves the workdir as it was.
    if not config_path.exists():
        write_json(str(config_path), config_dict)


def _flatten(tree: dict, prefix: str = "") -> dict:
    """{"model": {"hidden": [32]}} -> {"model.hidden": [32]}."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _check_signature(workdir: str, stored: dict, task) -> None:
    """WorkdirMismatchError (one line naming each differing field) unless `stored` (the workdir's model.json)
    matches the task's signature."""
    if config_lib.is_flat(stored):
        raise WorkdirMismatchError(config_lib.flat_run_message(os.path.join(workdir, "model.json")))
    stored_flat, wanted_flat = _flatten(stored), _flatten(config_lib.plain(task.signature))
    differing = sorted(k for k in set(stored_flat) | set(wanted_flat) if stored_flat.get(k) != wanted_flat.get(k))
    shown = {k: (stored_flat.get(k), wanted_flat.get(k)) for k in differing}
    if differing:
        fields = "; ".join(f"{k}: workdir has {old!r}, config asks for {new!r}" for k, (old, new) in shown.items())
        raise WorkdirMismatchError(
            f"{workdir} holds a run of a different model ({fields}); nothing in it was changed. Resume with the "
            "config that run used, or choose a new --workdir."
        )


class MetricsLog:
    """metrics.jsonl and TensorBoard, written by process 0 only.  `start`: the step the run starts from; TensorBoard
    hides what an earlier, interrupted process logged after it (`purge_step`), as `rewind_metrics` drops it from
    metrics.jsonl.

    In a remote workdir (`is_remote`), whose objects cannot be appended to, metrics.jsonl is rewritten whole at each
    record, and there is no TensorBoard (said once)."""

    def __init__(self, workdir: str, start: int = 0):
        self.enabled = is_chief()
        self.path = os.path.join(workdir, "metrics.jsonl")
        self.tensorboard = None
        self.lines = None  # a remote log's records so far
        if self.enabled and is_remote(workdir):
            self.lines = epath.Path(self.path).read_text() if epath.Path(self.path).exists() else ""
            _say_once(f"{workdir} is not on a local file system: no TensorBoard events are written there.")
        elif self.enabled:
            from tensorboardX import SummaryWriter  # writes event files without TensorFlow

            events = os.path.join(workdir, "tensorboard")
            resumed = os.path.isdir(events) and bool(os.listdir(events))
            self.tensorboard = SummaryWriter(events, purge_step=start + 1 if resumed else None)

    def write(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        line = json.dumps({"step": step, **values}, default=_json_default) + "\n"
        try:
            if self.lines is not None:
                self.lines += line
                epath.Path(self.path).write_text(self.lines)
            else:
                with open(self.path, "a") as f:
                    f.write(line)
        except OSError as error:
            raise write_error(self.path, error) from None
        if self.tensorboard is not None:
            for name, value in values.items():
                self.tensorboard.add_scalar(name, value, step)
            self.tensorboard.flush()

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()
