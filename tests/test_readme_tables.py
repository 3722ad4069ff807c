"""The results page's tables (docs/results.md) are what experiments/readme_tables.py renders from the committed
results files, a number changed by hand is caught, and the rendering is right on small records built here; the
README fits a screen and links the pages it moved its detail to, every link of the three pages resolves,
docs/reliability.md names tests that exist, and the throughput rows of benchmarks/README.md are their files' numbers."""

import json
import os
import pathlib
import re

import pytest

from experiments import readme_tables

from conftest import REPO_ROOT

CPU = {"platform": "Linux", "processor": "x86_64", "cpu_count": 2, "devices": "1 × cpu"}
VERSIONS = {"python": "3.11.7", "jax": "0.10.2", "flax": "0.12.0", "optax": "0.2.6"}
FLOOR = {
    "num_samples": 360,
    "classifier_fid_floor": 8.5812,
    "classifier_score_real": 9.4412,
    "classifier_precision_floor": 0.8833,
    "classifier_recall_floor": 0.9361,
}


def record(config: dict, summary: dict, machine: dict = CPU) -> dict:
    """A run record as experiments.main --record writes it."""
    return {
        "command": f"python -m experiments.main --config experiments/configs/{config['name']}.py --workdir runs/x",
        "date": "2026-11-28T12:00:00Z",
        "machine": machine,
        "versions": VERSIONS,
        "config": {"seed": 0, "dataset": "digits", "num_steps": 100, **config},
        "summary": summary,
    }


def vae_config(name="vae_digits", **fields):
    return {
        "family": "vae",
        "name": name,
        "model": {"architecture": "mlp", "hidden": [256, 128], "latent_dim": 8},
        **fields,
    }


def gan_config(name="gan_digits", **model):
    return {
        "family": "gan",
        "name": name,
        "loss": "non_saturating",
        "model": {"architecture": "mlp", "conditional": False, "spectral_norm": False, **model},
    }


def scores(fid, score, precision, recall, **floor):
    return {
        "classifier_fid": fid,
        "classifier_score": score,
        "classifier_precision": precision,
        "classifier_recall": recall,
        **FLOOR,
        **floor,
    }


def write(root, records: dict) -> list[dict]:
    """Writes {name: record} as root/results/<name>.json; returns what load_records reads back."""
    os.makedirs(root / "results", exist_ok=True)
    for name, value in records.items():
        (root / "results" / f"{name}.json").write_text(json.dumps(value, indent=2))
    return readme_tables.load_records(str(root))


def table_rows(table: str) -> list[str]:
    return table.splitlines()[2:]


# (a) The results page and the committed files agree.


def page_text() -> str:
    with open(os.path.join(REPO_ROOT, readme_tables.PAGE)) as f:
        return f.read()


def test_results_tables_are_rendered_from_the_results_files():
    records = readme_tables.load_records(REPO_ROOT)
    assert readme_tables.check(page_text(), readme_tables.render_tables(records)) == []
    readme = (pathlib.Path(REPO_ROOT) / readme_tables.README_PAGE).read_text()
    assert readme_tables.check(readme, readme_tables.render_readme_tables(records), "README.md") == []


def test_check_reports_a_number_changed_by_hand():
    tables = readme_tables.render_tables(readme_tables.load_records(REPO_ROOT))
    agreeing = readme_tables.replace_blocks(page_text(), tables)
    assert readme_tables.check(agreeing, tables) == []
    block = readme_tables.read_blocks(agreeing)["vae"]
    first_row = table_rows(block)[0]
    number = re.search(r"\| (\d+)\.(\d\d)\b", first_row)  # the first row's −ELBO (a mean, where it has seeds)
    edited_row = first_row.replace(number.group(0), f"| {number.group(1)}.{(int(number.group(2)) + 1) % 100:02d}", 1)
    edited = agreeing.replace(first_row, edited_row, 1)
    assert edited != agreeing
    assert readme_tables.check(edited, tables) == [
        "docs/results.md: table vae differs from its results files; run python -m experiments.readme_tables"
    ]


def test_h100_runs_are_read_with_their_commands_and_machine():
    runs = {(r["config"]["name"], r["config"]["seed"]): r for r in readme_tables.gpu_records(REPO_ROOT)}
    assert {("vae_mlp_fashion_mnist", s) for s in (0, 1, 2)} | {("vae_conv_fashion_mnist", 0)} <= set(runs)
    seed1 = runs["vae_mlp_fashion_mnist", 1]
    assert seed1["where"] == "H100" and seed1["source"] == readme_tables.GPU_RUNS
    assert "--config.seed=1" in seed1["command"] and seed1["versions"]["jax"] == "0.11.2"
    assert seed1["date"] == "2026-11-27T22:53:15Z"


