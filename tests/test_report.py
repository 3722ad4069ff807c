"""Tests for gen_jax/report.py: the metrics file reads back despite damage; the report page links every figure."""

import json

import numpy as np
import pytest

from gen_jax import figures, report


def test_read_metrics_tolerates_truncated_last_line(tmp_path):
    p = tmp_path / "metrics.jsonl"
    lines = [json.dumps({"step": 1, "train/loss": 2.5}), json.dumps({"step": 2, "train/loss": 2.0}), ""]
    p.write_text("\n".join(lines) + '{"step": 3, "train/lo')
    assert report.read_metrics(p) == [{"step": 1, "train/loss": 2.5}, {"step": 2, "train/loss": 2.0}]


def test_read_metrics_warns_on_corrupt_middle_line(tmp_path):
    p = tmp_path / "metrics.jsonl"
    p.write_text('{"step": 1}\n{"step": 2, "tr{"step": 3}\n{"step": 4}\n')
    with pytest.warns(UserWarning, match=":2:"):
        assert report.read_metrics(p) == [{"step": 1}, {"step": 4}]


def test_write_report(tmp_path):
    workdir = tmp_path / "run"
    fig = figures.save_image_grid(workdir / "figures" / "samples.png", np.full((4, 8, 6, 1), 0.5, np.float32), ncols=2)
    summary = {"eval/neg_elbo": 93.456789, "step": 1000, "fid": np.float32(12.3456)}
    page = report.write_report(
        workdir,
        "VAE on MNIST",
        summary,
        [("figures/samples.png", "Samples from the prior"), (str(fig.resolve()), "Same figure, absolute path")],
        notes="Trained for 1000 steps.\n\nSecond paragraph.",
    )
    assert page == workdir / "report.md"
    md = page.read_text()
    assert md.startswith("# VAE on MNIST")
    assert "| eval/neg_elbo | 93.46 |" in md and "| step | 1000 |" in md and "| fid | 12.35 |" in md
    assert "Trained for 1000 steps." in md
    assert md.count("![Samples from the prior](figures/samples.png)") == 1
    assert "](figures/samples.png)" in md.split("Same figure")[0] and md.count("(figures/samples.png)") == 2
    html = (workdir / "index.html").read_text()
    assert "<h1>VAE on MNIST</h1>" in html
    assert "<td>eval/neg_elbo</td><td>93.46</td>" in html
    assert '<img src="figures/samples.png"' in html
    assert "<figcaption>Samples from the prior</figcaption>" in html
