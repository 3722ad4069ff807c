"""The training loop: resume is bit-identical (also after a kill), NaN stops with the step named, bad input is
refused before compute and leaves the workdir as it was."""

import json
import logging
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import main as experiments_main
from gen_jax import checkpoint, data, train
from gen_jax import config as config_lib
from gen_jax.tasks import vae

from conftest import (
    REPO_ROOT,
    VAE_FIGURES,
    kill_after_checkpoint,
    read_jsonl,
    snapshot,
    tiny_vae_config,
    train_run,
    trees_equal,
)


def final_params(workdir, **overrides):
    """The newest checkpoint of `workdir` as numpy arrays (parameters, their EMA, optimizer state), and its step."""
    task = vae.make_task(tiny_vae_config(**overrides), data.load_dataset("digits"))
    state, step = checkpoint.restore_latest(os.path.join(workdir, "checkpoints"), task.init_state(jax.random.key(0)))
    assert state.ema_params  # the VAE configs keep an EMA, so resume must carry it too
    return jax.tree_util.tree_map(np.asarray, (state.params, state.ema_params, state.opt_state)), step


def test_training_writes_the_contract(tmp_path):
    summary = experiments_main.run(tiny_vae_config(write_figures=True), str(tmp_path))
    for name in ("config.json", "model.json", "metrics.jsonl", "summary.json", "report.md"):
        assert (tmp_path / name).exists(), name
    for key in ("test_neg_elbo", "test_iwae_nll", "iwae_k", "steps"):
        assert key in summary
    assert summary["steps"] == 60 and summary["iwae_k"] == 10
    figures = {p.name for p in (tmp_path / "figures").iterdir()}
    assert figures >= VAE_FIGURES
    assert any((tmp_path / "tensorboard").iterdir())
    records = read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records if "train/loss" in r] == [10, 20, 30, 40, 50, 60]
    # IWAE is a tighter bound than the ELBO: −log p̂(x) ≤ −ELBO (both estimated; the gap is nats-wide here).
    assert summary["test_iwae_nll"] <= summary["test_neg_elbo"] + 0.05


def test_training_reduces_the_loss(tmp_path):
    experiments_main.run(tiny_vae_config(num_steps=400, eval_every=400, checkpoint_every=400), str(tmp_path))
    records = read_jsonl(tmp_path / "metrics.jsonl")
    losses = [r["train/loss"] for r in records if "train/loss" in r]
    assert losses[-1] < 0.8 * losses[0]


