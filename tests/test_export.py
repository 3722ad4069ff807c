"""ONNX export (experiments/export.py): for every family with a codec, MLP and convolutional, onnxruntime computes
what JAX computes, and the files say what they hold."""

import json

import numpy as np
import onnx
import onnxruntime
import pytest

from experiments import export

from conftest import codec_variants, variant_id


@pytest.mark.parametrize("variant", codec_variants(), ids=variant_id)
def test_exported_models_compute_what_jax_computes(variant, tiny_trained_run, digits, tmp_path):
    run = tiny_trained_run(*variant)
    written = export.export_run(run, str(tmp_path))
    assert set(written) == ({"decoder", "encoder"} if run.encode is not None else {"decoder"})

    batch = 7  # not the batch of any trace: the batch dimension is free
    labels = (np.arange(batch) % digits.num_classes).astype(np.int32)
    with_labels = {"labels": labels} if run.conditional else {}
    z = np.random.default_rng(0).standard_normal((batch, run.latent_dim)).astype(np.float32)
    session = onnxruntime.InferenceSession(written["decoder"])
    (images,) = session.run(None, {"z": z, **with_labels})
    assert images.shape == (batch, *digits.image_shape)
    np.testing.assert_allclose(images, np.asarray(run.decode(z, labels)), atol=1e-4, rtol=0)

    if run.encode is not None:
        x = run.test_images[:batch]
        session = onnxruntime.InferenceSession(written["encoder"])
        (codes,) = session.run(None, {"images": x, **with_labels})
        np.testing.assert_allclose(codes, np.asarray(run.encode(x, labels)), atol=1e-4, rtol=0)

    meta = {p.key: p.value for p in onnx.load(written["decoder"]).metadata_props}
    assert meta["family"] == run.config.family and int(meta["latent_dim"]) == run.latent_dim
    assert json.loads(meta["image_shape"]) == list(digits.image_shape)
    assert json.loads(meta["conditional"]) == run.conditional
    with open(tmp_path / "export.json") as f:
        assert json.load(f)["latent_dim"] == str(run.latent_dim)
