"""Crop real photos to the framing of facekit's synthetic faces, as model-ready tensors.

A model trained on ``facekit.render`` sees the eyes and the mouth where the renderer draws them
(:mod:`facekit.real.canonical`, measured from the renderer). A photo cropped differently
(tighter, off centre, tilted) would test the framing, not the face, so with landmarks (the
default ``"auto"`` detector) each face is warped by the similarity transform that puts its eye
and mouth centres, in the least-squares sense, on those positions. Without landmarks (the
``"haar"`` and ``"dlib"`` detectors) the crop is cut around the face box, levelled by the eyes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from facekit.real.canonical import BACKEND_CANONICAL, CANONICAL, canonical_pixels, points_from_68
from facekit.real.detect import (
    DETECTORS,
    FaceBox,
    eyes_in_gray,
    faces_in_gray,
    require_cv2,
    require_dlib,
    to_gray_u8,
)
from facekit.real.load import MAX_SIDE, Source, iter_images

# Measured on the 362 ORL faces the cascade finds, 209 with both eyes found: the eye midpoint
# lies at (0.49, 0.38) of the Haar box (in box widths) and the eyes 0.44 box widths apart. The
# synthetic renderer puts the eye midpoint at (0.50, 0.42) of the frame and the eyes 0.27 frame
# widths apart, so the frame is 0.44 / 0.27 = 1.6 box widths centred on the box: a margin of
# 0.3 box widths on each side. (facekit.synth.procedural.region_boxes gives the synthetic layout.)
MARGIN = 0.3
FALLBACKS = ("center",)
TARGETS = ("mixed", *BACKEND_CANONICAL)  # whose landmark positions to align to ("mixed": their mean)


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2 x 3 rotation + uniform scale + shift that maps points ``src`` (K x 2) onto ``dst``
    with least squared error (Umeyama's closed form, no reflection)."""
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    # complex form: z_dst = c * z_src, c = sum(conj(z_src) z_dst) / sum |z_src|^2
    zs, zd = a[:, 0] + 1j * a[:, 1], b[:, 0] + 1j * b[:, 1]
    c = np.sum(np.conj(zs) * zd) / np.sum(np.abs(zs) ** 2)
    m = np.array([[c.real, -c.imag, 0.0], [c.imag, c.real, 0.0]])
    m[:, 2] = md - m[:, :2] @ ms
    return m


def warp_to(image: np.ndarray, points: np.ndarray, size: int, target: str = "mixed") -> np.ndarray:
    """``image`` warped so that ``points`` (left eye, right eye, mouth in its pixels) land on the
    ``target`` positions of a ``size``-pixel head-framed image. Shrinking goes through an area
    filter first, so large photos do not alias; outside the photo is its median edge colour."""
    cv2 = require_cv2()
    dst = canonical_pixels(size, CANONICAL if target == "mixed" else BACKEND_CANONICAL[target])
    m = similarity(points, dst)
    scale = math.hypot(m[0, 0], m[1, 0])
    edge = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    fill = tuple(float(v) for v in np.median(edge, axis=0))
    if scale < 0.5:  # shrink the photo to about twice the output first
        k = 2 * scale
        image = cv2.resize(image, (max(1, round(image.shape[1] * k)), max(1, round(image.shape[0] * k))),
                           interpolation=cv2.INTER_AREA)
        m = similarity((points + 0.5) * k - 0.5, dst)
    out = cv2.warpAffine(np.ascontiguousarray(image, dtype=np.float32), m, (size, size), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=fill)
    return np.clip(out, 0.0, 1.0)


@dataclass
class FaceRecord:
    """What :func:`align_faces` did with one input.

    ``status``: ``"ok"`` (a detected face), ``"fallback"`` (no face used; a centre or fixed crop
    was taken instead, as ``crop`` says), ``"no_face"``, or a load failure code from
    :data:`facekit.real.load.STATUSES`. ``row`` indexes the returned tensor (``None`` when the
    input produced no crop). ``box`` is the face (or fixed) box in the loaded image's pixels,
    ``eyes`` the two eye centres (image-left first) when both were found, ``roll`` the rotation
    in degrees applied to level them.
    """

    source: str
    status: str
    reason: str
    row: int | None = None
    crop: str | None = None
    box: FaceBox | None = None
    eyes: tuple[tuple[float, float], tuple[float, float]] | None = None
    roll: float = 0.0
    image_size: tuple[int, int] | None = None  # (width, height) after loading
    loaded: str = ""  # how the file was read (format, size, mode, any downscaling)


