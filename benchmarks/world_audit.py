"""Learnability audit: what one fixed CNN can learn from each training world, on unseen persons.

    python benchmarks/world_audit.py [--profile cpu] [--backends procedural ict] [--styles clean target] [--jobs 2]

For each backend and style it renders (once; pools are cached as uint8 in FACEKIT_CACHE) a
training pool of the world (``facekit.synth.worlds``), trains ``facekit.models.audit_cnn`` on it
and scores it on persons it never saw:

* ``<backend>/<style>/au_auc``: mean over AUs of the ROC-AUC of AU occurrence (FACS B and up
  against absent; trace AUs ignored), with ``au_auc/<AU>`` per AU;
* ``au_auc_level/<A..E>``: the same AUC with positives at one FACS level only (random-AU faces),
  the evidence for the occurrence threshold;
* ``emotion_acc/<low|medium|high>``: 8-class accuracy of the emotion faces in each intensity bin
  (``worlds.INTENSITY_BIN_EDGES``), ``emotion_acc/neutral`` and ``emotion_acc`` over all;
* ``verify_auc``: ROC-AUC of the cosine of identity embeddings, two photos of one person (each
  with its own expression, pose, light and background) against two of different persons;
* ``age_mae`` (years) and ``bmi_mae`` (BMI).

It writes ``results/<profile>/world_audit.json`` through ``facekit.records.record``, prints a
Markdown table and, at the cpu profile, replaces its section of ``benchmarks/RESULTS.md``.

``--jobs N`` audits N worlds at once, each in its own process with ``cores // N`` threads (default:
one per core, at most one per world). This small CNN does not use two threads fully, so on two
cores two one-thread processes finish the four worlds in 16.7 minutes where one two-thread process
took 20.5, with the same scores (``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facekit import metrics, records
from facekit.config import get_profile, seed_everything
from facekit.io import disk_cached, to_uint8
from facekit.models.audit_cnn import AuditBudget, fit, predict
from facekit.synth.params import AU_NAMES, FaceParams
from facekit.synth.worlds import (
    FACS_LEVELS,
    INTENSITY_BINS,
    STYLE_NAMES,
    World,
    facs_level,
    renderer_fingerprint,
    world_for,
)

HERE = Path(__file__).parent
RESULTS_MD = HERE / "RESULTS.md"
BACKENDS = ("ict", "procedural")  # the default world's backend first


@dataclasses.dataclass(frozen=True)
class AuditScale:
    """Pool sizes and training budget of one profile."""

    size: int
    n_train: int
    train_persons: int
    n_test: int
    n_pairs: int
    budget: AuditBudget


SCALES = {
    "smoke": AuditScale(size=32, n_train=96, train_persons=24, n_test=64, n_pairs=32, budget=AuditBudget(steps=8, batch=32)),
    "cpu": AuditScale(size=64, n_train=3000, train_persons=300, n_test=800, n_pairs=250,
                      budget=AuditBudget(steps=800, batch=64)),
    "gpu": AuditScale(size=64, n_train=40000, train_persons=1400, n_test=4000, n_pairs=2000,
                      budget=AuditBudget(steps=8000, batch=128)),
}


def pair_pool(world: World, n: int, seed: int) -> dict[str, torch.Tensor]:
    """Two photos of each of ``n`` test persons (``World.same_person_pairs``), rendered once and
    cached as uint8."""

    def make() -> dict[str, torch.Tensor]:
        pa, pb, person = world.same_person_pairs(n, split="test", seed=seed)
        def images(p: FaceParams) -> torch.Tensor:
            return torch.cat([to_uint8(world.render(p[i:i + 256])).cpu() for i in range(0, n, 256)])

        return {"a": images(pa), "b": images(pb), "person": person}

    key = {"world": world.config(), "n": n, "seed": seed, "renderer": renderer_fingerprint()}
    return disk_cached(f"world-{world.name}-pairs", key, make)


def _auc(y: np.ndarray, s: np.ndarray) -> float | None:
    return metrics.roc_auc(y, s) if 0 < y.sum() < len(y) else None


def score(pred: dict[str, np.ndarray], test: dict[str, torch.Tensor], emb_a: np.ndarray, emb_b: np.ndarray,
          pair_person: np.ndarray) -> dict[str, float]:
    """Every audit number of one world from the CNN's outputs on the test pool and pairs."""
    out: dict[str, float] = {}
    occurs, known = test["au_occurs"].numpy(), test["au_known"].numpy()
    per_au = {}
    for k, name in enumerate(AU_NAMES):
        auc = _auc(occurs[known[:, k], k], pred["au"][known[:, k], k])
        if auc is not None:
            per_au[name] = auc
            out[f"au_auc/{name}"] = auc
    out["au_auc"] = float(np.mean(list(per_au.values())))
    random_au = test["emotion"].numpy() < 0
    level = facs_level(test["au"]).numpy()
    for li, lname in enumerate(FACS_LEVELS):
        aucs = []
        for k in range(len(AU_NAMES)):
            sel = random_au & ((level[:, k] == li) | (level[:, k] == -1))
            auc = _auc(level[sel, k] == li, pred["au"][sel, k])
            if auc is not None:
                aucs.append(auc)
        if aucs:
            out[f"au_auc_level/{lname}"] = float(np.mean(aucs))
    emo = test["emotion"].numpy()
    correct = pred["emotion"].argmax(1) == emo
    shown = emo >= 0
    out["emotion_acc"] = float(correct[shown].mean())
    out["emotion_acc/neutral"] = float(correct[emo == 0].mean())
    bins = test["intensity_bin"].numpy()
    for bi, bname in enumerate(INTENSITY_BINS):
        sel = shown & (emo > 0) & (bins == bi)
        if sel.any():
            out[f"emotion_acc/{bname}"] = float(correct[sel].mean())
    neg_b = np.roll(emb_b, 1, axis=0)
    different = pair_person != np.roll(pair_person, 1)
    pos_sim = (emb_a * emb_b).sum(1)
    neg_sim = (emb_a * neg_b).sum(1)[different]
    out["verify_auc"] = metrics.roc_auc(np.r_[np.ones(len(pos_sim)), np.zeros(len(neg_sim))], np.r_[pos_sim, neg_sim])
    out["age_mae"] = metrics.mae(test["age"].numpy(), pred["age"])
    out["bmi_mae"] = metrics.mae(test["weight"].numpy(), pred["bmi"])
    return out


