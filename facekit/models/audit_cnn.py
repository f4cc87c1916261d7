"""The learnability audit's CNN: one fixed, plain network that measures what a world lets a model see.

A method that fails on a world may have a bad objective or a world that hides the signal; this
network separates the two. It is deliberately ordinary, so its scores are a floor on what the
pixels carry (a ceiling for nothing cleverer than it), and it never changes between worlds:

* four 3x3 convolutions, widths 32-64-96-128, each with BatchNorm, ReLU and 2x2 max pooling
  (64 px in, 4 x 4 x 128 out), flattened to 2,048 features that keep *where* each one is: an AU
  is a change at a place (brow, lid, mouth corner), and global average pooling threw that away
  (stride-2 convolutions in place of the pooling cost 2.5 times less per step but learned less);
  the measurements behind both choices are in ``benchmarks/RESULTS.md`` (world audit);
* heads: 17 AU logits (multi-label, trace AUs masked out of the loss), 8 emotion logits,
  a 64-d identity embedding (unit length, trained by a cosine softmax over the training
  persons, so unseen persons are compared by cosine similarity), age and BMI regression.

All heads train together on one pool of faces (random-AU faces and emotion prototypes mixed,
see ``facekit.synth.worlds``), with AdamW and a one-cycle learning-rate schedule. The losses are
weighted (:data:`LOSS_WEIGHTS`) so that the identity softmax over hundreds of persons does not
drown the AU term (with equal weights the AU ROC-AUC fell well below that of the AU loss alone).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from facekit.synth.params import EMOTIONS, N_AUS

WIDTHS = (32, 64, 96, 128)
EMBED_DIM = 64
SPATIAL = 4  # feature map side after four 2x2 poolings of a 64 px face
# Standardisation of the regression targets: age uniform in [18, 80], BMI around 22.5.
AGE_MEAN, AGE_SD = 49.0, 18.0
BMI_MEAN, BMI_SD = 22.5, 4.0
LOSS_WEIGHTS = {"au": 3.0, "emotion": 1.0, "identity": 0.5, "age": 0.5, "bmi": 0.5}


class AuditCNN(nn.Module):
    """``N x 3 x H x W`` images in [0, 1] -> a dict of head outputs (see the module docstring)."""

    def __init__(self, n_persons: int, embed_dim: int = EMBED_DIM) -> None:
        super().__init__()
        if n_persons < 2:
            raise ValueError(f"n_persons={n_persons} is not valid; the identity head needs at least 2 persons")
        layers: list[nn.Module] = []
        c = 3
        for w in WIDTHS:
            layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2)]
            c = w
        # a 4 x 4 map at 64 px; other sizes are pooled (or repeated) onto the same grid
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(SPATIAL), nn.Flatten())
        c *= SPATIAL * SPATIAL
        self.au = nn.Linear(c, N_AUS)
        self.emotion = nn.Linear(c, len(EMOTIONS))
        self.embed = nn.Linear(c, embed_dim)
        self.person = nn.Parameter(torch.randn(n_persons, embed_dim) * 0.1)
        self.regress = nn.Linear(c, 2)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected N x 3 x H x W images, got shape {tuple(x.shape)}")
        h = self.features(x * 2 - 1)
        r = self.regress(h)
        return {"au": self.au(h), "emotion": self.emotion(h), "embedding": F.normalize(self.embed(h), dim=1),
                "age": r[:, 0] * AGE_SD + AGE_MEAN, "bmi": r[:, 1] * BMI_SD + BMI_MEAN}


@dataclasses.dataclass(frozen=True)
class AuditBudget:
    """How long the audit CNN trains: ``steps`` AdamW steps of ``batch`` faces."""

    steps: int = 1500
    batch: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    id_scale: float = 16.0  # temperature of the cosine softmax over training persons
    flip: bool = True  # random horizontal flips (AUs are drawn bilaterally, so labels are kept)


def _images(x: Tensor) -> Tensor:
    return x.float() / 255 if x.dtype == torch.uint8 else x.float()


def losses(model: AuditCNN, out: dict[str, Tensor], batch: dict[str, Tensor], person_index: Tensor,
           id_scale: float) -> dict[str, Tensor]:
    """Per-head losses of one batch (trace AUs and faces without an emotion are left out)."""
    known = batch["au_known"].float()
    au = (F.binary_cross_entropy_with_logits(out["au"], batch["au_occurs"].float(), reduction="none") * known).sum()
    emo = batch["emotion"] >= 0
    emotion = F.cross_entropy(out["emotion"][emo], batch["emotion"][emo]) if bool(emo.any()) else out["au"].sum() * 0
    logits = id_scale * out["embedding"] @ F.normalize(model.person, dim=1).T
    ident = F.cross_entropy(logits, person_index)
    age = F.smooth_l1_loss((out["age"] - AGE_MEAN) / AGE_SD, (batch["age"] - AGE_MEAN) / AGE_SD)
    bmi = F.smooth_l1_loss((out["bmi"] - BMI_MEAN) / BMI_SD, (batch["weight"] - BMI_MEAN) / BMI_SD)
    return {"au": au / known.sum().clamp(min=1), "emotion": emotion, "identity": ident, "age": age, "bmi": bmi}


def fit(pool: dict[str, Tensor], budget: AuditBudget, seed: int = 0,
        log: Callable[[str], None] | None = None) -> AuditCNN:
    """Train a fresh :class:`AuditCNN` on a pool (``facekit.synth.worlds.World.pool``)."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    persons, person_index = torch.unique(pool["person"], return_inverse=True)
    model = AuditCNN(len(persons))
    opt = torch.optim.AdamW(model.parameters(), lr=budget.lr, weight_decay=budget.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=budget.lr, total_steps=budget.steps, pct_start=0.1)
    n = len(pool["person"])
    keys = ("au_occurs", "au_known", "emotion", "age", "weight")
    model.train()
    for step in range(budget.steps):
        idx = torch.randint(0, n, (min(budget.batch, n),), generator=gen)
        x = _images(pool["image"][idx])
        if budget.flip:
            flip = torch.rand(len(idx), generator=gen) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        batch = {k: pool[k][idx] for k in keys}
        parts = losses(model, model(x), batch, person_index[idx], budget.id_scale)
        loss = sum(LOSS_WEIGHTS[k] * v for k, v in parts.items())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if log is not None and (step + 1) % max(1, budget.steps // 5) == 0:
            log(f"step {step + 1}/{budget.steps}: " + ", ".join(f"{k} {v.item():.3f}" for k, v in parts.items()))
    return model.eval()


@torch.no_grad()
def predict(model: AuditCNN, images: Tensor, batch: int = 256) -> dict[str, np.ndarray]:
    """Head outputs (AU probabilities, emotion logits, embeddings, age, BMI) as numpy arrays."""
    model.eval()
    parts = [model(_images(images[i:i + batch])) for i in range(0, len(images), batch)]
    out = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    out["au"] = torch.sigmoid(out["au"])
    return {k: v.numpy() for k, v in out.items()}
