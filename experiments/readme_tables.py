"""The results page's tables (docs/results.md), rendered from the results files: no number in them is typed by hand.

    python -m experiments.readme_tables            # rewrite the tables in docs/results.md from the files
    python -m experiments.readme_tables --check    # exit 1, one line per table, where the page and the files differ

Sources: every run record `results/*.json` (written by `python -m experiments.main … --record results/<name>.json`:
{command, date, machine, versions, config, summary}) and the H100 runs of 2026-11-27
(`benchmarks/results/h100_2026-11-27_runs.json`; their machine and versions in `…_env.txt`, their commands in
`benchmarks/gpu_session.sh`).  Each table sits in docs/results.md between `<!-- table:<name>
(experiments/readme_tables.py) -->` and `<!-- /table:<name> -->`; each row's last column links the file its numbers
come from (the link relative to the page, its text the path in the repository).  README.md holds one table,
`own_images` (`README_TABLES`), between the same markers; the rest it links.

    vae             one row per VAE record: config, where (CPU or the GPU), seed, test −ELBO, test IWAE −log p(x)

A sweep's record (`python -m experiments.sweep … --record`, its summary sweep.json's content) gives one row per group
of members that differ only in their seed: the mean ± standard deviation over the seeds.
    ae_pca          one row per (ae_vs_pca record, k): PCA, linear AE and AE test MSE, principal angles, λ_k/λ_(k+1)
    sample_quality  per data set, the floor (test vs train images; every record of the data set must agree on it),
                    then one row per record scored for sample quality
    zoo             the model zoo on Fashion-MNIST: one row per (config, IWAE k) of `ZOO`
    own_images      (README.md) the models of `OWN_IMAGES`, trained on a prepared folder of images: one row each

The H100 file's DCGAN is not in the sample-quality table: it was scored by a classifier trained on the GPU, whose
floor differs from the CPU classifier's, and the table compares models scored by one classifier per data set.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import math
import os
import posixpath
import re
import shlex
import sys

PAGE = "docs/results.md"  # the page that holds the tables, relative to the repository root
RESULTS_GLOB = "results/*.json"
GPU_RUNS = "benchmarks/results/h100_2026-11-27_runs.json"
GPU_ENV = "benchmarks/results/h100_2026-11-27_env.txt"
GPU_SCRIPT = "benchmarks/gpu_session.sh"
TABLES = ("vae", "ae_pca", "sample_quality", "zoo")
README_PAGE = "README.md"
README_TABLES = ("own_images",)
# The README's table of models trained on your own images (a prepared folder): the newest record of each config.
OWN_IMAGES = ("vae_conv_openclipart", "dcgan_openclipart")
# The model zoo table: every generative family on Fashion-MNIST, one row per (config, IWAE k), in this order; a
# row whose config has no record yet is shown empty, so what is missing is seen.
ZOO = (
    ("ae_fashion_mnist", 0),
    ("vae_mlp_fashion_mnist", 0),
    ("vae_conv_fashion_mnist", 0),
    ("iwae_fashion_mnist", 5),
    ("iwae_fashion_mnist", 50),
    ("cvae_fashion_mnist", 0),
    ("vqvae_fashion_mnist", 0),
    ("aae_fashion_mnist", 0),
    ("gan_fashion_mnist", 0),
    ("cgan_fashion_mnist", 0),
    ("dcgan_fashion_mnist", 0),
)
DATASET_NAMES = {
    "digits": "digits",
    "fashion_mnist": "Fashion-MNIST",
    "mnist": "MNIST",
    "cifar10": "CIFAR-10",
    "runs/prepared/openclipart64": "openclipart-png, 64×64",
}
LOSS_NAMES = {"hinge": "hinge", "minimax": "minimax", "wgan_gp": "WGAN-GP"}
FLOOR_FIELDS = (
    "num_samples",
    "classifier_fid_floor",
    "classifier_score_real",
    "classifier_precision_floor",
    "classifier_recall_floor",
)
# Summary fields renamed since records were written (issue 29: the classifier's scores say whose they are); a
# record's old names are read as the new ones, and the committed records keep their files as they are.
RENAMED_FIELDS = {
    "fid": "classifier_fid",
    "fid_floor": "classifier_fid_floor",
    "precision": "classifier_precision",
    "precision_floor": "classifier_precision_floor",
    "recall": "classifier_recall",
    "recall_floor": "classifier_recall_floor",
}
# Floors of one data set come from one classifier and the same images; they agree to float32 rounding or not at all.
FLOOR_RTOL = 1e-5
ABSENT = "—"


class TableError(Exception):
    """A results file that cannot make a table (damaged, missing a field, floors that disagree); one line."""


# Reading the sources.


def with_current_names(summary: dict) -> dict:
    """`summary` with the fields of `RENAMED_FIELDS` under their current names (a current name present wins)."""
    if not isinstance(summary, dict):
        return summary
    renamed = {RENAMED_FIELDS.get(name, name): value for name, value in summary.items()}
    return {**renamed, **{name: summary[name] for name in summary if name in RENAMED_FIELDS.values()}}


def load_records(root: str = ".") -> list[dict]:
    """Every run record under `root`: `results/*.json` and the H100 runs file, each as the record's dict plus
    "source" (its path relative to `root`, the link in the tables) and "where" ("CPU" or the accelerator).  JSON
    files in results/ that are not run records (no "config" and "summary") are left out."""
    records = []
    for path in sorted(glob.glob(os.path.join(root, RESULTS_GLOB))):
        record = read_json(path)
        if isinstance(record, dict) and isinstance(record.get("config"), dict) and "summary" in record:
            source = os.path.relpath(path, root).replace(os.sep, "/")
            record = {**record, "source": source, "where": where(record.get("machine", {}), source)}
            records.extend(
                sweep_groups(record)
                if is_sweep(record)
                else [{**record, "summary": with_current_names(record["summary"])}]
            )
    if os.path.exists(os.path.join(root, GPU_RUNS)):
        records.extend(gpu_records(root))
    return records


def is_sweep(record: dict) -> bool:
    """A record of `python -m experiments.sweep … --record`: its summary is sweep.json's content."""
    return isinstance(record["summary"], dict) and {"members", "groups"} <= set(record["summary"])


