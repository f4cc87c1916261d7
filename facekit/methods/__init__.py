"""One module per paper. Each trainable method exposes the same two entry points:

* ``train_and_load(profile=None, seed=0, *, progress=None)`` loads the cached model, or trains
  and caches it (``facekit train NAME`` calls this);
* ``load(profile=None, seed=0, device=None)`` loads it from the cache only, and raises
  ``FileNotFoundError`` naming the notebook or command that trains it (the Analyzer calls this).
"""

import importlib
from types import ModuleType

METHODS = ("comface", "fmae_iat", "synfer", "gencon", "plugen")


def method_module(name: str) -> ModuleType:
    """The module of a trainable method, with an error that lists the valid names."""
    if name not in METHODS:
        raise ValueError(f"method={name!r} is unknown; valid methods are {list(METHODS)}")
    try:
        return importlib.import_module(f"facekit.methods.{name}")
    except ModuleNotFoundError as err:
        if err.name != f"facekit.methods.{name}":
            raise
        raise ValueError(f"method={name!r} is not implemented in this version of facekit") from err
