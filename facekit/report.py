"""The pilot report: one self-contained HTML file (figures embedded) and the same in Markdown.

Built from the metric records and a scenario only (:func:`facekit.pilot.evaluate`), so a
report can be rebuilt at any time and always says which records it used, which are missing
and how old each one is.

Importing it leaves matplotlib's backend alone (a switch to Agg here once hid every figure of
notebook 07): the figures are pyplot figures, shown by whatever backend the caller has, and
:func:`figure_png` renders them to PNG with any backend, headless included.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import math
from datetime import UTC, datetime
from pathlib import Path

import matplotlib.pyplot as plt

from facekit.io import atomic_write
from facekit.pilot import PilotResult

VERDICT_COLOURS = {"go": "#1a7f37", "extend the pilot": "#9a6700", "stop": "#cf222e"}


def _money(x: float, currency: str) -> str:
    return "never" if not math.isfinite(x) else f"{x:,.0f} {currency}"


def _unit(x: float) -> str:
    """A unit cost: cents stay readable, fractions of a cent keep 3 significant digits."""
    return f"{x:,.2f}" if x >= 0.01 else f"{x:.3g}"


def _pct(x: float) -> str:
    return f"{x:.0%}" if math.isfinite(x) else "n/a"


def tornado_figure(result: PilotResult) -> plt.Figure:
    """Horizontal bars: ROI when each driver moves low/high; the widest bar matters most."""
    rows = result.tornado[::-1]
    base = result.econ["roi"] if result.econ else 0.0
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.4))
    for i, (_, lo, hi) in enumerate(rows):
        ax.barh(i, lo - base, left=base, color="#d1495b", height=0.6)
        ax.barh(i, hi - base, left=base, color="#00798c", height=0.6)
    ax.axvline(base, color="k", lw=1)
    ax.axvline(0, color="grey", lw=0.8, ls="--")
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
    ax.set_xlabel("ROI over the horizon (red: driver at its low setting, teal: high)")
    ax.set_title(f"Sensitivity of ROI: {result.scenario.name}")
    fig.tight_layout()
    return fig


def volume_figure(result: PilotResult) -> plt.Figure:
    """Net value over the horizon against monthly volume: where the line crosses zero is the
    break-even volume, and the dot is the scenario's own volume. Without a quality record only
    the costs are known, and the figure shows them (as a negative value) and says so."""
    from facekit.pilot import economics

    s, cur = result.scenario, result.scenario.currency
    quality = result.kpis["quality"].value if result.kpis.get("quality") else None
    top = 4 * s.decisions_per_month
    if result.econ is not None and math.isfinite(result.econ["break_even_decisions_per_month"]):
        top = max(top, 2 * result.econ["break_even_decisions_per_month"])
    vols = [top * i / 200 for i in range(1, 201)]

    def net(v: float) -> float:
        e = economics(dataclasses.replace(s, decisions_per_month=v), 1 - s.baseline_error_rate
                      if quality is None else quality)  # no record: a model no better than today
        return (e["benefit_per_month"] - e["operating_cost_per_month"]) * s.horizon_months - e["one_off_cost"]

    fig, ax = plt.subplots(figsize=(6, 3.4))
    ax.plot(vols, [net(v) for v in vols], color="#00798c" if quality is not None else "#8d6e63")
    ax.axhline(0, color="grey", lw=0.8, ls="--")
    ax.plot([s.decisions_per_month], [net(s.decisions_per_month)], "o", color=VERDICT_COLOURS[result.recommendation])
    ax.set_xlabel("decisions per month")
    ax.set_ylabel(f"net value over {s.horizon_months} months ({cur})")
    ax.set_title(f"{s.name}: {result.recommendation}" if quality is not None
                 else f"{s.name}: costs only (no record {s.quality})", fontsize=9 if quality is None else None)
    fig.tight_layout()
    return fig


def kpi_figure(result: PilotResult) -> plt.Figure:
    """Data cost per label, real against synthetic: the first thing synthetic data changes."""
    d, cur = result.data, result.scenario.currency
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(["real", "synthetic"], [d["real_per_label"], d["synthetic_per_label"]], color=["#8d6e63", "#26a69a"])
    ax.set_yscale("log")
    ax.set_ylabel(f"cost per label ({cur}, log scale)")
    ax.set_title("Data-acquisition cost per label")
    fig.tight_layout()
    return fig


def figure_png(fig: plt.Figure) -> bytes:
    """The figure as PNG bytes (for widgets and reports), closed afterwards."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _png(fig: plt.Figure) -> str:
    return base64.b64encode(figure_png(fig)).decode()


