"""KPIs, the cost model and the ROI of a pilot, computed from the metric records only.

A scenario (a YAML file; examples in ``facekit/scenarios/``) holds what the records cannot know:
volumes, unit costs, error costs, labour, compute and compliance costs, and the thresholds the
recommendation is held to. Everything else comes from ``results/<profile>/*.json``.

The cost model, every term in the scenario's currency (also written into each report):

* **data-acquisition cost** per image: real = ``real_cost_per_image + labels_per_image *
  real_cost_per_label``; synthetic = ``compute_hour_cost / synthetic_images_per_compute_hour``
  (labels are exact and free). Per label: divided by ``labels_per_image``. The pilot's data cost
  mixes them by ``synthetic_fraction``.
* **model error rate** = ``1 - quality``, where quality is the record named by ``quality`` (an
  F1 or accuracy on held-out people): the share of decisions the model gets wrong at its
  operating point. The scenario states this as an assumption; it is the coarsest link here.
* **decision improvement** = ``1000 * (baseline_error_rate - model_error_rate)``: errors avoided
  per 1,000 decisions against today's process.
* one-off cost = data + ``training_compute_hours * compute_hour_cost`` + ``integration_hours *
  labour_rate`` + ``compliance_one_off``; monthly operating cost = ``monitoring_hours_per_month *
  labour_rate + compliance_per_month + decisions_per_month / 1000 * inference_cost_per_1k``.
* monthly benefit = ``decisions_per_month * (baseline_error_rate - model_error_rate) * cost_per_error``.
* ROI over ``horizon_months`` = (benefit - cost) / cost; payback = one-off / (benefit - operating)
  per month; break-even volume = the decisions per month at which the horizon's benefit equals
  its cost.

Uncertainty: the quality's seed-level values are bootstrapped (means of resampled seeds) and
pushed through the model; with 3 seeds this is coarse, and the report says so. Sensitivity:
each driver moved by ``+-sensitivity`` (quality: across its interval), one at a time (a tornado).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from facekit.config import get_profile
from facekit.metrics import mean_ci
from facekit.records import check_metric_name, load_records, parse_metric_name
from facekit.schema import from_mapping, load_yaml

SCENARIO_DIR = Path(__file__).with_name("scenarios")
RECOMMENDATIONS = ("go", "extend the pilot", "stop")


@dataclass(frozen=True)
class KPISource:
    """Where a KPI is read: ``record`` (a notebook stem or ``claims_<method>``) and ``metric``."""

    record: str
    metric: str

    @classmethod
    def parse(cls, text: str, field_name: str) -> KPISource:
        """The single place a scenario's metric names are checked (every KPI field goes through
        here when a scenario is loaded): the form ``record:metric``, and a metric some method
        declares it writes (:func:`facekit.records.check_metric_name`). One that is declared but
        not recorded yet loads, and the report marks it MISSING."""
        try:
            parse_metric_name(text)
        except ValueError:
            raise ValueError(f"{field_name}={text!r} is not valid; write it as 'record:metric', "
                             "e.g. 'claims_fmae_iat:iat_linear/f1'") from None
        return cls(*check_metric_name(text, field_name))

    def __str__(self) -> str:
        return f"{self.record}:{self.metric}"


@dataclass(frozen=True)
class Thresholds:
    """The recommendation's rules, stated in the scenario so a reader can argue with them.

    go: the low end of ROI's interval >= ``go_min_roi``, payback <= ``go_max_payback_months``,
    and every quality floor met. stop: the high end of ROI's interval < ``stop_max_roi``, a
    quality floor missed even at the high end of its interval, or a compliance block. Otherwise:
    extend the pilot (the evidence is not yet decisive).
    """

    go_min_roi: float = 0.0
    go_max_payback_months: float = 12.0
    stop_max_roi: float = 0.0
    min_quality: float | None = None
    min_id_preservation: float | None = None
    min_attribute_success: float | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    quality: KPISource
    decisions_per_month: float
    baseline_error_rate: float
    cost_per_error: float
    images_needed: int
    labels_per_image: int
    real_cost_per_image: float
    real_cost_per_label: float
    synthetic_fraction: float
    synthetic_images_per_compute_hour: float
    compute_hour_cost: float
    training_compute_hours: float
    integration_hours: float
    labour_rate: float
    monitoring_hours_per_month: float
    inference_cost_per_1k: float
    compliance_one_off: float
    compliance_per_month: float
    horizon_months: int = 24
    currency: str = "EUR"
    id_preservation: KPISource | None = None
    attribute_success: KPISource | None = None
    sensitivity: float = 0.25
    compliance_block: str | None = None
    assumptions: tuple[str, ...] = ()
    thresholds: Thresholds = field(default_factory=Thresholds)

    def __post_init__(self) -> None:
        rates = ("baseline_error_rate", "synthetic_fraction", "sensitivity")
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.type in ("float", "int") and (not isinstance(v, int | float) or isinstance(v, bool)
                                                or not math.isfinite(v) or v < 0):
                raise ValueError(f"scenario {self.name!r}: {f.name}={v!r} is not valid; pass a finite number >= 0")
            if f.name in rates and not 0 <= v <= 1:
                raise ValueError(f"scenario {self.name!r}: {f.name}={v!r} is not valid; pass a fraction in [0, 1]")
        if self.horizon_months < 1:
            raise ValueError(f"scenario {self.name!r}: horizon_months={self.horizon_months!r} is not valid; pass >= 1")
        if self.synthetic_images_per_compute_hour <= 0:
            raise ValueError(f"scenario {self.name!r}: synthetic_images_per_compute_hour="
                             f"{self.synthetic_images_per_compute_hour!r} is not valid; pass a number > 0")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "scenario") -> Scenario:
        """Check ``data`` against the declared fields (:mod:`facekit.schema`), then build."""
        d = dict(data) if isinstance(data, Mapping) else data
        if isinstance(d, dict):
            d.setdefault("thresholds", {})
            if d["thresholds"] is None:
                d["thresholds"] = {}
            if d.get("assumptions") is None:
                d.pop("assumptions", None)
        parsers = {k: KPISource.parse for k in ("quality", "id_preservation", "attribute_success")}
        return from_mapping(cls, d, source, parsers=parsers)

    @classmethod
    def load(cls, path: str | Path) -> Scenario:
        """A scenario from a YAML file, or by the name of an example (``production_line``)."""
        p = Path(path)
        if not p.exists() and (SCENARIO_DIR / f"{path}.yaml").exists():
            p = SCENARIO_DIR / f"{path}.yaml"
        if not p.is_file():
            raise ValueError(f"scenario {str(path)!r} is not a file; pass a YAML file or one of {example_scenarios()}")
        return cls.from_dict(load_yaml(p, "scenario"), str(p))


def example_scenarios() -> list[str]:
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))


# --------------------------------------------------------------------------- KPIs


@dataclass(frozen=True)
class KPIValue:
    """A KPI read from a record: its mean, the seed-level values and the record's age."""

    source: KPISource
    value: float
    values: tuple[float, ...]
    ci: tuple[float, float] | None
    time: str
    git_rev: str


