"""One contract for every method package (facekit.methods.base), checked the same way for all five."""

from __future__ import annotations

import inspect
import json
from dataclasses import is_dataclass
from pathlib import Path

import pytest

from facekit.config import config_hash
from facekit.methods import METHODS, method_module
from facekit.methods.base import Claim, MethodPackage
from facekit.train import TrainResult

FILES = ("__init__.py", "config.py", "data.py", "model.py", "train.py", "evaluate.py", "viz.py")
PACKAGE_DIR = Path(__file__).parents[1] / "facekit" / "methods"

# Config hashes of every method and profile before the packages were split (commit 2b69b52): the
# cache keys of trained models must not change when code moves.
HASHES = json.loads((Path(__file__).with_name("data") / "config_hashes.json").read_text())


@pytest.mark.parametrize("name", METHODS)
def test_package_has_the_same_files(name):
    assert {p.name for p in (PACKAGE_DIR / name).glob("*.py")} >= set(FILES)


@pytest.mark.parametrize("name", METHODS)
def test_public_api_meets_the_contract(name):
    mod = method_module(name)
    assert isinstance(mod, MethodPackage)
    assert is_dataclass(mod.Config) and isinstance(mod.profile_config("smoke", 1), mod.Config)
    assert set(mod.PROFILES) == {"smoke", "cpu", "gpu"}
    assert mod.NOTEBOOK.startswith("notebooks/") and (PACKAGE_DIR.parents[1] / mod.NOTEBOOK).is_file()
    assert mod.CLAIMS and all(isinstance(c, Claim) for c in mod.CLAIMS)
    load = inspect.signature(mod.load).parameters
    assert list(load)[:2] == ["profile", "seed"]
    assert all(load[k].kind is inspect.Parameter.KEYWORD_ONLY for k in ("device", "cfg"))
    assert inspect.signature(mod.train_and_load).return_annotation.startswith("tuple[")
    assert inspect.signature(mod.run_seed).return_annotation == "dict[str, float]"


@pytest.mark.parametrize("name", METHODS)
def test_load_without_cache_names_what_trains_it(name, tmp_path, monkeypatch):
    monkeypatch.setenv("FACEKIT_CACHE", str(tmp_path))
    mod = method_module(name)
    with pytest.raises(FileNotFoundError, match=mod.NOTEBOOK.removeprefix("notebooks/")):
        mod.load("smoke", 0)


@pytest.mark.parametrize("name", METHODS)
def test_profiles_keep_their_cache_keys(name):
    mod = method_module(name)
    for profile in ("smoke", "cpu", "gpu"):
        for seed in (0, 1):
            assert config_hash(mod.profile_config(profile, seed)) == HASHES[f"{name}/{profile}/{seed}"], (profile, seed)


@pytest.mark.parametrize("name", METHODS)
def test_profiles_do_not_share_state(name):
    mod = method_module(name)
    a, b = mod.profile_config("smoke", 0), mod.profile_config("smoke", 5)
    assert config_hash(a) != config_hash(b)
    assert config_hash(mod.profile_config("smoke", 0)) == config_hash(a)  # building b did not change a's table


def test_viz_is_the_only_file_importing_matplotlib_or_ipywidgets():
    for name in METHODS:
        for path in (PACKAGE_DIR / name).glob("*.py"):
            text = path.read_text()
            uses = "import matplotlib" in text or "import ipywidgets" in text or "from matplotlib" in text
            assert not uses or path.name == "viz.py", path


def test_plugen_train_result_is_a_train_result():
    from facekit.methods.plugen import PlugenTrainResult

    assert issubclass(PlugenTrainResult, TrainResult)
