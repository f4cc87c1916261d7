"""Measure a method's claims over several seeds, with 95% intervals, against its baselines.

    python benchmarks/claims.py --method comface [--profile cpu] [--seeds 0 1 2]

Writes metric records to ``results/<profile>/claims_<method>.json`` (through
``facekit.records.record``), prints a Markdown table and replaces the method's section in
``benchmarks/RESULTS.md`` (machine, commit, date, command, wall time). A claim holds when every
seed goes the claimed way and the 95% interval of the paired difference excludes zero
(``facekit.metrics.claim_holds``). The seeds run in one loop for every method (:func:`run_seeds`);
each method's ``CLAIMS`` (its package) says which metrics are claims, judged in one loop
(:func:`judged`), and ``claims_<method>.py`` beside this file turns the per-seed metrics and
verdicts into that method's records and tables.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import re
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from facekit import metrics, records
from facekit.config import get_profile
from facekit.methods.base import Claim
from facekit.metrics import PairedDifference

HERE = Path(__file__).parent
RESULTS_MD = HERE / "RESULTS.md"
ClaimsFn = Callable[[str, Sequence[int], dict[str, list[float]]], tuple[str, list[records.Metric]]]


def methods() -> list[str]:
    """Methods with a ``claims_<method>.py`` beside this file."""
    return sorted(p.stem.removeprefix("claims_") for p in HERE.glob("claims_*.py"))


def claims_fn(method: str) -> ClaimsFn:
    if method not in methods():
        raise ValueError(f"method={method!r} has no benchmarks/claims_{method}.py; valid methods are {methods()}")
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    return importlib.import_module(f"claims_{method}").claims


def run_seeds(method: str, profile: str, seeds: Sequence[int]) -> dict[str, list[float]]:
    """The one seeds loop: the method's ``run_seed`` for each seed (training or loading its models),
    as ``{metric: [value of each seed]}`` for the metrics every seed wrote."""
    from facekit.methods import method_module

    t0 = time.time()
    runs = [method_module(method).run_seed(profile, s, log=lambda msg: print(f"[{time.time() - t0:6.0f} s] {msg}",
                                                                             flush=True))
            for s in seeds]
    return {k: [r[k] for r in runs] for k in runs[0] if all(k in r for r in runs)}


def judged(method: str, per: dict[str, list[float]]) -> list[tuple[Claim, list[float], list[float], PairedDifference]]:
    """Every claim the method declares in ``CLAIMS``, judged on the seeds' metrics (one loop for
    every method): the claim, both sides per seed and the paired difference with its verdict."""
    from facekit.methods import method_module

    return [(c, *c.judge(per)) for c in method_module(method).CLAIMS]


def fmt(values: Sequence[float], digits: int = 3) -> str:
    """Mean [95% t interval] over seeds (just the value with one seed)."""
    if len(values) < 2:
        return f"{values[0]:.{digits}g}"
    m, lo, hi = metrics.mean_ci(values)
    return f"{m:.{digits}g} [{lo:.{digits}g}, {hi:.{digits}g}]"


def seed_metric(name: str, values: Sequence[float], seeds: Sequence[int], **extra: object) -> records.Metric:
    vals = tuple(float(v) for v in values)
    if len(vals) >= 2:
        m, lo, hi = metrics.mean_ci(vals)
        return records.Metric(name, m, ci=(lo, hi), n=len(vals), seeds=tuple(seeds), values=vals, ci_method="t",
                              extra=dict(extra))
    return records.Metric(name, vals[0], n=1, seeds=tuple(seeds), values=vals, extra=dict(extra))




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
    meta = (f"- machine: {_machine()}\n- commit: `{records.git_revision()}`\n"
            f"- date: {datetime.now(UTC).isoformat(timespec='seconds')}\n- command: `{command}`\n"
            f"- wall time: {wall_s / 60:.1f} min (this command only: models found in FACEKIT_CACHE are "
            "loaded, the others trained here)\n")
    section = f"{header}\n\n{meta}\n{body}\n"
    text = RESULTS_MD.read_text() if RESULTS_MD.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(header)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section + "\n", text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    RESULTS_MD.write_text(text.rstrip("\n") + "\n")


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", required=True, choices=methods())
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--no-results-md", action="store_true", help="do not touch benchmarks/RESULTS.md")
    args = ap.parse_args(argv)
    profile = get_profile(args.profile)
    if len(args.seeds) < 3 and profile == "cpu":
        print(f"note: {len(args.seeds)} seed(s); claims need at least 3 seeds at the cpu profile", file=sys.stderr)
    t0 = time.time()
    body, recs = claims_fn(args.method)(profile, args.seeds, run_seeds(args.method, profile, args.seeds))
    wall = time.time() - t0
    path = records.record(f"claims_{args.method}", recs, profile=profile, seeds=args.seeds)
    command = "python benchmarks/claims.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(body)
    print(f"\nrecords: {path}; wall time {wall / 60:.1f} min")
    if not args.no_results_md:
        update_results_md(args.method, body, command, wall)


if __name__ == "__main__":
    main()
