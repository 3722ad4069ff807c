"""Run configs: the defaults every family starts from, and checks done once before any compute.

A config is a locked `ml_collections.ConfigDict` (a field it does not define cannot be set, on the command line or
in code).  Its shape, big_vision-style:

    config.family     the model family: the module `gen_jax/tasks/<family>.py`
    config.model      the family's model fields: they build the model and are the run's resume signature
    config.optim      the optimizer (`gen_jax/optim.py`); adversarial families add `config.d_optim`
    config.<the rest> data, batch, schedule of the loop, evaluation (`base_config` documents each)

Each family's `default_config()` (in its task file) extends `base_config`; `experiments/configs/*.py` extend those.
Errors name the field by its dotted path (`config.model.hidden`) and say what is allowed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

# Orbax and JSON agree on lists, not tuples: signatures compare JSON-normalised values.
_SIGNATURE_EXCLUDED = ("compute_dtype",)
# Model fields added after runs were written, per family, with the value those runs had: a config.json without the
# field reads as that value (`with_added_fields`) and the signature leaves the field out at that value, so the
# older runs load and resume as before.
_CONV_WIDTH = {"conv_width": 32}  # read only where conv_features is () (models/sizing.py)
ADDED_MODEL_FIELDS = {
    "cvae": {"prior": "standard"},
    "ae": _CONV_WIDTH,
    "vae": _CONV_WIDTH,
    "aae": _CONV_WIDTH,
    "wae": _CONV_WIDTH,
    "gan": {"conv_width": 64},
}


class ConfigError(ValueError):
    """A config value is missing, of the wrong kind, or outside what is allowed."""


def new_config(values: dict | None = None):
    # Imported on use: `benchmarks/throughput.py` imports this module on machines that may lack ml_collections.
    import ml_collections

    return ml_collections.ConfigDict(values or {})


def base_config():
    """The fields every run has (an `ml_collections.ConfigDict`); a family's `default_config()` adds `model`,
    `optim` and its own fields."""
    config = new_config()
    config.name = "base"
    config.family = ""  # gen_jax/tasks/<family>.py
    config.experiment = ""  # "" = train the family; else experiments/<experiment>.py:run compares several runs
    config.seed = 0
    config.dataset = "digits"
    config.data_dir = ""  # "" = the default places (see gen_jax/data/sources.py)
    config.image_size = 0  # 0 = the data's own size; else centre-cropped to a square and resized to this side (px)
    config.crop_size = 0  # 0 = the largest centred square; else this centred square (px) before resizing (CelebA)
    # Where the training split lives: "device" (whole, gathered in the step), "stream" (read by the host a chunk
    # of steps at a time, for data larger than the device), "auto" (device when it fits; see gen_jax/data/stream.py)
    config.placement = "auto"
    config.binarization = "none"  # "none" | "static" (> 0.5) | "dynamic" (Bernoulli draw per batch)
    config.batch_size = 128
    config.num_steps = 1000
    config.log_every = 50
    config.eval_every = 500
    config.checkpoint_every = 500
    config.keep_checkpoints = 3
    config.eval_batch_size = 500
    config.write_figures = True  # figures/ and report.md at the end (sweeps and tests may skip them)
    config.fsdp = False  # split large parameter/optimizer arrays over the devices instead of replicating them
    config.compute_dtype = "float32"  # "float32" | "bfloat16": matmuls/convolutions only; parameters stay float32
    # How every conv model (DCGAN G and D, conv AE/VAE, classifier) computes its convolutions; every choice is the
    # same function of the same parameters, so a checkpoint resumes under any.  "flax" = nn.Conv / nn.ConvTranspose
    # as written; "dual_grad" = the same layers with gradients XLA:CPU keeps on its fast path
    # (`models/upsampling.py: conv, conv_transpose`); "subpixel" = transposed convolutions in sub-pixel form (other
    # convolutions as "dual_grad").
    config.conv_impl = "dual_grad"
    # Which of XLA:CPU's libraries runs the training step's convolutions (ignored on accelerators): "ynnpack" = XLA's
    # default (YNNPACK fusions), "eigen" = its Eigen convolutions, faster for the DCGAN's 5×5 convolutions
    # (measured in benchmarks/README.md).  The same function either way: only the kernels, so float rounding, differ.
    config.cpu_convolutions = "ynnpack"
    config.model = new_config()
    config.optim = optimizer_config()
    return config


def optimizer_config(**overrides):
    """An optimizer sub-config (`gen_jax/optim.py` builds it): Adam at 1e-3, constant, no decay, no clipping."""
    optim = new_config()
    optim.name = "adam"  # "adam" | "adamw" | "sgd"
    optim.learning_rate = 1e-3
    optim.schedule = "constant"  # "constant" | "cosine" (decays to 0 at num_steps) | "warmup_cosine"
    optim.warmup_steps = 0  # "warmup_cosine" only: linear warm-up from 0
    optim.b1 = 0.9  # Adam's β1 (SGD: the momentum; 0 = none)
    optim.b2 = 0.999
    optim.eps = 1e-8
    optim.weight_decay = 0.0  # decoupled weight decay ("adamw")
    optim.clip_norm = 0.0  # clip the gradient's global L2 norm to this (0 = no clipping)
    optim.update(overrides)
    return optim


def sample_quality_config(enabled: bool):
    """The sample-quality evaluation's sub-config (`gen_jax/sample_quality.py`), for generative families."""
    quality = new_config()
    quality.enabled = enabled  # classifier FID, score, precision/recall (and Inception FID/KID) in summary.json
    quality.num_samples = 10_000  # n: samples scored, reference and floor images (capped at the test split size)
    quality.classifier_dir = ""  # "" = <repo>/runs/classifiers; the reference classifier is trained there once
    # "committed": the classifier committed for the data set (gen_jax/reference_classifiers), else a trained one;
    # "trained": always the one trained once into classifier_dir (new data, or a changed reference config).
    quality.classifier = "committed"
    quality.inception_weights = ""  # an .npz from experiments.fid_weights: adds inception_fid/kid ("" = off)
    return quality


