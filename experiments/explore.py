"""The latent explorer: a trained run's latent space in the browser.

    python -m experiments.explore --workdir <run> [--port 8000] [--host 127.0.0.1] [--screenshot page.png]

Serves a page (`gen_jax/explorer/`) for a run of any family with a codec (`train.Task.codec`: AE, VAE, cVAE,
GAN, …) and prints its URL.  The page shows
  - the map: the test set's codes (the 2-D latent itself, else their first two principal components), coloured
    by class; for a family with no encoder, noise vectors z ~ N(0, I) (coloured by the class they are decoded
    under when the model is conditional, in one colour when it has no classes).  Pointing decodes that point of
    the plane; clicking a point shows its test image beside its reconstruction and makes its code the current one;
  - sliders along the latent dimensions (at most `MAX_SLIDERS`; beyond that the codes' principal directions),
    in units of the codes' standard deviation along each, around the current code;
  - morph: two codes A and B and the path between them, linear or spherical (for Gaussian z);
  - attributes: `experiments.edit`'s attribute vectors ("toward class 3", each CelebA attribute) as sliders.
Images are shown as the model reads them without sampling: grey (a dynamically binarised run's Bernoulli means),
thresholded only for a statically binarised run.  Every image is the run's own jitted decoder at that code (POST
/api/decode).  The server binds 127.0.0.1 unless --host says otherwise, serves only the page and its API, refuses
malformed requests with a 400, and never writes into the run directory (`gen_jax/explorer/server.py`).

The port is bound before the run is loaded, so a port in use, a --host that is not this machine's or a damaged run
is reported in one line (`error: …`, exit status 2) without waiting for the model.
"""

from __future__ import annotations

import errno
import os
import socket
import threading

import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging

from experiments import cli, edit
from gen_jax import data, editing, latent, pca
from gen_jax.explorer import browser, server
from gen_jax.trained import TrainedRun, load_run

MAP_POINTS = 1000  # test images (or noise vectors) on the map
MAX_SLIDERS = 12
EXAMPLES = 16  # thumbnails under the map: the first map points
ATTRIBUTE_IMAGES = 5000  # training images encoded for the attribute vectors


def shown_images(run: TrainedRun) -> np.ndarray:
    """The test images f32[N, H, W, C] as the explorer shows and encodes them: as the model reads an image without
    sampling, i.e. grey, the Bernoulli means of a dynamically binarised run, and thresholded for a statically
    binarised one (the same convention as `TrainedRun.train_images`)."""
    return data.preprocess(run.dataset.test_images, "static" if run.config.binarization == "static" else "none")


def map_codes(run: TrainedRun, count: int = MAP_POINTS) -> tuple[np.ndarray, np.ndarray, bool]:
    """(codes f32[N, D], labels i32[N], from_test_set): the codes of the first `count` test images
    (`shown_images`), or, for a family with no encoder, `count` noise vectors z ~ N(0, I) (fixed seed; labels
    cycling over the classes, the classes they are decoded under when the model is conditional)."""
    if run.encode is not None:
        labels = run.dataset.test_labels[:count].astype(np.int32)
        return latent.encode_in_batches(run.encode, shown_images(run)[:count], labels=labels), labels, True
    codes = np.random.default_rng(0).standard_normal((count, run.latent_dim)).astype(np.float32)
    return codes, (np.arange(count) % run.dataset.num_classes).astype(np.int32), False


def class_label(class_names, index: int) -> str:
    """How the page names class `index`: "class 7" where the name is the index itself (digits), else
    "class 1 (Trouser)"."""
    name = class_names[index]
    return f"class {index}" if name == str(index) else f"class {index} ({name})"