# (b) Rendering, on records built here.


def test_vae_rows_sorted_by_config_then_seed_with_and_without_iwae(tmp_path):
    records = write(
        tmp_path,
        {
            "b_seed1": record(vae_config("vae_b", seed=1), {"test_neg_elbo": 126.2449}),
            "b_seed0": record(vae_config("vae_b"), {"test_neg_elbo": 126.8149, "test_iwae_nll": 119.0551}),
            "a_gpu": record(vae_config("vae_a"), {"test_neg_elbo": 23.456}, {"devices": "1 × NVIDIA H200"}),
            "gan": record(gan_config(), scores(10.4, 8.21, 0.8, 0.9)),
        },
    )
    assert table_rows(readme_tables.vae_table(records)) == [
        "| `vae_a` | H200 | 0 | 23.46 | — | [results/a_gpu.json](../results/a_gpu.json) |",
        "| `vae_b` | CPU | 0 | 126.81 | 119.06 | [results/b_seed0.json](../results/b_seed0.json) |",
        "| `vae_b` | CPU | 1 | 126.24 | — | [results/b_seed1.json](../results/b_seed1.json) |",
    ]


def sweep_record(config: dict, members: list[tuple[dict, dict]]) -> dict:
    """A record as experiments.sweep --record writes it: the summary is sweep.json's content, whose groups are
    recomputed here with gen_jax.sweep.groups."""
    from gen_jax import sweep

    named = [sweep.Member("_".join(f"{k}={v}" for k, v in values.items()), values, None) for values, _ in members]
    summaries = {member.name: summary for member, (_, summary) in zip(named, members)}
    summary = {
        "members": [{"name": m.name, "values": m.values, "summary": summaries[m.name]} for m in named],
        "groups": sweep.groups(named, summaries),
    }
    return {**record(config, summary), "command": "python -m experiments.sweep --sweep seed=0:3 --sweep beta=1,2"}


def test_a_sweep_gives_one_row_per_group_with_mean_and_std_over_its_seeds(tmp_path):
    elbo = {(0, 1.0): 20.0, (1, 1.0): 21.0, (2, 1.0): 23.0, (0, 2.0): 30.0, (1, 2.0): 30.0, (2, 2.0): 33.0}
    members = [
        ({"seed": seed, "beta": beta}, {"test_neg_elbo": value, **scores(10.0 + seed, 8.0, 0.5 + beta / 10, 0.7)})
        for (seed, beta), value in elbo.items()
    ]
    records = write(tmp_path, {"sweep": sweep_record(vae_config("vae_s", beta=1.0), members)})
    assert [(r["config"]["beta"], r["seeds"]) for r in records] == [(1.0, [0, 1, 2]), (2.0, [0, 1, 2])]
    assert table_rows(readme_tables.vae_table(records)) == [
        "| `vae_s` | CPU | 0–2 (3) | 21.33 ± 1.53 | — | [results/sweep.json](../results/sweep.json) |",
        "| `vae_s` | CPU | 0–2 (3) | 31.00 ± 1.73 | — | [results/sweep.json](../results/sweep.json) |",
    ]
    quality = table_rows(readme_tables.sample_quality_table(records))
    assert quality[1] == (
        "| | VAE, MLP 256-128, 8-d latent | `vae_s`, 100, seeds 0–2 (3) | 11.0 ± 1.00 | 8.00 ± 0 | 0.600 ± 0.000 | "
        "0.700 ± 0.000 | [results/sweep.json](../results/sweep.json) |"
    )
    assert "| 0.700 ± 0.000 | 0.700 ± 0.000 |" in quality[2]


def test_ae_vs_pca_rows(tmp_path):
    summary = {
        "dataset": "digits",
        "k": [2, 32],
        "pca_mse": [0.054561, 0.002751],
        "linear_ae_mse": [0.054563, 0.002734],
        "ae_mse": [0.041921, 0.002341],
        "linear_ae_over_pca": [1.00004, 0.99548],
        "principal_angles_deg": [[0.05, 0.13], [0.01, 0.03, 0.05, 10.94]],
        "pca_eigenvalue_ratio": [1.1812, 1.0049],
    }
    records = write(tmp_path, {"ae_vs_pca_digits": record({"family": "ae", "name": "ae_vs_pca"}, summary)})
    link = "[results/ae_vs_pca_digits.json](../results/ae_vs_pca_digits.json)"
    assert table_rows(readme_tables.ae_pca_table(records)) == [
        f"| digits | 2 | 0.05456 | 0.05456 | 1.0000 | 0.04192 | 0.09, 0.13 | 1.18 | {link} |",
        f"| digits | 32 | 0.00275 | 0.00273 | 0.9955 | 0.00234 | 0.04, 10.9 | 1.005 | {link} |",
    ]


