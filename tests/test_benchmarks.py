"""The throughput benchmark times any experiment config as its training loop runs it, several in one run, and says
what is wrong with its input in one line.

No speed is asserted here (CI machines differ and are shared); benchmarks/README.md's tables come from full runs.
"""

import importlib.util
import json
import math
import statistics
import subprocess
import sys

import jax
import pytest

from benchmarks import throughput

from conftest import REPO_ROOT

VAE, AAE = "experiments/configs/vae_digits.py", "experiments/configs/aae_digits.py"
TINY = ["--config.batch_size=8", "--steps-per-call", "2", "--repeats", "2"]


def positive(value) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


@pytest.mark.slow
def test_two_families_in_one_run_write_sane_json(tmp_path, monkeypatch, capsys):
    """vae_digits and aae_digits timed in one run, with a population of 2 (batched and in turn) and the per-step
    baseline; PyTorch made absent, so its side is skipped in one line."""
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else find_spec(name, *a))
    json_path, table_path = tmp_path / "out" / "tiny.json", tmp_path / "tiny.md"
    argv = [
        *("--config", VAE, AAE, *TINY, "--members", "2", "--members-in-turn", "--baseline"),
        *("--json", str(json_path), "--markdown", str(table_path)),
    ]
    results = throughput.main(argv)
    payload = json.loads(json_path.read_text())
    assert payload["results"] == json.loads(json.dumps(results))
    assert payload["command"] == "python -m benchmarks.throughput " + " ".join(argv)
    assert payload["versions"]["jax"] == jax.__version__ and payload["machine"]["backend"] == "cpu"
    assert payload["machine"]["devices"] and payload["date"]
    assert [(r["name"], r["family"]) for r in results] == [("vae_digits", "vae"), ("aae_digits", "aae")]
    for r in results:
        assert (r["batch_size"], r["steps_per_call"], r["repeats"], r["members"]) == (8, 2, 2, 2)
        assert r["overrides"] == ["--config.batch_size=8"] and r["num_examples"] > 8
        for field in ("steps_per_s", "images_per_s", "ms_per_step", "compile_s", "flops_per_step", "members_speedup"):
            assert positive(r[field]), field
        assert positive(r["speedup_vs_baseline"]) and positive(r["members_in_turn_speedup"])
        assert r["images_per_s"] == pytest.approx(8 * r["steps_per_s"])
        # The rate is the median of the timed calls after the warm-up: compilation is not in it.
        assert r["ms_per_step"] == pytest.approx(statistics.median(r["ms_per_step_repeats"]["fused"]))
        assert len(r["ms_per_step_repeats"]["fused"]) == 2
        assert r["members_speedup"] == pytest.approx(r["member_steps_per_s"] * r["ms_per_step"] / 1e3)
        assert r["speedup_vs_baseline"] == pytest.approx(r["baseline_ms_per_step"] / r["ms_per_step"])
        assert r["peak_memory_bytes"] is None and r["xla_memory_bytes"] > 0  # the CPU backend reports no peak
        assert "torch_eager_ms_per_step" not in r
    assert [line for line in capsys.readouterr().out.splitlines() if "PyTorch" in line] == [
        "PyTorch is not installed: the PyTorch peers are skipped (pip install -e '.[peers]' to time them)"
    ]
    table = table_path.read_text().splitlines()
    assert table[0].startswith("| config | family | batch | K | steps/s | images/s |") and len(table) == 4
    assert "× torch eager" not in table[0]


def test_vary_makes_a_row_per_value_built_with_that_value():
    rows = throughput.make_rows(
        [VAE, AAE], ["--config.batch_size=8"], ["compute_dtype=float32,bfloat16", "model.hidden=(8,),(4, 4)"]
    )
    assert [(row.path, row.varied) for row in rows[:4]] == [
        (VAE, ("compute_dtype=float32", "model.hidden=(8,)")),
        (VAE, ("compute_dtype=float32", "model.hidden=(4, 4)")),
        (VAE, ("compute_dtype=bfloat16", "model.hidden=(8,)")),
        (VAE, ("compute_dtype=bfloat16", "model.hidden=(4, 4)")),
    ]
    assert len(rows) == 8 and rows[4].path == AAE
    config = throughput.load_config(rows[3])
    assert (config.batch_size, config.compute_dtype, config.model.hidden) == (8, "bfloat16", (4, 4))
    assert not config.sample_quality.enabled  # the benchmark never builds the sample-quality evaluator


def test_a_task_with_phases_is_timed_in_the_phase_that_trains_longest():
    """The VQ-VAE trains in two phases, one program each: the benchmark times the one that runs most steps."""
    from gen_jax import train

    def task(*firsts):
        steps = [lambda state, batch, key, i=i: i for i in range(len(firsts))]
        phases = tuple(zip(firsts, steps))
        return train.Task("t", {}, None, steps[0], None, None, None, phases=phases)

    assert throughput.longest_phase(task(0, 100), 3000) == 1
    assert throughput.longest_phase(task(0, 2000), 3000) == 0
    assert throughput.longest_phase(task(0, 5000), 3000) == 0  # a switch after the end never runs
    assert throughput.step_of(task(0, 100), 1)(None, None, None) == 1
    plain = train.Task("t", {}, None, lambda *_: "the one step", None, None, None)
    assert throughput.longest_phase(plain, 3000) is None and throughput.step_of(plain, None)() == "the one step"


def test_a_bad_config_path_is_one_line_without_a_traceback():
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.throughput", "--config", "experiments/configs/nope.py"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.splitlines() == [
        "error: --config experiments/configs/nope.py: no such file; give an experiment config, e.g. "
        "experiments/configs/vae_digits.py"
    ]


@pytest.mark.parametrize(
    "argv, message",
    [
        ([VAE, "--config.no_such_field=1"], "--config.no_such_field=1"),
        ([VAE, "--config.batch_size=many"], "invalid literal for int()"),
        ([VAE, "--config.batch_size=0"], "config.batch_size must be a positive integer"),
        (["experiments/configs/ae_vs_pca.py"], "config.experiment='ae_vs_pca' runs several trainings"),
        ([VAE, "--vary", "compute_dtype"], "--vary 'compute_dtype': expected key=value1,value2"),
    ],
)
def test_mistakes_in_configs_and_overrides_are_one_line_before_any_compute(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        throughput.main(["--config", *argv])
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


def test_importing_the_benchmark_loads_no_plotting_or_dataset_libraries():
    """The GPU image lacks some of the experiment dependencies: importing the benchmark must not need them."""
    code = (
        "import sys, benchmarks.throughput; "
        "print(sorted(m for m in ('matplotlib', 'sklearn', 'tensorflow_datasets', 'ml_collections', 'torch') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"


def test_sweep_vs_runs_reads_the_training_loop_time_from_the_logged_chunks(tmp_path):
    from benchmarks import sweep_vs_runs

    path = tmp_path / "metrics.jsonl"
    records = [
        {"step": 100, "train/loss": 1.0, "train/steps_per_sec": 50.0},  # 100 steps at 50/s: 2 s
        {"step": 100, "eval/neg_elbo": 3.0},  # evaluations take no part
        {"step": 300, "train/loss": 1.0, "train/steps_per_sec": 400.0},  # 200 steps at 400/s: 0.5 s
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert sweep_vs_runs.training_loop_seconds(str(path)) == pytest.approx(2.5)
