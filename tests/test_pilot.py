"""Pilot arithmetic against a case worked by hand, the recommendation rules, and the report
built from records a test writes."""

import dataclasses
import math

import pytest

from facekit import pilot, records
from facekit.cli import main
from facekit.report import markdown, write_report

# Worked by hand (see the comments): every term of the cost model is a round number.
HAND = dict(
    name="hand", description="a case worked on paper", quality="claims_gencon:gencon/acc",
    decisions_per_month=1000, baseline_error_rate=0.3, cost_per_error=10,
    images_needed=100, labels_per_image=2, real_cost_per_image=1, real_cost_per_label=0.5,  # real: 2 per image
    synthetic_fraction=0.5, synthetic_images_per_compute_hour=1000, compute_hour_cost=2,  # synthetic: 0.002
    training_compute_hours=10, integration_hours=10, labour_rate=50, compliance_one_off=379.9,
    monitoring_hours_per_month=2, compliance_per_month=50, inference_cost_per_1k=50, horizon_months=10,
    thresholds={"go_min_roi": 0.0, "go_max_payback_months": 12, "min_quality": 0.7},
)


def _records(values=(0.78, 0.80, 0.82)):
    return {"claims_gencon": {"gencon/acc": {"value": sum(values) / len(values), "values": list(values), "ci": None,
                                "time": "2026-11-24T00:00:00+00:00", "git_rev": "abc"}}}


def test_cost_model_matches_the_hand_calculation():
    s = pilot.Scenario.from_dict(HAND)
    d = pilot.data_costs(s)
    assert d["real_per_image"] == 2 and d["synthetic_per_image"] == pytest.approx(0.002)
    assert d["real_per_label"] == 1 and d["synthetic_per_label"] == pytest.approx(0.001)
    assert d["data_total"] == pytest.approx(100.1) and d["data_total_all_real"] == 200
    e = pilot.economics(s, 0.8)
    assert e["model_error_rate"] == pytest.approx(0.2)
    assert e["errors_avoided_per_1000"] == pytest.approx(100)  # (0.3 - 0.2) * 1000
    assert e["one_off_cost"] == pytest.approx(1000)  # 100.1 + 20 + 500 + 379.9
    assert e["operating_cost_per_month"] == pytest.approx(200)  # 100 + 50 + 50
    assert e["benefit_per_month"] == pytest.approx(1000)  # 1000 * 0.1 * 10
    assert e["roi"] == pytest.approx(7000 / 3000)  # (10,000 - 3,000) / 3,000
    assert e["payback_months"] == pytest.approx(1.25)  # 1,000 / 800
    assert e["break_even_decisions_per_month"] == pytest.approx(250 / 0.95)  # (100 + 150) / (1 - 0.05)


def test_a_model_worse_than_today_never_pays_back():
    e = pilot.economics(pilot.Scenario.from_dict(HAND), 0.6)  # error 0.4 > 0.3 today
    assert e["errors_avoided_per_1000"] == pytest.approx(-100)
    assert e["roi"] < 0 and math.isinf(e["payback_months"]) and math.isinf(e["break_even_decisions_per_month"])


def test_recommendation_rules():
    s = pilot.Scenario.from_dict(HAND)
    r = pilot.evaluate(s, "smoke", records=_records())
    assert r.recommendation == "go" and r.uncertainty["roi_low"] > 0
    assert any("3 seed-level values" in a for a in r.assumptions)
    assert r.tornado and abs(r.tornado[0][2] - r.tornado[0][1]) >= abs(r.tornado[-1][2] - r.tornado[-1][1])
    worse = pilot.evaluate(s, "smoke", records=_records((0.55, 0.58, 0.6)))
    assert worse.recommendation == "stop" and any("floor 0.7" in why for why in worse.reasons)
    slow = pilot.evaluate(dataclasses.replace(s, thresholds=pilot.Thresholds(go_max_payback_months=1)), "smoke",
                          records=_records())
    assert slow.recommendation == "extend the pilot" and slow.reasons[0].startswith("payback 1.") and "months is over 1" in slow.reasons[0]
    missing = pilot.evaluate(s, "smoke", records={})
    assert missing.recommendation == "extend the pilot" and "claims_gencon:gencon/acc" in missing.reasons[0]
    assert missing.records["claims_gencon"]["status"] == "MISSING"
    blocked = pilot.evaluate(dataclasses.replace(s, compliance_block="not allowed here"), "smoke", records=_records())
    assert blocked.recommendation == "stop" and "not allowed here" in blocked.reasons[0]