def plane(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """(origin f32[D], axes f32[2, D], how): the map's plane, z = origin + u axes[0] + v axes[1].

    D = 2: the latent plane itself; D = 1: the line (axes[1] = 0); else the codes' mean and first two principal
    components (orthonormal), so (u, v) are the codes' coordinates on their top two PCs.
    """
    dim = codes.shape[1]
    if dim <= 2:
        return np.zeros(dim, np.float32), np.eye(2, dim, dtype=np.float32), "latent coordinates"
    fit = pca.fit(jnp.asarray(codes), 2)
    return np.asarray(fit.mean, np.float32), np.asarray(fit.components, np.float32), "first two principal components"


def slider_directions(codes: np.ndarray, max_sliders: int = MAX_SLIDERS) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(names, directions f32[K, D] unit rows, scales f32[K]): the latent dimensions when D ≤ max_sliders, else
    the codes' first max_sliders principal directions; each scale is the codes' standard deviation along it."""
    dim = codes.shape[1]
    if dim <= max_sliders:
        directions = np.eye(dim, dtype=np.float32)
        names = [f"z[{i}]" for i in range(dim)]
    else:
        directions = np.asarray(pca.fit(jnp.asarray(codes), max_sliders).components, np.float32)
        names = [f"PC {i + 1}" for i in range(max_sliders)]
    centred = codes - codes.mean(axis=0)
    scales = np.maximum(np.std(centred @ directions.T, axis=0), 1e-6).astype(np.float32)
    return names, directions, scales


def attribute_vectors(run: TrainedRun, max_images: int = ATTRIBUTE_IMAGES) -> list[tuple[str, np.ndarray]]:
    """[(name, f32[D])]: `experiments.edit`'s attribute vector of every class (when there are two or more; named
    "toward class 3") and every CelebA attribute (named as the data set names it), from the codes of the first
    `max_images` training images; none without an encoder."""
    if run.encode is None:
        return []
    dataset = run.dataset
    labels = dataset.train_labels[:max_images].astype(np.int32)
    codes = latent.encode_in_batches(run.encode, run.train_images[:max_images], labels=labels)
    names = list(dataset.attribute_names) + (list(dataset.class_names) if dataset.num_classes > 1 else [])
    vectors = []
    for name in names:
        name, has, _ = edit.resolve_attribute(dataset, name)
        has = np.asarray(has[:max_images], bool)
        if name not in dataset.attribute_names:
            name = f"toward {class_label(dataset.class_names, dataset.class_names.index(name))}"
        if 0 < has.sum() < len(has):
            vectors.append((name, np.asarray(editing.attribute_vector(codes, has), np.float32)))
    return vectors


def _rounded(array: np.ndarray) -> list:
    return np.round(np.asarray(array, np.float64), 5).tolist()


def build_explorer(run: TrainedRun) -> server.Explorer:
    """The `server.Explorer` of a trained run: its info (map, sliders, attributes, examples), decode and point.

    Labels mean classes only where the model has them: the test images' own labels, or the classes a conditional
    model decodes noise vectors under; for an unconditional model without an encoder (the GAN) every label in
    the info and the points is None, and the page shows no class colours, legend or class names.
    """
    codes, labels, from_test_set = map_codes(run)
    images = shown_images(run) if from_test_set else None
    origin, axes, how = plane(codes)
    points = (codes - origin) @ axes.T
    names, directions, scales = slider_directions(codes)
    conditional, num_classes = run.conditional, run.dataset.num_classes
    has_classes = num_classes > 1 and (from_test_set or conditional)

    def label_of(index: int) -> int | None:
        return int(labels[index]) if has_classes else None

    def decode_batch(z: np.ndarray, batch_labels: np.ndarray) -> np.ndarray:
        return server.to_u8(run.decode(jnp.asarray(z, jnp.float32), jnp.asarray(batch_labels, jnp.int32)))

    def decode(z: np.ndarray, label: int | None) -> np.ndarray:
        return decode_batch(z[None], np.asarray([label or 0]))[0]

    def point(index: int) -> dict:
        reconstruction = decode_batch(codes[index : index + 1], labels[index : index + 1])[0]
        return {
            "index": index,
            "code": _rounded(codes[index]),
            "label": label_of(index),
            "image": server.pixels_json(server.to_u8(images[index])) if from_test_set else None,
            "decoded": server.pixels_json(reconstruction),
        }

    examples = server.to_u8(images[:EXAMPLES]) if from_test_set else decode_batch(codes[:EXAMPLES], labels[:EXAMPLES])
    info = {
        "family": run.config.family,
        "run": os.path.basename(os.path.normpath(run.workdir)),
        "step": run.step,
        "dataset": run.dataset.name,
        "latent_dim": run.latent_dim,
        "image_shape": list(run.dataset.image_shape),
        "conditional": conditional,
        "has_encoder": run.encode is not None,
        "has_classes": has_classes,
        "num_classes": num_classes,
        "class_names": list(run.dataset.class_names),
        "class_labels": [class_label(run.dataset.class_names, k) for k in range(num_classes)],
        "z_bound": server.Z_BOUND,
        "map": {
            "how": how,
            "source": "test images" if from_test_set else "noise vectors z ~ N(0, I)",
            "origin": _rounded(origin),
            "axes": _rounded(axes),
            "points": _rounded(points),
            "labels": labels.tolist() if has_classes else None,
        },
        "sliders": [
            {"name": n, "direction": _rounded(d), "scale": float(s)} for n, d, s in zip(names, directions, scales)
        ],
        "attributes": [{"name": n, "vector": _rounded(v)} for n, v in attribute_vectors(run)],
        "examples": [
            {"index": i, "label": label_of(i), **server.pixels_json(examples[i])} for i in range(len(examples))
        ],
        "start": _rounded(codes[0]),
        "start_label": int(labels[0]),
    }
    return server.Explorer(
        info=info,
        decode=decode,
        point=point,
        latent_dim=run.latent_dim,
        num_classes=num_classes,
        conditional=conditional,
        num_points=len(codes),
    )


def bind(host: str, port: int, verbose: bool = False) -> server.ExplorerServer:
    """An `ExplorerServer` bound to (host, port) and serving nothing yet (set its `explorer`, then serve); a port in
    use, a privileged port or a host that is not this machine's exits through `cli.fail` with one line naming it."""
    try:
        return server.ExplorerServer(None, host, port, verbose=verbose)
    except socket.gaierror as error:
        cli.fail(f"--host {host!r} is not an address or name this machine knows ({error.strerror}); try 127.0.0.1")
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            cli.fail(f"port {port} on {host} is in use; choose another with --port, or --port 0 for any free port")
        if error.errno == errno.EACCES:
            cli.fail(f"port {port} needs privileges; choose one above 1023 with --port, or --port 0 for any free port")
        if error.errno == errno.EADDRNOTAVAIL:
            cli.fail(f"--host {host} is not an address of this machine; try 127.0.0.1 (or 0.0.0.0 for every one)")
        cli.fail(f"cannot serve on --host {host} --port {port} ({error.strerror or error})")


