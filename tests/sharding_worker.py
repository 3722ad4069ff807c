"""Run in a subprocess by test_sharding.py, with XLA_FLAGS forcing 8 host devices (jax must see them at import).

For each model family (VAE, AE, GAN; none may be missing): trains a tiny config on a 1-device mesh and on the
8-device mesh and compares the final states and logged metrics; then resumes the 8-device run from its checkpoint
at step 8 on 1 device (the VAE also on 2).  The VAE with FSDP: 1 vs 8 devices, and its sharded checkpoint resumed on
2.  Sweeps (`experiments.sweep`): 8 members over 8 devices and 4 members × 2-way data parallelism, against 1
device.  `python tests/sharding_worker.py <root> <part> ...` runs the parts named (PARTS) and prints one JSON line.
"""

import functools
import json
import os
import shutil
import sys

import jax
import numpy as np
from absl import logging

from gen_jax import checkpoint, data, sharding, tasks, train
from gen_jax import config as config_lib

from conftest import max_abs_difference, read_jsonl, tiny_ae_config, tiny_gan_config, tiny_vae_config

logging.set_verbosity(logging.WARNING)

LOOP = dict(
    num_steps=12,
    log_every=4,
    eval_every=12,
    checkpoint_every=4,
    keep_checkpoints=5,
    batch_size=32,
    eval_batch_size=200,
    write_figures=False,
)
CONFIGS = {
    "vae": lambda **o: tiny_vae_config(**{"iwae_k": 0, **LOOP, **o}),
    "ae": lambda **o: tiny_ae_config(**{**LOOP, **o}),
    "gan": lambda **o: tiny_gan_config(**{**LOOP, **o}),
}


def run(config, dataset, workdir, mesh):
    """Trains (or resumes) in `workdir` on `mesh`: (final state as numpy, its step, the step resumed from, train
    metrics by name)."""
    task = tasks.get(config.family).make_task(config, dataset)
    manager = checkpoint.make_manager(os.path.join(workdir, "checkpoints")) if os.path.isdir(workdir) else None
    resumed_from = manager.latest_step() if manager is not None else None
    train.prepare_workdir(workdir, config.to_dict(), task)
    images = data.preprocess(dataset.train_images, config.binarization)
    train.train(config, workdir, task, images, dataset.train_labels, mesh=mesh, show_progress=False)
    state, step = checkpoint.restore_latest(
        os.path.join(workdir, "checkpoints"), train.init_sharded_state(task, jax.random.key(0), mesh)[0]
    )
    metrics = read_jsonl(os.path.join(workdir, "metrics.jsonl"))
    train_metrics = {k: v for r in metrics for k, v in r.items() if k.startswith("train/") and "per_sec" not in k}
    return jax.tree.map(np.asarray, sharding.to_local(state)), step, resumed_from, train_metrics


def resume_from_step_8(config, dataset, source, target, mesh):
    """The run in `source` as if it had stopped at its checkpoint at step 8, resumed in `target` on `mesh`."""
    shutil.copytree(source, target)
    shutil.rmtree(f"{target}/checkpoints/12")
    return run(config, dataset, target, mesh)


def metric_difference(a, b):
    assert sorted(a) == sorted(b) and a, (sorted(a), sorted(b))
    return max(abs(a[k] - b[k]) / max(1.0, abs(a[k])) for k in a)


def compare(single, multi, *resumed):
    """The numbers test_sharding.py checks: 1 vs 8 devices, and each resumed run (on 1 device, then 2) vs 1."""
    return {
        "steps": [single[1], multi[1], *(r[1] for r in resumed)],
        "resumed_from": [r[2] for r in resumed],
        "param_diff_1_vs_8": max_abs_difference(
            getattr(single[0], "params", getattr(single[0], "g_params", None)),
            getattr(multi[0], "params", getattr(multi[0], "g_params", None)),
        ),
        "state_diff_1_vs_8": max_abs_difference(single[0], multi[0]),
        "state_diff_1_vs_resumed": max(max_abs_difference(single[0], r[0]) for r in resumed),
        "metric_diff_1_vs_8": metric_difference(single[3], multi[3]),
        "metric_names": sorted(single[3]),
    }


