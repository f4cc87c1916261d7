"""Batch runs of the notebooks through papermill (``facekit run``).

A failing notebook never stops the batch: its executed copy is kept, with the failing
cell's output, and the summary says which one failed and where to look.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from facekit.config import PROFILES, environ, get_profile, results_dir
from facekit.io import atomic_write
from facekit.schema import SchemaError, from_mapping, load_yaml


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
        try:
            out[key] = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise ValueError(f"--param {item!r}: the value is not valid YAML ({getattr(e, 'problem', e)}); "
                             f"quote a string, e.g. {key}='\"{value}\"'") from None
    return out


def discover(folder: str | Path, only: Sequence[str] | None = None) -> list[Path]:
    """Numbered notebooks in ``folder``; ``only`` filters by name or number prefix (``"01"``)."""
    if not Path(folder).is_dir():
        raise ValueError(f"--notebooks {str(folder)!r} is not a folder; pass the folder that holds the NN_name.ipynb files")
    notebooks = sorted(p for p in Path(folder).glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        raise ValueError(f"--notebooks {str(folder)!r} holds no numbered notebooks (NN_name.ipynb)")
    if only:
        keep = [p for p in notebooks if any(p.stem == o or p.stem.startswith(f"{o}_") or p.name == o for o in only)]
        missing = [o for o in only if not any(p.stem == o or p.stem.startswith(f"{o}_") or p.name == o for p in notebooks)]
        if missing:
            raise ValueError(f"--only {missing} matched no notebook; available: {[p.stem for p in notebooks]}")
        notebooks = keep
    return notebooks


def run_one(notebook: Path, output: Path, profile: str, params: dict[str, Any],
            results: Path | None = None, *, progress: bool = False) -> RunResult:
    """Execute one notebook; the executed copy is written atomically, failed or not.

    ``results`` redirects the notebook's metric records (``FACEKIT_RESULTS``), so that grid runs
    of one notebook do not overwrite each other's records. ``progress`` shows a bar of the
    cells and the kernel's stderr (warnings, and the training bars as text) on our stderr.
    The kernel's "running over TCP without encryption" warning is filtered out (it talks only to
    this process, on this machine); its other log lines and every warning of a cell are shown.
    """
    import papermill as pm

    from facekit.train import TEXT_PROGRESS_ENV

    env = {"FACEKIT_PROFILE": profile}
    if results is not None:
        env["FACEKIT_RESULTS"] = str(results)
    if progress:
        env[TEXT_PROGRESS_ENV] = "1"
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".running.{output.name}")
    t0 = time.perf_counter()
    error = None
    try:
        with environ(env), tempfile.TemporaryDirectory(prefix="facekit-kernel-") as folder:  # the kernel inherits env
            pm.execute_notebook(str(notebook), str(tmp), parameters={"profile": profile, **params},
                                kernel_name="python3", cwd=str(notebook.parent),
                                progress_bar={"desc": notebook.stem, "leave": False} if progress else False,
                                stderr_file=sys.stderr if progress else None, coalesce_streams=True,
                                extra_arguments=[f"--IPKernelApp.extra_config_file={_kernel_config(Path(folder))}"])
    except pm.PapermillExecutionError as e:
        error = f"cell {e.exec_count}: {e.ename}: {e.evalue}"
    except Exception as e:  # a batch survives anything one notebook does
        error = f"{type(e).__name__}: {e}"
    if tmp.exists():
        os.replace(tmp, output)
    return RunResult(notebook.stem, error is None, output, time.perf_counter() - t0, error)


# The kernel's "running over TCP without encryption" warning, repeated for every notebook, buried
# the run's own output; its ports listen on localhost for this one run. This IPython config drops
# that one log line (the filter is defined in the file: importing facekit would load torch first).
KERNEL_CONFIG = """\
import logging


class NoTCPWarning(logging.Filter):
    def filter(self, record):
        return "running over TCP without encryption" not in record.getMessage()


c.IPKernelApp.logging_config = {"filters": {"facekit": {"()": NoTCPWarning}},
                                "handlers": {"console": {"filters": ["facekit"]}}}
