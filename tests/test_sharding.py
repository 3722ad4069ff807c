"""Data parallelism and multi-host: the same train steps on 1, 2 and 8 devices compute the same function of
(seed, step), up to floating-point reduction order; checkpoints move between device counts."""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from conftest import REPO_ROOT, max_abs_difference

pytestmark = pytest.mark.slow


def run_python(args, devices, timeout, env_extra=None, **kwargs):
    env = {
        **os.environ,
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
        "JAX_PLATFORMS": "cpu",
        **(env_extra or {}),
    }
    return subprocess.run(
        [sys.executable, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout, **kwargs
    )


# The worker's parts, in processes of their own so that pytest-xdist's workers run them side by side.
PARTS = (("vae", "indivisible_error"), ("ae", "gan"), ("fsdp",), ("sweep",))


@pytest.mark.parametrize("parts", PARTS, ids="+".join)
def test_eight_devices_match_one_and_checkpoints_move_between_them(parts, tmp_path):
    worker = os.path.join(REPO_ROOT, "tests", "sharding_worker.py")
    result = run_python([worker, str(tmp_path), *parts], 8, timeout=540)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.split("RESULT ", 1)[1])
    assert set(report) == set(parts)
    resumed_on = {"vae": [1, 2], "ae": [1], "gan": [1], "fsdp": [2]}  # device counts each resumes on
    for family in set(resumed_on) & set(parts):
        counts, numbers = resumed_on[family], report[family]
        assert numbers["steps"] == [12] * (2 + len(counts)), family
        assert numbers["resumed_from"] == [8] * len(counts), family  # each resumed run really resumed
        # The README's claim: the largest parameter difference between 1 and 8 devices is of order 3e-8 (float32
        # round-off of a different reduction order); with FSDP's sharded updates, of order 1e-7.
        assert numbers["param_diff_1_vs_8"] <= (3e-7 if family == "fsdp" else 1e-7), (family, numbers)
        for name in ("state_diff_1_vs_8", "state_diff_1_vs_resumed", "metric_diff_1_vs_8"):
            assert numbers[name] < 1e-6, (family, name, numbers)
    if "fsdp" in parts:
        assert report["fsdp"]["split_arrays"] >= 6  # the 64×512 kernels of params and both Adam moments
    if "sweep" in parts:
        for label, mesh in (("8x1", {"members": 8, "data": 1}), ("4x2", {"members": 4, "data": 2})):
            numbers = report["sweep"][label]
            assert numbers["steps"] == [12, 12] and numbers["mesh"] == mesh
            assert numbers["members"] == mesh["members"]  # 8 seeds; 2 seeds × 2 values of β
            assert numbers["param_diff_1_vs_8"] <= 1e-6, (label, numbers)
    if "indivisible_error" in parts:
        assert "(30) does not divide over the 8 devices" in report["indivisible_error"]["batch"]
        assert "--members_in_turn" in report["indivisible_error"]["in_turn"]


def test_every_part_of_the_worker_runs():
    """No part of the 8-device check is left out of PARTS (a family added to the worker is run)."""
    sys.path.insert(0, os.path.join(REPO_ROOT, "tests"))
    import sharding_worker

    assert sorted(sum(PARTS, ())) == sorted(sharding_worker.PARTS)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def final_state(workdir):
    sys.path.insert(0, os.path.join(REPO_ROOT, "tests"))
    from gen_jax import checkpoint, data
    from gen_jax.tasks import vae

    from conftest import tiny_vae_config

    task = vae.make_task(tiny_vae_config(), data.load_dataset("digits"))
    state, step = checkpoint.restore_latest(os.path.join(workdir, "checkpoints"), task.init_state(jax.random.key(0)))
    return jax.tree_util.tree_map(np.asarray, state), step


def test_two_processes_match_one_process_with_two_devices(tmp_path):
    overrides = [
        "--config.num_steps=12",
        "--config.checkpoint_every=6",
        "--config.eval_every=12",
        "--config.log_every=6",
        "--config.model.hidden=(32,)",
        "--config.model.latent_dim=2",
        "--config.batch_size=32",
        "--config.iwae_k=10",
        "--config.write_figures=False",
    ]
    command = ["-m", "experiments.main", "--config", os.path.join(REPO_ROOT, "experiments/configs/vae_digits.py")]
    single = run_python(command + [f"--workdir={tmp_path / 'single'}"] + overrides, 2, timeout=240)
    assert single.returncode == 0, single.stderr[-3000:]

    run_two_processes([*command, f"--workdir={tmp_path / 'multi'}", *overrides])

    (a, step_a), (b, step_b) = final_state(tmp_path / "single"), final_state(tmp_path / "multi")
    assert step_a == step_b == 12
    assert max_abs_difference(a, b) < 1e-5
    # Written once, by process 0.
    lines = (tmp_path / "multi" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines if "train/loss" in line] == [6, 12]
    assert (tmp_path / "multi" / "summary.json").exists()


