"""On-the-fly datasets of synthetic faces with exact labels.

Item i of every dataset is a pure function of (dataset seed, i): it is the same image
every time, in any batch and on any device. Images are rendered when asked for, so a
"dataset" of a million faces costs nothing until it is read. ``batch(indices)`` renders many
items at once (fast); ``__getitem__`` serves one item for ``torch.utils.data`` users.

Identities are split once, by ``IdentitySplit``, into disjoint train / val / test persons;
every dataset draws only from its split, so a reported number is on persons never seen.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from facekit.config import get_device
from facekit.synth.params import (
    EMOTIONS,
    N_AUS,
    RANGES,
    FaceParams,
    au_propensity,
    emotion_matrix,
    identity_codes,
    sample_aus,
    sample_params,
)
from facekit.synth.procedural import MAX_SIZE, MIN_SIZE
from facekit.synth.render import BACKENDS, check_framing, render
from facekit.synth.rng import hash_normal, hash_uniform
from facekit.synth.style import get_style

SPLITS = ("train", "val", "test")
EXPRESSION_MODES = ("random", "emotion", "mixed", "propensity", "neutral")
FACTORS = ("expression", "weight", "age")
# Ranges the pair and sequence datasets draw a changing factor from.
FACTOR_RANGES = {"expression": (0.0, 1.0), "weight": (17.0, 36.0), "age": (18.0, 80.0)}
FACTOR_UNITS = {"expression": "emotion intensity (0-1)", "weight": "BMI", "age": "years"}


@dataclasses.dataclass(frozen=True)
class IdentitySplit:
    """A world of ``n_identities`` persons split into disjoint train / val / test sets."""

    n_identities: int = 2000
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    world_seed: int = 0

    def __post_init__(self) -> None:
        if self.n_identities < 3:
            raise ValueError(f"n_identities={self.n_identities} is not valid; need at least 3 (one per split)")
        if len(self.fractions) != 3 or min(self.fractions) <= 0 or abs(sum(self.fractions) - 1) > 1e-6:
            raise ValueError(f"fractions={self.fractions} is not valid; pass three positive numbers summing to 1")

    def ids(self, split: str) -> torch.Tensor:
        """Person ids of one split (a fixed, seeded permutation of 0..n_identities-1)."""
        if split not in SPLITS:
            raise ValueError(f"split={split!r} is not valid; choose one of {list(SPLITS)}")
        order = torch.argsort(hash_uniform(self.world_seed, torch.arange(self.n_identities), 5))
        n_train = max(1, round(self.fractions[0] * self.n_identities))
        n_val = max(1, round(self.fractions[1] * self.n_identities))
        bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val), "test": (n_train + n_val, self.n_identities)}
        lo, hi = bounds[split]
        return order[lo:hi].sort().values

    def codes(self, ids: torch.Tensor) -> torch.Tensor:
        return identity_codes(ids, self.world_seed)


class _SyntheticDataset(torch.utils.data.Dataset):
    """Shared machinery: identity pool, rendering, batching and the config for data cards."""

    kind = "faces"

    def __init__(
        self,
        n: int,
        split: str = "train",
        identities: IdentitySplit | None = None,
        seed: int = 0,
        size: int = 64,
        style: str = "clean",
        backend: str = "procedural",
        pose_scale: float = 1.0,
        glasses_rate: float = 0.15,
        n_persons: int | None = None,
        device: str | torch.device | None = None,
        framing: str = "head",
    ) -> None:
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"n={n!r} is not valid; pass the number of items, an int >= 0")
        if backend not in BACKENDS:
            raise ValueError(f"backend={backend!r} is not valid; choose one of {list(BACKENDS)}")
        get_style(style)
        if not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE:
            raise ValueError(f"size={size!r} is not valid; pass an int from {MIN_SIZE} to {MAX_SIZE}")
        if pose_scale < 0:
            raise ValueError(f"pose_scale={pose_scale} is not valid; pass a value >= 0")
        self.n, self.split, self.seed, self.size = n, split, seed, size
        self.style, self.backend, self.pose_scale, self.glasses_rate = style, backend, pose_scale, glasses_rate
        self.framing = check_framing(framing)
        self.identities = identities or IdentitySplit()
        pool = self.identities.ids(split)
        if n_persons is not None:
            if not 1 <= n_persons <= len(pool):
                raise ValueError(f"n_persons={n_persons} is not valid for split {split!r}; it has {len(pool)} persons")
            pool = pool[:n_persons]
        self.persons = pool
        self.device = get_device(device)

    def __len__(self) -> int:
        return self.n

    def _check(self, indices: Sequence[int] | torch.Tensor) -> torch.Tensor:
        idx = torch.as_tensor(indices, dtype=torch.int64).reshape(-1)
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self.n):
            bad = int(idx.min()) if int(idx.min()) < 0 else int(idx.max())
            raise IndexError(f"index {bad} out of range for a dataset of {self.n} items")
        return idx

    def person_of(self, idx: torch.Tensor) -> torch.Tensor:
        """Round-robin over the split's persons, so each gets the same number of items."""
        return self.persons[idx % len(self.persons)]

    def _base(self, idx: torch.Tensor, person: torch.Tensor, au: torch.Tensor | None = None) -> FaceParams:
        return sample_params(seed=self.seed, indices=idx, identity=self.identities.codes(person), au=au,
                             style=self.style, pose_scale=self.pose_scale, glasses_rate=self.glasses_rate)

    def render_params(self, params: FaceParams) -> torch.Tensor:
        """Render params with this dataset's size, style, backend, framing and device."""
        return render(params.to(self.device), self.size, style=self.style, backend=self.backend, framing=self.framing)

    def batch(self, indices: Sequence[int] | torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.batch([i]).items()}

    def loader(self, batch_size: int, shuffle: bool = False, seed: int = 0, drop_last: bool = False) -> Iterator[dict[str, torch.Tensor]]:
        """Batches rendered in one call each (much faster than a per-item DataLoader)."""
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} is not valid; pass an int >= 1")
        order = torch.randperm(self.n, generator=torch.Generator().manual_seed(seed)) if shuffle else torch.arange(self.n)
        for start in range(0, self.n, batch_size):
            chunk = order[start:start + batch_size]
            if drop_last and len(chunk) < batch_size:
                break
            yield self.batch(chunk)

    def config(self) -> dict[str, Any]:
        """Everything that defines the dataset, for data cards and cache keys."""
        return {
            "kind": self.kind, "n": self.n, "split": self.split, "persons": len(self.persons),
            "identities": dataclasses.asdict(self.identities), "seed": self.seed, "size": self.size,
            "style": self.style, "backend": self.backend, "pose_scale": self.pose_scale,
            "glasses_rate": self.glasses_rate, "framing": self.framing,
        }


