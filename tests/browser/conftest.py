"""Fixtures for the browser tests: one JupyterLab server and one headless Chromium per session.

Both take seconds to start on a small CPU, so they are shared; every test gets its own
browser context and page, and its kernels are shut down when it ends. Missing tools
(Playwright, JupyterLab, a Chromium binary) *skip* the tests, so a run in which no browser
started never reports a pass.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from labharness import (
    CHROMIUM_ARGS,
    OUTPUT_ROOT,
    LabPage,
    LabServer,
    LabStartError,
    chromium_executable,
    start_lab_server,
    stop_lab_server,
)


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """JupyterLab from this venv; its log goes to ``test-output/browser/jupyter-server.log``."""
    pytest.importorskip("jupyterlab", reason="jupyterlab is not installed (pip install -e .[dev])")
    OUTPUT_ROOT.mkdir(parents=True, exist_ok=True)
    try:
        server = start_lab_server(tmp_path_factory.mktemp("lab"), OUTPUT_ROOT / "jupyter-server.log")
    except LabStartError as exc:
        pytest.fail(str(exc))
    try:
        yield server
    finally:
        stop_lab_server(server)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Chromium: Debian's build, never a Playwright download."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    executable = chromium_executable()
    if executable is None:
        pytest.skip(
            "no Chromium found (apt-get install --no-install-recommends chromium,"
            f" or point FACEKIT_CHROMIUM at one; it is {os.environ.get('FACEKIT_CHROMIUM')!r})"
        )
    playwright = sync_api.sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        playwright.stop()


@pytest.fixture
def artefact_dir(request: pytest.FixtureRequest) -> Path:
    """``test-output/browser/<test name>/``, emptied first so CI artefacts are from this run."""
    path = OUTPUT_ROOT / re.sub(r"[^\w.-]+", "_", request.node.name).strip("_")
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


@pytest.fixture
def lab_page(browser: Any, lab_server: LabServer, artefact_dir: Path) -> Iterator[LabPage]:
    """A fresh page; on teardown its last screenshot and console log join the artefacts."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    lab = LabPage(page, lab_server.url)
    lab.attach()
    try:
        yield lab
    finally:
        try:
            page.screenshot(path=str(artefact_dir / "page-final.png"))
        finally:
            (artefact_dir / "console.txt").write_text("\n".join(lab.console_log) + "\n")
            context.close()
            lab_server.shutdown_sessions()
