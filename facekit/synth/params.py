"""FaceParams: every factor of a synthetic face, batched, named and range-checked.

The ground truth of the whole toolkit lives here. A face is an identity code (who) plus
intra-personal factors (how it looks right now: Action Units, age, weight, pose, light).
Because the renderer is a pure function of these numbers, every label is exact.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import torch

from facekit.synth.rng import hash_normal, hash_uniform

# Identity code: one named, continuous trait per dimension (standard normal in the
# population). Named traits keep the code interpretable for teaching; the renderer maps
# each through tanh into its own physical range.
IDENTITY_TRAITS: tuple[tuple[str, str], ...] = (
    ("face_width", "width of the skull and cheekbones"),
    ("face_length", "forehead-to-chin length"),
    ("jaw_width", "width of the jaw relative to the cheekbones"),
    ("chin_length", "how far the chin extends below the mouth"),
    ("cheekbones", "prominence of the cheekbones in the shading"),
    ("eye_size", "size of the eye opening"),
    ("eye_spacing", "distance between the eyes"),
    ("eye_height", "vertical position of the eyes"),
    ("eye_tilt", "canthal tilt: outer corners up (+) or down (-)"),
    ("nose_length", "length of the nose"),
    ("nose_width", "width of the nostrils"),
    ("mouth_width", "width of the mouth"),
    ("lip_fullness", "thickness of the lips"),
    ("mouth_height", "vertical position of the mouth"),
    ("brow_thickness", "thickness of the eyebrows"),
    ("brow_arch", "arch of the eyebrows"),
    ("brow_height", "distance from brows to eyes"),
    ("skin_tone", "skin lightness (dark - to light +)"),
    ("skin_warmth", "skin hue: olive (-) to rosy (+)"),
    ("eye_colour", "iris colour: dark brown (-) to blue/green (+)"),
    ("hair_colour", "hair colour: black (-) to blond (+)"),
    ("hair_red", "red tint of the hair"),
    ("hair_length", "short (-) to long (+) hair"),
    ("hairline", "height of the hairline"),
    ("fringe", "fringe (bangs) coverage of the forehead"),
    ("ear_size", "size of the ears"),
)
ID_DIM = len(IDENTITY_TRAITS)

# FACS Action Units the renderer animates, with their FACS names.
AU_FACS: dict[str, str] = {
    "AU1": "Inner Brow Raiser",
    "AU2": "Outer Brow Raiser",
    "AU4": "Brow Lowerer",
    "AU5": "Upper Lid Raiser",
    "AU6": "Cheek Raiser",
    "AU7": "Lid Tightener",
    "AU9": "Nose Wrinkler",
    "AU10": "Upper Lip Raiser",
    "AU12": "Lip Corner Puller",
    "AU14": "Dimpler",
    "AU15": "Lip Corner Depressor",
    "AU17": "Chin Raiser",
    "AU20": "Lip Stretcher",
    "AU23": "Lip Tightener",
    "AU25": "Lips Part",
    "AU26": "Jaw Drop",
    "AU43": "Eyes Closed",
}
AU_NAMES: tuple[str, ...] = tuple(AU_FACS)
N_AUS = len(AU_NAMES)

# EMFACS-style prototypes (Friesen & Ekman 1983; Matsumoto & Ekman 2008). Contempt is a
# unilateral AU12+AU14 in FACS; the renderer draws AUs bilaterally, so it is approximated.
EMOTION_PROTOTYPES: dict[str, dict[str, float]] = {
    "neutral": {},
    "happiness": {"AU6": 1.0, "AU12": 1.0, "AU25": 0.5},
    "sadness": {"AU1": 1.0, "AU4": 0.7, "AU15": 1.0, "AU17": 0.4},
    "surprise": {"AU1": 1.0, "AU2": 1.0, "AU5": 0.8, "AU25": 1.0, "AU26": 1.0},
    "fear": {"AU1": 1.0, "AU2": 0.8, "AU4": 0.8, "AU5": 1.0, "AU7": 0.6, "AU20": 1.0, "AU25": 1.0, "AU26": 0.5},
    "anger": {"AU4": 1.0, "AU5": 0.6, "AU7": 1.0, "AU23": 1.0, "AU17": 0.5},
    "disgust": {"AU9": 1.0, "AU10": 0.8, "AU15": 0.6, "AU17": 0.5},
    "contempt": {"AU12": 0.5, "AU14": 1.0},
}
EMOTIONS: tuple[str, ...] = tuple(EMOTION_PROTOTYPES)

# Valid ranges, used by validate() and in every error message.
RANGES: dict[str, tuple[float, float]] = {
    "identity": (-6.0, 6.0),
    "au": (0.0, 1.0),
    "age": (18.0, 80.0),
    "weight": (16.0, 40.0),
    "yaw": (-45.0, 45.0),
    "pitch": (-30.0, 30.0),
    "roll": (-30.0, 30.0),
    "light_azimuth": (-90.0, 90.0),
    "light_elevation": (-60.0, 90.0),
    "light_strength": (0.0, 2.0),
    "background": (0.0, 1.0),
    "glasses": (0.0, 1.0),
}
UNITS = {
    "age": "years",
    "weight": "BMI (kg/m^2)",
    "yaw": "degrees (+ turns to the viewer's right)",
    "pitch": "degrees (+ looks down)",
    "roll": "degrees (+ clockwise)",
    "light_azimuth": "degrees (+ light from the viewer's right)",
    "light_elevation": "degrees (+ light from above)",
    "light_strength": "key-light intensity (ambient is fixed)",
}


def au_index(name: str) -> int:
    """Index of an AU by name (``"AU12"`` or ``"12"``), with an error listing valid names."""
    key = name if str(name).upper().startswith("AU") else f"AU{name}"
    key = key.upper()
    if key not in AU_FACS:
        raise KeyError(f"unknown AU {name!r}; valid AUs are {list(AU_NAMES)}")
    return AU_NAMES.index(key)


@dataclasses.dataclass
class FaceParams:
    """A batch of N faces. Every field is a tensor whose first dimension is N.

    identity: (N, ID_DIM) float, the identity code; see ``IDENTITY_TRAITS``.
    au: (N, N_AUS) float in [0, 1], AU intensities in ``AU_NAMES`` order.
    age: (N,) years in [18, 80]. weight: (N,) BMI in [16, 40].
    yaw, pitch, roll: (N,) head pose in degrees.
    light_azimuth, light_elevation: (N,) key-light direction in degrees;
    light_strength: (N,) key-light intensity in [0, 2].
    background: (N, 3) RGB in [0, 1]. glasses: (N,) 0 (none) to 1 (opaque frames).
    seed: (N,) int64, per-face seed for sensor noise and clothing colour.
    """

    identity: torch.Tensor
    au: torch.Tensor
    age: torch.Tensor
    weight: torch.Tensor
    yaw: torch.Tensor
    pitch: torch.Tensor
    roll: torch.Tensor
    light_azimuth: torch.Tensor
    light_elevation: torch.Tensor
    light_strength: torch.Tensor
    background: torch.Tensor
    glasses: torch.Tensor
    seed: torch.Tensor

    def __post_init__(self) -> None:
        self.validate()

    # -- construction ------------------------------------------------------------------
    @classmethod
    def neutral(cls, identity: torch.Tensor | None = None, n: int | None = None, **overrides: Any) -> FaceParams:
        """Neutral, frontal, evenly lit faces; override any field by keyword.

        Scalars broadcast to the batch, so ``FaceParams.neutral(ids, age=60)`` works.
        """
        if identity is None:
            identity = torch.zeros(n or 1, ID_DIM)
        identity = torch.as_tensor(identity, dtype=torch.float32)
        if identity.dim() == 1:
            identity = identity[None]
        n = identity.shape[0]
        fields: dict[str, Any] = {
            "identity": identity,
            "au": torch.zeros(n, N_AUS),
            "age": torch.full((n,), 30.0),
            "weight": torch.full((n,), 22.0),
            "yaw": torch.zeros(n),
            "pitch": torch.zeros(n),
            "roll": torch.zeros(n),
            "light_azimuth": torch.full((n,), 20.0),
            "light_elevation": torch.full((n,), 35.0),
            "light_strength": torch.full((n,), 0.9),
            "background": torch.tensor([0.78, 0.80, 0.84]).repeat(n, 1),
            "glasses": torch.zeros(n),
            "seed": torch.arange(n, dtype=torch.int64),
        }
        for key, value in overrides.items():
            if key not in fields:
                raise TypeError(f"unknown FaceParams field {key!r}; valid fields are {list(fields)}")
            fields[key] = _broadcast(key, value, fields[key])
        return cls(**fields)

    # -- validation --------------------------------------------------------------------
    def validate(self) -> None:
        """Check shapes, dtypes and ranges; errors name the field and what is valid."""
        n = None
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"FaceParams.{f.name} must be a torch.Tensor, got {type(value).__name__}")
            expected = _SHAPES[f.name]
            if value.dim() != len(expected) + 1 or tuple(value.shape[1:]) != expected:
                want = "(N" + "".join(f", {d}" for d in expected) + ")"
                raise ValueError(f"FaceParams.{f.name} has shape {tuple(value.shape)}; expected {want}")
            if n is None:
                n = value.shape[0]
            elif value.shape[0] != n:
                raise ValueError(f"FaceParams.{f.name} has batch size {value.shape[0]}; the other fields have {n}")
            if f.name == "seed":
                if value.dtype != torch.int64:
                    raise TypeError(f"FaceParams.seed must be int64, got {value.dtype}")
                continue
            if not value.is_floating_point():
                raise TypeError(f"FaceParams.{f.name} must be a float tensor, got {value.dtype}")
            if value.numel() == 0:
                continue
            if not torch.isfinite(value).all():
                raise ValueError(f"FaceParams.{f.name} contains NaN or inf; valid range is {RANGES[f.name]}")
            lo, hi = RANGES[f.name]
            vmin, vmax = float(value.min()), float(value.max())
            if vmin < lo - 1e-6 or vmax > hi + 1e-6:
                bad = vmin if vmin < lo - 1e-6 else vmax
                unit = f" {UNITS[f.name]}" if f.name in UNITS else ""
                raise ValueError(f"FaceParams.{f.name} has value {bad:.4g} outside the valid range [{lo:g}, {hi:g}]{unit}")

    # -- batch helpers -----------------------------------------------------------------
    def __len__(self) -> int:
        return self.identity.shape[0]

    def __getitem__(self, idx: int | slice | Sequence[int] | torch.Tensor) -> FaceParams:
        if isinstance(idx, int):
            idx = slice(idx, idx + 1) if idx != -1 else slice(-1, None)
        return FaceParams(**{f.name: getattr(self, f.name)[idx] for f in dataclasses.fields(self)})

    def to(self, device: torch.device | str) -> FaceParams:
        return FaceParams(**{f.name: getattr(self, f.name).to(device) for f in dataclasses.fields(self)})

    @property
    def device(self) -> torch.device:
        return self.identity.device

    def replace(self, **changes: Any) -> FaceParams:
        """A copy with some fields changed; scalars broadcast, everything is re-validated."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for key, value in changes.items():
            if key not in fields:
                raise TypeError(f"unknown FaceParams field {key!r}; valid fields are {list(fields)}")
            fields[key] = _broadcast(key, value, fields[key])
        return FaceParams(**fields)

    def with_au(self, name: str, value: float | torch.Tensor) -> FaceParams:
        """A copy with one AU set (by name, e.g. ``"AU12"``)."""
        value_t = torch.as_tensor(value, dtype=torch.float32, device=self.device)
        lo, hi = RANGES["au"]
        if value_t.numel() and (float(value_t.min()) < lo or float(value_t.max()) > hi):
            raise ValueError(f"{name} intensity {float(value_t.min() if value_t.min() < lo else value_t.max()):.4g} outside the valid range [0, 1]")
        au = self.au.clone()
        au[:, au_index(name)] = value_t
        return self.replace(au=au)

    @staticmethod
    def cat(batches: Sequence[FaceParams]) -> FaceParams:
        if not batches:
            raise ValueError("FaceParams.cat needs at least one batch")
        return FaceParams(**{f.name: torch.cat([getattr(b, f.name) for b in batches]) for f in dataclasses.fields(FaceParams)})

    def labels(self) -> dict[str, torch.Tensor]:
        """Flat per-face labels (one column per scalar), for CSVs and data frames."""
        out: dict[str, torch.Tensor] = {}
        for name in AU_NAMES:
            out[name] = self.au[:, au_index(name)]
        for key in ("age", "weight", "yaw", "pitch", "roll", "light_azimuth", "light_elevation",
                    "light_strength", "glasses"):
            out[key] = getattr(self, key)
        for k, (trait, _) in enumerate(IDENTITY_TRAITS):
            out[f"id_{trait}"] = self.identity[:, k]
        return out