def main(argv):
    logging.set_verbosity(logging.WARNING)  # Orbax logs every file it reads at INFO
    if len(argv) > 1:
        cli.fail(f"unexpected arguments: {' '.join(argv[1:])}")
    options = flags.FLAGS
    if not 0 <= options.port < 65536:
        cli.fail(f"--port must be in 0..65535 (0: any free port), got {options.port}")
    if options.screenshot:
        cli.writable_directory(os.path.dirname(os.path.abspath(options.screenshot)), "--screenshot's directory")
    httpd = bind(options.host, options.port, options.verbose)
    try:
        run = load_run(os.path.abspath(options.workdir))
        httpd.explorer = build_explorer(run)
    except (FileNotFoundError, ValueError, data.DatasetUnavailableError) as error:
        # ConfigError and CheckpointMismatchError are ValueErrors too.
        httpd.server_close()
        cli.fail(str(error))
    if options.screenshot:
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        try:
            browser.drive(httpd.url, options.screenshot)
        except FileNotFoundError as error:  # no Chromium here
            cli.fail(str(error))
        finally:
            httpd.shutdown()
            httpd.server_close()
        print(f"Wrote {options.screenshot}")
        return
    print(f"Exploring {run.workdir} ({run.config.family}, step {run.step}) at {httpd.url}  (Ctrl-C stops)", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()


def define_flags() -> None:
    # Defined when run as a program, not at import: tests import this module.
    flags.DEFINE_string("workdir", None, "A run directory written by experiments.main (a family with a codec).")
    flags.DEFINE_string("host", "127.0.0.1", "The address to bind; 127.0.0.1 keeps the page on this machine.")
    flags.DEFINE_integer("port", 8000, "The port to serve on (0: any free port).")
    flags.DEFINE_bool("verbose", False, "Log every request.")
    flags.DEFINE_string(
        "screenshot",
        None,
        "Instead of serving until stopped: open the page in headless Chromium, click the first example, move the "
        "first slider (what the browser test does), save a screenshot of the page here, and exit.",
    )
    flags.mark_flags_as_required(["workdir"])


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=cli.parse_flags)
