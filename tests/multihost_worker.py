"""Run in a subprocess by test_sharding.py: `python -m experiments.main` with the reference classifier of digits
trained for <steps> steps instead of its real count (as test_sample_quality.py's fixture does), so that a run with
sample quality and a fresh classifier cache stays short.

    python tests/multihost_worker.py <steps> --config … --workdir … [--config.<key>=<value> …] [--coordinator_address …]
"""

import sys

from absl import app

from experiments import main as experiments_main
from gen_jax.tasks import classifier

if __name__ == "__main__":
    classifier._REFERENCE_STEPS["digits"] = int(sys.argv[1])
    app.run(experiments_main.main, argv=[sys.argv[0], *sys.argv[2:]], flags_parser=experiments_main.parse_flags)
