"""The program the loop runs: K steps fused into one jitted `lax.scan` over data on the device (or over the chunk's
batches streamed from the host), for one model or a sweep's population, and the plan of how many steps each call
runs.

Any step is a pure function of (seed, step): its key is fold_in(train_key, step) and its batch comes from the epoch
permutation of (data_key, epoch), so the split of a run into calls does not change its result.  Neighbours:
`train.py` (the loop), `population.py` (a sweep as one state), `sharding.py` (the shardings declared here).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import jax

from gen_jax import data, sharding

Metrics = dict[str, jax.Array]
TrainStep = Callable[[Any, dict, jax.Array], tuple[Any, Metrics]]


def make_multi_step(train_step: TrainStep, batch_size: int, batch_sharding=None, streamed: bool = False) -> Callable:
    """Builds run(state, images, labels, train_key, data_key, num_steps) -> (state, metrics stacked [num_steps]).

    Runs `num_steps` steps inside one `lax.scan`; the step's key is fold_in(train_key, step).  On the device
    (`streamed` False) `images` f32[N, H, W, C] or `data.Pixels` (u8 codes [N, H, W, C] and their table) and
    `labels` i32[N] are the whole split, and each step's batch comes from the epoch permutation of (data_key, epoch),
    computing only its own indices (`data.batch_indices`, O(batch_size)).  `streamed`: `images` (f32 or `Pixels`
    codes) [num_steps, batch_size, H, W, C] and `labels` i32[num_steps, batch_size] are the chunk's own batches, in
    order, read by the host in the same batch order (`data.stream`); data_key is then unused.  Either way a step is
    reproducible from (seed, step) alone and the split into calls does not change the result.
    """

    def run(state, images, labels, train_key, data_key, num_steps):
        def one_step(state, batch):
            step = state.step
            if streamed:
                codes, label = batch
                image = data.decode_pixels(
                    data.Pixels(codes, images.table) if isinstance(images, data.Pixels) else codes
                )
                if batch_sharding is not None:
                    image, label = jax.lax.with_sharding_constraint((image, label), batch_sharding)
            else:
                image, label = data.get_batch(images, labels, data_key, step, batch_size, batch_sharding)
            return train_step(state, {"image": image, "label": label}, jax.random.fold_in(train_key, step))

        if not streamed:
            return jax.lax.scan(one_step, state, None, length=num_steps)
        codes = images.codes if isinstance(images, data.Pixels) else images
        return jax.lax.scan(one_step, state, (codes, labels), length=num_steps)

    return run


def make_population_multi_step(
    train_step: TrainStep, batch_size: int, batch_sharding=None, spmd_axis=None, in_turn: bool = False
):
    """`make_multi_step` for a sweep's population: run(state, images, labels, train_keys, data_keys, num_steps)
    with a leading member axis [M] on the state, the keys and the metrics ([M, num_steps]).

    The whole fused loop is `jax.vmap`ped: member m takes its own batches (from data_keys[m]) and keys (from
    train_keys[m]); the data set is shared.  `spmd_axis` names the mesh axis the member axis is split over.  With
    `in_turn` the members' loops run one after another inside the same program (`lax.map`) instead of as one
    batched loop: the same function, for devices on which the batched form is slower than M single models (XLA:CPU's
    batched convolutions; benchmarks/README.md).
    """
    run = make_multi_step(train_step, batch_size, batch_sharding)

    def population_run(state, images, labels, train_keys, data_keys, num_steps):
        member = lambda state, train_key, data_key: run(state, images, labels, train_key, data_key, num_steps)
        if in_turn:
            return jax.lax.map(lambda args: member(*args), (state, train_keys, data_keys))
        return jax.vmap(member, spmd_axis_name=spmd_axis)(state, train_keys, data_keys)

    return population_run


def jit_multi_step(
    train_step: TrainStep,
    batch_size: int,
    mesh=None,
    state_sharding=None,
    population: bool = False,
    compiler_options: dict[str, str] | None = None,
    in_turn: bool = False,
    streamed: bool = False,
) -> Callable:
    """`make_multi_step` (or, with `population`, `make_population_multi_step`) jitted as the loop runs it:
    num_steps static, the state's buffers donated, XLA given `compiler_options` (`config_lib.compiler_options`).

    With a `mesh`, the shardings are declared here: the state as `state_sharding` (replicated by default), data
    and keys replicated, every batch split over the mesh's `data` axis (and a population's members over its
    `members` axis, where it has one), metrics returned replicated.  `streamed` (one model only): the program takes
    each chunk's batches (`make_multi_step`), placed by the caller (`data.stream.Feed`: batches split over `data`).
    """
    if population:
        spmd_axis = sharding.MEMBERS_AXIS if mesh is not None and sharding.MEMBERS_AXIS in mesh.axis_names else None
        batch_sharding = None if mesh is None else sharding.batch_sharding(mesh)
        fused = make_population_multi_step(train_step, batch_size, batch_sharding, spmd_axis, in_turn)
    else:
        batch_sharding = None if mesh is None else sharding.batch_sharding(mesh)
        fused = make_multi_step(train_step, batch_size, batch_sharding, streamed)
    if mesh is None:
        return jax.jit(fused, static_argnums=5, donate_argnums=0, compiler_options=compiler_options)
    replicated = sharding.replicated(mesh)
    state_sharding = replicated if state_sharding is None else state_sharding
    data_sharding = None if streamed else replicated  # streamed: as the feed placed them
    return jax.jit(
        fused,
        in_shardings=(state_sharding, data_sharding, data_sharding, replicated, replicated),
        out_shardings=(state_sharding, replicated),
        static_argnums=5,
        donate_argnums=0,
        compiler_options=compiler_options,
    )


def chunk_length(cadences: tuple[int, ...]) -> int:
    """The steps of one call: the greatest common divisor of the positive cadences (log, eval, checkpoint), so
    every cadence's steps are chunk boundaries; 0 when there is none (one call runs to the end).

    Why the gcd and not the nearest cadence: chunks cut at whichever cadence comes next take as many lengths as the
    cadences' remainders (each one a compilation); on the gcd's grid a run compiles at most two, the gcd and the
    remainder before `num_steps`.  Every shipped config has cadences that are multiples of log_every, where the
    chunk is log_every long as before.
    """
    return math.gcd(*(every for every in cadences if every > 0))


def next_boundary(step: int, num_steps: int, cadences: tuple[int, ...], switches: tuple[int, ...] = ()) -> int:
    """The first step after `step` at which the loop must stop: the next multiple of `chunk_length(cadences)`, the
    next of `switches` (the steps where a task changes its train step, `Task.phases`), or `num_steps`."""
    every = chunk_length(cadences)
    candidates = [num_steps, *(switch for switch in switches if switch > step)]
    if every:
        candidates.append((step // every + 1) * every)
    return min(candidates)


def chunks(start: int, num_steps: int, cadences: tuple[int, ...], switches: tuple[int, ...] = ()) -> Iterator[tuple]:
    """The calls that train from step `start` to `num_steps`: (first step, end step) each, in order.

    Their lengths: the chunk length, the remainder before `num_steps`, and where `start` or a switch is off the
    chunk grid (a resume from an off-grid checkpoint; a phase switch that is not a multiple of the chunk length)
    the pieces either side of it.
    """
    step = start
    while step < num_steps:
        end = next_boundary(step, num_steps, cadences, switches)
        yield step, end
        step = end
