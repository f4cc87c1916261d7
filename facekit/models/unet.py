"""A small U-Net: an image-to-image encoder-decoder with skip connections.

Used by the generative-contrastive networks (:mod:`facekit.methods.gencon`) to turn a face
into the same face with another expression. Skip connections carry identity detail (hair,
face shape, background, camera noise) past the bottleneck, so the bottleneck only has to
carry what changes. ``residual=True`` predicts a correction added to the input, which is
the natural parametrisation when most pixels stay the same. GroupNorm, as in
:class:`facekit.models.ConvEncoder`, so an output never depends on the rest of the batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _conv(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                         nn.GroupNorm(math.gcd(8, c_out), c_out), nn.SiLU())


class UNet(nn.Module):
    """``N x 3 x H x W`` in [0, 1] -> ``N x 3 x H x W`` in [0, 1].

    ``widths[k]`` channels at 1/2^k resolution; H and W must be divisible by
    ``2 ** (len(widths) - 1)``.
    """

    def __init__(self, widths: Sequence[int] = (32, 64, 128), residual: bool = True) -> None:
        super().__init__()
        widths = [int(w) for w in widths]
        if len(widths) < 2 or any(w < 8 or w % 8 for w in widths):
            raise ValueError(f"widths={widths} is not valid; pass at least 2 widths, multiples of 8")
        self.widths, self.residual = widths, residual
        self.stem = nn.Sequential(_conv(3, widths[0]), _conv(widths[0], widths[0]))
        self.down = nn.ModuleList(nn.Sequential(_conv(a, b, 2), _conv(b, b)) for a, b in pairwise(widths))
        self.up = nn.ModuleList(nn.Sequential(_conv(b + a, a), _conv(a, a))
                                for a, b in pairwise(widths))
        self.head = nn.Conv2d(widths[0], 3, 1)
        nn.init.zeros_(self.head.weight)  # residual: starts as the identity map
        nn.init.zeros_(self.head.bias)

    @property
    def multiple(self) -> int:
        return 2 ** (len(self.widths) - 1)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected N x 3 x H x W images, got shape {tuple(x.shape)}")
        if x.shape[-1] % self.multiple or x.shape[-2] % self.multiple:
            raise ValueError(f"image size {tuple(x.shape[-2:])} is not valid for this U-Net; "
                             f"height and width must be multiples of {self.multiple}")
        skips, h = [], self.stem(x * 2 - 1)
        for down in self.down:
            skips.append(h)
            h = down(h)
        for up in reversed(self.up):
            s = skips.pop()
            h = up(torch.cat([F.interpolate(h, size=s.shape[-2:], mode="nearest"), s], 1))
        out = self.head(h)
        return (x + out).clamp(0, 1) if self.residual else torch.sigmoid(out)


__all__ = ["UNet"]
