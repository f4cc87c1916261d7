"""Choose ComFace's intra-loss weight on *validation* persons (never the test persons).

    python benchmarks/comface_loss_weight.py [--weights 1 10] [--seed 0] [--profile cpu]

Trains (or loads) ComFace with each weight and prints the validation MAE of the frozen-feature
ridge head at the middle labelled size, beside SimCLR and PCA on the same validation pairs, and
each model's verification ROC-AUC on validation persons (the loss weight trades identity against
change, so both sides of the trade are read where the choice may be made).
"""

from __future__ import annotations

import argparse
import time

import torch

from facekit.methods import comface
from facekit.methods.comface import evaluate as baselines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=float, nargs="+", default=[1.0, 10.0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--profile", default="cpu")
    args = ap.parse_args()
    t0 = time.time()
    base = comface.profile_config(args.profile, args.seed)
    n = sorted(base.data.n_labelled)[len(base.data.n_labelled) // 2]
    sets = {t: comface.transfer_sets(base, t, split="val") for t in comface.TASKS}
    simclr = baselines.embedder(baselines.train_simclr(args.profile, args.seed, base, progress=False).model)
    feats = {"simclr": lambda a, b: (simclr(b) - simclr(a)).numpy()}
    verify_pairs = comface.verification_pairs(base, split="val")
    verify = {"simclr": baselines.verification_auc(simclr, verify_pairs)["auc"]}
    for w in args.weights:
        cfg = comface.profile_config(args.profile, args.seed)
        cfg.intra_weight = w
        model = comface.ComFace(comface.train(args.profile, args.seed, cfg, progress=False).model, cfg, args.profile, args.seed)
        feats[f"comface w={w:g}"] = lambda a, b, m=model: m.pair_features(a, b, m.framing).numpy()
        verify[f"comface w={w:g}"] = baselines.verification_auc(model.identity_embedder(), verify_pairs)["auc"]
    print(f"validation persons, {n} labelled pairs per task; MAE (task units)")
    print("| features | " + " | ".join(comface.TASKS) + " | verify AUC |\n|---|" + "---|" * (len(comface.TASKS) + 1))
    rows: dict[str, list[float]] = {}
    for task in comface.TASKS:
        lab, ev = sets[task]["labelled"], sets[task]["eval"]
        idx = comface.labelled_subset(len(lab["a"]), n, args.seed)
        y_lab, y_ev = comface.task_deltas(lab, task)[idx.numpy()], comface.task_deltas(ev, task)
        a_lab, b_lab = comface.images(lab, "a", idx), comface.images(lab, "b", idx)
        a_ev, b_ev = comface.images(ev, "a"), comface.images(ev, "b")
        for name, f in feats.items():
            rows.setdefault(name, []).append(comface.evaluate_head(f(a_lab, b_lab), y_lab, f(a_ev, b_ev), y_ev, task)["mae"])
        pca = comface.pca_pair_features(torch.cat([a_lab, b_lab]))
        rows.setdefault("pca", []).append(comface.evaluate_head(pca(a_lab, b_lab), y_lab, pca(a_ev, b_ev), y_ev, task)["mae"])
    for name, maes in rows.items():
        v = f"{verify[name]:.3f}" if name in verify else "-"
        print(f"| {name} | " + " | ".join(f"{m:.3f}" for m in maes) + f" | {v} |")
    print(f"wall time {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
