"""The training worlds: one place that says what faces a method is shown.

A :class:`World` fixes everything that decides whether an expression can be seen at all: the
backend, the framing and size, the style mix, the pose range, how Action Units and emotions are
drawn, and the intensity from which an AU counts as present. Methods take their faces from a
world (single faces, neutral counterparts, same-person pairs, cached training pools) instead of
configuring datasets themselves, so a fix to the world reaches every method at once.

Labels follow what is visible. AU intensity in [0, 1] maps onto the FACS A-E scale
(:data:`FACS_LEVELS`); the scale is uneven, as in the FACS manual, where trace (A) and maximum (E)
are narrow bands and marked (C) and severe (D) wide ones:

====  ==============  ===============
FACS  meaning         intensity
====  ==============  ===============
A     trace           (0, 0.15)
B     slight          [0.15, 0.35)
C     marked          [0.35, 0.65)
D     severe          [0.65, 0.9)
E     maximum         [0.9, 1]
====  ==============  ===============

An AU *occurs* from level B up (:data:`OCCURRENCE_THRESHOLD`), as FACS coders score it: a trace
is not coded. Trace AUs (intensity above 0 but below the threshold) are neither positives nor
negatives: :func:`au_labels` marks them unknown, and training losses and scores skip them. The
learnability audit (``benchmarks/world_audit.py``) measures detection per level, which is how the
threshold was chosen: level A is where detection on unseen persons falls towards chance.

Emotion intensity (the scale of an EMFACS prototype) is reported in three bins,
:data:`INTENSITY_BINS` with edges :data:`INTENSITY_BIN_EDGES`; the lowest edge is the occurrence
threshold, so a prototype in the low bin shows its main AUs at level B.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from facekit.io import disk_cached, to_uint8
from facekit.synth.datasets import FaceDataset, IdentitySplit, PairDataset
from facekit.synth.params import FaceParams, sample_params
from facekit.synth.procedural import MAX_SIZE, MIN_SIZE
from facekit.synth.render import BACKENDS, FRAMINGS, render, resolve_backend
from facekit.synth.rng import hash_uniform

FACS_LEVELS = ("A", "B", "C", "D", "E")
# Lower edges of the FACS levels on the [0, 1] intensity scale (level E ends at 1).
FACS_LEVEL_EDGES = (0.0, 0.15, 0.35, 0.65, 0.9)
OCCURRENCE_THRESHOLD = FACS_LEVEL_EDGES[1]
INTENSITY_BINS = ("low", "medium", "high")
# Emotion intensity bins: low [0.15, 0.4), medium [0.4, 0.7), high [0.7, 1].
INTENSITY_BIN_EDGES = (OCCURRENCE_THRESHOLD, 0.4, 0.7, 1.0)
WORLD_BACKENDS = BACKENDS
STYLE_NAMES = ("clean", "target")

def au_labels(au: torch.Tensor, threshold: float = OCCURRENCE_THRESHOLD) -> tuple[torch.Tensor, torch.Tensor]:
    """``(occurs, known)`` for AU intensities: an AU occurs at ``threshold`` (FACS B) or above; a
    trace (above 0, below the threshold) is unknown, so it is neither a positive nor a negative."""
    occurs = au >= threshold
    return occurs, occurs | (au <= 0)


def facs_level(au: torch.Tensor) -> torch.Tensor:
    """FACS level index per intensity: -1 for absent (0), 0 (A) to 4 (E)."""
    edges = torch.tensor(FACS_LEVEL_EDGES[1:], dtype=au.dtype, device=au.device)
    level = torch.bucketize(au, edges, right=True)
    return torch.where(au > 0, level, torch.full_like(level, -1))


def intensity_bin(intensity: torch.Tensor) -> torch.Tensor:
    """Emotion intensity bin per face: 0 low, 1 medium, 2 high, -1 below the low edge (neutral)."""
    edges = torch.tensor(INTENSITY_BIN_EDGES[1:-1], dtype=intensity.dtype, device=intensity.device)
    b = torch.bucketize(intensity, edges, right=True)
    return torch.where(intensity >= INTENSITY_BIN_EDGES[0], b, torch.full_like(b, -1))


def _check_range(name: str, value: tuple[float, float]) -> None:
    if len(value) != 2 or not 0 <= value[0] <= value[1] <= 1:
        raise ValueError(f"World.{name}={value!r} is not valid; pass (low, high) with 0 <= low <= high <= 1")


@dataclasses.dataclass(frozen=True)
class World:
    """A training world. Every field is a choice a method used to make on its own.

    backend: ``"auto"`` (ICT-FaceKit when its assets are found, else procedural), ``"procedural"``
        or ``"ict"``. framing, size: as in :func:`facekit.synth.render.render`; AU and expression
        pipelines see the ``"face"`` framing.
    target_share: share of faces in the target style (the rest are clean), chosen per face.
    pose_scale: pose spread (1: yaw sd 12, pitch sd 7, roll sd 5 degrees; 0: frontal).
    au_p, au_intensity: random-AU faces show each AU independently with probability ``au_p``, at
        an intensity uniform in ``au_intensity``.
    emotion_share, emotion_intensity: share of faces showing an EMFACS prototype (uniform over the
        8 classes, neutral included) at an intensity uniform in ``emotion_intensity``.
    occurrence_threshold: the intensity from which an AU is labelled present (FACS B).
    """

    name: str
    backend: str = "auto"
    framing: str = "face"
    size: int = 64
    target_share: float = 0.0
    pose_scale: float = 1.0
    au_p: float = 0.3
    au_intensity: tuple[float, float] = (0.05, 1.0)
    emotion_share: float = 0.5
    emotion_intensity: tuple[float, float] = (INTENSITY_BIN_EDGES[0], 1.0)
    glasses_rate: float = 0.15
    n_identities: int = 2000
    world_seed: int = 0
    occurrence_threshold: float = OCCURRENCE_THRESHOLD

    def __post_init__(self) -> None:
        if self.backend not in WORLD_BACKENDS:
            raise ValueError(f"World.backend={self.backend!r} is not valid; choose one of {list(WORLD_BACKENDS)}")
        if self.framing not in FRAMINGS:
            raise ValueError(f"World.framing={self.framing!r} is not valid; choose one of {list(FRAMINGS)}")
        if not isinstance(self.size, int) or not MIN_SIZE <= self.size <= MAX_SIZE:
            raise ValueError(f"World.size={self.size!r} is not valid; pass an int from {MIN_SIZE} to {MAX_SIZE}")
        for name in ("target_share", "au_p", "emotion_share", "glasses_rate"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"World.{name}={getattr(self, name)!r} is not valid; pass a share in [0, 1]")
        _check_range("au_intensity", self.au_intensity)
        _check_range("emotion_intensity", self.emotion_intensity)
        if not 0 < self.occurrence_threshold <= 1:
            raise ValueError(f"World.occurrence_threshold={self.occurrence_threshold!r} is not valid; pass a value "
                             "in (0, 1]")
        if self.pose_scale < 0:
            raise ValueError(f"World.pose_scale={self.pose_scale!r} is not valid; pass a value >= 0")

    # -- what the world is ------------------------------------------------------------
    @property
    def identities(self) -> IdentitySplit:
        return IdentitySplit(n_identities=self.n_identities, world_seed=self.world_seed)

    @property
    def style_shares(self) -> dict[str, float]:
        return {"clean": 1.0 - self.target_share, "target": self.target_share}

    @property
    def style(self) -> str:
        """``"clean"``, ``"target"`` or ``"mixed"``."""
        return "clean" if self.target_share == 0 else "target" if self.target_share == 1 else "mixed"

    def resolved_backend(self) -> str:
        """The backend that draws (``facekit.synth.render.resolve_backend``); ``"ict"`` without
        assets raises here, with the loader's message saying how to get them."""
        if self.backend == "ict":
            from facekit.synth.assets import find_ict_dir

            find_ict_dir()
        return resolve_backend(self.backend)

    def config(self) -> dict[str, Any]:
        """The world's fields with the backend resolved: what data cards and cache keys name."""
        return {**dataclasses.asdict(self), "backend": self.resolved_backend(), "backend_requested": self.backend}

    # -- faces ------------------------------------------------------------------------
    def faces(self, n: int, split: str = "train", seed: int = 0, expressions: str = "mixed",
              with_neutral: bool = False, n_persons: int | None = None,
              propensity_strength: float = 1.5) -> WorldFaces:
        """Single faces of one split (random AUs and emotion prototypes mixed, by default;
        ``expressions="propensity"``: per-person AU base rates, ``propensity_strength`` as in
        ``FaceDataset``, at the world's AU intensities)."""
        return WorldFaces(self, n, split=split, seed=seed, expressions=expressions, with_neutral=with_neutral,
                          n_persons=n_persons, propensity_strength=propensity_strength)

    def pairs(self, n: int, split: str = "train", seed: int = 0, factor: str = "expression",
              nuisance: float = 0.3, n_persons: int | None = None) -> WorldPairs:
        """Same-person pairs where one factor changes by a known amount (see ``PairDataset``)."""
        return WorldPairs(self, n, split=split, seed=seed, factor=factor, nuisance=nuisance, n_persons=n_persons)

    def same_person_pairs(self, n: int, split: str = "test", seed: int = 0,
                          n_persons: int | None = None) -> tuple[FaceParams, FaceParams, torch.Tensor]:
        """Two photos of each of ``n`` persons for identity verification across expressions: the
        second has its own expression, pose, light and background (drawn with another seed); age,
        weight and glasses are held, as within one period of a person's life. Returns
        ``(params_a, params_b, person)``; consecutive items are different persons."""
        a_ds = self.faces(n, split=split, seed=seed, n_persons=n_persons)
        b_ds = self.faces(n, split=split, seed=seed + 7717, n_persons=n_persons)
        pa, extra = a_ds.params(range(n))
        pb, _ = b_ds.params(range(n))
        return pa, pb.replace(age=pa.age, weight=pa.weight, glasses=pa.glasses), extra["person"]

    def neutral(self, params: FaceParams) -> FaceParams:
        """The neutral counterpart: the same person, pose and light, no AU."""
        return params.replace(au=torch.zeros_like(params.au))

    def is_target(self, seed: torch.Tensor) -> torch.Tensor:
        """Which faces (by their per-face seed) are in the target style."""
        if self.target_share in (0.0, 1.0):
            return torch.full(seed.shape, self.target_share == 1.0, device=seed.device)
        return hash_uniform(seed, torch.zeros_like(seed), 81) < self.target_share

    def render(self, params: FaceParams, device: str | torch.device | None = None) -> torch.Tensor:
        """Render params in this world: its backend, framing, size, and each face's style."""
        backend = self.resolved_backend()
        if device is not None:
            params = params.to(device)
        target = self.is_target(params.seed)
        if bool(target.all()) or not bool(target.any()):
            style = "target" if bool(target.any()) else "clean"
            return render(params, self.size, style=style, backend=backend, framing=self.framing)
        out = torch.empty(len(params), 3, self.size, self.size, device=params.device)
        for style, mask in (("clean", ~target), ("target", target)):
            out[mask] = render(params[mask], self.size, style=style, backend=backend, framing=self.framing)
        return out

    def pool(self, n: int, split: str = "train", seed: int = 0, with_neutral: bool = False,
             n_persons: int | None = None, chunk: int = 256,
             log: Callable[[str], None] | None = None) -> dict[str, torch.Tensor]:
        """``n`` faces of one split rendered once and cached on disk (images as uint8, labels as
        they are): a world of tens of thousands of faces is then read, not rendered, by every run.
        The cache key holds the world, the dataset and a fingerprint of the renderer's source."""
        ds = self.faces(n, split=split, seed=seed, with_neutral=with_neutral, n_persons=n_persons)

        def make() -> dict[str, torch.Tensor]:
            parts: list[dict[str, torch.Tensor]] = []
            for start in range(0, n, chunk):
                b = ds.batch(range(start, min(n, start + chunk)))
                for key in ("image", "neutral_image"):
                    if key in b:
                        b[key] = to_uint8(b[key])
                parts.append({k: v.cpu() for k, v in b.items()})
                if log is not None:
                    log(f"rendered {min(n, start + chunk)}/{n} {self.name} {split} faces")
            return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}

        key = {"dataset": ds.config(), "renderer": renderer_fingerprint()}
        return disk_cached(f"world-{self.name}-{split}", key, make)


