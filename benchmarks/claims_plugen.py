"""PluGeN4Faces claims P1 and P2 (``python benchmarks/claims.py --method plugen``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from claims import fmt, seed_metric

from facekit import metrics, records


def _diff_metric(name: str, a: Sequence[float], b: Sequence[float], seeds: Sequence[int],
                 higher_is_better: bool) -> tuple[records.Metric, metrics.PairedDifference]:
    d = metrics.paired_difference(a, b, higher_is_better=higher_is_better)
    m = records.Metric(name, d.mean, ci=(d.low, d.high), n=d.n, seeds=tuple(seeds), values=tuple(np.subtract(a, b)),
                       ci_method="t", extra={"every_seed": d.every_seed, "holds": d.holds})
    return m, d


def claims(profile: str, seeds: Sequence[int], per: dict[str, list[float]]) -> tuple[str, list[records.Metric]]:
    """P1 (identity cosine at matched attribute success: PluGeN4Faces above PluGeN and above
    linear directions, held-out persons) and P2 (float64 round trip of the flow within 1e-4
    relative error on held-out codes), plus matched-success, curve and oracle tables."""
    from facekit.methods.plugen import ATTRIBUTE_NAMES, P2_BOUND
    from facekit.methods.plugen.evaluate import AMOUNTS
    from facekit.methods.plugen.viz import METHOD_LABELS

    recs = [seed_metric(k, v, seeds) for k, v in per.items()]
    ours = "plugen4faces"
    lines = [f"### Claims ({profile} profile, seeds {list(seeds)}; mean [95% t interval] over seeds)", "",
             "| claim | comparison | PluGeN4Faces | baseline | difference | every seed | holds |",
             "|---|---|---|---|---|---|---|"]
    p1 = []
    for base in ("plugen", "linear"):
        for key, hib, what in (("id_cos", True, "identity cosine (higher is better)"),
                               ("code_dist", False, "identity-code error (lower is better)")):
            a, b = per[f"P1/{ours}/{key}"], per[f"P1/{base}/{key}"]
            m, d = _diff_metric(f"P1/{ours}_minus_{base}/{key}", a, b, seeds, hib)
            recs.append(m)
            if key == "id_cos":
                p1.append(d.holds)
            tag = "P1" if key == "id_cos" else "P1 (supporting)"
            lines.append(f"| {tag} | {what} at matched attribute success, mean of 7 attributes: PluGeN4Faces vs "
                         f"{METHOD_LABELS[base]} | {fmt(a)} | {fmt(b)} | {fmt(list(np.subtract(a, b)))} | "
                         f"{d.every_seed} | {d.holds} |")
    inv = per[f"P2/{ours}/f64/max"]
    m2, d2 = _diff_metric("P2/max_rel_error_minus_bound", inv, [P2_BOUND] * len(inv), seeds, False)
    recs.append(m2)
    lines.append(f"| P2 | float64 round trip f^-1(f(z)), max relative error over {len(seeds)} x held-out test codes "
                 f"< {P2_BOUND:g} | {fmt(inv)} | {P2_BOUND:g} | {fmt(list(np.subtract(inv, P2_BOUND)))} | "
                 f"{d2.every_seed} | {d2.holds} |")
    recs.append(records.Metric("P1/holds", float(all(p1)), extra={"parts": len(p1), "parts_holding": sum(p1)}))
    recs.append(records.Metric("P2/holds", float(d2.holds), extra={"every_seed": d2.every_seed}))
    lines += ["", f"P1 holds: **{all(p1)}** ({sum(p1)}/{len(p1)} comparisons on the identity cosine). "
              f"P2 holds: **{d2.holds}**.", "",
              "P2 in float32 (the precision the editor runs in), max relative error: "
              + ", ".join(f"{m} {fmt(per[f'P2/{m}/f32/max'])}" for m in ("plugen4faces", "plugen")) + "; float64: "
              + ", ".join(f"{m} {fmt(per[f'P2/{m}/f64/max'])}" for m in ("plugen4faces", "plugen")) + ".", "",
              "### Matched attribute success, per attribute (s*: the success every method reaches; identity "
              "cosine there)", "",
              "| attribute | s* | PluGeN4Faces | PluGeN | linear |", "|---|---|---|---|---|"]
    for attr in ATTRIBUTE_NAMES:
        cells = [fmt(per[f"matched/{m}/{attr}/id_cos"]) for m in ("plugen4faces", "plugen", "linear")]
        lines.append(f"| {attr} | {fmt(per[f'matched/{attr}/s_star'])} | " + " | ".join(cells) + " |")
    lines += ["", "### Curves: edit strength vs success and identity (mean over attributes, then over seeds)", "",
              "| method | strength | attribute success | identity cosine | identity-code error |", "|---|---|---|---|---|"]
    for method in ("plugen4faces", "plugen", "linear"):
        for amount in (0.0, *AMOUNTS):  # 0: the unedited reconstruction
            cells = []
            for c in ("success", "id_cos", "code_dist"):
                per_attr = [per[k] for a in ATTRIBUTE_NAMES if (k := f"curve/{method}/{a}/{amount:g}/{c}") in per]
                cells.append(fmt(list(np.mean(per_attr, axis=0))))
            lines.append(f"| {method} | {amount:g} | " + " | ".join(cells) + " |")
    lines += ["", "| method | PSNR outside the edited region (dB) | SSIM outside |", "|---|---|---|"]
    for method in ("plugen4faces", "plugen", "linear"):
        lines.append(f"| {method} | {fmt(per[f'outside/{method}/psnr'])} | {fmt(per[f'outside/{method}/ssim'])} |")
    lines += ["", "(local attributes smile, mouth open, eyes closed and glasses at full strength, against the "
              "unedited reconstruction)", "",
              "### The scoring oracle and the latent space (held-out test persons)", "",
              f"- oracle verification ROC-AUC (two renders per person, different attributes and scene): "
              f"{fmt(per['oracle/verify_auc'])}; identity-code R^2 {fmt(per['oracle/code_r2'])}",
              "- oracle attribute-level MAE (levels in [0, 1]): "
              + ", ".join(f"{a} {fmt(per[f'oracle/mae/{a}'])}" for a in ATTRIBUTE_NAMES),
              f"- autoencoder reconstruction: PSNR {fmt(per['ae/psnr'])} dB, SSIM {fmt(per['ae/ssim'])}"]
    return "\n".join(lines), recs
