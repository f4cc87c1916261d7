"""Small convolutional encoders shared by the methods.

One architecture serves ComFace and its baselines (and later methods), so a comparison
between methods is a comparison of objectives, not of backbones. Sized for the 2-core
``cpu`` profile: about 0.5M parameters at 64x64, GroupNorm instead of BatchNorm so a
feature does not depend on what else is in the batch (contrastive batches mix persons).
"""

from __future__ import annotations

import math

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


def n_parameters(model: nn.Module) -> int:
    """Trainable parameter count (for the model cards in the notebooks)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["ConvEncoder", "n_parameters"]
