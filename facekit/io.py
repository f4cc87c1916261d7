"""Atomic file writes: a reader (or an interrupted run) sees the old file or the new one,
never half of one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor


def atomic_write(path: str | Path, data: bytes | str | Callable[[Path], None]) -> Path:
    """Write ``data`` (bytes, text, or a function that writes a given temp path) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp creates 0600; give the file normal permissions
    try:
        if callable(data):
            data(tmp_path)
        elif isinstance(data, str):
            tmp_path.write_text(data, encoding="utf-8")
        else:
            tmp_path.write_bytes(data)
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)
    return path


def disk_cached(name: str, key: Any, make: Callable[[], dict[str, Tensor]]) -> dict[str, Tensor]:
    """Rendered tensors cached as safetensors under ``<cache>/data`` (rendering dominates on a CPU),
    keyed by ``name`` and a hash of ``key``."""
    from safetensors.torch import load_file, save_file

    from facekit.config import cache_dir, config_hash

    path = cache_dir() / "data" / f"{name}-{config_hash(key)}.safetensors"
    if path.is_file():
        return load_file(str(path))
    tensors = {k: v.contiguous() for k, v in make().items()}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp)))
    return tensors


def to_uint8(x: Tensor) -> Tensor:
    """Images in [0, 1] as uint8: a quarter of the bytes in caches."""
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)
