"""Simple image statistics that say how harsh a style is, for renders and photos alike.

The target style stands in for real photos, so it should be as hard as they are and no harder:
if its faces are darker, blurrier, noisier or more harshly side-lit than any real photo, a model
that fails on it is failing on a world nobody photographs. These six numbers are computed per image, on the same
aligned face crops for both (64 px head framing, as ``facekit.real.align_faces`` cuts photos), so
their distributions can be compared side by side (``facekit.viz.style_calibration``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

STATS = ("brightness", "contrast", "sharpness", "noise", "saturation", "asymmetry")
STAT_UNITS = {
    "brightness": "mean luminance (0-1)",
    "contrast": "luminance std (0-1)",
    "sharpness": "Laplacian std (0-1 scale)",
    "noise": "noise sigma (0-1 scale)",
    "saturation": "mean HSV saturation (0-1)",
    "asymmetry": "left-right luminance gap / mean",
}
_LAPLACE = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
# Immerkaer (1996): this mask cancels image structure up to second order, leaving the noise.
_NOISE = torch.tensor([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])


def _luminance(images: torch.Tensor) -> torch.Tensor:
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images have shape {tuple(images.shape)}; pass N x 3 x H x W (or N x 1 x H x W) in [0, 1]")
    x = images.float()
    if x.shape[1] == 1:
        return x
    return (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)


def image_stats(images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image brightness, contrast, sharpness, noise, saturation and asymmetry of
    ``N x C x H x W`` images.

    brightness: mean luminance. contrast: luminance standard deviation (RMS contrast).
    sharpness: standard deviation of the luminance Laplacian (falls with blur).
    noise: Immerkaer's estimate of the sensor noise sigma. saturation: mean of
    (max - min) / max over RGB (0 for grey images). asymmetry: the gap between the mean
    luminance of the left and right halves of the central two thirds (the face in an aligned
    crop), over its mean; a face is near-symmetric, so this measures how hard the light comes from
    one side, which none of the other five sees.
    """
    lum = _luminance(images)
    lap = F.conv2d(lum, _LAPLACE.view(1, 1, 3, 3).to(lum))
    noise = F.conv2d(lum, _NOISE.view(1, 1, 3, 3).to(lum)).abs().mean((1, 2, 3)) * math.sqrt(math.pi / 2) / 6
    x = images.float()
    if x.shape[1] == 3:
        hi, lo = x.amax(1), x.amin(1)
        saturation = torch.where(hi > 1e-3, (hi - lo) / hi.clamp(min=1e-3), torch.zeros(())).mean((1, 2))
    else:
        saturation = torch.zeros(len(x))
    h, w = lum.shape[-2:]
    face = lum[:, 0, h // 6: h - h // 6, w // 6: w - w // 6]
    half = face.shape[-1] // 2
    gap = (face[..., :half].mean((1, 2)) - face[..., -half:].mean((1, 2))).abs()
    return {"brightness": lum.mean((1, 2, 3)), "contrast": lum.std((1, 2, 3)), "sharpness": lap.std((1, 2, 3)),
            "noise": noise, "saturation": saturation, "asymmetry": gap / face.mean((1, 2)).clamp(min=1e-3)}


def coverage(synthetic: dict[str, torch.Tensor], real: dict[str, torch.Tensor],
             quantiles: tuple[float, float] = (0.02, 0.98)) -> dict[str, dict[str, float]]:
    """For each statistic, the synthetic and real ``quantiles`` range and whether the synthetic
    range stays within the real one widened by 10% of its span (``within``): the check that a
    style is no harsher than the photos it stands in for."""
    out = {}
    for name in STATS:
        s = torch.quantile(synthetic[name].float(), torch.tensor(quantiles))
        r = torch.quantile(real[name].float(), torch.tensor(quantiles))
        slack = 0.1 * float(r[1] - r[0])
        out[name] = {"synthetic_low": float(s[0]), "synthetic_high": float(s[1]), "real_low": float(r[0]),
                     "real_high": float(r[1]),
                     "within": bool(s[0] >= r[0] - slack and s[1] <= r[1] + slack)}
    return out


def style_sample(style: str, n: int = 200, backend: str = "auto", size: int = 64, seed: int = 0) -> torch.Tensor:
    """``n`` random faces rendered in ``style``, head framing at ``size`` px: the crop real photos
    are aligned to, so their statistics compare like with like."""
    from facekit.synth.params import sample_params
    from facekit.synth.render import render

    return render(sample_params(n, seed=seed, style=style), size, style=style, backend=backend, framing="head")
