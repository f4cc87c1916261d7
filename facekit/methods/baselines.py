"""Baselines for ComFace, each with the same encoder, data and steps x batch.

* **SimCLR** (generic self-supervised, instance-contrastive): the same pool of synthetic
  images, two augmented views of each image are the only positives. A step encodes
  ``2 * batch_size`` images, as a ComFace step does (a and b of ``batch_size`` pairs).
* **Supervised from scratch**: the same encoder trained end to end on the few labelled
  target-style pairs only (all three tasks at once, each pair supervising its own task),
  predicting a delta from ``f(b) - f(a)``; same steps x batch, same photometric augmentation.
* **Raw pixels -> PCA -> ridge** lives in :func:`facekit.methods.comface.pca_pair_features`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from facekit.methods.comface import (
    DELTA_SCALE,
    TASKS,
    ComFaceConfig,
    _check_task,
    _LazyPool,
    _photometric,
    labelled_subset,
)
from facekit.models import ConvEncoder, augment, supcon_loss
from facekit.train import TrainResult, train_or_load


class SimCLRNet(nn.Module):
    """Encoder plus a projection MLP; the encoder output is the transferred feature (as in SimCLR)."""

    def __init__(self, dim: int = 256, widths: list[int] | tuple[int, ...] = (32, 64, 128, 160), proj_dim: int = 128) -> None:
        super().__init__()
        self.encoder = ConvEncoder(dim, tuple(widths))
        self.projector = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, proj_dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.projector(self.encoder(x))


def simclr_loss(model: nn.Module, batch: dict[str, Tensor], temperature: float = 0.1) -> Tensor:
    """NT-Xent: SupCon with one label per source image, two augmented views each."""
    x = batch["image"].float() / 255
    views = torch.cat([augment(x), augment(x)])
    labels = torch.arange(len(x), device=x.device).repeat(2)
    return supcon_loss(model(views), labels, temperature)


def _model_kwargs(cfg: ComFaceConfig) -> dict[str, Any]:
    return {"dim": cfg.model["dim"], "widths": list(cfg.model["widths"])}


def train_simclr(profile: str | None, seed: int, cfg: ComFaceConfig, *, progress: bool | None = None) -> TrainResult:
    """Load or train SimCLR on the images of ComFace's training pool (a and b as separate
    instances), with ComFace's optimiser settings and steps."""
    pool_fn = _LazyPool(cfg)
    n = cfg.train.batch_size

    def data(step: int) -> dict[str, Tensor]:
        pairs = pool_fn(step)  # n random pairs; take a or b of each at random
        pick = torch.rand(n) < 0.5
        return {"image": torch.where(pick.view(-1, 1, 1, 1), pairs["a"], pairs["b"])}

    return train_or_load("comface-simclr", SimCLRNet, {**_model_kwargs(cfg), "proj_dim": cfg.model["inter_dim"]},
                         data, cfg.train, profile=profile, progress=progress,
                         key={"data": cfg.data, "temperature": cfg.temperature, "views": 2},
                         loss_fn=lambda m, b: simclr_loss(m, b, cfg.temperature))


def embedder(net: SimCLRNet, batch_size: int = 256) -> Callable[[Tensor], Tensor]:
    """images -> SimCLR encoder features (frozen, eval mode, CPU output)."""
    net.eval()

    @torch.no_grad()
    def embed(x: Tensor) -> Tensor:
        device = next(net.parameters()).device
        return torch.cat([net.encoder(x[i:i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)])

    return embed


class SupervisedPairNet(nn.Module):
    """Encoder and a linear map from ``f(b) - f(a)`` to the scaled deltas of every task."""

    def __init__(self, dim: int = 256, widths: list[int] | tuple[int, ...] = (32, 64, 128, 160), n_tasks: int = 3) -> None:
        super().__init__()
        self.encoder = ConvEncoder(dim, tuple(widths))
        self.head = nn.Linear(dim, n_tasks, bias=False)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        h = self.encoder(torch.cat([a, b]))
        return self.head(h[len(a):] - h[: len(a)])


def supervised_loss(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    """MSE on each pair's own task only (``mask``): the labelled sets are per task."""
    a, b = _photometric(batch["a"].float() / 255), _photometric(batch["b"].float() / 255)
    pred = model(a, b)
    return ((pred - batch["delta"]) ** 2 * batch["mask"]).sum(1).mean()


def train_supervised(profile: str | None, seed: int, cfg: ComFaceConfig, sets: dict[str, dict[str, dict[str, Tensor]]],
                     n_labelled: int, *, progress: bool | None = None) -> TrainResult:
    """Load or train the from-scratch baseline on ``n_labelled`` target pairs per task (the
    same subsets the ridge heads get for this seed), with ComFace's steps and batch."""
    parts: dict[str, list[Tensor]] = {"a": [], "b": [], "delta": [], "mask": []}
    for k, task in enumerate(TASKS):
        lab = sets[task]["labelled"]
        idx = labelled_subset(len(lab["a"]), n_labelled, seed)
        mask = torch.zeros(n_labelled, len(TASKS))
        mask[:, k] = 1
        for name, v in (("a", lab["a"][idx]), ("b", lab["b"][idx]), ("delta", lab["delta"][idx]), ("mask", mask)):
            parts[name].append(v)
    pool = {k: torch.cat(v) for k, v in parts.items()}
    n, bs = len(pool["a"]), cfg.train.batch_size

    def data(step: int) -> dict[str, Tensor]:
        idx = torch.randint(0, n, (bs,))
        return {k: v[idx] for k, v in pool.items()}

    return train_or_load("comface-supervised", SupervisedPairNet, {**_model_kwargs(cfg), "n_tasks": len(TASKS)},
                         data, cfg.train, profile=profile, progress=progress,
                         key={"data": cfg.data, "n_labelled": n_labelled, "subset_seed": seed},
                         loss_fn=supervised_loss)


@torch.no_grad()
def predict_supervised(result: TrainResult, a: Tensor, b: Tensor, task: str, batch_size: int = 256) -> np.ndarray:
    """The supervised baseline's delta estimates for one task, in the task's units."""
    k = _check_task(task, TASKS)
    net = result.model.eval()
    device = next(net.parameters()).device
    preds = [net(a[i:i + batch_size].to(device), b[i:i + batch_size].to(device))[:, k].cpu()
             for i in range(0, len(a), batch_size)]
    return (torch.cat(preds) * DELTA_SCALE[task]).numpy()


__all__ = ["SimCLRNet", "SupervisedPairNet", "embedder", "predict_supervised", "simclr_loss", "supervised_loss",
           "train_simclr", "train_supervised"]
