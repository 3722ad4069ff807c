"""Named image data sets as in-memory arrays (`sources`), and batches drawn on the device from a key (`batching`).

Everything public in both modules is re-exported here, so callers write ``from gen_jax import data`` and
``data.load_dataset(...)``, ``data.get_batch(...)``. Module-level settings such as
``FASHION_MNIST_SYSTEM_DIR`` are read where they are defined: patch ``gen_jax.data.sources``, not this package.
"""

from gen_jax.data.batching import (
    BINARIZATIONS,
    batch_indices,
    dynamic_binarize,
    epoch_permutation,
    eval_images,
    get_batch,
    permute,
    preprocess,
    test_images,
)
from gen_jax.data.sources import (
    FASHION_MNIST_CLASS_NAMES,
    FASHION_MNIST_FILES,
    FASHION_MNIST_SYSTEM_DIR,
    Dataset,
    DatasetUnavailableError,
    center_crop_resize,
    load_dataset,
    read_idx,
)

__all__ = [
    "BINARIZATIONS",
    "FASHION_MNIST_CLASS_NAMES",
    "FASHION_MNIST_FILES",
    "FASHION_MNIST_SYSTEM_DIR",
    "Dataset",
    "DatasetUnavailableError",
    "batch_indices",
    "center_crop_resize",
    "dynamic_binarize",
    "epoch_permutation",
    "eval_images",
    "get_batch",
    "test_images",
    "load_dataset",
    "permute",
    "preprocess",
    "read_idx",
]
