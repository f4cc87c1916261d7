from pathlib import Path

import pytest

from facekit.config import get_profile, results_dir


def test_profile_from_env_and_errors(monkeypatch):
    monkeypatch.setenv("FACEKIT_PROFILE", "smoke")
    assert get_profile() == "smoke"
    assert get_profile("gpu") == "gpu"
    with pytest.raises(ValueError, match="profile='fast' is not valid; choose one of"):
        get_profile("fast")


def test_results_dir_is_the_checkout_root_from_any_subfolder(monkeypatch, tmp_path):
    monkeypatch.delenv("FACEKIT_RESULTS", raising=False)
    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root / "notebooks")
    assert results_dir("cpu") == root / "results" / "cpu"
    monkeypatch.chdir(tmp_path)
    assert results_dir("smoke") == tmp_path.resolve() / "results" / "smoke"
    monkeypatch.setenv("FACEKIT_RESULTS", str(tmp_path / "elsewhere"))
    assert results_dir("cpu") == tmp_path / "elsewhere" / "cpu"
