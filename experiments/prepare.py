"""Prepares your own images, or a TFDS data set, for training: uint8 shards (ArrayRecord) and a JSON sidecar.

    python -m experiments.prepare --images DIR --out D [--image_size 64] [--test_fraction 0.1] [--channels 3]
    python -m experiments.prepare --tfds NAME --out D [--data_dir DIR] [--train_split train] [--test_split test]
                                  [--image_size 64]

--images: each top-level sub-folder of DIR is a class (no sub-folders: one class); every image is centre-cropped
to a square and resized to --image_size (default 64), transparency composited over white; a file is held out as
test data by a hash of its path (--test_fraction of them).  Files that cannot be decoded, or that have more than
--max_pixels pixels, are left out, counted here and listed in D/prepared.json under "skipped".
--tfds: a data set prepared here by TFDS in a random-access format (array_record), pixels as stored unless
--image_size is given.  How each is done: gen_jax/data/prepare.py; the directory's format: gen_jax/data/prepared.py.

A bad input (a folder without images, an --out that exists and is not empty, an unknown TFDS name, …) is one line
`error: …` with exit status 2, and nothing is written; D appears only once complete.
"""

from __future__ import annotations

import os

from absl import app, flags, logging

from experiments import cli
from gen_jax.data import prepare
from gen_jax.data.dataset import DatasetUnavailableError

_SHOWN_SKIPPED = 10  # skipped files listed on the terminal; all of them are in the sidecar


def main(argv):
    logging.set_verbosity(logging.WARNING)
    if len(argv) > 1:
        cli.fail(f"unexpected arguments: {' '.join(argv[1:])}")
    options = flags.FLAGS
    if (options.images is None) == (options.tfds is None):
        cli.fail("give exactly one of --images DIR (a folder of images) or --tfds NAME (a TFDS data set)")
    try:
        if options.images is not None:
            sidecar = prepare.prepare_images(
                options.images,
                options.out,
                image_size=64 if options.image_size is None else options.image_size,
                test_fraction=options.test_fraction,
                channels=options.channels,
                max_pixels=options.max_pixels,
                workers=options.workers,
            )
        else:
            sidecar = prepare.prepare_tfds(
                options.tfds,
                options.out,
                data_dir=options.data_dir,
                train_split=options.train_split,
                test_split=options.test_split,
                image_size=options.image_size,
                workers=options.workers,
            )
    except (prepare.PrepareError, DatasetUnavailableError) as error:
        cli.fail(" ".join(str(error).split()))
    except OSError as error:  # the disk filled while writing; the partial directory is already removed
        cli.fail(f"--out {os.path.abspath(options.out)}: could not write ({error.strerror or error})")
    print(summary(os.path.abspath(options.out), sidecar))


def summary(out: str, sidecar: dict) -> str:
    """What was written, in a few lines: the splits, the shape, the classes, the files left out."""
    counts = ", ".join(f"{split} {entry['count']}" for split, entry in sidecar["splits"].items())
    shape = "x".join(str(d) for d in sidecar["image_shape"])
    lines = [f"Wrote {out}: {counts} images of {shape} (uint8), {sidecar['num_classes']} classes"]
    skipped = sidecar["skipped"]
    if skipped:
        files = "1 file" if len(skipped) == 1 else f"{len(skipped)} files"
        lines.append(f"{files} left out (all listed in {out}/prepared.json under 'skipped'):")
        lines += [f"  {s['file']}: {s['reason']}" for s in skipped[:_SHOWN_SKIPPED]]
        if len(skipped) > _SHOWN_SKIPPED:
            lines.append(f"  … and {len(skipped) - _SHOWN_SKIPPED} more")
    lines.append(f"fingerprint {sidecar['fingerprint']}")
    return "\n".join(lines)


def define_flags() -> None:
    flags.DEFINE_string("images", None, "A folder of images; its top-level sub-folders are the classes.")
    flags.DEFINE_string("tfds", None, "A TFDS image data set prepared here in array_record format (e.g. cifar10).")
    flags.DEFINE_string("out", None, "The directory to write: it must not exist, or be empty (never overwritten).")
    flags.DEFINE_integer(
        "image_size", None, "Side of the square images written (--images: default 64; --tfds: default as stored)."
    )
    flags.DEFINE_float("test_fraction", 0.1, "--images: share of the files held out as the test split (0: none).")
    flags.DEFINE_integer("channels", 3, "--images: 3 (RGB) or 1 (grey).")
    flags.DEFINE_integer("max_pixels", prepare.DEFAULT_MAX_PIXELS, "--images: larger images are left out, undecoded.")
    flags.DEFINE_string("data_dir", None, "--tfds: the TFDS data directory (default TFDS's own).")
    flags.DEFINE_string("train_split", "train", "--tfds: the TFDS split written as train (slicing works).")
    flags.DEFINE_string("test_split", None, "--tfds: the TFDS split written as test (default test, else validation).")
    flags.DEFINE_integer("workers", min(4, os.cpu_count() or 1), "Threads decoding images.")
    flags.mark_flag_as_required("out")


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=cli.parse_flags)
