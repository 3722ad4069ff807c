"""ae_vs_pca: PCA, the linear AutoEncoder and a non-linear AutoEncoder, at several code sizes k.

    python -m experiments.main --config experiments/configs/ae_vs_pca.py --workdir <dir> [--config.dataset=…]

PCA is fitted on the training split (SVD of the centred data); each AutoEncoder trains on the whole training
split through `train.train`; all three are scored on the test split by squared error per pixel.  The linear
AutoEncoder (no hidden layer, MSE) cannot beat PCA on the training data (Eckart–Young), so trained well it comes
within a few percent of PCA's error and its decoder's columns span PCA's top-k subspace (the principal angles
between the two say how closely).  The non-linear AutoEncoder can do better than any linear map.

Layout of <dir>: linear_ae_k<k>/ and ae_k<k>/ are complete runs (each resumes when the command is run again);
summary.json holds {"k", "pca_mse", "linear_ae_mse", "ae_mse", "principal_angles_deg", …}; figures/ holds
error_vs_k.png, embeddings_2d.png and reconstructions.png; report.md / index.html show them.
"""

from __future__ import annotations

import json
import os
import types

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gen_jax import config as config_lib
from gen_jax import data, figures, latent, losses, pca, report, train, trained
from gen_jax.tasks import ae

# The fields this experiment adds to an AutoEncoder config (experiments/configs/ae_vs_pca.py).
FIELDS = ("ks", "linear_num_steps", "linear_learning_rate", "vae_workdir")
NOTES = (
    "PCA is fitted on the training split; the AutoEncoders train on the whole training split; all are "
    "scored on the test split by squared error per pixel (pixels in [0, 1]). The linear AE (no hidden layer, "
    "MSE) should come within 2% of PCA (Eckart–Young: PCA is the best rank-k linear reconstruction of the "
    "training data), its decoder's columns spanning PCA's top-k subspace."
)
# Test images shown in the scatter plots and in the reconstructions figure.
_NUM_EMBEDDED, _NUM_SHOWN = 2000, 10


def validate(config) -> None:
    config_lib.require_fields(config, FIELDS)
    ks = config.ks
    if (
        not isinstance(ks, (tuple, list))
        or not ks
        or not all(isinstance(k, int) and not isinstance(k, bool) and k > 0 for k in ks)
    ):
        raise config_lib.ConfigError(f"config.ks must be a non-empty tuple of positive integers, got {ks!r}")
    config_lib.require_positive_int(config, "linear_num_steps")
    config_lib.require_positive(config, "linear_learning_rate")
    if not isinstance(config.vae_workdir, str):
        raise config_lib.ConfigError(f"config.vae_workdir must be a run directory or '', got {config.vae_workdir!r}")
    if config.binarization != "none":
        raise config_lib.ConfigError(
            f"config.binarization must be 'none' for ae_vs_pca (PCA and the MSE are "
            f"compared on the grey values), got {config.binarization!r}"
        )


def capped_ks(ks, dimension: int) -> list[int]:
    """The code sizes to run: each k capped at the data's dimension, without repeats, ascending."""
    return sorted({min(int(k), dimension) for k in ks})


def member_config(config, k: int, linear: bool) -> ml_collections.ConfigDict:
    """The AutoEncoder config of one member: the experiment's config with a k-dimensional code; for the linear
    AutoEncoder, no hidden layer, MSE and its own step count and learning rate."""
    member = ml_collections.ConfigDict(config.to_dict())
    for name in FIELDS:
        del member[name]
    member.experiment = ""
    member.model.latent_dim = k
    member.name = f"{config.name}: {'linear AE' if linear else 'AE'}, k={k}"
    if linear:
        member.model.architecture = "mlp"
        member.model.hidden = ()
        member.model.reconstruction_loss = "mse"
        member.num_steps = config.linear_num_steps
        member.optim.learning_rate = config.linear_learning_rate
    return member


def pca_results(train_images: np.ndarray, test_images: np.ndarray, ks: list[int]) -> dict:
    """PCA fitted once on the training split, then truncated to each k.

    Returns {"fits": [PCA per k], "test_mse": [per k], "train_mse": [per k], "eigenvalue_ratio": [per k]}: MSEs
    per pixel; eigenvalue_ratio = λ_k / λ_{k+1} (None when k is the data's dimension).  A ratio near 1 leaves the
    k-th direction nearly arbitrary, so the last principal angle may be large while the errors agree.
    """
    flat_shape = train_images.reshape(len(train_images), -1).shape
    full = pca.fit(jnp.asarray(train_images), min(max(ks) + 1, *flat_shape))
    fits = [pca.truncate(full, k) for k in ks]
    variances = np.asarray(full.explained_variance)

    def mse(fit, images):
        x = jnp.asarray(images)
        return float(jnp.mean(losses.squared_error(pca.reconstruct(fit, x), x)))

    return {
        "fits": fits,
        "test_mse": [mse(f, test_images) for f in fits],
        "train_mse": [mse(f, train_images) for f in fits],
        "eigenvalue_ratio": [float(variances[k - 1] / variances[k]) if k < len(variances) else None for k in ks],
    }