def family(name, root, dataset):
    """`name`'s tiny config on 1 and 8 devices, and the 8-device run resumed from step 8 on 1 (the VAE also on 2)."""
    one, two, eight = sharding.make_mesh(1), sharding.make_mesh(2), sharding.make_mesh(8)
    config = CONFIGS[name]()
    single = run(config, dataset, f"{root}/{name}_1", one)
    multi = run(config, dataset, f"{root}/{name}_8", eight)
    resumed = [resume_from_step_8(config, dataset, f"{root}/{name}_8", f"{root}/{name}_8to1", one)]
    if name == "vae":  # and on 2 devices (the other families' states restore through the same code)
        resumed.append(resume_from_step_8(config, dataset, f"{root}/{name}_8", f"{root}/{name}_8to2", two))
    return compare(single, multi, *resumed)


def fsdp(root, dataset):
    """FSDP: large arrays split over the devices, the same function as replicated on 1; resumed on 2."""
    one, two, eight = sharding.make_mesh(1), sharding.make_mesh(2), sharding.make_mesh(8)
    wide = CONFIGS["vae"](model__hidden=(512,))
    single = run(wide, dataset, f"{root}/fsdp_1", one)
    wide.fsdp = True
    split = run(wide, dataset, f"{root}/fsdp_8", eight)
    to_two = resume_from_step_8(wide, dataset, f"{root}/fsdp_8", f"{root}/fsdp_8to2", two)
    report = compare(single, split, to_two)
    task = tasks.get("vae").make_task(wide, dataset)
    _, shardings = train.init_sharded_state(task, jax.random.key(0), eight, fsdp=True)
    report["split_arrays"] = sum(1 for s in jax.tree.leaves(shardings) if not s.is_fully_replicated)
    return report


def sweep(root, dataset):
    """Sweeps: 8 members split over the 8 devices, and 4 members over 4 × each batch over 2, against 1 device."""
    from experiments import sweep as experiments_sweep

    report = {}
    for label, specs, members_devices in (("8x1", ["seed=0:8"], 8), ("4x2", ["seed=0:2", "beta=0.5,2"], 4)):
        states = []
        for devices in (1, 8):
            workdir = f"{root}/sweep_{label}_{devices}"
            experiments_sweep.run(
                CONFIGS["vae"](),
                workdir,
                specs,
                members_devices=members_devices if devices == 8 else 1,
                num_devices=devices,
                show_progress=False,
            )
            manager = checkpoint.make_manager(os.path.join(workdir, "checkpoints"), read_only=True)
            states.append((manager.latest_step(), jax.tree.map(np.asarray, manager.restore(manager.latest_step()))))
        mesh = sharding.make_mesh(8, members=members_devices)
        report[label] = {
            "steps": [step for step, _ in states],
            "members": int(jax.tree.leaves(states[0][1]["members"])[0].shape[0]),
            "mesh": dict(mesh.shape),
            "param_diff_1_vs_8": max_abs_difference(states[0][1], states[1][1]),
        }
    return report


def indivisible_error(root, dataset):
    """The one-line errors (None where there is none) for a batch that does not divide over the 8 devices, and for
    members trained in turn but split over devices; the second leaves its workdir absent."""
    from experiments import sweep as experiments_sweep

    errors = {}
    bad = CONFIGS["vae"](batch_size=30)
    try:
        config_lib.validate_against_data(bad, len(dataset.train_images), jax.device_count())
        errors["batch"] = None
    except config_lib.ConfigError as error:
        errors["batch"] = str(error)
    workdir = f"{root}/in_turn_split"
    try:
        experiments_sweep.run(
            CONFIGS["vae"](), workdir, ["seed=0:8"], members_devices=8, show_progress=False, in_turn=True
        )
        errors["in_turn"] = None
    except config_lib.ConfigError as error:
        errors["in_turn"] = None if os.path.exists(workdir) else str(error)
    return errors


PARTS = {
    **{name: functools.partial(family, name) for name in CONFIGS},
    "fsdp": fsdp,
    "sweep": sweep,
    "indivisible_error": indivisible_error,
}


def main(root, names):
    """Runs the parts `names` (keys of PARTS; test_sharding.py runs them in several processes at once)."""
    assert jax.device_count() == 8, jax.devices()
    dataset = data.load_dataset("digits")
    report = {name: PARTS[name](root, dataset) for name in names}
    print("RESULT " + json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
