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
from facekit.synth.pose_align import LANDMARK_GROUPS, key_points

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



def points_from_68(landmarks: np.ndarray | torch.Tensor) -> np.ndarray:
    """``(..., 68, 2)`` landmarks -> ``(..., 3, 2)`` left eye, right eye, mouth centres."""
    lm = torch.as_tensor(landmarks, dtype=torch.float64)
    if lm.shape[-2:] != (68, 2):
        raise ValueError(f"landmarks of shape {tuple(lm.shape)} not valid; pass (..., 68, 2) Multi-PIE points")
    return torch.stack([lm[..., list(LANDMARK_GROUPS[k]), :].mean(-2) for k in POINTS], -2).numpy()


def measure_canonical(backend: str, n: int = 500, seed: int = 0) -> dict[str, Point]:
    """Mean eye and mouth centres of ``n`` sampled identities at neutral expression, frontal
    pose, age 30 and BMI 22 (``FaceParams.neutral``), drawn by ``backend`` in the head framing."""
    if backend not in BACKEND_CANONICAL:
        raise ValueError(f"backend={backend!r} is not valid; choose one of {list(BACKEND_CANONICAL)}")
    # the renderer's own key points (pose alignment uses the same ones), [-1, 1] -> fractions
    pts = (key_points(FaceParams.neutral(sample_identities(n, seed)), backend).double() + 1) / 2
    mean = pts.mean(0)
    return {k: (round(float(mean[i, 0]), 4), round(float(mean[i, 1]), 4)) for i, k in enumerate(POINTS)}


def canonical_pixels(size: int, points: dict[str, Point] | None = None) -> np.ndarray:
    """``(3, 2)`` canonical points in pixel-index coordinates of a ``size``-pixel image (the
    centre of pixel 0 is 0, as OpenCV and dlib count)."""
    pts = CANONICAL if points is None else points
    return np.array([pts[k] for k in POINTS], dtype=np.float64) * size - 0.5
