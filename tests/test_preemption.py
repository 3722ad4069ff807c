"""Preemption (issue 30): SIGTERM (a cluster's notice) or SIGINT (Ctrl-C) mid-training stops the run at the next
chunk boundary with a checkpoint of that step, one line and exit status 143 / 130; the same command then resumes
to the uninterrupted result, bit for bit, for a run, a sweep and a two-process run.  A second signal during that
save leaves the previous checkpoint intact; Ctrl-C while the data loads is one line and 130.  The signals are sent
from outside, to processes paused where they must land (tests/preemption_worker.py)."""

import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from test_main import CONFIG

from gen_jax import checkpoint

from conftest import REPO_ROOT, read_jsonl

pytestmark = pytest.mark.slow

# Chunks of 10 steps; checkpoints only at 20 and 40, so a stop at 30 saves a checkpoint nothing else would.
ARGS = [
    "--config.num_steps=40",
    "--config.checkpoint_every=20",
    "--config.eval_every=20",
    "--config.log_every=10",
    "--config.keep_checkpoints=10",
    "--config.model.hidden=(32,)",
    "--config.model.latent_dim=2",
    "--config.batch_size=32",
    "--config.iwae_k=0",
    "--config.write_figures=False",
]
ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": REPO_ROOT}
TIMEOUT = 300


def command(program: str, workdir, *extra) -> list[str]:
    return ["-m", f"experiments.{program}", "--config", CONFIG, f"--workdir={workdir}", *ARGS, *extra]


def run(args: list[str], env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=REPO_ROOT, env=env or ENV, capture_output=True, text=True, timeout=TIMEOUT
    )


def start_paused(program: str, where: str, tmp_path, args: list[str], env=None, name: str = "w") -> subprocess.Popen:
    """experiments.<program> with `args`, paused at `where` (tests/preemption_worker.py); markers `<tmp>/<name>.*`."""
    worker = os.path.join(REPO_ROOT, "tests", "preemption_worker.py")
    return subprocess.Popen(
        [sys.executable, worker, program, where, str(tmp_path / name), str(tmp_path / "go"), *args],
        cwd=REPO_ROOT,
        env=env or ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path, process: subprocess.Popen, timeout: float = TIMEOUT) -> None:
    deadline = time.time() + timeout
    while not path.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    if not path.exists():
        process.kill()
        raise AssertionError(f"never reached {path.name} (exit status {process.poll()}): {process.communicate()[1]}")


def saved_arrays(workdir) -> tuple[dict, int]:
    """The newest checkpoint of `workdir` as NumPy arrays by leaf path, and its step (whatever devices wrote it)."""
    manager = checkpoint.make_manager(os.path.join(workdir, "checkpoints"), read_only=True)
    step = manager.latest_step()
    here = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    abstract = jax.tree.map(
        lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=here), manager.item_metadata(step)
    )
    restored = manager.restore(step, args=ocp.args.StandardRestore(abstract))
    return {
        jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in jax.tree_util.tree_leaves_with_path(restored)
    }, step


def assert_same_final_state(a, b) -> None:
    (arrays_a, step_a), (arrays_b, step_b) = saved_arrays(a), saved_arrays(b)
    assert step_a == step_b and arrays_a.keys() == arrays_b.keys()
    for name in arrays_a:
        assert np.array_equal(arrays_a[name], arrays_b[name]), name


def last_line(text: str) -> str:
    assert "Traceback" not in text, text
    return text.rstrip("\n").split("\n")[-1].split("\r")[-1]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """ARGS as one uninterrupted run."""
    workdir = tmp_path_factory.mktemp("straight") / "run"
    result = run(command("main", workdir))
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_mid_training_saves_stops_and_resumes_bit_for_bit(straight, tmp_path, signum, status):
    """Signalled after step 20's log record, the run finishes the chunk to step 30, saves checkpoint 30 (not on
    the checkpoint cadence), prints one line and exits 128 + the signal; the same command resumes from 30 and ends
    where the uninterrupted run ends, bit for bit, each step logged once."""
    workdir = tmp_path / "run"
    worker = start_paused("main", "log:20", tmp_path, command("main", workdir)[2:])
    wait_for(tmp_path / "w.log", worker)
    worker.send_signal(signum)
    (tmp_path / "go").touch()
    _, err = worker.communicate(timeout=TIMEOUT)
    name = signal.Signals(signum).name
    assert worker.returncode == status, err[-3000:]
    assert last_line(err) == f"stopped at step 30 by {name}; checkpoint saved; run the same command to resume"
    assert sorted(int(s) for s in os.listdir(workdir / "checkpoints") if s.isdigit()) == [20, 30]
    assert not (workdir / "lock.json").exists()

    resumed = run(command("main", workdir))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resumed from the checkpoint at step 30" in resumed.stdout
    assert_same_final_state(straight, workdir)
    steps = [r["step"] for r in read_jsonl(workdir / "metrics.jsonl") if "train/loss" in r]
    assert steps == [10, 20, 30, 40]


