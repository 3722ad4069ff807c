"""Faults a user meets (issue 15), each reproduced: a damaged checkpoint, two runs in one workdir, a kill inside a
save and the resumed log, a full or read-only disk during a save, damaged data, and Orbax's noise.  Each error is one
line of at most 300 characters (a hint may follow on indented lines) with exit status 2 and no traceback; no case
loses a checkpoint or changes the workdir when it refuses; each resumable case resumes to the uninterrupted result,
bit for bit."""

import contextlib
import logging
import os
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from tensorboardX.proto import event_pb2
from test_main import CONFIG, config_of

from experiments import main as experiments_main
from gen_jax import checkpoint, data, train
from gen_jax.tasks import vae

from conftest import REPO_ROOT, idx_bytes, read_jsonl, snapshot, trees_equal

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


def run_here(workdir, capsys, *extra, resume_step=None):
    """(exit status, stdout, stderr) of experiments.main on ARGS + `extra`, in this process."""
    capsys.readouterr()
    summary = experiments_main.run_or_report(config_of(ARGS + list(extra)), str(workdir), resume_step)
    out, err = capsys.readouterr()
    return (2 if summary is None else 0), out, err


def assert_one_line_error(err: str, *needles: str) -> str:
    """The error's first line (returned): `error: …`, at most 300 characters, holding every needle; further lines
    are indented hints; before it only the progress bar; no traceback anywhere."""
    assert "Traceback" not in err and "Event loop is closed" not in err, err
    lines = err.rstrip("\n").split("\n")
    while lines and not lines[0].startswith("error: "):  # the progress bar
        assert "error" not in lines.pop(0).lower(), err
    assert lines and len(lines[0]) <= 300, (len(lines[0]) if lines else None, err)
    assert all(line.startswith("  ") for line in lines[1:]), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def final_state(workdir):
    """The newest checkpoint of `workdir` as numpy arrays, and its step."""
    task = vae.make_task(config_of(ARGS), data.load_dataset("digits"))
    state, step = checkpoint.restore_latest(os.path.join(workdir, "checkpoints"), task.init_state(jax.random.key(0)))
    return jax.tree.map(np.asarray, state), step


def logged(workdir) -> list[dict]:
    """metrics.jsonl without the timings (the only numbers a resumed run may log differently)."""
    return [
        {k: v for k, v in r.items() if "per_sec" not in k} for r in read_jsonl(os.path.join(workdir, "metrics.jsonl"))
    ]


def tensorboard_scalars(logdir) -> list[tuple[str, int, float]]:
    """(tag, step, value) of every scalar TensorBoard shows for `logdir`: the event files read in order, and a
    SessionLog START at step s hides the earlier events at steps >= s (TensorBoard's purge of orphaned data)."""
    shown = []
    for name in sorted(os.listdir(logdir)):
        with open(os.path.join(logdir, name), "rb") as f:
            raw = f.read()
        offset = 0
        while offset < len(raw):  # TFRecord: u64 length, u32 crc, the record, u32 crc
            (length,) = struct.unpack("<Q", raw[offset : offset + 8])
            event = event_pb2.Event.FromString(raw[offset + 12 : offset + 12 + length])
            offset += 16 + length
            if event.HasField("session_log") and event.session_log.status == event_pb2.SessionLog.START:
                shown = [s for s in shown if s[1] < event.step]
            for value in event.summary.value:
                shown.append((value.tag, event.step, value.simple_value))
    return shown


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """ARGS run without interruption: checkpoints 20 and 40."""
    workdir = tmp_path_factory.mktemp("straight") / "run"
    assert experiments_main.run_or_report(config_of(ARGS), str(workdir)) is not None
    return workdir


