"""Converts pytorch-fid's published FID Inception weights to the .npz that `gen_jax.inception` loads.

    python -m experiments.fid_weights --from pt_inception-2015-12-05-6726825d.pth --out inception_fid.npz

Download the .pth once where there is a network (`gen_jax.inception.WEIGHTS_URL`, pytorch-fid's release
`fid_weights`).  Reading it needs torch (pip install -e '.[fid]'); nothing else of gen_jax does.  The .npz holds
the conv kernels (HWIO) and batch-norm scale, bias, mean and variance under their torchvision names; then set
`sample_quality.inception_weights` to its path.  Errors are one line, exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from gen_jax import inception


class ConversionError(Exception):
    """The .pth could not be read or the .npz not written; the message is one line for the user."""


def read_state_dict(path: str) -> dict[str, np.ndarray]:
    """The tensors of a PyTorch state dict file as numpy arrays (tensors only, no pickled code is run)."""
    try:
        import torch
    except ImportError:
        raise ConversionError("reading a .pth needs torch: pip install -e '.[fid]' (or pip install torch)") from None
    if not os.path.isfile(path):
        raise ConversionError(f"--from {path!r} does not exist; download it from {inception.WEIGHTS_URL}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds (pickle, zip, RuntimeError) for a file that is not a .pth
        raise ConversionError(f"--from {path!r} is not a PyTorch state dict: {str(error).splitlines()[0]}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConversionError(f"--from {path!r} holds no state dict of tensors")
    return {name: tensor.detach().cpu().numpy() for name, tensor in state.items()}


def convert(source: str, out: str) -> int:
    """Reads the .pth at `source`, writes the port's .npz at `out`; returns the number of arrays written."""
    if os.path.isdir(out) or not os.path.isdir(os.path.dirname(os.path.abspath(out))):
        raise ConversionError(f"--out {out!r} must be a file path in an existing directory")
    try:
        arrays = inception.variables_from_state_dict(read_state_dict(source))
    except inception.InceptionWeightsError as error:
        raise ConversionError(f"--from {source!r}: {error}") from None
    inception.save_variables(arrays, out)
    return len(arrays)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.fid_weights", description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", required=True, help="pt_inception-2015-12-05-6726825d.pth")
    parser.add_argument("--out", required=True, help="the .npz to write (sample_quality.inception_weights)")
    options = parser.parse_args(argv)
    try:
        count = convert(options.source, options.out)
    except ConversionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Wrote {options.out} ({count} arrays); set sample_quality.inception_weights = {options.out!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
