"""The Inception-v3 of FID in Flax Linen: pytorch-fid's network and weights, so scores match published ones.

Papers report FID on the pool3 features (2048-d) of the Inception graph TensorFlow released in 2015
(`inception-2015-12-05`).  pytorch-fid (Seitzer, `pytorch_fid/inception.py`, `InceptionV3([3])` with
use_fid_inception=True) reproduces it in PyTorch with its weights `pt_inception-2015-12-05-6726825d.pth`, which
torch-fidelity and most papers' code match too.  This module is that network:

* torchvision's Inception-v3 layers (conv without bias, batch norm with ε = 0.001, ReLU) up to the last average
  pool, with pytorch-fid's patches of the TF graph: the 3×3 average pools of Mixed_5b–5d, 6b–6e and 7b leave the
  padding out of the mean (`count_include_pad=False`), and Mixed_7c pools its last branch with a 3×3 max pool;
* its input handling: images in [0, 1] resized to 299×299 by bilinear interpolation as `F.interpolate(...,
  mode='bilinear', align_corners=False)` computes it (no antialiasing), then scaled to [-1, 1]; grey images are
  repeated to 3 channels.  NHWC here, NCHW there.

Weights: the published .pth converted once by `python -m experiments.fid_weights --from <pth> --out <npz>`
(torch is needed for that step only); `load_variables(npz)` reads the result.  Nothing here downloads anything.
`tests/test_inception.py` checks the features against pytorch-fid's own network given the same weights.

    variables = inception.load_variables("inception_fid.npz")
    features = inception.pool3_features(variables, images)  # images f32[N, H, W, 1 or 3] in [0, 1] -> f32[N, 2048]
"""

from __future__ import annotations

import functools
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from gen_jax import config as config_lib
from gen_jax import metrics

INPUT_SIZE = 299
FEATURE_DIM = 2048
BATCH_NORM_EPSILON = 1e-3  # torchvision's BasicConv2d
WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"
)
HOW_TO_GET_WEIGHTS = (
    f"download {WEIGHTS_URL} where you have a network, convert it with `python -m experiments.fid_weights "
    "--from pt_inception-2015-12-05-6726825d.pth --out inception_fid.npz` (needs torch: pip install -e '.[fid]'), "
    "and point sample_quality.inception_weights at the .npz"
)
# Convolutions at full float32 precision on every backend (no TF32 or bf16 passes on GPUs): features for a metric.
PRECISION = jax.lax.Precision.HIGHEST


class InceptionWeightsError(config_lib.ConfigError):
    """The FID Inception weights are not configured, missing, or not a converted weights file (a ConfigError, so
    `experiments.main` shows it as one line)."""


# --- Network ----------------------------------------------------------------------------------------------------


class BasicConv(nn.Module):
    """torchvision's BasicConv2d: conv (no bias) -> batch norm (running statistics) -> ReLU; NHWC."""

    features: int
    kernel: tuple[int, int] = (1, 1)
    strides: int = 1
    padding: tuple[int, int] = (0, 0)

    @nn.compact
    def __call__(self, x):
        (pad_h, pad_w) = self.padding
        x = nn.Conv(
            self.features,
            self.kernel,
            (self.strides, self.strides),
            padding=((pad_h, pad_h), (pad_w, pad_w)),
            use_bias=False,
            precision=PRECISION,
            name="conv",
        )(x)
        x = nn.BatchNorm(use_running_average=True, epsilon=BATCH_NORM_EPSILON, name="bn")(x)
        return nn.relu(x)


def _average_pool_without_padding(x):
    """3×3, stride 1, padding 1, the padded zeros left out of each mean (TF's pool; pytorch-fid's patch)."""
    return nn.avg_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)), count_include_pad=False)


def _max_pool_3x3(x, strides: int, padding: int):
    return nn.max_pool(x, (3, 3), (strides, strides), ((padding, padding), (padding, padding)))


