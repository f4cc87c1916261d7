"""benchmarks/real_photos.py at smoke on a handful of real photos, when ../shared is present."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import real_photos  # noqa: E402


def test_smoke_run_records_detection_and_the_pca_reference(tmp_path, monkeypatch, capsys):
    if not (real_photos.dev_dir() / "labels.csv").is_file():
        pytest.skip(f"the development set is not at {real_photos.dev_dir()} (the project's ../shared is absent)")
    try:
        real_photos.orl_files()
    except FileNotFoundError as e:
        pytest.skip(f"ORL not found: {e}")
    pytest.importorskip("dlib", reason="dlib-bin is not installed")
    monkeypatch.setenv("FACEKIT_RESULTS", str(tmp_path))
    assert real_photos.main(["--profile", "smoke"]) == 0
    doc = json.loads((tmp_path / "smoke" / "real_photos.json").read_text())["metrics"]
    assert doc["orl/detected"]["value"] == doc["orl/photos"]["value"] == 12
    assert doc["dev/detected"]["value"] == doc["dev/photos"]["value"] > 0
    assert 0 <= doc["dev/pca_verification_auc"]["value"] <= 1
    out = capsys.readouterr().out
    assert "| orl/detected | 12 |" in out


def test_absent_development_set_skips_and_says_why(tmp_path, capsys):
    assert real_photos.main(["--dev", str(tmp_path / "nowhere")]) == 0
    assert "skipped: the development set is not at" in capsys.readouterr().out