def test_damaged_checkpoint_is_named_and_an_earlier_one_resumes(straight, tmp_path, capsys):
    """Whichever file of the newest checkpoint is damaged (a data file or a metadata file emptied, bytes overwritten
    in place; also in a checkpoint without a manifest), the error names the step and the file, and changes
    nothing; --resume_step resumes from the earlier checkpoint the hint names, moves the damaged one aside (kept)
    and ends where the straight run ends."""
    step_dir = straight / "checkpoints" / "40"
    data_file = max((step_dir / "default" / "ocdbt.process_0" / "d").iterdir(), key=lambda p: p.stat().st_size)
    cases = [  # (file emptied, manifest kept, what the line says)
        (data_file.relative_to(step_dir), False, "is empty"),  # a checkpoint written before manifests
        ("default/_METADATA", True, "holds 0 bytes"),
    ]
    for n, (name, manifest, says) in enumerate(cases):
        workdir = tmp_path / str(n)
        shutil.copytree(straight, workdir)
        (workdir / "checkpoints" / "40" / name).write_bytes(b"")
        if not manifest:
            (workdir / "checkpoints" / "40" / checkpoint.MANIFEST).unlink()
        before = snapshot(workdir)
        status, _, err = run_here(workdir, capsys)
        assert status == 2
        assert_one_line_error(err, "checkpoint 40", f"40/{name}", says)
        assert "--resume_step=20" in err
        assert snapshot(workdir) == before
    for name, damage, says in [  # the same check, here without a run around it
        (data_file.relative_to(step_dir), lambda raw: b"", "holds 0 bytes"),
        ("default/_sharding", lambda raw: bytes(len(raw)), "holds other bytes than were written"),
    ]:
        damaged = step_dir / name
        shutil.copy(damaged, tmp_path / "intact")
        damaged.write_bytes(damage(damaged.read_bytes()))
        try:
            with pytest.raises(checkpoint.CheckpointDamagedError, match=f"40/{name} {says}"):
                checkpoint.verify(str(straight / "checkpoints"), 40)
        finally:
            shutil.copy(tmp_path / "intact", damaged)

    status, out, err = run_here(workdir, capsys, resume_step=20)
    assert status == 0, err
    assert "Resumed from the checkpoint at step 20" in out
    assert (workdir / train.SET_ASIDE_DIR / "40" / "default" / "_METADATA").exists()  # kept, not deleted
    (a, step_a), (b, step_b) = final_state(straight), final_state(workdir)
    assert step_a == step_b == 40 and trees_equal(a, b)
    assert logged(workdir) == logged(straight)


