"""Which implementation a kernel call uses: the Triton kernel or its plain-torch twin.

Triton kernels run on CUDA tensors only (or on CPU tensors, slowly, under the Triton
interpreter, ``TRITON_INTERPRET=1``, which is how the tests check them without a GPU).
So the default is Triton on CUDA when it is installed, torch everywhere else;
``FACEKIT_KERNELS=torch|triton`` overrides it for a whole run and ``use_backend`` for
a block of code (the benchmarks time the torch reference on the GPU that way).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator

import torch

BACKENDS = ("torch", "triton")
INSTALL_HINT = "triton not installed: pip install -e '.[gpu]'"

_forced: str | None = None


@functools.cache
def triton_available() -> bool:
    """Whether Triton (the optional ``gpu`` extra) imports; checked once, when first needed."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def interpreting() -> bool:
    """Whether Triton kernels run in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def _check(name: str, source: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"{source}={name!r} is not valid; choose one of {list(BACKENDS)}")
    return name


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Force ``name`` (``"torch"`` or ``"triton"``) for kernel calls inside the block."""
    global _forced
    previous, _forced = _forced, _check(name, "backend")
    try:
        yield
    finally:
        _forced = previous


def backend(device: torch.device | str) -> str:
    """``"triton"`` or ``"torch"`` for tensors on ``device``.

    Precedence: ``use_backend``, then ``FACEKIT_KERNELS``, then Triton on CUDA when it is
    installed. Asking for Triton where it cannot run raises an error that says why.
    """
    device = torch.device(device)
    requested = _forced or os.environ.get("FACEKIT_KERNELS", "").strip().lower() or None
    if requested is None:
        return "triton" if device.type == "cuda" and triton_available() else "torch"
    if _check(requested, "FACEKIT_KERNELS") == "triton":
        if not triton_available():
            raise RuntimeError(f"the Triton kernels were requested but {INSTALL_HINT}")
        if device.type != "cuda" and not interpreting():
            raise RuntimeError(
                f"the Triton kernels need CUDA tensors, got {device.type}; move the data to a GPU, "
                "set FACEKIT_KERNELS=torch, or set TRITON_INTERPRET=1 (slow, for tests)"
            )
    return requested
