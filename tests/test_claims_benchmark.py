"""benchmarks/claims.py turns per-seed metrics into the same claim records the shipped run wrote."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from facekit.methods import METHODS

BENCH = Path(__file__).parents[1] / "benchmarks"
REFERENCE = Path(__file__).parents[1] / "results" / "reference" / "cpu"


@pytest.mark.parametrize("method", METHODS)
def test_claims_from_the_recorded_seeds_give_the_recorded_verdicts(method, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    claims = pytest.importorskip("claims")
    entries = json.loads((REFERENCE / f"claims_{method}.json").read_text())["metrics"]
    seeds = entries[next(iter(entries))]["seeds"]
    per = {k: e["values"] for k, e in entries.items() if len(e.get("values") or ()) == len(seeds)}
    body, recs = claims.claims_fn(method)("cpu", seeds, per)
    def verdicts(items):  # "<claim>/holds" records, and the holds each difference record carries
        return {k: v for k, v in items if v is not None}

    ours = verdicts([(m.name, m.value if m.name.endswith("/holds") else m.extra.get("holds")) for m in recs])
    shipped = verdicts([(k, e["value"] if k.endswith("/holds") else (e.get("extra") or {}).get("holds"))
                        for k, e in entries.items() if k in ours])
    assert ours and ours == shipped
    assert "holds" in body
    sys.modules.pop("claims", None)
