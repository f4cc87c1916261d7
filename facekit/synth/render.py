"""``render``: the one entry point that turns FaceParams into images, whatever the backend."""

from __future__ import annotations

import torch

from facekit.synth.params import FaceParams
from facekit.synth.style import Style, apply_style

BACKENDS = ("procedural", "ict")


def render(
    params: FaceParams,
    size: int = 64,
    style: str | Style = "clean",
    backend: str = "procedural",
) -> torch.Tensor:
    """Render a batch of faces to ``N x 3 x size x size`` floats in [0, 1].

    ``style`` applies a camera pipeline (``"clean"`` or ``"target"``); ``backend`` picks
    the face model (``"procedural"``, embedded, or ``"ict"``, the 3D morphable model).
    The images are on ``params.device``.
    """
    if backend == "procedural":
        from facekit.synth.procedural import render_procedural

        img = render_procedural(params, size)
    elif backend == "ict":
        from facekit.synth.ict import render_ict

        img = render_ict(params, size)
    else:
        raise ValueError(f"backend={backend!r} is not valid; choose one of {list(BACKENDS)}")
    return apply_style(img, params.seed, style)
