"""gen_jax/metrics.py: split means over padded batches, and the IWAE estimate, whose chunking changes memory only."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import losses, metrics
from gen_jax.models.autoencoder import MLPDecoder, MLPEncoder
from gen_jax.models.vae import VAE


def small_vae():
    model = VAE(encoder=MLPEncoder(hidden=(8,), outputs=4), decoder=MLPDecoder(hidden=(8,), image_shape=(3, 3, 1)))
    x = (jax.random.uniform(jax.random.key(0), (5, 3, 3, 1)) > 0.5).astype(jnp.float32)
    params = model.init(jax.random.key(1), x, jax.random.key(2))["params"]
    return model, params, x


def test_chunked_iwae_equals_the_unchunked_estimate_and_the_formula():
    model, params, x = small_vae()
    key, k = jax.random.key(3), 20
    chunked = metrics.make_vae_iwae_nll(model, "bernoulli", k, 5)(params, x, key)
    whole = metrics.make_vae_iwae_nll(model, "bernoulli", k, k)(params, x, key)
    np.testing.assert_allclose(chunked, whole, rtol=1e-6)
    # The estimator written out: −log (1/k) Σᵢ p(x|zᵢ) p(zᵢ) / q(zᵢ|x), zᵢ drawn with fold_in(key, i).
    mean, log_var = model.apply({"params": params}, x, method=model.encode)
    weights = []
    for i in range(k):
        z = losses.reparameterize(jax.random.fold_in(key, i), mean, log_var)
        logits = model.apply({"params": params}, z, method=model.decode)
        weights.append(
            losses.bernoulli_log_likelihood(logits, x)
            + losses.log_normal_diag(z, 0 * z, 0 * z)
            - losses.log_normal_diag(z, mean, log_var)
        )
    expected = -(jax.nn.logsumexp(jnp.stack(weights), axis=0) - math.log(k))
    np.testing.assert_allclose(chunked, expected, rtol=1e-5)


def test_iwae_with_one_sample_is_the_one_sample_elbo():
    model, params, x = small_vae()
    key = jax.random.key(4)
    one = metrics.make_vae_iwae_nll(model, "bernoulli", 1, 1)(params, x, key)
    z_key = jax.random.fold_in(key, 0)
    mean, log_var = model.apply({"params": params}, x, method=model.encode)
    z = losses.reparameterize(z_key, mean, log_var)
    logits = model.apply({"params": params}, z, method=model.decode)
    # −[log p(x|z) + log p(z) − log q(z|x)] for the same z: the single-sample bound.
    expected = -(
        losses.bernoulli_log_likelihood(logits, x)
        + losses.log_normal_diag(z, 0 * z, 0 * z)
        - losses.log_normal_diag(z, mean, log_var)
    )
    np.testing.assert_allclose(one, expected, rtol=1e-5)


def test_split_means_drop_the_padding_of_the_last_batch():
    values = np.arange(7, dtype=np.float32)
    per_example = functools.partial(lambda x, key: {"x": x, "square": x**2})
    means = metrics.split_means(per_example, values, batch_size=3, key=jax.random.key(0))
    assert means == {"x": float(values.mean()), "square": float((values**2).mean())}


def test_map_batches_keeps_a_pytree_of_inputs_together():
    inputs = {"image": np.arange(10, dtype=np.float32), "label": np.arange(10, dtype=np.int32) * 2}
    out = metrics.map_batches(lambda batch, key: batch["image"] + batch["label"], inputs, 4, jax.random.key(0))
    np.testing.assert_array_equal(out, np.arange(10) * 3)
