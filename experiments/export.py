"""ONNX export of a trained run's decoder (or generator) and, where there is one, its encoder.

    python -m experiments.export --workdir <run> --out <dir>

Writes <dir>/decoder.onnx and, for a family with an encoder, <dir>/encoder.onnx, converted from the run's own
codec functions (`train.Task.codec`) by jax2onnx, with the parameters (the EMA the run evaluates with) as
constants; and <dir>/export.json, the same metadata as a JSON object.  Inputs and outputs, batch size B free:
  decoder: z f32[B, D] (and labels i64[B] when conditional) -> images f32[B, H, W, C] in [0, 1]
  encoder: images f32[B, H, W, C] in [0, 1] (and labels i64[B] when conditional) -> codes f32[B, D]
Labels are int64, ONNX's index type (an ONNX input has one element type: cast other integers with
`.astype(np.int64)`); a label outside [0, num_classes) is clamped to the nearest class, 0 or num_classes - 1.

Metadata (`METADATA_KEYS`): family, latent_dim, image_shape, conditional, num_classes, class_names, step, dataset,
value_range, label_dtype, labels_out_of_range.  ONNX holds metadata_props as strings: each value there is JSON text,
so `{p.key: json.loads(p.value) for p in model.metadata_props}` gives numbers, booleans, lists and strings, the same
values as export.json.  onnxruntime's outputs equal JAX's within 1e-4 (tests/test_export.py, every family, MLP and
conv).  --out is checked (a directory this user can write, created if missing) before the run is loaded.
"""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging

from experiments import cli
from gen_jax import data
from gen_jax.trained import TrainedRun, load_run

OPSET = 17  # onnxruntime (also onnxruntime-web) runs it; jax2onnx's default is newer than the web runtime's
METADATA_KEYS = (
    "family",
    "latent_dim",
    "image_shape",
    "conditional",
    "num_classes",
    "class_names",
    "step",
    "dataset",
    "value_range",
    "label_dtype",
    "labels_out_of_range",
)


def metadata(run: TrainedRun) -> dict:
    """What a user of the .onnx files needs to feed and read them, as JSON-able values (`METADATA_KEYS`)."""
    return {
        "family": run.config.family,
        "latent_dim": int(run.latent_dim),
        "image_shape": [int(n) for n in run.dataset.image_shape],
        "conditional": bool(run.conditional),
        "num_classes": int(run.dataset.num_classes),
        "class_names": list(run.dataset.class_names),
        "step": int(run.step),
        "dataset": run.dataset.name,
        "value_range": [0.0, 1.0],
        "label_dtype": "int64",
        "labels_out_of_range": "clamped to [0, num_classes - 1]",
    }


def metadata_props(meta: dict) -> dict[str, str]:
    """ONNX's metadata_props (string to string) of `metadata`: each value as JSON text."""
    return {key: json.dumps(value) for key, value in meta.items()}


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


def drop_intermediate_shapes(graph) -> None:
    """Removes the shapes jax2onnx annotates the values between nodes with (keeping the graph's inputs, outputs and
    constants), subgraphs included; `graph`: an onnx_ir.Graph, changed in place.

    Those annotations are optional in ONNX and some of jax2onnx's are unusable: helper values with a shape but no
    element type (onnx_ir warns "value type for shape … is not known" on saving) and, around transposed
    convolutions, shapes in the wrong layout (onnx.checker's shape inference refuses them, onnxruntime warns and
    falls back).  Without them onnxruntime and the checker infer every shape themselves.
    """
    kept = {id(v) for v in (*graph.inputs, *graph.outputs, *graph.initializers.values())}
    for node in graph.all_nodes():
        for value in node.outputs:
            if id(value) not in kept and value.const_value is None:
                value.shape = None


