"""FID and KID as published scores compute them, on features f[N, D] (Inception pool3: `gen_jax.inception`).

* `frechet_distance`: pytorch-fid's `calculate_frechet_distance` (Heusel et al. 2017), step for step: the general
  matrix square root of Σa Σb (`scipy.linalg.sqrtm`), retried with ε on both diagonals when it is not finite, its
  imaginary round-off dropped when the diagonal's is below 10⁻³ and an error otherwise.  `metrics.
  frechet_distance_from_statistics` computes the same quantity by a symmetric eigendecomposition (faster, never
  complex); the two agree on well-conditioned statistics (tests/test_inception.py), and this one is what the
  published numbers used.
* `kernel_inception_distance`: KID (Bińkowski et al. 2018) as torch-fidelity defines it: the unbiased MMD² with
  the kernel k(x, y) = (x·y / D + 1)³, over `subsets` random subsets of `subset_size` features of each set (drawn
  without replacement by `np.random.RandomState(seed)`, set a then set b per subset); its mean and its standard
  deviation (ddof 0) over the subsets.

`inception_scores` gives both under the names a summary uses.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from gen_jax import metrics

KID_SUBSETS = 100  # torch-fidelity's defaults
KID_SUBSET_SIZE = 1000
KID_SEED = 2020


def frechet_distance(
    mean_a: np.ndarray, cov_a: np.ndarray, mean_b: np.ndarray, cov_b: np.ndarray, eps: float = 1e-6
) -> float:
    """‖μa − μb‖² + Tr Σa + Tr Σb − 2 Tr (Σa Σb)^½, computed as pytorch-fid computes it, in squared feature units.

    Args:
      mean_a, mean_b: f[D]; cov_a, cov_b: f[D, D] (`metrics.feature_statistics`).
      eps: added to both diagonals when the square root of the product is not finite (a singular product).

    Raises ValueError (one line) when the square root keeps an imaginary diagonal above 10⁻³: the covariances are
    too far from positive definite, usually too few samples for D.
    """
    mean_a, mean_b = np.atleast_1d(mean_a), np.atleast_1d(mean_b)
    cov_a, cov_b = np.atleast_2d(cov_a), np.atleast_2d(cov_b)
    if mean_a.shape != mean_b.shape or cov_a.shape != cov_b.shape or cov_a.shape != mean_a.shape * 2:
        raise ValueError(
            f"statistics of different sizes: means {mean_a.shape}, {mean_b.shape}; covariances {cov_a.shape}, "
            f"{cov_b.shape}"
        )
    root = scipy.linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(root).all():
        offset = np.eye(len(cov_a)) * eps
        root = scipy.linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    if np.iscomplexobj(root):
        if not np.allclose(np.diagonal(root).imag, 0, atol=1e-3):
            raise ValueError(
                f"the square root of Σa Σb has an imaginary part of {np.max(np.abs(root.imag)):.3g}: the covariances "
                "are far from positive definite; use more samples than feature dimensions"
            )
        root = root.real
    difference = mean_a - mean_b
    return float(difference @ difference + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(root))


def polynomial_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """k(aᵢ, bⱼ) = (aᵢ·bⱼ / D + 1)³ for f[n, D] and f[m, D]: f64[n, m] (KID's kernel)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def mmd2_unbiased(a: np.ndarray, b: np.ndarray) -> float:
    """The unbiased estimate of MMD² between the distributions of f[m, D] and f[m, D] (equal sizes, m ≥ 2).

    Σ_{i≠j} k(aᵢ, aⱼ) / m(m−1) + Σ_{i≠j} k(bᵢ, bⱼ) / m(m−1) − 2 Σ_{i,j} k(aᵢ, bⱼ) / m², with `polynomial_kernel`.
    Can be negative: an unbiased estimate of 0 for equal distributions.
    """
    m = len(a)
    if len(b) != m or m < 2:
        raise ValueError(f"need two sets of the same size >= 2, got {len(a)} and {len(b)}")
    k_aa, k_bb, k_ab = polynomial_kernel(a, a), polynomial_kernel(b, b), polynomial_kernel(a, b)
    within = (k_aa.sum() - np.trace(k_aa) + k_bb.sum() - np.trace(k_bb)) / (m * (m - 1))
    return float(within - 2.0 * k_ab.sum() / m**2)


def kernel_inception_distance(
    features_a: np.ndarray,
    features_b: np.ndarray,
    subsets: int = KID_SUBSETS,
    subset_size: int = KID_SUBSET_SIZE,
    seed: int = KID_SEED,
) -> tuple[float, float]:
    """KID of f[Na, D] and f[Nb, D]: (mean, standard deviation) of `mmd2_unbiased` over random subsets.

    Subset i takes `subset_size` rows of a, then of b, without replacement, from one `np.random.RandomState(seed)`
    (torch-fidelity's order, with a its input 1).  Raises ValueError (one line) when a set has fewer rows than
    `subset_size`.
    """
    if min(len(features_a), len(features_b)) < subset_size:
        raise ValueError(
            f"KID subsets of {subset_size} need at least as many features per set, got {len(features_a)} and "
            f"{len(features_b)}: lower the subset size"
        )
    rng = np.random.RandomState(seed)
    values = np.zeros(subsets)
    for i in range(subsets):
        a = features_a[rng.choice(len(features_a), subset_size, replace=False)]
        b = features_b[rng.choice(len(features_b), subset_size, replace=False)]
        values[i] = mmd2_unbiased(a, b)
    return float(np.mean(values)), float(np.std(values))


def inception_scores(
    features: np.ndarray, reference: np.ndarray, kid_subset_size: int = KID_SUBSET_SIZE
) -> dict[str, float]:
    """{"inception_fid", "inception_kid", "inception_kid_std"} of features f[N, D] against reference f[M, D].

    The KID subset size is capped at min(N, M); a summary should state the size it used.
    """
    subset_size = min(kid_subset_size, len(features), len(reference))
    kid, kid_std = kernel_inception_distance(features, reference, subset_size=subset_size)
    return {
        "inception_fid": frechet_distance(
            *metrics.feature_statistics(features), *metrics.feature_statistics(reference)
        ),
        "inception_kid": kid,
        "inception_kid_std": kid_std,
    }