def run_two_processes(args, timeout=300):
    """`python <args>` as 2 processes of 1 CPU device each, joined by JAX's coordinator; their (stdout, stderr)."""
    port = free_port()
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1", "JAX_PLATFORMS": "cpu"}
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                *args,
                f"--coordinator_address=127.0.0.1:{port}",
                "--num_processes=2",
                f"--process_id={i}",
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=timeout))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for process, (_, err) in zip(processes, outputs):
        assert process.returncode == 0, err[-3000:]
    return outputs


def test_two_processes_streamed_match_one_process_with_two_devices(tmp_path):
    """Streamed, each process reads only its half of every batch (`data.stream`): 2 processes × 1 device train to
    the parameters and metrics of 1 process × 2 devices, streamed or on the device."""
    overrides = [
        "--config.num_steps=12",
        "--config.checkpoint_every=6",
        "--config.eval_every=12",
        "--config.log_every=6",
        "--config.model.hidden=(32,)",
        "--config.model.latent_dim=2",
        "--config.batch_size=32",
        "--config.iwae_k=0",
        "--config.write_figures=False",
    ]
    command = ["-m", "experiments.main", "--config", os.path.join(REPO_ROOT, "experiments/configs/vae_digits.py")]
    for placement in ("stream", "device"):
        single = run_python(
            command + [f"--workdir={tmp_path / placement}", *overrides, f"--config.placement={placement}"], 2, 240
        )
        assert single.returncode == 0, single.stderr[-3000:]
    outputs = run_two_processes(command + [f"--workdir={tmp_path / 'multi'}", *overrides, "--config.placement=stream"])
    assert "Data placement: stream" in outputs[0][0] and "Data placement" not in outputs[1][0]

    def logged(workdir):
        lines = (workdir / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(line).items() if "per_sec" not in k} for line in lines]

    multi, multi_step = final_state(tmp_path / "multi")
    for placement in ("stream", "device"):
        single, step = final_state(tmp_path / placement)
        assert step == multi_step == 12
        assert max_abs_difference(single, multi) < 1e-6, placement
        for a, b in zip(logged(tmp_path / placement), logged(tmp_path / "multi"), strict=True):
            assert a.keys() == b.keys() and all(abs(a[k] - b[k]) <= 1e-6 * max(1.0, abs(a[k])) for k in a), placement


def test_two_processes_score_samples_as_one_process(tmp_path):
    """A GAN with sample quality as two processes, each with a fresh reference-classifier cache to fill: process 0
    alone checks the cache, both train the classifier together, both load it (no hang), and the summary's scores
    are the one-process run's (two devices), up to float round-off."""
    worker = os.path.join(REPO_ROOT, "tests", "multihost_worker.py")
    overrides = [
        "--config.num_steps=20",
        "--config.log_every=10",
        "--config.eval_every=20",
        "--config.checkpoint_every=20",
        "--config.model.g_hidden=(32,)",
        "--config.model.d_hidden=(32,)",
        "--config.model.latent_dim=8",
        "--config.batch_size=32",
        "--config.write_figures=False",
        "--config.sample_quality.classifier=trained",  # the cached classifier's multi-process path, not the committed
    ]
    config = ["--config", os.path.join(REPO_ROOT, "experiments/configs/gan_digits.py")]

    def command(name):
        return [worker, "40", *config, f"--workdir={tmp_path / name}", *overrides]

    single = run_python(
        command("single") + [f"--config.sample_quality.classifier_dir={tmp_path / 'cache_single'}"], 2, timeout=300
    )
    assert single.returncode == 0, single.stderr[-3000:]

    run_two_processes([*command("multi"), f"--config.sample_quality.classifier_dir={tmp_path / 'cache_multi'}"])

    one = json.loads((tmp_path / "single" / "summary.json").read_text())
    two = json.loads((tmp_path / "multi" / "summary.json").read_text())
    for name in (
        "classifier_fid",
        "classifier_fid_floor",
        "classifier_precision",
        "classifier_recall",
        "classifier_test_accuracy",
    ):
        assert two[name] == pytest.approx(one[name], rel=1e-4, abs=1e-4), name


def test_an_evaluation_split_over_two_processes_is_the_one_process_result():
    """Inside `metrics.split_over_processes`, each of two processes computes 3 of the 6 batches of a 23-example
    evaluation (the last one padded), and both get the whole evaluation's outputs, bit for bit and of their dtypes."""
    port = free_port()
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1", "JAX_PLATFORMS": "cpu"}
    worker = os.path.join(REPO_ROOT, "tests", "multihost_worker.py")
    processes = [
        subprocess.Popen(
            [sys.executable, worker, "map_batches", f"127.0.0.1:{port}", str(i)],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        outputs = [process.communicate(timeout=120) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for process, (out, err) in zip(processes, outputs):
        assert process.returncode == 0, err[-3000:]
        assert json.loads(out.split("RESULT ", 1)[1]) == {"calls": [6, 3], "equal": True}
