"""ComFace's loss and training, through :func:`facekit.train.train_or_load`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from facekit.config import get_profile
from facekit.methods.comface.config import METHOD, TRAIN_HINT, ComFaceConfig, profile_config
from facekit.methods.comface.data import training_pool
from facekit.methods.comface.model import ComFace, ComFaceNet
from facekit.methods.common import PoolSampler
from facekit.models import augment, supcon_loss
from facekit.train import TrainResult, load_cached, model_path, train_or_load


def comface_loss(model: nn.Module, batch: dict[str, Tensor], temperature: float = 0.1,
                 intra_weight: float = 1.0, aug: bool = True) -> dict[str, Tensor]:
    """SupCon over persons on the inter embeddings of a and b, plus the MSE of the predicted
    (scaled) deltas from intra-embedding differences. Returns the parts for the log."""
    a, b = batch["a"].float() / 255, batch["b"].float() / 255
    if aug:
        a, b = photometric(a), photometric(b)
    out = model(torch.cat([a, b]))
    n = len(a)
    inter = supcon_loss(out["inter"], torch.cat([batch["person"], batch["person"]]), temperature)
    net = model.module if hasattr(model, "module") else model
    pred = net.regressor(out["intra"][n:] - out["intra"][:n])
    intra = F.mse_loss(pred, batch["delta"])
    return {"loss": inter + intra_weight * intra, "inter": inter.detach(), "intra": intra.detach()}


def photometric(x: Tensor) -> Tensor:
    """Camera effects only (colour, grey, blur, noise); no crops, since a crop looks like a change of face width."""
    return augment(x, crop_scale=(1.0, 1.0), colour=0.3, grey_p=0.3, blur_p=0.5, noise=0.04)


def train_key(cfg: ComFaceConfig) -> dict[str, Any]:
    return {"data": cfg.data, "temperature": cfg.temperature, "intra_weight": cfg.intra_weight,
            "whole_persons": cfg.whole_persons}


def cache_path(cfg: ComFaceConfig, profile: str | None = None) -> Path:
    """The cache folder of the ComFace model of ``cfg`` (what :func:`load` reads)."""
    return model_path(METHOD, cfg.model, cfg.train, key=train_key(cfg), profile=get_profile(profile))


def train(profile: str | None = None, seed: int = 0, cfg: ComFaceConfig | None = None, *,
          progress: bool | None = None) -> TrainResult:
    """Load the cached ComFace model of (profile, seed, config), else train and cache it."""
    cfg = cfg or profile_config(profile, seed)
    data = PersonSampler(pool_sampler(cfg)) if cfg.whole_persons else pool_sampler(cfg)
    return train_or_load(METHOD, ComFaceNet, cfg.model, data, cfg.train, profile=profile,
                         key=train_key(cfg), progress=progress,
                         loss_fn=lambda m, b: comface_loss(m, b, cfg.temperature, cfg.intra_weight))


def pool_sampler(cfg: ComFaceConfig) -> PoolSampler:
    """Random pairs of the training pool, rendered on the first step (loading a cached model renders nothing)."""
    return PoolSampler(lambda: training_pool(cfg), cfg.train.batch_size, min_rows=2, empty="the training pool")


class PersonSampler:
    """``step -> batch`` of every pair of randomly drawn persons of a :class:`PoolSampler`'s
    pool (``batch_size`` rows, the last person cut short), so each photo has positives beyond
    its own pair. Draws with torch's global RNG, which :func:`facekit.train.fit` reseeds every step."""

    def __init__(self, rows: PoolSampler) -> None:
        self.rows = rows
        self._groups: list[Tensor] | None = None

    def __call__(self, step: int) -> dict[str, Tensor]:
        pool = self.rows.pool
        if self._groups is None:
            order = torch.argsort(pool["person"], stable=True)
            counts = torch.unique_consecutive(pool["person"][order], return_counts=True)[1]
            self._groups = list(torch.split(order, counts.tolist()))
        n = self.rows.batch_size
        picked = torch.randperm(len(self._groups))[:n]
        idx = torch.cat([self._groups[int(i)] for i in picked])[:n]
        return {k: v[idx] for k, v in pool.items()}


def load(profile: str | None = None, seed: int = 0, *, device: str | torch.device | None = None,
         cfg: ComFaceConfig | None = None) -> ComFace:
    """The one way to get a trained ComFace model (the Analyzer calls this).

    Raises ``FileNotFoundError`` naming the command that trains it when it is not cached.
    """
    profile = get_profile(profile)
    cfg = cfg or profile_config(profile, seed)
    net = load_cached(METHOD, ComFaceNet, cfg.model, cfg.train, key=train_key(cfg), profile=profile, device=device,
                      what=f"ComFace model for profile={profile!r}, seed={seed}", hint=TRAIN_HINT)
    return ComFace(net, cfg, profile, seed)


def train_and_load(profile: str | None = None, seed: int = 0, *, progress: bool | None = None) -> tuple[ComFace, TrainResult]:
    """Load the checkpoint if it exists, else train it; return the model and the training log."""
    profile = get_profile(profile)
    cfg = profile_config(profile, seed)
    result = train(profile, seed, cfg, progress=progress)
    return ComFace(result.model, cfg, profile, seed), result