"""


def _kernel_config(folder: Path) -> Path:
    path = folder / "ipython_kernel_config.py"
    path.write_text(KERNEL_CONFIG)
    return path


# ----------------------------------------------------------------------------- timings

TIMINGS_NAME = "timings.json"


def load_timings(path: Path) -> dict[str, float]:
    """Seconds of the last successful run of each notebook, from ``path`` (empty if absent)."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        return {str(k): float(v["seconds"]) for k, v in data.items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        return {}  # a damaged file only costs the estimate; the next run rewrites it


def record_timing(path: Path, result: RunResult) -> None:
    """Add a successful run's time to ``path`` (failed runs stop early, so they are not kept)."""
    if not result.ok:
        return
    data = json.loads(path.read_text()) if path.is_file() and load_timings(path) else {}
    data[result.name] = {"seconds": round(result.seconds, 1),
                         "at": datetime.now(UTC).isoformat(timespec="seconds")}
    atomic_write(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def estimate(names: Sequence[str], timings: dict[str, float]) -> str:
    """``"about 12m 30s left"`` for ``names`` from ``timings``, naming the untimed ones."""
    known = [timings[n] for n in names if n in timings]
    unknown = [n for n in names if n not in timings]
    if not known:
        return "no recorded timings yet for " + ", ".join(unknown) + " (this run records them)"
    text = f"about {_duration(sum(known))} left"
    return text + (f", plus {', '.join(unknown)} (not timed yet)" if unknown else "")


def _duration(seconds: float) -> str:
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_notebooks(
    folder: str | Path = "notebooks",
    profile: str | None = None,
    only: Sequence[str] | None = None,
    params: dict[str, Any] | None = None,
    jobs: int = 1,
    out_dir: str | Path | None = None,
    progress: bool = True,
) -> list[RunResult]:
    """Run the numbered notebooks of ``folder`` at ``profile``; executed copies go to
    ``out_dir`` (default ``results/<profile>/notebooks``).

    With ``progress`` it says on stderr when each notebook starts and ends (status, time, the
    executed copy) and how long the rest should take, from the times of earlier successful runs
    kept in ``<out_dir>/timings.json``; one job at a time also shows the cells and the kernel's
    stderr. Every successful run updates the timings.
    """
    profile = get_profile(profile)
    if jobs < 1:
        raise ValueError(f"jobs={jobs} is not valid; pass an int >= 1")
    notebooks = discover(folder, only)
    out = Path(out_dir) if out_dir else results_dir(profile) / "notebooks"
    timings_path = out / TIMINGS_NAME
    timings = load_timings(timings_path)
    tasks = [(nb, out / nb.name, profile, params or {}) for nb in notebooks]
    say = _say if progress else (lambda line: None)
    say(f"facekit run: {len(tasks)} notebook(s) at profile {profile}, executed copies in {out}; "
        + estimate([nb.stem for nb in notebooks], timings))
    n = len(tasks)
    results: list[RunResult] = []

    def done(i: int, res: RunResult, left: list[str]) -> None:
        record_timing(timings_path, res)
        status = "ok" if res.ok else f"FAILED ({res.error})"
        say(f"[{i}/{n}] {res.name}: {status} in {_duration(res.seconds)} -> {res.output}")
        if left:
            say(f"      {estimate(left, timings)}")

    if jobs == 1 or n <= 1:
        for i, task in enumerate(tasks, 1):
            say(f"[{i}/{n}] {task[0].stem}: started" + (f" (last time {_duration(timings[task[0].stem])})"
                                                       if task[0].stem in timings else ""))
            results.append(run_one(*task, progress=progress))
            done(i, results[-1], [t[0].stem for t in tasks[i:]])
        return results
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        say(f"started {n} notebooks in {jobs} processes: {', '.join(t[0].stem for t in tasks)}")
        futures = {pool.submit(run_one, *t): t[0].stem for t in tasks}
        left = [t[0].stem for t in tasks]
        for i, future in enumerate(as_completed(futures), 1):
            left.remove(futures[future])
            done(i, future.result(), left)
        return [f.result() for f in futures]


# ----------------------------------------------------------------------------- grids


@dataclasses.dataclass(frozen=True)
class GridFile:
    """The schema of a grid YAML file (see :class:`Grid`)."""

    parameters: dict[str, list[Any]]
    notebooks: str | int | list[str | int] | None = None
    profile: str | None = None
    fixed: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Grid:
    """A parameter grid from YAML: ``notebooks`` (names or number prefixes; default all),
    ``profile`` (optional), ``parameters`` (each a list: the grid is their product) and
    ``fixed`` (the same for every run)."""

    notebooks: tuple[str, ...] | None
    profile: str | None
    parameters: dict[str, list[Any]]
    fixed: dict[str, Any]

    @classmethod
    def load(cls, path: str | Path) -> Grid:
        """A grid from YAML, checked against :class:`GridFile` (:mod:`facekit.schema`)."""
        p = Path(path)
        data = load_yaml(p, "grid file")
        f = from_mapping(GridFile, {} if data is None else data, str(p))
        if not f.parameters:
            raise SchemaError(f"{p}: parameters={f.parameters!r} is not valid; map names to lists of values, "
                              "e.g. seed: [0, 1, 2]")
        for k, v in f.parameters.items():
            if not k.isidentifier():
                raise SchemaError(f"{p}: parameter {k!r} is not valid; pass a Python name")
            if not v:
                raise SchemaError(f"{p}: parameters.{k}={v!r} is not valid; pass a non-empty list")
        for k in f.fixed:
            if not k.isidentifier():
                raise SchemaError(f"{p}: fixed parameter {k!r} is not valid; pass a Python name")
        if f.profile is not None and f.profile not in PROFILES:
            raise SchemaError(f"{p}: profile={f.profile!r} is not valid; pass one of {list(PROFILES)}")
        nbs = None if f.notebooks is None else tuple(str(n) for n in (
            [f.notebooks] if isinstance(f.notebooks, str | int) else f.notebooks))
        return cls(nbs, f.profile, f.parameters, f.fixed)

    def points(self) -> list[dict[str, Any]]:
        keys = list(self.parameters)
        return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*self.parameters.values())]


