"""Evaluations over a whole split: split means of per-example quantities, and the importance-weighted −log p(x).

Every evaluation walks the split in fixed-size batches (the last one padded and its padding dropped), so a
split of any size evaluates with one compiled function, and memory stays bounded: IWAE with k = 1000 samples
runs `sample_chunk` samples at a time.  Families give `split_means` the per-example function their training loss
averages, so a quantity is defined once.  Numbers are nats per example, summed over pixels, averaged over the split.

Inside `split_over_processes` (the loop's evaluations and summaries, which every process of a multi-host run makes
together), each process computes every P-th batch and the batches are gathered, so the numbers are the one-process
numbers, batch for batch.

Sample quality (Fréchet distance, classifier score, precision/recall) is at the end: pure functions of feature
arrays; `sample_quality.py` feeds them a classifier's features.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import losses

_SPLIT = [False]  # inside `split_over_processes`


@contextlib.contextmanager
def split_over_processes(enabled: bool = True):
    """While active, `map_batches` shares its batches among the processes of a multi-host run; every process must
    then make the same evaluation calls (chief-only work, such as figures, stays outside, or inside
    `split_over_processes(False)`)."""
    before, _SPLIT[0] = _SPLIT[0], enabled
    try:
        yield
    finally:
        _SPLIT[0] = before


def _own_batches(fn: Callable, batch: Callable, num_batches: int, key: jax.Array) -> list:
    """fn's outputs of every batch, as numpy trees: this process's share (batches p, p + P, …; a process short of
    batches repeats earlier ones, so every process computes as many) gathered from all `P` processes."""
    count, processes = -(-num_batches // jax.process_count()), jax.process_count()
    mine = [(jax.process_index() + j * processes) % num_batches for j in range(count)]
    outputs = [jax.tree.map(np.asarray, fn(batch(i), jax.random.fold_in(key, i))) for i in mine]
    from jax.experimental import multihost_utils

    def gather(*parts):  # as bytes, so that every dtype comes back bit for bit
        stacked = np.ascontiguousarray(np.stack(parts))
        raw = multihost_utils.process_allgather(stacked.view(np.uint8).reshape(count, -1))
        return np.asarray(raw).reshape(processes, count, -1).view(stacked.dtype).reshape(processes, *stacked.shape)

    gathered = jax.tree.map(gather, *outputs)
    return [jax.tree.map(lambda a, i=i: a[i % processes, i // processes], gathered) for i in range(num_batches)]


def map_batches(fn: Callable, inputs, batch_size: int, key: jax.Array):
    """Applies fn(x, key) over `inputs` in batches of `batch_size`, the last one padded and its padding dropped.

    Args:
      fn: (x, key) -> outputs, each output with a leading batch axis; x has the structure of `inputs`.
      inputs: an array f32[N, ...] or a pytree of arrays sharing the leading axis N.
      batch_size: examples per call (capped at N); every call sees the same shapes, so `fn` compiles once.
      key: batch i gets fold_in(key, i).

    Returns:
      fn's outputs for the N real examples, concatenated along the leading axis (numpy), in fn's structure.  Inside
      `split_over_processes` with several processes, each computes its share of the batches: the same outputs.
    """
    leaves = jax.tree.leaves(inputs)
    num_examples = len(leaves[0])
    batch_size = min(batch_size, num_examples)
    num_batches = -(-num_examples // batch_size)

    def part(array, i):
        """Rows i·b … (i+1)·b - 1 of `array`, the last batch padded with zeros (only it is copied)."""
        rows = np.asarray(array[i * batch_size : (i + 1) * batch_size])
        if len(rows) == batch_size:
            return rows
        return np.concatenate([rows, np.zeros((batch_size - len(rows), *rows.shape[1:]), rows.dtype)])

    def batch(i):
        return jax.tree.map(lambda a: part(a, i), inputs)

    if _SPLIT[0] and jax.process_count() > 1:
        outputs = _own_batches(fn, batch, num_batches, key)
    else:
        outputs = [jax.tree.map(np.asarray, fn(batch(i), jax.random.fold_in(key, i))) for i in range(num_batches)]
    return jax.tree.map(lambda *parts: np.concatenate(parts)[:num_examples], *outputs)


def split_means(per_example: Callable, inputs, batch_size: int, key: jax.Array) -> dict[str, float]:
    """Split means of per_example(x, key) -> {name: f32[b]} over `inputs` (see `map_batches`), as floats.

    The same per-example function that a family's training loss averages over a batch, averaged here over a whole
    split: evaluation and training share one definition of each quantity.
    """
    values = map_batches(per_example, inputs, batch_size, key)
    return {name: float(np.mean(value)) for name, value in values.items()}


def vae_log_weights(model, likelihood: str, variables, x: jax.Array, posterior, key: jax.Array, indices) -> jax.Array:
    """The importance log-weights log w_i = log p(x|z_i) + log p(z_i) − log q(z_i|x) of a VAE, nats.

    Sample i is z_i = reparameterize(fold_in(key, i), mean, log_var): a sample's key depends on its index alone, so
    the IWAE bound used in training (`tasks/vae.py`, objective "iwae") and the evaluation's estimate
    (`make_vae_iwae_nll`) draw the same z_i from the same key, however the samples are chunked.

    Args:
      model: a `models.vae.VAE` (encode, decode, observation_log_scale).
      likelihood: one of `losses.LIKELIHOODS`.
      variables: {"params": ...} of `model`.
      x: f32[B, H, W, C], the examples.
      posterior: (mean, log_var), each f32[B, D]: q(z|x) as `model.encode(x)` gives it.
      key: the examples' key.
      indices: i32[S], the sample indices to draw.

    Returns:
      f32[S, B]: log w_i for each sample index (rows) and example (columns).
    """
    mean, log_var = posterior
    log_scale = model.apply(variables, method=model.observation_log_scale)
    z = jax.vmap(lambda i: losses.reparameterize(jax.random.fold_in(key, i), mean, log_var))(indices)
    decoded = model.apply(variables, z.reshape(-1, z.shape[-1]), method=model.decode)
    targets = jnp.broadcast_to(x, (len(indices), *x.shape)).reshape(decoded.shape)
    log_px = losses.reconstruction_log_likelihood(likelihood, decoded, log_scale, targets)
    log_pz = losses.log_normal_diag(z, jnp.zeros_like(z), jnp.zeros_like(z))
    log_qz = losses.log_normal_diag(z, mean, log_var)
    return log_px.reshape(len(indices), -1) + log_pz - log_qz


def make_vae_iwae_nll(model, likelihood: str, num_samples: int, sample_chunk: int) -> Callable:
    """(params, x: f32[B, ...], key) -> −log p̂(x) f32[B], the IWAE estimate with `num_samples` samples, nats.

    Samples are drawn `sample_chunk` at a time (`lax.map`), so memory is O(sample_chunk · B · pixels).  Sample i
    uses the key fold_in(key, i) whatever the chunk (`vae_log_weights`), so the chunk size changes the memory, never
    the estimate.
    """
    if num_samples % sample_chunk:
        raise ValueError(f"iwae_k ({num_samples}) must be a multiple of the sample chunk ({sample_chunk})")

    @jax.jit
    def iwae_nll(params, x, key):
        variables = {"params": params}
        posterior = model.apply(variables, x, method=model.encode)
        chunks = jax.lax.map(
            lambda indices: vae_log_weights(model, likelihood, variables, x, posterior, key, indices),
            jnp.arange(num_samples).reshape(-1, sample_chunk),
        )
        all_weights = chunks.reshape(num_samples, -1)
        return -(jax.nn.logsumexp(all_weights, axis=0) - math.log(num_samples))

    return iwae_nll


@functools.cache
def sample_chunk_for(num_samples: int, limit: int = 100) -> int:
    """The largest divisor of num_samples not above `limit`: the IWAE's samples per `lax.map` step."""
    return max(d for d in range(1, min(limit, num_samples) + 1) if num_samples % d == 0)


