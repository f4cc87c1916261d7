"""Metric records: the writer and the reader of ``results/<profile>/<notebook>.json``.

Every notebook reports its headline numbers through :func:`record`, which writes a user's runs to
``results/<profile>/`` (git-ignored). The records the repository ships live in
``results/reference/<profile>/``, which nothing here writes. Readers (:func:`load_records`,
:func:`read_record`) take the user's record of a notebook when there is one, else the
reference one, and say which (``Records.sources``). The pilot report and the benchmarks read
only these records.
"""

from __future__ import annotations

import functools
import json
import math
import re
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from facekit._version import __version__
from facekit.config import config_hash, get_profile, results_dir
from facekit.io import atomic_write
from facekit.metrics import ArrayLike, as_numpy, bootstrap_ci, mean_ci

__all__ = ["Metric", "Records", "SeedScores", "check_metric_name", "check_metric_names", "claim_difference",
           "claims_table", "declared_metrics", "expand_names", "git_revision", "load_records", "metric_name",
           "parse_metric_name", "read_record", "record", "reference_dir", "seed_scores"]


@dataclass(frozen=True)
class Metric:
    """One headline number. ``ci`` is the (low, high) interval at ``ci_level`` when the number
    comes from several seeds (``ci_method="t"``) or a bootstrap (``"bootstrap"``)."""

    name: str
    value: float
    ci: tuple[float, float] | None = None
    n: int | None = None
    seeds: tuple[int, ...] = ()
    values: tuple[float, ...] = ()
    ci_method: str | None = None
    ci_level: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_seeds(
        cls, name: str, values: ArrayLike, seeds: Sequence[int], level: float = 0.95
    ) -> Metric:
        """Mean over seeds with its t interval; the per-seed values are kept for claim checks."""
        v = [float(x) for x in as_numpy(values).ravel()]
        if len(v) != len(seeds):
            raise ValueError(
                f"Metric {name!r}: {len(v)} values but {len(seeds)} seeds; pass one value per seed"
            )
        iv = mean_ci(v, level)
        return cls(
            name,
            iv.value,
            ci=(iv.low, iv.high),
            n=len(v),
            seeds=tuple(int(s) for s in seeds),
            values=tuple(v),
            ci_method="t",
            ci_level=level,
        )

    @classmethod
    def from_bootstrap(
        cls,
        name: str,
        data: ArrayLike | tuple[ArrayLike, ...],
        fn: Callable[..., float] = np.mean,
        *,
        seed: int,
        n_boot: int = 1000,
        level: float = 0.95,
    ) -> Metric:
        """``fn`` on the test set of the model trained with ``seed``, with a bootstrap interval
        (``seed`` also seeds the resampling, so the record is reproducible)."""
        iv = bootstrap_ci(data, fn, n_boot=n_boot, level=level, seed=seed)
        n = len(as_numpy(data[0] if isinstance(data, tuple) else data))
        return cls(
            name,
            iv.value,
            ci=(iv.low, iv.high),
            n=n,
            seeds=(seed,),
            ci_method="bootstrap",
            ci_level=level,
        )


@functools.lru_cache(maxsize=1)
def git_revision() -> str:
    """The commit of the facekit checkout (``-dirty`` when it has uncommitted changes), or
    ``"unknown"`` when facekit is not installed from a git checkout."""
    cwd = Path(__file__).resolve().parent

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)

    try:
        rev = git("rev-parse", "HEAD")
        if rev.returncode != 0:
            return "unknown"
        dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return rev.stdout.strip() + ("-dirty" if dirty else "")


def _entry(
    m: Metric, seeds: Sequence[int], profile: str, chash: str | None, now: str
) -> dict[str, Any]:
    if not isinstance(m.name, str) or not m.name.strip():
        raise ValueError(f"metric name {m.name!r} is not valid; pass a non-empty string")
    numbers = [m.value, *(m.ci or ()), *m.values]
    if not all(isinstance(x, int | float) and math.isfinite(x) for x in numbers):
        raise ValueError(
            f"metric {m.name!r} has a non-finite or non-numeric value {numbers}; records hold finite floats"
        )
    return {
        "name": m.name,
        "value": float(m.value),
        "ci": [float(m.ci[0]), float(m.ci[1])] if m.ci is not None else None,
        "ci_level": m.ci_level,
        "ci_method": m.ci_method,
        "n": m.n,
        "seeds": list(m.seeds or seeds),
        "values": list(m.values),
        "extra": dict(m.extra),
        "profile": profile,
        "config_hash": chash,
        "version": __version__,
        "git_rev": git_revision(),
        "time": now,
    }


