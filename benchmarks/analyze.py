"""Photos per second and peak memory through the Analyzer, on a folder (prints figures; never a
timed test).

    python benchmarks/analyze.py [FOLDER] [--profile cpu] [--repeats 2]
    python benchmarks/analyze.py --synth 500      # a 500-file folder written by `facekit synth`

Default folder: the ORL faces. The figure covers loading, Haar detection, eye finding,
alignment and every model that is cached for the profile (the models used are printed, since
the time depends on which exist). Peak memory is the process's peak resident set size
(``ru_maxrss``), before and after the passes, so the import baseline is visible.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from facekit.analyze import Analyzer


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", default=None)
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--synth", type=int, default=None, metavar="N",
                    help="analyse a temporary folder of N faces from `facekit synth` (size 128)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.synth:
            folder = str(Path(tmp) / "faces")
            subprocess.run([sys.executable, "-m", "facekit.cli", "synth", folder, "--n", str(args.synth),
                            "--size", "128"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        else:
            from facekit.real import orl_dir

            folder = args.folder or str(orl_dir())
        an = Analyzer(args.profile)
        models = [m for m, ok in an.status()["available"].items() if ok]
        base = _rss_mib()
        print(f"folder {folder}; models cached at {args.profile}: {models or 'none'}; "
              f"torch threads {torch.get_num_threads()}")
        best, df = float("inf"), None
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            df = an.analyze(folder)
            best = min(best, time.perf_counter() - t0)
        assert df is not None
        ok = int((df.status == "ok").sum())
        print(f"{len(df)} files, {ok} faces: {len(df) / best:,.1f} files/s ({best:.1f} s per pass, best of "
              f"{args.repeats}); peak RSS {_rss_mib():,.0f} MiB (after imports and model loading {base:,.0f} MiB)")


if __name__ == "__main__":
    main()
