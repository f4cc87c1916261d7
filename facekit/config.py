"""Profiles, seeding, device choice and the cache dir.

Every notebook and command reads its scale from one *profile*, so a single switch
(``FACEKIT_PROFILE``) turns a 90-second smoke run into a full GPU run without
touching code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

PROFILES = ("smoke", "cpu", "gpu")


def get_profile(profile: str | None = None) -> str:
    """Return a validated profile name; ``None`` reads ``FACEKIT_PROFILE`` (default ``cpu``)."""
    name = profile if profile is not None else os.environ.get("FACEKIT_PROFILE", "cpu")
    if name not in PROFILES:
        raise ValueError(f"profile={name!r} is not valid; choose one of {list(PROFILES)}")
    return name


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a torch generator seeded the same way."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed={seed!r} is not valid; pass a non-negative int")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def get_device(device: str | torch.device | None = None) -> torch.device:
    """``FACEKIT_DEVICE`` overrides; otherwise CUDA when present, else CPU."""
    if device is None:
        device = os.environ.get("FACEKIT_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def cache_dir() -> Path:
    """Where trained models and parsed assets live (``FACEKIT_CACHE`` or the user cache dir)."""
    env = os.environ.get("FACEKIT_CACHE")
    if env:
        path = Path(env).expanduser()
    else:
        import platformdirs

        path = Path(platformdirs.user_cache_dir("facekit"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def asset_dirs() -> list[Path]:
    """Folders searched for 3D assets, in order: ``FACEKIT_ASSETS``, then ``<cache>/assets``."""
    dirs = []
    env = os.environ.get("FACEKIT_ASSETS")
    if env:
        dirs.append(Path(env).expanduser())
    dirs.append(cache_dir() / "assets")
    return dirs


def offline() -> bool:
    """Offline is the default: only an explicit command (``facekit assets fetch``) downloads."""
    return os.environ.get("FACEKIT_OFFLINE", "1") not in ("0", "false", "False", "no")


def results_dir(profile: str | None = None) -> Path:
    """``results/<profile>/`` under ``FACEKIT_RESULTS``; by default ``results/`` at the root
    of the facekit checkout we are in (notebooks run from ``notebooks/``), else ``./results``."""
    env = os.environ.get("FACEKIT_RESULTS")
    if env:
        return Path(env) / get_profile(profile)
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and 'name = "facekit"' in pyproject.read_text(encoding="utf-8", errors="ignore"):
            return folder / "results" / get_profile(profile)
    return here / "results" / get_profile(profile)


def config_dict(config: Any) -> Any:
    """The JSON-able view of a config that :func:`config_hash` hashes.

    Dataclasses (nested too) become dicts, minus fields declared with
    ``field(..., metadata={"cache_key": False})``: settings such as logging cadence that do
    not change a trained model, so changing them does not invalidate the cache.
    """
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {
            f.name: config_dict(getattr(config, f.name))
            for f in dataclasses.fields(config)
            if f.metadata.get("cache_key", True)
        }
    if isinstance(config, dict):
        return {k: config_dict(v) for k, v in config.items()}
    if isinstance(config, list | tuple):
        return [config_dict(v) for v in config]
    return config


def config_hash(config: Any) -> str:
    """A short stable hash of a dataclass config (or any JSON-able value), for cache keys."""
    blob = json.dumps(config_dict(config), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]
