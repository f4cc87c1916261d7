"""The networks (generator, encoder, single-image baseline) and the user-facing :class:`GenCon`; the identity
oracle is :class:`facekit.methods.oracle.Oracle` with no heads."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from facekit.methods.common import batched
from facekit.methods.gencon.config import MIN_SIZE, GenConConfig
from facekit.models.encoders import SpatialEncoder
from facekit.models.inputs import check_images
from facekit.models.unet import UNet
from facekit.synth.params import EMOTIONS


def classifier_head(dim: int, n_classes: int) -> nn.Sequential:
    """LayerNorm then linear: blind to the *scale* of its input, so a reference only a little
    away from the query (a small ``E(x) - E(G(x))``) is read by its direction. The baseline
    gets the same head."""
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, n_classes))


class GenConNet(nn.Module):
    """Generator G (U-Net), encoder E (a :class:`SpatialEncoder`, which keeps where on the face
    a feature is) and a linear classifier on ``E(x) - E(G(x))``."""

    def __init__(self, g_widths: Sequence[int] = (16, 32, 64, 96), dim: int = 128,
                 e_widths: Sequence[int] = (32, 64, 96, 128), n_classes: int = len(EMOTIONS)) -> None:
        super().__init__()
        self.generator = UNet(g_widths)
        self.encoder = SpatialEncoder(dim, tuple(e_widths))
        self.classifier = classifier_head(dim, n_classes)

    def contrast(self, x: Tensor, reference: Tensor) -> Tensor:
        """The contrastive representation ``E(x) - E(reference)`` (one encoder pass for both)."""
        h = self.encoder(torch.cat([x, reference]))
        return h[: len(x)] - h[len(x):]

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        reference = self.generator(x)
        return {"reference": reference, "logits": self.classifier(self.contrast(x, reference))}


class SingleImageNet(nn.Module):
    """The baseline: the same encoder E and a linear classifier on ``E(x)``."""

    def __init__(self, dim: int = 128, e_widths: Sequence[int] = (32, 64, 96, 128), n_classes: int = len(EMOTIONS)) -> None:
        super().__init__()
        self.encoder = SpatialEncoder(dim, tuple(e_widths))
        self.classifier = classifier_head(dim, n_classes)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return {"logits": self.classifier(self.encoder(x))}


class GenCon:
    """A trained generative-contrastive network.

    ``reference(images)`` makes each face's neutral reference; ``predict_proba(images)``
    classifies the expression from the query-reference contrast. Images are ``N x 3 x H x W``
    (or ``N x 1 x H x W``) floats in [0, 1], square, any size (resized to the model's).
    """

    def __init__(self, net: GenConNet, cfg: GenConConfig, profile: str, seed: int) -> None:
        self.net, self.cfg, self.profile, self.seed = net.eval(), cfg, profile, seed
        self.classes = list(EMOTIONS)
        self.size = cfg.data.size

    def _prepare(self, images: Tensor) -> Tensor:
        return prepare_images(images, self.size)

    def _run(self, images: Tensor, fn: Callable[[Tensor], Tensor], batch_size: int) -> Tensor:
        return batched(fn, self._prepare(images), batch_size=batch_size, device=self.net)

    def reference(self, images: Tensor, batch_size: int = 256) -> Tensor:
        """The generated neutral reference of each face, ``N x 3 x S x S`` in [0, 1]."""
        return self._run(images, self.net.generator, batch_size)

    def contrast(self, images: Tensor, batch_size: int = 256) -> Tensor:
        """The contrastive representation ``E(x) - E(G(x))``, ``N x dim``."""
        return self._run(images, lambda x: self.net.contrast(x, self.net.generator(x)), batch_size)

    def predict_proba(self, images: Tensor, batch_size: int = 256) -> np.ndarray:
        """Class probabilities ``(N, len(classes))`` in ``classes`` order."""
        logits = self._run(images, lambda x: self.net(x)["logits"], batch_size)
        return torch.softmax(logits, 1).numpy()

    def reference_photos(self, sources: Any, detector: str = "haar",
                         fallback: str | None = None) -> tuple[Tensor, Tensor, list[Any]]:
        """References for real photos through :mod:`facekit.real` (load, detect, align).

        Returns ``(queries, references, records)``: one aligned crop and one reference per row,
        and :func:`facekit.real.align_faces`'s record for every input. A photo where the
        detector finds no face gets no reference and a warning naming it; with
        ``fallback="center"`` it gets a reference of its central square, also with a warning.
        """
        from facekit.real import align_faces

        queries, records = align_faces(sources, size=self.size, detector=detector, fallback=fallback)
        for rec in records:
            if rec.status == "fallback":
                warnings.warn(f"{rec.source}: the face detector found no face ({rec.reason}); this reference is "
                              "of a crop that may not show a face", stacklevel=2)
            elif rec.status != "ok":
                warnings.warn(f"{rec.source}: no reference made: {rec.status} ({rec.reason})", stacklevel=2)
        refs = self.reference(queries) if len(queries) else torch.empty(0, 3, self.size, self.size)
        return queries, refs, records


def prepare_images(images: Any, size: int) -> Tensor:
    """Check and resize a batch of face images; errors name what was wrong and what to pass."""
    x = check_images(images, min_size=MIN_SIZE, square=True)
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.clamp(0, 1).contiguous()
