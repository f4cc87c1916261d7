"""The real photos the target style is calibrated against, aligned like the renders.

Four sets, when present: ORL (grey, 92x112, 40 persons), the Taiwanese expression database
(colour, 256x256; only performers 1-15, the half kept for design choices, see the project's
DESIGN.md), and scikit-image's ``astronaut`` (one colour portrait) and ``lfw_subset`` (its 100
faces, grey, already cropped tight to 25x25, so it sits at the blurry end of sharpness). Each
photo is detected and cut to the 64 px head framing by :func:`facekit.real.align_faces`.
Nothing here is trained on; it only sets the range the target style may span.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import torch

from facekit.real.align import align_faces
from facekit.real.orl import ORL_BOX, orl_candidates, orl_files

TAIWANESE_DESIGN_PERFORMERS = range(1, 16)


def taiwanese_dir() -> Path | None:
    """``FACEKIT_TAIWANESE``, else the project's ``../shared/data/taiwanese`` beside a source
    checkout, if either holds the database."""
    places = [Path(os.environ["FACEKIT_TAIWANESE"]).expanduser()] if os.environ.get("FACEKIT_TAIWANESE") else []
    places.append(Path(__file__).resolve().parents[2].parent / "shared" / "data" / "taiwanese")
    return next((p for p in places if (p / "labels.csv").is_file()), None)


def calibration_photos(size: int = 64, per_set: int = 120, seed: int = 0,
                       taiwanese: bool = True) -> tuple[dict[str, torch.Tensor], list[str]]:
    """``({set name: N x 3 x size x size aligned crops}, notes)``: up to ``per_set`` photos of each
    set that is present (a seeded random sample), and a note per set left out or cut.
    ``taiwanese=False`` leaves that database out, for outputs that are committed or shared: its
    terms forbid publishing anything derived from it."""
    rng = np.random.default_rng(seed)
    sets: dict[str, torch.Tensor] = {}
    notes: list[str] = []

    def sample(items: list) -> list:
        if len(items) <= per_set:
            return items
        return [items[i] for i in sorted(rng.choice(len(items), per_set, replace=False))]

    if any((p / "s1").is_dir() for p in orl_candidates()):
        files, _ = orl_files(next(p for p in orl_candidates() if (p / "s1").is_dir()))
        sets["orl (grey)"], _ = align_faces(sample(files), size, fallback=ORL_BOX, min_face=62)
    else:
        notes.append("ORL not found (set FACEKIT_ORL or run `facekit data fetch orl`); left out")
    tw = taiwanese_dir() if taiwanese else None
    if not taiwanese:
        notes.append("Taiwanese expression database left out on purpose (taiwanese=False)")
    elif tw is not None:
        with open(tw / "labels.csv", newline="") as fh:
            rows = [r["file"] for r in csv.DictReader(fh) if int(r["performer"]) in TAIWANESE_DESIGN_PERFORMERS]
        files = [tw / "faces_256x256" / f for f in sample(rows) if (tw / "faces_256x256" / f).is_file()]
        images, report = align_faces(files, size)
        sets["taiwanese (colour)"] = images
        missed = sum(r.row is None for r in report)
        if missed:
            notes.append(f"taiwanese: {missed} of {len(files)} photos without a detected face left out")
    if taiwanese and tw is None:
        notes.append("Taiwanese expression database not found (set FACEKIT_TAIWANESE); left out")
    from skimage import data

    lfw = data.lfw_subset()[:100]  # the first 100 of its 200 images are faces
    lfw_t = torch.from_numpy(np.ascontiguousarray(lfw)).float()[:, None].expand(-1, 3, -1, -1)
    sets["lfw_subset (grey, 25 px)"] = torch.nn.functional.interpolate(lfw_t, size=(size, size), mode="bilinear",
                                                                       align_corners=False).clamp(0, 1)
    astro, report = align_faces([data.astronaut()], size)
    if len(astro):
        sets["astronaut"] = astro
    else:
        notes.append(f"astronaut: {report[0].reason}")
    return sets, notes