class _InWorld:
    """What world datasets share: base params with the world's style mix, rendering per style."""

    world: World
    seed: int
    identities: IdentitySplit
    pose_scale: float
    glasses_rate: float
    device: torch.device

    def _base(self, idx: torch.Tensor, person: torch.Tensor, au: torch.Tensor | None = None) -> FaceParams:
        kw: dict[str, Any] = {"seed": self.seed, "indices": idx, "identity": self.identities.codes(person), "au": au,
                              "pose_scale": self.pose_scale, "glasses_rate": self.glasses_rate}
        clean = sample_params(style="clean", **kw)
        if self.world.target_share == 0:
            return clean
        target = sample_params(style="target", **kw)
        mask = self.world.is_target(clean.seed)
        light = {f: torch.where(mask, getattr(target, f), getattr(clean, f))
                 for f in ("light_azimuth", "light_elevation", "light_strength")}
        return clean.replace(**light)

    def render_params(self, params: FaceParams) -> torch.Tensor:
        return self.world.render(params, self.device)


def _dataset_kwargs(world: World) -> dict[str, Any]:
    return {"identities": world.identities, "size": world.size, "backend": world.resolved_backend(),
            "framing": world.framing, "pose_scale": world.pose_scale, "glasses_rate": world.glasses_rate,
            "style": "target" if world.target_share == 1 else "clean"}


