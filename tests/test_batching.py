"""Specifications for gen_jax/data/batching.py: binarisation, and batches drawn from (key, step)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from gen_jax import data

# --- preprocessing -------------------------------------------------------------------------------------


def test_preprocess_modes():
    images = np.array([0.0, 0.2, 0.5, 0.51, 1.0], np.float32).reshape(1, 5, 1, 1)
    np.testing.assert_array_equal(data.preprocess(images, "none"), images)
    np.testing.assert_array_equal(data.preprocess(images, "dynamic"), images)
    static = data.preprocess(images, "static")
    assert static.dtype == np.float32
    np.testing.assert_array_equal(static.ravel(), [0, 0, 0, 1, 1])
    with pytest.raises(ValueError, match="none.*static.*dynamic"):
        data.preprocess(images, "stochastic")


def test_dynamic_binarize_is_bernoulli_of_the_pixel():
    x = jnp.concatenate([jnp.zeros(100), jnp.full(20000, 0.3), jnp.ones(100)]).astype(jnp.float32)
    b = data.dynamic_binarize(jax.random.key(0), x)
    assert b.dtype == jnp.float32 and b.shape == x.shape
    assert set(np.unique(np.asarray(b))) == {0.0, 1.0}
    assert not b[:100].any() and b[-100:].all()
    assert abs(float(b[100:-100].mean()) - 0.3) < 0.02
    assert not jnp.array_equal(b, data.dynamic_binarize(jax.random.key(1), x))


# --- batching ------------------------------------------------------------------------------------------

N, B = 10, 3  # 3 steps per epoch, one example left out of each epoch.


def test_batches_within_an_epoch_are_disjoint():
    key = jax.random.key(0)
    epoch = np.concatenate([np.asarray(data.batch_indices(key, s, B, N)) for s in range(N // B)])
    assert epoch.shape == (9,) and len(set(epoch.tolist())) == 9
    assert ((epoch >= 0) & (epoch < N)).all()


def test_same_key_and_step_give_the_same_batch():
    a = data.batch_indices(jax.random.key(7), 5, B, N)
    np.testing.assert_array_equal(a, data.batch_indices(jax.random.key(7), 5, B, N))
    assert not np.array_equal(a, data.batch_indices(jax.random.key(8), 5, B, N))


def test_batches_under_jit_and_scan_match_eager():
    key = jax.random.key(0)
    eager = np.stack([np.asarray(data.batch_indices(key, s, B, N)) for s in range(7)])

    @jax.jit
    def all_batches(key):
        def body(carry, step):
            return carry, data.batch_indices(key, step, B, N)

        return jax.lax.scan(body, None, jnp.arange(7, dtype=jnp.int32))[1]

    np.testing.assert_array_equal(all_batches(key), eager)
    resumed = jax.jit(data.batch_indices, static_argnums=(2, 3))(key, jnp.int32(5), B, N)
    np.testing.assert_array_equal(resumed, eager[5])


def test_epochs_have_different_orders():
    key = jax.random.key(0)
    e0, e1 = (np.asarray(data.epoch_permutation(key, e, N)) for e in (0, 1))
    assert sorted(e0.tolist()) == sorted(e1.tolist()) == list(range(N))
    assert not np.array_equal(e0, e1)
    first, second = (
        np.concatenate([np.asarray(data.batch_indices(key, s, B, N)) for s in steps])
        for steps in (range(0, 3), range(3, 6))
    )
    assert not np.array_equal(first, second)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 64, 1437, 4097])
def test_permute_is_a_bijection_that_depends_on_the_key(n):
    """`permute` maps [0, n) onto itself for any n (not only powers of two: the Feistel domain is cycle-walked),
    computed pointwise, so a batch's indices come from its own positions alone."""
    positions = jnp.arange(n)
    image = np.asarray(data.permute(jax.random.key(0), positions, n))
    assert sorted(image.tolist()) == list(range(n))
    np.testing.assert_array_equal(data.permute(jax.random.key(0), positions[n // 2 :], n), image[n // 2 :])
    if n >= 64:
        assert not np.array_equal(image, data.permute(jax.random.key(1), positions, n))
        assert (image == np.arange(n)).mean() < 0.1  # not close to the identity


def test_get_batch_keeps_images_and_labels_together():
    images = jnp.arange(N, dtype=jnp.float32).reshape(N, 1, 1, 1) * jnp.ones((N, 2, 2, 1))
    labels = jnp.arange(N, dtype=jnp.int32)
    x, y = jax.jit(data.get_batch, static_argnums=4)(images, labels, jax.random.key(0), jnp.int32(4), B)
    assert x.shape == (B, 2, 2, 1) and y.shape == (B,)
    np.testing.assert_array_equal(x[:, 0, 0, 0], y.astype(jnp.float32))
    np.testing.assert_array_equal(y, data.batch_indices(jax.random.key(0), 4, B, N))


def test_batch_size_larger_than_data_set_is_an_error():
    with pytest.raises(ValueError, match="batch_size"):
        data.batch_indices(jax.random.key(0), 0, 11, N)


def test_get_batch_with_a_sharding_is_the_same_batch_placed_there():
    images = jax.random.uniform(jax.random.key(1), (N, 2, 2, 1))
    labels = jnp.arange(N, dtype=jnp.int32)
    mesh = Mesh(np.array(jax.devices()[:1]), ("data",))
    sharded = NamedSharding(mesh, PartitionSpec("data"))
    plain = jax.jit(data.get_batch, static_argnums=4)(images, labels, jax.random.key(0), jnp.int32(7), B)
    x, y = jax.jit(lambda *a: data.get_batch(*a, B, sharded))(images, labels, jax.random.key(0), jnp.int32(7))
    np.testing.assert_array_equal(x, plain[0])
    np.testing.assert_array_equal(y, plain[1])
    assert x.sharding.is_equivalent_to(sharded, x.ndim) and y.sharding.is_equivalent_to(sharded, y.ndim)


# --- the same batches on the host ----------------------------------------------------------------------


@pytest.mark.parametrize("n, batch_size", [(1, 1), (2, 2), (10, 3), (1437, 64), (4097, 256), (50_000, 256)])
def test_host_batches_equal_device_batches(n, batch_size):
    """Batch k read on the host (`batch_indices_numpy`) is batch k gathered on the device, for any seed and step:
    the streamed placement and the on-device one see the same examples in the same order."""
    steps = jnp.array([0, 1, 2, 5, 17, 100, 1003], jnp.int32)
    for seed in (0, 1, 12345):
        key = jax.random.fold_in(jax.random.key(seed), 2)
        device = jax.jit(jax.vmap(data.batch_indices, in_axes=(None, 0, None, None)), static_argnums=(2, 3))(
            key, steps, batch_size, n
        )
        for step, expected in zip(steps.tolist(), np.asarray(device)):
            host = data.batch_indices_numpy(key, step, batch_size, n)
            assert host.dtype == np.int32
            np.testing.assert_array_equal(host, expected)


def test_host_permutation_is_the_device_permutation_of_a_whole_epoch():
    key, n = jax.random.key(3), 1000
    round_keys = data.feistel_round_keys(key, 4)
    assert round_keys.dtype == np.uint32 and round_keys.shape == (4,)
    host = data.permute_numpy(round_keys, np.arange(n), n)
    np.testing.assert_array_equal(host, data.epoch_permutation(key, 4, n))
    assert sorted(host.tolist()) == list(range(n))


def test_host_batch_size_larger_than_data_set_is_an_error():
    with pytest.raises(ValueError, match="batch_size"):
        data.batch_indices_numpy(jax.random.key(0), 0, 11, N)