def crop_face(
    image: np.ndarray, center: tuple[float, float], side: float, size: int, roll: float = 0.0
) -> np.ndarray:
    """The ``side``-pixel square around ``center``, rotated by ``roll`` degrees
    (counter-clockwise, to undo a clockwise head tilt), resampled to ``size x size``.

    Parts outside the photo are filled with the median colour of its outermost pixels: a
    plain background, like the synthetic faces have, rather than black bars or smeared edges.
    Downscaling goes through an area filter first, so large photos do not alias.
    """
    cv2 = require_cv2()
    if side <= 0 or size < 1:
        raise ValueError(f"side={side}, size={size} not valid; need side > 0 and size >= 1")
    h, w = image.shape[:2]
    cx, cy = center
    r = side * 0.75 + 2  # covers the rotated square (half-diagonal 0.707 side) plus the filter
    x0, y0 = max(0, math.floor(cx - r)), max(0, math.floor(cy - r))
    x1, y1 = min(w, math.ceil(cx + r)), min(h, math.ceil(cy + r))
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"center={center} with side={side} lies outside the {w}x{h} image")
    edge = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    fill = tuple(float(v) for v in np.median(edge, axis=0))
    sub = image[y0:y1, x0:x1]
    cx, cy = cx - x0, cy - y0
    scale = size / side
    if scale < 1.0:
        k_w, k_h = max(1, round(sub.shape[1] * scale)), max(1, round(sub.shape[0] * scale))
        kx, ky = k_w / sub.shape[1], k_h / sub.shape[0]
        sub = cv2.resize(sub, (k_w, k_h), interpolation=cv2.INTER_AREA)
        cx, cy, scale = cx * kx, cy * ky, scale / math.sqrt(kx * ky)
    m = cv2.getRotationMatrix2D((cx, cy), roll, scale)
    m[:, 2] += (size / 2 - cx, size / 2 - cy)
    out = cv2.warpAffine(
        np.ascontiguousarray(sub, dtype=np.float32), m, (size, size),
        flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=fill,
    )
    return np.clip(out, 0.0, 1.0)


def _box_str(b: FaceBox) -> str:
    return f"{b.w:.0f}x{b.h:.0f} px at ({b.x:.0f}, {b.y:.0f})"


