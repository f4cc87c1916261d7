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


def test_environ_sets_for_the_block_and_puts_back_what_was_there(monkeypatch):
    import os

    from facekit.config import environ

    monkeypatch.setenv("FACEKIT_T_SET", "before")
    monkeypatch.delenv("FACEKIT_T_UNSET", raising=False)
    with pytest.raises(RuntimeError), environ({"FACEKIT_T_SET": "inside", "FACEKIT_T_UNSET": "inside"}):
        assert os.environ["FACEKIT_T_SET"] == os.environ["FACEKIT_T_UNSET"] == "inside"
        raise RuntimeError("the block fails")
    assert os.environ["FACEKIT_T_SET"] == "before" and "FACEKIT_T_UNSET" not in os.environ