def record(
    notebook: str,
    metrics: Sequence[Metric] | Mapping[str, float | Metric],
    *,
    profile: str | None = None,
    config: Any = None,
    seeds: Sequence[int] = (),
) -> Path:
    """Write ``metrics`` into ``results/<profile>/<notebook>.json`` and return its path.

    Metrics replace earlier ones of the same name and leave the others in place, so a notebook
    can record in several cells. ``config`` is hashed (:func:`facekit.config.config_hash`) so a
    reader can tell which settings produced the number; ``seeds`` is the default for metrics
    that do not carry their own. The file is replaced atomically.
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", notebook):
        raise ValueError(
            f"notebook={notebook!r} is not valid; use the notebook's file stem, e.g. '03_comface'"
        )
    profile = get_profile(profile)
    if isinstance(metrics, Mapping):
        items = []
        for name, m in metrics.items():
            if isinstance(m, Metric) and m.name != name:
                raise ValueError(
                    f"metrics[{name!r}] is a Metric named {m.name!r}; use the same name"
                )
            items.append(m if isinstance(m, Metric) else Metric(name, m))
    else:
        items = list(metrics)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    chash = config_hash(config) if config is not None else None
    new = {m.name: _entry(m, seeds, profile, chash, now) for m in items}
    path = results_dir(profile) / f"{notebook}.json"
    old = _read(path)["metrics"] if path.exists() else {}
    doc = {"notebook": notebook, "profile": profile, "metrics": {**old, **new}}
    atomic_write(path, json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return path


def _read(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{path} is not valid JSON ({err}); records are written only by facekit.records.record"
        ) from err
    if not isinstance(doc, dict) or not isinstance(doc.get("metrics"), dict):
        raise ValueError(
            f"{path} has no 'metrics' object; records are written only by facekit.records.record"
        )
    return doc


def reference_dir(profile: str | None = None) -> Path:
    """``results/reference/<profile>/``: the records the repository ships (never written here)."""
    return results_dir(profile).parent / "reference" / get_profile(profile)


class Records(dict[str, dict[str, dict[str, Any]]]):
    """``{notebook: {metric name: entry}}``, with ``sources``: the file each notebook was read from."""

    def __init__(self, data: Mapping[str, dict[str, dict[str, Any]]], sources: Mapping[str, Path]) -> None:
        super().__init__(data)
        self.sources = dict(sources)


def load_records(profile: str | None = None) -> Records:
    """All records of a profile, one per notebook: the user's (``results/<profile>/``) when there
    is one, else the shipped reference (``results/reference/<profile>/``); empty when neither."""
    paths = {p.stem: p for p in sorted(reference_dir(profile).glob("*.json"))}
    paths.update({p.stem: p for p in sorted(results_dir(profile).glob("*.json"))})
    return Records({name: _read(path)["metrics"] for name, path in sorted(paths.items())}, dict(sorted(paths.items())))


def read_record(notebook: str, profile: str | None = None) -> tuple[dict[str, dict[str, Any]] | None, Path | None]:
    """One notebook's record and the file it came from (the user's, else the reference), or
    ``(None, None)`` when neither exists."""
    for path in (results_dir(profile) / f"{notebook}.json", reference_dir(profile) / f"{notebook}.json"):
        if path.is_file():
            return _read(path)["metrics"], path
    return None, None


class SeedScores(dict[str, float]):
    """One seed's figures from a claims record (what the method's ``run_seed`` returned for that
    seed), with where they came from, so a notebook can show them without re-running the seed."""

    def __init__(self, data: Mapping[str, float], *, method: str, seed: int, profile: str, requested: str,
                 source: Path, revisions: Sequence[str], times: Sequence[str]) -> None:
        super().__init__(data)
        self.method, self.seed, self.profile, self.requested = method, seed, profile, requested
        self.source, self.revisions, self.times = source, tuple(revisions), tuple(times)

    @property
    def is_reference(self) -> bool:
        """True when the figures come from the record the repository ships, not the user's run."""
        return self.source.parent == reference_dir(self.profile)

    def describe(self) -> str:
        """Which record was read (the user's or the shipped reference), its commit and date, and
        the fallback to ``cpu`` when the requested profile has no claims record."""
        try:
            shown = self.source.resolve().relative_to(results_dir(self.profile).resolve().parents[1])
        except ValueError:
            shown = self.source.resolve()
        whose = "the shipped reference record" if self.is_reference else "your own record"
        revs = ", ".join(r[:12] + ("-dirty" if r.endswith("-dirty") else "") for r in self.revisions)
        dates = sorted({t[:10] for t in self.times})
        text = (f"seed {self.seed} of claims_{self.method} (profile {self.profile}) read from {whose} {shown}, "
                f"written at commit {revs} on {', '.join(dates)} by "
                f"`python benchmarks/claims.py --method {self.method} --profile {self.profile}`")
        if self.requested != self.profile:
            text += (f"; profile {self.requested} has no claims record, so these are the {self.profile} "
                     "figures, not this profile's")
        return text


