"""Run in a subprocess by test_preemption.py: `python -m experiments.main` (or `experiments.sweep`) that pauses at a
chosen point until the test has signalled it, so that the signal provably lands there.

    python tests/preemption_worker.py <main|sweep> <where> <marker file> <go file> --config … --workdir … […]

<where> is a comma-separated list of `log:<step>` (after the loop's log record of that step, in every process: a
signal lands mid-training), `load` (the data set's loading, before the workdir is locked), both of which write
`<marker file>.<kind>` and wait there until <go file> exists, and `save:<step>` (the commit of that step's
checkpoint, whose files are then written but not yet renamed into place: `faults_worker.pause_before_commit`),
which writes `<marker file>.save` and waits forever.
"""

import os
import sys
import time

from absl import app
from faults_worker import pause_before_commit

from experiments import main as experiments_main
from experiments import sweep as experiments_sweep
from gen_jax import workdir as workdir_lib


def wait_for(marker: str, go: str) -> None:
    with open(marker, "w") as f:
        f.write(f"{os.getpid()}\n")
    while not os.path.exists(go):
        time.sleep(0.02)


def pause_at(where: str, marker: str, go: str) -> None:
    """Makes the run wait at `where`, one place (see the module's docstring)."""
    if where.startswith("save:"):
        pause_before_commit(int(where.removeprefix("save:")), f"{marker}.save")
        return
    marker = f"{marker}.{where.split(':')[0]}"
    if where == "load":
        load_data = experiments_main.load_data

        def paused_load(config):
            wait_for(marker, go)
            return load_data(config)

        experiments_main.load_data = paused_load
        return
    step, write = int(where.removeprefix("log:")), workdir_lib.MetricsLog.write

    def paused_write(self, at: int, values: dict) -> None:
        write(self, at, values)
        if at == step and any(name.startswith("train/") for name in values) and not os.path.exists(marker):
            wait_for(marker, go)

    workdir_lib.MetricsLog.write = paused_write


if __name__ == "__main__":
    program, where, marker_path, go_path = sys.argv[1:5]
    for place in where.split(","):
        pause_at(place, os.path.abspath(marker_path), os.path.abspath(go_path))
    module = experiments_main if program == "main" else experiments_sweep
    app.run(module.main, argv=[sys.argv[0], *sys.argv[5:]], flags_parser=experiments_main.parse_flags)
