"""environment.yml (conda) and pyproject.toml (pip) describe the same environment."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _split(req: str) -> tuple[str, str]:
    m = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", req.strip())
    assert m, req
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = dict(_split(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    listed = dict(_split(r) for r in pip if not r.startswith("-"))
    assert listed.pop("torch") == "==2.13.0"
    wanted.pop("torch")
    assert listed == wanted
    assert any(d == f"python={project['requires-python'].removeprefix('>=')}" for d in env["dependencies"] if isinstance(d, str))


def test_constraints_pin_torch_and_forbid_torchvision():
    lines = [ln.strip() for ln in (ROOT / "constraints.txt").read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert "torch==2.13.0" in lines
    assert "torchvision==0.0.0" in lines
