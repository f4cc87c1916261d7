"""The Analyzer: one public API for a user's own photos (like py-feat's ``Detector``).

It only ever *loads* trained models from the cache (``facekit.methods.<name>.load``); it never
trains or downloads. The table always has the same columns: a model that is missing (or
``damaged``: its cached file cannot be read) leaves its columns present and empty, and is named,
with the command that makes it, in ``Analyzer.missing()``, ``DataFrame.attrs["missing"]``, the
``models`` note written beside the table (:func:`write_table`) and on stderr in ``facekit analyze``.

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

import json
import math
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from facekit.config import cache_dir, get_device, get_profile
from facekit.methods import METHODS, method_module
from facekit.methods.base import CAPABILITIES
from facekit.real.align import FaceRecord, align_faces
from facekit.real.load import MAX_SIDE, Source, check_path, expands, walk
from facekit.synth.params import EMOTIONS
from facekit.train import DamagedModelError

# The Analyzer's named model slots (as py-feat's Detector has), their default methods, and the
# capability (facekit.methods.base) a model in the slot must have.
SLOTS = {"au_model": "fmae_iat", "expression_model": "gencon", "identity_model": "comface",
         "change_model": "comface", "reference_model": "gencon", "editor": "plugen"}
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
BASE_COLUMNS = ("source", "status", "reason", "crop", "box_x", "box_y", "box_w", "box_h", "roll")
UNITS = {"identity_similarity": "cosine", "expression": "intensity", "weight": "BMI", "age": "years"}


class ModelMissingError(RuntimeError):
    """A model the call needs is not in the cache; the message says how to make it."""


def _hint(method: str, profile: str, seed: int) -> str:
    nb = getattr(method_module(method), "NOTEBOOK", None)
    where = f"run {nb} at profile {profile!r}, or " if nb else ""
    return f"{where}`facekit train {method} --profile {profile} --seed {seed}`"


def _files(folder: Path) -> list[Path]:
    """Every entry under ``folder`` except hidden ones: a user asking about a folder gets a row for
    each, a README (``not_image``), a broken link or a folder it cannot enter included, so nothing
    is skipped unseen."""
    return walk(folder)


def _expand(sources: Source | Sequence[Source]) -> list[Source]:
    """Folders to their files (an empty or missing folder stays, so it gets its row)."""
    items = [sources] if isinstance(sources, str | Path | np.ndarray | torch.Tensor) or not isinstance(
        sources, Sequence) else list(sources)
    out: list[Source] = []
    for item in items:
        if isinstance(item, str | Path):
            check_path(item)
        if isinstance(item, str | Path) and expands(item) and _files(Path(item)):
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
    ``detector`` is ``"auto"`` (dlib HOG, then contrast-equalised HOG, then dlib's CNN, with 68
    landmarks that align the face to the renderer's eye and mouth positions), ``"haar"`` (OpenCV)
    or ``"dlib"`` (HOG only);
    ``fallback="center"`` crops the middle of photos without a detected face (for photos that are
    already face crops) instead of leaving them out. ``models`` replaces cached models by name
    (``{"comface": model}``), for models you trained yourself.

    The named slots (``au_model``, ``expression_model``, ``identity_model``, ``change_model``,
    ``reference_model``, ``editor``) say which model does what: a method name (its cached
    model), a model object, or ``None`` to leave the slot empty. A model must have the slot's
    capability (:mod:`facekit.methods.base`), e.g. ``Analyzer(au_model=my_detector)``.
    """

    def __init__(self, profile: str | None = None, seed: int = 0, *, size: int = 64, detector: str = "auto",
                 fallback: str | None = None, device: str | torch.device | None = None,
                 models: Mapping[str, Any] | None = None, au_model: Any = SLOTS["au_model"],
                 expression_model: Any = SLOTS["expression_model"], identity_model: Any = SLOTS["identity_model"],
                 change_model: Any = SLOTS["change_model"], reference_model: Any = SLOTS["reference_model"],
                 editor: Any = SLOTS["editor"]) -> None:
        self.profile = get_profile(profile)
        cache_dir(), get_device(device)  # a bad FACEKIT_CACHE or FACEKIT_DEVICE is one error now, not a "missing" model
        self.seed = seed
        self.size, self.detector, self.fallback, self.device = size, detector, fallback, device
        self._models: dict[str, Any] = dict(models or {})
        self._given = set(self._models)
        self._missing: dict[str, str] = {}
        self._damaged: set[str] = set()
        self.slots: dict[str, Any] = {"au_model": au_model, "expression_model": expression_model,
                                      "identity_model": identity_model, "change_model": change_model,
                                      "reference_model": reference_model, "editor": editor}
        for slot, value in self.slots.items():
            if isinstance(value, str):
                method_module(value)  # an unknown method name is an error now, not at the first photo
            elif value is not None:
                self._check(slot, value)

    # ------------------------------------------------------------------ models

    def model(self, method: str) -> Any:
        """The cached model of ``method``, loaded once; :class:`ModelMissingError` says how to make it."""
        if method in self._models:
            return self._models[method]
        if method not in self._missing:
            try:
                self._models[method] = method_module(method).load(self.profile, self.seed, device=self.device)
                return self._models[method]
            except DamagedModelError as err:
                self._damaged.add(method)
                self._missing[method] = (f"damaged: {err}; delete it and retrain: rm -r '{err.path}' && "
                                         f"{_hint(method, self.profile, self.seed).strip('`')}")
            except (FileNotFoundError, ValueError) as err:
                self._missing[method] = (f"no {method} model for profile {self.profile!r}, seed {self.seed} ({err}); "
                                         f"make it with: {_hint(method, self.profile, self.seed)}")
        raise ModelMissingError(self._missing[method])

    def _optional(self, method: str) -> Any | None:
        try:
            return self.model(method)
        except ModelMissingError:
            return None

    @staticmethod
    def _check(slot: str, model: Any) -> Any:
        need = CAPABILITIES[slot]
        if not isinstance(model, need):
            raise TypeError(f"{slot}={type(model).__name__} does not have the {need.__name__} capability; pass a "
                            f"model with {need.__doc__.split(':')[0].strip()} (see facekit.methods.base.{need.__name__})"
                            ", a method name, or None")
        return model

    def slot(self, slot: str, *, required: bool = False) -> Any | None:
        """The model in a named slot (loaded once), checked against its capability; ``None`` when
        the slot is empty or its model is not cached, or :class:`ModelMissingError` when ``required``."""
        value = self.slots[slot]
        if value is None and required:
            raise ModelMissingError(f"the {slot} slot is empty; pass {slot}=<method name or model>")
        if isinstance(value, str):
            value = self.model(value) if required else self._optional(value)
        return None if value is None else self._check(slot, value)

    def missing(self) -> dict[str, str]:
        """The models tried and not usable (missing, or damaged: the note starts ``damaged:`` and
        names the file), each with the command that makes it."""
        return dict(self._missing)

    def state(self, method: str) -> str:
        """``loaded`` (from the cache), ``given`` (passed in ``models``), ``missing`` or ``damaged``."""
        if method in self._given:
            return "given"
        if self._optional(method) is not None:
            return "loaded"
        return "damaged" if method in self._damaged else "missing"

    def status(self) -> pd.DataFrame:
        """One row per model the Analyzer can use: available or not (``state`` says missing or
        damaged), and how to make it."""
        rows = []
        for method in self._slot_methods():
            state = self.state(method)
            ok = state in ("loaded", "given")
            rows.append({"model": method, "available": ok, "state": state, "note": "" if ok else self._missing[method]})
        return pd.DataFrame(rows).set_index("model")

    def _slot_methods(self, slots: Sequence[str] = tuple(SLOTS)) -> list[str]:
        """The methods named in ``slots``, once each, in the package order."""
        named = {self.slots[s] for s in slots if isinstance(self.slots[s], str)}
        return [m for m in METHODS if m in named]

    def models_note(self) -> dict[str, dict[str, Any]]:
        """Which model made each group of the table's columns: state, profile and seed, or why it is
        absent; written beside every table so a reader knows which columns are empty on purpose."""
        note = {}
        for method in self._slot_methods(("au_model", "expression_model", "identity_model")):
            state = self.state(method)
            entry: dict[str, Any] = {"state": state, "profile": self.profile, "seed": self.seed}
            if state == "given":
                entry.update(profile=None, seed=None, note="passed in by the caller")
            elif state in ("missing", "damaged"):
                entry["note"] = self._missing[method]
            note[method] = entry
        return note

    def columns(self) -> list[str]:
        """The table's columns, the same whichever models are cached (AU names and expression
        classes come from the model when it is there, else from the profile's configuration)."""
        au, expr = self.slot("au_model"), self.slot("expression_model")
        aus = list(au.aus) if au is not None else list(method_module(SLOTS["au_model"]).profile_config(
            self.profile, self.seed).data.aus)
        classes = list(expr.classes) if expr is not None else list(EMOTIONS)
        return [*BASE_COLUMNS, *aus, *(f"p_{c}" for c in classes), "expression", "identity_embedding"]

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
        au, expr, idm = self.slot("au_model"), self.slot("expression_model"), self.slot("identity_model")
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
        df = pd.DataFrame(rows).reindex(columns=self.columns())
        df.attrs["missing"] = self.missing()
        df.attrs["models"] = self.models_note()
        df.attrs["profile"], df.attrs["seed"] = self.profile, self.seed
        df.attrs["caveat"] = DOMAIN_GAP
        return df

    def compare(self, a: Source, b: Source) -> pd.DataFrame:
        """Two photos of (probably) one person: the identity similarity and the estimated changes
        from ``a`` to ``b`` (expression, weight, age), one row each with its unit and caveat."""
        model, ident = self.slot("change_model", required=True), self.slot("identity_model", required=True)
        fa, fb = same_colour_space(self.face(a, what="compare(a)"), self.face(b, what="compare(b)"))
        rows = [{"quantity": "identity_similarity", "value": float(ident.similarity(fa, fb)[0])}]
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
        model = self.slot("reference_model", required=True)
        return model.reference(self.face(image, what="reference", allow_fallback=True))[0]

    def edit(self, image: Source, *, method: str = "plugen4faces", optimise_steps: int = 50,
             **levels: float) -> torch.Tensor:
        """The identity-aware edit of the face in ``image`` (``3 x S x S``): each named attribute is
        set to a level in [0, 1] of its trained range, e.g. ``edit(img, smile=0.9)`` for a broad
        smile (levels outside are clipped with a warning). A real photo is embedded by the encoder
        plus ``optimise_steps`` of latent optimisation, as e4e + optimisation does. Unknown
        attributes and photos without a face are errors, not guesses."""
        model = self.slot("editor", required=True)
        unknown = sorted(set(levels) - set(model.attributes))
        if unknown:
            raise ValueError(f"cannot edit {unknown}: the plugin was trained on {list(model.attributes)}")
        face = self.face(image, what="edit")
        return model.edit(face, method=method, optimise_steps=optimise_steps, framing="head", **levels)[0]


