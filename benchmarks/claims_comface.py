"""ComFace claims C1 and C2 (``python benchmarks/claims.py --method comface``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from claims import fmt, seed_metric

from facekit import metrics, records


def claims(profile: str, seeds: Sequence[int], per: dict[str, list[float]]) -> tuple[str, list[records.Metric]]:
    """C1 (300 labelled pairs: ComFace MAE below SimCLR and PCA on all three tasks) and C2
    (inter-head verification ROC-AUC >= 0.95 on held-out identities), plus the transfer table."""
    from facekit.methods import comface

    cfg = comface.profile_config(profile)
    n_mid = sorted(cfg.data.n_labelled)[len(cfg.data.n_labelled) // 2]
    test = comface.world_of(cfg.data, "test")
    setting = {"train_world": cfg.data.world, "test_world": test.name, "backend": test.resolved_backend(),
               "style": test.style, "framing": cfg.data.framing, "size": cfg.data.size}
    recs = [seed_metric(k, v, seeds, **setting) for k, v in per.items()]
    lines = [f"### Claims ({profile} profile, seeds {list(seeds)}; mean [95% t interval] over seeds)", "",
             f"Setting: trained on the {cfg.data.world!r} world, measured on unseen persons of the {test.name!r} world "
             f"({setting['backend']} backend, {test.style} style, {cfg.data.framing} framing, {cfg.data.size} px).", "",
             "| claim | comparison | ComFace | baseline | difference | every seed | holds |", "|---|---|---|---|---|---|---|"]
    c1 = []
    for task in comface.TASKS:
        ours = per[f"comface/{task}/n{n_mid}/mae"]
        for base in ("simclr", "pca"):
            theirs = per[f"{base}/{task}/n{n_mid}/mae"]
            d = metrics.paired_difference(ours, theirs, higher_is_better=False)
            c1.append(d.holds)
            recs.append(records.Metric(f"C1/{task}/comface_minus_{base}/mae", d.mean, ci=(d.low, d.high), n=d.n,
                                       seeds=tuple(seeds), values=tuple(np.subtract(ours, theirs)), ci_method="t",
                                       extra={"every_seed": d.every_seed, "holds": d.holds}))
            lines.append(f"| C1 | {task} MAE ({comface.FACTOR_UNITS[task]}), n={n_mid}: ComFace < {base} | {fmt(ours)} | "
                         f"{fmt(theirs)} | {fmt(list(np.subtract(ours, theirs)))} | {d.every_seed} | {d.holds} |")
    auc = per["comface/verify/auc"]
    d2 = metrics.paired_difference(auc, [0.95] * len(auc), higher_is_better=True)
    lines.append(f"| C2 | verification ROC-AUC >= 0.95 (age +30 y and strong expression, held-out {test.style}-style persons) "
                 f"| {fmt(auc)} | 0.95 | {fmt(list(np.subtract(auc, 0.95)))} | {d2.every_seed} | {d2.holds} |")
    recs.append(records.Metric("C1/holds", float(all(c1)), extra={"parts": len(c1), "parts_holding": sum(c1)}))
    recs.append(records.Metric("C2/holds", float(d2.holds), extra={"every_seed": d2.every_seed, "ci": [d2.low, d2.high]}))
    lines += ["", f"C1 holds: **{all(c1)}** ({sum(c1)}/{len(c1)} comparisons). C2 holds: **{d2.holds}**.", "",
              f"### Transfer ({test.name} world, {test.style} style, unseen persons; MAE in task units, Spearman rho)", "",
              "| method | task | labelled pairs | MAE | Spearman |", "|---|---|---|---|---|"]
    for method in ("comface", "simclr", "pca", "supervised"):
        for task in comface.TASKS:
            for n in cfg.data.n_labelled:
                key = f"{method}/{task}/n{n}"
                if f"{key}/mae" in per:
                    lines.append(f"| {method} | {task} | {n} | {fmt(per[key + '/mae'])} | {fmt(per[key + '/spearman'])} |")
    lines += ["", "| embedding | verification AUC (all) | age +30 y | strong expression |", "|---|---|---|---|"]
    for method in ("comface", "simclr"):
        lines.append(f"| {method} | {fmt(per[f'{method}/verify/auc'])} | {fmt(per[f'{method}/verify/auc_age'])} | "
                     f"{fmt(per[f'{method}/verify/auc_expression'])} |")
    return "\n".join(lines), recs
