"""`facekit run`'s progress: start and end lines, cell and training bars on the terminal, the
estimate from recorded timings, and no kernel TCP warning; with a tiny notebook."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from facekit import runner

TRAINING_CELL = """\
import time
import warnings

from facekit.train import _bar

warnings.warn("a warning from a cell")
bar = _bar(total=3, desc="training")
for _ in range(3):
    time.sleep(0.1)
    bar.update(1)
bar.close()
"""


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[runner.RunResult], str]:
    """One run of a two-cell notebook with progress on; the stderr it wrote (fd level, so the
    kernel's own log lines are in it too)."""
    import os
    import subprocess
    import sys

    folder = tmp_path_factory.mktemp("nb")
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "smoke"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(TRAINING_CELL)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / "00_tiny.ipynb")
    out = folder / "out"
    code = ("import json, sys; from facekit.runner import run_notebooks; "
            f"r = run_notebooks({str(folder)!r}, 'smoke', out_dir={str(out)!r}); "
            "print(json.dumps([[x.name, x.ok, str(x.output), x.seconds, x.error] for x in r]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert proc.returncode == 0, proc.stderr
    results = [runner.RunResult(n, ok, Path(p), s, e) for n, ok, p, s, e in json.loads(proc.stdout)]
    return out, results, proc.stderr


def test_start_and_end_lines_name_status_time_and_copy(tiny_run):
    out, results, err = tiny_run
    assert [r.ok for r in results] == [True], results
    assert "facekit run: 1 notebook(s) at profile smoke" in err and "no recorded timings yet for 00_tiny" in err
    assert "[1/1] 00_tiny: started" in err
    assert f"[1/1] 00_tiny: ok in {runner._duration(results[0].seconds)} -> {out / '00_tiny.ipynb'}" in err


def test_cell_and_training_bars_and_warnings_reach_the_terminal(tiny_run):
    _, _, err = tiny_run
    assert "cell/s" in err or "s/cell" in err  # papermill's bar of the cells
    assert "training: 100%" in err and "3/3" in err  # the kernel's tqdm, as text
    assert "UserWarning: a warning from a cell" in err  # other warnings are shown
    assert "without encryption" not in err


def test_executed_copy_keeps_only_the_final_bar(tiny_run):
    out, _, _ = tiny_run
    nb = nbformat.read(out / "00_tiny.ipynb", 4)
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if o.get("name") == "stderr")
    assert "training: 100%" in text and "training:   0%" not in text


def test_timings_are_recorded_and_estimate_the_rest(tiny_run, tmp_path):
    out, results, _ = tiny_run
    timings = runner.load_timings(out / runner.TIMINGS_NAME)
    assert timings == {"00_tiny": round(results[0].seconds, 1)}
    assert runner.estimate(["00_tiny"], {"00_tiny": 125.0}) == "about 2m 05s left"
    assert runner.estimate(["a", "b"], {"a": 3700.0}) == "about 1h 01m left, plus b (not timed yet)"
    path = tmp_path / runner.TIMINGS_NAME
    runner.record_timing(path, runner.RunResult("x", False, path, 9.0, "boom"))
    assert not path.exists()  # a failed run stops early: its time would mislead
    runner.record_timing(path, runner.RunResult("x", True, path, 9.04))
    runner.record_timing(path, runner.RunResult("y", True, path, 1.0))
    assert runner.load_timings(path) == {"x": 9.0, "y": 1.0}
    path.write_text("not json")
    assert runner.load_timings(path) == {}
    runner.record_timing(path, runner.RunResult("z", True, path, 2.0))
    assert runner.load_timings(path) == {"z": 2.0}
