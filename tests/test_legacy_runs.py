"""Runs written before configs were nested (tests/data/legacy_runs, made by commit 8972bdc) still resume, still
load for latent work, and are still refused, unchanged, by a config of another model."""

import json
import os
import shutil

import jax
import numpy as np
import pytest

from experiments import main as experiments_main
from gen_jax import checkpoint, data, tasks, train, trained

from conftest import (
    REPO_ROOT,
    max_abs_difference,
    snapshot,
    tiny_ae_config,
    tiny_gan_config,
    tiny_vae_config,
    trees_equal,
)

LEGACY = os.path.join(REPO_ROOT, "tests", "data", "legacy_runs")
LOOP = dict(keep_checkpoints=1, checkpoint_every=20, eval_every=20, write_figures=False)
CONFIGS = {"vae": tiny_vae_config, "ae": tiny_ae_config, "gan": tiny_gan_config}


def copy_of(family, tmp_path):
    workdir = tmp_path / family
    shutil.copytree(os.path.join(LEGACY, family), workdir)
    return workdir


def final_state(config, workdir):
    task = tasks.get(config.family).make_task(config, data.load_dataset("digits"))
    state, step = checkpoint.restore_latest(os.path.join(workdir, "checkpoints"), task.init_state(jax.random.key(0)))
    return jax.tree.map(np.asarray, state), step


def computes_as_the_fixture_machine(config, family, tmp_path) -> bool:
    """Whether this machine's first 20 steps of today's code give the legacy run's step-20 state bit for bit.  The
    fixtures were written on one CPU type; another (e.g. with AVX-512 kernels) rounds float32 differently, so there
    the comparisons below can hold only to float32 rounding."""
    experiments_main.run(CONFIGS[family](num_steps=20, **LOOP), str(tmp_path / "fresh_20"))
    legacy_20, _ = final_state(config, shutil.copytree(os.path.join(LEGACY, family), tmp_path / "legacy_20"))
    fresh_20, _ = final_state(config, tmp_path / "fresh_20")
    return trees_equal(legacy_20, fresh_20)


@pytest.mark.parametrize("family", ["vae", "gan"])
def test_a_legacy_run_resumes_exactly_where_todays_code_would_be(family, tmp_path, capsys):
    """The old run's 20 steps and today's next 20 end bit for bit where 40 steps of today's code end: the state
    layout, the keys of (seed, step) and the steps' arithmetic are unchanged.  On a CPU type other than the one
    that wrote the fixtures, the same holds to float32 rounding."""
    config = CONFIGS[family](num_steps=40, **LOOP)
    same_arithmetic = computes_as_the_fixture_machine(config, family, tmp_path)
    workdir = copy_of(family, tmp_path)
    experiments_main.run(config, str(workdir))
    assert "Resumed from the checkpoint at step 20" in capsys.readouterr().out
    straight_summary = experiments_main.run(config, str(tmp_path / "straight"))
    # The old code's own 40 uninterrupted steps (its summary.json, kept beside the run) score the same, exactly
    # (but for the IWAE bound, whose samples are now drawn per sample index: see test_metrics.py).  Every field the
    # old summary has is reproduced; fields added since (the VAE's test_mse) are new, and "units" describes them too.
    with open(os.path.join(LEGACY, family, "summary_40_steps_straight.json")) as f:
        old = json.load(f)
    compared = [k for k in old if k not in ("test_iwae_nll", "units")]
    expected = {**old, "steps": 40}
    if same_arithmetic:
        assert {k: straight_summary.get(k) for k in compared} == {k: expected[k] for k in compared}
    else:
        assert {k: straight_summary.get(k) for k in compared} == {
            k: pytest.approx(expected[k], rel=1e-5) if isinstance(expected[k], float) else expected[k] for k in compared
        }
    assert straight_summary.get("units", "").startswith(old.get("units", ""))
    (resumed, step), (straight, straight_step) = (
        final_state(config, workdir),
        final_state(config, tmp_path / "straight"),
    )
    assert step == straight_step == 40
    if same_arithmetic:
        assert trees_equal(resumed, straight)
    else:
        assert max_abs_difference(resumed, straight) <= 1e-5


def test_a_legacy_autoencoder_run_resumes(tmp_path, capsys):
    config = tiny_ae_config(num_steps=40, **LOOP)
    workdir = copy_of("ae", tmp_path)
    summary = experiments_main.run(config, str(workdir))
    assert "Resumed from the checkpoint at step 20" in capsys.readouterr().out
    assert summary["steps"] == 40


@pytest.mark.parametrize(
    "family, change, message",
    [
        ("vae", {"model__latent_dim": 3}, "latent_dim: workdir has 2, config asks for 3"),
        ("vae", {"ema_decay": 0.0}, "parameter_ema: workdir has True, config asks for False"),
        ("gan", {"loss": "hinge"}, "loss: workdir has 'non_saturating', config asks for 'hinge'"),
        ("ae", {"model__hidden": (16,)}, r"hidden: workdir has \[32\], config asks for \[16\]"),
    ],
)
def test_a_legacy_run_of_another_model_is_refused_and_unchanged(family, change, message, tmp_path):
    workdir = copy_of(family, tmp_path)
    before = snapshot(workdir)
    with pytest.raises(train.WorkdirMismatchError, match=message):
        experiments_main.run(CONFIGS[family](num_steps=40, **LOOP, **change), str(workdir))
    assert snapshot(workdir) == before


def test_a_legacy_run_loads_for_latent_work(tmp_path):
    workdir = copy_of("vae", tmp_path)
    run = trained.load_run(str(workdir))
    assert run.step == 20 and run.config.family == "vae" and run.config.model.hidden == (32,)
    state, _ = final_state(tiny_vae_config(), workdir)
    assert trees_equal(run.params, state.ema_params)
    assert run.encode(run.test_images[:3]).shape == (3, 2)
