"""Evaluations over a whole split: VAE −ELBO and importance-weighted −log p(x).

Every evaluation walks the split in fixed-size batches (the last one padded and its padding dropped), so a
split of any size evaluates with one compiled function, and memory stays bounded: IWAE with k = 1000 samples
runs `sample_chunk` samples at a time.  Numbers are nats per example, summed over pixels, averaged over the split.
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import losses


def map_batches(fn: Callable[[jax.Array, jax.Array], jax.Array], images: np.ndarray, batch_size: int,
                key: jax.Array) -> np.ndarray:
    """Applies fn(x: f32[b, ...], key) -> f32[b, ...] over `images` in batches of `batch_size`.

    Batch i gets fold_in(key, i).  Returns the concatenated per-example results for the N real examples.
    """
    num_examples = len(images)
    batch_size = min(batch_size, num_examples)
    num_batches = -(-num_examples // batch_size)
    padded = num_batches * batch_size
    if padded != num_examples:
        pad = np.zeros((padded - num_examples, *images.shape[1:]), images.dtype)
        images = np.concatenate([np.asarray(images), pad])
    outputs = [np.asarray(fn(images[i * batch_size:(i + 1) * batch_size], jax.random.fold_in(key, i)))
               for i in range(num_batches)]
    return np.concatenate(outputs)[:num_examples]


def make_vae_neg_elbo(model, likelihood: str) -> Callable:
    """(params, x: f32[B, ...], key) -> −ELBO f32[B] from one z ~ q(z|x) and the analytic KL, nats."""

    @jax.jit
    def neg_elbo(params, x, key):
        decoded, mean, log_var, log_scale = model.apply({"params": params}, x, key)
        log_likelihood = losses.reconstruction_log_likelihood(likelihood, decoded, log_scale, x)
        return -(log_likelihood - losses.kl_to_standard_normal(mean, log_var))

    return neg_elbo


def make_vae_iwae_nll(model, likelihood: str, num_samples: int, sample_chunk: int) -> Callable:
    """(params, x: f32[B, ...], key) -> −log p̂(x) f32[B], the IWAE estimate with `num_samples` samples, nats.

    Samples are drawn `sample_chunk` at a time (`lax.map`), so memory is O(sample_chunk · B · pixels).
    """
    if num_samples % sample_chunk:
        raise ValueError(f"iwae_k ({num_samples}) must be a multiple of the sample chunk ({sample_chunk})")

    @jax.jit
    def iwae_nll(params, x, key):
        variables = {"params": params}
        mean, log_var = model.apply(variables, x, method=model.encode)
        log_scale = model.apply(variables, method=model.observation_log_scale)

        def log_weights(chunk_key):  # -> f32[sample_chunk, B]
            z = losses.reparameterize(chunk_key, jnp.broadcast_to(mean, (sample_chunk, *mean.shape)),
                                      jnp.broadcast_to(log_var, (sample_chunk, *log_var.shape)))
            decoded = model.apply(variables, z.reshape(-1, z.shape[-1]), method=model.decode)
            targets = jnp.broadcast_to(x, (sample_chunk, *x.shape)).reshape(decoded.shape)
            log_px = losses.reconstruction_log_likelihood(likelihood, decoded, log_scale, targets)
            log_pz = losses.log_normal_diag(z, jnp.zeros_like(z), jnp.zeros_like(z))
            log_qz = losses.log_normal_diag(z, mean, log_var)
            return log_px.reshape(sample_chunk, -1) + log_pz - log_qz

        chunks = jax.lax.map(log_weights, jax.random.split(key, num_samples // sample_chunk))
        all_weights = chunks.reshape(num_samples, -1)
        return -(jax.nn.logsumexp(all_weights, axis=0) - math.log(num_samples))

    return iwae_nll


@functools.lru_cache(maxsize=None)
def _sample_chunk_for(num_samples: int, limit: int = 100) -> int:
    """The largest divisor of num_samples not above `limit`."""
    return max(d for d in range(1, min(limit, num_samples) + 1) if num_samples % d == 0)


def make_vae_evaluator(model, likelihood: str, batch_size: int, iwae_k: int = 0) -> Callable:
    """Returns evaluate(params, images: f32[N, ...], key) -> {"neg_elbo"[, "iwae_nll"]}: split means, nats.

    The jitted functions are built once here, so periodic evaluations reuse one compilation.
    """
    neg_elbo = make_vae_neg_elbo(model, likelihood)
    iwae = make_vae_iwae_nll(model, likelihood, iwae_k, _sample_chunk_for(iwae_k)) if iwae_k else None

    def evaluate(params, images: np.ndarray, key: jax.Array) -> dict[str, float]:
        elbo_key, iwae_key = jax.random.split(key)
        per_example = map_batches(functools.partial(neg_elbo, params), images, batch_size, elbo_key)
        results = {"neg_elbo": float(np.mean(per_example))}
        if iwae is not None:
            # Smaller batches: each example carries iwae_k decoder passes.
            per_example = map_batches(functools.partial(iwae, params), images, max(1, batch_size // 5), iwae_key)
            results["iwae_nll"] = float(np.mean(per_example))
        return results

    return evaluate