def align_faces(
    sources: Source | Sequence[Source],
    size: int = 64,
    *,
    detect: bool = True,
    fallback: str | FaceBox | None = None,
    roll: bool = True,
    margin: float = MARGIN,
    detector: str = "auto",
    target: str = "mixed",
    min_neighbors: int = 5,
    min_face: int = 24,
    max_side: int = MAX_SIDE,
) -> tuple[torch.Tensor, list[FaceRecord]]:
    """Load, detect, align and crop: ``(images N x 3 x size x size in [0, 1], records)``.

    One record per input (see :class:`FaceRecord`), failures included, so nothing is dropped
    silently. The largest face of each photo is used; ``roll`` levels the eyes when both are
    found. Without a face the photo is left out (``"no_face"``) unless ``fallback`` says what
    to crop instead: ``"center"`` (the central square of the photo, for already-cropped
    portraits) or a fixed :class:`FaceBox` (for a set whose photos share one framing, such as
    ORL); such rows are marked ``"fallback"``. ``detect=False`` uses the fallback for every photo.
    ``detector``, ``min_neighbors`` and ``min_face`` (pixels) go to :func:`facekit.real.detect_faces`;
    with landmarks (``"auto"``) the face is warped to the ``target`` geometry (:data:`TARGETS`:
    the procedural or ICT renderer's eye and mouth positions, or ``"mixed"``, their mean).
    """
    require_cv2()
    if detector not in DETECTORS:
        raise ValueError(f"detector={detector!r} is not valid; choose one of {list(DETECTORS)}")
    if target not in TARGETS:
        raise ValueError(f"target={target!r} is not valid; choose one of {list(TARGETS)}")
    if detect and detector in ("auto", "dlib"):
        require_dlib()  # fail before loading anything
    if not isinstance(size, int) or size < 8:
        raise ValueError(f"size={size!r} is not valid; pass an int >= 8 (models use 64 or 128)")
    if not (fallback is None or isinstance(fallback, FaceBox) or fallback in FALLBACKS):
        raise ValueError(f"fallback={fallback!r} is not valid; use None, 'center' or a FaceBox")
    if not detect and fallback is None:
        raise ValueError("detect=False needs a fallback ('center' or a FaceBox) to know what to crop")
    if margin < 0:
        raise ValueError(f"margin={margin} is not valid; pass a margin >= 0 (box widths per side)")
    crops: list[np.ndarray] = []
    records: list[FaceRecord] = []
    for item in iter_images(sources, max_side):
        if item.image is None:
            records.append(FaceRecord(item.source, item.status, item.reason))
            continue
        img = item.image
        h, w = img.shape[:2]
        rec = FaceRecord(item.source, "no_face", "", image_size=(w, h), loaded=item.reason)
        gray = to_gray_u8(img, equalize=detector != "auto")
        faces = faces_in_gray(gray, detector, min_neighbors, min_size=min_face) if detect else []
        if faces and faces[0].landmarks is not None:
            box = faces[0]
            pts = points_from_68(np.asarray(box.landmarks))
            (lx, ly), (rx, ry) = pts[0], pts[1]
            rec.status, rec.crop, rec.box = "ok", "landmarks", box
            rec.eyes = ((float(lx), float(ly)), (float(rx), float(ry)))
            rec.roll = math.degrees(math.atan2(ry - ly, rx - lx))
            rec.reason = f"face {_box_str(box)}, score {box.score:.3g}; eyes and mouth aligned to the {target} renderer geometry, rotated {rec.roll:+.1f} deg"
            if len(faces) > 1:
                rec.reason += f"; {len(faces) - 1} smaller face(s) ignored"
            crops.append(warp_to(img, pts, size, target))
            rec.row = len(crops) - 1
            records.append(rec)
            continue
        if faces:
            box = faces[0]
            rec.status, rec.crop, rec.box = "ok", "face", box
            rec.reason = f"face {_box_str(box)}, score {box.score:.3g}"
            if len(faces) > 1:
                rec.reason += f"; {len(faces) - 1} smaller face(s) ignored"
            if roll:
                rec.eyes = eyes_in_gray(gray, box)
                if rec.eyes is not None:
                    (lx, ly), (rx, ry) = rec.eyes
                    rec.roll = math.degrees(math.atan2(ry - ly, rx - lx))
                    rec.reason += f"; eyes found, rotated {rec.roll:+.1f} deg"
            center, side = box.center, box.w * (1 + 2 * margin)
        else:
            why = f"no frontal face of {min_face}+ px found by the {detector} detector" if detect else "detection off"
            if fallback is None:
                rec.reason = f"{why}; pass fallback='center' to crop the middle of the photo instead"
                records.append(rec)
                continue
            rec.status = "fallback"
            if isinstance(fallback, FaceBox):
                rec.crop, rec.box = "fixed", fallback
                center, side = fallback.center, fallback.w * (1 + 2 * margin)
                rec.reason = f"{why}; fixed crop around {_box_str(fallback)}"
            else:
                rec.crop = "center"
                center, side = (w / 2, h / 2), float(min(w, h))
                rec.reason = f"{why}; central {min(w, h)}x{min(w, h)} px square cropped instead"
        crops.append(crop_face(img, center, side, size, rec.roll))
        rec.row = len(crops) - 1
        records.append(rec)
    if not crops:
        return torch.empty(0, 3, size, size), records
    batch = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()
    return batch, records
