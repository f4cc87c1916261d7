"""Framing geometry: where the face window sits in the head-and-shoulders frame.

Two framings. ``"head"`` (the default) shows the head and shoulders, as a portrait does; it is
what every detector-aligned real photo is cut to (``facekit.real.align``). ``"face"`` is the tight
crop of the inner face (brows to chin) that AU and expression pipelines train on (BP4D and DISFA
tools align and crop to the face): the same pixel budget spent on the face alone, 1.8 times the
linear resolution. Rendering ``"face"`` draws the head framing at a higher resolution and keeps the
window (``face_geometry``), so the face is never upsampled; :func:`reframe` cuts the same window
from head-framed images (renders or aligned photos) for a model trained on face-framed ones.
A posed face is also aligned in the face framing, as a detector aligns a photo: the window follows
its eyes and mouth (``facekit.synth.pose_align``), so for a frontal face, and only for one, the face
framing is exactly the window of the head framing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from facekit.synth.layout import MAX_SIZE

FRAMINGS = ("head", "face")
# The face window in the head framing's coordinates (the image spans [-1, 1], y down): centre
# and half-width. It holds brows, eyes, cheeks, mouth and chin of every face shape at
# pose_scale <= 1 (facekit.synth.procedural.region_boxes; measured on 200 faces).
FACE_CENTER = (0.0, 0.03)
FACE_HALF_WIDTH = 0.55


def check_framing(framing: str) -> str:
    """``framing`` itself, or an error that lists the valid framings."""
    if framing not in FRAMINGS:
        raise ValueError(f"framing={framing!r} is not valid; choose one of {list(FRAMINGS)}")
    return framing


def face_geometry(size: int) -> tuple[int, int, int]:
    """(full head-framed size, first row, first column) whose ``size``-pixel window is the face."""
    full = round(size / FACE_HALF_WIDTH)
    if full > MAX_SIZE:
        raise ValueError(f"size={size} is not valid with framing='face' (it renders the head at {full} px, above "
                         f"{MAX_SIZE}); pass size <= {int(MAX_SIZE * FACE_HALF_WIDTH)}")
    row = round((full - size) / 2 + FACE_CENTER[1] * full / 2)
    col = round((full - size) / 2 + FACE_CENTER[0] * full / 2)
    return full, row, col


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