def audit_world(world: World, scale: AuditScale, seed: int, log: Callable[[str], None]) -> dict[str, float]:
    """Train the audit CNN on one world's training pool and score it on its test persons."""
    t0 = time.time()
    train = world.pool(scale.n_train, split="train", seed=seed, n_persons=scale.train_persons, log=log)
    test = world.pool(scale.n_test, split="test", seed=seed + 1, log=log)
    pairs = pair_pool(world, scale.n_pairs, seed + 2)
    log(f"{world.name}: pools ready in {time.time() - t0:.0f} s")
    seed_everything(seed)
    model = fit(train, scale.budget, seed=seed, log=lambda m: log(f"{world.name}: {m}"))
    log(f"{world.name}: trained in {time.time() - t0:.0f} s")
    pred = predict(model, test["image"])
    emb_a, emb_b = predict(model, pairs["a"])["embedding"], predict(model, pairs["b"])["embedding"]
    return score(pred, test, emb_a, emb_b, pairs["person"].numpy())


def _audit_job(backend: str, style: str, scale: AuditScale, seed: int, threads: int,
               t0: float) -> tuple[str, dict[str, float], dict[str, Any]]:
    """One world's audit: ``(key, scores, record extra)``; run in-process or in a worker."""
    if threads > 0:
        torch.set_num_threads(threads)
    world = dataclasses.replace(world_for(backend, style), size=scale.size)
    t_world = time.time()
    scores = audit_world(world, scale, seed, lambda msg: print(f"[{time.time() - t0:6.0f} s] {msg}", flush=True))
    extra = {"world": world.name, **{k: v for k, v in world.config().items() if k != "name"},
             "wall_s": round(time.time() - t_world, 1)}
    return f"{backend}/{style}", scores, extra


