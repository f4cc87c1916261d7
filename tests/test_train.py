"""facekit.train: seeded loop, safetensors checkpoints, exact resume, model cache, multi-process."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from torch import nn
from torch.utils.data import TensorDataset

from facekit.config import config_hash, seed_everything
from facekit.train import (
    TrainConfig,
    cached_path,
    fit,
    latest_checkpoint,
    load_pretrained,
    save_pretrained,
    train_or_load,
)

ROOT = Path(__file__).resolve().parents[1]
CFG = TrainConfig(
    steps=24,
    batch_size=8,
    lr=0.02,
    weight_decay=0.01,
    warmup_steps=4,
    schedule="cosine",
    log_every=5,
    ckpt_every=8,
    seed=7,
)


class Net(nn.Module):
    """Has dropout, so an exact resume also needs the per-step RNG to match."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(4, width), nn.ReLU(), nn.Dropout(0.2), nn.Linear(width, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class SelfLoss(Net):
    """A model that computes its own loss from a dict batch, like transformers models."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        err = self.body(x) - y
        return {"loss": err.pow(2).mean(), "mae": err.abs().mean().detach()}


def data(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(CFG.batch_size, 4)
    return x, x.sum(1, keepdim=True) + 0.1 * torch.randn(CFG.batch_size, 1)


def mse(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return nn.functional.mse_loss(model(batch[0]), batch[1])


class Interrupt(Exception):
    pass


def new_net() -> Net:
    seed_everything(CFG.seed)
    return Net()


def test_loss_decreases_and_history_is_logged() -> None:
    result = fit(new_net(), data, CFG, loss_fn=mse, progress=False)
    assert [h["step"] for h in result.history] == [5, 10, 15, 20, 24]
    assert result.history[-1]["loss"] < result.history[0]["loss"] / 2
    assert result.history[1]["lr"] == pytest.approx(CFG.lr_at(9))
    assert not result.model.training


class Scaled(Net):
    """Per-parameter learning-rate factors (layer-wise decay): the first layer frozen by a 0 factor."""

    def lr_scales(self) -> dict[str, float]:
        return {"body.0.weight": 0.0, "body.0.bias": 0.0, "body.3.weight": 0.5}


def test_lr_scales_multiply_the_learning_rate_per_parameter() -> None:
    seed_everything(CFG.seed)
    net = Scaled()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    result = fit(net, data, CFG, loss_fn=mse, progress=False)
    after = result.model.state_dict()
    assert torch.equal(after["body.0.weight"], before["body.0.weight"])
    assert torch.equal(after["body.0.bias"], before["body.0.bias"])
    assert not torch.equal(after["body.3.weight"], before["body.3.weight"])
    assert result.history[-1]["loss"] < result.history[0]["loss"]


def test_resume_after_interruption_reproduces_uninterrupted_run(tmp_path: Path) -> None:
    full = fit(new_net(), data, CFG, loss_fn=mse, run_dir=tmp_path / "full", progress=False)

    def dies_at_13(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        if step == 13:
            raise Interrupt
        return data(step)

    with pytest.raises(Interrupt):
        fit(new_net(), dies_at_13, CFG, loss_fn=mse, run_dir=tmp_path / "cut", progress=False)
    assert latest_checkpoint(tmp_path / "cut").name == "step-00000008"
    torn = tmp_path / "cut" / "checkpoints" / "step-00000012"  # a save killed half-way
    torn.mkdir()
    (torn / "model.safetensors").write_bytes(b"\x00" * 10)
    assert latest_checkpoint(tmp_path / "cut").name == "step-00000008"
    resumed = fit(Net(), data, CFG, loss_fn=mse, run_dir=tmp_path / "cut", progress=False)
    assert resumed.resumed_from == 8
    assert not torn.exists()
    for a, b in zip(
        full.model.state_dict().values(), resumed.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)
    assert resumed.history == full.history


def test_resume_with_a_shuffled_dataset(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(40, 4, generator=gen)
    dataset = TensorDataset(x, x.sum(1, keepdim=True))  # 5 batches per epoch: resume mid-epoch
    full = fit(new_net(), dataset, CFG, loss_fn=mse, run_dir=tmp_path / "full", progress=False)
    calls = iter(range(CFG.steps))

    def dies_at_13(model: nn.Module, batch: list[torch.Tensor]) -> torch.Tensor:
        if next(calls) == 13:
            raise Interrupt
        return mse(model, batch)

    with pytest.raises(Interrupt):
        fit(new_net(), dataset, CFG, loss_fn=dies_at_13, run_dir=tmp_path / "cut", progress=False)
    assert latest_checkpoint(tmp_path / "cut").name == "step-00000008"
    resumed = fit(Net(), dataset, CFG, loss_fn=mse, run_dir=tmp_path / "cut", progress=False)
    for a, b in zip(
        full.model.state_dict().values(), resumed.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)


def test_checkpoints_are_safetensors_and_pruned(tmp_path: Path) -> None:
    fit(new_net(), data, CFG, loss_fn=mse, run_dir=tmp_path, progress=False)
    ckpts = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert ckpts == ["step-00000016", "step-00000024"]  # keep_checkpoints=2
    last = tmp_path / "checkpoints" / "step-00000024"
    assert sorted(p.name for p in last.iterdir()) == [
        "model.safetensors",
        "optimizer.safetensors",
        "trainer_state.json",
    ]
    with safe_open(str(last / "model.safetensors"), "pt") as f:
        assert "body.0.weight" in f.keys()
    with safe_open(str(last / "optimizer.safetensors"), "pt") as f:
        assert any(k.endswith(".exp_avg") for k in f.keys())
    state = json.loads((last / "trainer_state.json").read_text())
    assert state["step"] == 24 and state["config"]["lr"] == CFG.lr


def test_resume_refuses_a_different_config(tmp_path: Path) -> None:
    fit(new_net(), data, CFG, loss_fn=mse, run_dir=tmp_path, progress=False)
    other = TrainConfig(**{**CFG.to_dict(), "lr": 0.5})
    with pytest.raises(ValueError, match=r"lr: 0\.02 -> 0\.5"):
        fit(new_net(), data, other, loss_fn=mse, run_dir=tmp_path, progress=False)


def test_model_computes_its_own_loss() -> None:
    def batches(step: int) -> dict[str, torch.Tensor]:
        x, y = data(step)
        return {"x": x, "y": y}

    seed_everything(0)
    result = fit(SelfLoss(), batches, CFG, progress=False)
    assert {"step", "loss", "mae", "lr"} == set(result.history[0])
    assert result.history[-1]["loss"] < result.history[0]["loss"]


def test_mixed_precision_can_change_within_one_session() -> None:
    """A notebook may train in fp32, then in bf16, in the same kernel."""
    fit(new_net(), data, CFG, loss_fn=mse, progress=False)
    bf16 = TrainConfig(**{**CFG.to_dict(), "mixed_precision": "bf16", "steps": 5})
    result = fit(new_net(), data, bf16, loss_fn=mse, progress=False)
    assert result.model.body[0].weight.dtype == torch.float32  # autocast, fp32 master weights
    assert math.isfinite(result.history[-1]["loss"])


def test_bad_inputs_name_the_problem() -> None:
    with pytest.raises(ValueError, match=r"TrainConfig\.lr=-1"):
        TrainConfig(lr=-1)
    with pytest.raises(ValueError, match=r"mixed_precision='fp8'.*'bf16'"):
        TrainConfig(mixed_precision="fp8")
    with pytest.raises(ValueError, match="unknown TrainConfig fields"):
        TrainConfig.from_dict({"stepz": 3})
    with pytest.raises(TypeError, match="step function"):
        fit(new_net(), [1, 2, 3], CFG, loss_fn=mse, progress=False)
    with pytest.raises(ValueError, match="scalar"):
        fit(new_net(), data, CFG, loss_fn=lambda m, b: m(b[0]), progress=False)
    with pytest.raises(FloatingPointError, match="step 5"):
        fit(new_net(), data, CFG, loss_fn=lambda m, b: mse(m, b) * float("nan"), progress=False)


def test_cache_key_follows_the_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FACEKIT_CACHE", str(tmp_path))
    base = cached_path("comface", "smoke", 0, CFG)
    assert base == cached_path("comface", "smoke", 0, TrainConfig(**CFG.to_dict()))
    assert base.parent == tmp_path / "models" / "comface" / "smoke"
    changed = [
        cached_path("comface", "smoke", 0, TrainConfig(**{**CFG.to_dict(), "lr": 0.03})),
        cached_path("comface", "smoke", 1, CFG),
        cached_path("comface", "cpu", 0, CFG),
        cached_path("mae", "smoke", 0, CFG),
        cached_path("comface", "smoke", 0, {"train": CFG, "width": 32}),
    ]
    assert len({base, *changed}) == 6
    # logging cadence does not change the weights, so it does not change the key
    assert config_hash(CFG) == config_hash(
        TrainConfig(**{**CFG.to_dict(), "log_every": 1, "ckpt_every": 3})
    )
    with pytest.raises(ValueError, match="method='Com Face'"):
        cached_path("Com Face", "smoke", 0, CFG)


def test_save_and_load_pretrained_roundtrip(tmp_path: Path) -> None:
    model = Net(width=8)
    save_pretrained(model, {"width": 8}, tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "config.json",
        "model.safetensors",
    ]
    loaded = load_pretrained(Net, tmp_path / "m", device="cpu")
    assert loaded.body[0].out_features == 8
    assert torch.equal(loaded.body[0].weight, model.body[0].weight)
    with pytest.raises(FileNotFoundError, match="save_pretrained"):
        load_pretrained(Net, tmp_path / "missing")


def test_train_or_load_trains_once_then_loads(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FACEKIT_CACHE", str(tmp_path))
    first = train_or_load(
        "toy", Net, {"width": 8}, data, CFG, loss_fn=mse, profile="smoke", progress=False
    )
    assert not first.loaded
    folder = first.run_dir
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json",
        "history.json",
        "model.safetensors",
        "train_config.json",
    ]
    assert TrainConfig.from_dict(json.loads((folder / "train_config.json").read_text())) == CFG

    def never(step: int) -> None:
        raise AssertionError("a cached model must not retrain")

    second = train_or_load("toy", Net, {"width": 8}, never, CFG, loss_fn=mse, profile="smoke")
    with pytest.raises(TypeError, match="JSON-able"):
        train_or_load("toy", Net, {"width": object()}, never, CFG, loss_fn=mse, profile="smoke")
    assert second.loaded and second.history == first.history
    assert torch.equal(second.model.body[0].weight.cpu(), first.model.body[0].weight.cpu())


SCRIPT = ROOT / "tests" / "scripts" / "fit_tiny.py"


def load_script() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("fit_tiny", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_killed_process_resumes_to_the_same_weights(tmp_path: Path) -> None:
    env = {**os.environ, "FACEKIT_DEVICE": "cpu", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / "cut"), "--die-at", "17"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -9, proc.stderr[-3000:]
    assert latest_checkpoint(tmp_path / "cut").name == "step-00000010"
    tiny = load_script()
    resumed = tiny.train(tmp_path / "cut")
    assert resumed.resumed_from == 10
    full = tiny.train(tmp_path / "full")
    for a, b in zip(
        full.model.state_dict().values(), resumed.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)


def test_two_processes_match_one(tmp_path: Path) -> None:
    """`accelerate launch` with 2 CPU processes: finishes, checkpoints, and, because each process
    trains on its slice of the same global batch, reaches the single-process weights."""
    accelerate = Path(sys.executable).with_name("accelerate")
    env = {**os.environ, "FACEKIT_DEVICE": "cpu", "OMP_NUM_THREADS": "1"}
    # `--cpu --num_processes 2` starts ONE process unless mpirun is configured; `--multi_gpu`
    # goes through torchrun, and fit() picks the gloo CPU backend from FACEKIT_DEVICE=cpu.
    cmd = [
        str(accelerate),
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        "0",
        str(SCRIPT),
        str(tmp_path / "ddp"),
    ]
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["num_processes"] == 2
    losses = [h["loss"] for h in summary["history"]]
    assert losses[-1] < losses[0] / 2
    ckpt = latest_checkpoint(tmp_path / "ddp")
    assert ckpt is not None and ckpt.name == "step-00000030"

    single = load_script().train(tmp_path / "single")
    with safe_open(str(ckpt / "model.safetensors"), "pt") as f:
        for name, value in single.model.state_dict().items():
            torch.testing.assert_close(f.get_tensor(name), value, atol=1e-5, rtol=1e-4)


def test_a_damaged_weight_file_is_a_damaged_model_error(tmp_path: Path) -> None:
    from facekit.train import DamagedModelError

    path = save_pretrained(Net(width=8), {"width": 8}, tmp_path / "m")
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:40])
    with pytest.raises(DamagedModelError, match=r"the cached model in .*/m is damaged \(SafetensorError") as info:
        load_pretrained(Net, path, device="cpu")
    assert info.value.path == path
    (path / "config.json").write_text("{not json")
    with pytest.raises(DamagedModelError, match="JSONDecodeError"):
        load_pretrained(Net, path, device="cpu")
