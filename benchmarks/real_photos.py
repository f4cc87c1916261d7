"""What the Analyzer's outputs are worth on real photos: ORL (identity) and the development set
(Taiwanese posed expressions: identity across expressions, expressions, AUs, change).

    python benchmarks/real_photos.py [--profile cpu] [--seed 0] [--orl DIR] [--dev DIR] [--detector auto]

Everything goes through the public ``facekit.Analyzer`` (``analyze``, ``compare``, ``face``), so
the figures are what a user gets. The development set is split by performer: 1-15 choose
designs, 16-30 report, and only 16-30 are scored here. Model columns need the cached models of
the profile; those missing are named in the record and the table, and the rows that need them
are left out (never filled in). A 30-component pixel PCA on the aligned crops (fitted on ORL for
ORL, on performers 1-15 for the development set) is the identity reference. ``--profile smoke``
takes a handful of photos of each set (a check that the benchmark runs, not a measurement).
Writes ``results/<profile>/real_photos.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score

from facekit import Analyzer
from facekit.real.orl import orl_files
from facekit.records import Metric, record

ROOT = Path(__file__).resolve().parents[1]
DEV_DIR = ROOT.parent / "shared" / "data" / "taiwanese"  # the project's ../shared; --dev or FACEKIT_DEV
REPORT_PERFORMERS = range(16, 31)  # 1-15 are for choosing designs
PCA_COMPONENTS = 30
AU_TESTS = (("AU12", "happiness"), ("AU25", "surprise"), ("AU26", "surprise"), ("AU4", "anger"))
SMOKE = {"orl_people": 4, "orl_shots": 3, "performers": 2}


def dev_dir() -> Path:
    """The development set: ``$FACEKIT_DEV`` if set, else the project's ../shared copy."""
    return Path(os.environ.get("FACEKIT_DEV", DEV_DIR))


def verification(emb: np.ndarray, ids: np.ndarray, groups: np.ndarray | None = None) -> tuple[float, float, int]:
    """(ROC-AUC of cosine similarity for same vs different person over all pairs, leave-one-out
    rank-1, pairs). With ``groups`` (the expression of each photo) only pairs of different
    expressions count, and rank-1 searches photos of other expressions."""
    x = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    sim = x @ x.T
    iu = np.triu_indices(len(x), 1)
    keep = np.ones(len(iu[0]), bool) if groups is None else groups[iu[0]] != groups[iu[1]]
    same = (ids[iu[0]] == ids[iu[1]])[keep]
    auc = float(roc_auc_score(same, sim[iu][keep])) if 0 < same.sum() < len(same) else float("nan")
    s = sim.copy()
    np.fill_diagonal(s, -np.inf)
    if groups is not None:
        s[groups[:, None] == groups[None, :]] = -np.inf
    rank1 = float(np.mean(ids[s.argmax(1)] == ids))
    return auc, rank1, int(keep.sum())


def scored(df: pd.DataFrame, column: str) -> bool:
    """Whether a model filled ``column``: the Analyzer's table always has every column, and a
    missing model's are empty."""
    return column in df and bool(df[column].notna().any())


def pixel_pca(an: Analyzer, fit: Sequence[str], score: Sequence[str]) -> np.ndarray:
    """30-component PCA of the aligned grey crops: fitted on ``fit``, applied to ``score``."""
    def crops(paths: Sequence[str]) -> np.ndarray:
        return np.stack([an.face(p, what="pixel PCA").mean(1).flatten().numpy() for p in paths])

    a = crops(fit)
    pca = PCA(n_components=min(PCA_COMPONENTS, len(a) - 1), whiten=True, random_state=0).fit(a)
    return pca.transform(a if list(score) == list(fit) else crops(score))


def orl_part(an: Analyzer, orl: Path, smoke: bool) -> tuple[dict[str, float], pd.DataFrame]:
    files, person = orl_files(orl)
    if smoke:
        keep = [i for i, p in enumerate(person) if p < SMOKE["orl_people"] and int(files[i].stem) <= SMOKE["orl_shots"]]
        files, person = [files[i] for i in keep], [person[i] for i in keep]
    df = an.analyze([str(f) for f in files])
    ok = (df["status"] == "ok").to_numpy()
    out = {"orl/detected": float(ok.sum()), "orl/photos": float(len(df))}
    paths, ids = [str(f) for f, o in zip(files, ok, strict=True) if o], np.asarray(person)[ok]
    out["orl/pca_verification_auc"], out["orl/pca_rank1"], _ = verification(pixel_pca(an, paths, paths), ids)
    if scored(df, "identity_embedding"):
        emb = np.stack(df.loc[ok, "identity_embedding"].to_list())
        out["orl/verification_auc"], out["orl/rank1"], _ = verification(emb, ids)
    return out, df


def dev_labels(dev: Path, smoke: bool) -> pd.DataFrame:
    labels = pd.read_csv(dev / "labels.csv")
    labels["path"] = [str(dev / "faces_256x256" / f) for f in labels["file"]]
    if smoke:  # neutral photos and one photo of each expression, of two design and two reporting performers
        picked = []
        for perf in (*range(1, 1 + SMOKE["performers"]), *REPORT_PERFORMERS[:SMOKE["performers"]]):
            rows = labels[labels["performer"] == perf]
            picked.append(pd.concat([rows[rows["posed_expression"] == "neutral"],
                                     rows[rows["posed_expression"] != "neutral"].drop_duplicates("posed_expression")]))
        labels = pd.concat(picked)
    return labels.reset_index(drop=True)