def sweep_groups(record: dict) -> list[dict]:
    """A sweep record as one record per group of seeds: the group's config (the sweep's, with the group's values),
    its mean as the summary, its standard deviation as "spread", and its seeds as "seeds"."""
    groups = []
    for group in field(record, "summary", "groups"):
        config = json.loads(json.dumps(record["config"]))
        for path, value in group["values"].items():
            node = config
            *parents, leaf = path.split(".")
            for part in parents:
                node = node[part]
            node[leaf] = value
        members = {m["name"]: m for m in record["summary"]["members"]}
        seeds = sorted(members[name]["values"].get("seed", config.get("seed", 0)) for name in group["members"])
        config["seed"] = seeds[0]
        groups.append(
            {
                **record,
                "config": config,
                "summary": with_current_names(group["mean"]),
                "spread": with_current_names(group["std"]),
                "seeds": seeds,
            }
        )
    return groups


def seeds_label(record: dict) -> str:
    """ "0" for a run; "0–2 (3)" for a sweep group of seeds 0, 1, 2."""
    seeds = record.get("seeds")
    if not seeds:
        return str(record["config"].get("seed", 0))
    if seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}–{seeds[-1]} ({len(seeds)})"
    return ", ".join(map(str, seeds))


def with_spread(record: dict, name: str, formatted: str, format_spread) -> str:
    """`formatted` (the value of summary[name]), followed by " ± <spread>" for a sweep group of several seeds."""
    spread = record.get("spread", {}).get(name)
    if spread is None or len(record.get("seeds", ())) < 2:
        return formatted
    return f"{formatted} ± {format_spread(spread)}"