def test_sample_quality_floor_once_per_data_set_then_one_row_per_record(tmp_path):
    conditional = gan_config("cdcgan", architecture="dcgan", conditional=True, spectral_norm=True)
    conditional["loss"] = "hinge"
    records = write(
        tmp_path,
        {
            "gan": record({**gan_config(), "num_steps": 10000}, scores(10.41, 8.2149, 0.8, 0.90625)),
            "cdcgan": record(conditional, scores(4.514, 9.74, 0.958, 0.772)),
            "vae": record(vae_config(), {"test_neg_elbo": 23.0, **scores(21.1, 7.67, 0.758, 0.783)}),
            "vae_no_scores": record(vae_config(), {"test_neg_elbo": 23.0}),
        },
    )
    assert table_rows(readme_tables.sample_quality_table(records)) == [
        "| digits (360) | floor: test vs train images | – | 8.58 | 9.44 | 0.883 | 0.936 | "
        "[results/vae.json](../results/vae.json), [results/cdcgan.json](../results/cdcgan.json), "
        "[results/gan.json](../results/gan.json) |",
        "| | VAE, MLP 256-128, 8-d latent | `vae_digits`, 100 | 21.1 | 7.67 | 0.758 | 0.783 | "
        "[results/vae.json](../results/vae.json) |",
        "| | conditional DCGAN, hinge + SN | `cdcgan`, 100 | 4.51 | 9.74 | 0.958 | 0.772 | "
        "[results/cdcgan.json](../results/cdcgan.json) |",
        "| | GAN, MLP | `gan_digits`, 10,000 | 10.4 | 8.21 | 0.800 | 0.906 | [results/gan.json](../results/gan.json) |",
    ]


def test_scores_of_another_classifier_get_a_floor_row_of_their_own(tmp_path):
    # The reference classifier trained on another CPU type is not bit-identical: its floor differs, and its scores
    # are shown against that floor, never against another classifier's.
    other = {"classifier_fid_floor": 9.1, "classifier_test_accuracy": 0.97}
    records = write(
        tmp_path,
        {
            "gan_a": record(gan_config("gan_a"), {**scores(10.4, 8.21, 0.8, 0.9), "classifier_test_accuracy": 0.975}),
            "gan_b": record(gan_config("gan_b"), scores(11.0, 8.0, 0.8, 0.9, **other)),
            "gan_c": record(gan_config("gan_c"), {**scores(12.0, 8.1, 0.7, 0.8), "classifier_test_accuracy": 0.975}),
        },
    )
    rows = table_rows(readme_tables.sample_quality_table(records))
    assert [row.split(" | ")[:3] for row in rows] == [
        ["| digits (360), classifier 0.975", "floor: test vs train images", "–"],
        ["|", "GAN, MLP", "`gan_a`, 100"],
        ["|", "GAN, MLP", "`gan_c`, 100"],
        ["| digits (360), classifier 0.970", "floor: test vs train images", "–"],
        ["|", "GAN, MLP", "`gan_b`, 100"],
    ]
    assert rows[0].split(" | ")[3] == "8.58" and rows[3].split(" | ")[3] == "9.10"
    assert "gan_b.json" not in rows[0] and "gan_b.json" in rows[3]


def with_old_names(summary: dict) -> dict:
    """`summary` as records written before the classifier's scores were renamed hold it (fid, precision, …)."""
    old = {new: old for old, new in readme_tables.RENAMED_FIELDS.items()}
    return {old.get(name, name): value for name, value in summary.items()}


