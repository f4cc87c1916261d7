"""One way to turn what a user passes into a model's input batch, and one way to check it."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from facekit.synth.render import reframe


def check_images(images: Any, *, min_size: int = 1, square: bool = False, name: str = "images",
                 single: bool = False, uint8: bool = False) -> Tensor:
    """A batch of face images as ``N x 3 x H x W`` floats in [0, 1] (grey expanded to colour), or
    an error naming what was wrong (type, shape, empty batch, size, dtype, value range) and what
    to pass instead. Every model checks the images it is given through this one function.

    ``single`` also takes one image ``C x H x W`` (as a batch of one); ``uint8`` also takes uint8
    images (as pools store them), scaled to [0, 1].
    """
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if not isinstance(images, Tensor):
        raise TypeError(f"{name} is a {type(images).__name__}; pass a torch.Tensor N x 3 x H x W in [0, 1] "
                        "(for photo files use facekit.real.align_faces)")
    if single and images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        one = "or one image 3 x H x W" if single else "for one image use images[None]"
        raise ValueError(f"{name} have shape {tuple(images.shape)}; pass a batch N x 3 x H x W (or N x 1 x H x W); "
                         f"{one}")
    if images.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (N = 0); pass at least one image")
    h, w = images.shape[-2:]
    if (square and h != w) or min(h, w) < min_size:
        shape = "square face crops" if square else "face crops"
        raise ValueError(f"{name} are {h}x{w} pixels; pass {shape} of at least {min_size}x{min_size} "
                         "(facekit.real.align_faces makes them from photos)")
    if uint8 and images.dtype == torch.uint8:
        images = images.float() / 255
    if not images.is_floating_point():
        also = " or uint8 in 0..255" if uint8 else " (divide uint8 images by 255)"
        raise ValueError(f"{name} have dtype {images.dtype}; pass floats in [0, 1]{also}")
    lo, hi = float(images.min()), float(images.max())
    if lo != lo or hi != hi or lo < -1e-3 or hi > 1 + 1e-3:
        raise ValueError(f"{name} values span [{lo:.3g}, {hi:.3g}]; pass floats in [0, 1]")
    x = images.float()
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def model_input(images: Tensor | np.ndarray, size: int, framing: str = "head", source: str = "head") -> Tensor:
    """``N x 3 x size x size`` floats in [0, 1] from one image or a batch, colour or grey, any size
    (resized with antialiasing), so every trained model accepts photos as they come; anything
    else is an error from :func:`check_images`.

    ``source`` is how the images are framed (aligned photos and default renders: ``"head"``),
    ``framing`` how the model was trained; a face-framed model gets the face window cut out.
    """
    x = check_images(images, single=True)
    return reframe(x, size, framing, source).clamp(0, 1)