def _run_jobs(worlds: list[tuple[str, str]], scale: AuditScale, seed: int, jobs: int,
              t0: float) -> Iterator[tuple[str, dict[str, float], dict[str, Any]]]:
    """The audits of ``worlds``, in their order; with ``jobs`` above 1, that many run at once in
    worker processes."""
    if jobs == 1:
        for backend, style in worlds:
            yield _audit_job(backend, style, scale, seed, 0, t0)
        return
    threads = max(1, (os.cpu_count() or 1) // jobs)
    # spawned workers start with fresh torch thread pools (a forked one may inherit a busy one)
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_audit_job, b, s, scale, seed, threads, t0) for b, s in worlds]
        for future in futures:
            yield future.result()


def table(results: dict[str, dict[str, float]]) -> str:
    """Headline metrics (rows) per world (columns), then per-AU ROC-AUC and per-level AUC."""
    worlds = list(results)
    head = "| metric | " + " | ".join(worlds) + " |\n|---|" + "---|" * len(worlds)
    rows = ["au_auc", *(f"emotion_acc/{b}" for b in INTENSITY_BINS), "emotion_acc/neutral", "emotion_acc",
            "verify_auc", "age_mae", "bmi_mae", *(f"au_auc_level/{lv}" for lv in FACS_LEVELS),
            *(f"au_auc/{a}" for a in AU_NAMES)]

    def cell(w: str, r: str) -> str:
        v = results[w].get(r)
        return "-" if v is None else f"{v:.3f}" if "mae" not in r else f"{v:.2f}"

    return head + "\n" + "\n".join(f"| {r} | " + " | ".join(cell(w, r) for w in worlds) + " |" for r in rows)


BARS = {"au_auc": {"clean": 0.95, "target": 0.90}, "emotion_acc/high": 0.90, "emotion_acc/low": 0.60,
        "verify_auc": 0.98}


def bar_lines(results: dict[str, dict[str, float]]) -> list[str]:
    """Which of the issue's bars each world meets."""
    lines = []
    for w, r in results.items():
        style = w.split("/")[1]
        checks = []
        for name, bar in BARS.items():
            need = bar[style] if isinstance(bar, dict) else bar
            if name not in r:
                checks.append(f"{name} not measured (no test faces)")
                continue
            checks.append(f"{name} {r[name]:.3f} {'>=' if r[name] >= need else '<'} {need} "
                          f"({'met' if r[name] >= need else 'MISSED'})")
        lines.append(f"- `{w}`: " + "; ".join(checks))
    return lines


