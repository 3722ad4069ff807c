"""The explorer's decode round trip: HTTP request -> image bytes, as the page sees it.

    python -m benchmarks.explore_latency --workdir <run> [--requests 500] [--warmup 20] [--json out.json]

Serves the run with `python -m experiments.explore --port 0` in its own process (as a browser and the server are
two processes; in one process the client's thread would contend for the server's GIL) and sends POST /api/decode
requests one after the other over one keep-alive connection, as the page does (one in flight at a time), each
with a new z ~ N(0, I).  A round trip is timed from just before the
request is sent to the decoded image's bytes in hand (response read, JSON parsed, base64 decoded).  The run's own
jitted decoder computes every image; the first `warmup` requests (compilation, first connection) are not counted.
Reported: percentiles (p50, p95, p99), mean and max in ms, the decode alone (`Explorer.decode`, without HTTP)
timed the same way, and the machine's load averages before and after (the latency depends on what else runs).
The latency does not depend on how long the run was trained: only on the network's shape.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import re
import subprocess
import sys
import time

import numpy as np


def percentiles(times_s: list[float]) -> dict[str, float]:
    """{p50_ms, p95_ms, p99_ms, mean_ms, max_ms} of durations in seconds."""
    ms = np.asarray(times_s) * 1e3
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "max_ms": float(ms.max()),
    }


def round_trips(host: str, port: int, latent_dim: int, label: int | None, count: int, seed: int) -> list[float]:
    """Seconds per POST /api/decode round trip, `count` of them, one at a time over one connection."""
    rng = np.random.default_rng(seed)
    connection = http.client.HTTPConnection(host, port, timeout=60)
    times = []
    try:
        for _ in range(count):
            payload = {"z": rng.standard_normal(latent_dim).tolist()}
            if label is not None:
                payload["label"] = label
            body = json.dumps(payload).encode()
            start = time.perf_counter()
            connection.request("POST", "/api/decode", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            answer = json.loads(response.read())
            if response.status != 200:
                raise RuntimeError(f"the server answered {response.status}: {answer}")
            image = base64.b64decode(answer["pixels"])
            times.append(time.perf_counter() - start)
            assert len(image) == int(np.prod(answer["shape"]))
    finally:
        connection.close()
    return times


def direct_decodes(explorer, label: int | None, count: int, seed: int) -> list[float]:
    """Seconds per `explorer.decode` call (the jitted decoder and the conversion to bytes, no HTTP)."""
    rng = np.random.default_rng(seed)
    times = []
    for _ in range(count):
        z = rng.standard_normal(explorer.latent_dim).astype(np.float32)
        start = time.perf_counter()
        explorer.decode(z, label)
        times.append(time.perf_counter() - start)
    return times


def start_server(workdir: str) -> tuple[subprocess.Popen, tuple[str, int]]:
    """Starts `python -m experiments.explore --workdir <workdir> --port 0`; returns it and its (host, port), read
    from the URL it prints once it serves."""
    process = subprocess.Popen(
        [sys.executable, "-m", "experiments.explore", "--workdir", workdir, "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    for line in process.stdout:
        found = re.search(r"at http://([0-9.]+):([0-9]+)/", line)
        if found:
            return process, (found.group(1), int(found.group(2)))
    raise RuntimeError(f"the explorer exited ({process.wait()}) without printing its URL")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", required=True, help="a run directory written by experiments.main")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--json", help="write the results record here")
    args = parser.parse_args(argv[1:])
    if args.requests < 1 or args.warmup < 0:
        parser.error("--requests must be positive and --warmup non-negative")

    from absl import logging

    from experiments import explore
    from experiments import main as experiments_main
    from gen_jax.trained import load_run

    logging.set_verbosity(logging.WARNING)
    run = load_run(os.path.abspath(args.workdir))
    label = 0 if run.conditional else None
    load_before = os.getloadavg()
    process, (host, port) = start_server(args.workdir)
    try:
        round_trips(host, port, run.latent_dim, label, args.warmup, seed=1)
        http_times = round_trips(host, port, run.latent_dim, label, args.requests, seed=2)
    finally:
        process.terminate()
        process.wait(timeout=60)
    decode_times = direct_decodes(explore.build_explorer(run), label, args.requests, seed=3)
    summary = {
        "what": "POST /api/decode round trip (request sent -> image bytes decoded), one request in flight, "
        "server in its own process",
        "run": args.workdir,
        "family": run.config.family,
        "step": run.step,
        "latent_dim": run.latent_dim,
        "image_shape": list(run.dataset.image_shape),
        "requests": args.requests,
        "warmup": args.warmup,
        "round_trip": percentiles(http_times),
        "decode_only": percentiles(decode_times),
        "load_average_1_5_15_min": {"before": list(load_before), "after": list(os.getloadavg())},
        "round_trip_s": [round(t, 6) for t in http_times],
    }
    shown = {k: v for k, v in summary.items() if k != "round_trip_s"}
    print(json.dumps(shown, indent=2))
    if args.json:
        experiments_main.write_record(args.json, argv, run.config, summary, program="benchmarks.explore_latency")
        print(f"Wrote {args.json}")


if __name__ == "__main__":
    main(sys.argv)