def test_damaged_checkpoint_on_the_command_line_is_one_line(straight, tmp_path):
    """The program itself: exit status 2, the one line and its hint, no traceback from Orbax's threads."""
    workdir = tmp_path / "run"
    shutil.copytree(straight, workdir)
    data_dir = workdir / "checkpoints" / "40" / "default" / "ocdbt.process_0" / "d"
    max(data_dir.iterdir(), key=lambda p: p.stat().st_size).write_bytes(b"")
    before = snapshot(workdir)
    result = subprocess.run(
        [sys.executable, "-m", "experiments.main", "--config", CONFIG, f"--workdir={workdir}", *ARGS],
        cwd=REPO_ROOT,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert_one_line_error(result.stderr, "checkpoint 40", "damaged")
    assert snapshot(workdir) == before


def test_second_run_in_a_workdir_is_refused_and_a_killed_holder_never_blocks(straight, tmp_path, capsys):
    workdir = tmp_path / "run"
    shutil.copytree(straight, workdir)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom gen_jax import train\nlock = train.workdir_lock(sys.argv[1])\nlock.__enter__()\n"
            "print('held', flush=True)\ntime.sleep(600)",
            str(workdir),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "held\n"
        before = snapshot(workdir)
        status, _, err = run_here(workdir, capsys)
        assert status == 2
        assert_one_line_error(err, "in use by another run", f"pid {holder.pid}", socket.gethostname(), "started")
        assert snapshot(workdir) == before
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    assert (workdir / train.LOCK_FILE).exists()  # left behind by the killed holder
    with train.workdir_lock(str(workdir)):  # taken over at once
        assert f'"pid": {os.getpid()}' in (workdir / train.LOCK_FILE).read_text()
    assert not (workdir / train.LOCK_FILE).exists()


@pytest.mark.slow
def test_kill_inside_a_save_resumes_bit_for_bit_and_logs_each_step_once(straight, tmp_path, capsys):
    """SIGKILL while checkpoint 40, the last, is being written (its files are in 40.orbax-checkpoint-tmp, not yet
    renamed to 40): the run resumes from 20, ends where the straight run ends, and metrics.jsonl and TensorBoard
    hold each step once, with the straight run's values."""
    workdir, marker = tmp_path / "run", tmp_path / "in_save"
    worker = subprocess.Popen(
        [sys.executable, os.path.join(REPO_ROOT, "tests", "faults_worker.py"), "40", str(marker)]
        + ["--config", CONFIG, f"--workdir={workdir}", *ARGS],
        cwd=REPO_ROOT,
        env={**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": REPO_ROOT},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 300
        while not marker.exists() and worker.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert marker.exists(), f"the save never paused (exit status {worker.poll()})"
        time.sleep(0.5)  # the loop's final wait for this save
        assert (workdir / "checkpoints" / "40.orbax-checkpoint-tmp").is_dir()
        assert not (workdir / "checkpoints" / "40").exists()
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    assert max(r["step"] for r in read_jsonl(workdir / "metrics.jsonl")) > 20  # logged past the checkpoint

    status, out, err = run_here(workdir, capsys)
    assert status == 0, err
    assert "Resumed from the checkpoint at step 20" in out
    assert not any("orbax-checkpoint-tmp" in name for name in os.listdir(workdir / "checkpoints"))
    (a, step_a), (b, step_b) = final_state(straight), final_state(workdir)
    assert step_a == step_b == 40 and trees_equal(a, b)
    assert logged(workdir) == logged(straight)
    resumed, whole = tensorboard_scalars(workdir / "tensorboard"), tensorboard_scalars(straight / "tensorboard")
    assert len(resumed) == len(set((tag, step) for tag, step, _ in resumed))
    timed = [s for s in resumed if "per_sec" not in s[0]]
    assert sorted(timed) == sorted(s for s in whole if "per_sec" not in s[0])


class SmallDisk:
    """Where a save can be made to fail as on a full disk: a 4 MiB tmpfs at `root` filled to `leave` bytes of free
    space (and remounted read-only for the unwritable case), or, where mounting is not permitted, a file-size limit
    (RLIMIT_FSIZE, SIGXFSZ ignored) below the size of a checkpoint's largest file."""

    def __init__(self, tmp_path):
        self.root = tmp_path / "disk"
        self.root.mkdir()
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(self.root)], capture_output=True, timeout=30
        )
        self.mounted = mounted.returncode == 0
        self.cause = "No space left on device" if self.mounted else "File too large"

    @contextlib.contextmanager
    def full(self, largest_file: int):
        if self.mounted:
            ballast = self.root / "ballast"
            ballast.write_bytes(bytes(max(0, shutil.disk_usage(self.root).free - 48 * 1024)))
            try:
                yield
            finally:
                ballast.unlink()
            return
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (largest_file // 2, hard))
        try:
            yield
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
            signal.signal(signal.SIGXFSZ, handler)

    @contextlib.contextmanager
    def read_only(self):
        subprocess.run(["mount", "-o", "remount,ro", str(self.root)], check=True, timeout=30)
        try:
            yield
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(self.root)], check=True, timeout=30)

    def close(self):
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.root)], check=True, timeout=30)


@pytest.fixture
def small_disk(tmp_path):
    disk = SmallDisk(tmp_path)
    yield disk
    disk.close()


