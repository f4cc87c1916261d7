"""A tiny regression trained through facekit.train.fit. tests/test_train.py runs it in-process,
under ``accelerate launch`` with 2 processes, and as a process that SIGKILLs itself mid-run.

Usage: ``fit_tiny.py RUN_DIR [--die-at STEP]``
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import torch
from accelerate import PartialState
from torch import nn

from facekit.config import seed_everything
from facekit.train import TrainConfig, TrainResult, fit

CONFIG = TrainConfig(steps=30, batch_size=16, lr=0.05, log_every=5, ckpt_every=10, seed=3)
TRUE_W = torch.linspace(-1.0, 1.0, 8).reshape(8, 1)


def data(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A deterministic function of the step: the global batch of that step."""
    x = torch.randn(CONFIG.batch_size, 8)
    return x, x @ TRUE_W + 0.05 * torch.randn(CONFIG.batch_size, 1)


def loss_fn(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return nn.functional.mse_loss(model(x), y)


def train(run_dir: Path, die_at: int | None = None) -> TrainResult:
    def batches(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        if step == die_at:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no exception handlers: a real kill
        return data(step)

    seed_everything(CONFIG.seed)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))
    return fit(model, batches, CONFIG, loss_fn=loss_fn, run_dir=run_dir, progress=False)


if __name__ == "__main__":
    out = Path(sys.argv[1])
    result = train(out, int(sys.argv[3]) if sys.argv[2:3] == ["--die-at"] else None)
    state = PartialState()
    if state.is_main_process:
        summary = {"num_processes": state.num_processes, "history": result.history}
        (out / "summary.json").write_text(json.dumps(summary))