def _world_config(world: World) -> dict[str, Any]:
    return {"world": world.name, "style": world.style, "target_share": world.target_share,
            "occurrence_threshold": world.occurrence_threshold}


class WorldFaces(_InWorld, FaceDataset):
    """``FaceDataset`` drawn from a world; batches add ``au_occurs`` and ``au_known``
    (:func:`au_labels`) and ``intensity_bin`` (:func:`intensity_bin`) where emotions are shown."""

    def __init__(self, world: World, n: int, split: str = "train", seed: int = 0, expressions: str = "mixed",
                 with_neutral: bool = False, n_persons: int | None = None, propensity_strength: float = 1.5) -> None:
        self.world = world
        FaceDataset.__init__(self, n, split=split, seed=seed, expressions=expressions, with_neutral=with_neutral,
                             n_persons=n_persons, propensity_strength=propensity_strength,
                             p_active=world.au_p, au_intensity=world.au_intensity,
                             emotion_intensity=world.emotion_intensity, emotion_share=world.emotion_share,
                             **_dataset_kwargs(world))

    def batch(self, indices: Sequence[int] | torch.Tensor) -> dict[str, torch.Tensor]:
        out = FaceDataset.batch(self, indices)
        out["au_occurs"], out["au_known"] = au_labels(out["au"], self.world.occurrence_threshold)
        if "intensity" in out:
            out["intensity_bin"] = intensity_bin(out["intensity"])
        return out

    def config(self) -> dict[str, Any]:
        return {**FaceDataset.config(self), **_world_config(self.world)}


