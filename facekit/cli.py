"""The ``facekit`` command: info, synth, cards, run, analyze, report, train, assets, data."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from facekit.checks import at_least, out_file, out_folder
from facekit.config import PROFILES, ConfigError, check_environment
from facekit.real.detect import DETECTORS


def _info(args: argparse.Namespace) -> int:
    from facekit.runtime import info

    for key, value in info().items():
        print(f"{key:>14}: {value}")
    return 0


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _synth(args: argparse.Namespace) -> int:
    from facekit.dataset_writer import DatasetBusyError, replace_problem, write_dataset
    from facekit.synth.datasets import FaceDataset

    out = Path(args.out)
    problem = out_folder("folder", args.out) or replace_problem(out, args.overwrite)
    if problem:
        return _error(problem)
    try:
        ds = FaceDataset(args.n, split=args.split, seed=args.seed, size=args.size, style=args.style,
                         backend=args.backend, expressions=args.expressions)
    except ValueError as e:
        return _error(str(e))
    try:
        write_dataset(out, ds, args.n, args.batch_size, overwrite=args.overwrite)
    except (DatasetBusyError, FileExistsError) as e:
        return _error(str(e))
    except KeyboardInterrupt:
        print(f"interrupted: {out} was left as it was (nothing was written)", file=sys.stderr)
        return 130
    print(f"wrote {args.n} images, labels.csv and card.md to {out}")
    return 0


def _cards(args: argparse.Namespace) -> int:
    from facekit.cards import write_all

    if problem := out_folder("--out", args.out):
        return _error(problem)
    try:
        results = write_all(args.out, overwrite=args.overwrite, only=args.only)
    except KeyError as e:
        print(f"error: {e.args[0]}", file=sys.stderr)
        return 2
    refused = 0
    for path, status in results:
        if status == "exists":
            refused += 1
            print(f"{path}: differs from the generator; pass --overwrite to replace it")
        else:
            print(f"{path}: {status}")
    return 1 if refused else 0


def _run(args: argparse.Namespace) -> int:
    from facekit.runner import discover, parse_params, run_notebooks

    try:
        params = parse_params(args.param)
        if not args.grid:
            discover(args.notebooks, args.only)  # a wrong folder or --only is found before any run
    except ValueError as e:
        return _error(str(e))
    if args.out and (problem := out_folder("--out", args.out)):
        return _error(problem)
    if args.grid:
        from facekit.runner import run_grid

        if args.only or params:
            print("error: --grid takes its notebooks and parameters from the grid file; drop --only/--param",
                  file=sys.stderr)
            return 2
        try:
            results, summary = run_grid(args.grid, args.notebooks, profile=args.profile, jobs=args.jobs,
                                        out_dir=args.out)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"summary: {summary}")
    else:
        results = run_notebooks(args.notebooks, profile=args.profile, only=args.only, params=params,
                                jobs=args.jobs, out_dir=args.out)
    failed = [r for r in results if not r.ok]
    for r in results:
        status = "ok" if r.ok else f"FAILED ({r.error})"
        print(f"{r.name}: {status} in {r.seconds:.0f}s -> {r.output}")
    if failed:
        print(f"{len(failed)} of {len(results)} notebooks failed: {', '.join(r.name for r in failed)}", file=sys.stderr)
        return 1
    return 0


def _analyze(args: argparse.Namespace) -> int:
    from facekit.analyze import Analyzer, models_note_path, print_missing, write_table
    from facekit.real.load import check_path

    out = Path(args.out) if args.out is not None else None
    if out is not None and (problem := out_file("--out", args.out, args.overwrite, (".csv", ".parquet"))):
        return _error(problem)
    try:
        for path in args.paths:
            check_path(path)
        if out is not None and out.suffix.lower() == ".parquet":
            import pyarrow  # noqa: F401
        analyzer = Analyzer(args.profile, args.seed, detector=args.detector, fallback=args.fallback)
    except ImportError:
        return _error("--out .parquet needs pyarrow (pip install pyarrow); or write .csv")
    except ValueError as e:
        return _error(str(e))
    try:
        df = analyzer.analyze(args.paths)
    except (ValueError, ImportError) as e:
        return _error(str(e))
    print_missing(df)
    counts = df["status"].value_counts().to_dict() if len(df) else {}
    print(f"{len(df)} rows: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), file=sys.stderr)
    if out is None:
        print(df.drop(columns=["identity_embedding"], errors="ignore").to_string(max_cols=12))
        return 0
    try:
        write_table(df, out, overwrite=args.overwrite)
    except (FileExistsError, OSError) as e:  # another run made --out meanwhile, or the folder changed
        return _error(str(e))
    print(f"wrote {out}" + ("" if out.suffix.lower() == ".parquet" else f" and {models_note_path(out)}"),
          file=sys.stderr)
    return 0


def _report(args: argparse.Namespace) -> int:
    from facekit.pilot import evaluate
    from facekit.report import write_report

    # the report's own files are checked by write_report (--overwrite); here only their folder
    if args.out is not None and (problem := out_file("--out", f"{args.out}.html", overwrite=True)
                                 if args.out.strip() else "--out is empty; pass a path without suffix"):
        return _error(problem)
    try:
        result = evaluate(args.scenario, args.profile)
        paths = write_report(result, args.out or f"pilot_report_{result.scenario.name.lower().replace(' ', '_')}",
                             overwrite=args.overwrite)
    except (ValueError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    missing = [n for n, r in result.records.items() if r["status"] == "MISSING"]
    if missing:
        print(f"note: records missing at profile {result.profile}: {missing}", file=sys.stderr)
    print(f"recommendation: {result.recommendation} ({'; '.join(result.reasons)})")
    print(f"wrote {paths[0]} and {paths[1]}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from facekit.methods import method_module
    from facekit.train import DamagedModelError

    try:
        module = method_module(args.name)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for seed in args.seed:
        try:
            model, result = module.train_and_load(args.profile, seed, progress=not args.quiet)
        except DamagedModelError as e:
            return _error(f"{e}; delete it (rm -r '{e.path}') and run this command again")
        how = "loaded from cache" if getattr(result, "loaded", False) else "trained"
        print(f"{args.name} (profile {args.profile or 'from $FACEKIT_PROFILE'}, seed {seed}): {how}")
    return 0


def _assets(args: argparse.Namespace) -> int:
    from facekit.synth.assets import fetch_ict

    if args.name != "ict":
        return _error(f"unknown asset set {args.name!r}; valid: ['ict']")
    if args.dest is not None and (problem := out_folder("--dest", args.dest)):
        return _error(problem)
    try:
        path = fetch_ict(dest=args.dest, base_url=args.base_url, overwrite=args.overwrite)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"ICT-FaceKit assets verified in {path}")
    return 0


def _data(args: argparse.Namespace) -> int:
    from facekit.real.orl import fetch_orl, orl_source

    if args.name != "orl":
        return _error(f"unknown data set {args.name!r}; valid: ['orl']")
    if args.dest is not None and (problem := out_folder("--dest", args.dest)):
        return _error(problem)
    try:
        path = fetch_orl(dest=args.dest, source=args.source, overwrite=args.overwrite)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{orl_source(path)}: 400 photos verified")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="facekit", description="Synthetic faces with exact labels, and the notebooks that learn from them.")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="versions, device, cache dir, assets found")
    p.set_defaults(func=_info)

    p = sub.add_parser("synth", help="write N face images, labels.csv and a data card to a folder")
    p.add_argument("out", help="output folder (must be empty or new unless --overwrite)")
    p.add_argument("--n", type=at_least(1), default=16)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--seed", type=at_least(0), default=0)
    p.add_argument("--split", default="train", choices=["train", "val", "test"])
    p.add_argument("--style", default="clean")
    p.add_argument("--backend", default="procedural")
    p.add_argument("--expressions", default="random", help="random | emotion | propensity | neutral")
    p.add_argument("--batch-size", type=at_least(1), default=256)
    p.add_argument("--overwrite", action="store_true", help="replace the whole dataset folder (never merges)")
    p.set_defaults(func=_synth)

    p = sub.add_parser("cards", help="write data_cards/<dataset>.md for the notebooks' dataset configurations")
    p.add_argument("--out", default="data_cards")
    p.add_argument("--only", nargs="+", default=None)
    p.add_argument("--overwrite", action="store_true", help="replace cards that differ from the generator")
    p.set_defaults(func=_cards)

    p = sub.add_parser("run", help="execute the notebooks with papermill at a profile")
    p.add_argument("--profile", default=None, choices=list(PROFILES), help="default: $FACEKIT_PROFILE or cpu")
    p.add_argument("--only", nargs="+", default=None, help="notebook names or number prefixes, e.g. 00 01")
    p.add_argument("--param", action="append", default=[], metavar="K=V", help="extra parameter (repeatable)")
    p.add_argument("--grid", default=None, help="a YAML parameter grid (see facekit.runner.Grid); "
                   "every run keeps its executed notebook and records, and summary.csv collects them")
    p.add_argument("--jobs", type=at_least(1), default=1, help="notebooks run in parallel processes")
    p.add_argument("--notebooks", default="notebooks", help="folder of notebooks")
    p.add_argument("--out", default=None, help="folder for executed notebooks (default results/<profile>/notebooks)")
    p.set_defaults(func=_run)

    p = sub.add_parser("analyze", help="analyse real photos: one row per file or face, with status and reason")
    p.add_argument("paths", nargs="+", help="image files and folders")
    p.add_argument("--out", default=None, help="table to write: .csv or .parquet (default: print a summary)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--profile", default=None, choices=list(PROFILES), help="which cached models (default: $FACEKIT_PROFILE or cpu)")
    p.add_argument("--seed", type=at_least(0), default=0)
    p.add_argument("--detector", default="auto", choices=list(DETECTORS),
                   help="face detector: auto (dlib HOG, then contrast-equalised HOG, then dlib's CNN; 68 landmarks "
                        "for alignment), haar (OpenCV) or dlib (HOG only)")
    p.add_argument("--fallback", default=None, choices=["center"], help="crop the middle of photos where no face is found")
    p.set_defaults(func=_analyze)

    p = sub.add_parser("report", help="the pilot ROI report (HTML + Markdown) from the metric records and a scenario")
    p.add_argument("--scenario", required=True, help="a scenario YAML file, or an example: production_line, "
                   "customer_service, hr_interviews")
    p.add_argument("--profile", default=None, choices=list(PROFILES), help="which records (default: $FACEKIT_PROFILE or cpu)")
    p.add_argument("--out", default=None, help="report path without suffix (default: pilot_report_<scenario>)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report")
    p.set_defaults(func=_report)

    p = sub.add_parser("train", help="train (or load from the cache) one method's model")
    p.add_argument("name", help="comface | fmae_iat | synfer | gencon | plugen")
    p.add_argument("--profile", default=None, choices=list(PROFILES), help="default: $FACEKIT_PROFILE or cpu")
    p.add_argument("--seed", type=at_least(0), nargs="+", default=[0])
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_train)

    p = sub.add_parser("assets", help="manage downloadable assets")
    asub = p.add_subparsers(dest="action", required=True)
    f = asub.add_parser("fetch", help="download and verify an asset set (the only command that downloads)")
    f.add_argument("name", help="asset set: ict")
    f.add_argument("--dest", default=None, help="default: <cache dir>/assets/ict-facekit")
    f.add_argument("--base-url", default=None, help="mirror URL or local folder (default: upstream at the pinned commit)")
    f.add_argument("--overwrite", action="store_true")
    f.set_defaults(func=_assets)

    p = sub.add_parser("data", help="manage downloadable real-photo data sets")
    dsub = p.add_subparsers(dest="action", required=True)
    f = dsub.add_parser("fetch", help="download and verify a data set into the cache")
    f.add_argument("name", help="data set: orl (the 400 ORL photos, as scikit-learn's 64x64 Olivetti copy)")
    f.add_argument("--dest", default=None, help="default: <cache dir>/data/olivetti_faces")
    f.add_argument("--source", default=None, help="URL, file:// URL or path of olivettifaces.mat (default: "
                   "scikit-learn's pinned figshare URL); its sha256 is checked either way")
    f.add_argument("--overwrite", action="store_true", help="download and write again")
    f.set_defaults(func=_data)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Exit codes: 0 done, 1 partly done (some notebooks or cards failed), 2 usage error (nothing
    was done), 130 interrupted (nothing half-written is left)."""
    args = build_parser().parse_args(argv)
    try:
        check_environment()
        return int(args.func(args))
    except ConfigError as e:
        return _error(str(e))
    except KeyboardInterrupt:
        print("interrupted; files are written atomically, so none was left half-written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
