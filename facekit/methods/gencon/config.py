"""The configurations of the generative-contrastive networks: the profiles as data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from facekit.methods.common import profile_config_of
from facekit.synth.datasets import IdentitySplit
from facekit.synth.params import EMOTIONS
from facekit.train import TrainConfig

METHOD = "gencon"


BIN_NAMES = ("low", "medium", "high")


ORACLE_FIRST_ID = 1_000_000  # the oracle's persons: ids no gencon world reaches


MIN_SIZE = 16


TRAIN_HINT = (
    "run notebooks/05_reference_faces.ipynb at this profile, or `facekit train gencon --profile {profile} "
    "--seed {seed}` (`python benchmarks/claims.py --method gencon` trains cpu seeds 0-2)"
)


@dataclass
class DataConfig:
    """The persons, images and intensity bins of every gencon experiment."""

    size: int = 48
    n_identities: int = 120
    fractions: tuple[float, float, float] = (0.5, 0.1, 0.4)  # 60 train, 12 val, 48 test persons
    per_person: int = 40  # training images per person
    n_test: int = 1440  # held-out images (30 per test person)
    bins: tuple[tuple[float, float], ...] = ((0.15, 0.4), (0.4, 0.7), (0.7, 1.0))
    oracle_persons: int = 800  # identity-oracle persons (two photos each)

    def __post_init__(self) -> None:
        self.fractions = tuple(float(f) for f in self.fractions)  # type: ignore[assignment]
        self.bins = tuple((float(lo), float(hi)) for lo, hi in self.bins)
        if len(self.bins) != len(BIN_NAMES) or any(not 0 < lo < hi <= 1 for lo, hi in self.bins):
            raise ValueError(f"bins={self.bins} is not valid; pass {len(BIN_NAMES)} (low, high) intensity ranges "
                             "with 0 < low < high <= 1")
        if self.n_identities >= ORACLE_FIRST_ID:
            raise ValueError(f"n_identities={self.n_identities} is not valid; keep it below {ORACLE_FIRST_ID} "
                             "(the identity oracle's persons start there)")

    def identities(self) -> IdentitySplit:
        return IdentitySplit(self.n_identities, self.fractions)


def stage_train(steps: int, batch_size: int, lr: float, seed: int = 0) -> TrainConfig:
    """A stage's training settings: AdamW with weight decay, a 5% warm-up, a cosine schedule."""
    return TrainConfig(steps=steps, batch_size=batch_size, lr=lr, weight_decay=1e-4, warmup_steps=max(1, steps // 20),
                       schedule="cosine", seed=seed, log_every=max(1, min(50, steps // 10)))


@dataclass
class GenConConfig:
    """Everything that defines the trained models; each stage's cache key hashes its part."""

    model: dict[str, Any] = field(default_factory=lambda: {"g_widths": [16, 32, 64, 96], "dim": 128,
                                                           "e_widths": [32, 64, 96, 128], "n_classes": len(EMOTIONS)})
    oracle_model: dict[str, Any] = field(default_factory=lambda: {"dim": 64, "widths": [16, 32, 48, 64]})
    data: DataConfig = field(default_factory=DataConfig)
    oracle_train: TrainConfig = field(default_factory=lambda: stage_train(200, 48, 2e-3))
    generator_train: TrainConfig = field(default_factory=lambda: stage_train(500, 16, 2e-3))
    encoder_train: TrainConfig = field(default_factory=lambda: stage_train(400, 32, 2e-3))
    finetune_train: TrainConfig = field(default_factory=lambda: stage_train(200, 32, 5e-4))
    id_weight: float = 0.05  # identity term next to G's reconstruction loss
    mse_weight: float = 100.0  # squared error next to L1: L1 alone collapsed G to the identity map
    rec_weight: float = 1.0  # G's loss during end-to-end fine-tuning
    temperature: float = 0.1  # the oracle's SupCon temperature
    single_lr: float = 5e-4  # the baseline's lr: at E's 2e-3 its training loss never left chance

    def stages(self) -> tuple[TrainConfig, ...]:
        return (self.oracle_train, self.generator_train, self.encoder_train, self.finetune_train)

    def single_train(self) -> TrainConfig:
        """The baseline's budget: as many steps as G, E and fine-tuning together, E's batch size,
        its own learning rate (``single_lr``)."""
        e = self.encoder_train
        return stage_train(self.generator_train.steps + e.steps + self.finetune_train.steps, e.batch_size, self.single_lr,
                   e.seed)


# The fields of each profile that differ from the defaults above (the defaults are the cpu profile).
PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {
        "model": {"g_widths": [8, 16, 32], "dim": 32, "e_widths": [8, 16, 16, 32], "n_classes": len(EMOTIONS)},
        "oracle_model": {"dim": 16, "widths": [8, 8, 16, 16]},
        "data": {"size": 32, "n_identities": 30, "fractions": (0.5, 0.1, 0.4), "per_person": 8, "n_test": 96,
                 "oracle_persons": 48},
        "oracle_train": stage_train(10, 32, 2e-3), "generator_train": stage_train(15, 16, 2e-3),
        "encoder_train": stage_train(15, 16, 2e-3), "finetune_train": stage_train(10, 16, 5e-4),
    },
    "cpu": {},
    "gpu": {
        "data": {"size": 64, "n_identities": 1200, "fractions": (0.5, 0.1, 0.4), "per_person": 100, "n_test": 9600,
                 "oracle_persons": 8000},
        "oracle_train": stage_train(3000, 256, 2e-3), "generator_train": stage_train(6000, 128, 2e-3),
        "encoder_train": stage_train(4000, 128, 2e-3), "finetune_train": stage_train(3000, 128, 5e-4),
    },
}
SEEDED = ("oracle_train", "generator_train", "encoder_train", "finetune_train")  # each stage gets the run's seed


def profile_config(profile: str | None = None, seed: int = 0) -> GenConConfig:
    """The configuration of a profile: ``smoke`` (seconds), ``cpu`` (minutes), ``gpu``."""
    return profile_config_of(GenConConfig, PROFILES, profile, seed, SEEDED)
