"""The ORL / AT&T faces: 400 grey 92x112 photos of 40 people (folders ``s1`` .. ``s40``).

Credit: Olivetti Research Laboratory, Cambridge, UK (1992-1994), who ask that users credit
them. A small real set with identity labels, for checking on real photos what was learned on
synthetic ones. facekit never ships or downloads it: point ``FACEKIT_ORL`` at a copy.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from facekit.config import cache_dir
from facekit.real.align import FaceRecord, align_faces
from facekit.real.detect import FaceBox

N_PEOPLE = 40
N_IMAGES = 400
# The mean Haar box over the ORL photos where the cascade finds a face (92x112 pixels);
# photos it misses get this crop, so every ORL face is framed about the same way.
ORL_BOX = FaceBox(x=7.0, y=23.0, w=77.0, h=77.0)
# Every ORL face fills the frame, so a Haar box under 0.8 of ORL_BOX's width is a part of a
# face (a few photos with glasses or a tilted head give 55-61 px boxes); those are not looked for.
ORL_MIN_FACE = 62


def orl_candidates() -> list[Path]:
    """Where the ORL folder is looked for, in order: ``FACEKIT_ORL``, the project's
    ``../shared/data/orl_faces`` (only in a source checkout), ``<cache>/data/orl_faces``."""
    places = []
    env = os.environ.get("FACEKIT_ORL")
    if env:
        places.append(Path(env).expanduser())
    repo = Path(__file__).resolve().parents[2]
    if (repo / "pyproject.toml").is_file():  # a checkout, not site-packages
        places.append(repo.parent / "shared" / "data" / "orl_faces")
    places.append(cache_dir() / "data" / "orl_faces")
    return places


def orl_dir() -> Path:
    """The first ORL folder that exists (see :func:`orl_candidates`), else FileNotFoundError."""
    places = orl_candidates()
    for p in places:
        if p.is_dir():
            return p
    raise FileNotFoundError(
        "ORL faces not found; looked in: " + ", ".join(str(p) for p in places)
        + ". Put the folders s1..s40 (AT&T 'orl_faces') in one of them, or set FACEKIT_ORL."
    )


def orl_files(root: Path | None = None) -> tuple[list[Path], list[int]]:
    """The photo paths in person then photo order (numeric: s2 before s10) and person ids 0..39."""
    root = orl_dir() if root is None else Path(root)
    files, person = [], []
    people = sorted((d for d in root.iterdir() if d.is_dir() and re.fullmatch(r"s\d+", d.name)), key=lambda d: int(d.name[1:]))
    for pid, d in enumerate(people):
        shots = sorted(d.glob("*.pgm"), key=lambda f: (len(f.stem), f.stem))
        files += shots
        person += [pid] * len(shots)
    if not files:
        raise FileNotFoundError(f"{root} holds no s<N>/*.pgm photos; expected the ORL folders s1..s40")
    return files, person


def load_orl(size: int = 64, detect: bool = True, detector: str = "haar") -> tuple[torch.Tensor, torch.Tensor, list[FaceRecord]]:
    """``(images N x 3 x size x size in [0, 1], person ids N, report)`` for all ORL photos.

    With ``detect`` the ``detector`` (``"haar"``: 349 of 400 found; ``"dlib"``, if installed:
    389) frames each face, eyes levelled when found; photos where it finds no face of
    :data:`ORL_MIN_FACE`+ px, and all photos when ``detect=False``, get the fixed
    :data:`ORL_BOX` crop, marked
    ``status == "fallback"`` in the report (count detections with
    ``sum(r.status == "ok" for r in report)``). A damaged file stays in the report without a row.
    """
    files, person = orl_files()
    images, report = align_faces(files, size, detect=detect, fallback=ORL_BOX, detector=detector, min_face=ORL_MIN_FACE)
    # a damaged file has no row (its record says why); the others keep their person id
    ids = [pid for pid, r in zip(person, report, strict=True) if r.row is not None]
    return images, torch.tensor(ids, dtype=torch.long), report
