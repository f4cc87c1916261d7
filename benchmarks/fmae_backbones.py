"""Which backbone can see Action Units at the ``cpu`` budget? (issue 5's investigation)

    python benchmarks/fmae_backbones.py [--seed 0] [--profile cpu] [--steps N --lr LR] [--iat SCALE]

Fold 0 of the seed's BP4D-like AU world, the fine-tuning budget of the profile (steps, batch,
learning rate, flips, BCE; no identity head), three backbones: the ViT from scratch, the ViT
from the seed's MAE (both the cached ``scratch`` / ``mae`` variants of the claims run), and
facekit's ConvEncoder. Prints mean ROC-AUC and mean F1 at 0.5 on fold 0's unseen test subjects.
``--steps`` / ``--lr`` change the budget for all three (warm-up: 5% of the steps, at least 25);
``--iat SCALE`` adds the MAE ViT with IAT (linear identity head) at that reversal scale.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from facekit import metrics
from facekit.methods import fmae_iat
from facekit.methods.fmae_iat.data import au_set, fold_split
from facekit.models import ConvEncoder
from facekit.models.heads import AUHead
from facekit.train import fit


class ConvAUNet(nn.Module):
    """ConvEncoder -> AU logits, with AUNet's interface (so ``iat_loss`` trains it unchanged)."""

    def __init__(self, n_aus: int, dim: int = 128) -> None:
        super().__init__()
        self.encoder = ConvEncoder(dim=dim)
        self.au_head = AUHead(dim, n_aus)

    def forward(self, images: Tensor, reversal: float = 0.0) -> dict[str, Tensor]:
        h = self.encoder(images)
        return {"features": h, "au": self.au_head(h)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--steps", type=int, default=None, help="fine-tuning steps (default: the profile's)")
    ap.add_argument("--lr", type=float, default=None, help="learning rate (default: the profile's)")
    ap.add_argument("--iat", type=float, default=None, help="also the MAE ViT with IAT at this reversal scale")
    args = ap.parse_args()
    cfg = fmae_iat.profile_config(args.profile, args.seed)
    if args.steps is not None or args.lr is not None:
        steps = args.steps or cfg.finetune.train.steps
        cfg.finetune.train = replace(cfg.finetune.train, steps=steps, lr=args.lr or cfg.finetune.train.lr,
                                     warmup_steps=max(25, steps // 20))
    train, test = fold_split(au_set(cfg.data, args.seed)["train"], 0)
    y = test["label"].numpy()

    def score(proba: np.ndarray) -> str:
        return f"ROC-AUC {metrics.multilabel_auc(y, proba):.3f}, F1 at 0.5 {metrics.multilabel_f1(y, proba):.3f}"

    print(f"profile {args.profile}, seed {args.seed}: {len(train['image'])} training images of 40 subjects, "
          f"{len(y)} test images; fine-tuning {cfg.finetune.train.steps} steps x {cfg.finetune.train.batch_size}")
    print(f"always present: F1 at 0.5 {metrics.multilabel_f1(y, np.ones_like(y, dtype=float)):.3f}")
    vits = {"scratch": fmae_iat.variants("scratch", 0.0, 0), "mae": fmae_iat.variants("mae", 0.0, 0)}
    if args.iat is not None:
        vits[f"mae+IAT {args.iat:g}"] = fmae_iat.variants("iat_linear", args.iat, 0)
    for name, variant in vits.items():
        t0 = time.time()
        det = fmae_iat.AUDetector(fmae_iat.finetune(args.profile, args.seed, variant, cfg, progress=False).model)
        print(f"ViT {name:12s}: {score(det.predict_proba(test['image'].float() / 255, framing='face'))} "
              f"({time.time() - t0:.0f} s)")
    t0 = time.time()
    torch.manual_seed(args.seed)
    net = ConvAUNet(len(cfg.data.aus))

    def batch(step: int) -> dict[str, Any]:
        idx = torch.randint(0, len(train["image"]), (cfg.finetune.train.batch_size,))
        return {k: train[k][idx] for k in ("image", "label", "subject")}

    fit(net, batch, cfg.finetune.train, loss_fn=lambda m, b: fmae_iat.iat_loss(m, b, 0.0, 1), progress=False)
    net.eval()
    with torch.no_grad():
        proba = torch.sigmoid(net(test["image"].float() / 255)["au"]).numpy()
    print(f"ConvEncoder     : {score(proba)} ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
