"""Named image data sets as in-memory arrays, and batches drawn on the device from a key.

`sources` says which name is read from where (`load_dataset`); `dataset` is the `Dataset` type and its checks;
`fashion_mnist` and `tfds_source` are the readers; `batching` draws the batches; `prepare` writes prepared
directories (uint8 shards and a sidecar) and `prepared` reads them a batch of rows at a time; `stream` places the
training split on the device or streams it from the host. Everything public in these modules is re-exported here, so
callers write ``from gen_jax import data`` and ``data.load_dataset(...)``,
``data.get_batch(...)``. Module-level settings such as ``FASHION_MNIST_SYSTEM_DIR`` are read where they are
defined: patch ``gen_jax.data.sources``, not this package.
"""

from gen_jax.data.batching import (
    BINARIZATIONS,
    Pixels,
    batch_indices,
    batch_indices_numpy,
    decode_pixels,
    dynamic_binarize,
    encode_pixels,
    epoch_permutation,
    eval_images,
    feistel_round_keys,
    get_batch,
    num_examples,
    permute,
    permute_numpy,
    preprocess,
    test_images,
    unit_table,
)
from gen_jax.data.dataset import Dataset, DatasetUnavailableError, center_crop_resize, unit_pixels
from gen_jax.data.fashion_mnist import FASHION_MNIST_CLASS_NAMES, FASHION_MNIST_FILES, read_fashion_mnist, read_idx
from gen_jax.data.prepare import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    PrepareError,
    center_crop_resize_u8,
    prepare_images,
    prepare_tfds,
)
from gen_jax.data.prepared import (
    PREPARED_SIDECAR,
    PreparedSource,
    read_sidecar,
    read_steps,
    write_shards,
    write_sidecar,
)
from gen_jax.data.sources import FASHION_MNIST_SYSTEM_DIR, configured_dataset, is_prepared_path, load_dataset
from gen_jax.data.stream import (
    DATA_RECORD,
    DEVICE_SHARE,
    PLACEMENTS,
    ArraySource,
    DataMismatchError,
    Feed,
    PlacementError,
    check_data,
    choose_placement,
    device_memory_bytes,
    make_feed,
    read_whole,
    resolve_placement,
    source_table,
    split_bytes,
)
from gen_jax.data.tfds_source import load_tfds

__all__ = [
    "DATA_RECORD",
    "DEVICE_SHARE",
    "Feed",
    "check_data",
    "choose_placement",
    "device_memory_bytes",
    "make_feed",
    "num_examples",
    "read_whole",
    "resolve_placement",
    "source_table",
    "split_bytes",
    "BINARIZATIONS",
    "PLACEMENTS",
    "ArraySource",
    "DataMismatchError",
    "PlacementError",
    "Pixels",
    "DEFAULT_MAX_PIXELS",
    "FASHION_MNIST_CLASS_NAMES",
    "FASHION_MNIST_FILES",
    "FASHION_MNIST_SYSTEM_DIR",
    "IMAGE_EXTENSIONS",
    "PREPARED_SIDECAR",
    "Dataset",
    "DatasetUnavailableError",
    "PrepareError",
    "PreparedSource",
    "batch_indices",
    "batch_indices_numpy",
    "center_crop_resize",
    "center_crop_resize_u8",
    "configured_dataset",
    "decode_pixels",
    "encode_pixels",
    "dynamic_binarize",
    "epoch_permutation",
    "eval_images",
    "feistel_round_keys",
    "get_batch",
    "is_prepared_path",
    "test_images",
    "load_dataset",
    "load_tfds",
    "permute",
    "permute_numpy",
    "prepare_images",
    "prepare_tfds",
    "preprocess",
    "read_fashion_mnist",
    "read_idx",
    "read_sidecar",
    "read_steps",
    "unit_pixels",
    "unit_table",
    "write_shards",
    "write_sidecar",
]
