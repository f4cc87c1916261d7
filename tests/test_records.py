"""Records: the user's runs before the shipped reference, claims tables from CLAIMS, metric names."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from facekit import records as fr
from facekit.methods import METHODS, method_module

REFERENCE = Path(__file__).parents[1] / "results" / "reference" / "cpu"

# The per-claim verdicts the claims benchmark recorded, under the names each script wrote them.
RECORDED = {
    "comface": {f"C1/{t}/{b}": f"C1/{t}/comface_minus_{b}/mae" for t in ("expression", "weight", "age")
                for b in ("simclr", "pca")},
    "fmae_iat": {c: f"{c}/difference" for c in ("F1", "F2", "F3", "F4")},
    "synfer": {c: f"{c}/difference" for c in ("S1", "S2", "S3", "S4")},
    "gencon": {"G1": "G1/gencon_minus_single/acc", "G2": "G2/low_gain_minus_best_other_gain"},
    "plugen": {"P1/plugen": "P1/plugen4faces_minus_plugen/id_cos", "P1/linear": "P1/plugen4faces_minus_linear/id_cos",
               "P2": "P2/max_rel_error_minus_bound"},
}


@pytest.fixture
def results(tmp_path, monkeypatch):
    root = tmp_path / "results"
    shutil.copytree(REFERENCE, root / "reference" / "cpu")
    monkeypatch.setenv("FACEKIT_RESULTS", str(root))
    return root


@pytest.mark.parametrize("method", METHODS)
def test_claims_table_reproduces_the_recorded_verdicts(results, method):
    entries, source = fr.read_record(f"claims_{method}", "cpu")
    assert source == results / "reference" / "cpu" / f"claims_{method}.json"
    table = fr.claims_table(entries, method)
    for claim, name in RECORDED[method].items():
        assert bool(table.loc[claim, "holds"]) == bool(entries[name]["extra"]["holds"]), claim
    assert list(table.index) == [c.id for c in method_module(method).CLAIMS]  # every recorded claim is declared


def test_readers_prefer_the_users_record_and_say_which(results):
    assert fr.load_records("cpu").sources["02_comface"] == results / "reference" / "cpu" / "02_comface.json"
    path = fr.record("02_comface", {"mine": 1.0}, profile="cpu")
    assert path == results / "cpu" / "02_comface.json"
    recs = fr.load_records("cpu")
    assert recs.sources["02_comface"] == path and set(recs["02_comface"]) == {"mine"}
    assert recs.sources["claims_comface"].parent == results / "reference" / "cpu"
    assert fr.read_record("02_comface", "cpu") == (recs["02_comface"], path)
    assert fr.read_record("nothing", "cpu") == (None, None)
    ref = json.loads((results / "reference" / "cpu" / "02_comface.json").read_text())
    assert "mine" not in ref["metrics"]  # the reference is never written


def test_metric_names_are_checked_against_what_the_methods_declare(results):
    fr.check_metric_names(["claims_fmae_iat:iat_linear/f1", "claims_plugen:curve/plugen4faces/*/1/success",
                           "claims_comface:comface/age/n*/mae"])
    fr.check_metric_names(["claims_fmae_iat:mae/f1/AU99"])  # declared (AU* depends on the profile), not recorded
    with pytest.raises(ValueError, match=r"claims_fmae_iat has no metric 'iat_linear/f2'.*iat_linear/f1"):
        fr.check_metric_names(["claims_fmae_iat:iat_linear/f2"])
    with pytest.raises(ValueError, match=r"no record 'claims_fmae'"):
        fr.check_metric_names(["claims_fmae:iat_linear/f1"])
    with pytest.raises(ValueError, match="'record:metric'"):
        fr.check_metric_names(["iat_linear/f1"])
    assert fr.parse_metric_name(fr.metric_name("claims_gencon", "gencon/acc")) == ("claims_gencon", "gencon/acc")
    assert fr.expand_names("a/{x,y}/{1,2}") == ["a/x/1", "a/x/2", "a/y/1", "a/y/2"]


@pytest.mark.parametrize("method", METHODS)
def test_every_shipped_metric_of_a_method_is_declared(method):
    """The declarations cover what the runs wrote (at cpu), so a valid scenario never fails."""
    mod = method_module(method)
    assert {f"claims_{method}", Path(mod.NOTEBOOK).stem} <= set(mod.METRICS)
    for record_name in mod.METRICS:
        written = json.loads((REFERENCE / f"{record_name}.json").read_text())["metrics"]
        for metric in written:
            fr.check_metric_name(fr.metric_name(record_name, metric))


def test_seed_scores_are_one_seeds_values_without_the_verdicts(results):
    entries, _ = fr.read_record("claims_comface", "cpu")
    scores = fr.seed_scores("comface", 1, "cpu")
    assert scores["comface/age/n300/mae"] == entries["comface/age/n300/mae"]["values"][1]
    assert scores["comface/age/n300/mae"] != entries["comface/age/n300/mae"]["value"]  # one seed, not the mean
    assert not any(n.endswith("/holds") or n.startswith("C1/") for n in scores)
    assert scores.is_reference and scores.source == results / "reference" / "cpu" / "claims_comface.json"
    text = scores.describe()
    assert "shipped reference" in text and "results/reference/cpu/claims_comface.json" in text
    assert entries["comface/age/n300/mae"]["git_rev"][:12] in text and "fall" not in text


def test_seed_scores_say_when_they_are_the_users_or_another_profiles(results):
    smoke = fr.seed_scores("gencon", 0, "smoke")  # no claims record at smoke: the cpu one, said so
    assert smoke.profile == "cpu" and "profile smoke has no claims record" in smoke.describe()
    fr.record("claims_gencon", [fr.Metric("gencon/acc", 0.5, seeds=(0, 4), values=(0.25, 0.75))], profile="smoke")
    mine = fr.seed_scores("gencon", 4, "smoke")
    assert dict(mine) == {"gencon/acc": 0.75} and not mine.is_reference and "your own record" in mine.describe()
    with pytest.raises(ValueError, match=r"seed=3 is not in .*seeds \[0, 4\]"):
        fr.seed_scores("gencon", 3, "smoke")
    with pytest.raises(FileNotFoundError, match=r"method='nothing'.*benchmarks/claims.py --method nothing"):
        fr.seed_scores("nothing", 0, "cpu")


@pytest.mark.parametrize("method, cid, name", [("fmae_iat", "F3", "F3/difference"),
                                                ("gencon", "G2", "G2/low_gain_minus_best_other_gain")])
def test_derived_claims_measure_what_the_benchmark_recorded(results, method, cid, name):
    entries, _ = fr.read_record(f"claims_{method}", "cpu")
    claim = next(c for c in method_module(method).CLAIMS if c.id == cid)
    ours, base, d = fr.claim_difference(entries, claim)
    assert [o - b for o, b in zip(ours, base, strict=True)] == pytest.approx(entries[name]["values"])
    assert d.holds == entries[name]["extra"]["holds"] and d.every_seed == entries[name]["extra"]["every_seed"]
