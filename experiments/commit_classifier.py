"""Writes a trained reference classifier into the package, so that every machine scores with it.

    python -m experiments.main --config experiments/configs/classifier_digits.py --workdir /tmp/classifier_digits
    python -m experiments.commit_classifier --workdir /tmp/classifier_digits

reads the run's config.json (its dataset), summary.json and newest checkpoint and writes
gen_jax/reference_classifiers/<dataset>/ (`sample_quality.commit_classifier`: params.npz, classifier.json with the
config, test accuracy and the training split's fingerprint).  Then update the floors docs/results.md states
(tests/test_reference_classifiers.py reproduces them).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from gen_jax import config as config_lib
from gen_jax import data, sample_quality


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="a finished run of a classifier_<dataset> config")
    parser.add_argument("--out", default="", help="default: gen_jax/reference_classifiers/<dataset>")
    args = parser.parse_args(argv)
    path = os.path.join(args.workdir, "summary.json")
    if not os.path.isfile(path):
        print(f"{path} does not exist: train the classifier to the end first", file=sys.stderr)
        return 2
    with open(os.path.join(args.workdir, "config.json")) as f:
        config = config_lib.new_config(json.load(f))
    dataset = data.configured_dataset(config)
    out = args.out or os.path.join(sample_quality.COMMITTED_DIR, dataset.store_name)
    sample_quality.commit_classifier(args.workdir, dataset, out)
    print(f"Wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
