"""Run the widget notebooks in JupyterLab in a real Chromium and move a slider.

This is what a student does: open the notebook, Run > Run All Cells, drag a slider with
the keyboard and watch the face change. Headless kernels (nbval, papermill) cannot see a
widget that fails to render, a JavaScript error, or a slider that does not reach the kernel.
"""

from __future__ import annotations

import io
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest
from labharness import REPO_ROOT, LabPage, LabServer
from PIL import Image

pytestmark = pytest.mark.browser

RUN_ALL_TIMEOUT_S = 240.0  # a smoke-profile notebook on a slow shared CPU
START_TIMEOUT_S = 60.0  # from "Run All Cells" to the first cell leaving "[ ]:"
WIDGET_RENDER_TIMEOUT_S = 30.0  # from the kernel going idle to every widget view drawn
RERENDER_TIMEOUT_S = 60.0  # from the key presses to a new image from the kernel
KEY_PRESSES = 3  # PageUp moves noUiSlider by 5 steps, so 3 presses cover 15 steps
PIXEL_TOLERANCE = 8  # per-channel difference below this is rendering noise, not a change
MIN_CHANGED_FRACTION = 0.002  # of the image's pixels that must change after the slider moves
MIN_CHANGED_PIXELS = 50

WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"
# What JupyterLab shows for a widget that did not come up; fails the test if seen.
WIDGET_FAILURE_TEXT = ("Error displaying widget", "Loading widget...", "Failed to load model class")


@dataclass(frozen=True)
class NotebookCase:
    """A notebook to run and the slider to move (``None``: the first ``facekit-slider``)."""

    path: str  # relative to the repository root
    slider: str | None = None
    expect_text: tuple[str, ...] = ()  # strings that must appear in the rendered outputs


CASES = [
    # The harness's own fast self-test: plain ipywidgets, no facekit. It also proves the
    # kernel is this venv's Python and that the server passed FACEKIT_PROFILE on.
    pytest.param(
        NotebookCase(
            "tests/browser/fixtures/widget_demo.ipynb",
            slider="hue",
            expect_text=(f"prefix={sys.prefix}", "profile=smoke"),
        ),
        id="widget_demo",
    ),
    pytest.param(NotebookCase("notebooks/00_quickstart.ipynb"), id="00_quickstart"),
    pytest.param(NotebookCase("notebooks/01_synthetic_faces.ipynb", slider="AU12"), id="01_synthetic_faces"),
    # At smoke the flow is barely trained, so an attribute edit moves few pixels: pick another face.
    pytest.param(NotebookCase("notebooks/06_identity_aware_editing.ipynb", slider="face"), id="06_identity_aware_editing"),
    # The pilot explorer's "face" is its figure: the horizon changes it with or without records.
    pytest.param(NotebookCase("notebooks/07_pilot_report.ipynb", slider="horizon months"), id="07_pilot_report"),
]


@pytest.mark.parametrize("case", CASES)
def test_notebook_in_lab(case: NotebookCase, request: pytest.FixtureRequest) -> None:
    """Run All Cells without errors, then a keyboard-moved slider re-renders the face."""
    source = REPO_ROOT / case.path
    if not source.exists():
        pytest.skip(f"{case.path} does not exist yet")
    # Requested only now, so a missing notebook skips without starting a server or browser;
    # the browser first, so a missing Chromium skips without starting the server.
    request.getfixturevalue("browser")
    server: LabServer = request.getfixturevalue("lab_server")
    lab: LabPage = request.getfixturevalue("lab_page")
    out: Path = request.getfixturevalue("artefact_dir")
    page = lab.page

    name = stage_notebook(source, server.root)
    page.goto(server.lab_url(name))
    panel = page.locator(".jp-NotebookPanel:visible")
    # The status bar says "<kernel> | Idle" once the kernel is started *and* connected.
    page.locator("#jp-main-statusbar").get_by_text(re.compile(r"\| Idle$")).wait_for(timeout=120_000)

    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    wait_for_run_all(server, name, panel)
    page.screenshot(path=str(out / "page-after-run.png"))

    executed = check_no_cell_errors(server, name, panel, out)
    check_widgets_rendered(executed, panel)
    rendered = "\n".join(panel.locator(".jp-OutputArea-output").all_inner_texts())
    for text in case.expect_text:
        assert text in rendered, f"{text!r} not in the notebook's outputs:\n{rendered[-2000:]}"

    face = move_slider_and_check_face(server, name, panel, case.slider, out)
    face.evaluate("img => img.scrollIntoView({block: 'center'})")
    page.screenshot(path=str(out / "page-after-slider.png"))
    if lab.console_errors:
        pytest.fail("JavaScript errors in the browser console:\n" + "\n".join(lab.console_errors))