def _slug(params: dict[str, Any]) -> str:
    return "__".join(f"{k}={re.sub(r'[^A-Za-z0-9.+-]', '_', str(v))}" for k, v in params.items())


def run_grid(grid: Grid | str | Path, folder: str | Path = "notebooks", profile: str | None = None,
             jobs: int = 1, out_dir: str | Path | None = None) -> tuple[list[RunResult], Path]:
    """Every notebook at every grid point; each run keeps its executed notebook and its own
    records. A failing run never stops the others. Returns the results and ``summary.csv``,
    whose columns are the notebook, the parameters, the status, the time and each run's
    recorded metrics (``<record>/<metric>``)."""
    g = grid if isinstance(grid, Grid) else Grid.load(grid)
    profile = get_profile(profile or g.profile)
    if jobs < 1:
        raise ValueError(f"jobs={jobs} is not valid; pass an int >= 1")
    notebooks = discover(folder, g.notebooks)
    out = Path(out_dir) if out_dir else results_dir(profile) / "grid"
    tasks, rows = [], []
    for nb in notebooks:
        for point in g.points():
            run = out / nb.stem / _slug(point)
            tasks.append((nb, run / nb.name, profile, {**g.fixed, **point}, run / "results"))
            rows.append({"notebook": nb.stem, **point})
    if jobs == 1 or len(tasks) <= 1:
        results = [run_one(*t) for t in tasks]
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            results = [f.result() for f in [pool.submit(run_one, *t) for t in tasks]]
    for row, task, res in zip(rows, tasks, results, strict=True):
        row.update(status="ok" if res.ok else "failed", seconds=round(res.seconds, 1), error=res.error or "",
                   output=str(res.output))
        for rec in sorted((task[4] / profile).glob("*.json")):
            metrics = json.loads(rec.read_text()).get("metrics", {})
            row.update({f"{rec.stem}/{k}": v.get("value") for k, v in metrics.items()})
    frame = pd.DataFrame(rows)
    summary = out / "summary.csv"
    atomic_write(summary, frame.to_csv(index=False))
    atomic_write(out / "summary.md", _markdown(frame.drop(columns=["output"])))
    return results, summary


def _markdown(frame: pd.DataFrame) -> str:
    def cell(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v).replace("|", "/")

    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"