# --- Sample quality on classifier features ----------------------------------------------------------------------
# Pure functions of feature arrays f[N, D] (a classifier's penultimate layer, see `gen_jax/sample_quality.py`),
# computed in float64 on the host: these are evaluations, not training, and the matrix square root needs the range.


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean f64[D] and covariance f64[D, D] (unbiased, N − 1) of features f[N, D]."""
    x = np.asarray(features, np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"features must be f[N, D] with N >= 2, got shape {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix (negative rounding clipped)."""
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance_from_statistics(
    mean_a: np.ndarray, cov_a: np.ndarray, mean_b: np.ndarray, cov_b: np.ndarray
) -> float:
    """Fréchet (2-Wasserstein) distance² between N(mean_a, cov_a) and N(mean_b, cov_b) (Heusel et al. 2017).

    ‖μa − μb‖² + Tr(Σa + Σb − 2 (Σa Σb)^½), with Tr (Σa Σb)^½ = Σᵢ √λᵢ(Σa^½ Σb Σa^½): the eigenvalues of a
    symmetric PSD matrix, so no complex round-off as with a general `sqrtm`.  In squared feature units.
    """
    root_a = _psd_sqrt(cov_a)
    cross = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace_sqrt = np.sum(np.sqrt(np.clip(cross, 0.0, None)))
    distance = np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_sqrt
    return float(max(distance, 0.0))


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """The Fréchet distance between Gaussians fitted to features f[Na, D] and f[Nb, D] ("FID" on any features)."""
    return frechet_distance_from_statistics(*feature_statistics(features_a), *feature_statistics(features_b))


