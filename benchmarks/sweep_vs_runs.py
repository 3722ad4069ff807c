"""Wall time of one sweep over N seeds against N `experiments.main` runs one after another, the whole commands.

    python -m benchmarks.sweep_vs_runs --config experiments/configs/vae_digits.py --seeds 8 [--json out.json]

Both sides are complete commands as a user runs them (interpreter start, imports, data, compilation, training and
the final evaluation), figures off on both; run in one invocation, on the same machine, one after the other.  The
ratio `runs_s / sweep_s` is the point: the machine's load moves both.  Also reported: that every member's summary
equals the single run's with the same seed (to float32 rounding of a vmapped program), and how much of each side
was the training loop itself (`training_loop_s`, from the runs' own metrics.jsonl: the steps over the steps/s each
logged chunk measured, its first call's compilation included).  `runs_over_sweep_training_loop` = runs_s / the
sweep's training loop is the ratio the sweep could reach if its start-up, evaluations and writes cost nothing.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=REPO_ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def read_json(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def training_loop_seconds(metrics_path: str) -> float:
    """Seconds the training loop spent in its fused steps, from a run's metrics.jsonl: Σ (steps since the previous
    logged step) / train/steps_per_sec over the train records (exact when every loop boundary is logged, as when
    eval_every and checkpoint_every are multiples of log_every)."""
    total, previous = 0.0, 0
    with open(metrics_path) as f:
        for line in f:
            record = json.loads(line)
            if "train/steps_per_sec" in record:
                total += (record["step"] - previous) / record["train/steps_per_sec"]
                previous = record["step"]
    return total


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sweep_vs_runs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="experiments/configs/vae_digits.py")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--json", help="write the result here")
    args = parser.parse_args(argv)
    root = tempfile.mkdtemp(prefix="sweep_vs_runs_")
    base = [sys.executable, "-m"]
    sweep_command = [*base, "experiments.sweep", "--config", args.config, f"--workdir={root}/sweep"]
    sweep_command.append(f"--sweep=seed=0:{args.seeds}")
    sweep_s = timed(sweep_command)
    run_s = []
    for seed in range(args.seeds):
        run_s.append(
            timed(
                [*base, "experiments.main", "--config", args.config, f"--workdir={root}/run{seed}"]
                + [f"--config.seed={seed}", "--config.write_figures=false"]
            )
        )
    differences = []
    sweep = read_json(f"{root}/sweep/sweep.json")
    for member in sweep["members"]:
        single = read_json(f"{root}/run{member['values']['seed']}/summary.json")
        differences += [
            abs(member["summary"][key] - value) / max(abs(value), 1e-12)
            for key, value in single.items()
            if isinstance(value, float)
        ]
    sweep_training = training_loop_seconds(f"{root}/sweep/members/{sweep['members'][0]['name']}/metrics.jsonl")
    runs_training = [training_loop_seconds(f"{root}/run{seed}/metrics.jsonl") for seed in range(args.seeds)]
    from experiments import main as main_lib

    result = {
        "command": " ".join(["python -m benchmarks.sweep_vs_runs", *(argv if argv is not None else sys.argv[1:])]),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {
            "platform": platform.platform(),
            "processor": main_lib._cpu_model() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "load_average_after": os.getloadavg(),
        },
        "config": args.config,
        "seeds": args.seeds,
        "sweep_s": sweep_s,
        "runs_s": sum(run_s),
        "run_s_each": run_s,
        "runs_over_sweep": sum(run_s) / sweep_s,
        "sweep_training_loop_s": sweep_training,
        "runs_training_loop_s": sum(runs_training),
        "runs_over_sweep_training_loop": sum(run_s) / sweep_training,
        "largest_relative_summary_difference": max(differences) if differences else None,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
    return result


if __name__ == "__main__":
    main()
