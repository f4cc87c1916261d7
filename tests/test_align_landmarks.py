"""Landmark alignment: the canonical positions are the renderer's, and a face aligned by them
lands where the renderer draws it (renders come back to their own geometry)."""

import numpy as np
import pytest
import torch

from facekit.real.canonical import BACKEND_CANONICAL, POINTS, measure_canonical
from facekit.synth.pose_align import key_points

pytest.importorskip("cv2", reason="the `real` extra (opencv-python-headless) is not installed")
pytest.importorskip("dlib", reason="dlib-bin is not installed")


def _arr(points: dict) -> np.ndarray:
    return np.array([points[k] for k in POINTS])


def test_procedural_constants_are_the_renderers_measurement():
    assert np.allclose(_arr(measure_canonical("procedural")), _arr(BACKEND_CANONICAL["procedural"]), atol=2e-4)


def test_ict_constants_are_the_renderers_measurement():
    from facekit.synth.assets import AssetsNotFoundError, find_ict_dir

    try:
        find_ict_dir()
    except AssetsNotFoundError as e:
        pytest.skip(f"ICT-FaceKit assets not found ({e}); set FACEKIT_ASSETS")
    # 100 identities instead of the constants' 500: their mean is within 0.003 of the frame
    assert np.allclose(_arr(measure_canonical("ict", n=100)), _arr(BACKEND_CANONICAL["ict"]), atol=3e-3)


def test_unknown_backend_is_named():
    with pytest.raises(ValueError, match="backend='x'.*procedural"):
        measure_canonical("x")


def test_similarity_recovers_a_known_transform():
    from facekit.real.align import similarity

    src = np.array([[10.0, 20.0], [40.0, 22.0], [25.0, 50.0]])
    a = np.deg2rad(12)
    m = np.array([[np.cos(a), -np.sin(a), 3.0], [np.sin(a), np.cos(a), -7.0]]) * np.array([[1.5], [1.5]])
    m[:, 2] = [3.0, -7.0]
    dst = src @ m[:, :2].T + m[:, 2]
    assert np.allclose(similarity(src, dst), m)


def test_aligned_render_keeps_the_renderers_eye_positions():
    """Frontal neutral renders at 128 px, aligned to the procedural geometry at 64 px: each face's
    true eye centres (from the layout) stay within 2.5 px (1.5 px on average) of where the renderer
    drew them; what moves them is each face's own eye spacing, aligned to the mean one."""
    from facekit.real import align_faces
    from facekit.real.align import similarity
    from facekit.real.canonical import canonical_pixels, points_from_68
    from facekit.synth.params import FaceParams, sample_identities
    from facekit.synth.render import render

    params = FaceParams.neutral(sample_identities(8, 3))
    images = render(params, 128)
    arrays = [im.permute(1, 2, 0).numpy() for im in images]
    crops, recs = align_faces(arrays, 64, target="procedural")
    assert [r.crop for r in recs] == ["landmarks"] * 8, [r.reason for r in recs]
    truth = ((key_points(params, "procedural") + 1) / 2).double().numpy()  # frame fractions
    dst = canonical_pixels(64, BACKEND_CANONICAL["procedural"])
    errors = []
    for rec, true in zip(recs, truth, strict=True):
        m = similarity(points_from_68(np.asarray(rec.box.landmarks)), dst)  # the warp align_faces applied
        moved = (true[:2] * 128 - 0.5) @ m[:, :2].T + m[:, 2]  # true eyes, carried into the aligned crop
        errors.append(np.abs(moved - (true[:2] * 64 - 0.5)).max())
    assert max(errors) < 2.5 and np.mean(errors) < 1.5, errors
    assert crops.shape == (8, 3, 64, 64) and torch.isfinite(crops).all()