def read_kpi(records: Mapping[str, Mapping[str, Mapping[str, Any]]], source: KPISource | None) -> KPIValue | None:
    """The KPI a source names. A ``*`` in the metric averages every matching metric, seed by seed
    (``curve/plugen4faces/*/1/success``: the success of full-strength edits over all attributes)."""
    if source is None:
        return None
    found = records.get(source.record, {})
    names = sorted(fnmatch.filter(found, source.metric)) if "*" in source.metric else (
        [source.metric] if source.metric in found else [])
    if not names:
        return None
    entries = [found[n] for n in names]
    per_seed = [tuple(e.get("values") or (e["value"],)) for e in entries]
    values = tuple(float(v) for v in np.mean(per_seed, axis=0)) if len({len(v) for v in per_seed}) == 1 else ()
    value = float(np.mean([e["value"] for e in entries]))
    if len(entries) == 1:
        ci = tuple(entries[0]["ci"]) if entries[0].get("ci") else None
    else:
        ci = tuple(mean_ci(values)[1:]) if len(values) >= 2 else None
    newest = max(entries, key=lambda e: e.get("time", ""))
    return KPIValue(source, value, values, ci, newest.get("time", ""), newest.get("git_rev", ""))  # type: ignore[arg-type]


def data_costs(s: Scenario) -> dict[str, float]:
    """Per image and per label, real and synthetic, and the pilot's total data cost."""
    real = s.real_cost_per_image + s.labels_per_image * s.real_cost_per_label
    synth = s.compute_hour_cost / s.synthetic_images_per_compute_hour
    per_label = max(s.labels_per_image, 1)
    total = s.images_needed * ((1 - s.synthetic_fraction) * real + s.synthetic_fraction * synth)
    return {"real_per_image": real, "synthetic_per_image": synth, "real_per_label": real / per_label,
            "synthetic_per_label": synth / per_label, "data_total": total,
            "data_total_all_real": s.images_needed * real}