class FaceDataset(_SyntheticDataset):
    """Single faces with all labels.

    ``expressions`` chooses how AUs are drawn: ``"random"`` (sparse independent AUs),
    ``"emotion"`` (an EMFACS prototype at a random intensity; labels ``emotion`` and
    ``intensity``), ``"mixed"`` (a share ``emotion_share`` of faces shows a prototype, the others
    random AUs; ``emotion`` is -1 on those), ``"propensity"`` (each person has their own AU base
    rates, so identity predicts AUs as in BP4D) or ``"neutral"``. ``p_active`` and ``au_intensity``
    set how random AUs are drawn (``au_intensity`` also for ``"propensity"``), ``emotion_intensity`` the range of a prototype's intensity.
    ``with_neutral`` adds each face's neutral counterpart under the same pose and light
    (``neutral_image``).
    """

    def __init__(self, n: int, *args: Any, expressions: str = "random", propensity_strength: float = 1.5,
                 with_neutral: bool = False, p_active: float = 0.25, au_intensity: tuple[float, float] = (0.2, 1.0),
                 emotion_intensity: tuple[float, float] = (0.25, 1.0), emotion_share: float = 0.5,
                 **kwargs: Any) -> None:
        super().__init__(n, *args, **kwargs)
        if expressions not in EXPRESSION_MODES:
            raise ValueError(f"expressions={expressions!r} is not valid; choose one of {list(EXPRESSION_MODES)}")
        for name, (lo, hi) in (("au_intensity", au_intensity), ("emotion_intensity", emotion_intensity)):
            if not 0 <= lo <= hi <= 1:
                raise ValueError(f"{name}=({lo}, {hi}) is not valid; pass (low, high) with 0 <= low <= high <= 1")
        for name, v in (("p_active", p_active), ("emotion_share", emotion_share)):
            if not 0 <= v <= 1:
                raise ValueError(f"{name}={v!r} is not valid; pass a share in [0, 1]")
        self.expressions, self.propensity_strength, self.with_neutral = expressions, propensity_strength, with_neutral
        self.p_active, self.au_intensity = p_active, tuple(au_intensity)
        self.emotion_intensity, self.emotion_share = tuple(emotion_intensity), emotion_share

    def params(self, indices: Sequence[int] | torch.Tensor) -> tuple[FaceParams, dict[str, torch.Tensor]]:
        idx = self._check(indices)
        person = self.person_of(idx)
        extra: dict[str, torch.Tensor] = {}
        if self.expressions in ("emotion", "mixed"):
            lo, hi = self.emotion_intensity
            emotion = (hash_uniform(self.seed, idx, 41) * len(EMOTIONS)).long()
            intensity = lo + (hi - lo) * hash_uniform(self.seed, idx, 42)
            intensity = torch.where(emotion == 0, torch.zeros(()), intensity)
            au = emotion_matrix()[emotion] * intensity[:, None]
            if self.expressions == "mixed":
                shown = hash_uniform(self.seed, idx, 43) < self.emotion_share
                random_au = sample_aus(seed=self.seed, indices=idx, p_active=self.p_active, intensity=self.au_intensity)
                au = torch.where(shown[:, None], au, random_au)
                emotion = torch.where(shown, emotion, torch.full_like(emotion, -1))
                intensity = torch.where(shown, intensity, torch.zeros(()))
            extra = {"emotion": emotion, "intensity": intensity}
        elif self.expressions == "propensity":
            prop = au_propensity(self.identities.codes(person), self.propensity_strength)
            au = sample_aus(seed=self.seed, indices=idx, propensity=prop, intensity=self.au_intensity)
        elif self.expressions == "neutral":
            au = torch.zeros(len(idx), N_AUS)
        else:
            au = sample_aus(seed=self.seed, indices=idx, p_active=self.p_active, intensity=self.au_intensity)
        p = self._base(idx, person, au)
        return p, {"person": person, **extra}

    def batch(self, indices: Sequence[int] | torch.Tensor) -> dict[str, torch.Tensor]:
        p, extra = self.params(indices)
        out = {"image": self.render_params(p), **_labels(p), **extra}
        if self.with_neutral:
            out["neutral_image"] = self.render_params(p.replace(au=torch.zeros_like(p.au)))
        return {k: v.to(self.device) for k, v in out.items()}

    def config(self) -> dict[str, Any]:
        cfg = {**super().config(), "expressions": self.expressions, "with_neutral": self.with_neutral}
        # sampling settings appear only where they differ from the defaults, so the configs (and
        # the cache keys hashed from them) of datasets made before they existed stay the same
        used = {"p_active": self.expressions in ("random", "mixed"), "au_intensity": self.expressions in ("random", "mixed", "propensity"),
                "emotion_intensity": self.expressions in ("emotion", "mixed"), "emotion_share": self.expressions == "mixed"}
        for name, default in _SAMPLING_DEFAULTS.items():
            value = getattr(self, name)
            if used[name] and (value != default or self.expressions == "mixed"):
                cfg[name] = list(value) if isinstance(value, tuple) else value
        return cfg


