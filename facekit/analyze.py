"""The Analyzer: one public API for a user's own photos (like py-feat's ``Detector``).

It only ever *loads* trained models from the cache (``facekit.methods.<name>.load``); it never
trains or downloads. A model that is missing leaves its columns out of the table and is
named, with the notebook or ``facekit train NAME`` command that makes it, in
``Analyzer.missing()``, in ``DataFrame.attrs["missing"]`` and on stderr in ``facekit analyze``.

Where each output comes from (the models were trained on synthetic faces only, so every
number on a real photo carries the domain gap; each output says so in its caveat):

=====================  =====================================================  ==========
output                 model                                                  notebook
=====================  =====================================================  ==========
AU probabilities       FMAE-IAT detector (``fmae_iat``)                       03
expression probs       reference-contrast classifier (``gencon``)             05
identity embedding     ComFace inter head (``comface``)                       02
changes in compare()   ComFace intra head (``comface``)                       02
reference()            generative-contrastive generator (``gencon``)          05
edit()                 PluGeN4Faces flow plugin (``plugen``)                  06
=====================  =====================================================  ==========
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from facekit.config import get_profile
from facekit.methods import method_module
from facekit.real.align import FaceRecord, align_faces
from facekit.real.load import MAX_SIDE, Source

NOTEBOOKS = {
    "comface": "notebooks/02_comface.ipynb",
    "fmae_iat": "notebooks/03_mae_iat_au.ipynb",
    "gencon": "notebooks/05_reference_faces.ipynb",
    "plugen": "notebooks/06_identity_aware_editing.ipynb",
}
CHUNK = 64  # photos aligned and scored at a time, so a large folder is never all in memory
DOMAIN_GAP = "trained on synthetic faces only; on real photos treat it as indicative, not calibrated"
CAVEATS = {
    "identity_similarity": "cosine similarity of ComFace inter embeddings (1 = same direction); "
                           "no threshold is calibrated on real photos, so compare it with pairs you know",
    "expression": "change in expression intensity (0 neutral, 1 full) read by the synthetic-trained intra "
                  "regressor, without any labelled real pairs",
    "weight": "change in body-mass index read from the face; weight changes the face shape only slowly, "
              "and lighting or pose changes can look like weight",
    "age": "age difference in years read from the face; make-up, lighting and image quality shift it",
}
UNITS = {"identity_similarity": "cosine", "expression": "intensity", "weight": "BMI", "age": "years"}


class ModelMissingError(RuntimeError):
    """A model the call needs is not in the cache; the message says how to make it."""


def _hint(method: str, profile: str, seed: int) -> str:
    nb = NOTEBOOKS.get(method)
    where = f"run {nb} at profile {profile!r}, or " if nb else ""
    return f"{where}`facekit train {method} --profile {profile} --seed {seed}`"


def _files(folder: Path) -> list[Path]:
    """Every file under ``folder`` except hidden ones: a user asking about a folder gets a row for
    each file in it, a README included (as ``not_image``), so nothing is skipped unseen."""
    return sorted(p for p in folder.rglob("*") if p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def _expand(sources: Source | Sequence[Source]) -> list[Source]:
    """Folders to their files (an empty or missing folder stays, so it gets its row)."""
    items = [sources] if isinstance(sources, str | Path | np.ndarray | torch.Tensor) or not isinstance(
        sources, Sequence) else list(sources)
    out: list[Source] = []
    for item in items:
        if isinstance(item, str | Path) and Path(item).is_dir() and _files(Path(item)):
            out.extend(_files(Path(item)))
        elif isinstance(item, np.ndarray | torch.Tensor) and item.ndim == 4:
            out.extend(list(item))
        else:
            out.append(item)
    return out


class Analyzer:
    """Faces in, a table out: ``Analyzer().analyze("photos/")``.

    ``profile`` and ``seed`` pick the cached models (default: ``$FACEKIT_PROFILE`` or cpu, seed 0).
    ``size`` is the crop the faces are aligned to (models resize it to their own input).
    ``detector`` is ``"haar"`` (OpenCV, always there) or ``"dlib"`` (the ``real`` extra);
    ``fallback="center"`` crops the middle of photos without a detected face (for photos that are
    already face crops) instead of leaving them out. ``models`` replaces cached models by name
    (``{"comface": model}``), for models you trained yourself.
    """

    def __init__(self, profile: str | None = None, seed: int = 0, *, size: int = 64, detector: str = "auto",
                 fallback: str | None = None, device: str | torch.device | None = None,
                 models: Mapping[str, Any] | None = None) -> None:
        self.profile = get_profile(profile)
        self.seed = seed
        self.size, self.detector, self.fallback, self.device = size, detector, fallback, device
        self._models: dict[str, Any] = dict(models or {})
        self._missing: dict[str, str] = {}

    # ------------------------------------------------------------------ models

    def model(self, method: str) -> Any:
        """The cached model of ``method``, loaded once; :class:`ModelMissingError` says how to make it."""
        if method in self._models:
            return self._models[method]
        if method not in self._missing:
            try:
                self._models[method] = method_module(method).load(self.profile, self.seed, device=self.device)
                return self._models[method]
            except (FileNotFoundError, ValueError) as err:
                self._missing[method] = (f"no {method} model for profile {self.profile!r}, seed {self.seed} ({err}); "
                                         f"make it with: {_hint(method, self.profile, self.seed)}")
        raise ModelMissingError(self._missing[method])

    def _optional(self, method: str) -> Any | None:
        try:
            return self.model(method)
        except ModelMissingError:
            return None

    def missing(self) -> dict[str, str]:
        """The models tried and not found, each with the command that makes it."""
        return dict(self._missing)

    def status(self) -> pd.DataFrame:
        """One row per model the Analyzer can use: available or not, and how to make it."""
        rows = []
        for method in NOTEBOOKS:
            ok = self._optional(method) is not None
            rows.append({"model": method, "available": ok, "note": "" if ok else self._missing[method]})
        return pd.DataFrame(rows).set_index("model")

    # ------------------------------------------------------------------ faces

    def _align(self, items: Sequence[Source], first: int = 0) -> tuple[torch.Tensor, list[FaceRecord]]:
        crops, records = align_faces(list(items), self.size, fallback=self.fallback, detector=self.detector,
                                     max_side=MAX_SIDE)
        k = 0
        for item, rec in zip(items, records, strict=True):  # arrays are named by their place in the whole batch
            if not isinstance(item, str | Path):
                rec.source = f"array[{first + k}]"
            k += not isinstance(item, str | Path)
        return crops, records

    def _batches(self, sources: Source | Sequence[Source]) -> Iterator[tuple[torch.Tensor, list[FaceRecord]]]:
        items = _expand(sources)
        n_arrays = 0
        for start in range(0, len(items), CHUNK):
            chunk = items[start:start + CHUNK]
            yield self._align(chunk, n_arrays)
            n_arrays += sum(not isinstance(i, str | Path) for i in chunk)

    def face(self, image: Source, *, what: str, allow_fallback: bool = False) -> torch.Tensor:
        """One aligned face ``1 x 3 x size x size``; no face is an error naming the source, or with
        ``allow_fallback`` a warning and the central square of the photo."""
        if isinstance(image, torch.Tensor | np.ndarray) and image.ndim == 4:
            if image.shape[0] != 1:
                raise ValueError(f"{what} takes one image; got a batch of {image.shape[0]}")
            image = image[0]
        crops, recs = self._align([image])
        rec = recs[0]
        if rec.row is not None:
            return crops[rec.row:rec.row + 1]
        if rec.status == "no_face" and allow_fallback:
            warnings.warn(f"{what}: {rec.source}: {rec.reason}; using the central square of the photo, "
                          "so the result may not show a face", stacklevel=3)
            crops, recs = align_faces([image], self.size, detect=False, fallback="center")
            return crops
        raise ValueError(f"{what}: {rec.source} was not used ({rec.status}): {rec.reason}")

    # ------------------------------------------------------------------ the four calls

    def analyze(self, images: Source | Sequence[Source]) -> pd.DataFrame:
        """One row per input face: ``source``, ``status``, ``reason``, the face box, AU probabilities
        (``AU1`` ...), expression probabilities (``p_neutral`` ...) and ``expression``, and
        ``identity_embedding``. Inputs that gave no face keep their row, with status and reason."""
        au, expr, idm = self._optional("fmae_iat"), self._optional("gencon"), self._optional("comface")
        rows: list[dict[str, Any]] = []
        for crops, records in self._batches(images):
            scores: dict[str, np.ndarray] = {}
            if len(crops):
                if au is not None:
                    scores.update(zip(au.aus, np.asarray(au.predict_proba(crops)).T, strict=True))
                if expr is not None:
                    probs = np.asarray(expr.predict_proba(crops))
                    scores.update({f"p_{c}": probs[:, j] for j, c in enumerate(expr.classes)})
                    scores["expression"] = np.asarray(expr.classes, dtype=object)[probs.argmax(1)]
                if idm is not None:
                    emb = idm.embed(crops)["inter"].numpy()
                    scores["identity_embedding"] = np.array(list(emb), dtype=object)
            for rec in records:
                reason = f"{rec.reason} [image: {rec.loaded}]" if rec.loaded else rec.reason
                row: dict[str, Any] = {"source": rec.source, "status": rec.status, "reason": reason,
                                       "crop": rec.crop}
                b = rec.box
                row.update(box_x=b.x if b else math.nan, box_y=b.y if b else math.nan,
                           box_w=b.w if b else math.nan, box_h=b.h if b else math.nan, roll=rec.roll)
                if rec.row is not None:
                    row.update({k: v[rec.row] for k, v in scores.items()})
                rows.append(row)
        df = pd.DataFrame(rows)
        df.attrs["missing"] = self.missing()
        df.attrs["profile"], df.attrs["seed"] = self.profile, self.seed
        df.attrs["caveat"] = DOMAIN_GAP
        return df

    def compare(self, a: Source, b: Source) -> pd.DataFrame:
        """Two photos of (probably) one person: the identity similarity and the estimated changes
        from ``a`` to ``b`` (expression, weight, age), one row each with its unit and caveat."""
        model = self.model("comface")
        fa, fb = self.face(a, what="compare(a)"), self.face(b, what="compare(b)")
        rows = [{"quantity": "identity_similarity", "value": float(model.similarity(fa, fb)[0])}]
        for task in model.tasks:
            rows.append({"quantity": f"{task}_change", "value": float(model.predict_change(fa, fb, task)[0])})
        df = pd.DataFrame(rows)
        keys = [q.removesuffix("_change") for q in df["quantity"]]
        df["unit"] = [UNITS.get(k, "") for k in keys]
        df["caveat"] = [CAVEATS.get(k, DOMAIN_GAP) for k in keys]
        df.attrs["caveat"] = DOMAIN_GAP
        return df.set_index("quantity")

    def reference(self, image: Source) -> torch.Tensor:
        """The generated neutral face of the person in ``image`` (``3 x S x S`` in [0, 1]). A photo
        with no detected face still gets one, from its central square, with a warning."""
        model = self.model("gencon")
        return model.reference(self.face(image, what="reference", allow_fallback=True))[0]

    def edit(self, image: Source, *, method: str = "plugen4faces", optimise_steps: int = 50,
             **levels: float) -> torch.Tensor:
        """The identity-aware edit of the face in ``image`` (``3 x S x S``): each named attribute is
        set to a level in [0, 1] of its trained range, e.g. ``edit(img, smile=0.9)`` for a broad
        smile (levels outside are clipped with a warning). A real photo is embedded by the encoder
        plus ``optimise_steps`` of latent optimisation, as e4e + optimisation does. Unknown
        attributes and photos without a face are errors, not guesses."""
        model = self.model("plugen")
        unknown = sorted(set(levels) - set(model.attributes))
        if unknown:
            raise ValueError(f"cannot edit {unknown}: the plugin was trained on {list(model.attributes)}")
        face = self.face(image, what="edit")
        return model.edit(face, method=method, optimise_steps=optimise_steps, **levels)[0]


def _cell(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return " ".join(f"{x:.6g}" for x in v)
    return v


def write_table(df: pd.DataFrame, out: str | Path, *, overwrite: bool = False) -> Path:
    """Write an analysis table as ``.csv`` or ``.parquet``, atomically; an existing file needs
    ``overwrite``. In CSV the identity embedding is one space-separated cell."""
    from facekit.io import atomic_write

    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ValueError(f"--out {str(out)!r} has suffix {suffix!r}; valid: .csv or .parquet")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it (nothing was written)")
    if suffix == ".csv":
        flat = df.copy()
        if "identity_embedding" in flat:
            flat["identity_embedding"] = flat["identity_embedding"].map(_cell)
        atomic_write(out, flat.to_csv(index=False))
    else:
        try:
            import pyarrow  # noqa: F401
        except ImportError as err:
            raise ValueError("--out .parquet needs pyarrow (pip install pyarrow); or write .csv") from err
        table = df.copy()
        if "identity_embedding" in table:
            table["identity_embedding"] = table["identity_embedding"].map(
                lambda v: [float(x) for x in v] if isinstance(v, np.ndarray) else None)
        atomic_write(out, lambda f: table.to_parquet(f, index=False))
    return out


def print_missing(df: pd.DataFrame) -> None:
    for method, why in df.attrs.get("missing", {}).items():
        print(f"note: {method} columns left out: {why}", file=sys.stderr)


__all__ = ["Analyzer", "ModelMissingError", "write_table"]
