"""SynFER claims S1-S4 (``python benchmarks/claims.py --method synfer``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from claims import fmt, judged, seed_metric

from facekit import records

ROWS = {
    "down/a_labelled": "(a) small labelled set only, from scratch",
    "down/b_moco": "(b) MoCo v3 on 5x synthetic, then fine-tuned on the labelled set",
    "down/c_1x": "(c) synthetic only, 1x",
    "down/c_5x": "(c) synthetic only, 5x",
    "down/d_1x": "(d) synthetic only, 1x, calibrated",
    "down/d_5x": "(d) synthetic only, 5x, calibrated",
}


def claims(profile: str, seeds: Sequence[int], per: dict[str, list[float]]) -> tuple[str, list[records.Metric]]:
    """S1-S4 with paired 95% intervals over seeds, plus the generation-quality, guidance,
    calibration and downstream tables."""
    from facekit.methods import synfer

    au_source = synfer.au_detector(profile)[1]
    cfg = synfer.profile_config(profile)
    extra = {"au_labels": au_source, "fd_space": synfer.FD_SPACE,
             "generator": "one generator (seed 0) for every seed" if cfg.generator.seed is not None else "one per seed"}
    recs = [seed_metric(k, v, seeds, **extra) for k, v in per.items()]
    n1 = synfer.N_CLASSES * cfg.data.n_labelled
    lines = [f"### Claims ({profile} profile, seeds {list(seeds)}; mean [95% t interval] over seeds)", "",
             f"Setting: target-style faces of unseen persons; labelled set {cfg.data.n_labelled} per class "
             f"({n1} images, 8 classes); 1x = {n1} synthetic images, 5x = {n1 * cfg.sample.scale_5x}; test set "
             f"{cfg.data.n_test} per class. AU labels of the pool: {au_source}. Generator: {extra['generator']}.", "",
             "| claim | comparison | ours | baseline | difference | every seed | holds |", "|---|---|---|---|---|---|---|"]
    held = {}
    for c, ours, base, d in judged("synfer", per):
        cid, text, ours_k, base_k = c.id, c.statement, c.ours, c.baseline
        held[cid] = d.holds
        recs.append(records.Metric(f"{cid}/difference", d.mean, ci=(d.low, d.high), n=d.n, seeds=tuple(seeds),
                                   values=tuple(np.subtract(ours, base)), ci_method="t",
                                   extra={"every_seed": d.every_seed, "holds": d.holds, "ours": ours_k,
                                          "baseline": base_k, **extra}))
        lines.append(f"| {cid} | {text} | {fmt(ours)} | {fmt(base)} | {fmt(list(np.subtract(ours, base)))} | "
                     f"{d.every_seed} | {d.holds} |")
    lines += ["", " ".join(f"{c} holds: **{h}**." for c, h in held.items()), "",
              "### Downstream (test accuracy, 8 classes, chance 0.125)", "", "| training | accuracy |", "|---|---|"]
    lines += [f"| {label} | {fmt(per[k])} |" for k, label in ROWS.items()]
    lines += ["", f"### Generation quality ({n1} images per mode; FD in {synfer.FD_SPACE})", "",
              "| conditioning | oracle expression accuracy | AU-control F1 | FD to real test set |", "|---|---|---|---|"]
    for mode, label in (("au_text", "AU + text"), ("text", "text only"), ("uncond", "unconditional")):
        lines.append(f"| {label} | {fmt(per[f'quality/{mode}/oracle_acc'])} | {fmt(per[f'quality/{mode}/au_f1'])} | "
                     f"{fmt(per[f'quality/{mode}/fd'])} |")
    lines += ["", "| semantic guidance (text-only prompts) | oracle expression accuracy |", "|---|---|",
              f"| off | {fmt(per['guidance/off/oracle_acc'])} |", f"| on | {fmt(per['guidance/on/oracle_acc'])} |", "",
              "| label calibrator (5x set) | value |", "|---|---|",
              f"| calibrator accuracy on the real test set | {fmt(per['calib/calibrator_real_acc'])} |",
              f"| labels changed | {fmt(per['calib/changed_frac'])} |",
              f"| images dropped | {fmt(per['calib/dropped_frac'])} |",
              f"| label accuracy before (prompt class vs oracle) | {fmt(per['calib/label_acc_before'])} |",
              f"| label accuracy after (kept images) | {fmt(per['calib/label_acc_after'])} |",
              f"| oracle accuracy on the real test set | {fmt(per['oracle/test_acc'])} |"]
    return "\n".join(lines), recs
