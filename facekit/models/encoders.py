"""Small convolutional encoders shared by the methods.

One architecture serves ComFace and its baselines (and later methods), so a comparison
between methods is a comparison of objectives, not of backbones. Sized for the 2-core
``cpu`` profile: about 0.5M parameters at 64x64, GroupNorm instead of BatchNorm so a
feature does not depend on what else is in the batch (contrastive batches mix persons).
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn


def _block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.GroupNorm(math.gcd(8, c_out), c_out),
        nn.SiLU(),
    )


class ConvEncoder(nn.Module):
    """``N x 3 x H x W`` images in [0, 1] -> ``N x dim`` features (any H = W >= 32).

    Four stride-2 stages (widths ``widths``) then global average pooling and a linear map,
    so the same weights accept any input size; a 2x2 spatial pooling branch keeps coarse
    layout (where on the face a change happened), which plain global pooling would lose.
    """

    def __init__(self, dim: int = 256, widths: tuple[int, ...] | list[int] = (32, 64, 128, 160)) -> None:
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if dim < 1 or len(widths) < 2 or any(w < 8 or w % 8 for w in widths):
            raise ValueError(f"dim={dim}, widths={widths} are not valid; pass dim >= 1 and >= 2 widths, multiples of 8")
        layers, c = [_block(3, widths[0] // 2, 1)], widths[0] // 2
        for w in widths:
            layers += [_block(c, w, 2), _block(w, w, 1)] if w == widths[-2] else [_block(c, w, 2)]
            c = w
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.proj = nn.Linear(4 * c, dim)
        self.dim, self.widths = dim, widths

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected N x 3 x H x W images, got shape {tuple(x.shape)}")
        h = self.features(x * 2 - 1)
        return self.proj(self.pool(h).flatten(1))


class SpatialEncoder(nn.Module):
    """``N x 3 x H x W`` images in [0, 1] -> ``N x dim`` features that keep *where* things are.

    The audit CNN's layout (``facekit.models.audit_cnn``): 3x3 convolutions of ``widths``, each
    with BatchNorm and ReLU, 2x2 max pooling after a stage while the map is larger than
    ``spatial`` (so a 32 px and a 64 px face both end on a 4 x 4 map), then the map flattened
    into a linear map to ``dim``. Expressions are changes at places (a mouth corner, a brow),
    and the audit CNN learned them less well through a global pool than through its flattened
    map. Unlike :class:`ConvEncoder`, a feature depends on the batch while training
    (BatchNorm), which suits classifiers, not contrastive batches.
    """

    def __init__(self, dim: int = 256, widths: tuple[int, ...] | list[int] = (32, 64, 96, 128),
                 spatial: int = 4) -> None:
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if dim < 1 or len(widths) < 2 or any(w < 1 for w in widths) or spatial < 1:
            raise ValueError(f"dim={dim}, widths={widths}, spatial={spatial} are not valid; pass dim >= 1, "
                             ">= 2 positive widths and spatial >= 1")
        c, stages = 3, []
        for w in widths:
            stages.append(nn.Sequential(nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU()))
            c = w
        self.stages = nn.ModuleList(stages)
        self.pool = nn.AdaptiveAvgPool2d(spatial)  # sizes that do not halve onto the grid
        self.proj = nn.Linear(c * spatial * spatial, dim)
        self.dim, self.widths, self.spatial = dim, widths, spatial

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected N x 3 x H x W images, got shape {tuple(x.shape)}")
        h = x * 2 - 1
        for stage in self.stages:
            h = stage(h)
            if h.shape[-1] >= 2 * self.spatial:
                h = F.max_pool2d(h, 2)
        return self.proj(self.pool(h).flatten(1))


def n_parameters(model: nn.Module) -> int:
    """Trainable parameter count (for the model cards in the notebooks)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["ConvEncoder", "SpatialEncoder", "n_parameters"]