def test_full_disk_during_a_save_keeps_the_last_checkpoint_and_resumes(straight, small_disk, capsys, monkeypatch):
    """A run whose newest checkpoint is 20 goes on on a full disk (a real small file system where the machine allows
    one): checkpoint 40 does not fit.  One line naming the checkpoint directory and the cause; checkpoint 20
    untouched; once space is freed, the same command resumes and ends where the straight run ends.  On a tmpfs, the
    file system read-only in between: one line, nothing changed."""
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)  # Orbax's late callbacks must be filtered out
    workdir = small_disk.root / "run"
    shutil.copytree(straight, workdir)
    shutil.rmtree(workdir / "checkpoints" / "40")
    kept = snapshot(workdir / "checkpoints" / "20")
    largest = max(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(workdir / "checkpoints") for f in fs)

    with small_disk.full(largest):
        status, _, err = run_here(workdir, capsys)
    assert status == 2
    assert_one_line_error(err, "checkpoint 40", str(workdir / "checkpoints"), small_disk.cause, "step 20")
    assert snapshot(workdir / "checkpoints" / "20") == kept
    checkpoint.verify(str(workdir / "checkpoints"), 20)
    assert not unraisable, unraisable

    if small_disk.mounted:
        with small_disk.read_only():
            before = snapshot(workdir)
            status, _, err = run_here(workdir, capsys)
            assert status == 2
            assert_one_line_error(err, str(workdir), "Read-only file system")
            assert snapshot(workdir) == before

    status, out, err = run_here(workdir, capsys)
    assert status == 0, err
    assert "Resumed from the checkpoint at step 20" in out
    (a, step_a), (b, step_b) = final_state(straight), final_state(workdir)
    assert step_a == step_b == 40 and trees_equal(a, b)
    assert logged(workdir) == logged(straight)


def write_fashion_idx(directory):
    """Four small valid Fashion-MNIST IDX files in `directory`; returns their paths by name."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (40, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, (40,), dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, (10,), dtype=np.uint8),
    }
    directory.mkdir()
    for name, array in arrays.items():
        (directory / name).write_bytes(idx_bytes(array))
    return {name: directory / name for name in arrays}


@pytest.mark.parametrize(
    "damage, words",
    [
        (lambda raw: raw[: len(raw) // 2], "truncated or corrupt"),
        (lambda raw: b"\x1f\x8b" + raw[2:], "is not an IDX file"),
    ],
    ids=["truncated", "wrong_magic"],
)
def test_damaged_idx_file_is_one_line_naming_it(tmp_path, capsys, damage, words):
    paths = write_fashion_idx(tmp_path / "data")
    damaged = paths["train-images-idx3-ubyte"]
    damaged.write_bytes(damage(damaged.read_bytes()))
    status, _, err = run_here(
        tmp_path / "run", capsys, "--config.dataset=fashion_mnist", f"--config.data_dir={tmp_path / 'data'}"
    )
    assert status == 2
    assert_one_line_error(err, str(damaged), words)
    assert not (tmp_path / "run").exists()


def test_tfds_data_set_with_a_missing_shard_is_one_line_naming_it(tmp_path, capsys):
    from test_sources import GenJaxTestImages

    root = tmp_path / "tfds"
    GenJaxTestImages(data_dir=str(root), file_format="array_record").download_and_prepare()
    shard = next(p for p in (root / "gen_jax_test_images" / "1.0.0").iterdir() if "-train.array_record" in p.name)
    shard.unlink()
    capsys.readouterr()
    status, _, err = run_here(
        tmp_path / "run", capsys, "--config.dataset=gen_jax_test_images", f"--config.data_dir={root}"
    )
    assert status == 2
    assert_one_line_error(err, str(shard), "is missing")
    assert not (tmp_path / "run").exists()


def test_read_only_restore_says_nothing(straight, caplog):
    """Restoring for latent work (experiments.edit, trained.load_run) opens checkpoints read-only on purpose: Orbax's
    'Given directory is read only' warning is dropped."""
    with caplog.at_level(logging.INFO):
        final_state(straight)
    assert not [r for r in caplog.records if "read only" in r.getMessage()], caplog.records