class InceptionA(nn.Module):
    """Mixed_5b–5d (pytorch-fid's FIDInceptionA): 64 + 64 + 96 + pool_features channels, same size."""

    pool_features: int

    @nn.compact
    def __call__(self, x):
        branch1x1 = BasicConv(64, name="branch1x1")(x)
        branch5x5 = BasicConv(48, name="branch5x5_1")(x)
        branch5x5 = BasicConv(64, (5, 5), padding=(2, 2), name="branch5x5_2")(branch5x5)
        branch3x3dbl = BasicConv(64, name="branch3x3dbl_1")(x)
        branch3x3dbl = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(branch3x3dbl)
        branch3x3dbl = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_3")(branch3x3dbl)
        branch_pool = BasicConv(self.pool_features, name="branch_pool")(_average_pool_without_padding(x))
        return jnp.concatenate([branch1x1, branch5x5, branch3x3dbl, branch_pool], axis=-1)


class InceptionB(nn.Module):
    """Mixed_6a: halves the size; 384 + 96 channels + the input's, max-pooled."""

    @nn.compact
    def __call__(self, x):
        branch3x3 = BasicConv(384, (3, 3), strides=2, name="branch3x3")(x)
        branch3x3dbl = BasicConv(64, name="branch3x3dbl_1")(x)
        branch3x3dbl = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(branch3x3dbl)
        branch3x3dbl = BasicConv(96, (3, 3), strides=2, name="branch3x3dbl_3")(branch3x3dbl)
        return jnp.concatenate([branch3x3, branch3x3dbl, _max_pool_3x3(x, 2, 0)], axis=-1)


class InceptionC(nn.Module):
    """Mixed_6b–6e (pytorch-fid's FIDInceptionC): factorised 7×7 branches of width channels_7x7; 768 channels."""

    channels_7x7: int

    @nn.compact
    def __call__(self, x):
        c7 = self.channels_7x7
        row, column = ((1, 7), (0, 3)), ((7, 1), (3, 0))
        branch1x1 = BasicConv(192, name="branch1x1")(x)
        branch7x7 = BasicConv(c7, name="branch7x7_1")(x)
        branch7x7 = BasicConv(c7, row[0], padding=row[1], name="branch7x7_2")(branch7x7)
        branch7x7 = BasicConv(192, column[0], padding=column[1], name="branch7x7_3")(branch7x7)
        branch7x7dbl = BasicConv(c7, name="branch7x7dbl_1")(x)
        branch7x7dbl = BasicConv(c7, column[0], padding=column[1], name="branch7x7dbl_2")(branch7x7dbl)
        branch7x7dbl = BasicConv(c7, row[0], padding=row[1], name="branch7x7dbl_3")(branch7x7dbl)
        branch7x7dbl = BasicConv(c7, column[0], padding=column[1], name="branch7x7dbl_4")(branch7x7dbl)
        branch7x7dbl = BasicConv(192, row[0], padding=row[1], name="branch7x7dbl_5")(branch7x7dbl)
        branch_pool = BasicConv(192, name="branch_pool")(_average_pool_without_padding(x))
        return jnp.concatenate([branch1x1, branch7x7, branch7x7dbl, branch_pool], axis=-1)


