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
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

PROFILES = ("smoke", "cpu", "gpu")


class ConfigError(ValueError):
    """A ``FACEKIT_*`` environment variable holds a value facekit cannot use; the message names it."""


def get_profile(profile: str | None = None) -> str:
    """Return a validated profile name; ``None`` reads ``FACEKIT_PROFILE`` (default ``cpu``)."""
    if profile is None:
        name = os.environ.get("FACEKIT_PROFILE") or "cpu"
        if name not in PROFILES:
            raise ConfigError(f"FACEKIT_PROFILE={name!r} is not valid; set it to one of {list(PROFILES)} or unset it")
        return name
    if profile not in PROFILES:
        raise ValueError(f"profile={profile!r} is not valid; choose one of {list(PROFILES)}")
    return profile


def check_environment() -> None:
    """Every ``FACEKIT_*`` variable that is set, checked at once (the commands call this first),
    so a bad value is one :class:`ConfigError` naming it before any work, not a failure later."""
    if os.environ.get("FACEKIT_PROFILE"):
        get_profile()
    if os.environ.get("FACEKIT_DEVICE"):
        get_device()
    offline()
    for var in ("FACEKIT_CACHE", "FACEKIT_RESULTS", "FACEKIT_ASSETS"):
        env = os.environ.get(var)
        if env and Path(env).expanduser().exists() and not Path(env).expanduser().is_dir():
            raise ConfigError(f"{var}={env!r} is not a folder; point it at a folder (or unset it)")


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
    name = "device"
    if device is None:
        env = os.environ.get("FACEKIT_DEVICE")
        if env:
            name, device = "FACEKIT_DEVICE", env
        else:
            device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"{name}={device!r} is not valid; use cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{name}={device!r} but this machine has no CUDA device; use cpu (or unset it)")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(f"{name}={device!r} but only {torch.cuda.device_count()} CUDA devices exist")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{name}={device!r} but MPS is not available here; use cpu (or unset it)")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"{name}={device!r} is not valid; use cpu, cuda, cuda:N or mps")
    return dev


def cache_dir() -> Path:
    """Where trained models and parsed assets live (``FACEKIT_CACHE`` or the user cache dir)."""
    env = os.environ.get("FACEKIT_CACHE")
    if env:
        path = Path(env).expanduser()
    else:
        import platformdirs

        path = Path(platformdirs.user_cache_dir("facekit"))
    name = f"FACEKIT_CACHE={env!r}" if env else f"the cache dir {str(path)!r}"
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{name} is not a folder; point FACEKIT_CACHE at a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"{name} cannot be created ({e.strerror}); point FACEKIT_CACHE at a writable folder") from None
    if not os.access(path, os.R_OK | os.X_OK):
        raise ConfigError(f"{name} cannot be read; point FACEKIT_CACHE at a readable folder")
    return path


def asset_dirs() -> list[Path]:
    """Folders searched for 3D assets, in order: ``FACEKIT_ASSETS``, then ``<cache>/assets``."""
    dirs = []
    env = os.environ.get("FACEKIT_ASSETS")
    if env:
        if Path(env).expanduser().exists() and not Path(env).expanduser().is_dir():
            raise ConfigError(f"FACEKIT_ASSETS={env!r} is not a folder; point it at the assets folder")
        dirs.append(Path(env).expanduser())
    dirs.append(cache_dir() / "assets")
    return dirs


def offline() -> bool:
    """Offline is the default: only an explicit command (``facekit assets fetch``) downloads."""
    value = os.environ.get("FACEKIT_OFFLINE", "1").strip().lower()
    if value in ("0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on", ""):
        return True
    raise ConfigError(f"FACEKIT_OFFLINE={os.environ['FACEKIT_OFFLINE']!r} is not valid; use 1 (offline) or 0")


def results_dir(profile: str | None = None) -> Path:
    """``results/<profile>/`` under ``FACEKIT_RESULTS``; by default ``results/`` at the root
    of the facekit checkout we are in (notebooks run from ``notebooks/``), else ``./results``."""
    env = os.environ.get("FACEKIT_RESULTS")
    if env:
        if Path(env).exists() and not Path(env).is_dir():
            raise ConfigError(f"FACEKIT_RESULTS={env!r} is not a folder; point it at a folder")
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


@contextmanager
def environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for a block (a notebook kernel inherits them), then put back
    what was there before, removing the ones that were unset."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