def test_bad_scenarios_name_the_field():
    with pytest.raises(ValueError, match=r"baseline_error_rate=1.5 is not valid; pass a fraction"):
        pilot.Scenario.from_dict({**HAND, "baseline_error_rate": 1.5})
    with pytest.raises(ValueError, match=r"cost_per_error=-1 is not valid"):
        pilot.Scenario.from_dict({**HAND, "cost_per_error": -1})
    with pytest.raises(ValueError, match=r"unknown keys \['volume'\]"):
        pilot.Scenario.from_dict({**HAND, "volume": 3})
    with pytest.raises(ValueError, match=r"quality='f1' is not valid; write it as 'record:metric'"):
        pilot.Scenario.from_dict({**HAND, "quality": "f1"})
    with pytest.raises(ValueError, match=r"^id_preservation='claims_plugen:P1/plugen4faces/id_sim' is not valid: "
                                         r"claims_plugen has no metric 'P1/plugen4faces/id_sim' that a method writes "
                                         r"\(closest: \['P1/plugen4faces/id_cos'.*valid names in claims_plugen: "):
        pilot.Scenario.from_dict({**HAND, "id_preservation": "claims_plugen:P1/plugen4faces/id_sim"})
    with pytest.raises(ValueError, match=r"attribute_success='claims_plugin:ae/psnr' is not valid: no record "
                                         r"'claims_plugin' is written by a method; valid records: \[.*'claims_plugen'"):
        pilot.Scenario.from_dict({**HAND, "attribute_success": "claims_plugin:ae/psnr"})
    with pytest.raises(ValueError, match=r"quality='claims_gencon:gencon/\*/x' is not valid"):  # no name fits the *
        pilot.Scenario.from_dict({**HAND, "quality": "claims_gencon:gencon/*/x"})
    with pytest.raises(ValueError, match=r"not a file; pass a YAML file or one of \[.*production_line"):
        pilot.Scenario.load("nope.yaml")


def test_example_scenarios_load_and_hr_is_blocked():
    assert set(pilot.example_scenarios()) >= {"production_line", "customer_service", "hr_interviews"}
    for name in pilot.example_scenarios():
        pilot.Scenario.load(name)
    r = pilot.evaluate("hr_interviews", "smoke", records=_records())
    assert r.recommendation == "stop" and "2024/1689" in r.reasons[0]


def test_report_from_records_written_by_a_test(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FACEKIT_RESULTS", str(tmp_path / "results"))
    records.record("claims_gencon", [records.Metric.from_seeds("gencon/acc", [0.78, 0.8, 0.82], [0, 1, 2])],
                   profile="smoke")
    scenario = tmp_path / "s.yaml"
    import yaml

    scenario.write_text(yaml.safe_dump({**HAND, "id_preservation": "claims_plugen:P1/plugen4faces/id_cos"}))
    r = pilot.evaluate(scenario, "smoke")
    assert r.kpis["quality"].values == (0.78, 0.8, 0.82) and r.records["claims_plugen"]["status"] == "MISSING"
    md = markdown(r)
    assert "Recommendation: GO" in md and "| claims_plugen | MISSING |" in md and "ID preservation | MISSING" in md
    html_path, md_path = write_report(r, tmp_path / "report")
    page = html_path.read_text()
    assert page.count("data:image/png;base64,") == 3 and "<script" not in page and "http" not in page.split("<body>")[1]
    with pytest.raises(FileExistsError, match="--overwrite"):
        write_report(r, tmp_path / "report.html")
    out = tmp_path / "cli_report"
    assert main(["report", "--scenario", str(scenario), "--profile", "smoke", "--out", str(out)]) == 0
    assert "recommendation: go" in capsys.readouterr().out and out.with_suffix(".html").exists()
    assert main(["report", "--scenario", str(scenario), "--profile", "smoke", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_pilot_explorer_recomputes_when_a_slider_moves(tmp_path, monkeypatch):
    from facekit.widgets import PilotExplorer

    monkeypatch.setenv("FACEKIT_RESULTS", str(tmp_path / "results"))
    records.record("claims_fmae_iat", [records.Metric.from_seeds("iat_linear/f1", [0.7, 0.72, 0.74], [0, 1, 2])],
                   profile="smoke")
    ex = PilotExplorer(["production_line", "hr_interviews"], profile="smoke")
    assert ex.updates == 1 and ex.result.econ is not None
    roi, image = ex.result.econ["roi"], ex.figure.value
    ex.sliders["decisions_per_month"].value = 2 * ex.sliders["decisions_per_month"].value
    assert ex.updates == 2 and ex.result.econ["roi"] > roi and ex.figure.value != image
    ex.sliders["baseline_error_rate"].value = 0.1  # today's process beats the model
    assert ex.result.econ["errors_avoided_per_1000"] < 0 and ex.result.recommendation == "stop"
    ex.scenario.value = "hr_interviews"
    assert ex.updates == 4 and ex.result.recommendation == "stop" and "2024/1689" in ex.summary.value


def test_a_wildcard_kpi_averages_matching_metrics_seed_by_seed():
    recs = {"r": {"a/1/success": {"value": 0.4, "values": [0.3, 0.5], "time": "t1"},
                  "b/1/success": {"value": 0.6, "values": [0.5, 0.7], "time": "t2"},
                  "b/0/success": {"value": 0.0, "values": [0.0, 0.0], "time": "t3"}}}
    k = pilot.read_kpi(recs, pilot.KPISource("r", "*/1/success"))
    assert k.value == pytest.approx(0.5) and k.values == pytest.approx((0.4, 0.6)) and k.time == "t2"
    assert pilot.read_kpi(recs, pilot.KPISource("r", "nothing/*")) is None
