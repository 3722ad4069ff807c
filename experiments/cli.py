"""What the post-training command lines (explore, export) share: a mistake in a flag or an output path reported as
one line `error: …` on stderr with exit status 2, before anything is loaded."""

from __future__ import annotations

import os
import sys
import tempfile
from typing import NoReturn

from absl import flags


def fail(message: str) -> NoReturn:
    """Prints `error: message` on stderr and exits with status 2."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing (for `app.run(main, flags_parser=parse_flags)`), with a bad flag value, an unknown flag or
    a missing required one reported in one line instead of absl's two lines or the whole help."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        fail(" ".join(str(error).split()))


def writable_directory(path: str, flag: str) -> str:
    """`path` as an absolute directory this process can write files into, created if missing.

    Checked by writing (and removing) a probe file, so what permissions alone cannot tell (a read-only file system,
    /proc, a path through a file) is caught too.  Exits through `fail` with one line naming `flag` and the culprit
    when it is not one.
    """
    path = os.path.abspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        fail(f"{flag} {path} is a file; give a directory (created if missing) to write into")
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        fail(f"{flag} {path} cannot be written ({error.strerror or error}); choose a directory you can write to")
    return path
