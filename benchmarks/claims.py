"""Measure a method's claims over several seeds, with 95% intervals, against its baselines.

    python benchmarks/claims.py --method comface [--profile cpu] [--seeds 0 1 2]

Writes metric records to ``results/<profile>/claims_<method>.json`` (through
``facekit.metrics.record``), prints a Markdown table and replaces the method's section in
``benchmarks/RESULTS.md`` (machine, commit, date, command, wall time). A claim holds when every
seed goes the claimed way and the 95% interval of the paired difference excludes zero
(``facekit.metrics.claim_holds``). Methods register in ``CLAIMS``; later issues add theirs.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from facekit import metrics
from facekit.config import get_profile

RESULTS_MD = Path(__file__).with_name("RESULTS.md")


def _fmt(values: Sequence[float], digits: int = 3) -> str:
    """Mean [95% t interval] over seeds (just the value with one seed)."""
    if len(values) < 2:
        return f"{values[0]:.{digits}g}"
    m, lo, hi = metrics.mean_ci(values)
    return f"{m:.{digits}g} [{lo:.{digits}g}, {hi:.{digits}g}]"


def _seed_metric(name: str, values: Sequence[float], seeds: Sequence[int], **extra: object) -> metrics.Metric:
    vals = tuple(float(v) for v in values)
    if len(vals) >= 2:
        m, lo, hi = metrics.mean_ci(vals)
        return metrics.Metric(name, m, ci=(lo, hi), n=len(vals), seeds=tuple(seeds), values=vals, ci_method="t",
                              extra=dict(extra))
    return metrics.Metric(name, vals[0], n=1, seeds=tuple(seeds), values=vals, extra=dict(extra))


def comface_claims(profile: str, seeds: Sequence[int]) -> tuple[str, list[metrics.Metric]]:
    """C1 (300 labelled pairs: ComFace MAE below SimCLR and PCA on all three tasks) and C2
    (inter-head verification ROC-AUC >= 0.95 on held-out identities), plus the transfer table."""
    from facekit.methods import comface

    t0 = time.time()
    runs = []
    for s in seeds:
        runs.append(comface.run_seed(profile, s, log=lambda msg: print(f"[{time.time() - t0:6.0f} s] {msg}", flush=True)))
    per = {k: [r[k] for r in runs] for k in runs[0]}
    cfg = comface.profile_config(profile)
    n_mid = sorted(cfg.data.n_labelled)[len(cfg.data.n_labelled) // 2]
    recs = [_seed_metric(k, v, seeds) for k, v in per.items()]
    lines = [f"### Claims ({profile} profile, seeds {list(seeds)}; mean [95% t interval] over seeds)", "",
             "| claim | comparison | ComFace | baseline | difference | every seed | holds |", "|---|---|---|---|---|---|---|"]
    c1 = []
    for task in comface.TASKS:
        ours = per[f"comface/{task}/n{n_mid}/mae"]
        for base in ("simclr", "pca"):
            theirs = per[f"{base}/{task}/n{n_mid}/mae"]
            d = metrics.paired_difference(ours, theirs, higher_is_better=False)
            c1.append(d.holds)
            recs.append(metrics.Metric(f"C1/{task}/comface_minus_{base}/mae", d.mean, ci=(d.low, d.high), n=d.n,
                                       seeds=tuple(seeds), values=tuple(np.subtract(ours, theirs)), ci_method="t",
                                       extra={"every_seed": d.every_seed, "holds": d.holds}))
            lines.append(f"| C1 | {task} MAE ({comface.FACTOR_UNITS[task]}), n={n_mid}: ComFace < {base} | {_fmt(ours)} | "
                         f"{_fmt(theirs)} | {_fmt(list(np.subtract(ours, theirs)))} | {d.every_seed} | {d.holds} |")
    auc = per["comface/verify/auc"]
    d2 = metrics.paired_difference(auc, [0.95] * len(auc), higher_is_better=True)
    lines.append(f"| C2 | verification ROC-AUC >= 0.95 (age +30 y and strong expression, held-out target-style persons) "
                 f"| {_fmt(auc)} | 0.95 | {_fmt(list(np.subtract(auc, 0.95)))} | {d2.every_seed} | {d2.holds} |")
    recs.append(metrics.Metric("C1/holds", float(all(c1)), extra={"parts": len(c1), "parts_holding": sum(c1)}))
    recs.append(metrics.Metric("C2/holds", float(d2.holds), extra={"every_seed": d2.every_seed, "ci": [d2.low, d2.high]}))
    lines += ["", f"C1 holds: **{all(c1)}** ({sum(c1)}/{len(c1)} comparisons). C2 holds: **{d2.holds}**.", "",
              "### Transfer (target style, unseen persons; MAE in task units, Spearman rho)", "",
              "| method | task | labelled pairs | MAE | Spearman |", "|---|---|---|---|---|"]
    for method in ("comface", "simclr", "pca", "supervised"):
        for task in comface.TASKS:
            for n in cfg.data.n_labelled:
                key = f"{method}/{task}/n{n}"
                if f"{key}/mae" in per:
                    lines.append(f"| {method} | {task} | {n} | {_fmt(per[key + '/mae'])} | {_fmt(per[key + '/spearman'])} |")
    lines += ["", "| embedding | verification AUC (all) | age +30 y | strong expression |", "|---|---|---|---|"]
    for method in ("comface", "simclr"):
        lines.append(f"| {method} | {_fmt(per[f'{method}/verify/auc'])} | {_fmt(per[f'{method}/verify/auc_age'])} | "
                     f"{_fmt(per[f'{method}/verify/auc_expression'])} |")
    return "\n".join(lines), recs


CLAIMS: dict[str, Callable[[str, Sequence[int]], tuple[str, list[metrics.Metric]]]] = {"comface": comface_claims}


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def update_results_md(method: str, body: str, command: str, wall_s: float) -> None:
    """Replace (or append) the ``## Claims: <method>`` section of benchmarks/RESULTS.md."""
    header = f"## Claims: {method} (`benchmarks/claims.py --method {method}`)"
    meta = (f"- machine: {_machine()}\n- commit: `{metrics.git_revision()}`\n"
            f"- date: {datetime.now(UTC).isoformat(timespec='seconds')}\n- command: `{command}`\n"
            f"- wall time: {wall_s / 60:.1f} min (this command only: models already cached in FACEKIT_CACHE "
            "are loaded, not retrained)\n")
    section = f"{header}\n\n{meta}\n{body}\n"
    text = RESULTS_MD.read_text() if RESULTS_MD.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(header)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section + "\n", text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    RESULTS_MD.write_text(text.rstrip("\n") + "\n")


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", required=True, choices=sorted(CLAIMS))
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--no-results-md", action="store_true", help="do not touch benchmarks/RESULTS.md")
    args = ap.parse_args(argv)
    profile = get_profile(args.profile)
    if len(args.seeds) < 3 and profile == "cpu":
        print(f"note: {len(args.seeds)} seed(s); claims need at least 3 seeds at the cpu profile", file=sys.stderr)
    t0 = time.time()
    body, recs = CLAIMS[args.method](profile, args.seeds)
    wall = time.time() - t0
    path = metrics.record(f"claims_{args.method}", recs, profile=profile, seeds=args.seeds)
    command = "python benchmarks/claims.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(body)
    print(f"\nrecords: {path}; wall time {wall / 60:.1f} min")
    if not args.no_results_md:
        update_results_md(args.method, body, command, wall)


if __name__ == "__main__":
    main()