def stage_notebook(source: Path, root: Path) -> str:
    """Copy the notebook into the server root, outputs stripped and kernel pinned to ``python3``.

    Stripped outputs make every execution count and error seen later come from this run;
    pinning the kernelspec avoids JupyterLab's kernel-picker dialog and any other kernel.
    """
    nb = nbformat.read(source, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, root / source.name)
    return source.name


def input_prompts(panel: Any) -> list[str]:
    """The ``[n]:`` prompts of the code cells: ``[ ]`` not run, ``[*]`` queued or running."""
    return [p.strip() for p in panel.locator(".jp-CodeCell .jp-InputPrompt").all_inner_texts()]


def wait_for_run_all(server: LabServer, notebook: str, panel: Any) -> None:
    """Wait until the run has started, no cell is queued or running, and the kernel is idle.

    A failing cell makes the kernel abort the rest, whose prompts go back to ``[ ]``, so
    "every cell numbered" cannot be the end condition; the error check reports those cells.
    The end condition must hold on two polls in a row: the kernel is briefly idle between cells.
    """
    start = time.monotonic()
    while not any(p not in ("[ ]:", "") for p in input_prompts(panel)):
        if time.monotonic() - start > START_TIMEOUT_S:
            pytest.fail(f"Run All Cells did not start a single cell in {START_TIMEOUT_S:.0f} s")
        time.sleep(0.25)
    settled = 0
    while settled < 2:
        if time.monotonic() - start > RUN_ALL_TIMEOUT_S:
            pytest.fail(f"cells still running after {RUN_ALL_TIMEOUT_S:.0f} s: {input_prompts(panel)}")
        time.sleep(1.0)
        busy = any("*" in p for p in input_prompts(panel))
        settled = settled + 1 if not busy and server.kernel_state(notebook) == "idle" else 0