def _is_grey(x: torch.Tensor) -> bool:
    return bool((x.amax(dim=1) - x.amin(dim=1)).abs().max() <= 1.5 / 255)


def same_colour_space(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both faces in grey when either is grey (its three channels equal), else as they are.

    ComFace was trained on colour faces only, so colour itself moves its intra embedding: a photo
    against its own grey copy read as a 3.4-year age change. Comparing like with like removes
    that; the luma weights (ITU-R BT.601) are the ones a grey conversion uses.
    """
    if _is_grey(a) == _is_grey(b):
        return a, b
    w = torch.tensor([0.299, 0.587, 0.114], dtype=a.dtype).view(1, 3, 1, 1)

    def grey(x: torch.Tensor) -> torch.Tensor:
        return (x * w.to(x.device, x.dtype)).sum(1, keepdim=True).expand_as(x).contiguous()

    return grey(a), grey(b)


def _cell(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return " ".join(f"{x:.6g}" for x in v)
    return v


TABLE_MODE = 0o600  # the table holds identity embeddings (biometric data): owner-only by default


def write_table(df: pd.DataFrame, out: str | Path, *, overwrite: bool = False) -> Path:
    """Write an analysis table as ``.csv`` or ``.parquet``, atomically; an existing file needs
    ``overwrite``, and one that appears while we work (another run) is never clobbered: the error
    names the temp file beside it that holds these results. A new table is created ``0600``
    (identity embeddings are biometric data); a replaced one keeps its mode. The ``models`` note
    (``df.attrs["models"]``) goes to ``<out>.models.json`` beside a CSV, into a parquet file's
    metadata (key ``facekit.models``). In CSV the identity embedding is one space-separated cell."""
    from facekit.io import atomic_write

    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ValueError(f"--out {str(out)!r} has suffix {suffix!r}; valid: .csv or .parquet")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it (nothing was written)")
    note = json.dumps({"models": df.attrs.get("models", {}), "caveat": df.attrs.get("caveat", DOMAIN_GAP)},
                      indent=2, sort_keys=True)
    if suffix == ".csv":
        flat = df.copy()
        if "identity_embedding" in flat:
            flat["identity_embedding"] = flat["identity_embedding"].map(_cell)
        atomic_write(out, flat.to_csv(index=False), mode=TABLE_MODE, replace=overwrite)
        atomic_write(models_note_path(out), note + "\n")
    else:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError as err:
            raise ValueError("--out .parquet needs pyarrow (pip install pyarrow); or write .csv") from err
        table = df.copy()
        table.attrs = {}
        if "identity_embedding" in table:
            table["identity_embedding"] = table["identity_embedding"].map(
                lambda v: [float(x) for x in v] if isinstance(v, np.ndarray) else None)
        arrow = pa.Table.from_pandas(table, preserve_index=False)
        arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), b"facekit.models": note.encode()})
        atomic_write(out, lambda f: pq.write_table(arrow, f), mode=TABLE_MODE, replace=overwrite)
    return out


def models_note_path(out: str | Path) -> Path:
    """Where the ``models`` note of a CSV table goes: ``<out>.models.json``."""
    out = Path(out)
    return out.with_name(out.name + ".models.json")


def print_missing(df: pd.DataFrame) -> None:
    for method, why in df.attrs.get("missing", {}).items():
        print(f"note: {method} columns left empty: {why}", file=sys.stderr)


__all__ = ["Analyzer", "ModelMissingError", "write_table"]
