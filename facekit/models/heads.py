"""Heads for AU detection and Identity Adversarial Training (IAT).

Gradient reversal (Ganin & Lempitsky 2015) is the identity map going forward and multiplies the
gradient by ``-scale`` going back: the identity head learns to recognise the person, while the
features it reads are pushed to make that impossible. FMAE-IAT puts a **linear** identity head
behind it; an MLP head is the ablation (a stronger adversary is not a better teacher here: it
can find identity in directions a linear probe could not, and its gradients are noisier).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

ID_HEADS = ("linear", "mlp")


def check_scale(scale: float) -> float:
    """A reversal scale must be a finite number >= 0 (0 switches the adversary off)."""
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not math.isfinite(scale) or scale < 0:
        raise ValueError(f"reversal scale={scale!r} is not valid; pass a finite number >= 0 (the paper uses 0.5-2)")
    return float(scale)


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: Tensor, scale: float) -> Tensor:
        ctx.scale = scale  # type: ignore[attr-defined]
        return x.view_as(x)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> tuple[Tensor, None]:
        return -ctx.scale * grad, None  # type: ignore[attr-defined]


def grad_reverse(x: Tensor, scale: float = 1.0) -> Tensor:
    """Identity forward; gradient times ``-scale`` backward."""
    return _Reverse.apply(x, check_scale(scale))


class GradientReversal(nn.Module):
    """:func:`grad_reverse` as a layer (the scale is a setting, not a parameter)."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = check_scale(scale)

    def forward(self, x: Tensor) -> Tensor:
        return grad_reverse(x, self.scale)

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


def identity_head(kind: str, dim: int, n_subjects: int) -> nn.Module:
    """``"linear"`` (FMAE-IAT) or ``"mlp"`` (the ablation: one hidden layer of ``dim`` units)."""
    if kind not in ID_HEADS:
        raise ValueError(f"identity head {kind!r} is not valid; choose one of {list(ID_HEADS)}")
    if n_subjects < 2:
        raise ValueError(f"n_subjects={n_subjects} is not valid; an identity head needs at least 2 subjects")
    if kind == "linear":
        return nn.Linear(dim, n_subjects)
    return nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, n_subjects))


class AUHead(nn.Module):
    """Multi-label AU logits from pooled features: LayerNorm then one linear layer (MAE's
    fine-tuning head), one independent sigmoid per AU (trained with BCE)."""

    def __init__(self, dim: int, n_aus: int) -> None:
        super().__init__()
        if n_aus < 1:
            raise ValueError(f"n_aus={n_aus} is not valid; pass at least one AU")
        self.norm = nn.LayerNorm(dim)
        self.linear = nn.Linear(dim, n_aus)

    def forward(self, h: Tensor) -> Tensor:
        return self.linear(self.norm(h))


__all__ = ["ID_HEADS", "AUHead", "GradientReversal", "check_scale", "grad_reverse", "identity_head"]
