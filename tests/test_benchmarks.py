"""The throughput benchmark runs end to end in a quick mode and reports every field the README table needs.

No speed is asserted here (CI machines differ and are shared); the README's table comes from full runs.
"""

import dataclasses
import json
import math
import subprocess
import sys

import pytest

from benchmarks import throughput

from conftest import REPO_ROOT

QUICK = ["--batch-size", "8", "--steps-per-call", "2", "--repeats", "1", "--num-examples", "64", "--peak-size", "128"]

RATE_FIELDS = (
    "steps_per_s",
    "examples_per_s",
    "ms_per_step",
    "compile_s",
    "baseline_steps_per_s",
    "baseline_examples_per_s",
    "baseline_ms_per_step",
    "baseline_compile_s",
    "speedup_vs_baseline",
    "flops_per_step",
    "achieved_flops_per_s",
    "peak_flops_per_s",
    "fraction_of_peak",
)


def check_record(record, model, precision):
    assert record["model"] == model and record["precision"] == precision
    assert record["batch_size"] == 8 and record["steps_per_call"] == 2 and record["repeats"] == 1
    for field in RATE_FIELDS:
        assert isinstance(record[field], float) and math.isfinite(record[field]) and record[field] > 0, field
    # The derived numbers agree with the measured ones.
    assert record["examples_per_s"] == pytest.approx(8 * record["steps_per_s"])
    assert record["ms_per_step"] == pytest.approx(1e3 / record["steps_per_s"])
    assert record["speedup_vs_baseline"] == pytest.approx(record["baseline_ms_per_step"] / record["ms_per_step"])
    assert record["fraction_of_peak"] == pytest.approx(record["achieved_flops_per_s"] / record["peak_flops_per_s"])
    assert record["peak_memory_bytes"] is None  # the CPU backend reports no memory statistics
    for field in ("device", "backend", "jax_version", "date"):
        assert record[field]


@pytest.mark.slow
def test_quick_all_writes_json_and_table(tmp_path):
    json_path, table_path = tmp_path / "all.json", tmp_path / "table.md"
    throughput.main(["--all", "--only", "vae_mlp", *QUICK, "--json", str(json_path), "--markdown", str(table_path)])
    records = json.loads(json_path.read_text())
    assert [(r["model"], r["precision"]) for r in records] == [("vae_mlp", "f32"), ("vae_mlp", "bf16")]
    for record, precision in zip(records, ("f32", "bf16")):
        check_record(record, "vae_mlp", precision)
    # The f32 and bf16 steps are different programs: XLA's count of their FLOPs is the same work.
    assert records[0]["flops_per_step"] == pytest.approx(records[1]["flops_per_step"], rel=0.2)
    table = table_path.read_text().splitlines()
    assert table[0].startswith("cpu") and "matmul peak" in table[0]
    assert table[2].startswith("| model |") and len(table) == 6  # preamble, blank, header, rule, two rows
    assert all(record["xla_memory_bytes"] > 0 for record in records)


@pytest.mark.slow
def test_a_variant_is_timed_against_its_reference_in_the_same_run(monkeypatch):
    """A model with a reference (as the fast DCGANs have the plain one) also times the reference, fused and per
    step; a GAN stands in for the slow-to-compile DCGANs, timed against itself."""
    assert {throughput.MODELS[name].reference for name in ("dcgan_dual_grad", "dcgan_subpixel")} == {"dcgan"}
    monkeypatch.setitem(
        throughput.MODELS, "gan_mlp_again", dataclasses.replace(throughput.MODELS["gan_mlp"], reference="gan_mlp")
    )
    record = throughput.benchmark("gan_mlp_again", 8, "f32", 2, 1, 64, peak_size=128, members=3, members_in_turn=True)
    check_record(record, "gan_mlp_again", "f32")
    # --members: a sweep's population of 3 timed in the same run, against 3 × the single fused model; with
    # --members-in-turn also the 3 one after another in one program.
    assert record["members"] == 3 and record["member_steps_per_s"] > 0
    assert record["members_speedup"] == pytest.approx(record["member_steps_per_s"] * record["ms_per_step"] / 1e3)
    assert record["members_in_turn_speedup"] > 0
    assert record["reference"] == "gan_mlp"
    fastest_reference = min(record["reference_ms_per_step"], record["reference_baseline_ms_per_step"])
    assert record["speedup_vs_reference"] == pytest.approx(fastest_reference / record["ms_per_step"])


def test_unknown_names_and_sizes_are_refused_before_compute():
    with pytest.raises(ValueError, match="unknown model 'vae_big'"):
        throughput.benchmark("vae_big")
    with pytest.raises(ValueError, match="unknown precision 'f16'"):
        throughput.benchmark("vae_mlp", precision="f16")
    with pytest.raises(ValueError, match="repeats must be a positive integer"):
        throughput.benchmark("vae_mlp", repeats=0)
    with pytest.raises(ValueError, match=r"batch_size \(128\) must not exceed num_examples \(64\)"):
        throughput.benchmark("vae_mlp", num_examples=64)


def test_importing_the_benchmark_loads_no_plotting_or_dataset_libraries():
    """The GPU image lacks some of the experiment dependencies: importing the benchmark must not need them."""
    code = (
        "import sys, benchmarks.throughput; "
        "print(sorted(m for m in ('matplotlib', 'sklearn', 'tensorflow_datasets', 'ml_collections') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
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
