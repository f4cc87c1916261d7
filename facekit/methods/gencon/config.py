"""The configurations of the generative-contrastive networks: the profiles as data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from facekit.methods.common import profile_config_of
from facekit.synth.datasets import IdentitySplit
from facekit.synth.params import EMOTIONS
from facekit.synth.worlds import INTENSITY_BIN_EDGES, INTENSITY_BINS, WORLDS, World, get_world
from facekit.train import TrainConfig

METHOD = "gencon"


BIN_NAMES = INTENSITY_BINS
# The world's intensity bins as (low, high) ranges: low [0.15, 0.4), medium [0.4, 0.7), high [0.7, 1].
WORLD_BINS = tuple(zip(INTENSITY_BIN_EDGES[:-1], INTENSITY_BIN_EDGES[1:], strict=True))


MIN_SIZE = 16


TRAIN_HINT = (
    "run notebooks/05_reference_faces.ipynb at this profile, or `facekit train gencon --profile {profile} "
    "--seed {seed}` (`python benchmarks/claims.py --method gencon` trains cpu seeds 0-2)"
)


@dataclass
class DataConfig:
    """The world, persons, images and intensity bins of every gencon experiment.

    ``world`` names a training world (:data:`facekit.synth.worlds.WORLDS`); it fixes the backend
    (ICT-FaceKit when its assets are found), style, pose and the aligned face framing, while size,
    framing and the number of persons are this config's. The world splits its persons 70/15/15
    into train, val and test.
    """

    world: str = "default"
    size: int = 64
    framing: str = "face"
    n_identities: int = 400  # 280 train, 60 val, 60 test persons
    world_seed: int = 8  # persons of this world appear in no other method's notebook
    per_person: int = 10  # training images per person
    n_test: int = 1200  # held-out images (20 per test person)
    bins: tuple[tuple[float, float], ...] = WORLD_BINS

    def __post_init__(self) -> None:
        self.bins = tuple((float(lo), float(hi)) for lo, hi in self.bins)
        if len(self.bins) != len(BIN_NAMES) or any(not 0 < lo < hi <= 1 for lo, hi in self.bins):
            raise ValueError(f"bins={self.bins} is not valid; pass {len(BIN_NAMES)} (low, high) intensity ranges "
                             "with 0 < low < high <= 1")
        if self.world not in WORLDS:
            raise ValueError(f"DataConfig.world={self.world!r} is not valid; choose one of {list(WORLDS)}")
        if self.per_person < 2:
            raise ValueError(f"DataConfig.per_person={self.per_person} is not valid; pass at least 2 (the identity "
                             "oracle trains on two photos of each training person)")

    def identities(self) -> IdentitySplit:
        """The persons of the world and their train / val / test split."""
        return world_of(self).identities


def world_of(d: DataConfig, world_seed: int | None = None) -> World:
    """gencon's world: ``d.world`` at this config's size and framing, over ``d.n_identities``
    persons of ``world_seed`` (default ``d.world_seed``)."""
    return get_world(d.world, size=d.size, framing=d.framing, n_identities=d.n_identities,
                     world_seed=d.world_seed if world_seed is None else world_seed)


def stage_train(steps: int, batch_size: int, lr: float, seed: int = 0) -> TrainConfig:
    """A stage's training settings: AdamW with weight decay, a 5% warm-up, a cosine schedule."""
    return TrainConfig(steps=steps, batch_size=batch_size, lr=lr, weight_decay=1e-4, warmup_steps=max(1, steps // 20),
                       schedule="cosine", seed=seed, log_every=max(1, min(50, steps // 10)))


@dataclass
class GenConConfig:
    """Everything that defines the trained models; each stage's cache key hashes its part."""

    model: dict[str, Any] = field(default_factory=lambda: {"g_widths": [16, 32, 64, 96], "dim": 128,
                                                           "e_widths": [16, 32, 64, 96], "n_classes": len(EMOTIONS)})
    oracle_model: dict[str, Any] = field(default_factory=lambda: {"dim": 64, "widths": [16, 32, 48, 64]})
    data: DataConfig = field(default_factory=DataConfig)
    oracle_train: TrainConfig = field(default_factory=lambda: stage_train(150, 48, 2e-3))
    generator_train: TrainConfig = field(default_factory=lambda: stage_train(1000, 16, 2e-3))
    encoder_train: TrainConfig = field(default_factory=lambda: stage_train(200, 32, 2e-3))
    finetune_train: TrainConfig = field(default_factory=lambda: stage_train(120, 32, 5e-4))
    id_weight: float = 0.05  # identity term next to G's reconstruction loss
    mse_weight: float = 20.0  # squared error next to L1: L1 alone collapsed G to the identity map
    rec_weight: float = 30.0  # G's loss during end-to-end fine-tuning
    temperature: float = 0.1  # the oracle's SupCon temperature
    single_lr: float = 2e-3  # the baseline's lr (a sweep on the training world: MODEL_CARD.md)

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
        "data": {"size": 32, "n_identities": 30, "per_person": 8, "n_test": 96},
        "oracle_train": stage_train(10, 32, 2e-3), "generator_train": stage_train(15, 16, 2e-3),
        "encoder_train": stage_train(15, 16, 2e-3), "finetune_train": stage_train(10, 16, 5e-4),
    },
    "cpu": {},
    "gpu": {
        "data": {"n_identities": 1600, "per_person": 30, "n_test": 9600},
        "oracle_train": stage_train(3000, 256, 2e-3), "generator_train": stage_train(6000, 128, 2e-3),
        "encoder_train": stage_train(4000, 128, 2e-3), "finetune_train": stage_train(3000, 128, 5e-4),
    },
}
SEEDED = ("oracle_train", "generator_train", "encoder_train", "finetune_train")  # each stage gets the run's seed


def profile_config(profile: str | None = None, seed: int = 0) -> GenConConfig:
    """The configuration of a profile: ``smoke`` (seconds), ``cpu`` (minutes), ``gpu``."""
    return profile_config_of(GenConConfig, PROFILES, profile, seed, SEEDED)
