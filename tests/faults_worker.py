"""Run in a subprocess by test_faults.py: `python -m experiments.main` whose checkpoint save of one step stops inside
Orbax's write, so that the test's SIGKILL provably lands mid-save.

    python tests/faults_worker.py <pause step> <marker file> --config … --workdir … [--config.<key>=<value> …]

At the save of <pause step>, once its arrays are written to `<step>.orbax-checkpoint-tmp` and before Orbax renames
that directory to `<step>` (the commit), the worker writes <marker file> and waits there for the kill.
"""

import asyncio
import os
import sys

from absl import app
from orbax.checkpoint._src.path import atomicity

from experiments import main as experiments_main


def pause_before_commit(step: int, marker: str) -> None:
    """Makes the commit (rename) of step directory `step` write `marker`, then wait forever."""
    finalize = atomicity.AtomicRenameTemporaryPath.finalize

    async def paused(self):
        if self.get_final().name == str(step):
            with open(marker, "w") as f:
                f.write(f"{self.get()}\n")
            while True:
                await asyncio.sleep(1)
        return await finalize(self)

    atomicity.AtomicRenameTemporaryPath.finalize = paused


if __name__ == "__main__":
    pause_step, marker_path = int(sys.argv[1]), sys.argv[2]
    pause_before_commit(pause_step, os.path.abspath(marker_path))
    app.run(experiments_main.main, argv=[sys.argv[0], *sys.argv[3:]], flags_parser=experiments_main.parse_flags)
