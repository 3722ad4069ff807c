"""Sweeps: members trained as one vmapped program compute what single runs compute, resume bit for bit after a
kill, write every member's files and the groups' mean ± std, and bad sweeps are refused in one line before
compute.  (8 devices against 1: tests/sharding_worker.py.)"""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from experiments import sweep as experiments_sweep
from gen_jax import checkpoint
from gen_jax import config as config_lib
from gen_jax.tasks import gan, vae

from conftest import (
    REPO_ROOT,
    kill_after_checkpoint,
    max_abs_difference,
    snapshot,
    tiny_gan_config,
    tiny_vae_config,
    train_run,
    trees_equal,
)


def newest_state(workdir):
    """The newest checkpoint of `workdir` as saved (nested dicts of numpy arrays), and its step."""
    manager = checkpoint.make_manager(os.path.join(workdir, "checkpoints"), read_only=True)
    step = manager.latest_step()
    return jax.tree_util.tree_map(np.asarray, manager.restore(step)), step


def member_of(population_state: dict, index: int) -> dict:
    return jax.tree_util.tree_map(lambda leaf: leaf[index], population_state["members"])


def sweep(config, workdir, *specs, **kwargs):
    return experiments_sweep.run(config, str(workdir), list(specs), show_progress=False, **kwargs)


# float32 round-off: the vmapped program may order a reduction differently from the single one.
TOLERANCE = 1e-6