def update_results_md(body: str, command: str, wall_s: float, note: str = "") -> None:
    """Replace (or append) the world audit's section of benchmarks/RESULTS.md."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    from claims import _machine

    header = "## World audit (`benchmarks/world_audit.py`)"
    meta = (f"- machine: {_machine()}\n- commit: `{records.git_revision()}`\n"
            f"- date: {datetime.now(UTC).isoformat(timespec='seconds')}\n- command: `{command}`\n"
            f"- wall time: {wall_s / 60:.1f} min{note}\n")
    section = f"{header}\n\n{meta}\n{body}\n"
    text = RESULTS_MD.read_text() if RESULTS_MD.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(header)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section + "\n", text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    RESULTS_MD.write_text(text.rstrip("\n") + "\n")


def main(argv: Sequence[str] | None = None) -> dict[str, dict[str, float]]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default=None, help="smoke | cpu | gpu (default: FACEKIT_PROFILE, else cpu)")
    ap.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    ap.add_argument("--styles", nargs="+", default=list(STYLE_NAMES), choices=STYLE_NAMES)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=None,
                    help="worlds audited at once, one process each (default: the number of cores, at most one per world)")
    ap.add_argument("--no-results-md", action="store_true", help="do not touch benchmarks/RESULTS.md")
    ap.add_argument("--from-record", action="store_true",
                    help="train nothing: rebuild the table (and RESULTS.md) from the record, e.g. after one run per world")
    args = ap.parse_args(argv)
    profile = get_profile(args.profile)
    scale = SCALES[profile]
    t0 = time.time()
    if args.from_record:
        return _from_record(profile, scale, args, argv)

    def log(msg: str) -> None:
        print(f"[{time.time() - t0:6.0f} s] {msg}", flush=True)

    worlds = [(b, s) for b in args.backends for s in args.styles]
    if args.jobs is not None and args.jobs < 1:
        ap.error(f"--jobs={args.jobs} is not valid; pass 1 or more")
    jobs = min(len(worlds), args.jobs or os.cpu_count() or 1)
    results: dict[str, dict[str, float]] = {}
    config = {"scale": dataclasses.asdict(scale), "seed": args.seed, "renderer": renderer_fingerprint()}
    log(f"auditing {len(worlds)} worlds, {jobs} at a time")
    for key, scores, extra in _run_jobs(worlds, scale, args.seed, jobs, t0):
        results[key] = scores
        recs = [records.Metric(f"{key}/{k}", v, seeds=(args.seed,), extra=extra) for k, v in scores.items()]
        # recorded world by world, so an interrupted run keeps the worlds it finished
        path = records.record("world_audit", recs, profile=profile, config=config, seeds=(args.seed,))
    wall = time.time() - t0
    body = report(results, scale, profile, args.seed)
    print(body)
    print(f"\nrecord: {path}; wall time {wall / 60:.1f} min")
    if profile != "smoke" and not args.no_results_md:
        command = "python benchmarks/world_audit.py " + " ".join(argv if argv is not None else sys.argv[1:])
        note = f" ({jobs} worlds at a time, one process each)" if jobs > 1 else ""
        update_results_md(body, command.strip(), wall, note)
    return results


def _from_record(profile: str, scale: AuditScale, args: argparse.Namespace,
                 argv: Sequence[str] | None) -> dict[str, dict[str, float]]:
    record = records.load_records(profile).get("world_audit")
    if not record:
        raise SystemExit(f"no world_audit record for profile {profile!r}; run this script without --from-record first")
    results: dict[str, dict[str, float]] = {}
    walls: dict[str, float] = {}
    for name, entry in record.items():
        backend, style, metric = name.split("/", 2)
        results.setdefault(f"{backend}/{style}", {})[metric] = entry["value"]
        if "wall_s" in entry["extra"]:
            walls[f"{backend}/{style}"] = entry["extra"]["wall_s"]
    order = [f"{b}/{s}" for b in BACKENDS for s in STYLE_NAMES if f"{b}/{s}" in results]
    results = {k: results[k] for k in order}
    body = report(results, scale, profile, args.seed)
    print(body)
    if profile != "smoke" and not args.no_results_md:
        command = "python benchmarks/world_audit.py " + " ".join(argv if argv is not None else sys.argv[1:])
        note = (" per world, run one world per process (`--backends B --styles S`), in parallel: "
                + ", ".join(f"{k} {v / 60:.1f} min" for k, v in walls.items())) if walls else ""
        update_results_md(body, command.strip(), max(walls.values(), default=0.0), note)
    return results


def report(results: dict[str, dict[str, float]], scale: AuditScale, profile: str, seed: int) -> str:
    """The Markdown the script prints and puts in RESULTS.md."""
    n_au = len(AU_NAMES)
    return "\n".join([
        f"Fixed audit CNN (`facekit.models.audit_cnn`), {profile} profile, seed {seed}: "
        f"{scale.n_train} training faces of {scale.train_persons} persons, {scale.budget.steps} steps of "
        f"{scale.budget.batch}; scored on {scale.n_test} faces and {scale.n_pairs} same-person pairs of unseen "
        f"persons. Face framing, {scale.size} px. au_auc is the mean ROC-AUC over {n_au} AUs (FACS B and up "
        "against absent); emotion_acc per intensity bin (low 0.15-0.4, medium 0.4-0.7, high 0.7-1); MAE in "
        "years and BMI.", "", table(results), "", "Bars (issue 16, default world = ICT when its assets are found):",
        *bar_lines(results)])


if __name__ == "__main__":
    main()
