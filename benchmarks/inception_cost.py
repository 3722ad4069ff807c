"""What the Inception FID costs: seconds for the pool3 features of 10,000 images on this machine.

    python -m benchmarks.inception_cost [--images 10000] [--image-shape 28,28,1] [--batch-size 50]
        [--weights inception_fid.npz] [--json benchmarks/results/<device>_<date>_inception_cost.json]

Times `gen_jax.inception.pool3_features` (resize to 299×299, the FID Inception-v3 to pool3) on `--images` random
images of `--image-shape` in [0, 1], after one batch that compiles (timed apart).  The cost does not depend on the
weights' values, so without --weights random ones are timed.  With fewer than 10,000 images the record's
`seconds_per_10000` is extrapolated linearly and says so (`extrapolated_from`).  The load averages before and after
are recorded: on a shared machine they tell how far the time is the network's own.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time

import jax
import numpy as np

from gen_jax import inception

REFERENCE_COUNT = 10_000


def drawn_variables() -> dict:
    """Random weights of the network's shapes (unit batch-norm variances): the same cost as the published ones."""
    rng = np.random.default_rng(0)
    return inception.variables_from_arrays(
        {
            name: np.ones(shape, np.float32) if name.endswith("/var") else 0.05 * rng.standard_normal(shape, np.float32)
            for name, shape in inception.variable_shapes().items()
        }
    )


def time_features(variables: dict, images: np.ndarray, batch_size: int) -> dict[str, float]:
    """{compile_s: the first batch (compilation included), features_s: all `images` after it, images_per_s}."""
    start = time.perf_counter()
    jax.block_until_ready(inception.pool3_features(variables, images[:batch_size], batch_size))
    compiled = time.perf_counter()
    features = inception.pool3_features(variables, images, batch_size)
    jax.block_until_ready(features)
    done = time.perf_counter()
    if features.shape != (len(images), inception.FEATURE_DIM):
        raise RuntimeError(f"features of shape {features.shape}, expected {(len(images), inception.FEATURE_DIM)}")
    return {
        "compile_s": compiled - start,
        "features_s": done - compiled,
        "images_per_s": len(images) / (done - compiled),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.inception_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=REFERENCE_COUNT)
    parser.add_argument("--image-shape", default="28,28,1", help="H,W,C of the images (C = 1 or 3)")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--weights", default="", help="a converted .npz (experiments.fid_weights); default: random")
    parser.add_argument("--json", help="write the results record here")
    args = parser.parse_args(argv[1:])
    shape = tuple(int(n) for n in args.image_shape.split(","))
    if len(shape) != 3 or shape[2] not in (1, 3) or args.images < 1 or args.batch_size < 1:
        print(
            "error: --image-shape must be H,W,C with C = 1 or 3, and --images, --batch-size positive", file=sys.stderr
        )
        return 2
    try:
        variables = inception.load_variables(args.weights) if args.weights else drawn_variables()
    except inception.InceptionWeightsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    images = np.random.default_rng(0).uniform(0, 1, (args.images, *shape)).astype(np.float32)
    load_before = os.getloadavg()
    timing = time_features(variables, images, args.batch_size)
    record = {
        "command": " ".join(["python -m benchmarks.inception_cost", *argv[1:]]),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "devices": f"{jax.device_count()} × {jax.devices()[0].device_kind}",
            "load_average_1_5_15_min": {"before": list(load_before), "after": list(os.getloadavg())},
        },
        "versions": {"python": platform.python_version(), "jax": jax.__version__},
        "images": args.images,
        "image_shape": list(shape),
        "batch_size": args.batch_size,
        "weights": args.weights or "drawn",
        **timing,
        "seconds_per_10000": timing["features_s"] * REFERENCE_COUNT / args.images,
        "extrapolated_from": None if args.images >= REFERENCE_COUNT else args.images,
    }
    print(json.dumps(record, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(record, f, indent=2)
            f.write("\n")
        print(f"Wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
