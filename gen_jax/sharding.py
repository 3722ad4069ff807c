"""Where arrays live: one mesh over every device, declared once, at the jit boundary.

Data parallelism: the global batch is split along the mesh's `data` axis, parameters and optimizer state are
replicated (or, with `fsdp`, each large array is split along its biggest divisible dimension over the same
axis, FSDP-style, and XLA gathers it where a layer needs it).  The train steps and models never mention
devices: `train.py` jits the fused steps with the shardings made here.

Multi-host: `initialize_distributed` starts JAX's multi-controller runtime; every process then runs the same
program on the global mesh.  Data sets small enough to live on the accelerators are replicated, and each
process gathers only its own share of every global batch on its own devices; streamed, each process reads only the
rows of every batch its devices hold (`process_rows`).

Sweeps (`gen_jax/sweep.py`): a 2-D mesh (`members`, `data`); the stacked state's member axis is split over
`members`, and each member's batch over `data`.
"""

from __future__ import annotations

import math
import os
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"
MEMBERS_AXIS = "members"  # a sweep's population: each device group trains its share of the members


def initialize_distributed(
    coordinator_address: str | None = None, num_processes: int | None = None, process_id: int | None = None
) -> None:
    """Starts multi-process JAX.  With no arguments JAX reads its standard environment (JAX_COORDINATOR_ADDRESS,
    JAX_NUM_PROCESSES, JAX_PROCESS_ID, or what a TPU slice, SLURM or Open MPI provide).

    Args:
      coordinator_address: "host:port" of process 0's coordinator; None = from the environment.
      num_processes: how many processes take part; None = from the environment.
      process_id: this process's index in [0, num_processes); None = from the environment.
    """
    kwargs = {
        name: value
        for name, value in (
            ("coordinator_address", coordinator_address),
            ("num_processes", num_processes),
            ("process_id", process_id),
        )
        if value is not None
    }
    jax.distributed.initialize(**kwargs)


def distributed_requested(coordinator_address: str | None) -> bool:
    """Whether the command line or the environment asks for a multi-process run."""
    return bool(coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS"))


def make_mesh(num_devices: int | None = None, members: int = 0) -> Mesh:
    """A mesh over the first `num_devices` devices (all of them by default): 1-D with axis `data`, or for a sweep
    2-D with axes (`members`, `data`).

    Args:
      num_devices: how many of `jax.devices()` to use, in [1, len(jax.devices())]; None = all.
      members: 0 for a single model; for a sweep, the size of the `members` axis (it must divide the device count;
        the rest of the devices form the `data` axis).

    Returns:
      A `Mesh` of shape (num_devices,) with axis `DATA_AXIS`, or (members, num_devices // members) with axes
      (`MEMBERS_AXIS`, `DATA_AXIS`).
    """
    devices = jax.devices()
    if num_devices is not None:
        if not 0 < num_devices <= len(devices):
            raise ValueError(f"num_devices must be in [1, {len(devices)}] (the devices present), got {num_devices}")
        devices = devices[:num_devices]
    if not members:
        return Mesh(np.array(devices), (DATA_AXIS,))
    if len(devices) % members:
        raise ValueError(f"the members axis ({members}) must divide the {len(devices)} devices")
    return Mesh(np.array(devices).reshape(members, -1), (MEMBERS_AXIS, DATA_AXIS))


def members_axis_size(num_members: int, num_devices: int) -> int:
    """The largest size of the `members` mesh axis that divides both the members and the devices (their gcd)."""
    return math.gcd(num_members, num_devices)


def replicated(mesh: Mesh) -> NamedSharding:
    """Every device of `mesh` holds the whole array."""
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """The leading (batch) axis split over `data`."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def check_batch_divides(batch_size: int, mesh: Mesh) -> None:
    """Raises ValueError naming both numbers when the global batch (examples) does not split evenly over the mesh's
    `data` axis."""
    devices = mesh.shape[DATA_AXIS]
    if batch_size % devices:
        raise ValueError(
            f"the global batch ({batch_size}) does not divide over the {devices} devices of the mesh; "
            f"choose a batch size that is a multiple of {devices}"
        )


def _fsdp_spec(shape: tuple[int, ...], num_devices: int, min_size: int) -> PartitionSpec:
    """Split the largest dimension that divides by the device count; small arrays stay replicated."""
    if int(np.prod(shape, dtype=np.int64)) < min_size:
        return PartitionSpec()
    for dim in sorted(range(len(shape)), key=lambda d: -shape[d]):
        if shape[dim] % num_devices == 0:
            spec = [None] * len(shape)
            spec[dim] = DATA_AXIS
            return PartitionSpec(*spec)
    return PartitionSpec()


def state_shardings(abstract_state: Any, mesh: Mesh, fsdp: bool = False, fsdp_min_size: int = 2**14) -> Any:
    """A sharding for every leaf of the state: replicated, or FSDP-split arrays of at least `fsdp_min_size`
    elements when `fsdp` is set; on a mesh with a `members` axis (a sweep's stacked state), every leaf's leading
    (member) axis is split over it instead.

    Args:
      abstract_state: the state pytree; leaves may be arrays or ShapeDtypeStructs.
      mesh: from `make_mesh`.
      fsdp: split each large array along its largest dimension that divides by the device count.
      fsdp_min_size: arrays with fewer elements than this stay replicated.

    Returns:
      A pytree of `NamedSharding`s with the structure of `abstract_state`.
    """

    def leaf_sharding(leaf):
        if MEMBERS_AXIS in mesh.axis_names:
            return NamedSharding(mesh, PartitionSpec(MEMBERS_AXIS))
        if not fsdp:
            return replicated(mesh)
        return NamedSharding(mesh, _fsdp_spec(tuple(np.shape(leaf)), mesh.size, fsdp_min_size))

    return jax.tree_util.tree_map(leaf_sharding, abstract_state)


def process_rows(sharding: NamedSharding, shape: tuple[int, ...], axis: int = 0) -> slice:
    """The rows along `axis` of a global array of `shape` that this process's devices hold under `sharding` (from
    its `addressable_devices_indices_map`, not an assumed device order): what this process reads of a global batch.

    Raises ValueError when those rows are not one contiguous block (`jax.make_array_from_process_local_data` takes
    one block per process).
    """
    covered = sorted(
        {index[axis].indices(shape[axis])[:2] for index in sharding.addressable_devices_indices_map(shape).values()}
    )
    start, stop = covered[0][0], covered[0][1]
    for lo, hi in covered[1:]:
        if lo > stop:
            raise ValueError(f"this process's devices hold rows {covered} of axis {axis}: not one contiguous block")
        stop = max(stop, hi)
    return slice(start, stop)


def put_global(array: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """A global array with `sharding` from a host array that every process holds in full.

    Args:
      array: the whole array, the same on every process.
      sharding: where its pieces go.

    Returns:
      A `jax.Array` of `array`'s shape and dtype, each device holding its shard.
    """
    array = np.asarray(array)
    return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])


def to_local(tree: Any) -> Any:
    """A copy of `tree` on this process's first device, for evaluation and figures: replicated arrays give their
    local copy, split ones are gathered (across processes where they must be)."""
    device = jax.local_devices()[0]

    def local(leaf):
        if not isinstance(leaf, jax.Array):
            return leaf
        if leaf.is_fully_replicated:
            return jax.device_put(leaf.addressable_data(0), device)
        if leaf.is_fully_addressable:
            return jax.device_put(leaf, device)
        return jax.device_put(multihost_utils.process_allgather(leaf, tiled=True), device)

    return jax.tree_util.tree_map(local, tree)
