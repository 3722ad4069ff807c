"""ONNX export (experiments/export.py): for every family with a codec, MLP and convolutional, onnxruntime computes
what JAX computes, the files say what they hold in typed metadata, and a bad --out is refused in one line before
anything is loaded."""

import json
import logging
import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime
import pytest

from experiments import export

from conftest import REPO_ROOT, codec_variants, variant_id


@pytest.mark.parametrize("variant", codec_variants(), ids=variant_id)
def test_exported_models_compute_what_jax_computes(variant, tiny_trained_run, digits, tmp_path, caplog):
    run = tiny_trained_run(*variant)
    with caplog.at_level(logging.WARNING):
        written = export.export_run(run, str(tmp_path))
    assert not [r for r in caplog.records if "not known" in r.getMessage()]  # every value of the graphs is typed
    assert set(written) == ({"decoder", "encoder"} if run.encode is not None else {"decoder"})

    batch = 7  # not the batch of any trace: the batch dimension is free
    labels = np.arange(batch) % digits.num_classes
    with_labels = {"labels": labels.astype(np.int64)} if run.conditional else {}
    z = np.random.default_rng(0).standard_normal((batch, run.latent_dim)).astype(np.float32)
    session = onnxruntime.InferenceSession(written["decoder"])
    (images,) = session.run(None, {"z": z, **with_labels})
    assert images.shape == (batch, *digits.image_shape)
    np.testing.assert_allclose(images, np.asarray(run.decode(z, labels.astype(np.int32))), atol=1e-4, rtol=0)

    if run.encode is not None:
        x = run.test_images[:batch]
        session = onnxruntime.InferenceSession(written["encoder"])
        (codes,) = session.run(None, {"images": x, **with_labels})
        np.testing.assert_allclose(codes, np.asarray(run.encode(x, labels.astype(np.int32))), atol=1e-4, rtol=0)

    for path in written.values():
        onnx.checker.check_model(onnx.load(path), full_check=True)
    meta = {p.key: json.loads(p.value) for p in onnx.load(written["decoder"]).metadata_props}
    assert set(meta) == set(export.METADATA_KEYS)
    assert meta["family"] == run.config.family and meta["latent_dim"] == run.latent_dim
    assert meta["image_shape"] == list(digits.image_shape) and meta["conditional"] is run.conditional
    assert meta["num_classes"] == digits.num_classes and meta["step"] == run.step
    with open(tmp_path / "export.json") as f:
        assert {k: v for k, v in json.load(f).items() if k != "files"} == meta


@pytest.mark.parametrize("variant", [v for v in codec_variants() if v[0] == "cvae"][:1], ids=variant_id)
def test_conditional_exports_take_int64_labels_and_clamp_out_of_range_ones(variant, tiny_trained_run, tmp_path):
    run = tiny_trained_run(*variant)
    written = export.export_run(run, str(tmp_path))
    last = run.dataset.num_classes - 1
    labels = np.asarray([-5, -1, 0, last, last + 1, 2**40], np.int64)
    clamped = np.clip(labels, 0, last).astype(np.int32)
    z = np.random.default_rng(1).standard_normal((len(labels), run.latent_dim)).astype(np.float32)
    session = onnxruntime.InferenceSession(written["decoder"])
    (images,) = session.run(None, {"z": z, "labels": labels})
    np.testing.assert_allclose(images, np.asarray(run.decode(z, clamped)), atol=1e-4, rtol=0)
    x = run.test_images[: len(labels)]
    (codes,) = onnxruntime.InferenceSession(written["encoder"]).run(None, {"images": x, "labels": labels})
    np.testing.assert_allclose(codes, np.asarray(run.encode(x, clamped)), atol=1e-4, rtol=0)


def _export(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "experiments.export", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )


def test_a_bad_out_is_one_line_naming_it_before_the_run_is_read(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a directory")
    missing_run = str(tmp_path / "no_run")  # --out is checked first: the run's absence is not what is reported
    for out, says in (
        (a_file, "is a file"),
        (a_file / "sub", "cannot be written"),
        ("/proc/gen_jax_export", "cannot be written"),
    ):
        result = _export("--workdir", missing_run, "--out", str(out))
        assert result.returncode == 2 and result.stdout == "", result
        assert result.stderr.count("\n") == 1 and says in result.stderr and f"--out {out}" in result.stderr, result
    assert a_file.read_text() == "not a directory"

    result = _export("--workdir", missing_run, "--out", str(tmp_path / "new"))
    assert result.returncode == 2 and "config.json does not exist" in result.stderr and result.stderr.count("\n") == 1
    assert not os.path.exists(tmp_path / "new")  # the directory the check made is removed again

    os.makedirs(tmp_path / "damaged")
    (tmp_path / "damaged" / "config.json").write_text('{"family": "vae", ')
    result = _export("--workdir", str(tmp_path / "damaged"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result
    assert "config.json is not valid JSON" in result.stderr
