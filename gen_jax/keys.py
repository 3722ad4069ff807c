"""Every random stream of a run, derived from its one seed: the table of tags lives here and nowhere else.

A stream is `fold_in(key(seed), tag)`.  The loop then takes per-step keys `fold_in(stream("train"), step)` and
splits them inside the step, so any step is reproducible from (seed, step) alone.  Tags are fixed numbers:
changing one changes every result drawn from that stream.
"""

from __future__ import annotations

import jax

TAGS = {
    "init": 0,  # parameters at step 0
    "train": 1,  # per-step noise (z draws, dropout, dynamic binarisation)
    "data": 2,  # the epoch permutations of the training split
    "eval": 3,  # periodic and final evaluations
    "test_binarization": 10_000,  # the one Bernoulli draw of a dynamically binarised test split
    "gan_snapshot": 30_001,  # the GAN's fixed noise batch, drawn at every evaluation
    "gan_figures": 30_002,
    "gan_score": 30_003,  # the final sample-quality samples
    "gan_eval": 30_004,  # folded into the eval key for the periodic scores
    "gan_statistics": 30_005,  # the batches that recompute the EMA generator's BatchNorm statistics
}

# Not a tag: the sample-quality reference and floor images are drawn from a seed of their own, the same for every
# run, so every model of a data set is scored against the same images.
REFERENCE_SEED = 20_000


def stream(seed: int, name: str) -> jax.Array:
    """The typed key of stream `name` (a key of TAGS) of a run with `seed`."""
    return jax.random.fold_in(jax.random.key(seed), TAGS[name])


def loop_streams(seed: int) -> dict[str, jax.Array]:
    """The keys the training loop uses: init, train, data and eval."""
    return {name: stream(seed, name) for name in ("init", "train", "data", "eval")}
