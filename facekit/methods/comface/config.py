"""ComFace's configurations: the profiles as data."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from facekit.methods.common import profile_config_of
from facekit.synth.datasets import FACTOR_RANGES, FACTORS
from facekit.synth.render import FRAMINGS
from facekit.synth.worlds import WORLDS
from facekit.train import TrainConfig

TASKS = FACTORS  # expression-intensity change, weight change, age difference
# Deltas are divided by these (the widest possible change) so the three tasks weigh alike.
DELTA_SCALE = {t: FACTOR_RANGES[t][1] - FACTOR_RANGES[t][0] for t in TASKS}
MIN_LABELLED = 10
METHOD = "comface"
TRAIN_HINT = (
    "run notebooks/02_comface.ipynb at this profile, or `python benchmarks/claims.py --method comface` "
    "(cpu profile, seeds 0-2), which train and cache it"
)


@dataclass
class DataConfig:
    """The synthetic training pool and the transfer sets, drawn from the training worlds
    (:mod:`facekit.synth.worlds`): ``world`` for the pool ComFace and its baselines train on,
    ``test_world`` for the labelled transfer pairs, their evaluation pairs and verification."""

    # The pool's world: ICT-FaceKit when its assets are found (else procedural), half the faces in
    # the photo-like target style, as the paper's synthetic faces are made to look like photos.
    world: str = "default-mixed"
    # The transfer and verification world: the target style only, as real photos (the paper's setting).
    test_world: str = "default-target"
    size: int = 64
    # The inner face, as aligned face crops are: expression and age live there, and the cheeks and
    # jaw line that show weight stay in the window (MODEL_CARD.md).
    framing: str = "face"
    n_identities: int = 4500  # 70% train: 3150 persons, 675 test persons
    pool_pairs: int = 1200  # per factor; rendered once and reused across epochs
    # The three factors' pairs come from the same pool_pairs persons (one pair of each per person),
    # so a person is seen across every kind of change (False: every train person, round robin).
    same_persons: bool = True
    nuisance: float = 0.3
    new_scene: bool = True  # photo b of a pair gets another pair's background, clothing, pose and light
    n_labelled: tuple[int, ...] = (100, 300, 1000)  # labelled transfer pairs per task
    n_eval: int = 400  # held-out transfer pairs per task (other test persons)
    n_verify: int = 200  # persons for verification (genuine + impostor pairs per change)

    def __post_init__(self) -> None:
        self.n_labelled = tuple(int(n) for n in self.n_labelled)
        for name in ("world", "test_world"):
            if getattr(self, name) not in WORLDS:
                raise ValueError(f"DataConfig.{name}={getattr(self, name)!r} is not valid; choose one of {list(WORLDS)}")
        if self.framing not in FRAMINGS:
            raise ValueError(f"DataConfig.framing={self.framing!r} is not valid; choose one of {list(FRAMINGS)}")


@dataclass
class ComFaceConfig:
    """Everything that defines a trained ComFace model; hashed into its cache key."""

    model: dict[str, Any] = field(default_factory=lambda: {"dim": 256, "widths": [32, 64, 96, 128], "inter_dim": 128,
                                                           "intra_dim": 64, "tasks": list(TASKS)})
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=1000, batch_size=32, lr=2e-3, weight_decay=1e-4,
                                                                   warmup_steps=50, schedule="cosine"))
    temperature: float = 0.1
    intra_weight: float = 30.0  # chosen on validation persons (benchmarks/comface_loss_weight.py)
    # A batch holds every pair of the persons it draws, so SupCon's positives span all three
    # changes, as the verification pairs do (False: random pairs, one person rarely twice).
    whole_persons: bool = True


# The fields of each profile that differ from the defaults above (the defaults are the cpu profile).
PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {
        "model": {"dim": 64, "widths": [16, 16, 32, 32], "inter_dim": 32, "intra_dim": 16, "tasks": list(TASKS)},
        "data": {"size": 32, "n_identities": 300, "pool_pairs": 48, "n_labelled": (20, 40), "n_eval": 40, "n_verify": 30},
        "train": {"steps": 30, "batch_size": 16, "lr": 2e-3, "warmup_steps": 3, "schedule": "cosine", "log_every": 10},
    },
    "cpu": {},
    "gpu": {
        "data": {"size": 64, "n_identities": 40000, "pool_pairs": 30000, "n_eval": 2000, "n_verify": 1000},
        "train": {"steps": 20000, "batch_size": 256, "lr": 2e-3, "weight_decay": 1e-4, "warmup_steps": 500,
                  "schedule": "cosine"},
    },
}


def profile_config(profile: str | None = None, seed: int = 0) -> ComFaceConfig:
    """The configuration of a profile: ``smoke`` (seconds), ``cpu`` (minutes), ``gpu``.

    ``batch_size`` counts pairs: a step encodes ``2 * batch_size`` images.
    """
    return profile_config_of(ComFaceConfig, PROFILES, profile, seed)


def check_task(task: str, tasks: Sequence[str]) -> int:
    """The index of ``task`` in ``tasks``, or ``ValueError`` listing the valid ones."""
    if task not in tasks:
        raise ValueError(f"task={task!r} is not one this model was trained for; valid tasks are {list(tasks)}")
    return list(tasks).index(task)