def classifier_score(logits: np.ndarray) -> float:
    """exp(E_x KL(p(y|x) ‖ p(y))) from classifier logits f[N, K] (the Inception Score's formula, Salimans et al.
    2016, on our own classifier): 1 when every image gets the same class distribution, K at most, high when
    each image is confidently one class and all classes are used equally."""
    log_p = np.asarray(logits, np.float64)
    log_p = log_p - np.logaddexp.reduce(log_p, axis=1, keepdims=True)
    p = np.exp(log_p)
    log_marginal = np.log(np.mean(p, axis=0) + 1e-30)
    return float(np.exp(np.mean(np.sum(p * (log_p - log_marginal), axis=1))))


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """‖aᵢ − bⱼ‖² for f64[n, D] and f64[m, D]: f64[n, m] (clipped at 0 against cancellation)."""
    return np.maximum(np.sum(a**2, 1)[:, None] + np.sum(b**2, 1)[None, :] - 2.0 * a @ b.T, 0.0)


def knn_radii(features: np.ndarray, k: int, chunk: int = 1024) -> np.ndarray:
    """Squared distance from each row of f[N, D] to its k-th nearest other row: f64[N] (needs N > k)."""
    x = np.asarray(features, np.float64)
    if not 0 < k < len(x):
        raise ValueError(f"k must be in [1, N - 1] = [1, {len(x) - 1}], got {k}")
    # Column 0 of each sorted row is the point itself (distance 0), so the k-th neighbour sits at index k.
    return np.concatenate(
        [np.partition(_squared_distances(x[i : i + chunk], x), k, axis=1)[:, k] for i in range(0, len(x), chunk)]
    )


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3, chunk: int = 1024) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) of features fake f[M, D] against real f[N, D].

    Each set's manifold is the union of balls around its points reaching their k-th nearest neighbour.
    precision = fraction of fake points inside the real manifold (are samples realistic?); recall = fraction of
    real points inside the fake manifold (is the data's variety covered?).  Both in [0, 1].
    """
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    real_radii, fake_radii = knn_radii(real, k, chunk), knn_radii(fake, k, chunk)
    fake_inside = np.zeros(len(fake), bool)
    real_inside = np.zeros(len(real), bool)
    for i in range(0, len(fake), chunk):
        distances = _squared_distances(fake[i : i + chunk], real)  # [c, N], used both ways
        fake_inside[i : i + chunk] = np.any(distances <= real_radii[None, :], axis=1)
        real_inside |= np.any(distances <= fake_radii[i : i + chunk, None], axis=0)
    return float(fake_inside.mean()), float(real_inside.mean())