class WorldPairs(_InWorld, PairDataset):
    """``PairDataset`` drawn from a world (both photos of a pair share its style)."""

    def __init__(self, world: World, n: int, split: str = "train", seed: int = 0, factor: str = "expression",
                 nuisance: float = 0.3, n_persons: int | None = None) -> None:
        self.world = world
        PairDataset.__init__(self, n, split=split, seed=seed, factor=factor, nuisance=nuisance, n_persons=n_persons,
                             **_dataset_kwargs(world))

    def config(self) -> dict[str, Any]:
        return {**PairDataset.config(self), **_world_config(self.world)}


def renderer_fingerprint() -> str:
    """A hash of the source of everything that decides a rendered pixel (``facekit.synth`` and
    ``facekit.kernels``), so cached pools are re-rendered when the renderer changes."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in sorted([*(root / "synth").glob("*.py"), *(root / "kernels").glob("*.py")]):
        if path.name not in ("cards.py", "style_stats.py"):
            h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()[:16]


WORLDS: dict[str, World] = {
    w.name: w for w in (
        World("default"),
        World("default-target", target_share=1.0),
        World("default-mixed", target_share=0.5),
        World("procedural", backend="procedural"),
        World("procedural-target", backend="procedural", target_share=1.0),
        World("ict", backend="ict"),
        World("ict-target", backend="ict", target_share=1.0),
    )
}


def get_world(name: str, **changes: Any) -> World:
    """A registered world by name, optionally with fields changed (``get_world("ict", size=96)``)."""
    if name not in WORLDS:
        raise ValueError(f"world={name!r} is not valid; choose one of {list(WORLDS)}")
    if not changes:
        return WORLDS[name]
    fields = {f.name for f in dataclasses.fields(World)} - {"name"}
    bad = sorted(set(changes) - fields)
    if bad:
        raise TypeError(f"unknown World field(s) {bad}; valid fields are {sorted(fields)}")
    return dataclasses.replace(WORLDS[name], **changes)


def world_for(backend: str, style: str) -> World:
    """The registered world of one backend and style (``"clean"`` or ``"target"``)."""
    if style not in STYLE_NAMES:
        raise ValueError(f"style={style!r} is not valid; choose one of {list(STYLE_NAMES)}")
    if backend not in WORLD_BACKENDS:
        raise ValueError(f"backend={backend!r} is not valid; choose one of {list(WORLD_BACKENDS)}")
    name = "default" if backend == "auto" else backend
    return WORLDS[name if style == "clean" else f"{name}-target"]


__all__ = [
    "FACS_LEVELS", "FACS_LEVEL_EDGES", "INTENSITY_BINS", "INTENSITY_BIN_EDGES", "OCCURRENCE_THRESHOLD",
    "STYLE_NAMES", "WORLDS", "WORLD_BACKENDS", "World", "WorldFaces", "WorldPairs", "au_labels",
    "facs_level", "get_world", "intensity_bin", "renderer_fingerprint", "world_for",
]