def test_resume_is_bit_identical(tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    experiments_main.run(tiny_vae_config(num_steps=60), str(straight))
    experiments_main.run(tiny_vae_config(num_steps=20), str(split))
    summary = experiments_main.run(tiny_vae_config(num_steps=60), str(split))  # resumes at 20
    (a, step_a), (b, step_b) = final_params(straight), final_params(split)
    assert step_a == step_b == 60
    assert trees_equal(a, b)
    assert summary["test_neg_elbo"] == json.loads((straight / "summary.json").read_text())["test_neg_elbo"]


@pytest.mark.slow
def test_resume_after_kill_is_bit_identical(tmp_path):
    """A process SIGKILLed mid-run, then the same command again, ends where an uninterrupted run ends."""
    steps, every = 3000, 100
    overrides = [
        f"--config.num_steps={steps}",
        f"--config.checkpoint_every={every}",
        "--config.eval_every=1000",
        "--config.log_every=100",
        "--config.model.hidden=(32,)",
        "--config.model.latent_dim=2",
        "--config.batch_size=32",
        "--config.iwae_k=10",
        "--config.keep_checkpoints=50",
        "--config.write_figures=False",
    ]
    command = [
        sys.executable,
        "-m",
        "experiments.main",
        "--config",
        os.path.join(REPO_ROOT, "experiments/configs/vae_digits.py"),
    ]
    killed = tmp_path / "killed"
    stopped_at = kill_after_checkpoint(command + [f"--workdir={killed}"] + overrides, killed, 2 * every, timeout=120)
    assert stopped_at < steps

    rerun = subprocess.run(
        command + [f"--workdir={killed}"] + overrides, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "Resumed from the checkpoint" in rerun.stdout

    straight = tmp_path / "straight"
    done = subprocess.run(
        command + [f"--workdir={straight}"] + overrides, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (a, step_a), (b, step_b) = final_params(straight, batch_size=32), final_params(killed, batch_size=32)
    assert step_a == step_b == steps
    assert trees_equal(a, b)


def test_parameter_ema_averages_the_iterates_and_evaluation_uses_it():
    """ema_{t+1} = d_t·ema_t + (1 − d_t)·params_{t+1}, d_t = min(decay, (1 + t) / (10 + t)); off, there is none."""
    dataset = data.load_dataset("digits")
    task = vae.make_task(tiny_vae_config(ema_decay=0.9), dataset)
    step = jax.jit(task.train_step)
    batch = {"image": jnp.asarray(dataset.train_images[:32]), "label": jnp.asarray(dataset.train_labels[:32])}
    state = task.init_state(jax.random.key(0))
    expected = state.params
    for t in range(3):
        state, _ = step(state, batch, jax.random.key(t))
        decay = min(0.9, (1 + t) / (10 + t))
        expected = jax.tree.map(lambda e, p, d=decay: d * e + (1 - d) * p, expected, state.params)
    assert not trees_equal(state.ema_params, state.params)
    for got, want in zip(jax.tree.leaves(state.ema_params), jax.tree.leaves(expected)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    assert state.inference_params() is state.ema_params
    plain = vae.make_task(tiny_vae_config(ema_decay=0.0), dataset).init_state(jax.random.key(0))
    assert not hasattr(plain, "ema_params") and plain.inference_params() is plain.params


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_or_inf_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path, bad):
    config = tiny_vae_config(num_steps=60)
    dataset = data.load_dataset("digits")
    task = vae.make_task(config, dataset)

    def poisoned_step(state, batch, key):
        new_state, metrics = task.train_step(state, batch, key)
        metrics["loss"] = jnp.where(state.step == 25, bad, metrics["loss"])
        return new_state, metrics

    poisoned = train.Task(**{**task.__dict__, "train_step": poisoned_step})
    train.prepare_workdir(str(tmp_path), config.to_dict(), poisoned)
    with pytest.raises(train.TrainingDivergedError, match=rf"became {bad} at step 25.*step 20"):
        train.train(
            config,
            str(tmp_path),
            poisoned,
            jnp.asarray(dataset.train_images),
            jnp.asarray(dataset.train_labels),
            show_progress=False,
        )
    assert sorted(int(d) for d in os.listdir(tmp_path / "checkpoints") if d.isdigit()) == [20]
    assert not (tmp_path / "summary.json").exists()


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("family", "diffusion", "config.family must be one of"),
        ("dataset", "no_such_dataset_xyz", "config.dataset"),
        ("batch_size", 0, "config.batch_size must be a positive integer"),
        ("num_steps", -5, "config.num_steps must be a positive integer"),
        ("model__latent_dim", 0, "config.model.latent_dim must be a positive integer"),
        ("optim__learning_rate", 0.0, "config.optim.learning_rate must be a positive number"),
        ("optim__name", "adagrad", "config.optim.name must be one of"),
        ("batch_size", 5000, "larger than the digits training split"),
        ("model__likelihood", "poisson", "config.model.likelihood must be one of"),
        ("model__architecture", "transformer", "config.model.architecture must be one of"),
        ("binarization", "maybe", "config.binarization must be one of"),
        ("ema_decay", 1.0, r"config.ema_decay must be a number in \[0, 1\)"),
    ],
)
def test_bad_config_is_refused_before_compute(tmp_path, field, value, message):
    workdir = tmp_path / "run"
    with pytest.raises(config_lib.ConfigError, match=message):
        experiments_main.run(tiny_vae_config(**{field: value}), str(workdir))
    assert not workdir.exists()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"model__latent_dim": 3}, "model.latent_dim: workdir has 2, config asks for 3"),
        ({"model__architecture": "conv"}, "architecture"),
        ({"model__hidden": (64,)}, "hidden"),
        ({"ema_decay": 0.0}, "parameter_ema: workdir has True, config asks for False"),
    ],
)
def test_resuming_another_model_is_refused_and_changes_nothing(tmp_path, change, message):
    experiments_main.run(tiny_vae_config(num_steps=20), str(tmp_path))
    before = snapshot(tmp_path)
    with pytest.raises(train.WorkdirMismatchError, match=message):
        experiments_main.run(tiny_vae_config(num_steps=40, **change), str(tmp_path))
    assert snapshot(tmp_path) == before