def principal_angles_deg(fit: pca.PCA, params) -> list[float]:
    """Angles in degrees (ascending) between the linear decoder's column space and PCA's top-k subspace."""
    angles = pca.principal_angles(ae.decoder_basis(params), fit.components.T)
    return [float(a) for a in np.degrees(np.asarray(angles))]


def load_vae_run(workdir: str, dataset: data.Dataset) -> trained.TrainedRun:
    """The trained VAE run named by config.vae_workdir, checked to be a VAE of this data set."""
    try:
        run = trained.load_run(workdir, dataset)
    except (FileNotFoundError, config_lib.ConfigError) as error:
        raise config_lib.ConfigError(f"config.vae_workdir: {error}") from None
    if run.config.family != "vae":
        raise config_lib.ConfigError(f"config.vae_workdir: {workdir} holds a {run.config.family!r} run, not a 'vae'")
    return run


def run(config, dataset: data.Dataset, workdir: str) -> dict:
    """Fits PCA, trains the linear and the non-linear AutoEncoder for each k, compares them; returns the summary."""
    ae.validate(config)
    validate(config)
    # PCA has at most min(N, P) components.
    dimension = min(int(np.prod(dataset.image_shape)), len(dataset.train_images))
    ks = capped_ks(config.ks, dimension)
    if ks != sorted(set(config.ks)):
        print(f"note: config.ks {tuple(config.ks)} capped at the data's dimension {dimension}: {ks}")
    members = {(kind, k): member_config(config, k, kind == "linear_ae") for k in ks for kind in ("linear_ae", "ae")}
    # Every member's config and workdir are checked before anything trains.
    tasks = {}
    for (kind, k), member in members.items():
        config_lib.validate_against_data(member, len(dataset.train_images))
        tasks[kind, k] = ae.make_task(member, dataset)
    vae_run = load_vae_run(config.vae_workdir, dataset) if config.vae_workdir else None
    # prepare_workdir reads only a task's name and signature: this one guards the experiment's own files.
    train.prepare_workdir(
        workdir,
        config.to_dict(),
        types.SimpleNamespace(name="ae_vs_pca", signature={"family": "ae_vs_pca", "dataset": config.dataset}),
    )
    for (kind, k), task in tasks.items():
        train.prepare_workdir(os.path.join(workdir, f"{kind}_k{k}"), members[kind, k].to_dict(), task)

    train_images, test_images = dataset.train_images, dataset.test_images
    reference = pca_results(train_images, test_images, ks)
    device_images, device_labels = jax.device_put(train_images), jax.device_put(dataset.train_labels)
    runs, results = {}, {}
    for (kind, k), task in tasks.items():
        member_dir = os.path.join(workdir, f"{kind}_k{k}")
        print(f"ae_vs_pca: training {kind} with k={k} in {member_dir}", flush=True)
        results[kind, k] = train.train(members[kind, k], member_dir, task, device_images, device_labels)
        runs[kind, k] = trained.load_run(member_dir, dataset)

    summary = {
        "dataset": config.dataset,
        "k": ks,
        "pca_mse": reference["test_mse"],
        "linear_ae_mse": [results["linear_ae", k]["test_mse"] for k in ks],
        "ae_mse": [results["ae", k]["test_mse"] for k in ks],
        "principal_angles_deg": [
            principal_angles_deg(fit, runs["linear_ae", k].params) for fit, k in zip(reference["fits"], ks)
        ],
        "pca_train_mse": reference["train_mse"],
        "pca_eigenvalue_ratio": reference["eigenvalue_ratio"],
        "units": "squared error per pixel on the test split (pixels in [0, 1]); PCA fitted on the training split, "
        "the AutoEncoders trained on it; principal angles in degrees, ascending; pca_eigenvalue_ratio: "
        "λ_k / λ_(k+1) of the training covariance (near 1: the k-th direction is nearly arbitrary, so "
        "its angle may be large)",
    }
    summary["linear_ae_over_pca"] = [a / p for a, p in zip(summary["linear_ae_mse"], summary["pca_mse"])]
    with open(os.path.join(workdir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    figure_list = comparison_figures(ks, summary, reference["fits"], runs, vae_run, dataset, workdir)
    report.write_report(workdir, f"ae_vs_pca — {config.dataset}", report_rows(summary), figure_list, notes=NOTES)
    print(format_table(summary), flush=True)
    return summary


def report_rows(summary: dict) -> dict:
    """One row per (k, quantity), for the report's table."""
    rows = {}
    for i, k in enumerate(summary["k"]):
        rows[f"k={k}: PCA test MSE"] = summary["pca_mse"][i]
        rows[f"k={k}: linear AE test MSE"] = summary["linear_ae_mse"][i]
        rows[f"k={k}: linear AE above PCA (%)"] = 100 * (summary["linear_ae_over_pca"][i] - 1)
        rows[f"k={k}: AE test MSE"] = summary["ae_mse"][i]
        rows[f"k={k}: median, largest principal angle (deg)"] = (
            f"{np.median(summary['principal_angles_deg'][i]):.3g}, {max(summary['principal_angles_deg'][i]):.3g}"
        )
        rows[f"k={k}: PCA λ_k / λ_(k+1)"] = summary["pca_eigenvalue_ratio"][i]
    return rows


def format_table(summary: dict) -> str:
    """The summary as a Markdown table: one row per k."""
    lines = [
        "| k | PCA | linear AE | linear AE / PCA | AE | principal angles (deg): median, max | λ_k / λ_(k+1) |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, k in enumerate(summary["k"]):
        angles, gap = summary["principal_angles_deg"][i], summary["pca_eigenvalue_ratio"][i]
        lines.append(
            f"| {k} | {summary['pca_mse'][i]:.5f} | {summary['linear_ae_mse'][i]:.5f} | "
            f"{summary['linear_ae_over_pca'][i]:.4f} | {summary['ae_mse'][i]:.5f} | "
            f"{np.median(angles):.2f}, {max(angles):.2f} | {'—' if gap is None else f'{gap:.4f}'} |"
        )
    return "\n".join(lines)


def comparison_figures(ks, summary, fits, runs, vae_run, dataset, workdir) -> list[tuple[str, str]]:
    """Error against k, the 2-D embeddings side by side, and reconstructions at each k, under <workdir>/figures."""
    figure_dir = os.path.join(workdir, "figures")
    made = []

    def add(path, caption):
        made.append((os.path.relpath(path, workdir), caption))

    add(
        figures.save_curves(
            os.path.join(figure_dir, "error_vs_k.png"),
            {
                "PCA": (ks, summary["pca_mse"]),
                "linear AE": (ks, summary["linear_ae_mse"]),
                "AE": (ks, summary["ae_mse"]),
            },
            xlabel="code size k",
            ylabel="test MSE per pixel",
            logy=True,
            title=f"Reconstruction error against code size ({dataset.name})",
        ),
        "Test squared error per pixel against the code size k: PCA, the linear AE and the non-linear AE",
    )

    test_images = dataset.test_images
    count = min(len(test_images), _NUM_EMBEDDED)
    k0 = ks[0]
    codes = {"PCA": np.asarray(pca.encode(pca.truncate(fits[-1], min(2, ks[-1])), test_images[:count]))}
    for kind, title in (("linear_ae", "linear AE"), ("ae", "AE")):
        codes[f"{title}, k={k0}"] = latent.encode_in_batches(runs[kind, k0].encode, test_images[:count])
    if vae_run is not None:
        codes[f"VAE means, k={vae_run.config.model.latent_dim}"] = latent.encode_in_batches(
            vae_run.encode, vae_run.test_images[:count]
        )
    # Codes of more than two dimensions are shown on their own first two principal components.
    embeddings = {
        name if values.shape[1] <= 2 else f"{name} (2 PCs)": latent.plane_points(values)[0]
        for name, values in codes.items()
    }
    add(
        figures.save_embeddings_side_by_side(
            os.path.join(figure_dir, "embeddings_2d.png"),
            embeddings,
            dataset.test_labels[:count],
            class_names=dataset.class_names,
        ),
        f"{count} test images in two dimensions, coloured by class: PCA, the AEs with the smallest k"
        + (" and the VAE run" if vae_run is not None else "")
        + "; codes of more dimensions on their first 2 PCs",
    )

    shown = test_images[:_NUM_SHOWN]
    rows, labels = [shown], ["input"]
    for fit, k in zip(fits, ks):
        rows.append(np.clip(np.asarray(pca.reconstruct(fit, jnp.asarray(shown))), 0.0, 1.0))
        rows += [
            runs["linear_ae", k].decode(runs["linear_ae", k].encode(shown)),
            runs["ae", k].decode(runs["ae", k].encode(shown)),
        ]
        labels += [f"PCA k={k}", f"lin. AE k={k}", f"AE k={k}"]
    add(
        figures.save_image_grid(
            os.path.join(figure_dir, "reconstructions.png"),
            np.concatenate(rows),
            ncols=_NUM_SHOWN,
            row_labels=labels,
            title="Test reconstructions at each k",
        ),
        "Test images (top row) and their reconstructions by PCA, the linear AE and the AE at each k",
    )
    return made
