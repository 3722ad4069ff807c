"""A sweep's members trained as one state: each leaf of the family's state gains a leading member axis [M], each
member's swept scalars ride along (`PopulationState.hypers`), and the one loop runs the family's step vmapped over
the members (`fused.make_population_multi_step`).

Neighbours: `sweep.py` (builds a `Population` from the command line), `train.py` (the loop), `hyper.py` (how a step
reads a swept scalar).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
from flax import struct

from gen_jax import hyper, keys

if TYPE_CHECKING:
    from gen_jax.task import Task


@struct.dataclass
class PopulationState:
    """A sweep's members as one training state.

    Attributes:
      members: the family's state with a leading member axis [M] on every leaf.
      hypers: each member's swept scalars, {config path: f32[M]}, given to the step through `hyper.overriding`.
    """

    members: Any
    hypers: dict

    @property
    def step(self):
        return self.members.step


@dataclasses.dataclass(frozen=True)
class Population:
    """What the loop needs to train a sweep's M members as one state (`gen_jax/sweep.py` builds it).

    Attributes:
      names: each member's name, e.g. "seed=3,beta=0.5"; its files go to `workdirs`.
      seeds: each member's seed: its init, train, data and eval streams (`keys.loop_streams`).
      hypers: {config path: f32[M]}, the swept scalars the step reads through `hyper.value`.
      tasks: each member's own task, built from its own config: it evaluates, summarises and draws that member.
      workdirs: each member's directory (metrics.jsonl, summary.json, figures).
      in_turn: train the members one after another inside the program instead of batched
        (`fused.make_population_multi_step`).
    """

    names: tuple[str, ...]
    seeds: tuple[int, ...]
    hypers: dict
    tasks: tuple[Task, ...]
    workdirs: tuple[str, ...]
    in_turn: bool = False

    def task(self, template: Task) -> Task:
        """The task the loop trains: `template`'s steps (its `train_step` and each of its `phases`) vmapped over the
        members by the loop, each member's step traced with its own swept scalars; init from stacked keys [M]."""
        hypers = {path: jnp.asarray(values, jnp.float32) for path, values in self.hypers.items()}

        def init_state(init_keys):
            return PopulationState(members=jax.vmap(template.init_state)(init_keys), hypers=hypers)

        return dataclasses.replace(
            template,
            init_state=init_state,
            train_step=_with_hypers(template.train_step),
            phases=tuple((first, _with_hypers(step)) for first, step in template.phases),
        )

    def streams(self) -> dict[str, jax.Array]:
        """The loop's streams, each stacked over the members: {name: key[M]}."""
        each = [keys.loop_streams(seed) for seed in self.seeds]
        return {name: jnp.stack([streams[name] for streams in each]) for name in each[0]}


def _with_hypers(member_step):
    """A member's train step as a step of the `PopulationState` (one member's slice under `vmap`): the member's
    swept scalars in scope while it runs."""

    def train_step(state: PopulationState, batch, key):
        with hyper.overriding(state.hypers):
            members, metrics = member_step(state.members, batch, key)
        return state.replace(members=members), metrics

    return train_step


def member(tree: Any, index: int | None) -> Any:
    """Member `index` of a population's stacked tree (a `PopulationState` gives its members'), or `tree` itself
    for a single run (`index` None)."""
    if index is None:
        return tree
    if isinstance(tree, PopulationState):
        tree = tree.members
    return jax.tree_util.tree_map(lambda leaf: leaf[index], tree)
