"""Which backbone can see Action Units at the ``cpu`` budget? (issues 5 and 18)

    python benchmarks/fmae_backbones.py [--seed 0] [--profile cpu] [--steps N --lr LR]
        [--pretrain-steps N] [--backbones NAME,...] [--iat SCALE]

Fold 0 of the seed's BP4D-like AU set (the training world, see ``facekit.methods.fmae_iat.data``),
the fine-tuning budget of the profile (steps, batch, learning rate, flips, BCE over known labels;
no identity head) for every backbone, on the same images. Prints mean ROC-AUC and mean F1 at 0.5
on fold 0's unseen test subjects (trace AUs left out), and each backbone's wall time.

Backbones (``--backbones``, comma-separated; default :data:`DEFAULT`):

* ``conv``: facekit's ConvEncoder (the baseline; same data, loop and budget).
* ``vit-<tokens>[+mae][+unmasked][+grid][+lrd]``: the profile's ViT (width, depth, heads) with
  ``<tokens>`` = ``patch8`` or ``patch4`` (ViT's linear patch projection: 64 or 256 tokens at
  64 px) or ``stem`` (Xiao et al.'s convolutional stem, 64 tokens); ``+mae`` from its own MAE
  (the profile's stream and pretraining budget), else from scratch; ``+unmasked`` an MAE whose
  stem sees the whole image (hidden patches included) instead of grey; ``+grid`` the 4 x 4 token
  grid readout, else the mean of the tokens; ``+lrd`` layer-wise learning-rate decay (the
  profile's ``layer_decay``, or 0.75 where it has none; MAE-initialised only).

``--steps`` / ``--lr`` change the fine-tuning budget for all (warm-up: 5% of the steps, at least
25); ``--pretrain-steps`` the MAE's. ``--iat SCALE`` adds the profile's MAE detector with IAT (linear
identity head) at that reversal scale, with the profile's own backbone and readout. ViT models go through ``fmae_iat.finetune``, so they are
cached like the claims' models (a cached one reports the time to load it).
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
from facekit.methods.fmae_iat.config import FMAEConfig
from facekit.methods.fmae_iat.data import au_set, fold_split
from facekit.models import ConvEncoder
from facekit.models.heads import AUHead
from facekit.train import fit

TOKENS = ("patch8", "patch4", "stem")
FLAGS = ("mae", "unmasked", "grid", "lrd")
DEFAULT = ("conv", "vit-patch8", "vit-stem", "vit-stem+grid", "vit-stem+mae+grid", "vit-stem+mae+grid+lrd")


class ConvAUNet(nn.Module):
    """ConvEncoder -> AU logits, with AUNet's interface (so ``iat_loss`` trains it unchanged)."""

    def __init__(self, n_aus: int, dim: int = 128) -> None:
        super().__init__()
        self.encoder = ConvEncoder(dim=dim)
        self.au_head = AUHead(dim, n_aus)

    def forward(self, images: Tensor, reversal: float = 0.0) -> dict[str, Tensor]:
        h = self.encoder(images)
        return {"features": h, "au": self.au_head(h)}