@pytest.mark.parametrize(
    "make_config, specs, checked, options",
    [
        # Seeds and the learning rate (read inside the step); seed 1's member is checked against its own single run.
        (
            lambda: tiny_vae_config(num_steps=20, eval_every=20, checkpoint_every=20),
            ("seed=0:2", "optim.learning_rate=1e-3,3e-3"),
            {"seed": 1, "optim.learning_rate": 3e-3},
            {},
        ),
        # D's optimizer and G's EMA decay (below 0.7 it matters within 20 steps: see steps.ema_decay_at).
        (
            lambda: tiny_gan_config(num_steps=20, eval_every=20, checkpoint_every=20, seed=4),
            ("d_optim.learning_rate=1e-4,4e-4", "ema_decay=0.3,0.6"),
            {"d_optim.learning_rate": 4e-4, "ema_decay": 0.3},
            {},
        ),
        # The members one after another in the program (--members_in_turn), a convolutional GAN: the same function.
        (
            lambda: tiny_gan_config(
                num_steps=20,
                eval_every=20,
                checkpoint_every=20,
                seed=2,
                model__architecture="dcgan",
                model__g_features=(16, 8),
                model__d_features=(8,),
                model__kernel_size=3,
            ),
            ("seed=2,3", "d_optim.learning_rate=1e-4,4e-4"),
            {"seed": 3, "d_optim.learning_rate": 1e-4},
            {"in_turn": True},
        ),
    ],
    ids=["vae", "gan", "dcgan_in_turn"],
)
@pytest.mark.slow
def test_members_compute_what_single_runs_compute(tmp_path, digits, make_config, specs, checked, options):
    results = sweep(make_config(), tmp_path / "sweep", *specs, **options)
    names = [member["name"] for member in results["members"]]
    assert len(names) == 4 and len(set(names)) == 4
    index = next(i for i, m in enumerate(results["members"]) if m["values"] == checked)

    single = make_config()
    for path, value in checked.items():
        config_lib.set_at(single, path, value)
    single_summary = train_run(single, digits, tmp_path / "single")

    population, step = newest_state(tmp_path / "sweep")
    alone, single_step = newest_state(tmp_path / "single")
    assert step == single_step == 20
    member = member_of(population, index)
    assert max_abs_difference(member, alone) <= TOLERANCE, max_abs_difference(member, alone)
    member_dir = tmp_path / "sweep" / "members" / names[index]
    member_summary = json.loads((member_dir / "summary.json").read_text())
    for key, value in single_summary.items():
        if isinstance(value, float):
            assert member_summary[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    # Each member's own files, with its own values in its config.json.
    member_config = json.loads((member_dir / "config.json").read_text())
    for path, value in checked.items():
        node = member_config
        for part in path.split("."):
            node = node[part]
        assert node == value, path
    assert [json.loads(line)["step"] for line in (member_dir / "metrics.jsonl").read_text().splitlines()] == [
        10,
        20,
        20,
    ]
    # Members that differ in any one value trained differently.
    for other in range(1, 4):
        assert max_abs_difference(member_of(population, other - 1), member_of(population, other)) > 1e-4


@pytest.mark.slow
def test_groups_report_mean_and_std_over_seeds(tmp_path):
    config = tiny_vae_config(num_steps=20, eval_every=20, checkpoint_every=20)
    results = sweep(config, tmp_path, "seed=0:3", "beta=1,2")  # β: read inside the step
    assert [group["values"] for group in results["groups"]] == [{"beta": 1.0}, {"beta": 2.0}]
    for group in results["groups"]:
        assert len(group["members"]) == 3
        values = [
            next(m["summary"]["test_neg_elbo"] for m in results["members"] if m["name"] == name)
            for name in group["members"]
        ]
        assert group["mean"]["test_neg_elbo"] == pytest.approx(np.mean(values))
        assert group["std"]["test_neg_elbo"] == pytest.approx(np.std(values, ddof=1))
        assert group["std"]["test_neg_elbo"] > 0  # three seeds, three results
    assert json.loads((tmp_path / "sweep.json").read_text()) == json.loads(json.dumps(results))
    report = (tmp_path / "report.md").read_text()
    assert "| beta=2.0 | 3 |" in report and "seed=2_beta=1.0" in report
    assert not (tmp_path / "members" / "seed=0_beta=1.0" / "figures" / "samples.png").exists()  # figures off


@pytest.mark.parametrize(
    "make_config, specs, message",
    [
        (tiny_vae_config, ["seed=3:3"], "the range 3:3 is empty"),
        (tiny_vae_config, ["beta=0.5,abc"], "'abc' is not a number"),
        (tiny_vae_config, ["seed=0.5,1"], "'0.5' is not an integer"),
        (tiny_vae_config, ["betta=1,2"], "config.betta is missing"),
        (tiny_vae_config, ["seed"], "expected key=values"),
        (tiny_vae_config, ["beta=1,1"], "a value is repeated"),
        (tiny_vae_config, ["seed=0:2", "seed=4,5"], "a field is swept twice"),
        (tiny_vae_config, [], "no --sweep given"),
        (tiny_vae_config, ["beta=0.5,-1"], "config.beta must be"),  # each member's config is validated
        (tiny_vae_config, ["model.latent_dim=2,4"], "--sweep model.latent_dim: only values the train step reads"),
        (tiny_vae_config, ["batch_size=16,32"], "--sweep batch_size: only values the train step reads"),
        (tiny_vae_config, ["model.likelihood=bernoulli"], "only numbers and booleans can be swept"),
        (tiny_vae_config, ["ema_decay=0.9,0"], "has another model or state layout"),  # EMA or none
        (tiny_gan_config, ["d_steps=1,2"], "--sweep d_steps: only values the train step reads"),
    ],
)
def test_bad_sweeps_are_refused_before_compute(tmp_path, make_config, specs, message):
    workdir = tmp_path / "sweep"
    with pytest.raises(config_lib.ConfigError, match=message):
        sweep(make_config(), workdir, *specs)
    assert not workdir.exists()


@pytest.mark.slow
def test_a_changed_sweep_does_not_resume_and_changes_nothing(tmp_path):
    from gen_jax import train

    sweep(tiny_vae_config(num_steps=20, eval_every=20, checkpoint_every=20), tmp_path, "seed=0:2")
    before = snapshot(tmp_path)
    with pytest.raises(train.WorkdirMismatchError, match="sweep.seed"):
        sweep(tiny_vae_config(num_steps=40), tmp_path, "seed=0:3")
    assert snapshot(tmp_path) == before


def test_step_scalars_are_what_the_families_read():
    from gen_jax import data
    from gen_jax import sweep as sweep_lib

    digits = data.load_dataset("digits")
    vae_config, gan_config = tiny_vae_config(), tiny_gan_config()
    vae_reads = sweep_lib.step_scalars(vae.make_task(vae_config, digits), vae_config, digits.image_shape)
    assert {"beta", "ema_decay", "optim.learning_rate", "optim.b1", "optim.b2", "optim.eps"} <= vae_reads
    gan_reads = sweep_lib.step_scalars(gan.make_task(gan_config, digits), gan_config, digits.image_shape)
    assert {"ema_decay", "optim.learning_rate", "d_optim.learning_rate", "d_optim.b1"} <= gan_reads
    assert "beta" not in gan_reads and "model.latent_dim" not in vae_reads


@pytest.mark.slow
def test_sweep_resumes_after_kill_bit_for_bit(tmp_path):
    """A sweep SIGKILLed mid-run, then the same command again, ends where an uninterrupted sweep ends."""
    steps, every = 2000, 100
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
    ]
    command = [sys.executable, "-m", "experiments.sweep", "--config", "experiments/configs/vae_digits.py"]
    command += ["--sweep=seed=0:2", "--sweep=beta=0.5,1", *overrides]
    killed = tmp_path / "killed"
    assert kill_after_checkpoint([*command, f"--workdir={killed}"], killed, 2 * every) < steps
    rerun = subprocess.run(
        [*command, f"--workdir={killed}"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=400
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "Resumed from the checkpoint" in rerun.stdout

    straight = tmp_path / "straight"
    done = subprocess.run(
        [*command, f"--workdir={straight}"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=400
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (a, step_a), (b, step_b) = newest_state(straight), newest_state(killed)
    assert step_a == step_b == steps
    assert trees_equal(a, b)
    for name in json.loads((straight / "sweep.json").read_text())["members"]:
        summary = f"members/{name['name']}/summary.json"
        assert (straight / summary).read_text() == (killed / summary).read_text()


def test_command_line_reports_a_bad_sweep_in_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "experiments.sweep", "--config", "experiments/configs/vae_digits.py"]
        + [f"--workdir={tmp_path / 'sweep'}", "--sweep=model.hidden=1,2"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: --sweep model.hidden")
    assert not (tmp_path / "sweep").exists()
