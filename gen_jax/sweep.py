"""Sweeps: a population of models trained as one state, in one jitted program (`experiments/sweep.py`).

A sweep is the product of `--sweep key=values` specs over one config.  Its members differ only in their seed and
in scalars the train step reads through `hyper.value` (learning rates, Adam's b1/b2/eps, β, EMA decays, the
gradient-penalty weight, …); `train.Population` stacks them on a leading member axis and the one training loop
vmaps the fused steps over it.  A value that would change a shape or the program (a width, latent_dim, the batch
size, a loss's name) cannot be swept: `check_sweepable` refuses it before any compute, naming it (run such
variants as separate sweeps).

Files: `<workdir>/checkpoints` (the stacked state), `<workdir>/members/<name>/` (each member's config.json,
metrics.jsonl, summary.json and, with figures on, figures/ and report.md), `<workdir>/sweep.json` (the members'
values and summaries, and mean ± std per group of members that differ only in their seed) and
`<workdir>/report.md` / `index.html` (the same as tables).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from gen_jax import config as config_lib
from gen_jax import hyper, train

SEED = "seed"


@dataclasses.dataclass(frozen=True)
class Spec:
    """One `--sweep path=values`: a config field and the values its members take."""

    path: str
    values: tuple


@dataclasses.dataclass(frozen=True)
class Member:
    """One model of the sweep: its name (its directory under members/), its values and its whole config."""

    name: str
    values: dict
    config: Any


def _parse_value(path: str, text: str, current: Any) -> Any:
    """`text` as a value of the kind config.<path> holds (`current`): int, float or bool."""
    text = text.strip()
    try:
        if isinstance(current, bool):
            if text.lower() not in ("true", "false"):
                raise ValueError
            return text.lower() == "true"
        if isinstance(current, int):
            return int(text)
        if isinstance(current, float):
            return float(text)
    except ValueError:
        kind = {bool: "a boolean (true or false)", int: "an integer", float: "a number"}[type(current)]
        raise config_lib.ConfigError(f"--sweep {path}: {text!r} is not {kind} (config.{path} is {current!r})") from None
    raise config_lib.ConfigError(
        f"--sweep {path}: only numbers and booleans can be swept; config.{path} is {current!r}"
    )


def parse_spec(config, text: str) -> Spec:
    """'seed=0:8' -> seeds 0..7; 'beta=0.5,1,2' -> three values; 'optim.learning_rate=1e-3,3e-4'.

    Raises:
      ConfigError: one line naming the problem: no '=', a field the config lacks, a value of the wrong kind, an
        empty or repeated range.
    """
    path, sep, values = text.partition("=")
    path = path.strip().removeprefix("config.")
    if not sep or not path or not values.strip():
        raise config_lib.ConfigError(f"--sweep {text!r}: expected key=values, e.g. seed=0:8 or beta=0.5,1,2")
    current = config_lib.value_at(config, path)
    if ":" in values:
        if not isinstance(current, int) or isinstance(current, bool):
            raise config_lib.ConfigError(f"--sweep {text!r}: a range start:stop is for integer fields only")
        start, _, stop = values.partition(":")
        start, stop = _parse_value(path, start, current), _parse_value(path, stop, current)
        parsed = tuple(range(start, stop))
        if not parsed:
            raise config_lib.ConfigError(f"--sweep {text!r}: the range {start}:{stop} is empty (stop is exclusive)")
    else:
        parsed = tuple(_parse_value(path, value, current) for value in values.split(","))
    if len(set(parsed)) != len(parsed):
        raise config_lib.ConfigError(f"--sweep {text!r}: a value is repeated")
    return Spec(path, parsed)


def expand(config, specs: Sequence[Spec]) -> list[Member]:
    """The product of the specs' values, in order (the last spec varies fastest): one member each.

    Raises:
      ConfigError: no spec, or one field swept twice.
    """
    if not specs:
        raise config_lib.ConfigError("no --sweep given: e.g. --sweep seed=0:8")
    paths = [spec.path for spec in specs]
    if len(set(paths)) != len(paths):
        raise config_lib.ConfigError(f"--sweep: a field is swept twice ({', '.join(paths)})")
    members = []
    for values in itertools.product(*(spec.values for spec in specs)):
        member_config = config_lib.new_config(config.to_dict())
        chosen = dict(zip(paths, values))
        for path, value in chosen.items():
            config_lib.set_at(member_config, path, value)
        name = "_".join(f"{path}={value}" for path, value in chosen.items())
        members.append(Member(name=name, values=chosen, config=member_config.lock()))
    return members


def abstract_batch(config, image_shape: tuple[int, ...]) -> dict:
    """The shapes of one training batch, for tracing a step without data."""
    return {
        "image": jax.ShapeDtypeStruct((config.batch_size, *image_shape), np.float32),
        "label": jax.ShapeDtypeStruct((config.batch_size,), np.int32),
    }


def step_scalars(task: train.Task, config, image_shape: tuple[int, ...]) -> set[str]:
    """The config paths `task`'s train step reads through `hyper.value`: what a sweep can vary (besides the seed).

    Found by tracing the step once on abstract values (nothing is computed or compiled).
    """
    state = jax.eval_shape(task.init_state, jax.random.key(0))
    with hyper.overriding({}) as asked:
        jax.eval_shape(task.train_step, state, abstract_batch(config, image_shape), jax.random.key(0))
    return set(asked)


def check_sweepable(specs: Sequence[Spec], members: Sequence[Member], tasks: Sequence[train.Task], scalars: set[str]):
    """Refuses (ConfigError, one line naming the field) a sweep whose members could not share one program: a swept
    field the step does not read as a scalar, or members whose models or states differ in shape."""
    for spec in specs:
        if spec.path != SEED and spec.path not in scalars:
            allowed = ", ".join(sorted({SEED, *scalars}))
            raise config_lib.ConfigError(
                f"--sweep {spec.path}: only values the train step reads as scalars can be swept in one program "
                f"(this family: {allowed}); config.{spec.path} changes the model, its shapes or the loop — run "
                "each value as its own sweep"
            )
    reference = (config_lib.plain(tasks[0].signature), _layout(tasks[0]))
    for member, task in zip(members[1:], tasks[1:]):
        if (config_lib.plain(task.signature), _layout(task)) != reference:
            raise config_lib.ConfigError(
                f"--sweep: member {member.name} has another model or state layout than {members[0].name} "
                f"(its values {member.values} change the model); run those values as separate sweeps"
            )


def _layout(task: train.Task) -> list[tuple[str, tuple, str]]:
    """Every array of the task's state at init: (path, shape, dtype), computed abstractly."""
    state = jax.eval_shape(task.init_state, jax.random.key(0))
    leaves = jax.tree_util.tree_flatten_with_path(state)[0]
    return [(jax.tree_util.keystr(path), tuple(leaf.shape), str(leaf.dtype)) for path, leaf in leaves]


