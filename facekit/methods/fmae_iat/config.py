"""FMAE-IAT's configurations and fine-tuning variants: the profiles as data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from facekit.methods.common import profile_config_of
from facekit.models.heads import ID_HEADS, check_scale
from facekit.models.vit_mae import READOUTS, ViTSpec
from facekit.synth.params import au_index
from facekit.synth.render import check_framing
from facekit.synth.worlds import WORLDS
from facekit.train import TrainConfig

METHOD = "fmae_iat"


MAE_METHOD = "fmae_iat_mae"


INITS = ("mae", "scratch")


TRAIN_HINT = ("run notebooks/03_mae_iat_au.ipynb at this profile, `facekit train fmae_iat`, or "
              "`python benchmarks/claims.py --method fmae_iat` (cpu profile, seeds 0-2), which train and cache it")


# BP4D's 12 AUs, with AU24 (lip pressor; the renderer has none) replaced by AU25 (lips part, DISFA).
BP4D_AUS: tuple[str, ...] = ("AU1", "AU2", "AU4", "AU6", "AU7", "AU10", "AU12", "AU14", "AU15", "AU17", "AU23", "AU25")


@dataclass
class StreamConfig:
    """The pretraining stream (hashed into the MAE's cache key)."""

    world_seed: int = 90_000  # + run seed: the stream's persons are not the AU subjects
    target_fraction: float = 0.5  # share of faces in the target (camera pipeline) style
    emotion_fraction: float = 0.5  # share with an emotion prototype (the rest: sparse random AUs)
    ict_fraction: float = 0.0  # share rendered by the ICT-FaceKit backend (needs its assets)
    pose_scale: float = 1.0
    framing: str = "face"
    pool: int = 0  # > 0: the stream's first `pool` faces, rendered once, revisited (see FaceStream)

    def __post_init__(self) -> None:
        check_framing(self.framing)
        if not isinstance(self.pool, int) or self.pool < 0:
            raise ValueError(f"StreamConfig.pool={self.pool!r} is not valid; pass an int >= 0 (0: render every batch)")
        for name in ("target_fraction", "emotion_fraction", "ict_fraction"):
            v = getattr(self, name)
            if not 0 <= v <= 1:
                raise ValueError(f"StreamConfig.{name}={v!r} is not valid; pass a share in [0, 1]")


@dataclass
class AUDataConfig:
    """The BP4D-like fine-tuning set (one per run seed), drawn from the training world ``world``
    (``facekit.synth.worlds``; its backend, style, pose and AU intensities, its FACS-B occurrence)."""

    world: str = "default"
    n_subjects: int = 120  # split into folds; each fold trains on the others (80 subjects at 3 folds)
    n_folds: int = 3
    n_val_subjects: int = 24  # disjoint subjects, only for choosing the reversal scale
    images_per_subject: int = 40
    probe_images_per_subject: int = 10  # held-out images of each subject, for the identity probe
    propensity_strength: float = 2.0
    aus: tuple[str, ...] = field(default_factory=lambda: BP4D_AUS)
    size: int = 64
    framing: str = "face"

    def __post_init__(self) -> None:
        check_framing(self.framing)
        if self.world not in WORLDS:
            raise ValueError(f"world={self.world!r} is not valid; choose one of {list(WORLDS)}")
        self.aus = tuple(self.aus)
        for a in self.aus:
            au_index(a)
        if len(self.aus) < 1 or len(set(self.aus)) != len(self.aus):
            raise ValueError(f"aus={list(self.aus)} is not valid; pass distinct AU names")
        if self.n_folds < 2 or self.n_subjects < 2 * self.n_folds:
            raise ValueError(f"n_subjects={self.n_subjects}, n_folds={self.n_folds} are not valid; "
                             "pass n_folds >= 2 and at least 2 subjects per fold")


@dataclass
class FinetuneConfig:
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=500, batch_size=32, lr=1e-3, weight_decay=0.05,
                                                                   warmup_steps=25, schedule="cosine", log_every=50))
    scales: tuple[float, ...] = (0.5, 1.0, 2.0)  # the paper's choices on DISFA, BP4D+ and BP4D
    layer_decay: float | None = None  # layer-wise lr decay of MAE-initialised encoders (None: off)
    readout: str = "mean"  # how the AU and identity heads pool the ViT's tokens (facekit.models.vit_mae.READOUTS)

    def __post_init__(self) -> None:
        self.scales = tuple(check_scale(s) for s in self.scales)
        if self.readout not in READOUTS:
            raise ValueError(f"FinetuneConfig.readout={self.readout!r} is not valid; choose one of {list(READOUTS)}")
        if self.layer_decay is not None and not 0 < self.layer_decay <= 1:
            raise ValueError(f"FinetuneConfig.layer_decay={self.layer_decay!r} is not valid; pass a factor in (0, 1] "
                             "or None")


