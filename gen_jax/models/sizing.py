"""Networks whose depth comes from the image size: one stride-2 level per halving of a square side down to 4×4.

The conv encoders / decoders (`autoencoder.py`) and the DCGAN networks (`gan.py`) take their widths from here when
the config leaves them empty (`conv_features=()`, `g_features=()`, `d_features=()`): a 32 px image gets 3 levels,
64 px 4, 128 px 5, and the widths double from `width` at full resolution to at most 8·width (the DCGAN recipe of
Radford et al. 2016: 64, 128, 256, 512 at 64 px).  Explicit widths are used as given, so today's networks (8×8
digits, 28×28 Fashion-MNIST) are unchanged.
"""

from __future__ import annotations

from gen_jax import config as config_lib

SIZES = (32, 64, 128)  # square image sides (px) the networks take their depth from
_COARSE = 4  # side of the smallest feature map
_MAX_DOUBLINGS = 3  # widths stop growing at 8·width


def levels(image_shape: tuple[int, int, int], field: str, dataset_name: str = "the") -> int:
    """The number of stride-2 levels that take a square `image_shape` (H, W, C) down to 4×4: log2(H / 4).

    Raises:
      ConfigError: naming `field` (the empty width field that asked for it) and `SIZES`, when the images are not
        square with a side in `SIZES`.
    """
    height, width, _ = image_shape
    if height != width or height not in SIZES:
        sides = f"{', '.join(map(str, SIZES[:-1]))} or {SIZES[-1]} px"
        raise config_lib.ConfigError(
            f"config.{field}=() takes the network's depth from the image size, which works for square images of "
            f"{sides}; {dataset_name} images are {height}×{width}: set config.image_size to one of those sizes, or "
            f"give config.{field} explicitly"
        )
    return (height // _COARSE).bit_length() - 1


def widths(width: int, count: int) -> tuple[int, ...]:
    """`count` widths from full resolution down: width · (1, 2, 4, 8, 8, …)."""
    return tuple(width * 2 ** min(i, _MAX_DOUBLINGS) for i in range(count))
