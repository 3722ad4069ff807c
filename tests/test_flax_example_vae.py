"""experiments/flax_example_vae.py, the independent Flax-recipe yardstick: it trains and reports finite numbers for
the last iterate and the EMA, per seed and over seeds, on IDX files given as data_dir."""

import gzip
import math
import os
import re

import numpy as np

from experiments import flax_example_vae
from gen_jax import data
from test_sources import _idx_bytes


def test_yardstick_trains_and_reports_each_seed_and_the_mean(tmp_path, capsys):
    rng = np.random.RandomState(0)
    arrays = (rng.randint(0, 256, (200, 6, 6), np.uint8), rng.randint(0, 10, 200).astype(np.uint8),
              rng.randint(0, 256, (50, 6, 6), np.uint8), rng.randint(0, 10, 50).astype(np.uint8))
    for name, array in zip(data.FASHION_MNIST_FILES, arrays):
        with gzip.open(os.path.join(tmp_path, name + ".gz"), "wb") as f:
            f.write(_idx_bytes(array))
    flax_example_vae.main(["--seeds", "0", "1", "--num_steps", "3", "--ema_decay", "0.9", "--data_dir", str(tmp_path)])
    out = capsys.readouterr().out
    per_seed = re.findall(r"seed (\d): last iterate ([\d.]+)\s+EMA 0.9 ([\d.]+)", out)
    assert [seed for seed, _, _ in per_seed] == ["0", "1"]
    assert all(math.isfinite(float(v)) and float(v) > 0 for _, *values in per_seed for v in values)
    assert per_seed[0][1:] != per_seed[1][1:]  # the seeds train different models
    assert re.search(r"last iterate: mean [\d.]+ ± [\d.]+ over 2 seeds", out)
    assert re.search(r"EMA 0.9: mean [\d.]+ ± [\d.]+ over 2 seeds", out)
