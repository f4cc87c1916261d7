"""The committed notebooks show what they draw: nbval-lax re-runs them at smoke but never looks
at the committed outputs, and notebook 07 was once committed with none of its 4 figures."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

# A cell draws a figure when a line of its code (comments aside) makes one the project's way:
# binds ``fig`` (every figure helper's result is bound to it, e.g. ``fig = face_grid(...)``,
# ``fig, ax = plt.subplots()``), calls a pyplot drawing function, plots from pandas
# (``.plot(`` / ``.plot.bar(``) or displays a figure.
DRAWS = re.compile(
    r"^\s*fig\w*\s*(,[^=\n]*)?=(?!=)"
    r"|\bplt\.(subplots|figure|imshow|plot|bar|barh|hist|scatter|show)\("
    r"|\.plot(\.\w+)?\("
    r"|\bdisplay\(\s*fig",
    re.M,
)
IMAGES = ("image/png", "image/svg+xml", "image/jpeg")
# A section that may be skipped on purpose prints this (facekit.real.orl.orl_or_skip).
SKIPPED = "skipping"


def draws_figure(source: str) -> bool:
    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("#", "%", "!")))
    return bool(DRAWS.search(code))


def problems(nb: nbformat.NotebookNode) -> list[str]:
    """One line per code cell that has an error output, or draws a figure and shows no image
    (unless its output says the section was skipped)."""
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        outputs = cell.get("outputs", [])
        for out in outputs:
            if out.get("output_type") == "error":
                found.append(f"cell {i}: error output {out.get('ename')}: {out.get('evalue')}")
        if draws_figure(cell.source):
            has_image = any(kind in out.get("data", {}) for out in outputs for kind in IMAGES)
            skipped = any(SKIPPED in "".join(out.get("text", "")) for out in outputs)
            if not (has_image or skipped):
                first = next(line for line in cell.source.splitlines() if draws_figure(line))
                found.append(f"cell {i} draws a figure ({first.strip()[:60]!r}) but has no image output")
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebook_shows_its_figures_and_no_errors(path):
    bad = problems(nbformat.read(path, as_version=4))
    assert not bad, f"{path.name}: re-execute it at the cpu profile (make notebooks):\n" + "\n".join(bad)


def test_the_check_catches_a_missing_figure_and_an_error():
    cell = nbformat.v4.new_code_cell
    png = {"output_type": "display_data", "data": {"image/png": "iVBOR"}, "metadata": {}}
    nb = nbformat.v4.new_notebook(cells=[
        cell("fig = report.kpi_figure(result)"),
        cell("fig, ax = plt.subplots()\nax.plot([1, 2])", outputs=[nbformat.v4.new_output(**png)]),
        cell("df.plot.bar()"),
        cell("x = 1", outputs=[nbformat.v4.new_output("error", ename="ValueError", evalue="bad", traceback=[])]),
        cell("if orl_or_skip('the demo'):\n    fig = face_grid(x)",
             outputs=[nbformat.v4.new_output("stream", name="stdout", text="ORL faces not found: skipping the demo.\n")]),
        cell("# fig = face_grid(x)\nfigure_count == 2\nprint(fig)"),
    ])
    assert problems(nb) == [
        "cell 0 draws a figure ('fig = report.kpi_figure(result)') but has no image output",
        "cell 2 draws a figure ('df.plot.bar()') but has no image output",
        "cell 3: error output ValueError: bad",
    ]


def test_importing_the_report_keeps_the_backend():
    """The switch to Agg at import is what hid notebook 07's figures."""
    code = "import matplotlib; matplotlib.use('svg'); import facekit.report; print(matplotlib.get_backend())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "svg"
