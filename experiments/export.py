"""ONNX export of a trained run's decoder (or generator) and, where there is one, its encoder.

    python -m experiments.export --workdir <run> --out <dir>

Writes <dir>/decoder.onnx and, for a family with an encoder, <dir>/encoder.onnx, converted from the run's own
codec functions (`train.Task.codec`) by jax2onnx, with the parameters (the EMA the run evaluates with) as
constants; and <dir>/export.json, the same metadata as the models' metadata_props.  Inputs and outputs, batch size
B free:
  decoder: z f32[B, D] (and labels i32[B] when conditional) -> images f32[B, H, W, C] in [0, 1]
  encoder: images f32[B, H, W, C] in [0, 1] (and labels i32[B] when conditional) -> codes f32[B, D]
Metadata (strings; JSON for lists): family, latent_dim, image_shape, conditional, num_classes, class_names, step,
dataset.  onnxruntime's outputs equal JAX's within 1e-4 (tests/test_export.py, every family, MLP and conv).
"""

from __future__ import annotations

import json
import os
import sys

import jax
import jax.numpy as jnp
from absl import app, flags, logging

from gen_jax import data
from gen_jax.trained import TrainedRun, load_run

OPSET = 17  # onnxruntime (also onnxruntime-web) runs it; jax2onnx's default is newer than the web runtime's


def metadata(run: TrainedRun) -> dict[str, str]:
    """The exported models' metadata_props: what a user of the .onnx files needs to feed and read them."""
    return {
        "family": run.config.family,
        "latent_dim": str(run.latent_dim),
        "image_shape": json.dumps(list(run.dataset.image_shape)),
        "conditional": json.dumps(run.conditional),
        "num_classes": str(run.dataset.num_classes),
        "class_names": json.dumps(list(run.dataset.class_names)),
        "step": str(run.step),
        "dataset": run.dataset.name,
        "value_range": "images in [0, 1]",
    }


def _batch_spec(*shape, dtype=jnp.float32) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(("B", *shape), dtype)


def load_converters() -> None:
    """Registers jax2onnx's converters of JAX primitives and Flax modules, and only those.

    On its first conversion jax2onnx imports every plugin module it ships, its examples included, and those build
    and compile example models when imported: most of a first export's time.  gen_jax's models are Flax Linen
    modules that trace to JAX primitives, so the `jax` and `flax` plugin trees are all an export needs.  This uses
    jax2onnx's plugin_system internals (the version the Makefile pins); where they differ, jax2onnx's own import
    of everything applies.
    """
    from pathlib import Path

    from jax2onnx.plugins import plugin_system

    if getattr(plugin_system, "_already_imported_plugins", True) or not hasattr(plugin_system, "_import_tree"):
        return
    root = Path(plugin_system.__file__).parent
    for tree in ("jax", "flax"):
        plugin_system._import_tree(root / tree, f"jax2onnx.plugins.{tree}")
    plugin_system._already_imported_plugins = True


def convert(function, inputs: list, input_names: list[str], output_name: str, name: str, meta: dict[str, str]):
    """`function` (traceable JAX) -> onnx.ModelProto with a free batch dimension "B" and `meta` as metadata_props."""
    import jax2onnx
    import onnx

    load_converters()

    model = jax2onnx.to_onnx(
        function, inputs, model_name=name, opset=OPSET, input_names=input_names, output_names=[output_name]
    )
    onnx.helper.set_model_props(model, meta)
    return model


def export_run(run: TrainedRun, out_dir: str) -> dict[str, str]:
    """Writes the run's decoder (and encoder) as ONNX under `out_dir` (created); returns {"decoder": path, …}."""
    import onnx

    meta = metadata(run)
    height, width, channels = run.dataset.image_shape
    labels = [_batch_spec(dtype=jnp.int32)] if run.conditional else []
    label_names = ["labels"] if run.conditional else []
    if run.conditional:
        decoder = lambda z, y: run.decode(z, y)
        encoder = lambda x, y: run.encode(x, y)
    else:
        decoder = lambda z: run.decode(z)
        encoder = lambda x: run.encode(x)
    models = {
        "decoder": convert(
            decoder, [_batch_spec(run.latent_dim), *labels], ["z", *label_names], "images", "decoder", meta
        )
    }
    if run.encode is not None:
        models["encoder"] = convert(
            encoder, [_batch_spec(height, width, channels), *labels], ["images", *label_names], "codes", "encoder", meta
        )
    os.makedirs(out_dir, exist_ok=True)
    written = {}
    for name, model in models.items():
        written[name] = os.path.join(out_dir, f"{name}.onnx")
        onnx.save(model, written[name])
    with open(os.path.join(out_dir, "export.json"), "w") as f:
        json.dump({"files": {k: os.path.basename(v) for k, v in written.items()}, **meta}, f, indent=2)
        f.write("\n")
    return written


def main(argv):
    logging.set_verbosity(logging.WARNING)
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    options = flags.FLAGS
    workdir, out = os.path.abspath(options.workdir), os.path.abspath(options.out)
    if out == workdir or out.startswith(workdir + os.sep) and os.path.basename(out) in ("checkpoints", ""):
        raise app.UsageError("--out must not be the run directory or its checkpoints")
    try:
        run = load_run(workdir)
        written = export_run(run, out)
    except (FileNotFoundError, ValueError, data.DatasetUnavailableError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    for name, path in written.items():
        print(f"Wrote {path} ({name})")


def define_flags() -> None:
    flags.DEFINE_string("workdir", None, "A run directory written by experiments.main (a family with a codec).")
    flags.DEFINE_string("out", None, "The directory to write decoder.onnx, encoder.onnx and export.json into.")
    flags.mark_flags_as_required(["workdir", "out"])


if __name__ == "__main__":
    define_flags()
    app.run(main)
