"""The JupyterLab server and browser plumbing behind the browser tests' fixtures.

A module of its own (not conftest.py) so the test module can import its types: pytest
imports every rootless conftest.py under the same name, ``conftest``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parents[2]
OUTPUT_ROOT = REPO_ROOT / "test-output" / "browser"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

# JupyterLab user settings that keep the UI quiet and deterministic: no news/update checks
# (they would reach the internet and pop a toast over the notebook), and every cell attached
# to the DOM (the default "contentVisibility" windowing lets the browser skip off-screen cells).
LAB_USER_SETTINGS: dict[str, dict[str, Any]] = {
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
}


class LabStartError(RuntimeError):
    """JupyterLab exited or never answered; the message carries the end of its log."""


def chromium_executable() -> str | None:
    """Debian's Chromium, or the one ``FACEKIT_CHROMIUM`` names (a path or a command)."""
    override = os.environ.get("FACEKIT_CHROMIUM")
    candidates = [override] if override else ["chromium", "chromium-browser", "/usr/bin/chromium"]
    return next((found for c in candidates if (found := shutil.which(c))), None)


@dataclass
class LabServer:
    """A running JupyterLab: where it listens, its token, and the folder it serves."""

    url: str
    token: str
    root: Path
    log_path: Path
    proc: subprocess.Popen[bytes] = field(repr=False)

    def api(self, path: str, method: str = "GET", timeout: float = 10.0) -> Any:
        """Call the REST API with the token; returns the decoded JSON (``None`` when empty)."""
        req = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def lab_url(self, notebook: str) -> str:
        """URL that opens ``notebook`` alone: ``reset`` drops tabs restored from earlier tests."""
        return f"{self.url}/lab/tree/{notebook}?token={self.token}&reset"

    def kernel_state(self, notebook: str) -> str | None:
        """``execution_state`` of the kernel behind ``notebook``'s session, if it has one."""
        for session in self.api("/api/sessions"):
            if session.get("path") == notebook and session.get("kernel"):
                return str(session["kernel"]["execution_state"])
        return None

    def shutdown_sessions(self) -> None:
        """Stop every kernel, so the next test starts on an idle CPU."""
        for session in self.api("/api/sessions"):
            self.api(f"/api/sessions/{session['id']}", method="DELETE", timeout=30.0)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_env(tmp: Path) -> dict[str, str]:
    """Environment of the server and so of its kernels (they inherit it).

    Jupyter's user dirs point into ``tmp`` so nobody's ~/.jupyter or ~/.local/share/jupyter
    (a stray ``python3`` kernelspec, a saved workspace) leaks in: ``python3`` is then the
    kernelspec of this interpreter's prefix, whose ``python`` argv jupyter_client replaces
    by the server's ``sys.executable``, i.e. this venv's Python, where facekit is installed.
    """
    env = dict(os.environ)
    for name in ("JUPYTER_PATH", "JUPYTER_CONFIG_PATH", "PYTHONPATH"):
        env.pop(name, None)
    env.update(
        JUPYTER_CONFIG_DIR=str(tmp / "jupyter-config"),
        JUPYTER_DATA_DIR=str(tmp / "jupyter-data"),
        JUPYTER_RUNTIME_DIR=str(tmp / "jupyter-runtime"),
        FACEKIT_PROFILE="smoke",
        FACEKIT_CACHE=str(tmp / "facekit-cache"),
        FACEKIT_RESULTS=str(tmp / "facekit-results"),
        FACEKIT_OFFLINE="1",
        MPLBACKEND="module://matplotlib_inline.backend_inline",
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
    )
    settings = tmp / "jupyter-config" / "lab" / "user-settings"
    for plugin, values in LAB_USER_SETTINGS.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    return env


def start_lab_server(tmp: Path, log_path: Path, timeout: float = 120.0) -> LabServer:
    """Start JupyterLab on 127.0.0.1 (random port and token) serving ``tmp/root``.

    Returns once ``/api/status`` answers with the token; raises ``LabStartError`` otherwise
    (after stopping the process).
    """
    root = tmp / "root"
    root.mkdir()
    port, token = _free_port(), secrets.token_hex(16)
    cmd = [
        sys.executable, "-m", "jupyter", "lab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.terminals_enabled=False",
        # No requests to PyPI or GitHub from the server: CI has no general internet.
        "--LabApp.extension_manager=readonly",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]  # fmt: skip
    if os.geteuid() == 0:  # containers and CI run as root; Jupyter refuses that by default
        cmd.append("--allow-root")
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=root,
            env=_server_env(tmp),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so teardown can kill it whole
        )
    server = LabServer(f"http://127.0.0.1:{port}", token, root, log_path, proc)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise LabStartError(f"JupyterLab exited with {proc.returncode}:\n{server.log_tail()}")
        try:
            server.api("/api/status", timeout=2.0)
            return server
        except (OSError, urllib.error.URLError):
            if time.monotonic() > deadline:
                stop_lab_server(server)
                raise LabStartError(f"JupyterLab did not answer in {timeout:.0f} s:\n{server.log_tail()}") from None
            time.sleep(0.5)


def stop_lab_server(server: LabServer) -> None:
    """Ask the server to shut down (it stops its kernels), then kill its process group.

    Kernels run in sessions of their own, out of reach of ``killpg``; the REST shutdown
    stops them, and ipykernel also exits by itself once its parent server is gone.
    """
    if server.proc.poll() is None:
        try:
            server.api("/api/shutdown", method="POST", timeout=10.0)
            server.proc.wait(timeout=20.0)
        except (OSError, urllib.error.URLError, subprocess.TimeoutExpired):
            pass
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(server.proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            server.proc.wait(timeout=10.0)
        except subprocess.TimeoutExpired:
            continue


@dataclass
class LabPage:
    """A Playwright page plus what its browser console reported while the test ran."""

    page: Any
    lab_url: str
    console_errors: list[str] = field(default_factory=list)
    console_log: list[str] = field(default_factory=list)

    def attach(self) -> None:
        """Start recording console messages and uncaught page errors."""
        self.page.on("console", self._on_console)
        self.page.on("pageerror", self._on_pageerror)

    def _on_console(self, msg: Any) -> None:
        url = msg.location.get("url", "")
        line = f"[{msg.type}] {msg.text} ({url})"
        self.console_log.append(line)
        if msg.type == "error" and not benign_console_error(msg.text, url, self.lab_url):
            self.console_errors.append(line)

    def _on_pageerror(self, error: Any) -> None:
        line = f"[pageerror] {error}"
        self.console_log.append(line)
        self.console_errors.append(line)


def benign_console_error(text: str, url: str, lab_url: str) -> bool:
    """The one kind of console error ignored: a resource that failed to load from another host.

    Chromium logs "Failed to load resource: ..." when any fetch fails; with no internet in CI
    that can only be a fetch to an external host (fonts, a CDN) and says nothing about the
    notebook. Failures on the Jupyter server itself stay errors.
    """
    if not text.startswith("Failed to load resource"):
        return False
    host = urlsplit(url).netloc
    return bool(host) and host != urlsplit(lab_url).netloc