def int64_labels(graph, num_classes: int) -> None:
    """Makes the graph's labels input (jax2onnx traces an i32[B], JAX's integer without x64) an i64[B] clamped to
    [0, num_classes - 1] and cast to the i32 the traced graph reads: Clip then Cast before the first node.
    `graph`: an onnx_ir.Graph whose input named "labels" is the labels; changed in place."""
    import onnx_ir as ir

    (index,) = [i for i, value in enumerate(graph.inputs) if value.name == "labels"]
    traced = graph.inputs[index]
    labels = ir.Value(name="labels", shape=traced.shape, type=ir.TensorType(ir.DataType.INT64))
    traced.name = "labels_int32"
    bounds = []
    for name, bound in (("labels_min", 0), ("labels_max", num_classes - 1)):
        bounds.append(ir.Value(name=name, const_value=ir.tensor(np.asarray(bound, np.int64), name=name)))
        bounds[-1].shape, bounds[-1].dtype = ir.Shape([]), ir.DataType.INT64
        graph.register_initializer(bounds[-1])
    clip = ir.Node("", "Clip", [labels, *bounds], name="clamp_labels")
    clip.outputs[0].name, clip.outputs[0].dtype = "labels_clamped", ir.DataType.INT64
    cast = ir.Node("", "Cast", [clip.outputs[0]], [ir.AttrInt64("to", ir.DataType.INT32)], name="labels_to_int32")
    cast.outputs[0].name, cast.outputs[0].dtype = "labels_i32", ir.DataType.INT32
    traced.replace_all_uses_with(cast.outputs[0])
    graph.inputs[index] = labels
    graph.insert_before(graph.node(0), [clip, cast])


def convert(function, inputs: list, input_names: list[str], output_name: str, name: str, meta: dict, num_classes: int):
    """`function` (traceable JAX) -> onnx.ModelProto with a free batch dimension "B", no shapes between nodes
    (`drop_intermediate_shapes`), an int64 "labels" input (`int64_labels`) where `input_names` has one, and `meta`
    as its metadata_props (`metadata_props`)."""
    import jax2onnx
    import onnx_ir as ir

    load_converters()
    model = jax2onnx.to_onnx(
        function,
        inputs,
        model_name=name,
        opset=OPSET,
        input_names=input_names,
        output_names=[output_name],
        return_mode="ir",
    )
    for value, input_name in zip(model.graph.inputs, input_names):
        value.name = input_name
    model.graph.outputs[0].name = output_name
    drop_intermediate_shapes(model.graph)
    if "labels" in input_names:
        int64_labels(model.graph, num_classes)
    model.metadata_props.update(metadata_props(meta))
    return ir.serde.serialize_model(model)


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
    num_classes = run.dataset.num_classes
    models = {
        "decoder": convert(
            decoder, [_batch_spec(run.latent_dim), *labels], ["z", *label_names], "images", "decoder", meta, num_classes
        )
    }
    if run.encode is not None:
        image_spec = _batch_spec(height, width, channels)
        models["encoder"] = convert(
            encoder, [image_spec, *labels], ["images", *label_names], "codes", "encoder", meta, num_classes
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
        cli.fail(f"unexpected arguments: {' '.join(argv[1:])}")
    options = flags.FLAGS
    workdir, out = os.path.abspath(options.workdir), os.path.abspath(options.out)
    if out == workdir or out.startswith(workdir + os.sep) and os.path.basename(out) in ("checkpoints", ""):
        cli.fail(f"--out {out} is the run directory or its checkpoints; give a directory of its own")
    created = not os.path.exists(out)
    out = cli.writable_directory(out, "--out")
    try:
        written = export_run(load_run(workdir), out)
    except (FileNotFoundError, ValueError, data.DatasetUnavailableError) as error:  # the run cannot be used
        message = str(error)
    except OSError as error:  # the disk filled, or out changed since the check
        message = f"--out {out}: could not write ({error.strerror or error})"
    else:
        message = None
    if message:
        if created and not os.listdir(out):
            os.rmdir(out)  # made by the check above, for nothing
        cli.fail(message)
    for name, path in written.items():
        print(f"Wrote {path} ({name})")


def define_flags() -> None:
    flags.DEFINE_string("workdir", None, "A run directory written by experiments.main (a family with a codec).")
    flags.DEFINE_string("out", None, "The directory to write decoder.onnx, encoder.onnx and export.json into.")
    flags.mark_flags_as_required(["workdir", "out"])


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=cli.parse_flags)
