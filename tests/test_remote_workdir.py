"""Remote workdirs (issue 30): a `gs://…` workdir read and written through `etils.epath` (gcsfs) and Orbax's
TensorStore, here against a local GCS emulator (gcp-storage-emulator, in memory, offline).

What this covers: a whole `experiments.main` run in `gs://bucket/…` (config, model signature, metrics.jsonl
rewritten whole, summary, one checkpoint with its manifest), the lock, TensorBoard and figures skipped with one line
each,
the same command resuming from that checkpoint, its arrays equal to a local run's bit for bit, and the manifest
naming a damaged file there.  What it cannot: a second checkpoint in one remote run (the emulator ignores GCS's
generation preconditions, which TensorStore's OCDBT manifest writes rely on, and answers them with a malformed
generation), real GCS (credentials, latency), a sweep's sweep.json and report there.
"""

import importlib.util
import os
import socket
import subprocess
import sys
import time

import pytest

if not (importlib.util.find_spec("gcsfs") and importlib.util.find_spec("gcp_storage_emulator")):  # not imported:
    pytest.skip("needs gcsfs and gcp-storage-emulator (the dev extra)", allow_module_level=True)  # see `emulator`

from etils import epath  # noqa: E402
from test_main import CONFIG  # noqa: E402
from test_preemption import saved_arrays  # noqa: E402

from gen_jax import checkpoint, workdir  # noqa: E402

from conftest import REPO_ROOT  # noqa: E402

pytestmark = pytest.mark.slow

ARGS = [
    "--config.num_steps=20",
    "--config.checkpoint_every=20",
    "--config.eval_every=20",
    "--config.log_every=10",
    "--config.model.hidden=(32,)",
    "--config.model.latent_dim=2",
    "--config.batch_size=32",
    "--config.iwae_k=0",
    "--config.write_figures=False",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def emulator():
    """A GCS emulator on localhost with bucket `bucket`; gcsfs (epath) and TensorStore in this process and its
    children are pointed at it.  Yields the environment for subprocesses."""
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gcp_storage_emulator",
            "start",
            f"--port={port}",
            "--default-bucket=bucket",
            "-q",
            "-M",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    # No credentials to look for: TensorStore takes a fixed token, google-auth (gcsfs) does not look for a GCE
    # metadata server, TensorStore's is a closed local port, and gcsfs does not ask the bucket's type (a gRPC API
    # the emulator lacks).  Read by gcsfs when imported: first here.
    pointed = dict(
        STORAGE_EMULATOR_HOST=url,
        TENSORSTORE_GCS_HTTP_URL=url,
        GOOGLE_AUTH_TOKEN_FOR_TESTING="token",
        NO_GCE_CHECK="true",
        GCE_METADATA_ROOT="127.0.0.1:9",
        GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT="false",
    )
    saved = {name: os.environ.get(name) for name in pointed}
    os.environ.update(pointed)
    try:
        yield {**os.environ, "JAX_PLATFORMS": "cpu"}
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        server.kill()
        server.wait(timeout=30)


def run_main(workdir, env, *extra) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "experiments.main", "--config", CONFIG, f"--workdir={workdir}", *ARGS, *extra],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def remote_run(emulator, tmp_path_factory):
    """(the gs:// workdir, the local workdir) of the same run, each trained once."""
    local = tmp_path_factory.mktemp("local") / "run"
    for where in ("gs://bucket/run", local):
        result = run_main(where, emulator)
        assert result.returncode == 0, result.stderr[-3000:]
    return "gs://bucket/run", local


def test_a_run_in_a_gs_workdir_writes_its_files_and_says_what_it_skips(remote_run, emulator):
    remote, local = remote_run
    root = epath.Path(remote)
    for name in ("config.json", "model.json", "summary.json", "metrics.jsonl"):
        assert (root / name).exists(), name
    records = [r for r in read_jsonl_remote(root / "metrics.jsonl") if "train/loss" in r]
    assert [r["step"] for r in records] == [10, 20]
    assert (root / "checkpoints" / "20" / checkpoint.MANIFEST).exists()
    assert (root / "summary.json").read_text() == (local / "summary.json").read_text()
    (arrays_remote, step_remote), (arrays_local, step_local) = saved_arrays(remote), saved_arrays(local)
    assert step_remote == step_local == 20 and arrays_remote.keys() == arrays_local.keys()
    assert all((arrays_remote[k] == arrays_local[k]).all() for k in arrays_local)

    again = run_main(remote, emulator, "--config.write_figures=True")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Resumed from the checkpoint at step 20 in gs://bucket/run/checkpoints." in again.stdout
    assert again.stdout.count("cannot be locked") == 1
    assert again.stdout.count("no TensorBoard events are written there") == 1
    assert again.stdout.count("no figures or report pages are written there") == 1
    assert not os.path.exists(os.path.join(REPO_ROOT, "gs:"))  # nothing written to a local look-alike path
    assert [r["step"] for r in read_jsonl_remote(root / "metrics.jsonl") if "train/loss" in r] == [10, 20]


def read_jsonl_remote(path: epath.Path) -> list[dict]:
    import json

    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_manifest_names_a_damaged_file_in_a_gs_checkpoint(remote_run):
    remote, _ = remote_run
    step_dir = epath.Path(remote) / "checkpoints" / "20"
    target = step_dir / "_CHECKPOINT_METADATA"
    original = target.read_bytes()
    target.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    try:
        with pytest.raises(checkpoint.CheckpointDamagedError, match="20/_CHECKPOINT_METADATA holds other bytes"):
            checkpoint.verify(f"{remote}/checkpoints", 20)
    finally:
        target.write_bytes(original)
    checkpoint.verify(f"{remote}/checkpoints", 20)


def test_metrics_rewind_and_json_writes_work_in_a_gs_workdir(emulator):
    path = "gs://bucket/files/metrics.jsonl"
    log = workdir.MetricsLog("gs://bucket/files")
    for step in (10, 20, 30):
        log.write(step, {"train/loss": float(step)})
    workdir.rewind_metrics(path, 20)
    assert [r["step"] for r in read_jsonl_remote(epath.Path(path))] == [10, 20]
    workdir.MetricsLog("gs://bucket/files", 20).write(30, {"train/loss": 3.0})
    assert [r["train/loss"] for r in read_jsonl_remote(epath.Path(path))] == [10.0, 20.0, 3.0]
    workdir.write_json("gs://bucket/files/x.json", {"a": 1})
    assert epath.Path("gs://bucket/files/x.json").read_text() == '{\n  "a": 1\n}\n'
    assert not epath.Path("gs://bucket/files/x.json.tmp").exists()
