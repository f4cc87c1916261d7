"""Contrastive loss and image augmentations in plain torch (no torchvision here).

One loss serves both kinds of contrastive learning in facekit: with person ids as labels it
is supervised-contrastive (SupCon, Khosla et al. 2020), the ComFace inter-personal loss; with
one label per source image it is SimCLR's NT-Xent (Chen et al. 2020), the generic
self-supervised baseline. Keeping one function makes the comparison a comparison of what
counts as a positive, nothing else.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def supcon_loss(z: Tensor, labels: Tensor, temperature: float = 0.1) -> Tensor:
    """Supervised-contrastive loss of L2-normalised embeddings ``z`` (N x d).

    Every other sample with the same label is a positive; the rest are negatives. Anchors
    with no positive in the batch are left out (they carry no signal), and a batch without
    any positive pair is an error rather than a silent zero.
    """
    if z.ndim != 2 or labels.shape != (z.shape[0],):
        raise ValueError(f"pass z of shape (N, d) and labels of shape (N,), got {tuple(z.shape)} and {tuple(labels.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature={temperature} is not valid; pass a positive float (0.1 is usual)")
    z = F.normalize(z, dim=1)
    logits = z @ z.T / temperature
    self_mask = torch.eye(len(z), dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, -math.inf)
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    pos = (labels[:, None] == labels[None, :]) & ~self_mask
    n_pos = pos.sum(1)
    has = n_pos > 0
    if not has.any():
        raise ValueError("no two samples share a label; a contrastive batch needs positive pairs")
    mean_pos = log_prob.masked_fill(~pos, 0.0).sum(1)[has] / n_pos[has]
    return -mean_pos.mean()


def _gaussian_blur(x: Tensor, sigma: Tensor) -> Tensor:
    """Per-image Gaussian blur (sigma in pixels, 0 keeps the image) with a 5-tap kernel."""
    n, c, h, w = x.shape
    k = torch.arange(5, dtype=x.dtype, device=x.device) - 2
    g = torch.exp(-(k[None] ** 2) / (2 * sigma.clamp(min=1e-3)[:, None] ** 2))
    g = torch.where(sigma[:, None] > 0, g, (k[None] == 0).to(x.dtype))
    g = g / g.sum(1, keepdim=True)
    weight = g.repeat_interleave(c, 0)
    y = F.conv2d(F.pad(x.reshape(1, n * c, h, w), (2, 2, 0, 0), mode="replicate"), weight.view(n * c, 1, 1, 5), groups=n * c)
    y = F.conv2d(F.pad(y, (0, 0, 2, 2), mode="replicate"), weight.view(n * c, 1, 5, 1), groups=n * c)
    return y.view(n, c, h, w)


def augment(
    x: Tensor,
    *,
    crop_scale: tuple[float, float] = (0.6, 1.0),
    flip: bool = True,
    colour: float = 0.4,
    grey_p: float = 0.2,
    blur_p: float = 0.5,
    noise: float = 0.03,
) -> Tensor:
    """SimCLR-style random views of ``N x 3 x H x W`` images in [0, 1], drawn from torch's
    global RNG (which :func:`facekit.train.fit` reseeds every step, so views are reproducible).

    Random resized crop (area fraction in ``crop_scale``; ``(1, 1)`` turns it off), horizontal
    flip, brightness / contrast / saturation jitter of relative strength ``colour``, grey with
    probability ``grey_p``, blur with probability ``blur_p`` and Gaussian noise of std up to
    ``noise``. These cover the camera effects of the target style without showing it.
    """
    n, _, h, w = x.shape
    dev, dt = x.device, x.dtype

    def u(lo: float = 0.0, hi: float = 1.0) -> Tensor:
        return lo + (hi - lo) * torch.rand(n, device=dev, dtype=dt)

    if crop_scale != (1.0, 1.0):
        side = u(*crop_scale).sqrt()
        tx, ty = (1 - side) * u(-1, 1), (1 - side) * u(-1, 1)
        sx = side * (torch.where(u() < 0.5, -1.0, 1.0) if flip else 1.0)
        theta = torch.zeros(n, 2, 3, device=dev, dtype=dt)
        theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sx, tx, side, ty
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    elif flip:
        x = torch.where((u() < 0.5).view(n, 1, 1, 1), x.flip(3), x)
    if colour > 0:
        grey = x.mean(1, keepdim=True)
        x = grey + (x - grey) * u(1 - colour, 1 + colour).view(n, 1, 1, 1)  # saturation
        mean = x.mean((1, 2, 3), keepdim=True)
        x = mean + (x - mean) * u(1 - colour, 1 + colour).view(n, 1, 1, 1)  # contrast
        x = x * u(1 - colour, 1 + colour).view(n, 1, 1, 1)  # brightness
    if grey_p > 0:
        x = torch.where((u() < grey_p).view(n, 1, 1, 1), x.mean(1, keepdim=True).expand_as(x), x)
    if blur_p > 0:
        x = _gaussian_blur(x, torch.where(u() < blur_p, u(0.1, 1.5), torch.zeros((), device=dev, dtype=dt)))
    if noise > 0:
        x = x + noise * u().view(n, 1, 1, 1) * torch.randn_like(x)
    return x.clamp(0, 1)
