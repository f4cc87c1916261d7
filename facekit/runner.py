"""Batch runs of the notebooks through papermill (``facekit run``).

A failing notebook never stops the batch: its executed copy is kept, with the failing
cell's output, and the summary says which one failed and where to look.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from facekit.config import get_profile, results_dir


@dataclasses.dataclass
class RunResult:
    name: str
    ok: bool
    output: Path
    seconds: float
    error: str | None = None


def parse_params(items: Sequence[str]) -> dict[str, Any]:
    """``["k=v", ...]`` to a dict; values are parsed as YAML (``3`` is an int, ``a`` a string)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--param {item!r} is not valid; write it as key=value")
        key, value = item.split("=", 1)
        if not key.isidentifier():
            raise ValueError(f"--param key {key!r} is not a valid Python name")
        out[key] = yaml.safe_load(value)
    return out


def discover(folder: str | Path, only: Sequence[str] | None = None) -> list[Path]:
    """Numbered notebooks in ``folder``; ``only`` filters by name or number prefix (``"01"``)."""
    notebooks = sorted(p for p in Path(folder).glob("[0-9][0-9]_*.ipynb"))
    if only:
        keep = [p for p in notebooks if any(p.stem == o or p.stem.startswith(f"{o}_") or p.name == o for o in only)]
        missing = [o for o in only if not any(p.stem == o or p.stem.startswith(f"{o}_") or p.name == o for p in notebooks)]
        if missing:
            raise ValueError(f"--only {missing} matched no notebook; available: {[p.stem for p in notebooks]}")
        notebooks = keep
    return notebooks


def run_one(notebook: Path, output: Path, profile: str, params: dict[str, Any]) -> RunResult:
    """Execute one notebook; the executed copy is written atomically, failed or not."""
    import papermill as pm

    os.environ["FACEKIT_PROFILE"] = profile
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".running.{output.name}")
    t0 = time.perf_counter()
    error = None
    try:
        pm.execute_notebook(str(notebook), str(tmp), parameters={"profile": profile, **params},
                            kernel_name="python3", progress_bar=False, cwd=str(notebook.parent))
    except pm.PapermillExecutionError as e:
        error = f"cell {e.exec_count}: {e.ename}: {e.evalue}"
    except Exception as e:  # a batch survives anything one notebook does
        error = f"{type(e).__name__}: {e}"
    if tmp.exists():
        os.replace(tmp, output)
    return RunResult(notebook.stem, error is None, output, time.perf_counter() - t0, error)


def run_notebooks(
    folder: str | Path = "notebooks",
    profile: str | None = None,
    only: Sequence[str] | None = None,
    params: dict[str, Any] | None = None,
    jobs: int = 1,
    out_dir: str | Path | None = None,
) -> list[RunResult]:
    """Run the numbered notebooks of ``folder`` at ``profile``; executed copies go to
    ``out_dir`` (default ``results/<profile>/notebooks``)."""
    profile = get_profile(profile)
    if jobs < 1:
        raise ValueError(f"jobs={jobs} is not valid; pass an int >= 1")
    notebooks = discover(folder, only)
    out = Path(out_dir) if out_dir else results_dir(profile) / "notebooks"
    tasks = [(nb, out / nb.name, profile, params or {}) for nb in notebooks]
    if jobs == 1 or len(tasks) <= 1:
        return [run_one(*t) for t in tasks]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(run_one, *t) for t in tasks]
        return [f.result() for f in futures]