def test_second_signal_during_the_save_keeps_the_previous_checkpoint(straight, tmp_path):
    """A second SIGTERM while checkpoint 30 is being written (its files in 30.orbax-checkpoint-tmp, not yet renamed):
    the run exits at once with one line and 143; checkpoint 20 is intact and the same command resumes from it to
    the uninterrupted result."""
    workdir = tmp_path / "run"
    worker = start_paused("main", "log:20,save:30", tmp_path, command("main", workdir)[2:])
    wait_for(tmp_path / "w.log", worker)
    worker.send_signal(signal.SIGTERM)
    (tmp_path / "go").touch()
    wait_for(tmp_path / "w.save", worker)
    worker.send_signal(signal.SIGTERM)
    _, err = worker.communicate(timeout=60)
    assert worker.returncode == 143, err[-3000:]
    assert last_line(err).startswith("stopped by a second SIGTERM without waiting for the checkpoint of step 30")
    assert (workdir / "checkpoints" / "30.orbax-checkpoint-tmp").is_dir()
    assert not (workdir / "checkpoints" / "30").exists()

    resumed = run(command("main", workdir))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resumed from the checkpoint at step 20" in resumed.stdout
    assert_same_final_state(straight, workdir)


def test_ctrl_c_while_the_data_loads_is_one_line(tmp_path):
    """SIGINT before training (the data set loading): one line naming the signal, exit status 130, no lock left."""
    workdir = tmp_path / "run"
    worker = start_paused("main", "load", tmp_path, command("main", workdir)[2:])
    wait_for(tmp_path / "w.load", worker)
    worker.send_signal(signal.SIGINT)
    (tmp_path / "go").touch()
    _, err = worker.communicate(timeout=TIMEOUT)
    assert worker.returncode == 130, err[-3000:]
    assert err.strip().split("\n") == [
        f"stopped by SIGINT; the checkpoints in {workdir}/checkpoints are intact; run the same command to resume"
    ]
    assert not (workdir / "lock.json").exists()


def test_sweep_signalled_mid_training_resumes_bit_for_bit(tmp_path):
    """A sweep of two seeds, SIGTERM after step 20's log record: stops at 30 with its checkpoint, one line, 143; the
    same command resumes to the uninterrupted sweep's population, bit for bit."""
    sweep = ["--sweep=seed=0:2"]
    straight = tmp_path / "straight"
    result = run(command("sweep", straight, *sweep))
    assert result.returncode == 0, result.stderr[-3000:]

    workdir = tmp_path / "run"
    worker = start_paused("sweep", "log:20", tmp_path, command("sweep", workdir, *sweep)[2:])
    wait_for(tmp_path / "w.log", worker)
    worker.send_signal(signal.SIGTERM)
    (tmp_path / "go").touch()
    _, err = worker.communicate(timeout=TIMEOUT)
    assert worker.returncode == 143, err[-3000:]
    assert last_line(err) == "stopped at step 30 by SIGTERM; checkpoint saved; run the same command to resume"

    resumed = run(command("sweep", workdir, *sweep))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_final_state(straight, workdir)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_processes(workdir, paused_at: str | None = None, tmp_path=None) -> list[subprocess.Popen]:
    """experiments.main on ARGS as two processes on localhost, each with one CPU device."""
    env = {**ENV, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    port, processes = free_port(), []
    for i in range(2):
        args = command("main", workdir)
        args += [f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2", f"--process_id={i}"]
        if paused_at is None:
            processes.append(
                subprocess.Popen(
                    [sys.executable, *args], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
                )
            )
        else:
            processes.append(start_paused("main", paused_at, tmp_path, args[2:], env, name=f"p{i}"))
    return processes


def finish_all(processes: list[subprocess.Popen]) -> list[tuple[int, str]]:
    """(exit status, stderr) of each process; any still running after the timeout is killed."""
    results = []
    try:
        for process in processes:
            _, err = process.communicate(timeout=TIMEOUT)
            results.append((process.returncode, err if isinstance(err, str) else err.decode()))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
    return results


def test_sigterm_to_one_of_two_processes_stops_both_at_one_step_and_resumes(tmp_path):
    """Two processes, SIGTERM to process 1 alone while both wait after step 20's log record: JAX's preemption sync
    point stops both after the same chunk (step 30), with one checkpoint, exit status 143 each; the same commands
    then resume to the uninterrupted two-process run's state, bit for bit."""
    straight = tmp_path / "straight"
    for status, err in finish_all(two_processes(straight)):
        assert status == 0, err[-3000:]

    workdir = tmp_path / "run"
    processes = two_processes(workdir, "log:20", tmp_path)
    for i, process in enumerate(processes):
        wait_for(tmp_path / f"p{i}.log", process)
    processes[1].send_signal(signal.SIGTERM)
    time.sleep(3)  # JAX's notifier polls each second; then the processes agree on the call to stop at
    (tmp_path / "go").touch()
    for status, err in finish_all(processes):
        assert status == 143, err[-3000:]
        assert last_line(err) == "stopped at step 30 by SIGTERM; checkpoint saved; run the same command to resume"
    assert sorted(int(s) for s in os.listdir(workdir / "checkpoints") if s.isdigit()) == [20, 30]

    for status, err in finish_all(two_processes(workdir)):
        assert status == 0, err[-3000:]
    assert_same_final_state(straight, workdir)
