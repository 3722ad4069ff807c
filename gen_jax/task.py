"""What a model family gives the training loop: a `Task`.

Families build one in their `make_task(config, dataset)` (`gen_jax/tasks/`); `train.train` runs it.  Importable as
`gen_jax.train.Task` too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax

from gen_jax.fused import TrainStep


@dataclasses.dataclass(frozen=True)
class Task:
    """What differs between model families; everything else is the loop's.

    Attributes:
      name: the family, e.g. "vae"; recorded with the checkpoints.
      signature: what a checkpoint must agree with to be resumed (`config.signature`: the family, config.model,
        the image shape and facts about the state's structure); written to model.json.
      init_state: init key -> state pytree with an int32 `step` field.
      train_step: (state, batch, key) -> (state, metrics of scalars); `batch` = {"image", "label"}.
      evaluate: (state, key) -> {name: float}, run every `eval_every` steps on the test split.
      summarize: (state, key) -> the final evaluation written to summary.json.
      make_figures: (state, key, workdir) -> [(path relative to workdir, caption)].
      loss_name: the metric watched for NaN/Inf and shown in the progress bar.
      snapshot: optional (state, step, workdir) -> None, called by process 0 after each evaluation (e.g. a
        sample grid from a fixed noise batch, for watching a GAN train).
      codec: for families with a latent code, state -> (encode, decode), the shared contract:
        encode(images f32[B, H, W, C], labels i32[B] | None = None) -> codes f32[B, D] (AE: the code;
        VAE/cVAE/AAE: the posterior mean or code; VQ-VAE: the encoder's continuous output before quantisation,
        flattened); `encode` is None for a family with no encoder (GAN).
        decode(codes f32[B, D], labels i32[B] | None = None) -> images f32[B, H, W, C] in [0, 1] (VQ-VAE quantises
        first; GAN: the (EMA) generator from its noise vector).  Conditional families (cVAE, conditional GAN)
        need `labels` and raise ValueError without them; unconditional ones ignore them.  Both are traceable JAX
        functions of their array arguments (jnp only, no NumPy conversion inside), so they can be jitted and
        exported (`experiments/export.py`).  Used by `gen_jax/trained.py` for work on trained runs (latent
        edits, embeddings, `experiments/explore.py`).
      phases: optional ((first step, train step), …), first steps increasing from 0: the steps from each first step
        to the next are trained by its train step, chosen on the host.  Each phase compiles its own program and
        each first step is a chunk boundary, so a family with stages (the VQ-VAE) never runs a batched `lax.cond`
        in a sweep's vmap.  Together they compute what `train_step` computes, which stays valid at every step for
        the tools that trace one step (sweep.step_scalars, benchmarks).
    """

    name: str
    signature: dict
    init_state: Callable[[jax.Array], Any]
    train_step: TrainStep
    evaluate: Callable[[Any, jax.Array], dict]
    summarize: Callable[[Any, jax.Array], dict]
    make_figures: Callable[[Any, jax.Array, str], list[tuple[str, str]]]
    loss_name: str = "loss"
    snapshot: Callable[[Any, int, str], None] | None = None
    codec: Callable[[Any], tuple[Callable, Callable]] | None = None
    phases: tuple[tuple[int, TrainStep], ...] = ()

    def phase_at(self, step: int) -> tuple[int, TrainStep]:
        """(index, train step) of the phase that trains `step`; (0, `train_step`) for a task without phases."""
        if not self.phases:
            return 0, self.train_step
        index = sum(first <= step for first, _ in self.phases[1:])
        return index, self.phases[index][1]

    def switches(self) -> tuple[int, ...]:
        """The steps at which the train step changes (the first steps of the phases after the first)."""
        return tuple(first for first, _ in self.phases[1:])