@dataclass
class FMAEConfig:
    """Everything that defines the MAE and the fine-tuned detectors of one seed."""

    vit: ViTSpec = field(default_factory=lambda: ViTSpec(size=64, patch=8, stem="conv", stem_masking=False))
    stream: StreamConfig = field(default_factory=lambda: StreamConfig(ict_fraction=1.0, pool=4000))
    pretrain: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=600, batch_size=64, lr=1.5e-3, weight_decay=0.05, betas=(0.9, 0.95), warmup_steps=40, schedule="cosine",
        log_every=50, ckpt_every=200))
    data: AUDataConfig = field(default_factory=AUDataConfig)
    finetune: FinetuneConfig = field(default_factory=lambda: FinetuneConfig(readout="grid"))


# The fields of each profile that differ from the defaults above (the defaults are the cpu profile).
PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {
        "vit": {"size": 32, "patch": 8, "stem": "conv", "width": 32, "depth": 2, "heads": 2, "decoder_width": 32,
                "decoder_depth": 1},
        "stream": {"ict_fraction": 1.0, "pool": 96},
        "pretrain": {"steps": 30, "batch_size": 32, "lr": 1.5e-3, "weight_decay": 0.05, "betas": (0.9, 0.95),
                     "warmup_steps": 3, "schedule": "cosine", "log_every": 10},
        "data": {"n_subjects": 12, "n_val_subjects": 4, "images_per_subject": 8, "probe_images_per_subject": 4,
                 "size": 32},
        "finetune": {"train": {"steps": 20, "batch_size": 16, "lr": 1e-3, "warmup_steps": 2, "schedule": "cosine",
                               "log_every": 5}, "scales": (1.0, 4.0), "readout": "grid"},
    },
    "cpu": {},
    # 9e6 streamed images (Face9M by construction), 64x64 faces, ViT-S-like width; ICT faces too.
    "gpu": {
        "vit": {"size": 64, "patch": 8, "width": 384, "depth": 8, "heads": 6, "mlp_ratio": 4, "decoder_width": 256,
                "decoder_depth": 4},
        "stream": {"ict_fraction": 0.2},
        "pretrain": {"steps": 35_157, "batch_size": 256, "lr": 1.5e-3, "weight_decay": 0.05, "betas": (0.9, 0.95),
                     "warmup_steps": 2000, "schedule": "cosine", "mixed_precision": "bf16", "ckpt_every": 2000},
        "data": {"n_subjects": 60, "images_per_subject": 400, "probe_images_per_subject": 40, "size": 64},
        "finetune": {"train": {"steps": 3000, "batch_size": 64, "lr": 5e-4, "weight_decay": 0.05, "warmup_steps": 200,
                               "schedule": "cosine"}},
    },
}


def profile_config(profile: str | None = None, seed: int = 0) -> FMAEConfig:
    """``smoke`` (seconds), ``cpu`` (the claims scale), ``gpu`` (Face9M by construction)."""
    cfg = profile_config_of(FMAEConfig, PROFILES, profile, seed, ("pretrain", "finetune.train"))
    if cfg.data.size != cfg.vit.size:
        raise ValueError(f"data size {cfg.data.size} differs from the ViT size {cfg.vit.size}")
    return cfg


@dataclass(frozen=True)
class Variant:
    """One fine-tuned model: initial weights, identity head (``"none"``, ``"linear"``, ``"mlp"``),
    reversal scale, and the fold whose subjects it tests on."""

    init: str = "mae"
    id_head: str = "linear"
    scale: float = 1.0
    fold: int = 0

    def __post_init__(self) -> None:
        if self.init not in INITS:
            raise ValueError(f"init={self.init!r} is not valid; choose one of {list(INITS)}")
        if self.id_head not in ("none", *ID_HEADS):
            raise ValueError(f"id_head={self.id_head!r} is not valid; choose one of {['none', *ID_HEADS]}")
        check_scale(self.scale)
        if self.id_head == "none" and self.scale != 0:
            object.__setattr__(self, "scale", 0.0)


VARIANT_NAMES = ("scratch", "mae", "iat_linear", "iat_mlp")


def variants(name: str, scale: float, fold: int) -> Variant:
    """The claims' four variants: scratch and MAE without IAT, MAE + IAT with either head."""
    return {"scratch": Variant("scratch", "none", 0.0, fold), "mae": Variant("mae", "none", 0.0, fold),
            "iat_linear": Variant("mae", "linear", scale, fold), "iat_mlp": Variant("mae", "mlp", scale, fold)}[name]
