"""Run in subprocesses by test_sharding.py, one per process of a multi-host run on localhost.

    python tests/multihost_worker.py <steps> --config … --workdir … [--config.<key>=<value> …] [--coordinator_address …]

runs `python -m experiments.main` with the reference classifier of digits trained for <steps> steps instead of its
real count (as test_sample_quality.py's fixture does), so that a run with sample quality and a fresh classifier
cache stays short;

    python tests/multihost_worker.py map_batches <coordinator address> <process id>

evaluates one function with `metrics.map_batches` over 23 examples in batches of 4, whole and inside
`metrics.split_over_processes`, and prints `RESULT {"calls": [whole, split], "equal": …}`.
"""

import json
import sys

from absl import app

from experiments import main as experiments_main
from gen_jax.tasks import classifier


def map_batches_both_ways(coordinator: str, process_id: int) -> dict:
    import jax
    import numpy as np

    jax.distributed.initialize(coordinator_address=coordinator, num_processes=2, process_id=process_id)
    from gen_jax import metrics

    images, calls = np.random.RandomState(0).rand(23, 5).astype(np.float32), []
    noisy = jax.jit(lambda x, key: x * 2 + jax.random.uniform(key, x.shape))

    def fn(x, key):
        calls.append(1)
        return {"y": np.asarray(noisy(x, key)), "big": np.asarray(x[:, 0] > 0.5)}

    whole = metrics.map_batches(fn, images, 4, jax.random.key(1))
    whole_calls = len(calls)
    with metrics.split_over_processes():
        split = metrics.map_batches(fn, images, 4, jax.random.key(1))
    equal = all(np.array_equal(whole[k], split[k]) and whole[k].dtype == split[k].dtype for k in whole)
    return {"calls": [whole_calls, len(calls) - whole_calls], "equal": equal}


if __name__ == "__main__":
    if sys.argv[1] == "map_batches":
        print("RESULT " + json.dumps(map_batches_both_ways(sys.argv[2], int(sys.argv[3]))), flush=True)
        sys.exit(0)
    classifier._REFERENCE_STEPS["digits"] = int(sys.argv[1])
    app.run(experiments_main.main, argv=[sys.argv[0], *sys.argv[2:]], flags_parser=experiments_main.parse_flags)