def check_no_cell_errors(server: LabServer, notebook: str, panel: Any, out: Path) -> Any:
    """No error output, on screen or in the saved notebook, and every code cell ran.

    JupyterLab 4 renders an exception exactly like a stderr stream (a ``jp-RenderedText``
    with ``data-mime-type="application/vnd.jupyter.stderr"``), so on screen it is told apart
    by its "Traceback" banner; saving the notebook and reading it back through the contents
    API gives the exact ``output_type == "error"`` outputs and execution counts. Returns
    that saved notebook.
    """
    stderr = panel.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
    tracebacks = [t for t in stderr.all_inner_texts() if "Traceback" in t]
    assert not tracebacks, "a cell shows a traceback:\n" + "\n\n".join(tracebacks)

    def last_modified() -> str:
        return str(server.api(f"/api/contents/{notebook}?content=0")["last_modified"])

    before = last_modified()
    panel.locator('jp-button[data-command="docmanager:save"]').click()  # the toolbar's Save
    deadline = time.monotonic() + 30.0
    while last_modified() == before:
        if time.monotonic() > deadline:
            pytest.fail("Save did not write the notebook within 30 s")
        time.sleep(0.25)
    # The server writes in place, so the file can be read half-written; JupyterLab clears
    # the tab's dirty mark only once the server has answered the save.
    panel.page.locator(".lm-TabBar-tab.jp-mod-dirty").first.wait_for(state="detached")
    saved = server.api(f"/api/contents/{notebook}")
    nb = nbformat.from_dict(saved["content"])
    nbformat.write(nb, out / f"executed-{notebook}")
    errors = [
        f"cell {i}: {o.get('ename')}: {o.get('evalue')}"
        for i, cell in enumerate(nb.cells)
        for o in cell.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert not errors, "error outputs in the executed notebook:\n" + "\n".join(errors)
    not_run = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code" and cell.execution_count is None]
    assert not not_run, f"code cells that never ran: {not_run}"
    return nb


def check_widgets_rendered(nb: Any, panel: Any) -> None:
    """Every widget output is drawn by the widget manager, not left as text or "Loading widget".

    A rendered widget view is the ``.jupyter-widgets`` element directly inside an output
    area; without the ipywidgets front-end, JupyterLab falls back to the ``text/plain`` repr.
    Views render asynchronously after the kernel is idle, hence the wait.
    """
    expected = sum(
        WIDGET_VIEW_MIME in out.get("data", {}) for cell in nb.cells for out in cell.get("outputs", [])
    )
    views = panel.locator(".jp-OutputArea-output > .jupyter-widgets")
    deadline = time.monotonic() + WIDGET_RENDER_TIMEOUT_S
    while views.count() < expected:
        if time.monotonic() > deadline:
            pytest.fail(f"{views.count()} of {expected} widget outputs rendered as widgets")
        time.sleep(0.25)
    rendered = "\n".join(panel.locator(".jp-OutputArea-output").all_inner_texts())
    for text in WIDGET_FAILURE_TEXT:
        assert text not in rendered, f"a widget did not render ({text!r}):\n{rendered[-2000:]}"


def find_slider(panel: Any, description: str | None) -> Any:
    """The first ``facekit-slider`` whose label is ``description`` (any, when ``None``)."""
    sliders = panel.locator(".facekit-slider")
    if description is not None:
        label = panel.page.locator(".widget-label", has_text=re.compile(rf"^\s*{re.escape(description)}\s*$"))
        sliders = sliders.filter(has=label)
    if sliders.count() == 0:
        labels = panel.locator(".facekit-slider .widget-label").all_inner_texts()
        pytest.fail(f"no facekit-slider {description or ''} rendered; sliders seen: {labels}")
    return sliders.first


def wait_for_face(server: LabServer, notebook: str, face: Any, old_src: str) -> str:
    """Wait for the kernel's re-render: a new ``src`` blob, then no change while the kernel idles."""
    start = time.monotonic()
    last, settled = old_src, 0
    while settled < 2:
        if time.monotonic() - start > RERENDER_TIMEOUT_S:
            pytest.fail(f"the face image did not change within {RERENDER_TIMEOUT_S:.0f} s of moving the slider")
        time.sleep(0.5)
        src = face.get_attribute("src")
        stable = src == last and src != old_src and server.kernel_state(notebook) == "idle"
        settled = settled + 1 if stable else 0
        last = src
    return last


def changed_pixels(before: bytes, after: bytes, diff_path: Path) -> tuple[int, int]:
    """Pixels whose colour moved by more than the tolerance, and the pixel count.

    The changed pixels are also saved, white on black, to ``diff_path`` for the artefacts.
    """
    a = np.asarray(Image.open(io.BytesIO(before)).convert("RGB"), dtype=np.int16)
    b = np.asarray(Image.open(io.BytesIO(after)).convert("RGB"), dtype=np.int16)
    if a.shape != b.shape:  # the widget resized: the face certainly changed
        return b.shape[0] * b.shape[1], b.shape[0] * b.shape[1]
    mask = np.abs(a - b).max(axis=-1) > PIXEL_TOLERANCE
    Image.fromarray(mask.astype(np.uint8) * 255).save(diff_path)
    return int(mask.sum()), mask.size


def move_slider_and_check_face(
    server: LabServer, notebook: str, panel: Any, description: str | None, out: Path
) -> Any:
    """Press PageUp/PageDown on the slider handle; the readout and the face must change.

    The handle is noUiSlider's ``.noUi-handle`` (``role="slider"``, focusable, keyboard
    driven). It moves towards the farther end so the value really changes; with
    ``continuous_update=False`` each key press is a committed change sent to the kernel.
    The face is the ``facekit-face`` image of the same ``facekit-explorer``; it is returned.
    """
    slider = find_slider(panel, description)
    explorer = slider.locator(
        "xpath=ancestor::*[contains(concat(' ', normalize-space(@class), ' '), ' facekit-explorer ')][1]"
    )
    assert explorer.count() == 1, "the slider is not inside a widget with class facekit-explorer"
    face = explorer.locator("img.facekit-face").first
    face.wait_for(state="visible")
    handle = slider.locator(".noUi-handle").first
    readout = slider.locator(".widget-readout").first

    face.scroll_into_view_if_needed()
    old_src = face.get_attribute("src") or ""
    before = face.screenshot(path=str(out / "face-before.png"))
    value, lo, hi = (float(handle.get_attribute(a) or "nan") for a in ("aria-valuenow", "aria-valuemin", "aria-valuemax"))
    key = "PageUp" if hi - value >= value - lo else "PageDown"
    old_readout = readout.inner_text()
    for _ in range(KEY_PRESSES):
        handle.press(key)
    new_value = float(handle.get_attribute("aria-valuenow") or "nan")
    assert new_value != value, f"{key} x{KEY_PRESSES} did not move the slider from {value}"
    assert readout.inner_text() != old_readout, "the slider moved but its readout did not update"

    wait_for_face(server, notebook, face, old_src)
    face.scroll_into_view_if_needed()
    after = face.screenshot(path=str(out / "face-after.png"))
    changed, total = changed_pixels(before, after, out / "face-diff.png")
    (out / "face-diff.txt").write_text(
        f"slider {description or '(first)'}: {value} -> {new_value} ({key} x{KEY_PRESSES})\n"
        f"changed pixels: {changed} of {total} ({changed / total:.2%})\n"
    )
    needed = max(MIN_CHANGED_PIXELS, int(MIN_CHANGED_FRACTION * total))
    assert changed >= needed, f"only {changed} of {total} face pixels changed (need {needed})"
    return face