def test_records_with_the_old_score_names_make_the_same_tables(tmp_path):
    runs = {
        "gan_a": (gan_config("gan_a"), scores(10.4, 8.21, 0.8, 0.9)),
        "vae": (vae_config(), scores(21.1, 7.67, 0.758, 0.783)),
    }
    seeds = [({"seed": s}, scores(12.0 + s, 8.1, 0.7, 0.8)) for s in range(3)]
    current = write(
        tmp_path / "current",
        {
            **{name: record(c, summary) for name, (c, summary) in runs.items()},
            "sweep": sweep_record(gan_config("gan_s"), seeds),
        },
    )
    old = write(
        tmp_path / "old",
        {
            **{name: record(c, with_old_names(summary)) for name, (c, summary) in runs.items()},
            "sweep": sweep_record(gan_config("gan_s"), [(v, with_old_names(summary)) for v, summary in seeds]),
        },
    )
    assert "fid" in json.loads((tmp_path / "old" / "results" / "gan_a.json").read_text())["summary"]
    table = readme_tables.sample_quality_table(current)
    assert table == readme_tables.sample_quality_table(old) and "13.0 ± 1.00" in table and "10.4" in table


def copy_page(root) -> pathlib.Path:
    """The committed results page, copied to `root`/docs/results.md."""
    page = root / readme_tables.PAGE
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(page_text())
    return page