def vit_config(cfg: FMAEConfig, name: str) -> tuple[FMAEConfig, fmae_iat.Variant]:
    """The config and variant that train backbone ``name`` (a ViT one) through ``fmae_iat.finetune``."""
    parts = name.split("+")
    tokens, flags = parts[0].removeprefix("vit-"), set(parts[1:])
    if not parts[0].startswith("vit-") or tokens not in TOKENS or not flags <= set(FLAGS) or len(flags) < len(parts) - 1:
        raise ValueError(f"backbone {name!r} is not valid; pass 'conv' or vit-<{'|'.join(TOKENS)}>"
                         f"[+{']['.join(FLAGS)}]")
    if "lrd" in flags and "mae" not in flags:
        raise ValueError(f"backbone {name!r} is not valid; layer-wise lr decay ('+lrd') needs '+mae'")
    if "unmasked" in flags and ("mae" not in flags or tokens != "stem"):
        raise ValueError(f"backbone {name!r} is not valid; '+unmasked' needs 'vit-stem' and '+mae'")
    vit = replace(cfg.vit, stem="conv" if tokens == "stem" else "patch", patch=4 if tokens == "patch4" else 8,
                  stem_masking="unmasked" not in flags)
    ft = replace(cfg.finetune, readout="grid" if "grid" in flags else "mean",
                 layer_decay=(cfg.finetune.layer_decay or 0.75) if "lrd" in flags else None)
    return replace(cfg, vit=vit, finetune=ft), fmae_iat.variants("mae" if "mae" in flags else "scratch", 0.0, 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--steps", type=int, default=None, help="fine-tuning steps (default: the profile's)")
    ap.add_argument("--lr", type=float, default=None, help="learning rate (default: the profile's)")
    ap.add_argument("--pretrain-steps", type=int, default=None, help="MAE steps (default: the profile's)")
    ap.add_argument("--backbones", default=",".join(DEFAULT), help="comma-separated (see above)")
    ap.add_argument("--iat", type=float, default=None, help="also vit-stem+mae with IAT at this reversal scale")
    args = ap.parse_args()
    names = [b for b in args.backbones.split(",") if b]
    cfg = fmae_iat.profile_config(args.profile, args.seed)
    for n in names:
        if n != "conv":
            try:
                vit_config(cfg, n)
            except ValueError as err:
                ap.error(str(err))
    if args.steps is not None or args.lr is not None:
        steps = args.steps or cfg.finetune.train.steps
        cfg.finetune.train = replace(cfg.finetune.train, steps=steps, lr=args.lr or cfg.finetune.train.lr,
                                     warmup_steps=max(25, steps // 20))
    if args.pretrain_steps is not None:
        cfg.pretrain = replace(cfg.pretrain, steps=args.pretrain_steps,
                               warmup_steps=min(cfg.pretrain.warmup_steps, args.pretrain_steps // 10))
    train, test = fold_split(au_set(cfg.data, args.seed)["train"], 0)
    y, known = test["label"].numpy(), test["known"].numpy()

    def score(proba: np.ndarray) -> str:
        return (f"ROC-AUC {metrics.multilabel_auc(y, proba, known=known):.3f}, "
                f"F1 at 0.5 {metrics.multilabel_f1(y, proba, known=known):.3f}")

    ft = cfg.finetune.train
    print(f"profile {args.profile}, seed {args.seed}: {len(train['image'])} training images of "
          f"{len(torch.unique(train['subject']))} subjects, {len(y)} test images; fine-tuning {ft.steps} steps x "
          f"{ft.batch_size}, lr {ft.lr:g}; MAE {cfg.pretrain.steps} steps x {cfg.pretrain.batch_size} on "
          f"{cfg.stream.pool or 'a stream of'} faces; {torch.get_num_threads()} thread(s)")
    print(f"always present          : F1 at 0.5 {metrics.multilabel_f1(y, np.ones_like(y, dtype=float), known=known):.3f}")
    runs: list[tuple[str, FMAEConfig, fmae_iat.Variant]] = [(n, *vit_config(cfg, n)) for n in names if n != "conv"]
    if args.iat is not None:
        runs.append((f"the profile's MAE + IAT {args.iat:g}", cfg, fmae_iat.variants("iat_linear", args.iat, 0)))
    if "conv" in names:
        t0 = time.time()
        torch.manual_seed(args.seed)
        net = ConvAUNet(len(cfg.data.aus))

        def batch(step: int) -> dict[str, Any]:
            idx = torch.randint(0, len(train["image"]), (ft.batch_size,))
            return {k: train[k][idx] for k in ("image", "label", "known", "subject")}

        fit(net, batch, ft, loss_fn=lambda m, b: fmae_iat.iat_loss(m, b, 0.0, 1), progress=False)
        net.eval()
        with torch.no_grad():
            proba = torch.sigmoid(net(test["image"].float() / 255)["au"]).numpy()
        print(f"{'conv (ConvEncoder)':24s}: {score(proba)} ({time.time() - t0:.0f} s)", flush=True)
    for name, c, variant in runs:
        t0 = time.time()
        if variant.init == "mae":
            mae = fmae_iat.pretrain(args.profile, args.seed, c, progress=False)
            print(f"{'':24s}  MAE {'loaded' if mae.loaded else 'trained'} ({time.time() - t0:.0f} s), final loss "
                  f"{mae.history[-1]['loss']:.3f}", flush=True)
            t0 = time.time()
        det = fmae_iat.AUDetector(fmae_iat.finetune(args.profile, args.seed, variant, c, progress=False).model)
        print(f"{name:24s}: {score(det.predict_proba(test['image'].float() / 255, framing='face'))} "
              f"({time.time() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