def read_json(path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as error:
        raise TableError(f"{path}: not valid JSON ({error.msg}, line {error.lineno}); re-run its command") from None


def where(machine: dict, source: str = "") -> str:
    """Where a record was measured, from machine.devices ("1 × cpu" -> "CPU", "1 × NVIDIA H100 80GB HBM3" ->
    "H100", "8 × NVIDIA H100 …" -> "8 × H100")."""
    devices = machine.get("devices")
    if not isinstance(devices, str) or "×" not in devices:
        raise TableError(f"{source}: machine.devices should read '<count> × <device kind>', got {devices!r}")
    count, kind = (part.strip() for part in devices.split("×", 1))
    name = "CPU" if kind.lower() == "cpu" else accelerator_name(kind)
    return name if count == "1" else f"{count} × {name}"


def accelerator_name(kind: str) -> str:
    """The short name of a device kind: "NVIDIA H100 80GB HBM3" -> "H100"; "TPU v4" stays."""
    words = kind.split()
    if words and words[0].upper() == "NVIDIA" and len(words) > 1:
        return words[1]
    return kind


def gpu_records(root: str = ".") -> list[dict]:
    """The H100 runs file's runs as run records: the summary from the file, the machine and versions from its env
    file, the command and config (family, name, seed, num_steps) from the `run` lines of gpu_session.sh."""
    runs = read_json(os.path.join(root, GPU_RUNS))
    env = gpu_env(os.path.join(root, GPU_ENV))
    invocations = gpu_invocations(os.path.join(root, GPU_SCRIPT))
    records = []
    for name, run in sorted(runs.items()):
        if "summary" not in run:
            continue
        if name not in invocations:
            raise TableError(f"{GPU_RUNS}: run {name!r} has no `run {name} …` line in {GPU_SCRIPT}")
        config_name, overrides = invocations[name]
        summary = with_current_names(run["summary"])
        family = "vae" if "test_neg_elbo" in summary else "gan" if "classifier_fid" in summary else None
        values = dict(o[len("--config.") :].split("=", 1) for o in overrides if o.startswith("--config."))
        config = {
            "family": family,
            "name": config_name,
            "seed": int(values.get("seed", 0)),
            "num_steps": int(values.get("num_steps", summary.get("steps", 0))),
        }
        command = " ".join(
            [
                f"python3 -m experiments.main --config experiments/configs/{config_name}.py",
                f"--workdir /tmp/runs/{name} --config.data_dir=data/fashion-mnist",
                *overrides,
            ]
        )
        records.append(
            {
                "command": f"{command}  ({GPU_SCRIPT})",
                "date": env["date"],
                "machine": env["machine"],
                "versions": env["versions"],
                "config": config,
                "summary": summary,
                "source": GPU_RUNS,
                "where": where(env["machine"], GPU_ENV),
            }
        )
    return records


def gpu_env(path: str) -> dict:
    """The env file gpu_session.sh writes: nvidia-smi's CSV (header, one line per GPU), a `jax … flax … optax …`
    line, then `date -u`."""
    with open(path) as f:
        lines = [line.strip() for line in f if line.strip()]
    try:
        gpu = lines[1].split(",")[0].strip()
        words = lines[2].split()
        versions = {name: words[words.index(name) + 1] for name in ("jax", "flax", "optax")}
        date = datetime.datetime.strptime(lines[3], "%a %b %d %I:%M:%S %p %Z %Y").strftime("%Y-%m-%dT%H:%M:%SZ")
    except (IndexError, ValueError) as error:
        raise TableError(f"{path}: not the env file gpu_session.sh writes ({error})") from None
    return {"machine": {"devices": f"1 × {gpu}"}, "versions": versions, "date": date}


def gpu_invocations(path: str) -> dict[str, tuple[str, list[str]]]:
    """{run name: (config name, [--config overrides])} from gpu_session.sh's `run <name> <config> <timeout> …`."""
    invocations = {}
    with open(path) as f:
        for line in f:
            if not line.startswith("run "):
                continue
            words = shlex.split(line.split(";")[0], comments=True)
            if len(words) >= 4:
                invocations[words[1]] = (words[2], words[4:])
    return invocations


# Rendering.


def field(record: dict, *path: str):
    """record[path[0]][path[1]]…, or a one-line error naming the file and the missing field."""
    value = record
    for key in path:
        if not isinstance(value, dict) or key not in value:
            raise TableError(f"{record['source']}: has no {'.'.join(path)}")
        value = value[key]
    return value


def link(source: str, page: str = PAGE) -> str:
    """A Markdown link to `source` (a path in the repository) from `page` (the results page by default):
    "[results/x.json](../results/x.json)"."""
    return f"[{source}]({posixpath.relpath(source, posixpath.dirname(page) or '.')})"


def significant(x: float, digits: int = 3) -> str:
    """`digits` significant digits, never an exponent: 333.4 -> "333", 0.3361 -> "0.336", 4.514 -> "4.51"."""
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(x))))
    return f"{x:,.{decimals}f}"