# --- reading and checking fields by dotted path --------------------------------------------------------------------


def value_at(config, path: str) -> Any:
    """config's field at a dotted path ("model.hidden"); ConfigError naming the path when it is missing."""
    node = config
    for part in path.split("."):
        if not hasattr(node, "keys") or part not in node:
            raise ConfigError(f"config.{path} is missing; see the family's default_config() for the fields it has")
        node = node[part]
    return node


def set_at(config, path: str, value) -> None:
    """Sets config's field at a dotted path ("model.hidden"); a locked config refuses a field it does not have."""
    parent, _, leaf = path.rpartition(".")
    (value_at(config, parent) if parent else config)[leaf] = value


def require_fields(config, paths: Iterable[str]) -> None:
    for path in paths:
        value_at(config, path)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def require_positive_int(config, *paths: str) -> None:
    for path in paths:
        value = value_at(config, path)
        if not _is_int(value) or value <= 0:
            raise ConfigError(f"config.{path} must be a positive integer, got {value!r}")


def require_non_negative_int(config, *paths: str, meaning: str = "") -> None:
    for path in paths:
        value = value_at(config, path)
        if not _is_int(value) or value < 0:
            raise ConfigError(f"config.{path} must be an integer >= 0{meaning}, got {value!r}")


def require_positive(config, *paths: str) -> None:
    for path in paths:
        value = value_at(config, path)
        if not _is_number(value) or not value > 0:
            raise ConfigError(f"config.{path} must be a positive number, got {value!r}")


def require_non_negative(config, *paths: str) -> None:
    for path in paths:
        value = value_at(config, path)
        if not _is_number(value) or not value >= 0:
            raise ConfigError(f"config.{path} must be a number >= 0, got {value!r}")


def require_fraction(config, path: str, upper_inclusive: bool = False) -> None:
    """config's `path` must be a number in [0, 1) (or [0, 1] with `upper_inclusive`)."""
    value = value_at(config, path)
    inside = _is_number(value) and (0.0 <= value <= 1.0 if upper_inclusive else 0.0 <= value < 1.0)
    if not inside:
        raise ConfigError(f"config.{path} must be a number in [0, 1{']' if upper_inclusive else ')'}, got {value!r}")