def test_a_damaged_results_file_is_one_line_and_the_page_is_left_alone(tmp_path, capsys):
    write(tmp_path, {"gan_a": record(gan_config("gan_a"), scores(10.4, 8.21, 0.8, 0.9))})
    (tmp_path / "results" / "gan_b.json").write_text('{"config": {"name": ')
    page = copy_page(tmp_path)
    assert readme_tables.main(["--root", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "gan_b.json: not valid JSON" in error
    assert page.read_text() == page_text()


def zoo_config(name: str, family: str, **config) -> dict:
    base = {"name": name, "family": family, "dataset": "fashion_mnist", "num_steps": 4680}
    return {**base, "model": {"architecture": "mlp", "hidden": [500], "latent_dim": 20}, **config}


def zoo_record(name: str, family: str, summary: dict, **config) -> dict:
    return record(zoo_config(name, family, **config), summary)


def test_zoo_one_row_per_model_from_its_best_record_and_empty_rows_for_the_missing(tmp_path):
    quality = scores(28.8, 5.53, 0.27, 0.756, classifier_fid_floor=0.32)
    single = zoo_record("vae_mlp_fashion_mnist", "vae", {"test_neg_elbo": 126.7, "test_mse": 0.0312, **quality})
    single["wall_s"], single["load_average_1_5_15_min"] = 492.0, [2.0, 2.1, 2.24]
    sweep = sweep_record(
        zoo_config("vae_mlp_fashion_mnist", "vae"),
        [({"seed": s}, {"test_neg_elbo": 126.0 + s, "test_iwae_nll": 119.0 + s}) for s in range(3)],
    )
    sweep["command"] = "python -m experiments.sweep --config c.py --workdir runs/s --sweep seed=0:3 --record r.json"
    iwae = zoo_record("iwae_fashion_mnist", "vae", {"test_neg_elbo": 130.68, "test_iwae_nll": 117.28}, objective="iwae")
    iwae["config"]["num_importance_samples"] = 5
    digits = record(vae_config("vae_mlp_fashion_mnist"), {"test_neg_elbo": 23.0})  # another data set's: not a row
    records = write(tmp_path, {"single": single, "sweep": sweep, "iwae5": iwae, "digits": digits})
    zoo = readme_tables.ZOO
    rows = dict(zip(zoo, table_rows(readme_tables.zoo_table(records)), strict=True))  # one row per zoo model
    vae = rows["vae_mlp_fashion_mnist", 0].split(" | ")
    assert vae[1:5] == ["`vae_mlp_fashion_mnist`, 4,680, seeds 0–2 (3)", "127.00 ± 1.00", "120.00 ± 1.00", "—"]
    assert vae[9] == "`python -m experiments.sweep --config c.py --workdir runs/s --sweep seed=0:3`"
    assert "results/sweep.json" in vae[10]
    k5 = rows["iwae_fashion_mnist", 5].split(" | ")
    assert k5[0] == "| VAE, MLP 500, 20-d latent, trained on IWAE k = 5" and k5[3] == "117.28"
    assert rows["ae_fashion_mnist", 0].endswith("| not run yet |")
    assert rows["iwae_fashion_mnist", 50].startswith("| — | `iwae_fashion_mnist` --config.num_importance_samples=50 |")
    del records[[r["source"] for r in records].index("results/sweep.json")]  # alone, the single run is the row
    rows = dict(zip(zoo, table_rows(readme_tables.zoo_table(records)), strict=True))
    cells = rows["vae_mlp_fashion_mnist", 0].split(" | ")
    assert cells[4:9] == ["0.0312", "28.8 (0.320)", "0.270", "0.756", "8.2 min (load 2.2)"]


def test_own_images_rows_give_each_score_with_its_floor_and_link_from_the_readme(tmp_path):
    config = vae_config("vae_conv_openclipart", dataset="runs/prepared/openclipart64", num_steps=10_000)
    config["model"] = {"architecture": "conv", "latent_dim": 128}
    summary = {"test_neg_elbo": -9876.4, **scores(88.123, 5.0, 0.31234, 0.2, classifier_fid_floor=3.21)}
    older = {**record(config, summary), "date": "2026-12-01T00:00:00Z"}
    newer = {**record(config, {**summary, "classifier_fid": 77.0}), "date": "2026-12-04T00:00:00Z", "wall_s": 1800.0}
    other = record(vae_config(), summary)
    rows = table_rows(readme_tables.own_images_table(write(tmp_path, {"a": newer, "b": older, "c": other})))
    assert rows == [
        "| openclipart-png, 64×64 | VAE, conv, 128-d latent | `vae_conv_openclipart`, 10,000 | -9,876 | 77.0 (3.21) "
        "| 0.312 (0.883) | 0.200 (0.936) | 30.0 min | [results/a.json](results/a.json) |"
    ]


def test_rewrite_then_check_agrees_and_keeps_the_text_around_the_tables(tmp_path, capsys):
    write(tmp_path, {"vae": record(vae_config(), {"test_neg_elbo": 23.0, **scores(21.1, 7.67, 0.758, 0.783)})})
    page = copy_page(tmp_path)
    assert readme_tables.main(["--root", str(tmp_path), "--check"]) == 1
    assert len(capsys.readouterr().err.splitlines()) == len(readme_tables.TABLES)  # one line per table
    assert readme_tables.main(["--root", str(tmp_path)]) == 0
    assert readme_tables.main(["--root", str(tmp_path), "--check"]) == 0
    outside = r"<!-- table:(\w+) \(experiments/readme_tables\.py\) -->\n.*?<!-- /table:\1 -->"
    assert re.sub(outside, "", page.read_text(), flags=re.DOTALL) == re.sub(outside, "", page_text(), flags=re.DOTALL)
    assert "| `vae_digits` | CPU | 0 | 23.00 | — | [results/vae.json](../results/vae.json) |" in page.read_text()


def test_damaged_results_file_is_one_line_naming_it(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "broken.json").write_text('{"config": ')
    with pytest.raises(readme_tables.TableError, match=r"broken\.json: not valid JSON"):
        readme_tables.load_records(str(tmp_path))


BENCHMARKS_README = pathlib.Path(REPO_ROOT) / "benchmarks" / "README.md"


def benchmark_table(header: str) -> list[list[str]]:
    """The rows of the table in benchmarks/README.md whose header starts with `header`, as stripped cells."""
    text = BENCHMARKS_README.read_text()
    block = text[text.index(header) :].split("\n\n", 1)[0]
    return [[cell.strip().strip("*") for cell in line.split("|")[1:-1]] for line in block.splitlines()[2:]]


def benchmark_entries(cell: str) -> list[dict]:
    """The entries of the results file a row names: a link relative to benchmarks/, or a `name` in
    benchmarks/results/.  `--all` writes a list, `--model` one record."""
    if "](" in cell:
        path = BENCHMARKS_README.parent / cell[cell.index("](") + 2 : cell.index(")")]
    else:
        path = BENCHMARKS_README.parent / "results" / cell.strip("`")
    entries = json.loads(path.read_text())
    return entries if isinstance(entries, list) else [entries]


def test_the_h100_throughput_rows_are_their_results_files_numbers():
    """benchmarks/README.md's H100 throughput table is hand-laid (one run of benchmarks/gpu_session.sh), so each row
    is checked against the file it names: steps/s, baseline steps/s, the two speed-ups."""
    rows = benchmark_table("| model | precision | batch | fused steps/s")
    assert len(rows) == 10
    for model, precision, batch, fused, baseline, speedup, versus_plain, source in rows:
        name = model.split(" ")[0]
        (entry,) = [e for e in benchmark_entries(source) if e["model"] == name and e["precision"] == precision]
        assert int(batch) == entry["batch_size"]
        assert fused.strip("*") == f"{entry['steps_per_s']:,.0f}"
        assert baseline == f"{entry['baseline_steps_per_s']:,.0f}"
        assert speedup.strip("*") == f"{entry['speedup_vs_baseline']:.2f}×"
        reference = entry["speedup_vs_reference"]
        expected = "—" if name.startswith(("vae", "ae", "gan")) else f"{reference or 1.0:.2f}×"
        assert versus_plain.strip("*") == expected, (model, precision)


def test_the_peer_rows_are_their_results_files_numbers():
    """benchmarks/README.md's side-by-side table with PyTorch is hand-laid from one `throughput --all --peers` run,
    so each row is checked against the file it links: the three ms/step and the two speed-ups."""
    rows = benchmark_table("| model | precision | batch | JAX fused ms/step")
    assert rows
    for model, precision, batch, fused, eager, compiled, versus_eager, versus_compiled, source in rows:
        (entry,) = [e for e in benchmark_entries(source) if e["model"] == model and e["precision"] == precision]
        assert int(batch) == entry["batch_size"]
        assert fused == f"{entry['ms_per_step']:,.2f}"
        assert eager == f"{entry['torch_eager_ms_per_step']:,.2f}"
        assert compiled == f"{entry['torch_compiled_ms_per_step']:,.2f}"
        assert versus_eager.strip("*") == f"{entry['speedup_vs_torch_eager']:.2f}×"
        assert versus_compiled.strip("*") == f"{entry['speedup_vs_torch_compiled']:.2f}×"


# (c) The README fits a screen; the pages it links to hold the detail, and their links resolve.

README_MAX_LINES = 250
PAGES = ("README.md", "docs/results.md", "docs/reliability.md")


def test_the_readme_fits_a_screen_and_links_the_detail():
    readme = (pathlib.Path(REPO_ROOT) / "README.md").read_text()
    assert len(readme.splitlines()) <= README_MAX_LINES
    for page in ("docs/results.md", "docs/reliability.md", "benchmarks/README.md"):
        assert f"]({page})" in readme, page
    # The generated tables live on the results page, but for the README's own (`README_TABLES`).
    assert set(re.findall(r"<!-- table:(\w+) ", readme)) == set(readme_tables.README_TABLES)
    assert "make demo" in readme and "make test" in readme


@pytest.mark.parametrize("page", PAGES)
def test_every_relative_link_and_image_resolves(page):
    """Every link and image of the page that is not a URL names a file or folder that exists (relative to the
    page); the figures under docs/ keep working from the page that shows them."""
    path = pathlib.Path(REPO_ROOT) / page
    targets = re.findall(r"\]\(([^)\s]+)\)", path.read_text())
    assert targets
    missing = [
        target
        for target in targets
        if not target.startswith(("http://", "https://", "#")) and not (path.parent / target.split("#", 1)[0]).exists()
    ]
    assert missing == []


def test_reliability_names_tests_that_exist_and_every_guarantee_names_one():
    text = (pathlib.Path(REPO_ROOT) / "docs" / "reliability.md").read_text()
    named = re.findall(r"`tests/(\w+\.py)::(\w+)`", text)
    assert len(named) >= 20
    for file, test in named:
        source = pathlib.Path(REPO_ROOT) / "tests" / file
        assert source.exists(), file
        assert re.search(rf"^def {test}\(", source.read_text(), re.MULTILINE), f"{file}::{test}"
    guarantees = re.split(r"\n(?=- )", text)[1:]
    assert guarantees and all("`tests/" in guarantee for guarantee in guarantees)


def test_wall_time_names_the_steps_a_resumed_command_trained():
    resumed = {"wall_s": 780.0, "load_average_1_5_15_min": [1.5, 2.8, 4.3], "first_step": 12000}
    resumed["config"], resumed["source"] = {"num_steps": 20000}, "results/x.json"
    assert readme_tables.wall_time(resumed) == "13.0 min (load 4.3), steps 12,000–20,000 (resumed)"
    assert readme_tables.wall_time({"config": {}, "source": "results/old.json"}) == "—"


def test_model_names_say_what_was_trained():
    def named(family, model, **config):
        return readme_tables.model_name({"config": {"family": family, "model": model, **config}, "where": "CPU"})

    assert named("vae", {"hidden": [500], "latent_dim": 20}) == "VAE, MLP 500, 20-d latent"
    iwae = named("vae", {"hidden": [500], "latent_dim": 20}, objective="iwae", num_importance_samples=50)
    assert iwae == "VAE, MLP 500, 20-d latent, trained on IWAE k = 50"
    vqvae = named("vqvae", {"features": [32, 64], "num_codes": 128, "embedding_dim": 16})
    assert vqvae == "VQ-VAE, conv 32-64, 128 codes, PixelCNN prior"
