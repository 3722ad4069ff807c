"""Run in a subprocess by test_sharding.py, with XLA_FLAGS forcing 8 host devices (jax must see them at import).

For each model family: trains a tiny config on a 1-device mesh and on the 8-device mesh and compares the final
parameters and logged metrics; then resumes a checkpoint written on 8 devices on 1 device.  Prints one JSON line.
"""

import importlib
import json
import os
import shutil
import sys

import jax
import numpy as np
from absl import logging

from gen_jax import checkpoint, config as config_lib, data, sharding, train

logging.set_verbosity(logging.WARNING)


def tiny_config(name: str):
    config = importlib.import_module(f"experiments.configs.{name}").get_config()
    overrides = dict(num_steps=12, log_every=4, eval_every=12, checkpoint_every=4, keep_checkpoints=5,
                     batch_size=32, eval_batch_size=200, write_figures=False)
    for key, value in overrides.items():
        setattr(config, key, value)
    for key, value in {"hidden": (32,), "latent_dim": 2, "iwae_k": 0, "generator_hidden": (32,),
                       "discriminator_hidden": (32,), "num_quality_samples": 0}.items():
        if key in config:
            setattr(config, key, value)
    if "sample_quality" in config:
        config.sample_quality = False
    return config


def families():
    from gen_jax.tasks import vae
    found = {"vae": ("vae_digits", vae.make_task)}
    for family, config_name in (("ae", "ae_digits"), ("gan", "gan_digits")):
        try:
            module = importlib.import_module(f"gen_jax.tasks.{family}")
            importlib.import_module(f"experiments.configs.{config_name}")
        except ImportError:
            continue
        found[family] = (config_name, module.make_task)
    return found


def run(config, make_task, dataset, workdir, mesh):
    task = make_task(config, dataset)
    train.prepare_workdir(workdir, config.to_dict(), task)
    images = data.preprocess(dataset.train_images, config.get("binarization", "none"))
    train.train(config, workdir, task, images, dataset.train_labels, mesh=mesh, show_progress=False)
    state, step = checkpoint.restore_latest(os.path.join(workdir, "checkpoints"),
                                            train.init_sharded_state(task, jax.random.key(0), mesh)[0])
    metrics = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    train_metrics = {k: v for r in metrics for k, v in r.items() if k.startswith("train/") and "per_sec" not in k}
    return jax.tree_util.tree_map(np.asarray, sharding.to_local(state)), step, train_metrics


def max_difference(a, b):
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
               for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


def main(root):
    assert jax.device_count() == 8, jax.devices()
    dataset = data.load_dataset("digits")
    one, eight = sharding.make_mesh(1), sharding.make_mesh(8)
    report = {}
    for family, (config_name, make_task) in families().items():
        config = tiny_config(config_name)
        single = run(config, make_task, dataset, f"{root}/{family}_1", one)
        multi = run(config, make_task, dataset, f"{root}/{family}_8", eight)
        # Resume on 1 device from the 8-device run's checkpoint at step 8 (as if it had stopped there).
        resumed_dir = f"{root}/{family}_8to1"
        shutil.copytree(f"{root}/{family}_8", resumed_dir)
        shutil.rmtree(f"{resumed_dir}/checkpoints/12")
        resumed = run(config, make_task, dataset, resumed_dir, one)
        report[family] = {
            "steps": [single[1], multi[1], resumed[1]],
            "param_diff_1_vs_8": max_difference(single[0].params if hasattr(single[0], "params") else single[0],
                                                multi[0].params if hasattr(multi[0], "params") else multi[0]),
            "state_diff_1_vs_8": max_difference(single[0], multi[0]),
            "state_diff_1_vs_8to1": max_difference(single[0], resumed[0]),
            "metric_diff_1_vs_8": max(abs(single[2][k] - multi[2][k]) / max(1.0, abs(single[2][k]))
                                      for k in single[2]),
            "metric_names": sorted(single[2]),
        }
    # FSDP: large arrays split over the 8 devices, same function as replicated on 1.
    from gen_jax.tasks import vae
    wide = tiny_config("vae_digits")
    wide.hidden = (512,)
    single = run(wide, vae.make_task, dataset, f"{root}/fsdp_1", one)
    wide.fsdp = True
    split = run(wide, vae.make_task, dataset, f"{root}/fsdp_8", eight)
    task = vae.make_task(wide, dataset)
    _, shardings = train.init_sharded_state(task, jax.random.key(0), eight, fsdp=True)
    report["fsdp"] = {
        "steps": [single[1], split[1], split[1]],
        "state_diff_1_vs_8": max_difference(single[0], split[0]),
        "state_diff_1_vs_8to1": 0.0,
        "metric_diff_1_vs_8": max(abs(single[2][k] - split[2][k]) / max(1.0, abs(single[2][k])) for k in single[2]),
        "split_arrays": sum(1 for s in jax.tree_util.tree_leaves(shardings) if not s.is_fully_replicated),
    }
    try:
        bad = tiny_config("vae_digits")
        bad.batch_size = 30
        config_lib.validate_against_data(bad, len(dataset.train_images), jax.device_count())
        report["indivisible_error"] = None
    except config_lib.ConfigError as error:
        report["indivisible_error"] = str(error)
    print("RESULT " + json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
