"""``render``: the one entry point that turns FaceParams into images, whatever the backend.

Backends: ``"procedural"`` (embedded, no assets), ``"ict"`` (the ICT-FaceKit 3D morphable model,
which needs its assets) and ``"auto"`` (ICT-FaceKit when its assets are found, else procedural,
saying once that it fell back). An explicit ``"ict"`` never falls back: without assets it raises
an error that says how to get them. The procedural formula runs as plain torch, or as one fused
Triton kernel on CUDA (``facekit.kernels.dispatch`` decides); the choice is made here, so the
renderer and its kernel never import each other. Framings are in ``facekit.synth.framing``.
"""

from __future__ import annotations

import warnings

import torch

from facekit.synth import pose_align
from facekit.synth.assets import AssetsNotFoundError, find_ict_dir
from facekit.synth.framing import FRAMINGS, check_framing, face_geometry, reframe
from facekit.synth.params import FaceParams
from facekit.synth.style import Style, apply_style

__all__ = ["BACKENDS", "FRAMINGS", "check_backend", "check_framing", "reframe", "render", "resolve_backend"]

BACKENDS = ("auto", "procedural", "ict")
_warned_fallback = False


def check_backend(backend: str) -> str:
    """``backend`` itself, or an error that lists the valid backends."""
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is not valid; choose one of {list(BACKENDS)}")
    return backend


def resolve_backend(backend: str) -> str:
    """The backend that draws: ``"auto"`` becomes ``"ict"`` when its assets are found, else
    ``"procedural"`` (with one warning per process); the others are returned as they are."""
    global _warned_fallback
    if check_backend(backend) != "auto":
        return backend
    try:
        find_ict_dir()
    except AssetsNotFoundError as err:
        if not _warned_fallback:
            _warned_fallback = True
            warnings.warn(f"backend='auto' draws with the procedural renderer: {err}", stacklevel=3)
        return "procedural"
    return "ict"


def render(
    params: FaceParams,
    size: int = 64,
    style: str | Style = "clean",
    backend: str = "procedural",
    framing: str = "head",
) -> torch.Tensor:
    """Render a batch of faces to ``N x 3 x size x size`` floats in [0, 1].

    ``style`` applies a camera pipeline (``"clean"`` or ``"target"``); ``backend`` picks
    the face model (``"procedural"``, ``"ict"`` or ``"auto"``; see the module docstring);
    ``framing`` is ``"head"`` or ``"face"`` (see ``facekit.synth.framing``).
    The images are on ``params.device``.
    """
    check_framing(framing)
    name = resolve_backend(backend)
    if framing == "head":
        return apply_style(_render_backend(params, size, name, None), params.seed, style)
    return apply_style(_render_face(params, size, name), params.seed, style)


def _render_face(params: FaceParams, size: int, backend: str) -> torch.Tensor:
    """The face framing: only the face window of the head framing is drawn (no pixel is wasted),
    and posed faces are aligned to where their frontal selves have eyes and mouth
    (``facekit.synth.pose_align``)."""
    window = face_geometry(size)
    full, row, col = window
    posed = pose_align.is_posed(params)
    if not bool(posed.any()):
        return _render_backend(params, size, backend, window)
    out = torch.empty(len(params), 3, size, size, device=params.device)
    if not bool(posed.all()):
        out[~posed] = _render_backend(params[~posed], size, backend, window)
    where = posed.nonzero().view(-1)
    T = pose_align.frontal_to_posed(params[where], backend)
    box = pose_align.source_box(full, row, col, size)
    big = _render_backend(params[where], box[0], backend, (full, box[1], box[2]))
    out[where] = pose_align.warp_window(big, T, full, box, window, size)
    return out


def _render_backend(params: FaceParams, size: int, backend: str, window: tuple[int, int, int] | None) -> torch.Tensor:
    if backend == "ict":
        from facekit.synth.ict import render_ict

        return render_ict(params, size, window=window)
    from facekit.kernels.dispatch import backend as kernel_backend

    if kernel_backend(params.device) == "triton":  # CUDA, or FACEKIT_KERNELS=triton
        from facekit.kernels.render import render_triton

        return render_triton(params, size, window=window)
    from facekit.synth.procedural import render_procedural

    return render_procedural(params, size, window=window)
