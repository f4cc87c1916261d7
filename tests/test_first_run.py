"""What a new user's first `facekit run` does to their clone: nothing git sees, and a notebook
section that needs ORL skips with one line when there is no ORL (issue 19)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _status() -> str:
    out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="not a git checkout")
def test_run_at_smoke_changes_nothing_git_sees_and_skips_orl_in_one_line(tmp_path):
    """Two notebooks, to stay cheap: 00 (trains nothing) and 07 (reads records, writes a report,
    looks for ORL). Compared with the status before, so work in progress does not count."""
    before = _status()
    env = {**os.environ, "FACEKIT_PROFILE": "smoke", "FACEKIT_ORL": str(tmp_path / "no-orl"),
           "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    env.pop("FACEKIT_RESULTS", None)  # the default place, results/<profile>/ in the checkout
    proc = subprocess.run([sys.executable, "-m", "facekit.cli", "run", "--profile", "smoke", "--only", "00", "07"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert _status() == before, "facekit run --profile smoke changed files git sees"
    executed = nbformat.read(ROOT / "results" / "smoke" / "notebooks" / "07_pilot_report.ipynb", 4)
    lines = [line for cell in executed.cells for out in cell.get("outputs", [])
             for line in "".join(out.get("text", "")).splitlines() if "ORL faces not found" in line]
    assert lines == ["ORL faces not found: skipping the ORL photos (scikit-image's samples are analysed "
                     "instead). Run `facekit data fetch orl` (or set FACEKIT_ORL) to include it."]