def kpi_rows(result: PilotResult) -> list[tuple[str, str, str]]:
    """(KPI, value, where it comes from) for the tables."""
    s, cur, d = result.scenario, result.scenario.currency, result.data
    rows = [
        ("data cost per image: real / synthetic", f"{_unit(d['real_per_image'])} / {_unit(d['synthetic_per_image'])} {cur}",
         "scenario unit costs"),
        ("data cost per label: real / synthetic", f"{_unit(d['real_per_label'])} / {_unit(d['synthetic_per_label'])} {cur}",
         "scenario unit costs"),
        ("pilot data cost (all real -> with synthetic)",
         f"{_money(d['data_total_all_real'], cur)} -> {_money(d['data_total'], cur)}", "scenario"),
    ]
    for key, label in (("quality", "model quality"), ("id_preservation", "ID preservation"),
                       ("attribute_success", "attribute-change success")):
        k = result.kpis.get(key)
        src = getattr(s, key)
        if src is None:
            continue
        if k is None:
            rows.append((label, "MISSING", f"record {src}"))
        else:
            ci = f" [{k.ci[0]:.3f}, {k.ci[1]:.3f}]" if k.ci else ""
            rows.append((label, f"{k.value:.3f}{ci}", f"record {src} ({len(k.values) or 1} seeds)"))
    e = result.econ
    if e:
        u = result.uncertainty or {}
        rows += [
            ("decision improvement", f"{e['errors_avoided_per_1000']:.1f} errors avoided per 1,000 decisions",
             "baseline error rate - model error rate"),
            ("one-off cost", _money(e["one_off_cost"], cur), "data + training + integration + compliance"),
            ("operating cost per month", _money(e["operating_cost_per_month"], cur),
             "monitoring + compliance + inference"),
            ("benefit per month", _money(e["benefit_per_month"], cur), "errors avoided x cost per error"),
            (f"ROI over {s.horizon_months} months", f"{_pct(e['roi'])} [{_pct(u.get('roi_low', math.nan))}, "
             f"{_pct(u.get('roi_high', math.nan))}]", "bootstrap over seed-level quality"),
            ("payback", "never" if not math.isfinite(e["payback_months"]) else f"{e['payback_months']:.1f} months",
             "one-off cost / monthly net benefit"),
            ("break-even volume", "never" if not math.isfinite(e["break_even_decisions_per_month"])
             else f"{e['break_even_decisions_per_month']:,.0f} decisions per month", "benefit = cost over the horizon"),
        ]
    return rows


def markdown(result: PilotResult) -> str:
    s = result.scenario
    lines = [f"# Pilot report: {s.name}", "", s.description.strip(), "",
             f"**Recommendation: {result.recommendation.upper()}**", ""]
    lines += [f"- {r}" for r in result.reasons] + ["", "## KPIs", "", "| KPI | value | source |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in kpi_rows(result)]
    lines += ["", "## Sensitivity (ROI at the low / high setting of each driver)", "",
              "| driver | ROI low | ROI high |", "|---|---|---|"]
    lines += [f"| {n} | {_pct(lo)} | {_pct(hi)} |" for n, lo, hi in result.tornado]
    lines += ["", "## Assumptions", ""] + [f"- {a}" for a in result.assumptions]
    lines += ["", f"## Metric records (profile `{result.profile}`)", "", "| record | status | age | written | metrics |",
              "|---|---|---|---|---|"]
    lines += [f"| {n} | {r['status']} | {r['age']} | {r['written']} | {r['metrics']} |" for n, r in result.records.items()]
    lines += ["", f"Thresholds: {s.thresholds}", "",
              f"Generated {datetime.now(UTC).isoformat(timespec='seconds')} by facekit from the records above."]
    return "\n".join(lines) + "\n"


def html_report(result: PilotResult) -> str:
    s = result.scenario
    esc = html.escape
    colour = VERDICT_COLOURS[result.recommendation]
    figs = [kpi_figure(result), volume_figure(result)] + ([tornado_figure(result)] if result.tornado else [])
    imgs = "".join(f'<img alt="figure" src="data:image/png;base64,{_png(f)}">' for f in figs)
    kpis = "".join(f"<tr><td>{esc(a)}</td><td>{esc(b)}</td><td>{esc(c)}</td></tr>" for a, b, c in kpi_rows(result))
    recs = "".join(f"<tr class='{'missing' if r['status'] == 'MISSING' else ''}'><td>{esc(n)}</td><td>{r['status']}"
                   f"</td><td>{r['age']}</td><td>{esc(r['written'])}</td><td>{r['metrics']}</td></tr>"
                   for n, r in result.records.items())
    torn = "".join(f"<tr><td>{esc(n)}</td><td>{_pct(lo)}</td><td>{_pct(hi)}</td></tr>" for n, lo, hi in result.tornado)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Pilot report: {esc(s.name)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}}
table{{border-collapse:collapse;margin:1rem 0}}td,th{{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}}
.verdict{{font-size:1.6rem;font-weight:700;color:{colour}}}tr.missing td{{color:#cf222e;font-weight:600}}
img{{max-width:100%;margin:.5rem 0}}</style></head><body>
<h1>Pilot report: {esc(s.name)}</h1><p>{esc(s.description)}</p>
<p class="verdict">Recommendation: {esc(result.recommendation.upper())}</p>
<ul>{''.join(f'<li>{esc(r)}</li>' for r in result.reasons)}</ul>
<h2>KPIs</h2><table><tr><th>KPI</th><th>value</th><th>source</th></tr>{kpis}</table>
{imgs}
<h2>Sensitivity</h2><table><tr><th>driver</th><th>ROI low</th><th>ROI high</th></tr>{torn}</table>
<h2>Assumptions</h2><ul>{''.join(f'<li>{esc(a)}</li>' for a in result.assumptions)}</ul>
<h2>Metric records (profile {esc(result.profile)})</h2>
<table><tr><th>record</th><th>status</th><th>age</th><th>written</th><th>metrics</th></tr>{recs}</table>
<p>Thresholds: {esc(str(s.thresholds))}</p>
<p><small>Generated {datetime.now(UTC).isoformat(timespec='seconds')} by facekit from the metric records only.</small></p>
</body></html>
"""


def write_report(result: PilotResult, out: str | Path, *, overwrite: bool = False) -> tuple[Path, Path]:
    """``out.html`` and ``out.md`` (``out`` with or without a suffix), atomically; existing files
    need ``overwrite``."""
    out = Path(out)
    base = out.with_suffix("") if out.suffix in (".html", ".md") else out
    paths = (base.with_suffix(".html"), base.with_suffix(".md"))
    existing = [str(p) for p in paths if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing} exist; pass --overwrite to replace them (nothing was written)")
    atomic_write(paths[0], html_report(result))
    atomic_write(paths[1], markdown(result))
    return paths
