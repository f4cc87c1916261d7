"""PluGeN4Faces' configurations and attributes: the profiles as data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import Tensor

from facekit.methods.common import profile_config_of
from facekit.synth.datasets import FACTOR_RANGES
from facekit.synth.worlds import WORLDS, World, get_world
from facekit.train import TrainConfig

METHOD = "plugen"


TRAIN_HINT = ("run notebooks/06_identity_aware_editing.ipynb at this profile, or `facekit train plugen` "
              "(or `python benchmarks/claims.py --method plugen`: cpu profile, seeds 0-2), which train and cache it")


# name -> (what it is, level 0, level 1, unit)
ATTRIBUTES: dict[str, tuple[str, float, float, str]] = {
    "smile": ("AU12 Lip Corner Puller", 0.0, 1.0, "AU intensity"),
    "mouth_open": ("AU25 Lips Part + AU26 Jaw Drop", 0.0, 1.0, "AU intensity"),
    "eyes_closed": ("AU43 Eyes Closed", 0.0, 1.0, "AU intensity"),
    "age": ("age", *FACTOR_RANGES["age"], "years"),
    "weight": ("weight", *FACTOR_RANGES["weight"], "BMI"),
    "yaw": ("head yaw", -30.0, 30.0, "degrees"),
    "glasses": ("glasses", 0.0, 1.0, "0 none, 1 frames"),
}


ATTRIBUTE_NAMES: tuple[str, ...] = tuple(ATTRIBUTES)


N_ATTR = len(ATTRIBUTES)


EDIT_METHODS = ("plugen4faces", "plugen", "linear")


GLASSES_RATE = 0.3


@dataclass
class DataConfig:
    """The synthetic faces every model of a profile trains on, and the held-out test faces.

    ``world`` names a training world (:data:`facekit.synth.worlds.WORLDS`: ICT-FaceKit when its
    assets are found, else procedural); size, framing and the number of persons are this config's.
    """

    world: str = "default"
    size: int = 32
    framing: str = "face"
    n_identities: int = 2000  # 70 % train (1400 persons), 15 % val (300), 15 % test (300)
    n_persons: int = 800  # train persons in the pool
    frames: int = 8  # frames per person
    n_test: int = 120  # held-out test persons, one frontal face each
    seed: int = 0

    def __post_init__(self) -> None:
        if self.world not in WORLDS:
            raise ValueError(f"DataConfig.world={self.world!r} is not valid; choose one of {list(WORLDS)}")


def world_of(d: DataConfig) -> World:
    """PluGeN's world: ``d.world`` at this config's size and framing, over ``d.n_identities`` persons."""
    return get_world(d.world, size=d.size, framing=d.framing, n_identities=d.n_identities)


@dataclass
class PlugenConfig:
    """Everything that defines the trained models of one seed; parts are hashed into cache keys."""

    data: DataConfig = field(default_factory=DataConfig)
    ae_model: dict[str, Any] = field(default_factory=lambda: {"latent_dim": 128, "size": 32, "widths": [16, 32, 64, 128],
                                                              "n_aux": N_ATTR})
    ae_train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=1000, batch_size=64, lr=2e-3, warmup_steps=50,
                                                                      schedule="cosine", weight_decay=1e-5))
    latent_noise: float = 0.05
    latent_l2: float = 1e-3
    aux_weight: float = 0.1  # attribute levels read from the code by a linear head (see the docstring)
    flow_model: dict[str, Any] = field(default_factory=lambda: {"features": 128, "transforms": 10, "hidden": 256})
    flow_train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=1500, batch_size=128, lr=1e-3, warmup_steps=50,
                                                                        schedule="cosine", weight_decay=1e-5))
    id_weight: float = 10.0
    attr_weight: float = 10.0
    attr_start: float = 0.25
    sigma_start: float = 1.0
    sigma_end: float = 0.1
    ridge_alpha: float = 1.0


# The fields of each profile that differ from the defaults above (the defaults are the cpu profile).
PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {
        "data": {"n_identities": 300, "n_persons": 48, "frames": 4, "n_test": 24},
        "ae_model": {"latent_dim": 32, "size": 32, "widths": [8, 16, 16, 32], "n_aux": N_ATTR},
        "ae_train": {"steps": 40, "batch_size": 32, "lr": 3e-3, "warmup_steps": 4, "schedule": "cosine", "log_every": 10},
        "flow_model": {"features": 32, "transforms": 4, "hidden": 64},
        "flow_train": {"steps": 40, "batch_size": 32, "lr": 1e-3, "warmup_steps": 4, "schedule": "cosine", "log_every": 10},
    },
    "cpu": {},
    "gpu": {
        "data": {"size": 64, "n_identities": 20000, "n_persons": 10000, "frames": 16, "n_test": 1000},
        "ae_model": {"latent_dim": 256, "size": 64, "widths": [32, 64, 128, 256], "n_aux": N_ATTR},
        "ae_train": {"steps": 20000, "batch_size": 256, "lr": 2e-3, "warmup_steps": 500, "schedule": "cosine"},
        "flow_model": {"features": 256, "transforms": 10, "hidden": 512},
        "flow_train": {"steps": 20000, "batch_size": 512, "lr": 1e-3, "warmup_steps": 500, "schedule": "cosine"},
    },
}


def profile_config(profile: str | None = None, seed: int = 0) -> PlugenConfig:
    """``smoke`` (seconds), ``cpu`` (the teaching default), ``gpu`` (64 px, longer).

    Only the flows take the seed: the autoencoder (``ae_train.seed = 0``) is shared by every seed.
    """
    return profile_config_of(PlugenConfig, PROFILES, profile, seed, ("flow_train",))


def to_target(levels: Tensor) -> Tensor:
    return 2 * levels - 1


def levels_to_units(name: str, level: float | np.ndarray) -> float | np.ndarray:
    """A level in [0, 1] in the attribute's own units (years, BMI, degrees, ...)."""
    if name not in ATTRIBUTES:
        raise ValueError(f"unknown attribute {name!r}; valid attributes are {list(ATTRIBUTE_NAMES)}")
    lo, hi = ATTRIBUTES[name][1:3]
    return lo + (hi - lo) * level