def near_one(x: float) -> str:
    """Two decimals, more where needed to tell the value from 1: 1.18, 2.95, 1.005."""
    decimals = 2 if x == 1 else max(2, -math.floor(math.log10(abs(x - 1))))
    return f"{x:.{decimals}f}"


def angle(x: float) -> str:
    """At most three significant digits and two decimals: 0.09, 0.73, 10.9, 74.4."""
    return f"{x:.{min(2, max(0, 2 - math.floor(math.log10(x))))}f}" if x >= 1 else f"{x:.2f}"


# The sample-quality numbers of a row, each with its format: FID and score to three significant digits, precision and
# recall to three decimals.
SCORES = {
    "classifier_fid": significant,
    "classifier_score": significant,
    "classifier_precision": "{:.3f}".format,
    "classifier_recall": "{:.3f}".format,
}


def median(values: list[float]) -> float:
    values = sorted(values)
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def markdown(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table; an empty cell is written "| |"."""
    lines = [header, *rows]
    lines = ["|" + "|".join(f" {cell} " if cell else " " for cell in line) + "|" for line in lines]
    return "\n".join([lines[0], "|" + "---|" * len(header), *lines[1:]])


def vae_table(records: list[dict]) -> str:
    """One row per VAE record, by config name, seed, where: −ELBO and IWAE −log p(x) in nats, two decimals."""
    rows = []
    for record in records:
        if field(record, "config", "family") != "vae":
            continue
        config, summary = record["config"], record["summary"]
        name, seed = field(record, "config", "name"), field(record, "config", "seed")
        elbo = with_spread(record, "test_neg_elbo", f"{field(record, 'summary', 'test_neg_elbo'):.2f}", "{:.2f}".format)
        iwae = summary.get("test_iwae_nll")
        iwae = ABSENT if iwae is None else with_spread(record, "test_iwae_nll", f"{iwae:.2f}", "{:.2f}".format)
        label = f"`{name}`" if training_k(config) is None else f"`{name}`, k = {training_k(config)}"
        cells = [label, record["where"], seeds_label(record), elbo, iwae]
        rows.append(((config["name"], seed, record["where"], record["source"]), [*cells, link(record["source"])]))
    header = ["config", "where", "seed", "test −ELBO", "test IWAE −log p(x)", "results file"]
    return markdown(header, [cells for _, cells in sorted(rows)])


def ae_pca_table(records: list[dict]) -> str:
    """One row per (ae_vs_pca record, k), by data set then k: test MSE per pixel of PCA, the linear AE and the AE,
    the linear AE over PCA, the principal angles' median and max (degrees), PCA's λ_k/λ_(k+1)."""
    rows = []
    for record in records:
        summary = record["summary"]
        if "pca_mse" not in summary:
            continue
        dataset = field(record, "summary", "dataset")
        columns = ("k", "pca_mse", "linear_ae_mse", "linear_ae_over_pca", "ae_mse", "principal_angles_deg")
        k, pca, linear, ratio, ae, angles = (field(record, "summary", name) for name in columns)
        gaps = field(record, "summary", "pca_eigenvalue_ratio")
        for i in range(len(k)):
            gap = ABSENT if gaps[i] is None else near_one(gaps[i])
            cells = [
                dataset,
                str(k[i]),
                f"{pca[i]:.5f}",
                f"{linear[i]:.5f}",
                f"{ratio[i]:.4f}",
                f"{ae[i]:.5f}",
                f"{angle(median(angles[i]))}, {angle(max(angles[i]))}",
                gap,
                link(record["source"]),
            ]
            rows.append(((dataset, k[i], record["source"]), cells))
    header = ["data", "k", "PCA", "linear AE", "linear AE / PCA", "AE", "angles (°)", "λ_k/λ_(k+1)", "results file"]
    return markdown(header, [cells for _, cells in sorted(rows)])


def training_k(config: dict) -> int | None:
    """The number of importance samples of a VAE trained on the IWAE bound; None for any other objective."""
    return config["num_importance_samples"] if config.get("objective") == "iwae" else None


def model_name(record: dict) -> str:
    """A short name of the scored model, from its config: "VAE, MLP 500, 20-d latent", "GAN, MLP",
    "conditional DCGAN, hinge + SN", "VQ-VAE, conv 32-64, 128 codes, PixelCNN prior", "…, trained on IWAE k = 5";
    the accelerator appended when not measured on a CPU."""
    family, model = field(record, "config", "family"), record["config"].get("model", {})
    architecture = model.get("architecture", "mlp")
    if family == "vqvae":
        widths = "-".join(str(width) for width in model.get("features", ()))
        name = f"VQ-VAE, conv {widths}, {model.get('num_codes')} codes, PixelCNN prior"
    elif family == "gan":
        name = "GAN, MLP" if architecture == "mlp" else architecture.upper()
        if model.get("conditional"):
            name = "conditional " + name
        loss = LOSS_NAMES.get(record["config"].get("loss"))
        extras = ([loss] if loss else []) + (["SN"] if model.get("spectral_norm") else [])
        if extras:
            name += ", " + " + ".join(extras)
    else:  # the VAE and every family with an encoder: its name, architecture, widths and code size
        layers = "-".join(str(width) for width in model.get("hidden", ())) if architecture == "mlp" else ""
        name = (
            f"{str(family).upper()}, {'MLP' if architecture == 'mlp' else architecture}{' ' + layers if layers else ''}"
        )
        if "latent_dim" in model:
            name += f", {model['latent_dim']}-d latent"
        if training_k(record["config"]) is not None:
            name += f", trained on IWAE k = {training_k(record['config'])}"
    return name if record["where"] == "CPU" else f"{name}, {record['where']}"


def floor_groups(records: list[dict]) -> list[tuple[dict, list[dict]]]:
    """`records` of one data set split by the floor they report, in order of first appearance: [(floor, records)].
    Floors of one classifier and the same images agree to float32 rounding; a classifier trained on another machine
    (its training is not bit-identical across CPU types) gives another floor, so its scores form a group of their
    own and are never compared with the others' against one floor."""
    groups: list[tuple[dict, list[dict]]] = []
    for record in records:
        floor = {name: field(record, "summary", name) for name in FLOOR_FIELDS}
        for known, members in groups:
            if all(math.isclose(known[name], floor[name], rel_tol=FLOOR_RTOL) for name in FLOOR_FIELDS):
                members.append(record)
                break
        else:
            groups.append((floor, [record]))
    return groups


def floor_title(dataset: str, floor: dict, records: list[dict]) -> str:
    """ "Fashion-MNIST (10,000), classifier 0.901": the data set, n, and the test accuracy of the classifier whose
    features scored the group (when its records carry it)."""
    title = f"{DATASET_NAMES.get(dataset, dataset)} ({int(floor['num_samples']):,})"
    accuracy = records[0]["summary"].get("classifier_test_accuracy")
    return title if accuracy is None else f"{title}, classifier {accuracy:.3f}"


def sample_quality_table(records: list[dict]) -> str:
    """Per data set, the floor row (test vs train images, linking every file it is read from), then one row per
    record with sample-quality fields: classifier FID and score to three significant digits, precision and recall
    to three decimals.  Records with the H100 file as their source are left out (module docstring)."""
    scored = [r for r in records if "classifier_fid" in r["summary"] and r["source"] != GPU_RUNS]
    by_dataset = {}
    for record in scored:
        by_dataset.setdefault(field(record, "config", "dataset"), []).append(record)
    family_order = {"ae": 0, "vae": 1, "gan": 2}
    rows = []
    for dataset in sorted(by_dataset):
        group = sorted(
            by_dataset[dataset],
            key=lambda r: (
                family_order.get(field(r, "config", "family"), 3),
                field(r, "config", "name"),
                field(r, "config", "num_steps"),
                r["config"].get("seed", 0),
                r["source"],
            ),
        )
        for floor, members in floor_groups(group):
            rows.extend(floor_block(dataset, floor, members))
    header = [
        "data set (n), classifier test accuracy",
        "model",
        "config, steps",
        "classifier FID ↓",
        "classifier score ↑",
        "precision ↑",
        "recall ↑",
        "results file",
    ]
    return markdown(header, rows)


def floor_block(dataset: str, floor: dict, group: list[dict]) -> list[list[str]]:
    """The floor row of one data set and classifier (linking every file it is read from), then a row per record."""
    sources = ", ".join(link(source) for source in dict.fromkeys(r["source"] for r in group))
    rows = [
        [
            floor_title(dataset, floor, group),
            "floor: test vs train images",
            "–",
            significant(floor["classifier_fid_floor"]),
            significant(floor["classifier_score_real"]),
            f"{floor['classifier_precision_floor']:.3f}",
            f"{floor['classifier_recall_floor']:.3f}",
            sources,
        ]
    ]
    for record in group:
        config = record["config"]
        steps = f"`{config['name']}`, {field(record, 'config', 'num_steps'):,}"
        if record.get("seeds"):
            steps += f", seeds {seeds_label(record)}"
        elif config.get("seed", 0):
            steps += f", seed {config['seed']}"
        cells = [score_cell(record, name, style) for name, style in SCORES.items()]
        rows.append(["", model_name(record), steps, *cells, link(record["source"])])
    return rows


def score_cell(record: dict, name: str, style) -> str:
    """summary[name] in `style`, ± the spread over a sweep group's seeds; "—" where the record has no such field."""
    value = record["summary"].get(name)
    return ABSENT if value is None else with_spread(record, name, style(value), style)


def zoo_key(record: dict) -> tuple[str, int]:
    """The zoo row of a record: its config's name and, for the IWAE objective, its k."""
    config = record["config"]
    k = config.get("num_importance_samples") if config.get("objective") == "iwae" else None
    return field(record, "config", "name"), k or 0


def zoo_command(record: dict) -> str:
    """The record's command without its --record flag (the row's file is linked beside it)."""
    words = shlex.split(field(record, "command"))
    kept, skip = [], False
    for word in words:
        if skip:
            skip = False
        elif word == "--record":
            skip = True
        elif not word.startswith("--record="):
            kept.append(word)
    return f"`{shlex.join(kept)}`"


def wall_time(record: dict) -> str:
    """ "14.2 min (load 2.1)": the command's wall time and the machine's 15-minute load average when it ended, with
    the steps it trained when it resumed a run; "—" for records written before commands recorded their time."""
    if "wall_s" not in record:
        return ABSENT
    load = record.get("load_average_1_5_15_min")
    text = f"{record['wall_s'] / 60:.1f} min" + (f" (load {load[2]:.1f})" if load else "")
    if record.get("first_step"):
        text += f", steps {record['first_step']:,}–{field(record, 'config', 'num_steps'):,} (resumed)"
    return text


def zoo_table(records: list[dict]) -> str:
    """The model zoo (`ZOO`): per row the CPU record with the most seeds (then with sample-quality scores, then the
    newest): test −ELBO and IWAE −log p(x) in nats, test MSE per pixel, classifier FID with its floor, precision,
    recall, the command's wall time, the command; a row with no record says so."""
    best: dict[tuple, tuple] = {}
    for record in records:
        if record["where"] != "CPU" or zoo_key(record) not in ZOO:
            continue
        rank = (len(record.get("seeds") or [0]), "classifier_fid" in record["summary"], record.get("date", ""))
        if zoo_key(record) not in best or rank > best[zoo_key(record)][0]:
            best[zoo_key(record)] = (rank, record)
    rows = []
    for name, k in ZOO:
        if (name, k) not in best:
            command = f"--config.num_importance_samples={k}" if k else ""
            rows.append([ABSENT, f"`{name}` {command}".strip(), *[ABSENT] * 8, "not run yet"])
            continue
        record = best[name, k][1]
        seeds = seeds_label(record)
        steps = f"`{name}`, {field(record, 'config', 'num_steps'):,}, seed{'s' if record.get('seeds') else ''} {seeds}"
        fid = score_cell(record, "classifier_fid", SCORES["classifier_fid"])
        if fid != ABSENT:
            fid += f" ({significant(field(record, 'summary', 'classifier_fid_floor'))})"
        rows.append(
            [
                model_name(record),
                steps,
                score_cell(record, "test_neg_elbo", "{:.2f}".format),
                score_cell(record, "test_iwae_nll", "{:.2f}".format),
                score_cell(record, "test_mse", "{:.4f}".format),
                fid,
                score_cell(record, "classifier_precision", SCORES["classifier_precision"]),
                score_cell(record, "classifier_recall", SCORES["classifier_recall"]),
                wall_time(record),
                zoo_command(record),
                link(record["source"]),
            ]
        )
    header = [
        "model",
        "config, steps, seeds",
        "test −ELBO",
        "test IWAE −log p(x)",
        "test MSE",
        "classifier FID (floor)",
        "precision",
        "recall",
        "wall time, 2 CPU cores",
        "command",
        "results file",
    ]
    return markdown(header, rows)


def own_images_table(records: list[dict]) -> str:
    """README.md's table: per config of `OWN_IMAGES` with a CPU record, its newest: the data set, the model, the
    steps, test −ELBO (nats per image, where the family has one), classifier FID, precision and recall each with its
    floor in brackets, the command's wall time, the results file (linked from the README)."""
    newest: dict[str, dict] = {}
    for record in records:
        name = record["config"].get("name")
        if (
            name in OWN_IMAGES
            and record["where"] == "CPU"
            and record.get("date", "") >= newest.get(name, {}).get("date", "")
        ):
            newest[name] = record
    rows = []
    for name in (name for name in OWN_IMAGES if name in newest):
        record = newest[name]
        summary = record["summary"]
        dataset = field(record, "config", "dataset")
        rows.append(
            [
                DATASET_NAMES.get(dataset, dataset),
                model_name(record),
                f"`{name}`, {field(record, 'config', 'num_steps'):,}",
                score_cell(record, "test_neg_elbo", "{:,.0f}".format),
                *(
                    with_floor(summary, score)
                    for score in ("classifier_fid", "classifier_precision", "classifier_recall")
                ),
                wall_time(record),
                link(record["source"], README_PAGE),
            ]
        )
    header = ["data set", "model", "config, steps", "test −ELBO", "classifier FID (floor)", "precision (floor)"]
    header += ["recall (floor)", "wall time, 2 CPU cores", "results file"]
    return markdown(header, rows)


def with_floor(summary: dict, score: str) -> str:
    """ "21.3 (8.59)": summary[score] and its floor (`<score>_floor`) in the score's style; "—" where it has none."""
    style = SCORES[score]
    return ABSENT if score not in summary else f"{style(summary[score])} ({style(summary[score + '_floor'])})"


def render_readme_tables(records: list[dict]) -> dict[str, str]:
    """{table name: its Markdown} for README.md."""
    return {"own_images": own_images_table(records)}


def render_tables(records: list[dict]) -> dict[str, str]:
    """{table name: its Markdown} for the results page."""
    return {
        "vae": vae_table(records),
        "ae_pca": ae_pca_table(records),
        "sample_quality": sample_quality_table(records),
        "zoo": zoo_table(records),
    }


# The page's blocks.


def block_pattern(name: str) -> re.Pattern:
    return re.compile(
        rf"(<!-- table:{name} \(experiments/readme_tables\.py\) -->\n)(.*?)(<!-- /table:{name} -->)", re.DOTALL
    )


def read_blocks(page: str, page_name: str = PAGE, names: tuple[str, ...] = TABLES) -> dict[str, str]:
    """{table name: the table between its markers in `page`} for each of `names`; a one-line error for a missing
    marker."""
    blocks = {}
    for name in names:
        match = block_pattern(name).search(page)
        if match is None:
            raise TableError(
                f"{page_name} has no '<!-- table:{name} (experiments/readme_tables.py) -->' … "
                f"'<!-- /table:{name} -->' block"
            )
        blocks[name] = match.group(2).strip("\n")
    return blocks


def replace_blocks(page: str, tables: dict[str, str], page_name: str = PAGE) -> str:
    """`page` with each table's block replaced by `tables[name]` (a blank line either side)."""
    read_blocks(page, page_name, tuple(tables))
    for name, table in tables.items():
        page = block_pattern(name).sub(lambda m, t=table: f"{m.group(1)}\n{t}\n\n{m.group(3)}", page, count=1)
    return page


def check(page: str, tables: dict[str, str], name: str = PAGE) -> list[str]:
    """One line per table whose block in `page` (called `name` in the lines) differs from its rendering from the
    files; [] when all agree."""
    blocks = read_blocks(page, name, tuple(tables))
    return [
        f"{name}: table {table} differs from its results files; run python -m experiments.readme_tables"
        for table in tables
        if blocks[table] != tables[table].strip("\n")
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.readme_tables", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help=f"compare {PAGE} and {README_PAGE} with the files")
    parser.add_argument("--root", default=".", help="the repository root (holding docs/, results/, benchmarks/)")
    parser.add_argument(
        "--page", "--readme", default=None, help=f"the results page to check or rewrite (default: <root>/{PAGE})"
    )
    args = parser.parse_args(argv)
    pages = [(os.path.normpath(args.page or os.path.join(args.root, PAGE)), render_tables)]
    readme = os.path.normpath(os.path.join(args.root, README_PAGE))
    if os.path.exists(readme):  # a copied results page alone (tests) has none
        pages.append((readme, render_readme_tables))
    try:
        records = load_records(args.root)
        texts = {}
        for path, _ in pages:
            with open(path) as f:
                texts[path] = f.read()
        tables = {path: render(records) for path, render in pages}
        if args.check:
            differences = [line for path in texts for line in check(texts[path], tables[path], path)]
            for line in differences:
                print(line, file=sys.stderr)
            return 1 if differences else 0
        updated = {path: replace_blocks(texts[path], tables[path], path) for path in texts}
    except (TableError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for path, text in updated.items():
        if text != texts[path]:
            with open(path, "w") as f:
                f.write(text)
        print(f"{path}: {', '.join(tables[path])} tables from {len(records)} records")
    return 0


if __name__ == "__main__":
    sys.exit(main())
