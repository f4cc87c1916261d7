"""One package per paper: ``facekit.methods.<name>`` for comface, fmae_iat, synfer, gencon, plugen.

Every package has the same files (``config``, ``data``, ``model``, ``train``, ``evaluate``,
``viz``) and the same public API, the contract of :mod:`facekit.methods.base`:

* ``train_and_load(profile=None, seed=0, *, progress=None) -> (model, TrainResult)`` loads the
  cached model, or trains and caches it (``facekit train NAME`` calls this);
* ``load(profile=None, seed=0, *, device=None, cfg=None)`` loads it from the cache only, and
  raises ``FileNotFoundError`` naming the notebook or command that trains it (the Analyzer
  calls this);
* ``run_seed(profile=None, seed=0, *, progress=False, log=print) -> dict[str, float]``: every
  number of the method's claims for one seed; ``CLAIMS`` says which of them are claims.
  ``benchmarks/claims.py`` runs it; a notebook never does (a seed trains every baseline, fold
  and variant, too long for a notebook: the measurement is in fmae_iat/MODEL_CARD.md, issue 19);
  it reads one seed's figures from the claims record with :func:`facekit.records.seed_scores`
  (``tests/test_notebook_protocols.py``);
* ``METRICS``: the metric names it writes per record, which a pilot scenario is checked against;
* ``Config``, ``profile_config``, ``PROFILES`` (the profiles as data), ``NOTEBOOK``, ``TRAIN_HINT``.

:mod:`facekit.methods.common` holds what the packages share (pool samplers, batched inference,
rendered pools, profile tables); :mod:`facekit.methods.oracle` the one scoring-oracle network
that SynFER, GenCon and PluGeN4Faces judge their faces with.
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
