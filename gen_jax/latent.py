"""Pictures of a latent space, for every family with an encoder and a decoder (AutoEncoder, VAE, …).

A family hands over two functions (`train.Task.codec`), encode (x f32[B, H, W, C] -> codes f32[B, D]) and decode
(codes -> images f32[B, H, W, C] in [0, 1]), and optionally a sampler of its prior; `figures_of` draws
reconstructions, prior samples, the codes of the test split coloured by class, the decoded 2-D manifold and
interpolation paths (`class_figures`: those of a conditional model).  The plots
themselves are `figures.py`'s.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import data, figures, pca

_SCATTER_COUNT, _NUM_PAIRS, _PATH_STEPS, _MANIFOLD_SIDE, _SAMPLES_PER_CLASS = 2000, 6, 10, 20, 10


def encode_in_batches(
    encode: Callable, images: np.ndarray, batch_size: int = 500, labels: np.ndarray | None = None
) -> np.ndarray:
    """Codes f32[N, D] of images f32[N, H, W, C], encoded `batch_size` at a time to bound memory; with `labels`
    i32[N], encode(images, labels) (`train.Task.codec`: a conditional encoder needs them)."""
    if labels is None:
        return np.concatenate(
            [np.asarray(encode(images[i : i + batch_size])) for i in range(0, len(images), batch_size)]
        )
    return np.concatenate(
        [
            np.asarray(encode(images[i : i + batch_size], labels[i : i + batch_size]))
            for i in range(0, len(images), batch_size)
        ]
    )


def plane_points(codes: np.ndarray) -> tuple[np.ndarray, str]:
    """Codes f32[N, D] -> (f32[N, 2] points to scatter, how they were made): the codes themselves when D = 2, on a
    line when D = 1, else their projection on their own first two principal components."""
    if codes.shape[1] == 2:
        return codes, "codes"
    if codes.shape[1] == 1:
        return np.stack([codes[:, 0], np.zeros_like(codes[:, 0])], axis=1), "codes (1-D, on a line)"
    projection = pca.fit(jnp.asarray(codes), 2)
    return np.asarray(pca.encode(projection, jnp.asarray(codes))), "codes projected on their first two PCs"


def interpolation_pairs(labels: np.ndarray, num_pairs: int) -> list[tuple[int, int]]:
    """Pairs of test indices with different classes (i -> j), taken in order so the figure is reproducible."""
    pairs, used = [], set()
    for i in range(len(labels)):
        for j in range(i + 1, len(labels)):
            if labels[i] != labels[j] and i not in used and j not in used:
                pairs.append((i, j))
                used.update((i, j))
                break
        if len(pairs) == num_pairs:
            break
    return pairs


def figures_of(
    workdir: str,
    encode: Callable,
    decode: Callable,
    dataset: data.Dataset,
    test_images: np.ndarray,
    code_name: str = "codes",
    sample: Callable | None = None,
    key: jax.Array | None = None,
) -> list[tuple[str, str]]:
    """Writes the latent-space figures under <workdir>/figures; returns [(path relative to workdir, caption)].

    Args:
      workdir: the run directory.
      encode, decode: see the module docstring.
      dataset: for the test labels and class names.
      test_images: f32[N, H, W, C], the test split as the model sees it.
      code_name: what a code is called in captions ("codes", "posterior means").
      sample: optional (key, count) -> images f32[count, H, W, C] from the prior: adds samples.png and, when the
        code is 2-D, the decoded manifold over the prior's quantiles (manifold.png).
      key: the key of `sample` (its first split draws the samples).

    Figures: reconstructions.png (20 test images and their reconstructions), samples.png, latent_scatter.png (up
    to 2,000 test codes by class, projected on 2 PCs when D > 2), manifold.png, interpolations.png (straight paths
    between the codes of 6 pairs of test images of different classes).
    """
    figure_dir = os.path.join(workdir, "figures")
    made = []

    def add(path, caption):
        made.append((os.path.relpath(path, workdir), caption))

    inputs = test_images[:20]
    add(
        figures.save_reconstructions(
            os.path.join(figure_dir, "reconstructions.png"),
            inputs,
            decode(encode(inputs)),
            title="Test inputs and reconstructions",
        ),
        f"Test images (rows 1, 3) and their reconstructions from the {code_name} (rows 2, 4)",
    )

    if sample is not None:
        sample_key, _ = jax.random.split(key)
        add(
            figures.save_image_grid(
                os.path.join(figure_dir, "samples.png"),
                sample(sample_key, 100),
                ncols=10,
                title="Samples: z ~ N(0, I), decoded (means)",
            ),
            "100 samples: z ~ N(0, I) through the decoder (pixel means shown)",
        )

    count = min(len(test_images), _SCATTER_COUNT)
    codes = encode_in_batches(encode, test_images[:count])
    points, how = plane_points(codes)
    how = how.replace("codes", code_name, 1)
    add(
        figures.save_latent_scatter(
            os.path.join(figure_dir, "latent_scatter.png"),
            points,
            dataset.test_labels[:count],
            class_names=dataset.class_names,
            title=f"Test set: {how}",
        ),
        f"Latent space of {count} test images ({how}), coloured by class",
    )

    if sample is not None and codes.shape[1] == 2:
        decoded = decode(jnp.asarray(figures.manifold_latents(_MANIFOLD_SIDE)))
        add(
            figures.save_manifold_grid(
                os.path.join(figure_dir, "manifold.png"), decoded, _MANIFOLD_SIDE, title="Decoded 2-D latent manifold"
            ),
            f"The decoder over a {_MANIFOLD_SIDE}×{_MANIFOLD_SIDE} grid of the latent plane (N(0, 1) quantiles 5%–95%)",
        )

    pairs = interpolation_pairs(dataset.test_labels, _NUM_PAIRS)
    weights = np.linspace(0.0, 1.0, _PATH_STEPS)[:, None]
    starts = np.asarray(encode(test_images[np.array([i for i, _ in pairs])]))
    ends = np.asarray(encode(test_images[np.array([j for _, j in pairs])]))
    paths = starts[:, None, :] * (1 - weights) + ends[:, None, :] * weights  # [P, S, D]
    strips = decode(jnp.asarray(paths.reshape(-1, codes.shape[1])))
    add(
        figures.save_interpolations(
            os.path.join(figure_dir, "interpolations.png"),
            np.asarray(strips).reshape(len(pairs), _PATH_STEPS, *dataset.image_shape),
            title="Interpolating between test images in latent space",
        ),
        f"Straight paths between the {code_name} of pairs of test images of different classes",
    )
    return made


def class_figures(
    workdir: str,
    encode: Callable,
    decode_prior: Callable,
    decode: Callable,
    dataset: data.Dataset,
    test_images: np.ndarray,
    latent_dim: int,
    code_name: str,
    key: jax.Array,
) -> list[tuple[str, str]]:
    """The latent-space figures of a conditional model (cVAE) under <workdir>/figures; [(path, caption)].

    Args:
      encode, decode: as `figures_of`'s, each also taking labels i32[B].
      decode_prior: (noise ε f32[B, D], labels i32[B]) -> images of the prior's codes for ε under those labels.
      latent_dim: D.  Other arguments as `figures_of`'s; `key` draws the noise of samples_by_class.png.

    Figures: reconstructions.png (given the labels), samples_by_class.png (one ε per column decoded under every
    class, one class per row), latent_scatter.png (up to 2,000 test codes given their labels, by class).
    """
    figure_dir = os.path.join(workdir, "figures")
    made = []

    def add(path, caption):
        made.append((os.path.relpath(path, workdir), caption))

    labels = dataset.test_labels
    add(
        figures.save_reconstructions(
            os.path.join(figure_dir, "reconstructions.png"),
            test_images[:20],
            decode(encode(test_images[:20], labels[:20]), labels[:20]),
            title="Test inputs and reconstructions",
        ),
        f"Test images (rows 1, 3) and their reconstructions from the {code_name} (rows 2, 4)",
    )
    num_classes = dataset.num_classes
    noise = jnp.tile(jax.random.normal(key, (_SAMPLES_PER_CLASS, latent_dim)), (num_classes, 1))
    add(
        figures.save_image_grid(
            os.path.join(figure_dir, "samples_by_class.png"),
            decode_prior(noise, jnp.repeat(jnp.arange(num_classes), _SAMPLES_PER_CLASS)),
            ncols=_SAMPLES_PER_CLASS,
            row_labels=list(dataset.class_names),
            title="Same noise (columns), every class (rows)",
        ),
        "Each column one ε ~ N(0, I), z = μ_y + σ_y ε (z = ε with the standard prior) decoded under every label y: "
        "the style kept, the class changed",
    )
    count = min(len(test_images), _SCATTER_COUNT)
    points, how = plane_points(encode_in_batches(encode, test_images[:count], labels=labels[:count]))
    how = how.replace("codes", code_name, 1)
    add(
        figures.save_latent_scatter(
            os.path.join(figure_dir, "latent_scatter.png"),
            points,
            labels[:count],
            class_names=dataset.class_names,
            title=f"Test set: {how}",
        ),
        f"Latent space of {count} test images ({how}), coloured by class",
    )
    return made
