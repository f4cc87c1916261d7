"""Where the renderer draws the eyes and the mouth: the target of landmark alignment.

A model trained on ``facekit.render`` has only ever seen eyes and a mouth at the places the
renderer puts them, so real photos are warped to put theirs there too. Those places are not
typed in by hand: :func:`measure_canonical` reads them from the renderer itself (the procedural
layout's feature centres, the ICT backend's 68 Multi-PIE landmarks) averaged over sampled
identities at a neutral, frontal pose, and the constants below are its output, checked against
a fresh measurement by the tests (re-measure when the renderer's layout changes).

Positions are fractions of the side of the ``"head"``-framed image (x right, y down; 0 and 1 are
the outer edges of the first and last pixel), so they hold at any size; the ``"face"`` framing
is a window of the head framing (:data:`facekit.synth.framing.FACE_CENTER`) in which posed
renders are aligned to their frontal selves (``facekit.synth.pose_align``), so aligning a photo to the head framing and then
:func:`facekit.synth.render.reframe` gives the face framing.
"""

from __future__ import annotations

import numpy as np
import torch

from facekit.synth.params import FaceParams, sample_identities

POINTS = ("left_eye", "right_eye", "mouth")  # image-left eye first (the subject's right eye)
Point = tuple[float, float]

# measure_canonical("procedural") and measure_canonical("ict"), n=500, seed=0.
CANONICAL_PROCEDURAL: dict[str, Point] = {
    "left_eye": (0.3634, 0.4275), "right_eye": (0.6366, 0.4275), "mouth": (0.5000, 0.6297),
}
CANONICAL_ICT: dict[str, Point] = {
    "left_eye": (0.3756, 0.4353), "right_eye": (0.6243, 0.4353), "mouth": (0.5000, 0.7003),
}
BACKEND_CANONICAL = {"procedural": CANONICAL_PROCEDURAL, "ict": CANONICAL_ICT}
# The alignment target: the mean of the two backends, as a model trained on mixed backends sees.
CANONICAL: dict[str, Point] = {
    k: ((CANONICAL_PROCEDURAL[k][0] + CANONICAL_ICT[k][0]) / 2, (CANONICAL_PROCEDURAL[k][1] + CANONICAL_ICT[k][1]) / 2)
    for k in POINTS
}

# dlib / Multi-PIE 68-point indices whose mean is each point: eye contours and outer lip.
LANDMARK_GROUPS = {"left_eye": range(36, 42), "right_eye": range(42, 48), "mouth": range(48, 60)}


def points_from_68(landmarks: np.ndarray | torch.Tensor) -> np.ndarray:
    """``(..., 68, 2)`` landmarks -> ``(..., 3, 2)`` left eye, right eye, mouth centres."""
    lm = torch.as_tensor(landmarks, dtype=torch.float64)
    if lm.shape[-2:] != (68, 2):
        raise ValueError(f"landmarks of shape {tuple(lm.shape)} not valid; pass (..., 68, 2) Multi-PIE points")
    return torch.stack([lm[..., list(LANDMARK_GROUPS[k]), :].mean(-2) for k in POINTS], -2).numpy()


def _procedural_points(params: FaceParams) -> np.ndarray:
    """(N, 3, 2) feature centres of a frontal procedural face, in frame fractions."""
    from facekit.synth.layout import FEAT, ZOOM, Layout

    L = Layout(params)
    cx, cy = L.cx.reshape(-1), L.cy.reshape(-1)
    ex, ey, my = L.ex.reshape(-1), L.ey.reshape(-1), L.my.reshape(-1)

    def frac(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        # head units -> zoomed frame (x FEAT + centre) -> image [-1, 1] (x ZOOM) -> [0, 1]
        return torch.stack([((u * FEAT + cx) * ZOOM + 1) / 2, ((v * FEAT + cy) * ZOOM + 1) / 2], -1)

    return torch.stack([frac(-ex, ey), frac(ex, ey), frac(0 * my, my)], 1).double().numpy()


def _ict_points(params: FaceParams, size: int = 256) -> np.ndarray:
    from facekit.synth.ict import landmarks_ict

    return points_from_68(landmarks_ict(params, size)) / size


def measure_canonical(backend: str, n: int = 500, seed: int = 0) -> dict[str, Point]:
    """Mean eye and mouth centres of ``n`` sampled identities at neutral expression, frontal
    pose, age 30 and BMI 22 (``FaceParams.neutral``), drawn by ``backend`` in the head framing."""
    params = FaceParams.neutral(sample_identities(n, seed))
    if backend == "procedural":
        pts = _procedural_points(params)
    elif backend == "ict":
        pts = _ict_points(params)
    else:
        raise ValueError(f"backend={backend!r} is not valid; choose one of {list(BACKEND_CANONICAL)}")
    mean = pts.mean(0)
    return {k: (round(float(mean[i, 0]), 4), round(float(mean[i, 1]), 4)) for i, k in enumerate(POINTS)}


def canonical_pixels(size: int, points: dict[str, Point] | None = None) -> np.ndarray:
    """``(3, 2)`` canonical points in pixel-index coordinates of a ``size``-pixel image (the
    centre of pixel 0 is 0, as OpenCV and dlib count)."""
    pts = CANONICAL if points is None else points
    return np.array([pts[k] for k in POINTS], dtype=np.float64) * size - 0.5
