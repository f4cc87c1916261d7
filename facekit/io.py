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


def atomic_write(path: str | Path, data: bytes | str | Callable[[Path], None], *, mode: int | None = None,
                 replace: bool = True) -> Path:
    """Write ``data`` (bytes, text, or a function that writes a given temp path) to ``path``.

    A file that is replaced keeps its permission bits (and its owner and group, where the
    process may set them), so ``--overwrite`` never makes a private file readable by others. A new
    file gets ``mode`` (default: the usual ``0666`` less the umask). ``replace=False`` never
    clobbers: a ``path`` that appeared meanwhile (another run) is a :class:`FileExistsError`, and
    the finished data is kept beside it (the error names where), so no work is lost.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        old = path.stat()
    except OSError:
        old = None
    if old is not None:
        new_mode = old.st_mode & 0o7777
    elif mode is not None:
        new_mode = mode
    else:
        umask = os.umask(0)
        os.umask(umask)
        new_mode = 0o666 & ~umask  # mkstemp creates 0600; give the file normal permissions
    os.chmod(tmp_path, new_mode)
    if old is not None and hasattr(os, "chown"):
        try:
            os.chown(tmp_path, old.st_uid, old.st_gid)
        except OSError:  # only root may give a file away; the group may still be set
            try:
                os.chown(tmp_path, -1, old.st_gid)
            except OSError:
                pass
    keep = False
    try:
        if callable(data):
            data(tmp_path)
        elif isinstance(data, str):
            tmp_path.write_text(data, encoding="utf-8")
        else:
            tmp_path.write_bytes(data)
        os.chmod(tmp_path, new_mode)  # a writer function may have recreated the file
        if replace:
            os.replace(tmp_path, path)
        else:
            try:
                os.link(tmp_path, path)  # atomic create-if-absent
            except FileExistsError:
                keep = True
                raise FileExistsError(f"{path} was created meanwhile (by another run?); it was left as it is and "
                                      f"these results are in {tmp_path}") from None
            except OSError:  # no hard links on this filesystem: check, then rename
                if path.exists():
                    keep = True
                    raise FileExistsError(f"{path} was created meanwhile (by another run?); it was left as it is "
                                          f"and these results are in {tmp_path}") from None
                os.replace(tmp_path, path)
    finally:
        if not keep:
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
