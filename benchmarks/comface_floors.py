"""ComFace's quality floors (issue 18) for one seed, without the baselines: a quick check of a
configuration before the claims run trains SimCLR and the supervised baseline too.

    python benchmarks/comface_floors.py [--profile cpu] [--seed 0] [--intra-weight W]

Trains (or loads) ComFace, printing the training wall time, then the figures ``run_seed`` names
``comface/<task>/n<labelled>/{mae,spearman}`` and ``comface/verify/{auc,auc_age,auc_expression}``,
on held-out persons of the config's test world, beside the floors: expression-change Spearman
>= 0.70 with 300 labelled pairs and verification ROC-AUC >= 0.95.
"""

from __future__ import annotations

import argparse
import time

from facekit.methods import comface

FLOORS = {"comface/expression/n300/spearman": 0.70, "comface/verify/auc": 0.95}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--intra-weight", type=float, default=None,
                    help="try another intra-loss weight (default: the profile's); its model is cached apart")
    args = ap.parse_args()
    cfg = comface.profile_config(args.profile, args.seed)
    if args.intra_weight is not None:
        cfg.intra_weight = args.intra_weight
    t0 = time.time()
    result = comface.train(args.profile, args.seed, cfg, progress=False)
    how = "loaded" if getattr(result, "loaded", False) else "trained"
    print(f"ComFace {how} in {time.time() - t0:.0f} s (pool rendering included when not cached)", flush=True)
    model = comface.ComFace(result.model, cfg, args.profile, args.seed)
    fr = cfg.data.framing
    out: dict[str, float] = {}
    for task in comface.TASKS:
        sets = comface.transfer_sets(cfg, task)
        lab, ev = sets["labelled"], sets["eval"]
        f_lab = model.pair_features(comface.images(lab, "a"), comface.images(lab, "b"), fr).numpy()
        f_ev = model.pair_features(comface.images(ev, "a"), comface.images(ev, "b"), fr).numpy()
        y_lab, y_ev = comface.task_deltas(lab, task), comface.task_deltas(ev, task)
        for n in cfg.data.n_labelled:
            idx = comface.labelled_subset(len(y_lab), n, args.seed).numpy()
            for k, v in comface.evaluate_head(f_lab[idx], y_lab[idx], f_ev, y_ev, task).items():
                out[f"comface/{task}/n{n}/{k}"] = v
    for k, v in comface.verification_auc(model.identity_embedder(fr), comface.verification_pairs(cfg)).items():
        out[f"comface/verify/{k}"] = v
    print(f"world {cfg.data.world!r} (training), {cfg.data.test_world!r} (test), {cfg.data.framing} framing, "
          f"{cfg.data.size} px; profile {args.profile}, seed {args.seed}, intra_weight {cfg.intra_weight:g}")
    for k, v in out.items():
        floor = f"  (floor {FLOORS[k]}: {'met' if v >= FLOORS[k] else 'MISSED'})" if k in FLOORS else ""
        print(f"{k} {v:.4f}{floor}")
    print(f"total wall time {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
