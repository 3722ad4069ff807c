"""Stopping a run cleanly on SIGTERM (a cluster's preemption notice) or SIGINT (Ctrl-C).

While the loop trains (`StopRequests`), a signal is only noted; at the next chunk boundary the loop saves a
checkpoint at that step and raises `Stopped`, and the command prints its one line and exits 128 + the signal's
number (143 for SIGTERM, 130 for SIGINT).  A second signal while that checkpoint is being saved exits at once:
Orbax commits a checkpoint by renaming its finished directory, so the previous one is intact either way.

With several processes, every process must stop after the same chunk.  JAX's preemption service (started by
`jax.distributed.initialize`) takes SIGTERM in any process to all of them and agrees on the call at which they
stop: `multihost_utils.reached_preemption_sync_point(n)`, called by every process at every boundary with the same
count `n` (the process-wide count of boundaries, `_boundaries`).  SIGINT is handed to that service as SIGTERM.
Outside the loop (data loading, compilation, evaluation at the end) `interruptible` makes both signals one line.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import sys

import jax

NAMES = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "SIGINT"}

# Every chunk boundary of every training loop of this process, counted from 1; 0 is taken when multi-process JAX
# starts (`register`), so that a notice that arrives before the first boundary stops the run at that boundary.
_boundaries = itertools.count(1)


class Stopped(Exception):
    """Training stopped at `step` on a signal, after saving the checkpoint of that step."""

    def __init__(self, step: int, signum: int):
        self.step, self.signum = step, signum
        super().__init__(f"stopped at step {step} by {NAMES[signum]}; checkpoint saved; run the same command to resume")

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


class Interrupted(BaseException):
    """SIGTERM outside the training loop, as KeyboardInterrupt is SIGINT there."""


def multi_process() -> bool:
    """Whether JAX's multi-process runtime (and with it the preemption service) is running."""
    from jax._src import distributed

    return distributed.global_state.client is not None and jax.process_count() > 1


def register() -> None:
    """Makes this process known to JAX's preemption service at once (call count 0), so that a SIGTERM to any
    process before the first chunk boundary stops every process at that boundary.  Multi-process runs only."""
    if multi_process():
        from jax.experimental import multihost_utils

        multihost_utils.reached_preemption_sync_point(0)


class StopRequests:
    """While active, SIGTERM and SIGINT are noted instead of acted on; `requested()` at each chunk boundary says
    whether to stop there.  The previous handlers are restored on exit."""

    def __init__(self):
        self.signum: int | None = None
        self.step: int | None = None  # the step whose checkpoint is being saved, once stopping
        self.multi = False
        self.previous: dict[int, object] = {}

    def __enter__(self) -> StopRequests:
        self.multi = multi_process()
        # Many processes: SIGTERM stays with JAX's preemption service, which installed its own handler.
        for signum in (signal.SIGINT,) if self.multi else (signal.SIGINT, signal.SIGTERM):
            self.previous[signum] = signal.signal(signum, self._note)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def _note(self, signum: int, frame) -> None:
        if self.signum is not None:
            waiting = f"the checkpoint of step {self.step}" if self.step is not None else "the next chunk boundary"
            sys.stderr.write(
                f"stopped by a second {NAMES[signum]} without waiting for {waiting}; the checkpoints saved before "
                "are intact; run the same command to resume\n"
            )
            sys.stderr.flush()
            os._exit(128 + signum)
        self.signum = signum
        if self.multi:
            os.kill(os.getpid(), signal.SIGTERM)  # to JAX's preemption service, which tells every process

    def requested(self) -> bool:
        """Whether to stop at this chunk boundary.  Every process calls it at every boundary, in the same order."""
        if not self.multi:
            return self.signum is not None
        from jax.experimental import multihost_utils

        if not multihost_utils.reached_preemption_sync_point(next(_boundaries)):
            return False
        if self.signum is None:
            self.signum = signal.SIGTERM  # another process's notice
        return True

    def stopping(self, step: int) -> Stopped:
        """The exception that ends the loop at `step`, once its checkpoint is saved."""
        self.step = step
        return Stopped(step, self.signum)


def _raise_interrupted(signum: int, frame) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def interruptible(workdir: str):
    """Runs a command's work so that SIGTERM and SIGINT end it with one line on stderr and exit status 128 + the
    signal's number, never a traceback: `Stopped`'s line when the loop saved a checkpoint, else one saying the
    checkpoints in `workdir` are intact.  Enter after multi-process JAX has started."""
    previous = None
    if not multi_process():
        previous = signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        yield
    except Stopped as stopped:
        print(stopped, file=sys.stderr, flush=True)
        sys.exit(stopped.exit_status)
    except (KeyboardInterrupt, Interrupted) as error:
        signum = error.args[0] if isinstance(error, Interrupted) else signal.SIGINT
        print(
            f"stopped by {NAMES[signum]}; the checkpoints in {os.path.join(workdir, 'checkpoints')} are intact; "
            "run the same command to resume",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(128 + signum)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