_SAMPLING_DEFAULTS: dict[str, Any] = {"p_active": 0.25, "au_intensity": (0.2, 1.0), "emotion_intensity": (0.25, 1.0),
                                      "emotion_share": 0.5}


class _FactorDataset(_SyntheticDataset):
    """Common ground of pairs and sequences: one factor changes by a known amount."""

    def __init__(self, n: int, *args: Any, factor: str = "expression", nuisance: float = 0.3, **kwargs: Any) -> None:
        super().__init__(n, *args, **kwargs)
        if factor not in FACTORS:
            raise ValueError(f"factor={factor!r} is not valid; choose one of {list(FACTORS)}")
        if nuisance < 0:
            raise ValueError(f"nuisance={nuisance} is not valid; pass a value >= 0")
        self.factor, self.nuisance = factor, nuisance

    def _held(self, idx: torch.Tensor) -> tuple[FaceParams, torch.Tensor]:
        """The frame every view starts from; for expression changes, the chosen emotion."""
        person = self.person_of(idx)
        emotion = 1 + (hash_uniform(self.seed, idx, 51) * (len(EMOTIONS) - 1)).long()
        base = self._base(idx, person, au=torch.zeros(len(idx), N_AUS))
        if self.factor != "expression":
            # a held, mild random expression so the model cannot assume neutral faces
            base = base.replace(au=0.5 * sample_aus(seed=self.seed + 3, indices=idx, p_active=0.15))
        return base, emotion

    def _view(self, base: FaceParams, emotion: torch.Tensor, value: torch.Tensor, idx: torch.Tensor, view: int) -> FaceParams:
        """``base`` with the factor set to ``value`` and the nuisance factors jittered a little."""
        if self.factor == "expression":
            changed = base.replace(au=emotion_matrix()[emotion] * value[:, None])
        else:
            changed = base.replace(**{self.factor: value})
        if self.nuisance == 0:
            return changed
        j = idx * 16 + view

        def jitter(field: str, scale: float, salt: int) -> torch.Tensor:
            lo, hi = RANGES[field]
            return (getattr(base, field) + self.nuisance * scale * hash_normal(self.seed, j, salt)).clamp(lo, hi)

        return changed.replace(yaw=jitter("yaw", 6, 61), pitch=jitter("pitch", 4, 62), roll=jitter("roll", 3, 63),
                               light_azimuth=jitter("light_azimuth", 15, 64), light_strength=jitter("light_strength", 0.1, 65))

    def values(self, indices: Sequence[int] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The factor's two drawn values per item (photo a and b of a pair, or the ends of a
        sequence), without rendering anything."""
        idx = self._check(indices)
        lo, hi = FACTOR_RANGES[self.factor]
        return lo + (hi - lo) * hash_uniform(self.seed, idx, 71), lo + (hi - lo) * hash_uniform(self.seed, idx, 72)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "factor": self.factor, "nuisance": self.nuisance}


class PairDataset(_FactorDataset):
    """Same-person pairs (a, b) where one factor changes by a known ``delta`` = value_b - value_a.

    ``factor``: ``"expression"`` (intensity of one emotion), ``"weight"`` (BMI) or ``"age"``
    (years). Everything else is held, except pose and light, which vary a little within a
    pair (``nuisance``), as they would between two photos.
    """

    kind = "pairs"

    def batch(self, indices: Sequence[int] | torch.Tensor) -> dict[str, torch.Tensor]:
        idx = self._check(indices)
        base, emotion = self._held(idx)
        va, vb = self.values(idx)
        pa, pb = self._view(base, emotion, va, idx, 0), self._view(base, emotion, vb, idx, 1)
        out = {"a": self.render_params(pa), "b": self.render_params(pb), "value_a": va, "value_b": vb, "delta": vb - va,
               "person": self.person_of(idx), "emotion": emotion}
        return {k: v.to(self.device) for k, v in out.items()}


class SequenceDataset(_FactorDataset):
    """Same-person sequences of ``length`` frames along which one factor changes monotonically."""

    kind = "sequences"

    def __init__(self, n: int, *args: Any, length: int = 5, **kwargs: Any) -> None:
        super().__init__(n, *args, **kwargs)
        if length < 2:
            raise ValueError(f"length={length} is not valid; a sequence needs at least 2 frames")
        self.length = length

    def batch(self, indices: Sequence[int] | torch.Tensor) -> dict[str, torch.Tensor]:
        idx = self._check(indices)
        base, emotion = self._held(idx)
        v0, v1 = self.values(idx)
        lo, hi = torch.minimum(v0, v1), torch.maximum(v0, v1)
        steps = torch.linspace(0, 1, self.length)
        frames, values = [], []
        for t, s in enumerate(steps):
            v = lo + (hi - lo) * s
            frames.append(self.render_params(self._view(base, emotion, v, idx, t)))
            values.append(v)
        out = {"images": torch.stack(frames, 1), "values": torch.stack(values, 1),
               "person": self.person_of(idx), "emotion": emotion}
        return {k: v.to(self.device) for k, v in out.items()}

    def config(self) -> dict[str, Any]:
        return {**super().config(), "length": self.length}


def _labels(p: FaceParams) -> dict[str, torch.Tensor]:
    return {"au": p.au, "age": p.age, "weight": p.weight, "yaw": p.yaw, "pitch": p.pitch, "roll": p.roll,
            "glasses": p.glasses, "identity_code": p.identity}
