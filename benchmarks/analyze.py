"""Photos per second through the Analyzer, on a folder (prints figures; never a timed test).

    python benchmarks/analyze.py [FOLDER] [--profile cpu] [--repeats 2]

Default folder: the ORL faces. The figure covers loading, Haar detection, eye finding,
alignment and every model that is cached for the profile (the models used are printed, since
the time depends on which exist).
"""

from __future__ import annotations

import argparse
import time

import torch

from facekit.analyze import Analyzer
from facekit.real import orl_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", default=None)
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    folder = args.folder or str(orl_dir())
    an = Analyzer(args.profile)
    models = [m for m, ok in an.status()["available"].items() if ok]
    print(f"folder {folder}; models cached at {args.profile}: {models or 'none'}; torch threads {torch.get_num_threads()}")
    best, df = float("inf"), None
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        df = an.analyze(folder)
        best = min(best, time.perf_counter() - t0)
    assert df is not None
    ok = int((df.status == "ok").sum())
    print(f"{len(df)} files, {ok} faces: {len(df) / best:,.1f} files/s ({best:.1f} s per pass, best of {args.repeats})")


if __name__ == "__main__":
    main()
