"""The contract of `python -m experiments.main`, as docs/reliability.md states it: every mistake it lists is reported
in one line (no traceback) with exit status 2 before any training step, and nothing in the workdir changes; a
finished run re-evaluates and redraws."""

import ast
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from experiments import main as experiments_main
from experiments.configs import vae_digits
from gen_jax import config as config_lib
from gen_jax import train, trained

from conftest import REPO_ROOT, VAE_FIGURES, snapshot, tiny_vae_config

CONFIG = os.path.join(REPO_ROOT, "experiments", "configs", "vae_digits.py")
TINY = [
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


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A tiny VAE run of the TINY overrides, finished at step 20."""
    workdir = tmp_path_factory.mktemp("finished") / "run"
    assert experiments_main.run_or_report(config_of(TINY), str(workdir)) is not None
    return workdir


def config_of(args):
    """vae_digits' config with `--config.<path>=<value>` overrides applied, as the command line applies them."""
    config = vae_digits.get_config()
    for arg in args:
        path, value = arg[len("--config.") :].split("=", 1)
        with contextlib.suppress(ValueError, SyntaxError):  # else a plain string
            value = ast.literal_eval(value)
        config_lib.set_at(config, path, value)
    return config


def run_main_here(workdir, args, capsys):
    """(exit status, stderr) of experiments.main's run-or-report on the config a command line asks for, in this
    process: the same code as the program's after flag parsing, without a JAX start-up per case."""
    capsys.readouterr()
    summary = experiments_main.run_or_report(config_of(args), str(workdir))
    return (2 if summary is None else 0), capsys.readouterr().err


def run_main(workdir, args, devices=1):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    return subprocess.run(
        [sys.executable, "-m", "experiments.main", "--config", CONFIG, f"--workdir={workdir}", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def garble_checkpoint(workdir):
    for root, _, files in os.walk(workdir / "checkpoints" / "20"):
        for name in files:
            with open(os.path.join(root, name), "wb") as f:
                f.write(b"garbage")


def claim_other_sizes(workdir):
    """model.json says latent_dim 3 (so the config below agrees with it), but the checkpoint holds latent_dim 2."""
    path = workdir / "model.json"
    signature = json.loads(path.read_text())
    signature["model"]["latent_dim"] = 3
    path.write_text(json.dumps(signature))


# Run as real processes: the ones whose failure could come from the program's own start (flag parsing, Orbax's
# logging, the device count); the rest run main's run-or-report in this process, which saves a JAX start-up each.
IN_A_PROCESS = {
    "a field the config does not have",
    "a value of the wrong type",
    "a batch not divisible over the devices",
    "a checkpoint that cannot be read",
}
CASES = {  # kind: (extra args, what the one line says, devices, how a copy of the finished run is prepared or None)
    "unknown family": (["--config.family=diffusion"], "config.family must be one of", 1, None),
    "unknown data set": (["--config.dataset=no_such_data"], "config.dataset", 1, None),
    "unknown likelihood": (["--config.model.likelihood=poisson"], "config.model.likelihood must be one of", 1, None),
    "unknown architecture": (["--config.model.architecture=rnn"], "config.model.architecture must be one of", 1, None),
    "a field the config does not have": (["--config.model.hiden=(8,)"], "does not have", 1, None),
    "a value of the wrong type": (["--config.num_steps=many"], "--config.num_steps=many", 1, None),
    "a non-positive size": (
        ["--config.model.latent_dim=0"],
        "config.model.latent_dim must be a positive integer",
        1,
        None,
    ),
    "a batch larger than the split": (["--config.batch_size=5000"], "larger than the digits training split", 1, None),
    "a batch not divisible over the devices": (
        ["--config.batch_size=33"],
        "does not divide over the 2 devices",
        2,
        None,
    ),
    "another model's run": (
        ["--config.model.latent_dim=3"],
        "model.latent_dim: workdir has 2, config asks for 3",
        1,
        lambda workdir: None,
    ),
    "a checkpoint that does not fit": (["--config.model.latent_dim=3"], "checkpoint", 1, claim_other_sizes),
    "a checkpoint that cannot be read": ([], "checkpoint 20", 1, garble_checkpoint),
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(CASES))
def test_each_mistake_is_one_line_exit_2_and_changes_nothing(kind, finished_run, tmp_path, capsys):
    extra, says, devices, prepare = CASES[kind]
    workdir = tmp_path / "run"
    if prepare is not None:
        shutil.copytree(finished_run, workdir)
        prepare(workdir)
    before = snapshot(workdir) if workdir.exists() else None
    # More steps than the finished run: a mistake not caught would train.
    args = [a for a in TINY if not a.startswith("--config.num_steps")] + ["--config.num_steps=40", *extra]
    if kind in IN_A_PROCESS:
        result = run_main(workdir, args, devices)
        status, stderr = result.returncode, result.stderr
    else:
        status, stderr = run_main_here(workdir, args, capsys)
    lines = [line for line in stderr.splitlines() if not line.startswith(("WARNING", "I1", "W1"))]
    assert status == 2, stderr[-2000:]
    assert "Traceback" not in stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], lines
    assert (snapshot(workdir) if workdir.exists() else None) == before


@pytest.mark.parametrize(
    "field, value",
    [("family", "diffusion"), ("dataset", "no_such_data"), ("model__latent_dim", 0), ("batch_size", 5000)],
)
def test_config_mistakes_are_refused_before_any_compute(field, value, tmp_path, monkeypatch):
    def no_compute(*args, **kwargs):
        raise AssertionError("compute started before the config was checked")

    monkeypatch.setattr(train, "init_sharded_state", no_compute)
    monkeypatch.setattr(train, "jit_multi_step", no_compute)
    with pytest.raises(config_lib.ConfigError):
        experiments_main.run(tiny_vae_config(**{field: value}), str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_finished_run_re_evaluates_and_redraws(tmp_path):
    config = tiny_vae_config(num_steps=20, write_figures=True)
    first = experiments_main.run(config, str(tmp_path))
    trained_records = (tmp_path / "metrics.jsonl").read_text()
    shutil.rmtree(tmp_path / "figures")
    (tmp_path / "summary.json").unlink()
    again = experiments_main.run(config, str(tmp_path))
    assert again == first == json.loads((tmp_path / "summary.json").read_text())
    assert (tmp_path / "metrics.jsonl").read_text() == trained_records  # no step was trained again
    assert {p.name for p in (tmp_path / "figures").iterdir()} >= VAE_FIGURES


def test_a_record_holds_the_command_its_wall_time_and_the_load(tmp_path):
    config = config_of(TINY)
    summary = {"test_neg_elbo": 21.5}
    path = tmp_path / "results" / "run.json"
    argv = ["experiments/main.py", "--config", CONFIG, "--workdir", "runs/x"]
    experiments_main.write_record(str(path), argv, config, summary, started=time.monotonic() - 2.5)
    record = json.loads(path.read_text())
    assert record["command"] == f"python -m experiments.main --config {CONFIG} --workdir runs/x"
    assert record["summary"] == summary and record["config"]["num_steps"] == 20
    assert 2.5 <= record["wall_s"] < 60
    assert len(record["load_average_1_5_15_min"]) == 3 and min(record["load_average_1_5_15_min"]) >= 0
    experiments_main.write_record(str(path), argv, config, summary)  # no start given: no wall time claimed
    assert "wall_s" not in json.loads(path.read_text()) and "first_step" not in json.loads(path.read_text())
    experiments_main.write_record(str(path), argv, config, summary, started=time.monotonic(), first_step=1200)
    assert json.loads(path.read_text())["first_step"] == 1200  # a resumed run: its wall time is from there on


def test_the_step_a_command_starts_from(finished_run, tmp_path):
    assert experiments_main.checkpointed_step(str(tmp_path / "new")) == 0
    assert experiments_main.checkpointed_step(str(finished_run)) == 20
    assert experiments_main.checkpointed_step(str(finished_run), resume_step=10) == 10


def test_a_vae_summary_holds_the_reconstruction_error_of_its_codec(finished_run):
    summary = json.loads((finished_run / "summary.json").read_text())
    run = trained.load_run(str(finished_run))
    reconstructions = run.decode(run.encode(run.test_images))
    assert summary["test_mse"] == pytest.approx(float(np.mean((reconstructions - run.test_images) ** 2)), rel=1e-5)
