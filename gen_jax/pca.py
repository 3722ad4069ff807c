"""Principal component analysis by SVD of the centred data, in JAX.

PCA is the optimal rank-k linear reconstruction (Eckart–Young): no linear AutoEncoder with a k-dimensional code
can reconstruct the training data with a smaller squared error, which makes it the reference the AutoEncoders
are compared with (`experiments/ae_vs_pca`).
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp


@flax.struct.dataclass
class PCA:
    """mean: f32[P]; components: f32[k, P] (orthonormal rows, by decreasing variance);
    explained_variance: f32[k] (variance along each component); total_variance: scalar (all P directions)."""

    mean: jax.Array
    components: jax.Array
    explained_variance: jax.Array
    total_variance: jax.Array

    @property
    def explained_variance_ratio(self) -> jax.Array:
        """f32[k]: each component's share of the total variance, in [0, 1]."""
        return self.explained_variance / self.total_variance


def fit(x: jax.Array, num_components: int) -> PCA:
    """Fits PCA by SVD of the centred data.

    Args:
      x: f32[N, ...], flattened to f32[N, P].
      num_components: k, in [1, min(N, P)].

    Returns:
      The `PCA` with k components; variances are unbiased (divided by N − 1), in squared units of x.
    """
    flat = jnp.reshape(x, (x.shape[0], -1)).astype(jnp.float32)
    num_examples, num_features = flat.shape
    if not 0 < num_components <= min(num_examples, num_features):
        raise ValueError(
            f"num_components must be in [1, {min(num_examples, num_features)}] for data of shape "
            f"{flat.shape}, got {num_components}"
        )
    mean = flat.mean(axis=0)
    centred = flat - mean
    if num_examples > num_features:
        # X = QR and R = U S Vᵀ give X = (QU) S Vᵀ: the same S and V from the SVD of a P×P matrix, faster than a
        # direct SVD of the tall X (measured in benchmarks/README.md).
        centred = jnp.linalg.qr(centred, mode="r")
    _, singular_values, vt = jnp.linalg.svd(centred, full_matrices=False)
    variances = singular_values**2 / (num_examples - 1)
    return PCA(
        mean=mean,
        components=vt[:num_components],
        explained_variance=variances[:num_components],
        total_variance=variances.sum(),
    )


def encode(pca: PCA, x: jax.Array) -> jax.Array:
    """x: f32[N, ...] -> codes f32[N, k]."""
    flat = jnp.reshape(x, (x.shape[0], -1))
    return (flat - pca.mean) @ pca.components.T


def decode(pca: PCA, codes: jax.Array, shape: tuple[int, ...] | None = None) -> jax.Array:
    """codes f32[N, k] -> reconstructions f32[N, P], or f32[N, *shape] when `shape` is given."""
    flat = codes @ pca.components + pca.mean
    return flat if shape is None else flat.reshape(codes.shape[0], *shape)


def truncate(pca: PCA, num_components: int) -> PCA:
    """The PCA with only the first `num_components` components: one fit serves every k up to the fitted one."""
    if not 0 < num_components <= pca.components.shape[0]:
        raise ValueError(
            f"num_components must be in [1, {pca.components.shape[0]}] (the fitted components), got {num_components}"
        )
    return pca.replace(
        components=pca.components[:num_components], explained_variance=pca.explained_variance[:num_components]
    )


def reconstruct(pca: PCA, x: jax.Array) -> jax.Array:
    """x: f32[N, ...] -> its projection on the principal subspace, mapped back: f32[N, ...] (same shape)."""
    return decode(pca, encode(pca, x), x.shape[1:])


def principal_angles(a: jax.Array, b: jax.Array) -> jax.Array:
    """Principal angles between the column spaces of a: f32[P, k1] and b: f32[P, k2] (Björck & Golub 1973).

    With orthonormal bases Q1, Q2 of the two spans, the cosines of the angles are the singular values of Q1ᵀQ2.

    Returns:
      f32[min(k1, k2)], radians in [0, π/2], ascending.  All zero when one span contains the other.
    """
    q1, _ = jnp.linalg.qr(a)
    q2, _ = jnp.linalg.qr(b)
    cosines = jnp.linalg.svd(q1.T @ q2, compute_uv=False)  # descending, so the angles ascend
    return jnp.arccos(jnp.clip(cosines, 0.0, 1.0))