def test_checkpoint_shape_mismatch_is_named(tmp_path):
    """Even without model.json (e.g. copied checkpoints), restore compares shapes before loading."""
    experiments_main.run(tiny_vae_config(num_steps=20), str(tmp_path))
    dataset = data.load_dataset("digits")
    other = vae.make_task(tiny_vae_config(model__latent_dim=3), dataset)
    manager = checkpoint.make_manager(str(tmp_path / "checkpoints"), 10)
    with pytest.raises(
        checkpoint.CheckpointMismatchError,
        match=r"params/encoder/Dense_1/kernel: checkpoint \(32, 4\), model \(32, 6\)",
    ):
        checkpoint.restore(manager, 20, other.init_state(jax.random.key(0)))


def test_corrupt_checkpoint_is_reported_and_kept(tmp_path):
    experiments_main.run(tiny_vae_config(num_steps=20), str(tmp_path))
    for root, _, files in os.walk(tmp_path / "checkpoints" / "20"):
        for name in files:
            with open(os.path.join(root, name), "wb") as f:
                f.write(b"garbage")
    before = snapshot(tmp_path)
    with pytest.raises(checkpoint.CheckpointMismatchError, match="checkpoint 20"):
        experiments_main.run(tiny_vae_config(num_steps=40), str(tmp_path))
    assert snapshot(tmp_path) == before


def test_command_line_reports_errors_without_traceback(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.main",
            "--config",
            os.path.join(REPO_ROOT, "experiments/configs/vae_digits.py"),
            f"--workdir={tmp_path / 'run'}",
            "--config.batch_size=0",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "error: config.batch_size must be a positive integer, got 0" in result.stderr
    assert "Traceback" not in result.stderr


def test_chunks_lie_on_the_cadences_gcd_so_a_run_has_at_most_two_lengths():
    cadences = (10, 15, 25)  # cut at whichever comes next, the chunks would be 10, 5 and 2 steps long
    plan = list(train.chunks(0, 62, cadences))
    assert plan[0] == (0, 5) and plan[-1] == (60, 62)
    assert all(end == start + 5 for start, end in plan[:-1]) and {end - start for start, end in plan} == {5, 2}
    assert train.next_boundary(200, 1000, (100, 250, 300)) == 250  # every cadence's step is a boundary
    assert train.next_boundary(990, 1000, (100, 250, 300)) == 1000
    assert [end for _, end in train.chunks(12, 40, (10,), switches=(15,))] == [15, 20, 30, 40]  # resume, a phase


def test_the_loop_compiles_its_programs_before_it_times_and_at_most_two_chunk_lengths(tmp_path, monkeypatch, caplog):
    """Awkward cadences compile two chunk lengths, and every compilation of the training program happens before the
    loop starts its clock: train/steps_per_sec measures training, not compilation."""
    loop_run = train._Loop.run

    def marked(self, *args):
        logging.getLogger("test_train").warning("loop starts")
        return loop_run(self, *args)

    monkeypatch.setattr(train._Loop, "run", marked)
    config = tiny_vae_config(num_steps=62, log_every=10, eval_every=15, checkpoint_every=25, iwae_k=0)
    with caplog.at_level(logging.WARNING), jax.log_compiles():
        train_run(config, data.load_dataset("digits"), tmp_path)
    messages = [record.getMessage() for record in caplog.records]
    start = messages.index("loop starts")
    programs = [i for i, message in enumerate(messages) if message.startswith("Compiling jit(run) ")]
    assert 1 <= len(programs) <= 2 and max(programs) < start, (programs, start)
    records = [r for r in read_jsonl(tmp_path / "metrics.jsonl") if "train/loss" in r]
    assert [r["step"] for r in records] == [10, 20, 30, 40, 50, 60, 62]
