"""One way to turn what a user passes into a model's input batch."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from facekit.synth.render import reframe


def model_input(images: Tensor | np.ndarray, size: int, framing: str = "head", source: str = "head") -> Tensor:
    """``N x 3 x size x size`` floats in [0, 1] from one image or a batch, colour or grey, any size
    (resized with antialiasing), so every trained model accepts photos as they come.

    ``source`` is how the images are framed (aligned photos and default renders: ``"head"``),
    ``framing`` how the model was trained; a face-framed model gets the face window cut out.
    """
    x = torch.as_tensor(images, dtype=torch.float32)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"images have shape {tuple(x.shape)}; pass N x 3 x H x W (or N x 1 x H x W) in [0, 1]")
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return reframe(x, size, framing, source).clamp(0, 1)
