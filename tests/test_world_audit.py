import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import world_audit  # noqa: E402


def test_smoke_audit_writes_every_metric_to_the_record(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEKIT_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("FACEKIT_CACHE", str(tmp_path / "cache"))
    results_md = world_audit.RESULTS_MD.read_text()
    out = world_audit.main(["--profile", "smoke", "--backends", "procedural", "--jobs", "1"])
    assert set(out) == {"procedural/clean", "procedural/target"}
    doc = json.loads((tmp_path / "results" / "smoke" / "world_audit.json").read_text())
    names = set(doc["metrics"])
    for style in ("clean", "target"):
        for m in ("au_auc", "emotion_acc/high", "emotion_acc/low", "verify_auc", "age_mae", "bmi_mae", "au_auc/AU12"):
            assert f"procedural/{style}/{m}" in names
    entry = doc["metrics"]["procedural/clean/au_auc"]
    assert 0 <= entry["value"] <= 1 and entry["extra"]["backend"] == "procedural"
    assert entry["extra"]["occurrence_threshold"] == 0.15
    assert world_audit.RESULTS_MD.read_text() == results_md  # smoke numbers never reach RESULTS.md
    again = world_audit.main(["--profile", "smoke", "--from-record"])
    assert again == out  # the table can be rebuilt from the record alone


def test_worlds_audited_in_parallel_processes_reach_the_record(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEKIT_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("FACEKIT_CACHE", str(tmp_path / "cache"))
    out = world_audit.main(["--profile", "smoke", "--backends", "procedural", "--jobs", "2"])
    assert list(out) == ["procedural/clean", "procedural/target"]  # the order of the worlds, not of finishing
    doc = json.loads((tmp_path / "results" / "smoke" / "world_audit.json").read_text())
    assert {n.split("/")[1] for n in doc["metrics"]} == {"clean", "target"}
    assert all(0 <= out[w]["au_auc"] <= 1 for w in out)


def test_bad_jobs_is_refused(capsys):
    with pytest.raises(SystemExit):
        world_audit.main(["--profile", "smoke", "--jobs", "0"])
    assert "--jobs=0 is not valid" in capsys.readouterr().err


def test_bad_backend_is_refused():
    with pytest.raises(SystemExit):
        world_audit.main(["--profile", "smoke", "--backends", "blender"])
