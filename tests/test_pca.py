"""Tests for gen_jax/pca.py against independent computations (scikit-learn, numpy, scipy)."""

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from sklearn.decomposition import PCA as SklearnPCA

from gen_jax import pca


def _low_rank_data(num_examples, num_features, rank=4, seed=0):
    """Data with a few strong, well-separated directions plus noise: f32[N, P]."""
    rng = np.random.default_rng(seed)
    scales = np.linspace(3.0, 1.0, rank)
    latent = rng.normal(size=(num_examples, rank)) * scales
    basis = np.linalg.qr(rng.normal(size=(num_features, rank)))[0].T
    return (latent @ basis + 0.05 * rng.normal(size=(num_examples, num_features)) + 2.0).astype(np.float32)


def _aligned(components, reference):
    """Flips each row of `components` to point the way the matching row of `reference` does (PCA's sign is free)."""
    signs = np.sign(np.sum(components * reference, axis=1, keepdims=True))
    return components * signs


@pytest.mark.parametrize("num_examples, num_features", [(200, 12), (10, 30)])  # tall (QR path) and wide
def test_fit_matches_sklearn(num_examples, num_features):
    x = _low_rank_data(num_examples, num_features)
    k = 3
    ours = pca.fit(jnp.asarray(x), k)
    theirs = SklearnPCA(n_components=k, svd_solver="full").fit(x.astype(np.float64))
    np.testing.assert_allclose(ours.mean, theirs.mean_, atol=1e-5)
    np.testing.assert_allclose(ours.explained_variance, theirs.explained_variance_, rtol=1e-4)
    np.testing.assert_allclose(ours.explained_variance_ratio, theirs.explained_variance_ratio_, rtol=1e-4)
    np.testing.assert_allclose(_aligned(np.asarray(ours.components), theirs.components_), theirs.components_, atol=1e-4)
    np.testing.assert_allclose(np.abs(pca.encode(ours, x)), np.abs(theirs.transform(x)), rtol=1e-3, atol=1e-3)


def test_images_are_flattened_and_reconstructed_in_their_shape():
    x = _low_rank_data(50, 12).reshape(50, 3, 4, 1)
    fit = pca.fit(jnp.asarray(x), 12)  # all directions: reconstruction is exact
    reconstruction = pca.reconstruct(fit, jnp.asarray(x))
    assert reconstruction.shape == x.shape
    np.testing.assert_allclose(reconstruction, x, atol=1e-5)


def test_training_error_is_the_discarded_variance():
    """Eckart–Young: the rank-k reconstruction error of the training data is the variance PCA leaves out."""
    x = _low_rank_data(300, 10)
    n, p = x.shape
    every = pca.fit(jnp.asarray(x), p)
    for k in (1, 3, 6):
        fit = pca.truncate(every, k)
        error = np.sum((np.asarray(pca.reconstruct(fit, jnp.asarray(x))) - x) ** 2)
        discarded = np.sum(np.asarray(every.explained_variance)[k:]) * (n - 1)
        np.testing.assert_allclose(error, discarded, rtol=1e-3)


def test_truncate_equals_a_smaller_fit():
    x = jnp.asarray(_low_rank_data(100, 8))
    small, truncated = pca.fit(x, 2), pca.truncate(pca.fit(x, 6), 2)
    np.testing.assert_allclose(np.abs(truncated.components), np.abs(small.components), atol=1e-5)
    np.testing.assert_allclose(truncated.explained_variance, small.explained_variance, rtol=1e-5)
    np.testing.assert_allclose(truncated.total_variance, small.total_variance, rtol=1e-5)
    with pytest.raises(ValueError, match="num_components"):
        pca.truncate(small, 3)


def test_fit_rejects_too_many_components():
    with pytest.raises(ValueError, match=r"num_components must be in \[1, 5\]"):
        pca.fit(jnp.zeros((5, 8)), 6)


def test_principal_angles_match_scipy():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(20, 3)), rng.normal(size=(20, 5))
    ours = np.degrees(np.asarray(pca.principal_angles(jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32))))
    theirs = np.sort(np.degrees(scipy.linalg.subspace_angles(a, b)))
    np.testing.assert_allclose(ours, theirs, atol=0.05)


def test_principal_angles_see_only_the_span():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(15, 4)).astype(np.float32)
    mixed = a @ rng.normal(size=(4, 4)).astype(np.float32)  # another basis of the same span
    assert float(jnp.max(pca.principal_angles(jnp.asarray(a), jnp.asarray(mixed)))) < np.radians(0.1)
    orthogonal = np.linalg.qr(rng.normal(size=(15, 15)))[0]
    angles = pca.principal_angles(jnp.asarray(orthogonal[:, :3]), jnp.asarray(orthogonal[:, 3:6]))
    np.testing.assert_allclose(angles, np.pi / 2, atol=1e-3)
