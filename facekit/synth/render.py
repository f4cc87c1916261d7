"""``render``: the one entry point that turns FaceParams into images, whatever the backend.

Two framings. ``"head"`` (the default) shows the head and shoulders, as a portrait does; it is
what every detector-aligned real photo is cut to (``facekit.real.align``). ``"face"`` is the tight
crop of the inner face (brows to chin) that AU and expression pipelines train on (BP4D and DISFA
tools align and crop to the face): the same pixels budget spent on the face alone, 1.8 times the
linear resolution. Rendering ``"face"`` draws the head framing at a higher resolution and keeps the
window, so the face is never upsampled; :func:`reframe` cuts the same window from head-framed
images (renders or aligned photos) for a model trained on face-framed ones.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from facekit.synth.params import FaceParams
from facekit.synth.style import Style, apply_style

BACKENDS = ("procedural", "ict")
FRAMINGS = ("head", "face")
# The face window in the head framing's coordinates (the image spans [-1, 1], y down): centre
# and half-width. It holds brows, eyes, cheeks, mouth and chin of every face shape at
# pose_scale <= 1 (facekit.synth.procedural.region_boxes; measured on 200 faces).
FACE_CENTER = (0.0, 0.03)
FACE_HALF_WIDTH = 0.55


def check_framing(framing: str) -> str:
    if framing not in FRAMINGS:
        raise ValueError(f"framing={framing!r} is not valid; choose one of {list(FRAMINGS)}")
    return framing


def _face_geometry(size: int) -> tuple[int, int, int]:
    """(full head-framed size, first row, first column) whose ``size``-pixel window is the face."""
    from facekit.synth.procedural import MAX_SIZE

    full = round(size / FACE_HALF_WIDTH)
    if full > MAX_SIZE:
        raise ValueError(f"size={size} is not valid with framing='face' (it renders the head at {full} px, above "
                         f"{MAX_SIZE}); pass size <= {int(MAX_SIZE * FACE_HALF_WIDTH)}")
    row = round((full - size) / 2 + FACE_CENTER[1] * full / 2)
    col = round((full - size) / 2 + FACE_CENTER[0] * full / 2)
    return full, row, col


def render(
    params: FaceParams,
    size: int = 64,
    style: str | Style = "clean",
    backend: str = "procedural",
    framing: str = "head",
) -> torch.Tensor:
    """Render a batch of faces to ``N x 3 x size x size`` floats in [0, 1].

    ``style`` applies a camera pipeline (``"clean"`` or ``"target"``); ``backend`` picks
    the face model (``"procedural"``, embedded, or ``"ict"``, the 3D morphable model);
    ``framing`` is ``"head"`` or ``"face"`` (see the module docstring).
    The images are on ``params.device``.
    """
    check_framing(framing)
    if framing == "face":
        full, row, col = _face_geometry(size)
        img = _render_backend(params, full, backend)[..., row:row + size, col:col + size]
    else:
        img = _render_backend(params, size, backend)
    return apply_style(img, params.seed, style)


def _render_backend(params: FaceParams, size: int, backend: str) -> torch.Tensor:
    if backend == "procedural":
        from facekit.synth.procedural import render_procedural

        return render_procedural(params, size)
    if backend == "ict":
        from facekit.synth.ict import render_ict

        return render_ict(params, size)
    raise ValueError(f"backend={backend!r} is not valid; choose one of {list(BACKENDS)}")


def reframe(images: torch.Tensor, size: int, framing: str, source: str = "head") -> torch.Tensor:
    """``images`` (``N x C x H x W``, framed as ``source``) as ``size x size`` images framed as
    ``framing``; the face window is resampled with antialiasing. A face-framed image cannot be
    widened back to the head framing."""
    check_framing(framing)
    check_framing(source)
    if source == "face" and framing == "head":
        raise ValueError("images framed as 'face' cannot be reframed as 'head' (the rest of the head is not in them); "
                         "pass head-framed images")
    if source == "head" and framing == "face":
        h, w = images.shape[-2:]
        cy, cx = (1 + FACE_CENTER[1]) * h / 2, (1 + FACE_CENTER[0]) * w / 2
        hh, hw = FACE_HALF_WIDTH * h / 2, FACE_HALF_WIDTH * w / 2
        r0, r1 = max(0, round(cy - hh)), min(h, round(cy + hh))
        c0, c1 = max(0, round(cx - hw)), min(w, round(cx + hw))
        images = images[..., r0:r1, c0:c1]
    if images.shape[-2:] != (size, size):
        images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return images
