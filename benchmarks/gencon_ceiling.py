"""How much can a reference face help at all, on this world? The reference-contrast classifier
with G replaced by the *true* neutral face (the renderer's, same pose, light and camera), against
the single-image baseline and the shipped network.

    python benchmarks/gencon_ceiling.py [--profile cpu] [--seed 0]

Claims G1/G2 (a reference beats a single image, most of all for faint expressions) need two
things: a world where a person's resting face hides faint expressions, and a generator that
recovers that face. The true-neutral contrast separates them. It trains the same encoder and
classifier on ``E(x) - E(true neutral)`` with the single-image baseline's data, lr and step
budget, and scores it on the same held-out persons. If it does not beat the single image, the
world gives a reference nothing to add, whatever G does; if it does, G is the bottleneck.
Prints a Markdown table (test accuracy, all and per intensity bin).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from facekit.methods import gencon
from facekit.methods.common import PoolSampler
from facekit.methods.gencon.evaluate import classification_scores, single_proba
from facekit.methods.gencon.model import GenConNet
from facekit.methods.gencon.train import _images, stage_keys
from facekit.train import train_or_load


def true_neutral_loss(model: nn.Module, batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """Cross-entropy on ``E(x) - E(n)``, n the true neutral (flipped together with x)."""
    x, neutral = _images(batch)
    ce = F.cross_entropy(model.classifier(model.contrast(x, neutral)), batch["emotion"])
    return {"loss": ce, "ce": ce.detach()}


@torch.no_grad()
def true_neutral_proba(net: GenConNet, x: Tensor, neutral: Tensor, batch_size: int = 256) -> np.ndarray:
    net.eval()
    return np.concatenate([F.softmax(net.classifier(net.contrast(x[i:i + batch_size], neutral[i:i + batch_size])), 1)
                           .numpy() for i in range(0, len(x), batch_size)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t0 = time.time()
    cfg = gencon.profile_config(args.profile, args.seed)
    tc = cfg.single_train()  # the baseline's budget, data and lr
    ceiling = train_or_load("gencon-true-neutral", GenConNet, cfg.model,
                            PoolSampler(lambda: gencon.expression_set(cfg, "train"), tc.batch_size), tc,
                            loss_fn=true_neutral_loss, profile=args.profile,
                            key={**stage_keys(cfg)["single"], "reference": "true neutral"}, progress=False).model
    single = gencon.train_single(args.profile, args.seed, cfg, progress=False).model
    model = gencon.load(args.profile, args.seed)
    test = gencon.expression_set(cfg, "test")
    x, n = test["image"].float() / 255, test["neutral"].float() / 255
    rows = {"true-neutral contrast E(x) - E(n)": true_neutral_proba(ceiling, x, n),
            "single image E(x)": single_proba(single, x),
            "shipped reference contrast E(x) - E(G(x))": model.predict_proba(x)}
    print(f"profile {args.profile}, seed {args.seed}, held-out test persons ({len(x)} faces); "
          f"{tc.steps} steps of {tc.batch_size} at lr {tc.lr:g} for the first two rows; {time.time() - t0:.0f} s\n")
    print("| classifier | accuracy | low | medium | high |\n|---|---|---|---|---|")
    for name, proba in rows.items():
        s = classification_scores(proba, test)
        print(f"| {name} | {s['acc']:.3f} | {s['acc_low']:.3f} | {s['acc_medium']:.3f} | {s['acc_high']:.3f} |")


if __name__ == "__main__":
    main()
