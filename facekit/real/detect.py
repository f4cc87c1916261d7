"""Face, eye and landmark detection, all with weights that ship inside the installed wheels.

The default, ``"auto"``, is a cascade of dlib detectors (``dlib-bin``; the CNN and the landmark
model come in ``face-recognition-models``): HOG on the photo, then HOG on a contrast-equalised
(CLAHE) copy, then dlib's CNN (MMOD) detector on that copy, each tried only when the one before found nothing;
small photos are upsampled first, since HOG finds no face under about 80 px. dlib's 68-point
model then places the landmarks that :func:`facekit.real.align_faces` aligns by. Measured
through ``align_faces``: it finds all 400 ORL faces, all 1,232 photos of the development set and
199 of the 200 faces ``facekit synth OUT --n 200`` writes, where OpenCV's four frontal Haar
cascades together (upsampled, 3 or 5 neighbours) find 371 ORL faces and 97 renders.
``"haar"`` (OpenCV's cascade, no dlib) and ``"dlib"`` (HOG alone, as before) stay available.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

FACE_CASCADE = "haarcascade_frontalface_default.xml"
EYE_CASCADE = "haarcascade_eye.xml"
DETECT_MAX_SIDE = 1024  # detection runs on a copy at most this big: Haar time grows with pixels
DETECTORS = ("auto", "haar", "dlib")
AUTO_MIN_SIDE = 256  # "auto" upsamples smaller photos to this short side: HOG's smallest face is ~80 px
AUTO_THRESHOLD = -0.3  # HOG margin kept by "auto": at 0 it misses 3 ORL faces and more renders
CLAHE = (2.0, 4)  # clip limit and tile grid of the contrast-equalised second HOG pass
SHAPE_68 = "shape_predictor_68_face_landmarks.dat"
CNN_FILE = "mmod_human_face_detector.dat"
# dlib's boxes are as wide as the cascade's but sit 0.085 widths lower (median over the 340 ORL
# photos where both find the face); moved up by that, one margin frames both alike.
DLIB_SHIFT = 0.085
DLIB_THRESHOLD = 0.15  # dlib's default 0 lets through a patch on skimage's astronaut (score 0.10)


@dataclass(frozen=True)
class FaceBox:
    """A face in pixel coordinates of the image it was found in (``x, y`` = top-left).

    ``score`` is, for the Haar cascade, the number of overlapping windows merged into this box
    (OpenCV's ``numDetections``), for dlib the SVM margin: higher is more confident either way.
    """

    x: float
    y: float
    w: float
    h: float
    score: float = 0.0
    # ``"auto"`` only: 68 landmarks (x, y) in the same pixels, dlib / Multi-PIE order.
    landmarks: tuple[tuple[float, float], ...] | None = None

    @property
    def center(self) -> tuple[float, float]:
        return (self.x + self.w / 2, self.y + self.h / 2)


def require_cv2() -> Any:
    """Import OpenCV, or raise an ImportError that says which extra provides it."""
    try:
        import cv2
    except ImportError as e:
        raise ImportError(
            "facekit.real needs OpenCV for face detection and alignment; install the `real` "
            'extra: pip install -e ".[real]" (or pip install "opencv-python-headless<5")'
        ) from e
    return cv2


@cache
def _cascade(name: str) -> Any:
    cv2 = require_cv2()
    path = cv2.data.haarcascades + name
    clf = cv2.CascadeClassifier(path)
    if clf.empty():
        raise ImportError(f"OpenCV has no bundled cascade {path!r}; install opencv-python-headless<5, whose wheel ships it")
    return clf


def models_folder() -> Path:
    """The ``models`` folder of ``face_recognition_models`` (dlib's weights, shipped in the
    wheel), found without importing it: its ``__init__`` imports ``pkg_resources``, which recent
    setuptools no longer has."""
    import importlib.util

    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError('this needs the package face-recognition-models; pip install -e ".[real]"')
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def require_dlib() -> Any:
    """Import dlib, or raise an ImportError that says which extra provides it."""
    try:
        import dlib
    except ImportError as e:
        raise ImportError(
            'this needs dlib; install the `real` extra: pip install -e ".[real]" (or pip install dlib-bin)'
        ) from e
    return dlib


@cache
def _hog() -> Any:
    return require_dlib().get_frontal_face_detector()


def to_gray_u8(image: np.ndarray, equalize: bool = True) -> np.ndarray:
    """float ``H x W x 3`` in [0, 1] -> histogram-equalised uint8 grey, the cascades' input.

    Equalising makes dark or washed-out photos look like the cascades' training faces; the
    ``"auto"`` detector takes the plain grey (global equalising costs HOG 6 of 200 renders) and
    equalises locally only when it found nothing.
    """
    cv2 = require_cv2()
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image shape {image.shape} is not valid; pass H x W x 3 (use facekit.real.load_images)")
    u8 = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    gray = cv2.cvtColor(u8, cv2.COLOR_RGB2GRAY)
    return cv2.equalizeHist(gray) if equalize else gray


def detect_faces(
    image: np.ndarray,
    detector: str = "auto",
    min_neighbors: int = 5,
    scale_factor: float = 1.1,
    min_size: int = 24,
    max_side: int = DETECT_MAX_SIDE,
) -> list[FaceBox]:
    """Frontal faces in a float ``H x W x 3`` image, largest first (in full-image pixels).

    ``detector`` is ``"auto"`` (the dlib cascade of the module docstring, with landmarks),
    ``"haar"`` (OpenCV) or ``"dlib"`` (HOG alone; its boxes are moved to where the
    cascade would put them, so crops look the same). For Haar, ``min_neighbors`` trades misses
    for false alarms (5 finds the one face in ``skimage.data.astronaut()`` and none in the
    other skimage photos) and ``scale_factor`` is the step between window sizes. Faces
    narrower than ``min_size`` pixels are not kept. Detection runs on a copy shrunk to
    ``max_side`` on its longer side, where Haar's smallest face is 24 px and dlib's about 80.
    """
    gray = to_gray_u8(image, equalize=detector != "auto")
    return faces_in_gray(gray, detector, min_neighbors, scale_factor, min_size, max_side)


def faces_in_gray(
    gray: np.ndarray,
    detector: str = "auto",
    min_neighbors: int = 5,
    scale_factor: float = 1.1,
    min_size: int = 24,
    max_side: int = DETECT_MAX_SIDE,
) -> list[FaceBox]:
    """:func:`detect_faces` on a :func:`to_gray_u8` image (to share one conversion with eyes)."""
    cv2 = require_cv2()
    if detector not in DETECTORS:
        raise ValueError(f"detector={detector!r} is not valid; choose one of {list(DETECTORS)}")
    if min_neighbors < 0 or scale_factor <= 1.0 or min_size < 1 or max_side < min_size:
        raise ValueError(
            f"min_neighbors={min_neighbors}, scale_factor={scale_factor}, min_size={min_size}, max_side={max_side} "
            "not valid; need min_neighbors >= 0, scale_factor > 1, min_size >= 1, max_side >= min_size"
        )
    h, w = gray.shape
    k = min(1.0, max_side / max(h, w))
    if k < 1.0:
        gray = cv2.resize(gray, (round(w * k), round(h * k)), interpolation=cv2.INTER_AREA)
    if detector == "auto":
        return _auto(gray, k, min_size)
    if detector == "haar":
        side = max(1, round(min_size * k))
        rects, counts = _cascade(FACE_CASCADE).detectMultiScale2(
            gray, scaleFactor=scale_factor, minNeighbors=min_neighbors, minSize=(side, side)
        )
        found = [(float(x), float(y), float(bw), float(n)) for (x, y, bw, _), n in zip(rects, counts, strict=True)]
    else:
        rects, scores, _ = _hog().run(gray, 0, DLIB_THRESHOLD)
        found = [(float(r.left()), r.top() - DLIB_SHIFT * r.width(), float(r.width()), float(sc)) for r, sc in zip(rects, scores, strict=True)]
    boxes = [FaceBox(x / k, y / k, bw / k, bw / k, sc) for x, y, bw, sc in found if bw / k >= min_size]
    return sorted(boxes, key=lambda b: (-b.w * b.h, -b.score))


@cache
def _dlib_models() -> tuple[Any, Any, Any]:
    """(68-point shape predictor, CNN face detector, CLAHE), loaded once."""
    dlib, cv2 = require_dlib(), require_cv2()
    folder = models_folder()
    return (dlib.shape_predictor(str(folder / SHAPE_68)), dlib.cnn_face_detection_model_v1(str(folder / CNN_FILE)),
            cv2.createCLAHE(CLAHE[0], (CLAHE[1], CLAHE[1])))


def _auto(gray: np.ndarray, k: float, min_size: int) -> list[FaceBox]:
    """The ``"auto"`` cascade on ``gray`` (already shrunk by ``k``); boxes and landmarks in the
    caller's full-image pixels."""
    cv2 = require_cv2()
    shape, cnn, clahe = _dlib_models()
    up = max(1.0, AUTO_MIN_SIDE / min(gray.shape))
    if up > 1.0:
        gray = cv2.resize(gray, (round(gray.shape[1] * up), round(gray.shape[0] * up)), interpolation=cv2.INTER_CUBIC)
    rects, scores, _ = _hog().run(gray, 0, AUTO_THRESHOLD)
    if any(sc >= 0 for sc in scores):  # weak boxes only when nothing confident: a patch on skimage's astronaut scores -0.01
        rects, scores = zip(*[(r, sc) for r, sc in zip(rects, scores, strict=True) if sc >= 0], strict=True)
    used = gray
    if not rects:
        used = clahe.apply(gray)
        rects, scores, _ = _hog().run(used, 0, AUTO_THRESHOLD)
    if not rects:
        found = cnn(np.ascontiguousarray(np.repeat(used[..., None], 3, 2)), 0)  # on the CLAHE copy: 2 more of 200 renders
        rects, scores = [d.rect for d in found], [d.confidence for d in found]
    scale = k * up
    boxes = []
    for r, sc in zip(rects, scores, strict=True):
        pts = shape(used, r)
        lm = tuple((pts.part(i).x / scale, pts.part(i).y / scale) for i in range(68))
        w = r.width() / scale
        if w >= min_size:
            boxes.append(FaceBox(r.left() / scale, (r.top() - DLIB_SHIFT * r.width()) / scale, w, w, float(sc), lm))
    return sorted(boxes, key=lambda b: (-b.w * b.h, -b.score))


def find_eyes(image: np.ndarray, box: FaceBox, max_roll: float = 25.0) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """The two eye centres inside ``box`` (image-left first), or ``None`` when no plausible pair.

    The eye cascade also fires on nostrils, brows and glasses rims, so candidates are kept
    only in the upper 60 % of the box, one on each side of its centre line, 25-65 % of the box
    width apart, tilted at most ``max_roll`` degrees; among those the most symmetric pair wins.
    """
    return eyes_in_gray(to_gray_u8(image), box, max_roll)


def eyes_in_gray(gray: np.ndarray, box: FaceBox, max_roll: float = 25.0) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """:func:`find_eyes` on a :func:`to_gray_u8` image."""
    cv2 = require_cv2()
    x0, y0 = max(0, int(box.x)), max(0, int(box.y))
    x1, y1 = min(gray.shape[1], int(box.x + box.w)), min(gray.shape[0], int(box.y + 0.6 * box.h))
    roi = gray[y0:y1, x0:x1]
    w = box.w
    if roi.size == 0 or w < 24:
        return None
    if w > 256:  # eyes need no more pixels than this; keeps the cascade fast on big faces
        k = 256 / w
        roi = cv2.resize(roi, (max(1, round(roi.shape[1] * k)), max(1, round(roi.shape[0] * k))), interpolation=cv2.INTER_AREA)
    else:
        k = 1.0
    side = w * k
    rects = _cascade(EYE_CASCADE).detectMultiScale(
        roi, scaleFactor=1.1, minNeighbors=3, minSize=(max(6, int(side / 8)),) * 2, maxSize=(int(side / 2),) * 2
    )
    cands = [(float(x0 + (ex + ew / 2) / k), float(y0 + (ey + eh / 2) / k), float(ew / k)) for ex, ey, ew, eh in rects]
    mid = box.x + w / 2
    best: tuple[float, tuple[float, float, float], tuple[float, float, float]] | None = None
    for a, b in itertools.combinations(cands, 2):
        left, right = (a, b) if a[0] < b[0] else (b, a)
        if not left[0] < mid < right[0]:
            continue
        dist = math.hypot(right[0] - left[0], right[1] - left[1])
        roll = math.degrees(math.atan2(right[1] - left[1], right[0] - left[0]))
        if not 0.25 * w < dist < 0.65 * w or abs(roll) > max_roll:
            continue
        cost = abs(left[2] - right[2]) / max(left[2], right[2]) + abs(roll) / max_roll + abs((left[0] + right[0]) / 2 - mid) / w
        if best is None or cost < best[0]:
            best = (cost, left, right)
    if best is None:
        return None
    return (best[1][0], best[1][1]), (best[2][0], best[2][1])