def population(
    members: Sequence[Member], tasks: Sequence[train.Task], workdir: str, in_turn: bool = False
) -> train.Population:
    """The loop's description of the members: seeds, swept scalars (f32[M] per path), tasks and directories, and
    whether they train in turn (`train.make_population_multi_step`)."""
    swept = [path for path in members[0].values if path != SEED]
    return train.Population(
        names=tuple(member.name for member in members),
        seeds=tuple(int(member.config.seed) for member in members),
        hypers={path: np.array([member.values[path] for member in members], np.float32) for path in swept},
        tasks=tuple(tasks),
        workdirs=tuple(member_dir(workdir, member) for member in members),
        in_turn=in_turn,
    )


def member_dir(workdir: str, member: Member) -> str:
    return os.path.join(workdir, "members", member.name)


def signature(template: train.Task, specs: Sequence[Spec]) -> dict:
    """What a sweep's checkpoint must agree with to be resumed: the model's signature and the sweep itself."""
    return {**template.signature, "sweep": {spec.path: list(spec.values) for spec in specs}}


def _numeric(summary: dict) -> dict[str, float]:
    return {
        key: float(value)
        for key, value in summary.items()
        if isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
    }


def groups(members: Sequence[Member], summaries: dict[str, dict]) -> list[dict]:
    """Members that differ only in their seed, with mean and standard deviation (ddof 1; 0 for one member) of
    every numeric summary value over them: [{values, members, mean, std}]."""
    grouped: dict[str, list[Member]] = {}
    for member in members:
        key = json.dumps({path: value for path, value in member.values.items() if path != SEED}, sort_keys=True)
        grouped.setdefault(key, []).append(member)
    result = []
    for key, group in grouped.items():
        numbers = [_numeric(summaries[member.name]) for member in group]
        names = sorted(set.intersection(*(set(n) for n in numbers))) if numbers else []
        table = {name: np.array([n[name] for n in numbers]) for name in names}
        result.append(
            {
                "values": json.loads(key),
                "members": [member.name for member in group],
                "mean": {name: float(np.mean(v)) for name, v in table.items()},
                "std": {name: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for name, v in table.items()},
            }
        )
    return result


def write_results(workdir: str, config, specs: Sequence[Spec], members: Sequence[Member], summaries: dict) -> dict:
    """Writes `<workdir>/sweep.json` and the report (tables of members and groups); returns sweep.json's content."""
    from gen_jax import report

    results = {
        "name": config.get("name", config.family),
        "family": config.family,
        "sweep": {spec.path: list(spec.values) for spec in specs},
        "members": [
            {"name": member.name, "values": member.values, "summary": summaries[member.name]} for member in members
        ],
        "groups": groups(members, summaries),
    }
    train.write_json(os.path.join(workdir, "sweep.json"), results)
    keys = sorted(set.union(*(set(_numeric(summaries[m.name])) for m in members)) - {"steps"})
    member_rows = [[m.name, *(_numeric(summaries[m.name]).get(k, "") for k in keys)] for m in members]
    group_rows = [
        [
            ", ".join(f"{p}={v}" for p, v in g["values"].items()) or "all",
            len(g["members"]),
            *(f"{g['mean'][k]:.4g} ± {g['std'][k]:.2g}" if k in g["mean"] else "" for k in keys),
        ]
        for g in results["groups"]
    ]
    report.write_tables(
        workdir,
        f"Sweep — {results['name']} ({len(members)} members)",
        [
            ("Groups: mean ± standard deviation over seeds", ["group", "members", *keys], group_rows),
            ("Members", ["member", *keys], member_rows),
        ],
    )
    return results
