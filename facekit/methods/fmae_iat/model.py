"""The AU network (ViT encoder, AU head, identity head behind gradient reversal) and the user-facing :class:`AUDetector`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from facekit.methods.common import batched
from facekit.models.heads import AUHead, grad_reverse, identity_head
from facekit.models.inputs import model_input
from facekit.models.vit_mae import ViTFeatures
from facekit.synth.params import au_index
from facekit.synth.render import check_framing


class AUNet(nn.Module):
    """ViT encoder -> pooled feature -> AU logits; with IAT, also feature -> gradient reversal ->
    identity logits. ``forward`` returns both so the DDP wrapper sees every parameter used."""

    def __init__(self, vit: dict[str, Any], aus: Sequence[str], n_subjects: int = 0, id_head: str = "none",
                 framing: str = "head") -> None:
        super().__init__()
        self.framing = check_framing(framing)
        self.aus = [str(a) for a in aus]
        for a in self.aus:
            au_index(a)
        self.encoder = ViTFeatures(**vit)
        self.au_head = AUHead(self.encoder.dim, len(self.aus))
        self.id_head = None if id_head == "none" else identity_head(id_head, self.encoder.dim, n_subjects)

    def forward(self, images: Tensor, reversal: float = 0.0) -> dict[str, Tensor]:
        h = self.encoder(images)
        out = {"features": h, "au": self.au_head(h)}
        if self.id_head is not None:
            out["identity"] = self.id_head(grad_reverse(h, reversal))
        return out


def from_mae(encoder_state: dict[str, Tensor], **model_config: Any) -> AUNet:
    net = AUNet(**model_config)
    missing, unexpected = net.encoder.load_state_dict(encoder_state, strict=False)
    if unexpected or [k for k in missing if "position_embeddings" not in k]:
        raise RuntimeError(f"MAE encoder weights do not fit the AU model: missing {missing}, unexpected {unexpected}")
    return net


class AUDetector:
    """A trained AU detector: ``predict_proba(images)`` -> ``N x len(aus)`` probabilities.

    ``images``: ``N x 3 x H x W`` (or ``N x 1 x H x W``) floats in [0, 1], any H and W (resized
    to the model's input), framed as ``framing`` says: ``"head"`` (aligned photos, default renders;
    the detector cuts out the face window it was trained on) or ``"face"`` (already face-framed).
    ``aus``, when given, must equal the checkpoint's AU list.
    """

    def __init__(self, net: AUNet, scale: float | None = None, aus: Sequence[str] | None = None) -> None:
        self.net = net.eval()
        self.aus = list(net.aus)
        self.scale = scale
        self.size = net.encoder.spec.size
        if aus is not None:
            self.check_aus(aus)

    def check_aus(self, aus: Sequence[str]) -> None:
        """Raise ``ValueError`` naming both lists when ``aus`` is not the checkpoint's AU list."""
        if [str(a) for a in aus] != self.aus:
            raise ValueError(f"AU list {list(aus)} does not match the checkpoint's AU list {self.aus}; "
                             "pass the checkpoint's list (det.aus) or train a detector for yours")

    @torch.no_grad()
    def _run(self, images: Tensor | np.ndarray, key: str, framing: str, batch_size: int = 256) -> Tensor:
        x = model_input(images, self.size, self.net.framing, framing)
        return batched(lambda b: self.net(b)[key], x, batch_size=batch_size, device=self.net)

    def predict_proba(self, images: Tensor | np.ndarray, framing: str = "head") -> np.ndarray:
        return torch.sigmoid(self._run(images, "au", framing)).numpy()

    def features(self, images: Tensor | np.ndarray, framing: str = "head") -> np.ndarray:
        """Pooled encoder features (what the identity probe reads)."""
        return self._run(images, "features", framing).numpy()
