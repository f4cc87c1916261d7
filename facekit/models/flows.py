"""Invertible networks on zuko: RealNVP affine couplings with BatchNorm between them.

PluGeN4Faces' official code builds its flow with nflows: a RealNVP of affine couplings with
BatchNorm between them. facekit uses **zuko** (maintained, pure torch, one ``pip install``,
no compiled parts) rather than FrEIA: zuko's lazy transforms give ``call_and_ladj`` (the
output and the log-determinant in one pass) and an exact ``inv`` for every transform, which is
all the plugin needs, and zuko already ships the RealNVP coupling
(:class:`zuko.flows.coupling.GeneralCouplingTransform`). zuko has no BatchNorm transform, so
:class:`BatchNormTransform` adds nflows' one (batch statistics while training, running
statistics in eval mode, a learnable scale and shift) as a zuko lazy transform.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.distributions import AffineTransform, Transform
from zuko.flows.coupling import GeneralCouplingTransform
from zuko.lazy import LazyComposedTransform, LazyTransform


class BatchNormTransform(LazyTransform):
    """``y = (x - mean) / sqrt(var + eps) * exp(log_gamma) + beta``, an invertible affine map.

    Training uses the batch's mean and variance (and updates running averages); eval mode uses
    the running ones, so a trained flow is a fixed bijection.
    """

    def __init__(self, features: int, momentum: float = 0.05, eps: float = 1e-5) -> None:
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.log_gamma = nn.Parameter(torch.zeros(features))
        self.beta = nn.Parameter(torch.zeros(features))
        self.register_buffer("running_mean", torch.zeros(features))
        self.register_buffer("running_var", torch.ones(features))
        self.x: Tensor | None = None

    def stats(self, x: Tensor | None) -> tuple[Tensor, Tensor]:
        if self.training and x is not None:
            mean, var = x.mean(0), x.var(0, unbiased=False)
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_var.lerp_(var.detach(), self.momentum)
            return mean, var
        return self.running_mean, self.running_var

    def forward(self, c: Tensor | None = None) -> Transform:
        mean, var = self.stats(self.x)
        scale = torch.exp(self.log_gamma) / torch.sqrt(var + self.eps)
        return AffineTransform(self.beta - mean * scale, scale, event_dim=1)


class RealNVP(nn.Module):
    """``transforms`` affine couplings (alternating checkered masks), a BatchNorm before each.

    ``forward(x)`` returns ``(u, log|det J|)``; ``inverse(u)`` maps back. Training-mode
    BatchNorm needs the batch, so the transforms are built from ``x`` on every call.
    """

    def __init__(self, features: int, transforms: int = 10, hidden: int = 256) -> None:
        super().__init__()
        if features < 2 or transforms < 1:
            raise ValueError(f"features={features}, transforms={transforms} are not valid; pass >= 2 and >= 1")
        layers: list[LazyTransform] = []
        for i in range(transforms):
            layers.append(BatchNormTransform(features))
            layers.append(GeneralCouplingTransform(features, mask=torch.arange(features) % 2 == i % 2,
                                                   hidden_features=(hidden, hidden)))
        self.flow = LazyComposedTransform(*layers)
        self.features = features

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        ladj = torch.zeros(len(x), dtype=x.dtype, device=x.device)
        for layer in self.flow.transforms:
            if isinstance(layer, BatchNormTransform):
                layer.x = x
            x, part = layer().call_and_ladj(x)
            ladj = ladj + part
        for layer in self.flow.transforms:
            if isinstance(layer, BatchNormTransform):
                layer.x = None
        return x, ladj

    def inverse(self, u: Tensor) -> Tensor:
        if self.training:
            raise RuntimeError("inverse needs the running BatchNorm statistics; call .eval() first")
        return self.flow().inv(u)


__all__ = ["BatchNormTransform", "RealNVP"]