def seed_scores(method: str, seed: int = 0, profile: str | None = None, fallback: str = "cpu") -> SeedScores:
    """The figures ``run_seed(profile, seed)`` of ``method`` produced in the claims run, read
    from ``claims_<method>`` (the user's record, else the shipped reference) instead of
    re-training every model of the protocol; the claim verdicts and paired differences the
    benchmark added are left out. A profile without a claims record falls back to ``fallback``
    (``SeedScores.describe`` says so)."""
    requested = get_profile(profile)
    used = requested
    entries, source = read_record(f"claims_{method}", requested)
    if entries is None and fallback != requested:
        used = get_profile(fallback)
        entries, source = read_record(f"claims_{method}", used)
    if entries is None or source is None:
        raise FileNotFoundError(
            f"no claims record for method={method!r} at profile {requested!r} or {fallback!r}; "
            f"run `python benchmarks/claims.py --method {method} --profile {requested}`"
        )
    kept = {n: e for n, e in entries.items() if not n.endswith("/holds") and "holds" not in e.get("extra", {})}
    seeds = sorted({int(s) for e in kept.values() for s in e["seeds"]})
    if seed not in seeds:
        raise ValueError(f"seed={seed} is not in {source} (seeds {seeds}); pass one of those seeds, or run "
                         f"`python benchmarks/claims.py --method {method} --profile {used} --seeds {seed}`")
    data = {n: float(e["values"][e["seeds"].index(seed)]) for n, e in kept.items()
            if seed in e["seeds"] and len(e["values"]) == len(e["seeds"])}
    return SeedScores(data, method=method, seed=seed, profile=used, requested=requested, source=source,
                      revisions=sorted({e["git_rev"] for e in kept.values()}),
                      times=sorted({e["time"] for e in kept.values()}))


# ----------------------------------------------------------------------------- claims


def claim_difference(entries: Mapping[str, Mapping[str, Any]], claim: Any) -> tuple[list[float], list[float], Any]:
    """A claim's per-seed values of ``ours`` and ``baseline`` in a claims record, and their
    paired difference (:meth:`facekit.methods.base.Claim.judge`)."""
    values = {n: [float(v) for v in entries[n]["values"] or [entries[n]["value"]]] for n in claim.inputs}
    return claim.judge(values)


def claims_table(entries: Mapping[str, Mapping[str, Any]], method: str) -> Any:
    """One row per claim the method declares (its ``CLAIMS``), measured from a claims record (the
    per-seed values ``benchmarks/claims.py`` stores): both sides as mean [95% interval], the
    paired difference, whether every seed goes the claimed way and whether the claim holds. Claims
    the record judges that ``CLAIMS`` does not declare follow with the record's own verdict."""
    import pandas as pd

    from facekit.methods import method_module

    def fmt(values: Sequence[float]) -> str:
        if len(values) < 2:
            return f"{values[0]:.3g}"
        m, lo, hi = mean_ci(values)
        return f"{m:.3g} [{lo:.3g}, {hi:.3g}]"

    claims = method_module(method).CLAIMS
    rows = []
    for c in claims:
        ours, base, d = claim_difference(entries, c)
        rows.append({"claim": c.id, "statement": c.statement, "ours": fmt(ours),
                     "baseline": f"{c.baseline:g}" if isinstance(c.baseline, int | float) else fmt(base),
                     "difference [95% CI]": f"{d.mean:.3g} [{d.low:.3g}, {d.high:.3g}]" if d.n > 1 else f"{d.mean:.3g}",
                     "every seed": d.every_seed, "holds": d.holds})
    declared = {c.id.split("/")[0] for c in claims}
    for name, e in entries.items():
        cid = name.removesuffix("/holds")
        if name.endswith("/holds") and "/" not in cid and cid not in declared:
            rows.append({"claim": cid, "statement": "judged by benchmarks/claims.py (not in the method's CLAIMS)",
                         "ours": "", "baseline": "", "difference [95% CI]": "", "every seed": None,
                         "holds": bool(e["value"])})
    return pd.DataFrame(rows).set_index("claim")