_SHAPES: dict[str, tuple[int, ...]] = {
    "identity": (ID_DIM,),
    "au": (N_AUS,),
    "age": (),
    "weight": (),
    "yaw": (),
    "pitch": (),
    "roll": (),
    "light_azimuth": (),
    "light_elevation": (),
    "light_strength": (),
    "background": (3,),
    "glasses": (),
    "seed": (),
}


def _broadcast(key: str, value: Any, like: torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if t.shape == like.shape:
        return t
    try:
        return t.expand_as(like).clone()
    except RuntimeError:
        want = "(N" + "".join(f", {d}" for d in _SHAPES[key]) + ")"
        raise ValueError(f"FaceParams.{key} has shape {tuple(t.shape)}; expected {want} or a value that broadcasts to it") from None


# ---------------------------------------------------------------------------------------
# Samplers. Counter-based (see ``facekit.synth.rng``): the face for index i is a pure
# function of (seed, i), so a dataset item is the same image every time, in any batch.
# ---------------------------------------------------------------------------------------
def _indices(n: int | None, indices: torch.Tensor | Sequence[int] | None) -> torch.Tensor:
    if indices is None:
        if n is None or n < 0:
            raise ValueError(f"n={n!r} is not valid; pass a count >= 0 or explicit indices")
        return torch.arange(n, dtype=torch.int64)
    return torch.as_tensor(indices, dtype=torch.int64).reshape(-1)


def identity_codes(ids: torch.Tensor | Sequence[int], world_seed: int = 0) -> torch.Tensor:
    """The identity code of each person id: person j is the same face everywhere."""
    ids_t = torch.as_tensor(ids, dtype=torch.int64).reshape(-1, 1)
    k = torch.arange(ID_DIM, dtype=torch.int64).view(1, -1)
    return hash_normal(world_seed, ids_t * ID_DIM + k, 17).clamp(-3.5, 3.5)


def sample_identities(n: int, seed: int) -> torch.Tensor:
    """A population of ``n`` identity codes (standard normal, clipped to +-3.5)."""
    return identity_codes(torch.arange(n), seed)


def emotion_aus(emotion: str, intensity: float | torch.Tensor = 1.0) -> torch.Tensor:
    """The AU vector of an EMFACS prototype at ``intensity`` in [0, 1] (shape (N_AUS,) or (N, N_AUS))."""
    if emotion not in EMOTION_PROTOTYPES:
        raise KeyError(f"unknown emotion {emotion!r}; valid emotions are {list(EMOTIONS)}")
    intensity_t = torch.as_tensor(intensity, dtype=torch.float32)
    if intensity_t.numel() and (float(intensity_t.min()) < 0 or float(intensity_t.max()) > 1):
        raise ValueError(f"emotion intensity {intensity!r} outside the valid range [0, 1]")
    proto = torch.zeros(N_AUS)
    for name, v in EMOTION_PROTOTYPES[emotion].items():
        proto[au_index(name)] = v
    return intensity_t[..., None] * proto if intensity_t.dim() else intensity_t * proto


def emotion_matrix() -> torch.Tensor:
    """``len(EMOTIONS) x N_AUS``: row e is the AU vector of emotion e at full intensity."""
    return torch.stack([emotion_aus(e) for e in EMOTIONS])


# A fixed random map from identity to AU propensity logits: identity predicts AU base rates,
# as subject-specific expressiveness does in BP4D/DISFA.
_PROP_W = torch.randn(ID_DIM, N_AUS, generator=torch.Generator().manual_seed(1234)) / math.sqrt(ID_DIM)


def au_propensity(identity: torch.Tensor, strength: float = 1.5, base_rate: float = 0.25) -> torch.Tensor:
    """Per-identity probability that each AU is active, in (0, 1).

    ``strength`` scales how much identity matters (0: everyone shares ``base_rate``).
    """
    if strength < 0 or not math.isfinite(strength):
        raise ValueError(f"strength={strength!r} is not valid; pass a finite value >= 0")
    if not 0 < base_rate < 1:
        raise ValueError(f"base_rate={base_rate!r} is not valid; pass a value in (0, 1)")
    logit = math.log(base_rate / (1 - base_rate)) + strength * (identity.float().cpu() @ _PROP_W)
    return torch.sigmoid(logit)


# AU pairs that move one feature in opposite directions, or where the first hides the second:
# mouth corners up (AU12) or down (AU15); the upper lid raised (AU5) or tightened (AU7) against
# closed eyes (AU43); the chin pushed up (AU17) against the jaw dropped (AU26). Drawn together
# they show neither, so a random-AU face labelled with both teaches a detector that an AU can be
# present and invisible (the learnability audit's ablation in ``benchmarks/RESULTS.md``). The
# EMFACS prototypes never combine them.
AU_ANTAGONISTS: tuple[tuple[str, str], ...] = (("AU12", "AU15"), ("AU5", "AU43"), ("AU7", "AU43"), ("AU17", "AU26"))


def sample_aus(
    n: int | None = None,
    seed: int = 0,
    indices: torch.Tensor | Sequence[int] | None = None,
    propensity: torch.Tensor | None = None,
    p_active: float = 0.25,
    intensity: tuple[float, float] = (0.2, 1.0),
) -> torch.Tensor:
    """Sparse random AU intensities: each AU is active with its propensity (or ``p_active``),
    then has an intensity uniform in ``intensity`` (default [0.2, 1]). Of an antagonist pair
    (:data:`AU_ANTAGONISTS`) drawn together, a fair coin keeps one."""
    lo, hi = intensity
    if not 0 <= lo <= hi <= 1:
        raise ValueError(f"intensity={intensity!r} is not valid; pass (low, high) with 0 <= low <= high <= 1")
    if not 0 <= p_active <= 1:
        raise ValueError(f"p_active={p_active!r} is not valid; pass a probability in [0, 1]")
    idx = _indices(n, indices).view(-1, 1) * N_AUS + torch.arange(N_AUS).view(1, -1)
    p = propensity if propensity is not None else torch.full(idx.shape, p_active)
    active = hash_uniform(seed, idx, 31) < p
    for k, (a, b) in enumerate(AU_ANTAGONISTS):
        ia, ib = au_index(a), au_index(b)
        both = active[:, ia] & active[:, ib]
        keep_a = hash_uniform(seed, idx[:, 0], 40 + k) < 0.5
        active[:, ia] &= ~both | keep_a
        active[:, ib] &= ~both | ~keep_a
    level = lo + (hi - lo) * hash_uniform(seed, idx, 32)
    return torch.where(active, level, torch.zeros(()))


def sample_params(
    n: int | None = None,
    seed: int = 0,
    indices: torch.Tensor | Sequence[int] | None = None,
    identity: torch.Tensor | None = None,
    au: torch.Tensor | None = None,
    style: str = "clean",
    pose_scale: float = 1.0,
    glasses_rate: float = 0.15,
) -> FaceParams:
    """Random faces for ``indices`` (default ``0..n-1``): fresh identities (or the given
    ones) with random changes.

    ``style`` picks the lighting distribution (see ``facekit.synth.style``);
    ``pose_scale`` scales the pose spread (0 gives frontal faces).
    """
    from facekit.synth.style import get_style

    st = get_style(style)
    idx = _indices(n, indices)
    n = idx.numel()
    if identity is None:
        identity = identity_codes(idx, seed + 7919)
    if identity.shape[0] != n:
        raise ValueError(f"identity has {identity.shape[0]} rows; expected one per face ({n})")
    if au is None:
        au = sample_aus(seed=seed, indices=idx)

    def u(salt: int) -> torch.Tensor:
        return hash_uniform(seed, idx, 100 + salt)

    def z(salt: int) -> torch.Tensor:
        return hash_normal(seed, idx, 200 + salt)

    def between(lo_hi: tuple[float, float], salt: int) -> torch.Tensor:
        return lo_hi[0] + (lo_hi[1] - lo_hi[0]) * u(salt)

    bg = torch.stack([u(10), u(11), u(12)], 1)
    return FaceParams(
        identity=identity.float(),
        au=au.float(),
        age=18 + 62 * u(1),
        weight=(22.5 * torch.exp(0.18 * z(2))).clamp(16, 40),
        yaw=(pose_scale * 12 * z(3)).clamp(-45, 45),
        pitch=(pose_scale * 7 * z(4)).clamp(-30, 30),
        roll=(pose_scale * 5 * z(5)).clamp(-30, 30),
        light_azimuth=between(st.light_azimuth, 6),
        light_elevation=between(st.light_elevation, 7),
        light_strength=between(st.light_strength, 8),
        background=(0.15 + 0.42 * bg + 0.4 * u(13).view(-1, 1)).clamp(0, 1),
        glasses=(u(9) < glasses_rate).float(),
        seed=(hash_uniform(seed, idx, 99) * (2**31 - 1)).to(torch.int64),
    )