def economics(s: Scenario, quality: float) -> dict[str, float]:
    """The cost model at one model quality (see the module docstring for every formula)."""
    model_error = 1.0 - quality
    delta = s.baseline_error_rate - model_error
    one_off = (data_costs(s)["data_total"] + s.training_compute_hours * s.compute_hour_cost
               + s.integration_hours * s.labour_rate + s.compliance_one_off)
    inference_per_decision = s.inference_cost_per_1k / 1000
    fixed_monthly = s.monitoring_hours_per_month * s.labour_rate + s.compliance_per_month
    operating = fixed_monthly + s.decisions_per_month * inference_per_decision
    benefit = s.decisions_per_month * delta * s.cost_per_error
    cost = one_off + operating * s.horizon_months
    net_monthly = benefit - operating
    margin = delta * s.cost_per_error - inference_per_decision  # per decision
    return {
        "model_error_rate": model_error,
        "errors_avoided_per_1000": 1000 * delta,
        "one_off_cost": one_off,
        "operating_cost_per_month": operating,
        "benefit_per_month": benefit,
        "roi": (benefit * s.horizon_months - cost) / cost,
        "payback_months": one_off / net_monthly if net_monthly > 0 else math.inf,
        "break_even_decisions_per_month": (one_off / s.horizon_months + fixed_monthly) / margin if margin > 0 else math.inf,
    }


def bootstrap_roi(s: Scenario, kpi: KPIValue, n_boot: int = 2000, seed: int = 0) -> dict[str, float]:
    """ROI's 95% interval from the quality's seed-level values (means of resampled seeds)."""
    vals = np.asarray(kpi.values or (kpi.value,), dtype=float)
    rng = np.random.default_rng(seed)
    means = vals[rng.integers(0, len(vals), size=(n_boot, len(vals)))].mean(1)
    rois = np.array([economics(s, float(q))["roi"] for q in means])
    return {"roi_low": float(np.percentile(rois, 2.5)), "roi_high": float(np.percentile(rois, 97.5)),
            "n_seeds": float(len(vals)), "quality_low": float(np.percentile(means, 2.5)),
            "quality_high": float(np.percentile(means, 97.5))}


SENSITIVITY_DRIVERS = ("decisions_per_month", "baseline_error_rate", "cost_per_error", "real_cost_per_label",
                       "integration_hours", "labour_rate", "compliance_per_month", "inference_cost_per_1k")


def tornado(s: Scenario, kpi: KPIValue, quality_range: tuple[float, float]) -> list[tuple[str, float, float]]:
    """ROI at the low and high setting of each driver, others at base; widest swing first."""
    rows = []
    for name in SENSITIVITY_DRIVERS:
        base = getattr(s, name)
        lo_hi = []
        for factor in (1 - s.sensitivity, 1 + s.sensitivity):
            v = base * factor
            if name == "baseline_error_rate":
                v = min(v, 1.0)
            lo_hi.append(economics(dataclasses.replace(s, **{name: v}), kpi.value)["roi"])
        rows.append((f"{name} +-{s.sensitivity:.0%}", lo_hi[0], lo_hi[1]))
    rows.append(("model quality (its 95% interval)", economics(s, quality_range[0])["roi"],
                 economics(s, quality_range[1])["roi"]))
    return sorted(rows, key=lambda r: -abs(r[2] - r[1]))


@dataclass
class PilotResult:
    scenario: Scenario
    profile: str
    kpis: dict[str, KPIValue | None]
    data: dict[str, float]
    econ: dict[str, float] | None
    uncertainty: dict[str, float] | None
    tornado: list[tuple[str, float, float]]
    recommendation: str
    reasons: list[str]
    assumptions: list[str]
    records: dict[str, dict[str, str]]