class InceptionD(nn.Module):
    """Mixed_7a: halves the size; 320 + 192 channels + the input's, max-pooled."""

    @nn.compact
    def __call__(self, x):
        branch3x3 = BasicConv(192, name="branch3x3_1")(x)
        branch3x3 = BasicConv(320, (3, 3), strides=2, name="branch3x3_2")(branch3x3)
        branch7x7x3 = BasicConv(192, name="branch7x7x3_1")(x)
        branch7x7x3 = BasicConv(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(branch7x7x3)
        branch7x7x3 = BasicConv(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(branch7x7x3)
        branch7x7x3 = BasicConv(192, (3, 3), strides=2, name="branch7x7x3_4")(branch7x7x3)
        return jnp.concatenate([branch3x3, branch7x7x3, _max_pool_3x3(x, 2, 0)], axis=-1)


class InceptionE(nn.Module):
    """Mixed_7b (FIDInceptionE_1, average pool without padding) and Mixed_7c (FIDInceptionE_2, max pool): 2048."""

    max_pool: bool

    @nn.compact
    def __call__(self, x):
        branch1x1 = BasicConv(320, name="branch1x1")(x)
        branch3x3 = BasicConv(384, name="branch3x3_1")(x)
        branch3x3 = jnp.concatenate(
            [
                BasicConv(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(branch3x3),
                BasicConv(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(branch3x3),
            ],
            axis=-1,
        )
        branch3x3dbl = BasicConv(448, name="branch3x3dbl_1")(x)
        branch3x3dbl = BasicConv(384, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(branch3x3dbl)
        branch3x3dbl = jnp.concatenate(
            [
                BasicConv(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(branch3x3dbl),
                BasicConv(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(branch3x3dbl),
            ],
            axis=-1,
        )
        pooled = _max_pool_3x3(x, 1, 1) if self.max_pool else _average_pool_without_padding(x)
        branch_pool = BasicConv(192, name="branch_pool")(pooled)
        return jnp.concatenate([branch1x1, branch3x3, branch3x3dbl, branch_pool], axis=-1)


class FIDInceptionV3(nn.Module):
    """x f32[B, H, W, 3] in [-1, 1] (H = W = 299 for the published scores) -> pool3 features f32[B, 2048].

    Layer names are torchvision's (`Mixed_6b/branch7x7_2/conv/kernel` is `Mixed_6b.branch7x7_2.conv.weight`),
    so converted weights map name for name.
    """

    @nn.compact
    def __call__(self, x):
        x = BasicConv(32, (3, 3), strides=2, name="Conv2d_1a_3x3")(x)
        x = BasicConv(32, (3, 3), name="Conv2d_2a_3x3")(x)
        x = BasicConv(64, (3, 3), padding=(1, 1), name="Conv2d_2b_3x3")(x)
        x = _max_pool_3x3(x, 2, 0)
        x = BasicConv(80, name="Conv2d_3b_1x1")(x)
        x = BasicConv(192, (3, 3), name="Conv2d_4a_3x3")(x)
        x = _max_pool_3x3(x, 2, 0)
        x = InceptionA(32, name="Mixed_5b")(x)
        x = InceptionA(64, name="Mixed_5c")(x)
        x = InceptionA(64, name="Mixed_5d")(x)
        x = InceptionB(name="Mixed_6a")(x)
        for name, channels_7x7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
            x = InceptionC(channels_7x7, name=name)(x)
        x = InceptionD(name="Mixed_7a")(x)
        x = InceptionE(max_pool=False, name="Mixed_7b")(x)
        x = InceptionE(max_pool=True, name="Mixed_7c")(x)
        return jnp.mean(x, axis=(1, 2))


# --- Input ------------------------------------------------------------------------------------------------------


@functools.cache
def bilinear_matrix(in_size: int, out_size: int) -> np.ndarray:
    """f32[out_size, in_size]: row o holds the weights of `F.interpolate(mode='bilinear', align_corners=False)`.

    Output pixel o samples the input at s = max((o + ½)·in/out − ½, 0) between pixels ⌊s⌋ and min(⌊s⌋ + 1, in − 1)
    (half-pixel centres, the edge clamped, no antialiasing when shrinking).  Float32 arithmetic as in PyTorch's CPU
    kernel, s rounded once as its fused multiply-add does: the weights equal PyTorch's bit for bit.
    """
    scale = np.float64(np.float32(in_size) / np.float32(out_size))
    centres = np.arange(out_size, dtype=np.float64) + 0.5
    source = np.maximum((scale * centres - 0.5).astype(np.float32), 0)
    low = np.floor(source).astype(np.int64)
    high = np.minimum(low + 1, in_size - 1)
    weight_high = np.clip(source - low.astype(np.float32), 0, 1)
    matrix = np.zeros((out_size, in_size), np.float32)
    np.add.at(matrix, (np.arange(out_size), low), np.float32(1) - weight_high)
    np.add.at(matrix, (np.arange(out_size), high), weight_high)
    return matrix


def preprocess(images: jax.Array, size: int = INPUT_SIZE) -> jax.Array:
    """images f32[B, H, W, C] in [0, 1], C = 1 or 3 -> f32[B, size, size, 3] in [-1, 1], as pytorch-fid feeds them.

    Grey images are repeated to 3 channels; the resize is bilinear (`bilinear_matrix`), then x ↦ 2x − 1.
    """
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"images must be f32[B, H, W, C] with C = 1 or 3, got shape {images.shape}")
    images = jnp.broadcast_to(images, (*images.shape[:3], 3)).astype(jnp.float32)
    rows = jnp.asarray(bilinear_matrix(images.shape[1], size))
    columns = jnp.asarray(bilinear_matrix(images.shape[2], size))
    resized = jnp.einsum("oh,bhwc,pw->bopc", rows, images, columns, precision=PRECISION)
    return 2.0 * resized - 1.0


@jax.jit
def _features(variables: dict, images: jax.Array) -> jax.Array:
    return FIDInceptionV3().apply(variables, preprocess(images))


def pool3_features(variables: dict, images: np.ndarray, batch_size: int = 50) -> np.ndarray:
    """The FID features of images f32[N, H, W, C] in [0, 1] (C = 1 or 3): f32[N, 2048], in batches of `batch_size`.

    `variables` from `load_variables`.  One compile per image shape and batch size (the last batch is padded).
    """
    return metrics.map_batches(
        lambda x, key: _features(variables, x), np.asarray(images), batch_size, jax.random.key(0)
    )


# --- Weights ----------------------------------------------------------------------------------------------------


@functools.cache
def variable_shapes() -> dict[str, tuple[int, ...]]:
    """{"params/Mixed_5b/branch1x1/conv/kernel": shape, …, "batch_stats/…/bn/var": shape}: what a weights file holds."""
    shapes = jax.eval_shape(FIDInceptionV3().init, jax.random.key(0), jnp.zeros((1, INPUT_SIZE, INPUT_SIZE, 3)))
    return {key: tuple(leaf.shape) for key, leaf in traverse_util.flatten_dict(shapes, sep="/").items()}


# A torchvision batch-norm or conv tensor's name (the last part of `…conv.weight`) -> its collection and leaf here.
_TORCH_LEAVES = {
    ("conv", "weight"): ("params", "kernel"),
    ("bn", "weight"): ("params", "scale"),
    ("bn", "bias"): ("params", "bias"),
    ("bn", "running_mean"): ("batch_stats", "mean"),
    ("bn", "running_var"): ("batch_stats", "var"),
}
# In the published state dict but not in the pool3 network: the 1008-class classifier and batch-norm step counters.
_UNUSED = ("fc.weight", "fc.bias")


def variables_from_state_dict(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """pytorch-fid's FID Inception state dict (tensor name -> numpy array) -> the flat arrays `load_variables` reads.

    Conv weights [O, I, kh, kw] become kernels [kh, kw, I, O]; batch norm weight, bias, running mean and variance
    become scale, bias, mean and var.  The classifier (fc) and `num_batches_tracked` are dropped.  Raises
    InceptionWeightsError (one line) when a tensor is missing, unexpected or of another shape.
    """
    expected = variable_shapes()
    converted = {}
    for name, value in state.items():
        parts = name.split(".")
        if name in _UNUSED or parts[-1] == "num_batches_tracked":
            continue
        if tuple(parts[-2:]) not in _TORCH_LEAVES:
            raise InceptionWeightsError(f"unexpected tensor {name!r}: not a pytorch-fid FID Inception state dict")
        collection, leaf = _TORCH_LEAVES[tuple(parts[-2:])]
        array = np.asarray(value, np.float32)
        if leaf == "kernel":
            array = array.transpose(2, 3, 1, 0)
        converted["/".join([collection, *parts[:-1], leaf])] = array
    _check_shapes(converted, expected, "the state dict")
    return converted


def _check_shapes(arrays: dict[str, np.ndarray], expected: dict[str, tuple[int, ...]], what: str) -> None:
    missing = sorted(set(expected) - set(arrays))
    unexpected = sorted(set(arrays) - set(expected))
    wrong = sorted(k for k in set(arrays) & set(expected) if tuple(arrays[k].shape) != expected[k])
    if missing or unexpected or wrong:
        first = (
            f"lacks {missing[0]}"
            if missing
            else f"has an unexpected {unexpected[0]}"
            if unexpected
            else f"has {wrong[0]} of shape {tuple(arrays[wrong[0]].shape)}, expected {expected[wrong[0]]}"
        )
        count = len(missing) + len(unexpected) + len(wrong)
        raise InceptionWeightsError(f"{what} is not the FID Inception-v3: it {first} ({count} tensors differ)")


def save_variables(arrays: dict[str, np.ndarray], path: str) -> None:
    """Writes the flat arrays of `variables_from_state_dict` to an .npz (written beside, then renamed into place)."""
    partial = f"{path}.partial.npz"
    np.savez(partial, **arrays)
    os.replace(partial, path)


def load_variables(path: str | None) -> dict:
    """The Flax variables {"params": …, "batch_stats": …} of an .npz written by `experiments.fid_weights`.

    Raises InceptionWeightsError with one line saying how to get the file when `path` is empty, missing or not
    such a file.  Reads the local file only: nothing is downloaded.
    """
    if not path:
        raise InceptionWeightsError(f"no FID Inception weights are configured: {HOW_TO_GET_WEIGHTS}")
    if not os.path.isfile(path):
        raise InceptionWeightsError(f"FID Inception weights {path!r} do not exist: {HOW_TO_GET_WEIGHTS}")
    try:
        with np.load(path) as file:
            arrays = {key: file[key] for key in file.files}
    except (OSError, ValueError) as error:
        raise InceptionWeightsError(
            f"{path!r} is not an .npz of FID Inception weights ({error}): {HOW_TO_GET_WEIGHTS}"
        ) from None
    try:
        return variables_from_arrays(arrays, repr(path))
    except InceptionWeightsError as error:
        raise InceptionWeightsError(f"{error}: {HOW_TO_GET_WEIGHTS}") from None


def check_weights_file(path: str) -> None:
    """Refuses (InceptionWeightsError, one line) a `path` that is not a file, or an .npz without the FID
    Inception-v3's arrays; reads the archive's index only, so it is cheap enough to run before any compute."""
    if not os.path.isfile(path):
        raise InceptionWeightsError(f"FID Inception weights {path!r} do not exist: {HOW_TO_GET_WEIGHTS}")
    try:
        with np.load(path) as file:
            names = set(file.files)
    except (OSError, ValueError) as error:
        raise InceptionWeightsError(
            f"{path!r} is not an .npz of FID Inception weights ({error}): {HOW_TO_GET_WEIGHTS}"
        ) from None
    if names != set(variable_shapes()):
        raise InceptionWeightsError(
            f"{path!r} does not hold the FID Inception-v3's arrays ({len(set(variable_shapes()) ^ names)} names "
            f"differ): {HOW_TO_GET_WEIGHTS}"
        )


def variables_from_arrays(arrays: dict[str, np.ndarray], what: str = "the arrays") -> dict:
    """Flat arrays {"params/Mixed_5b/…/kernel": …} -> Flax variables; InceptionWeightsError if any is missing,
    unexpected or of another shape (naming `what`)."""
    _check_shapes(arrays, variable_shapes(), what)
    return traverse_util.unflatten_dict({tuple(k.split("/")): jnp.asarray(v) for k, v in arrays.items()})
