"""FMAE-IAT claims F1-F4 (``python benchmarks/claims.py --method fmae_iat``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from claims import fmt, judged, seed_metric

from facekit import metrics, records


def _row(claim: str, what: str, ours: list[float], theirs: list[float], d: metrics.PairedDifference) -> str:
    return (f"| {claim} | {what} | {fmt(ours)} | {fmt(theirs)} | {fmt(list(np.subtract(ours, theirs)))} | "
            f"{d.every_seed} | {d.holds} |")


def claims(profile: str, seeds: Sequence[int], per: dict[str, list[float]]) -> tuple[str, list[records.Metric]]:
    """F1 (MAE beats scratch), F2 (IAT beats no IAT), F3 (IAT removes at least half of the
    identity probe's distance to chance), F4 (linear identity head at least as good as MLP),
    plus the per-AU table and the chosen reversal scales."""
    from facekit.methods import fmae_iat

    recs = [seed_metric(k, v, seeds) for k, v in per.items()]
    f1 = {name: per[f"{name}/f1"] for name in fmae_iat.VARIANT_NAMES}
    probe = {name: per[f"{name}/probe"] for name in fmae_iat.VARIANT_NAMES}
    chance = per["probe/chance"]
    lines = [f"### Claims ({profile} profile, seeds {list(seeds)}; mean [95% t interval] over seeds)", "",
             "Mean F1 over 12 AUs at threshold 0.5 on unseen test subjects (3-fold subject-independent, folds pooled).", "",
             "| claim | comparison | ours | baseline | difference | every seed | holds |", "|---|---|---|---|---|---|---|"]
    holds = {}

    def claim(name: str, what: str, ours: list[float], theirs: list[float], d: metrics.PairedDifference,
              extra: dict[str, object] | None = None) -> None:
        holds[name] = d.holds
        lines.append(_row(name, what, ours, theirs, d))
        if not np.all(np.isfinite(np.subtract(ours, theirs))):
            return  # records hold finite numbers only; the table shows nan and the claim does not hold
        recs.append(records.Metric(f"{name}/difference", d.mean, ci=(d.low, d.high), n=d.n, seeds=tuple(seeds),
                                   values=tuple(np.subtract(ours, theirs)), ci_method="t",
                                   extra={"every_seed": d.every_seed, "holds": d.holds, **(extra or {})}))

    for c, ours, theirs, d in judged("fmae_iat", per):
        claim(c.id, c.statement, ours, theirs, d, {"margin": abs(c.margin)} if c.margin else None)
    strict4 = metrics.paired_difference(f1["iat_linear"], f1["iat_mlp"])
    for name, ok in holds.items():
        recs.append(records.Metric(f"{name}/holds", float(ok)))
    lines += ["", "Holds: " + ", ".join(f"{k} **{v}**" for k, v in holds.items()) + ". "
              f"F4 read strictly (linear beats MLP): {strict4.holds}. F3's row shows the share of the probe's distance "
              "to chance that IAT removed, per seed, against 0.5.", "",
              "### Mean F1 and identity probe", "",
              "| variant | F1 at 0.5 | F1 at best threshold (OPTIMISTIC: chosen on test labels) | identity probe accuracy "
              "| mean ROC-AUC | final training AU loss (fold 0) |", "|---|---|---|---|---|---|"]
    for name in fmae_iat.VARIANT_NAMES:
        lines.append(f"| {name} | {fmt(f1[name])} | {fmt(per[f'{name}/f1_optimistic'])} | {fmt(probe[name])} | "
                     f"{fmt(per[f'{name}/auc'])} | {fmt(per[f'{name}/train_au_bce'])} |")
    lines.append(f"| reference: every AU always present | {fmt(per['all_positive/f1'])} | | | 0.5 | |")
    lines.append(f"| reference: chance / each AU's base rate | | | {fmt(chance)} | 0.5 | {fmt(per['base_rate/train_au_bce'])} |")
    lines += ["", "Sanity check: a training AU loss near the base-rate loss means the detector has learned little "
              "from the images, and an F1 at 0.5 near the always-present reference means its gains come from "
              "predicting more positives, not from seeing the AUs; the ROC-AUC (0.5 for a detector blind to the face) "
              "does not depend on the threshold."]
    aus = fmae_iat.profile_config(profile).data.aus
    lines += ["", "### Per-AU F1 at 0.5", "", "| AU | " + " | ".join(fmae_iat.VARIANT_NAMES) + " |",
              "|---|" + "---|" * len(fmae_iat.VARIANT_NAMES)]
    for au in aus:
        cells = [fmt(per[f"{n}/f1/{au}"]) if f"{n}/f1/{au}" in per else "n/a" for n in fmae_iat.VARIANT_NAMES]
        lines.append(f"| {au} | " + " | ".join(cells) + " |")
    scales = ", ".join(f"seed {s}: {x:g}" for s, x in zip(seeds, per["scale"], strict=True))
    lines += ["", f"Reversal scale chosen on validation subjects (linear head): {scales}."]
    return "\n".join(lines), recs
