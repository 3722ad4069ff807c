"""Model families, one module each, found by name: `get("vae")` is `gen_jax/tasks/vae.py`.

A family module defines `default_config()` (its config, extending `config.base_config`) and
`make_task(config, dataset) -> train.Task`; adding a family adds its module and edits no list.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

from gen_jax import config as config_lib


def names() -> list[str]:
    """The families present: the modules of this package that define `make_task`."""
    found = []
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "make_task"):
            found.append(info.name)
    return sorted(found)


def get(name: str) -> ModuleType:
    """The family module `name`; ConfigError listing the families when there is none."""
    module = None
    if isinstance(name, str) and name.isidentifier() and not name.startswith("_"):
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"{__name__}.{name}":
                raise
    if module is None or not hasattr(module, "make_task"):
        raise config_lib.ConfigError(f"config.family must be one of {', '.join(map(repr, names()))}; got {name!r}")
    return module
