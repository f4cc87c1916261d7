"""A battery of bad or awkward inputs through the commands and the Analyzer (issue 21's check).

    python benchmarks/bad_inputs.py            # prints one line per case and the totals

Each case says what a careful user should get: ``error`` (exit 2 and a one-line ``error:``
message), ``ok`` (exit 0 and the output checked), ``rows`` (the Analyzer gives the named
statuses). Counted: tracebacks (an exception escaping, or ``Traceback`` on stderr), silent
no-ops (exit 0 where an error was due, or an output that is missing or wrong), unclear errors
(exit 2 without a one-line message) and mislabelled datasets (``labels.csv`` not naming exactly
the images in the folder). Most cases run in this process; concurrency, Ctrl-C and permissions
(as user ``nobody`` when run as root) use subprocesses. No model is trained.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from facekit.cli import main
from facekit.config import environ


@dataclass
class Outcome:
    rc: int | None
    err: str
    traceback: bool


def call(argv: list[str], env: dict[str, str] | None = None) -> Outcome:
    buf_err, buf_out = io.StringIO(), io.StringIO()
    rc, tb = None, False
    try:
        with environ(env or {}), contextlib.redirect_stderr(buf_err), contextlib.redirect_stdout(buf_out):
            rc = main(argv)
    except SystemExit as e:
        rc = int(e.code) if isinstance(e.code, int) else 2
    except BaseException as e:  # noqa: BLE001 - the battery counts what escapes
        tb = True
        buf_err.write(f"Traceback: {type(e).__name__}: {e}")
    err = buf_err.getvalue()
    return Outcome(rc, err, tb or "Traceback" in err)


def dataset_whole(folder: Path) -> bool:
    rows = list(csv.DictReader((folder / "labels.csv").open()))
    return sorted(r["file"] for r in rows) == sorted(p.name for p in folder.glob("*.png")) and (
        folder / "card.md").is_file()


class Battery:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.cases = self.tracebacks = self.silent = self.unclear = self.mislabelled = 0

    def _report(self, name: str, verdict: str, detail: str) -> None:
        self.cases += 1
        print(f"{verdict:>11}  {name}" + (f"  [{detail}]" if detail else ""))

    def expect(self, name: str, argv: list[str], want: str, check: Callable[[], bool] | None = None,
               env: dict[str, str] | None = None, datasets: tuple[Path, ...] = ()) -> None:
        o = call(argv, env)
        self.judge(name, o, want, check, datasets)

    def judge(self, name: str, o: Outcome, want: str, check: Callable[[], bool] | None = None,
              datasets: tuple[Path, ...] = ()) -> None:
        last = o.err.strip().splitlines()[-1] if o.err.strip() else ""
        verdict = "ok"
        for d in datasets:
            if (d / "labels.csv").exists() and not dataset_whole(d) or (d.exists() and any(d.glob("*.png"))
                                                                        and not (d / "labels.csv").exists()):
                self.mislabelled += 1
                verdict = "MISLABELLED"
        if o.traceback:
            self.tracebacks += 1
            verdict = "TRACEBACK"
        elif want == "error":
            if o.rc == 0:
                self.silent += 1
                verdict = "SILENT"
            elif o.rc != 2 or "error" not in last:
                self.unclear += 1
                verdict = "UNCLEAR"
        elif o.rc != 0 or (check is not None and not check()):
            self.silent += 1
            verdict = "SILENT" if o.rc == 0 else f"FAILED rc={o.rc}"
        self._report(name, verdict, last[:150])

    def api(self, name: str, fn: Callable[[], object], want: str) -> None:
        """``want``: ``raises`` (a ValueError-family error with a message) or ``ok``."""
        try:
            result = fn()
        except (ValueError, FileExistsError, RuntimeError) as e:
            ok = want == "raises" and bool(str(e))
            if not ok:
                self.tracebacks += 1
            self._report(name, "ok" if ok else "TRACEBACK", str(e).splitlines()[0][:150])
            return
        except BaseException as e:  # noqa: BLE001
            self.tracebacks += 1
            self._report(name, "TRACEBACK", f"{type(e).__name__}: {e}"[:150])
            return
        if want == "raises" or result is False:
            self.silent += 1
            self._report(name, "SILENT", repr(result)[:150])
        else:
            self._report(name, "ok", "")


def photos(root: Path) -> Path:
    d = root / "photos"
    (d / "sub").mkdir(parents=True)
    a = np.full((48, 64, 3), 200, np.uint8)
    Image.fromarray(a).save(d / "rgb.png")
    (d / "notes.txt").write_text("not a photo")
    (d / "empty.png").write_bytes(b"")
    (d / "broken.png").symlink_to(d / "gone.png")
    (d / "self.png").symlink_to(d / "self.png")
    (d / "sub" / "up").symlink_to(d)
    os.mkfifo(d / "pipe.png")
    Image.fromarray(a).convert("P").save(d / "sub" / "palette.gif")
    return d


def main_battery() -> int:
    root = Path(tempfile.mkdtemp(prefix="facekit-bad-"))
    os.environ["FACEKIT_CACHE"] = str(root / "cache")
    os.environ["FACEKIT_RESULTS"] = str(root / "results")
    os.environ.pop("FACEKIT_DEVICE", None)
    os.environ.pop("FACEKIT_PROFILE", None)
    b = Battery(root)
    d = photos(root)
    one = str(d / "rgb.png")
    (root / "file.txt").write_text("x")
    (root / "adir").mkdir()
    sm = ["--profile", "smoke"]

    # ---------------------------------------------------------------- analyze
    b.expect("analyze --out under a file", ["analyze", one, "--out", str(root / "file.txt/f.csv"), *sm], "error")
    b.expect("analyze --out is a folder", ["analyze", one, "--out", str(root / "adir"), *sm], "error")
    b.expect("analyze --out folder.csv is a folder", ["analyze", one, "--out", str(root / "adir"), *sm], "error")
    (root / "dir.csv").mkdir()
    b.expect("analyze --out dir.csv (a folder)", ["analyze", one, "--out", str(root / "dir.csv"), *sm], "error")
    b.expect("analyze --out .txt", ["analyze", one, "--out", str(root / "f.txt"), *sm], "error")
    b.expect("analyze ''", ["analyze", ""], "error")
    b.expect("analyze '' among paths", ["analyze", one, "", *sm], "error")
    b.expect("analyze --out ''", ["analyze", one, "--out", "", *sm], "error")
    b.expect("analyze --seed -1", ["analyze", one, "--seed", "-1"], "error")
    b.expect("analyze --profile fast", ["analyze", one, "--profile", "fast"], "error")
    b.expect("analyze --detector nope", ["analyze", one, "--detector", "nope"], "error")
    out = root / "t.csv"
    b.expect("analyze awkward folder -> csv", ["analyze", str(d), "--out", str(out), *sm], "ok",
             lambda: len(open(out).read().splitlines()) == 9 and (root / "t.csv.models.json").is_file()
             and oct(out.stat().st_mode & 0o777) == "0o600")
    b.expect("analyze existing --out", ["analyze", one, "--out", str(out), *sm], "error")
    os.chmod(out, 0o640)
    b.expect("analyze --overwrite keeps mode", ["analyze", one, "--out", str(out), "--overwrite", *sm], "ok",
             lambda: oct(out.stat().st_mode & 0o777) == "0o640")
    b.expect("analyze missing path", ["analyze", str(root / "nope.jpg"), "--out", str(root / "m.csv"), *sm], "ok",
             lambda: "missing" in (root / "m.csv").read_text())
    b.expect("analyze empty folder", ["analyze", str(root / "adir"), "--out", str(root / "e.csv"), *sm], "ok",
             lambda: "no_images" in (root / "e.csv").read_text())
    with contextlib.suppress(ImportError):
        import pyarrow  # noqa: F401

        b.expect("analyze -> parquet", ["analyze", one, "--out", str(root / "t.parquet"), *sm], "ok",
                 lambda: (root / "t.parquet").is_file())
    for var, value in [("FACEKIT_CACHE", str(root / "file.txt")), ("FACEKIT_DEVICE", "cuda"),
                       ("FACEKIT_DEVICE", "tpu"), ("FACEKIT_PROFILE", "fast"), ("FACEKIT_RESULTS", str(root / "file.txt")),
                       ("FACEKIT_OFFLINE", "maybe")]:
        import torch

        if value == "cuda" and torch.cuda.is_available():
            continue
        argv = ["analyze", one] if var != "FACEKIT_OFFLINE" else ["info"]
        if var == "FACEKIT_RESULTS":
            argv = ["report", "--scenario", "production_line", "--out", str(root / "rep")]
        b.expect(f"{var}={value}", argv, "error", env={var: value})

    # damaged cache
    from facekit.analyze import Analyzer
    from facekit.methods import comface
    from facekit.train import save_pretrained

    cfg = comface.profile_config("smoke", 0)
    path = comface.cache_path(cfg, "smoke")
    save_pretrained(comface.ComFaceNet(**cfg.model), cfg.model, path)
    w = path / "model.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    b.api("status() with a truncated model", lambda: Analyzer("smoke").status().loc["comface", "state"] == "damaged",
          "ok")
    b.expect("analyze with a truncated model", ["analyze", one, "--out", str(root / "dmg.csv"), *sm], "ok",
             lambda: "damaged" in (root / "dmg.csv.models.json").read_text())
    b.expect("train over a truncated model", ["train", "comface", "--profile", "smoke", "--quiet"], "error")
    w.write_bytes(b"")
    b.api("status() with an empty weight file",
          lambda: Analyzer("smoke").status().loc["comface", "state"] == "damaged", "ok")
    shutil.rmtree(path)
    b.api("Analyzer().analyze('')", lambda: Analyzer("smoke").analyze(""), "raises")
    b.api("Analyzer(profile='fast')", lambda: Analyzer("fast"), "raises")
    b.api("compare(photo, grey) without comface", lambda: Analyzer("smoke").compare(one, one), "raises")

    # ---------------------------------------------------------------- synth
    s = ["--size", "32"]
    for argv in (["--n", "0"], ["--n", "-3"], ["--batch-size", "0"], ["--batch-size", "-1"], ["--size", "999"],
                 ["--size", "0"], ["--seed", "-1"], ["--style", "nope"], ["--backend", "nope"],
                 ["--expressions", "nope"], ["--split", "dev"], ["--n", "two"]):
        target = root / f"ds_{'_'.join(argv).replace('-', '')}"
        b.expect(f"synth {' '.join(argv)}", ["synth", str(target), *argv], "error", datasets=(target,),
                 check=None)
        if target.exists() and list(target.iterdir()):
            b.silent += 1
            print("     SILENT  ^ left files behind")
    b.expect("synth into a file", ["synth", str(root / "file.txt"), "--n", "2", *s], "error")
    b.expect("synth under a file", ["synth", str(root / "file.txt" / "ds"), "--n", "2", *s], "error")
    b.expect("synth ''", ["synth", "", "--n", "2", *s], "error")
    (root / "mine").mkdir()
    (root / "mine" / "keep.txt").write_text("user data")
    b.expect("synth into a non-empty folder", ["synth", str(root / "mine"), "--n", "2", *s], "error")
    b.expect("synth --overwrite a non-dataset folder", ["synth", str(root / "mine"), "--n", "2", "--overwrite", *s],
             "error")
    big = root / "big"
    b.expect("synth 25", ["synth", str(big), "--n", "25", *s], "ok", lambda: dataset_whole(big), datasets=(big,))
    b.expect("synth --overwrite 25 with 5", ["synth", str(big), "--n", "5", "--overwrite", *s], "ok",
             lambda: dataset_whole(big) and len(list(big.glob("*.png"))) == 5, datasets=(big,))
    b.expect("synth again without --overwrite", ["synth", str(big), "--n", "5", *s], "error", datasets=(big,))

    py = [sys.executable, "-m", "facekit.cli"]
    two = root / "two"
    procs = [subprocess.Popen([*py, "synth", str(two), "--n", "60", "--seed", str(k), "--batch-size", "10", *s],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for k in (0, 1)]
    res = [(p.wait(), p.stderr.read()) for p in procs]
    rcs = sorted(rc for rc, _ in res)
    loser = next((e for rc, e in res if rc != 0), "")
    b.judge("two synth runs into one folder", Outcome(0 if rcs == [0, 2] else 1, loser, "Traceback" in loser), "ok",
            lambda: dataset_whole(two) and len(list(two.glob("*.png"))) == 60, datasets=(two,))
    before = {p.name: p.read_bytes() for p in big.iterdir()}
    p = subprocess.Popen([*py, "synth", str(big), "--n", "400", "--batch-size", "4", "--overwrite", *s],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    p.stderr.readline()
    p.send_signal(signal.SIGINT)
    rc, err = p.wait(), p.stderr.read()
    b.judge("synth Ctrl-C", Outcome(0 if rc == 130 else rc, err, "Traceback" in err), "ok",
            lambda: {q.name: q.read_bytes() for q in big.iterdir()} == before and len(err.strip().splitlines()) == 1
            and not [q for q in root.iterdir() if q.name.startswith(".big")], datasets=(big,))

    # ---------------------------------------------------------------- run
    import nbformat

    nbs = root / "nbs"
    nbs.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1")]
    nbformat.write(nb, nbs / "00_a.ipynb")
    r = ["run", "--notebooks", str(nbs), "--out", str(root / "runs")]
    for argv in (["--only", "99"], ["--jobs", "0"], ["--jobs", "-1"], ["--param", "x"], ["--param", "x=[1"],
                 ["--param", "1x=2"], ["--param", "=3"], ["--profile", "fast"]):
        b.expect(f"run {' '.join(argv)}", [*r, *argv], "error")
    b.expect("run --notebooks missing", ["run", "--notebooks", str(root / "nope")], "error")
    b.expect("run --notebooks empty folder", ["run", "--notebooks", str(root / "adir")], "error")
    b.expect("run --out a file", ["run", "--notebooks", str(nbs), "--out", str(root / "file.txt")], "error")
    grids = {"missing": None, "malformed": "parameters: [1", "scalar": "parameters:\n  seed: 3\n",
             "empty list": "parameters:\n  seed: []\n", "unknown key": "parameters: {seed: [1]}\njobs: 2\n",
             "bad profile": "parameters: {seed: [1]}\nprofile: fast\n", "a list": "- 1\n", "empty file": "",
             "fixed scalar": "parameters: {seed: [1]}\nfixed: 3\n", "bad name": "parameters: {1x: [1]}\n",
             "notebooks mapping": "parameters: {seed: [1]}\nnotebooks: {a: 1}\n",
             "notebook 99": "parameters: {seed: [1]}\nnotebooks: ['99']\n"}
    for name, text in grids.items():
        g = root / f"grid_{name.replace(' ', '_')}.yaml"
        if text is not None:
            g.write_text(text)
        b.expect(f"run --grid {name}", ["run", "--grid", str(g), "--notebooks", str(nbs), "--out", str(root / "g")],
                 "error")
    g = root / "grid_ok.yaml"
    g.write_text("parameters: {seed: [1]}\n")
    b.expect("run --grid with --only", ["run", "--grid", str(g), "--only", "00", "--notebooks", str(nbs)], "error")

    # ---------------------------------------------------------------- report
    import yaml

    from facekit.pilot import SCENARIO_DIR

    base = yaml.safe_load((SCENARIO_DIR / "customer_service.yaml").read_text())
    bad = {"currency list": ("currency", ["EUR", "USD"]), "go_min_roi high": ("thresholds", {"go_min_roi": "high"}),
           "horizon 1.5": ("horizon_months", 1.5), "quality int": ("quality", 42),
           "volume text": ("decisions_per_month", "many"), "unknown key": ("colour", "red"),
           "assumptions text": ("assumptions", "one"), "bad threshold key": ("thresholds", {"go": 1}),
           "negative cost": ("cost_per_error", -1), "rate > 1": ("baseline_error_rate", 1.5),
           "quality no colon": ("quality", "f1"), "nan": ("labour_rate", float("nan"))}
    for name, (key, value) in bad.items():
        f = root / f"sc_{name.replace(' ', '_')}.yaml"
        f.write_text(yaml.safe_dump({**base, key: value}))
        b.expect(f"report scenario {name}", ["report", "--scenario", str(f), "--out", str(root / "rep")], "error")
    (root / "sc_malformed.yaml").write_text("name: [x\n")
    b.expect("report scenario malformed YAML", ["report", "--scenario", str(root / "sc_malformed.yaml")], "error")
    (root / "sc_list.yaml").write_text("- 1\n")
    b.expect("report scenario a list", ["report", "--scenario", str(root / "sc_list.yaml")], "error")
    b.expect("report scenario missing", ["report", "--scenario", "nope"], "error")
    b.expect("report --out under a file", ["report", "--scenario", "production_line", "--out",
                                           str(root / "file.txt" / "r")], "error")

    # ---------------------------------------------------------------- train, cards, assets
    b.expect("train nope", ["train", "nope"], "error")
    b.expect("train --seed -1", ["train", "comface", "--seed", "-1"], "error")
    b.expect("cards --only nope", ["cards", "--out", str(root / "cards"), "--only", "nope"], "error")
    b.expect("assets fetch nope", ["assets", "fetch", "nope"], "error")
    b.expect("cards --out a file", ["cards", "--out", str(root / "file.txt"), "--only", "pairs_age"], "error")
    b.expect("assets fetch --dest a file", ["assets", "fetch", "ict", "--dest", str(root / "file.txt"),
                                            "--base-url", str(root / "nope")], "error")
    b.expect("report --out ''", ["report", "--scenario", "production_line", "--out", ""], "error")
    b.expect("analyze a FIFO given directly", ["analyze", str(d / "pipe.png"), "--out", str(root / "fifo.csv"), *sm],
             "ok", lambda: "not_regular" in (root / "fifo.csv").read_text())

    # ---------------------------------------------------------------- permissions (as nobody)
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("setpriv"):
        priv = root / "priv"
        (priv / "locked").mkdir(parents=True)
        Image.fromarray(np.full((48, 64, 3), 200, np.uint8)).save(priv / "locked" / "a.png")
        (priv / "ro").mkdir()
        shutil.chown(priv, "nobody")
        shutil.chown(priv / "ro", "root")
        os.chmod(priv / "ro", 0o555)
        os.chmod(priv / "locked", 0o744)  # nobody may list it but not enter it
        os.chmod(root, 0o755)
        env = {**os.environ, "FACEKIT_CACHE": str(priv / "cache"), "FACEKIT_RESULTS": str(priv / "results"),
               "HOME": str(priv)}
        nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *py]
        for name, argv, want in [("analyze --out unwritable folder", ["analyze", str(priv / "locked"), "--out",
                                                                       str(priv / "ro" / "f.csv"), *sm], "error"),
                                 ("analyze a folder listed but not entered", ["analyze", str(priv), "--out",
                                                                              str(priv / "p.csv"), *sm], "ok")]:
            p = subprocess.run([*nobody, *argv], capture_output=True, text=True, env=env, timeout=300)
            b.judge(name, Outcome(p.returncode, p.stderr, "Traceback" in p.stderr), want,
                    (lambda: "unreadable" in (priv / "p.csv").read_text()) if want == "ok" else None)
    else:
        print("    skipped  permission cases (need root and setpriv to run them as nobody)")

    print(f"\n{b.cases} cases: {b.tracebacks} tracebacks, {b.silent} silent no-ops or wrong results, "
          f"{b.unclear} unclear errors, {b.mislabelled} mislabelled datasets")
    shutil.rmtree(root, ignore_errors=True)
    return 1 if b.tracebacks or b.silent or b.unclear or b.mislabelled else 0


if __name__ == "__main__":
    t0 = time.perf_counter()
    rc = main_battery()
    print(f"({time.perf_counter() - t0:.0f} s)")
    sys.exit(rc)
