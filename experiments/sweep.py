"""Many models in one jitted program: the product of `--sweep` values over one config.

    python -m experiments.sweep --config experiments/configs/<name>.py --workdir <dir> --sweep seed=0:8
        [--sweep beta=0.5,1,2] [--sweep optim.learning_rate=1e-3,3e-4] [--config.<key>=<value> …] [--figures]

`0:8` is 0, 1, …, 7; values are comma-separated; the `--config.*` overrides apply to every member, as in
`experiments.main`.  The members train as one state with a leading member axis (`gen_jax/sweep.py`); each member
computes what `experiments.main` computes with its own config.  <dir> receives checkpoints/ (the whole
population), members/<name>/ (each member's config.json, metrics.jsonl, summary.json; figures/ and report.md with
--figures), sweep.json (values, summaries, mean ± std per group of seeds) and report.md / index.html.  Running the
same command again resumes; mistakes in a spec are reported in one line before any compute.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import sys
import tempfile

from absl import app, flags, logging

from experiments import main as main_lib

_SWEEP = flags.DEFINE_multi_string(
    "sweep", [], "key=values: a config field and its values, e.g. seed=0:8 (0..7) or beta=0.5,1,2; repeatable."
)
_FIGURES = flags.DEFINE_bool("figures", False, "Also draw every member's figures and report page (slower).")
_IN_TURN = flags.DEFINE_bool(
    "members_in_turn",
    False,
    "Train the members one after another inside the one program (lax.map) instead of as one batched program "
    "(vmap): the same function, faster where batching loses, as convolutions on CPU do (benchmarks/README.md).",
)
_MEMBERS_DEVICES = flags.DEFINE_integer(
    "members_devices",
    0,
    "How many devices split the members (the `members` mesh axis); the rest split each member's batch (`data`). "
    "0 = as many as divide both the members and the devices.",
)


def run(
    config,
    workdir: str,
    spec_texts: list[str],
    figures: bool = False,
    members_devices: int = 0,
    num_devices: int | None = None,
    show_progress: bool = True,
    resume_step: int | None = None,
    in_turn: bool = False,
) -> dict:
    """Validates the config and the sweep, loads the data once, trains every member as one population on the first
    `num_devices` devices (all by default); returns sweep.json's content.  Every mistake (ConfigError and the other
    `main_lib.user_errors`) is raised before compute, with the workdir untouched."""
    import jax

    from gen_jax import config as config_lib
    from gen_jax import data, sharding, sweep, tasks, train

    config_lib.validate_common(config)
    family = tasks.get(config_lib.value_at(config, "family"))
    if config_lib.value_at(config, "experiment"):
        raise config_lib.ConfigError(f"config.experiment={config.experiment!r}: experiments cannot be swept")
    if config.get("fsdp", False):
        raise config_lib.ConfigError("config.fsdp: a sweep splits its members over the devices, not their arrays")
    config = config_lib.new_config(config.to_dict())
    config.write_figures = bool(figures)
    config.lock()
    specs = [sweep.parse_spec(config, text) for text in spec_texts]
    members = sweep.expand(config, specs)
    dataset = main_lib.load_data(config)
    num_devices = num_devices or jax.device_count()
    axis = members_devices or sharding.members_axis_size(len(members), num_devices)
    if len(members) % axis or num_devices % axis:
        raise config_lib.ConfigError(
            f"--members_devices={axis} must divide both the {len(members)} members and the {num_devices} devices"
        )
    if in_turn and axis > 1:
        raise config_lib.ConfigError(
            f"--members_in_turn trains the members one after another on each device; it cannot split them over "
            f"{axis} devices (--members_devices=1 keeps them together and splits each member's batch instead)"
        )
    if dataset.is_sample:
        raise config_lib.ConfigError(
            f"config.dataset: a sweep holds its training split on the device, and {dataset.name} has "
            f"{dataset.num_train:,} training images, more than the {len(dataset.train_images):,} held in memory; "
            "train its members as single runs (python -m experiments.main), which stream it"
        )
    mesh = sharding.make_mesh(num_devices, members=axis)
    for member in members:
        config_lib.validate_common(member.config)
        config_lib.validate_against_data(member.config, len(dataset.train_images), mesh.shape[sharding.DATA_AXIS])
    member_tasks = [family.make_task(member.config, dataset) for member in members]
    template = member_tasks[0]
    sweep.check_sweepable(specs, members, member_tasks, sweep.step_scalars(template, config, dataset.image_shape))
    population_task = dataclasses.replace(template, signature=sweep.signature(template, specs))
    with train.workdir_lock(workdir):  # as experiments.main: a second process in this workdir is refused
        train.prepare_workdir(workdir, config.to_dict(), population_task)
        for member, task in zip(members, member_tasks):
            train.prepare_workdir(sweep.member_dir(workdir, member), member.config.to_dict(), task)
        images = data.preprocess(dataset.train_images, config.binarization)
        summaries = train.train(
            config,
            workdir,
            population_task,
            images,
            dataset.train_labels,
            mesh=mesh,
            show_progress=show_progress,
            population=sweep.population(members, member_tasks, workdir, in_turn),
            resume_step=resume_step,
        )
        return sweep.write_results(workdir, config, specs, members, summaries)


@contextlib.contextmanager
def shared_compilations():
    """Members' evaluations are programs of the same shapes built by each member's own task: with JAX's persistent
    compilation cache on (in a temporary directory, unless the user has set one), each is compiled once and
    reused by every member, instead of once per member."""
    import jax

    if jax.config.jax_compilation_cache_dir:
        yield
        return
    directory = tempfile.mkdtemp(prefix="gen_jax_sweep_compilations_")
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    try:
        yield
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def main(argv):
    logging.set_verbosity(logging.FATAL)  # as experiments.main: every failure reaches the user as one line
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    workdir = os.path.abspath(main_lib._WORKDIR.value)
    first_step = main_lib.checkpointed_step(workdir, main_lib._RESUME_STEP.value)
    from gen_jax import preemption

    try:
        with preemption.interruptible(workdir), shared_compilations():  # SIGTERM / SIGINT: one line, 143 / 130
            results = run(
                main_lib._CONFIG.value,
                workdir,
                _SWEEP.value,
                _FIGURES.value,
                _MEMBERS_DEVICES.value,
                resume_step=main_lib._RESUME_STEP.value,
                in_turn=_IN_TURN.value,
            )
    except main_lib.user_errors() as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    if main_lib._RECORD.value and main_lib.jax_process_index() == 0:
        main_lib.write_record(
            main_lib._RECORD.value,
            sys.argv,
            main_lib._CONFIG.value,
            results,
            "experiments.sweep",
            main_lib.STARTED,
            first_step,
        )
    for group in results["groups"]:
        label = ", ".join(f"{p}={v}" for p, v in group["values"].items()) or "all"
        varied = [
            k
            for k in group["mean"]
            if group["std"][k] > 0 or k.startswith("test_") or k in ("classifier_fid", "inception_fid")
        ]
        shown = ", ".join(f"{k}={group['mean'][k]:.4g}±{group['std'][k]:.2g}" for k in varied)
        print(f"{label} ({len(group['members'])} members): {shown}")
    print(f"Sweep: {os.path.join(workdir, 'sweep.json')}  Report: {os.path.join(workdir, 'report.md')}")


if __name__ == "__main__":
    app.run(main, flags_parser=main_lib.parse_flags)