def require_choice(config, path: str, allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    value = value_at(config, path)
    if value not in allowed:
        raise ConfigError(f"config.{path} must be one of {', '.join(map(repr, allowed))}; got {value!r}")


def require_bool(config, *paths: str) -> None:
    for path in paths:
        value = value_at(config, path)
        if not isinstance(value, bool):
            raise ConfigError(f"config.{path} must be True or False, got {value!r}")


def require_widths(config, path: str, min_length: int = 0) -> None:
    """config's `path` must be a tuple/list of at least `min_length` positive integers (layer widths)."""
    value = value_at(config, path)
    if not isinstance(value, (tuple, list)) or len(value) < min_length or not all(_is_int(w) and w > 0 for w in value):
        least = f"at least {min_length} " if min_length else ""
        raise ConfigError(f"config.{path} must be a tuple of {least}positive integers, got {value!r}")


# --- the checks every run gets -----------------------------------------------------------------------------------


def validate_common(config) -> None:
    """Checks the fields every run has; the data-dependent checks follow in `validate_against_data`."""
    seed = value_at(config, "seed")
    if not _is_int(seed) or seed < 0:
        raise ConfigError(f"config.seed must be a non-negative integer, got {seed!r}")
    require_positive_int(
        config,
        "batch_size",
        "num_steps",
        "eval_every",
        "checkpoint_every",
        "log_every",
        "keep_checkpoints",
        "eval_batch_size",
    )
    dataset = value_at(config, "dataset")
    if not isinstance(dataset, str) or not dataset:
        raise ConfigError(f"config.dataset must name a data set, got {dataset!r}")
    require_non_negative_int(config, "image_size", "crop_size", meaning=" (0 = the data's own)")
    if config.crop_size and not config.image_size:
        raise ConfigError(f"config.crop_size={config.crop_size} crops before resizing: set config.image_size too")
    require_bool(config, "write_figures", "fsdp")
    require_choice(config, "conv_impl", CONV_IMPLS)
    require_choice(config, "cpu_convolutions", tuple(CPU_CONVOLUTIONS))
    if "placement" in config:  # stored configs from before the field read as "auto"
        require_choice(config, "placement", ("auto", "device", "stream"))
    compute_dtype(config)


def validate_against_data(config, num_train: int, num_devices: int = 1) -> None:
    """Checks that need the data: the batch fits in the training split and divides over the devices."""
    if config.batch_size > num_train:
        raise ConfigError(
            f"config.batch_size ({config.batch_size}) is larger than the {config.dataset} training "
            f"split ({num_train} examples); choose batch_size <= {num_train}"
        )
    if config.batch_size % num_devices:
        raise ConfigError(
            f"config.batch_size ({config.batch_size}) does not divide over the {num_devices} devices; "
            f"choose a multiple of {num_devices}"
        )


CONV_IMPLS = ("flax", "dual_grad", "subpixel")

# config.cpu_convolutions -> the XLA:CPU compiler options of the training step (`compiler_options`).  XLA's default
# hands both dot products and convolutions to YNNPACK; "eigen" keeps YNNPACK for the dot products only (the
# option's value replaces the default list).
CPU_CONVOLUTIONS = {
    "ynnpack": {},
    "eigen": {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"},
}


def compiler_options(config, platform: str | None = None) -> dict[str, str] | None:
    """The XLA compiler options `config.cpu_convolutions` asks of the training step's `jax.jit`, on `platform`
    ("cpu", "gpu", …; default: JAX's default backend); None where there are none (accelerators, XLA's default)."""
    if platform is None:
        import jax  # on use, as ml_collections above: this module stays light to import

        platform = jax.default_backend()
    options = CPU_CONVOLUTIONS[config.get("cpu_convolutions", "ynnpack")] if platform == "cpu" else {}
    return dict(options) or None


# config.compute_dtype -> the `dtype` given to the Flax layers (None = float32).  Parameters, optimizer state and
# losses stay float32 whatever it is: bfloat16 is compute precision only.
COMPUTE_DTYPES = {"float32": None, "bfloat16": "bfloat16"}


def compute_dtype(config) -> str | None:
    """The layers' computation dtype named by config.compute_dtype."""
    name = config.get("compute_dtype", "float32")
    if name not in COMPUTE_DTYPES:
        raise ConfigError(f"config.compute_dtype must be one of {', '.join(map(repr, COMPUTE_DTYPES))}; got {name!r}")
    return COMPUTE_DTYPES[name]


def plain(value) -> Any:
    """A config value as JSON holds it (ConfigDicts as dicts, tuples as lists)."""
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    return json.loads(json.dumps(value))


def signature(config, image_shape: tuple[int, ...], **extras) -> dict:
    """What a checkpoint must match to be resumed: the family, `config.model`, the image shape, and `extras` (facts
    about the state's structure, e.g. whether it keeps a parameter EMA).  JSON-able; written to model.json."""
    added = ADDED_MODEL_FIELDS.get(config.family, {})
    model = {
        k: v
        for k, v in plain(config.model).items()
        if k not in _SIGNATURE_EXCLUDED and not (k in added and v == added[k])
    }
    return {"family": config.family, "model": model, "image_shape": list(image_shape), **plain(extras)}


def with_defaults(stored: dict, defaults: dict) -> dict:
    """`stored` (a run's config.json, nested) with each field it lacks, at any depth, taken from `defaults` (plain
    dicts): a field added to the config since the run was written counts at its default, as the code that wrote
    the run behaved."""
    filled = dict(stored)
    for name, default in defaults.items():
        if name not in filled:
            filled[name] = default
        elif isinstance(default, dict) and isinstance(filled[name], dict):
            filled[name] = with_defaults(filled[name], default)
    return filled


def with_added_fields(stored: dict) -> dict:
    """A run's stored config (config.json's dict, nested) with the model fields added since it was written
    (`ADDED_MODEL_FIELDS`) at the value the run had."""
    added = ADDED_MODEL_FIELDS.get(stored.get("family"), {})
    if not added or not isinstance(stored.get("model"), dict):
        return stored
    return {**stored, "model": {**added, **stored["model"]}}


# The commit that nested the configs (config.family / model / optim); runs written before it are flat.
NESTED_CONFIGS_COMMIT = "539d987 (2026-11-30)"


def is_flat(stored: dict) -> bool:
    """Whether a stored config.json or model.json was written before configs were nested (no "family" beside a
    "model" sub-dict: the old files held flat copies of the model's fields)."""
    return not isinstance(stored.get("model"), dict)


def flat_run_message(path: str) -> str:
    """One line refusing a run written before configs were nested, naming the version that wrote it."""
    return (
        f"{path} was written by gen_jax before commit {NESTED_CONFIGS_COMMIT}, when configs were flat; this version "
        "reads only nested configs. Nothing was changed: resume it with that older version "
        "(git checkout 539d987~1), or start a new --workdir."
    )