# ------------------------------------------------------------------------- metric names


def metric_name(record_name: str, metric: str) -> str:
    """``record:metric``, the way a scenario names a metric (:func:`parse_metric_name` reads it)."""
    return f"{record_name}:{metric}"


def parse_metric_name(text: str) -> tuple[str, str]:
    """``(record, metric)`` of ``record:metric``; ``ValueError`` naming the text otherwise."""
    record_name, sep, metric = str(text).partition(":")
    if not sep or not record_name or not metric:
        raise ValueError(f"metric name {text!r} is not valid; write it as 'record:metric', "
                         "e.g. 'claims_fmae_iat:iat_linear/f1'")
    return record_name, metric


def expand_names(template: str) -> list[str]:
    """The metric names a declared template stands for: each ``{a,b}`` is one of its
    alternatives (every combination); a ``*`` stays (a part that depends on the profile, such as
    the number of labelled pairs)."""
    m = re.search(r"\{([^{}]*)\}", template)
    if m is None:
        return [template]
    return [n for alt in m.group(1).split(",") for n in expand_names(template[:m.start()] + alt + template[m.end():])]


@functools.cache
def declared_metrics() -> dict[str, tuple[str, ...]]:
    """``{record: templates}``: the metric names every method declares it writes (its
    ``METRICS``, next to the code that builds the names), for its claims record and its notebook's."""
    from facekit.methods import METHODS, method_module

    out: dict[str, tuple[str, ...]] = {}
    for name in METHODS:
        for record_name, templates in method_module(name).METRICS.items():
            out[record_name] = out.get(record_name, ()) + tuple(templates)
    return out


def _globs_meet(a: str, b: str) -> bool:
    """Whether some name matches both patterns (``*`` is the only wildcard in either)."""
    seen: set[tuple[int, int]] = set()
    todo = [(0, 0)]
    while todo:
        i, j = todo.pop()
        if (i, j) in seen:
            continue
        seen.add((i, j))
        if i == len(a) and j == len(b):
            return True
        if i < len(a) and a[i] == "*":
            todo.append((i + 1, j))
        if j < len(b) and b[j] == "*":
            todo.append((i, j + 1))
        if i < len(a) and j < len(b):
            if a[i] == "*" and b[j] == "*":
                todo += [(i, j + 1), (i + 1, j)]
            elif a[i] == "*":
                todo.append((i, j + 1))
            elif b[j] == "*":
                todo.append((i + 1, j))
            elif a[i] == b[j]:
                todo.append((i + 1, j + 1))
    return False


def check_metric_name(text: str, key: str = "metric") -> tuple[str, str]:
    """``(record, metric)`` of a ``record:metric`` that some method declares it writes (a ``*``
    in the metric must meet a declared name), else ``ValueError`` naming ``key``, the value and
    the valid names. A declared metric with no record yet passes: readers report it MISSING."""
    import difflib

    record_name, metric = parse_metric_name(text)
    declared = declared_metrics()
    if record_name not in declared:
        raise ValueError(f"{key}={text!r} is not valid: no record {record_name!r} is written by a method; "
                         f"valid records: {sorted(declared)}")
    names = [n for t in declared[record_name] for n in expand_names(t)]
    if not any(_globs_meet(metric, n) for n in names):
        close = difflib.get_close_matches(metric, names, n=3, cutoff=0.5)
        raise ValueError(f"{key}={text!r} is not valid: {record_name} has no metric {metric!r} that a method writes "
                         f"(closest: {close}); valid names in {record_name}: {list(declared[record_name])} "
                         "({a,b} is either, * any value)")
    return record_name, metric


def check_metric_names(names: Sequence[str]) -> None:
    """:func:`check_metric_name` for each of ``names``."""
    for text in names:
        check_metric_name(text)
