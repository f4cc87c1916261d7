"""The ORL / AT&T faces: 400 grey 92x112 photos of 40 people (folders ``s1`` .. ``s40``).

Credit: Olivetti Research Laboratory, Cambridge, UK (1992-1994), who ask that users credit
them. A small real set with identity labels, for checking on real photos what was learned on
synthetic ones. facekit never ships it. ``facekit data fetch orl`` (:func:`fetch_orl`, the only
code here that downloads) gets the copy scikit-learn's ``fetch_olivetti_faces`` serves, the same
400 photos cropped to 64x64, from the same pinned URL with the same sha256, and writes it as
the ``s1`` .. ``s40`` folders; or point ``FACEKIT_ORL`` at a copy of the original.

Notebook sections that use ORL call :func:`orl_or_skip`, so a machine without it runs the rest of
the notebook and says, in one line, what it skipped and the command that enables it.
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path

import numpy as np
import torch

from facekit.config import cache_dir
from facekit.download import download, sha256_file
from facekit.io import atomic_write
from facekit.real.align import FaceRecord, align_faces
from facekit.real.detect import FaceBox

FETCH_COMMAND = "facekit data fetch orl"
# scikit-learn's fetch_olivetti_faces source (sklearn.datasets._olivetti_faces.FACES): Sam
# Roweis' 64x64 crops of the ORL photos as one MATLAB file, 4096 x 400 pixels, person-major.
OLIVETTI_URL = "https://ndownloader.figshare.com/files/5976027"
OLIVETTI_SHA256 = "b612fb967f2dc77c9c62d3e1266e0c73d5fca46a4b8906c18e454d41af987794"
OLIVETTI_MAT = "olivettifaces.mat"
OLIVETTI_SIZE = 64
# Written last by fetch_orl, so its presence says the folder is complete and holds 64x64 crops.
OLIVETTI_MARK = "olivetti.json"

N_PEOPLE = 40
N_IMAGES = 400
# The mean Haar box over the ORL photos where the cascade finds a face (92x112 pixels);
# photos it misses get this crop, so every ORL face is framed about the same way.
ORL_BOX = FaceBox(x=7.0, y=23.0, w=77.0, h=77.0)
# Every ORL face fills the frame, so a Haar box under 0.8 of ORL_BOX's width is a part of a
# face (a few photos with glasses or a tilted head give 55-61 px boxes); those are not looked for.
ORL_MIN_FACE = 62


def orl_candidates() -> list[Path]:
    """Where the ORL folder is looked for: ``FACEKIT_ORL`` alone when it is set (the user
    named their copy); else, in order, the project's ``../shared/data/orl_faces`` (only in a
    source checkout), ``<cache>/data/orl_faces`` and ``<cache>/data/olivetti_faces`` (where
    ``facekit data fetch orl`` writes)."""
    env = os.environ.get("FACEKIT_ORL")
    if env:
        return [Path(env).expanduser()]
    shared = shared_orl()
    return [*([shared] if shared else []), cache_dir() / "data" / "orl_faces", fetched_dir()]


def shared_orl() -> Path | None:
    """``../shared/data/orl_faces`` beside a source checkout (the project's own machines);
    None when facekit is installed from a wheel."""
    repo = Path(__file__).resolve().parents[2]
    return repo.parent / "shared" / "data" / "orl_faces" if (repo / "pyproject.toml").is_file() else None


def fetched_dir() -> Path:
    """Where :func:`fetch_orl` writes by default: ``<cache>/data/olivetti_faces``."""
    return cache_dir() / "data" / "olivetti_faces"


def orl_dir() -> Path:
    """The first ORL folder that exists (see :func:`orl_candidates`), else FileNotFoundError."""
    places = orl_candidates()
    for p in places:
        if p.is_dir():
            return p
    raise FileNotFoundError(
        "ORL faces not found; looked in: " + ", ".join(str(p) for p in places)
        + f". Run `{FETCH_COMMAND}`, or put the folders s1..s40 (AT&T 'orl_faces') in one of them, "
        "or set FACEKIT_ORL."
    )


def orl_or_skip(what: str) -> Path | None:
    """The ORL folder, or None after printing one line: that ``what`` is skipped and which
    command enables it. For notebook sections that are optional on a machine without ORL."""
    try:
        return orl_dir()
    except FileNotFoundError:
        print(f"ORL faces not found: skipping {what}. Run `{FETCH_COMMAND}` (or set FACEKIT_ORL) to include it.")
        return None


def orl_source(root: Path) -> str:
    """What ``root`` holds, in words, for notebook output and reports."""
    if (root / OLIVETTI_MARK).is_file():
        return f"ORL faces, scikit-learn's 64x64 Olivetti crops ({root})"
    return f"ORL faces ({root})"


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
    :data:`ORL_BOX` crop (the whole frame for the fetched 64x64 crops), marked
    ``status == "fallback"`` in the report (count detections with
    ``sum(r.status == "ok" for r in report)``). A damaged file stays in the report without a row.
    """
    root = orl_dir()
    files, person = orl_files(root)
    if (root / OLIVETTI_MARK).is_file():  # already 64x64 face crops: the whole frame is the face
        fallback: str | FaceBox = "center"
        min_face = round(ORL_MIN_FACE / ORL_BOX.w * OLIVETTI_SIZE)
    else:
        fallback, min_face = ORL_BOX, ORL_MIN_FACE
    images, report = align_faces(files, size, detect=detect, fallback=fallback, detector=detector, min_face=min_face)
    # a damaged file has no row (its record says why); the others keep their person id
    ids = [pid for pid, r in zip(person, report, strict=True) if r.row is not None]
    return images, torch.tensor(ids, dtype=torch.long), report


def fetch_orl(dest: str | Path | None = None, source: str | None = None, overwrite: bool = False) -> Path:
    """Download the ORL photos (scikit-learn's Olivetti copy) and write them as ``s1..s40/N.pgm``.

    dest: default ``<cache>/data/olivetti_faces``, where :func:`orl_dir` looks.
    source: the ``olivettifaces.mat`` URL (default :data:`OLIVETTI_URL`), a ``file://`` URL or a
        path (offline mirrors, tests); whatever it is, its sha256 must be :data:`OLIVETTI_SHA256`.
    overwrite: download and write again even when a complete copy is there.

    An interrupted download resumes; the photos are written only from a verified file, and the
    folder counts as complete once :data:`OLIVETTI_MARK` is written, last.
    """
    folder = Path(dest).expanduser() if dest is not None else fetched_dir()
    mark = folder / OLIVETTI_MARK
    if mark.is_file() and not overwrite:
        return folder
    mat = folder / OLIVETTI_MAT
    if overwrite or not mat.is_file() or sha256_file(mat) != OLIVETTI_SHA256:
        download(source or OLIVETTI_URL, mat, OLIVETTI_SHA256, restart=overwrite, fix=f"run `{FETCH_COMMAND} --overwrite`")
    faces = olivetti_images(mat)
    from PIL import Image

    for i, face in enumerate(faces):
        buf = io.BytesIO()
        Image.fromarray(face).save(buf, format="PPM")  # a grey image: binary PGM
        atomic_write(folder / f"s{i // 10 + 1}" / f"{i % 10 + 1}.pgm", buf.getvalue())
    atomic_write(mark, json.dumps({"source": source or OLIVETTI_URL, "sha256": OLIVETTI_SHA256, "size": OLIVETTI_SIZE,
                                   "n_images": len(faces), "credit": "Olivetti Research Laboratory, Cambridge, UK"},
                                  indent=1))
    return folder


def olivetti_images(mat: Path) -> np.ndarray:
    """``(400, 64, 64)`` uint8 photos from ``olivettifaces.mat``, upright, in person order;
    scaled to 0..255 as scikit-learn scales them to 0..1."""
    from scipy.io import loadmat

    faces = np.asarray(loadmat(str(mat))["faces"], dtype=np.float32).T
    if faces.shape[1] != OLIVETTI_SIZE * OLIVETTI_SIZE:
        raise ValueError(f"{mat}: 'faces' holds {faces.shape[1]} pixels per photo; expected {OLIVETTI_SIZE}x{OLIVETTI_SIZE}")
    faces = (faces - faces.min()) / max(float(faces.max() - faces.min()), 1e-12)
    faces = faces.reshape(-1, OLIVETTI_SIZE, OLIVETTI_SIZE).transpose(0, 2, 1)  # MATLAB stores columns first
    return np.round(255 * faces).astype(np.uint8)