def _recommend(s: Scenario, kpis: Mapping[str, KPIValue | None], econ: Mapping[str, float] | None,
               unc: Mapping[str, float] | None) -> tuple[str, list[str]]:
    t = s.thresholds
    if s.compliance_block:
        return "stop", [f"compliance: {s.compliance_block}"]
    if econ is None or unc is None:
        return "extend the pilot", [f"missing evidence: no record {s.quality} (run the notebook that writes it)"]
    stop, go, why = [], [], []
    if unc["roi_high"] < t.stop_max_roi:
        stop.append(f"ROI is below {t.stop_max_roi:.0%} even at the high end of its interval ({unc['roi_high']:.0%})")
    floors = (("quality", t.min_quality), ("id_preservation", t.min_id_preservation),
              ("attribute_success", t.min_attribute_success))
    for key, floor in floors:
        if floor is None:
            continue
        k = kpis.get(key)
        if k is None:
            why.append(f"{key}: no record, so the floor {floor:g} cannot be checked")
            go.append(False)
            continue
        high = max(k.values) if k.values else k.value
        if high < floor:
            stop.append(f"{key} {k.value:.3g} misses its floor {floor:g} even in its best seed")
        go.append(k.value >= floor)
        if k.value < floor:
            why.append(f"{key} {k.value:.3g} is below its floor {floor:g}")
    if stop:
        return "stop", stop
    roi_ok = unc["roi_low"] >= t.go_min_roi
    pay_ok = econ["payback_months"] <= t.go_max_payback_months
    if roi_ok and pay_ok and all(go):
        return "go", [f"ROI {econ['roi']:.0%} (95% interval low end {unc['roi_low']:.0%} >= {t.go_min_roi:.0%})",
                      f"payback {econ['payback_months']:.1f} months <= {t.go_max_payback_months:g}"]
    if not roi_ok:
        why.append(f"ROI's interval reaches {unc['roi_low']:.0%}, below the go threshold {t.go_min_roi:.0%}")
    if not pay_ok:
        why.append(f"payback {econ['payback_months']:.1f} months is over {t.go_max_payback_months:g}")
    return "extend the pilot", why


def _age(time: str, now: datetime) -> str:
    try:
        then = datetime.fromisoformat(time)
    except ValueError:
        return "unknown"
    hours = (now - then).total_seconds() / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.0f} days"


def evaluate(scenario: Scenario | str | Path, profile: str | None = None,
             records: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None) -> PilotResult:
    """Every KPI, the ROI with its interval, the tornado and the recommendation for one scenario."""
    s = scenario if isinstance(scenario, Scenario) else Scenario.load(scenario)
    profile = get_profile(profile)
    recs = load_records(profile) if records is None else records
    kpis = {"quality": read_kpi(recs, s.quality), "id_preservation": read_kpi(recs, s.id_preservation),
            "attribute_success": read_kpi(recs, s.attribute_success)}
    q = kpis["quality"]
    econ = economics(s, q.value) if q else None
    unc = bootstrap_roi(s, q) if q else None
    torn = tornado(s, q, (unc["quality_low"], unc["quality_high"])) if q and unc else []
    rec, reasons = _recommend(s, kpis, econ, unc)
    now = datetime.now(UTC)
    wanted = {src.record for src in (s.quality, s.id_preservation, s.attribute_success) if src}
    table = {}
    for name in sorted(set(recs) | wanted):
        times = [e.get("time", "") for e in recs.get(name, {}).values()]
        newest = max(times) if times else ""
        table[name] = {"status": "present" if name in recs else "MISSING",
                       "age": _age(newest, now) if newest else "-", "written": newest or "-",
                       "metrics": str(len(recs.get(name, {})))}
    assumptions = [
        f"model error rate = 1 - {s.quality} (the share of wrong decisions at the operating point)",
        f"today's process gets {s.baseline_error_rate:.1%} of decisions wrong; each error costs "
        f"{s.cost_per_error:,.2f} {s.currency}",
        f"{s.synthetic_fraction:.0%} of the {s.images_needed:,} training images are synthetic",
        f"horizon {s.horizon_months} months, volume {s.decisions_per_month:,.0f} decisions per month",
        "numbers measured on synthetic faces; real-photo performance must be confirmed in the pilot",
        *s.assumptions,
    ]
    if unc and unc["n_seeds"] < 5:
        assumptions.append(f"the ROI interval bootstraps only {unc['n_seeds']:.0f} seed-level values, so it is coarse")
    return PilotResult(s, profile, kpis, data_costs(s), econ, unc, torn, rec, reasons, assumptions, table)


__all__ = ["KPISource", "PilotResult", "Scenario", "Thresholds", "data_costs", "economics", "evaluate",
           "example_scenarios", "read_kpi"]