def dev_part(an: Analyzer, dev: Path, smoke: bool) -> tuple[dict[str, float], pd.DataFrame]:
    labels = dev_labels(dev, smoke)
    rep = labels[labels["performer"].isin(REPORT_PERFORMERS)].reset_index(drop=True)
    design = labels[~labels["performer"].isin(REPORT_PERFORMERS)]
    df = an.analyze(rep["path"].to_list())
    ok = (df["status"] == "ok").to_numpy()
    out = {"dev/detected": float(ok.sum()), "dev/photos": float(len(df))}
    r, d = rep[ok].reset_index(drop=True), df[ok].reset_index(drop=True)
    ids, expr = r["performer"].to_numpy(), r["posed_expression"].to_numpy()
    fit = design["path"][(an.analyze(design["path"].to_list())["status"] == "ok").to_numpy()].to_list()
    out["dev/pca_verification_auc"], out["dev/pca_rank1"], _ = verification(pixel_pca(an, fit, r["path"].to_list()), ids, expr)
    if scored(d, "identity_embedding"):
        out["dev/verification_auc"], out["dev/rank1"], _ = verification(np.stack(d["identity_embedding"].to_list()), ids, expr)
    rated = r["max_int"].notna().to_numpy()
    if scored(d, "expression"):
        hit = (d["expression"].to_numpy() == expr)[rated]
        out["dev/expression_accuracy"] = float(hit.mean())
        for c in sorted(set(expr[rated])):
            out[f"dev/recall_{c}"] = float(hit[expr[rated] == c].mean())
    for au, emotion in AU_TESTS:
        pick = np.isin(expr, ["neutral", emotion])
        if scored(d, au) and len(set(expr[pick])) == 2:
            out[f"dev/{au}_{emotion}_vs_neutral_auc"] = float(roc_auc_score(expr[pick] == emotion, d.loc[pick, au]))
    out.update(change_part(an, r))
    return out, df


def change_part(an: Analyzer, r: pd.DataFrame) -> dict[str, float]:
    """``compare(neutral, expressive)`` expression change against the rated intensity, and its
    ROC-AUC for expressive-vs-neutral pairs against neutral-vs-neutral pairs of one performer."""
    if not an.status().loc["comface", "available"]:
        return {}
    expressive, flat, rated = [], [], []
    for _, rows in r.groupby("performer"):
        neutral = rows[rows["posed_expression"] == "neutral"]["path"].to_list()
        if not neutral:
            continue
        for _, row in rows[rows["posed_expression"] != "neutral"].iterrows():
            expressive.append(float(an.compare(neutral[0], row["path"]).loc["expression_change", "value"]))
            rated.append(float(row["max_int"]))
        flat += [float(an.compare(neutral[0], b).loc["expression_change", "value"]) for b in neutral[1:]]
    out: dict[str, float] = {}
    keep = ~np.isnan(rated)
    if keep.sum() > 2:
        out["dev/change_spearman_intensity"] = float(spearmanr(np.asarray(expressive)[keep], np.asarray(rated)[keep])[0])
    if expressive and flat:
        out["dev/change_expressive_vs_neutral_auc"] = float(roc_auc_score([1] * len(expressive) + [0] * len(flat), expressive + flat))
    return out


def table(metrics: dict[str, float], missing: Sequence[str]) -> str:
    lines = ["| metric | value |", "| --- | --- |"]
    lines += [f"| {k} | {v:.3f} |" if not float(v).is_integer() else f"| {k} | {v:.0f} |" for k, v in metrics.items()]
    if missing:
        lines += ["", f"Models not cached, so their rows are left out: {', '.join(missing)} (Analyzer.status() says how to make them)."]
    return "\n".join(lines)


def write(name: str, metrics: dict[str, float], profile: str, extra: dict[str, Any]) -> Path:
    """The one place the record is written (facekit's record writer); each metric carries the
    detector and the models that were missing."""
    items = [Metric(k, v, extra=extra) for k, v in metrics.items()]
    return record(name, items, profile=profile, config=extra, seeds=(extra["seed"],))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--orl", type=Path, default=None, help="ORL folder (default: where facekit finds it)")
    ap.add_argument("--dev", type=Path, default=None, help="development set folder (default: dev_dir())")
    ap.add_argument("--detector", default=None, help="the Analyzer's detector (default: its own; e.g. haar to compare)")
    args = ap.parse_args(argv)
    args.dev = args.dev or dev_dir()
    if not (args.dev / "labels.csv").is_file():
        print(f"skipped: the development set is not at {args.dev} (labels.csv missing); it lives in the "
              "project's ../shared/data/taiwanese, or pass --dev")
        return 0
    try:
        orl_files(args.orl)
    except FileNotFoundError as e:
        print(f"skipped: ORL not found ({e})")
        return 0
    smoke = args.profile == "smoke"
    an = Analyzer(args.profile, args.seed, **({"detector": args.detector} if args.detector else {}))
    metrics, _ = orl_part(an, args.orl, smoke)
    dev, _ = dev_part(an, args.dev, smoke)
    metrics.update(dev)
    missing = sorted(an.missing())
    name = "real_photos" if args.detector is None else f"real_photos_{args.detector}"
    path = write(name, metrics, args.profile, {"seed": args.seed, "detector": an.detector, "models_missing": missing})
    print(table(metrics, missing))
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
