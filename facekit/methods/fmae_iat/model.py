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

# What the identity head reads: the AU head's features, or their mean over the readout grid
# (the mean of the tokens, the pooled feature of the paper's ViT).
ID_INPUTS = ("features", "mean")


class AUNet(nn.Module):
    """ViT encoder -> pooled feature (``readout``, see :class:`ViTFeatures`) -> AU logits; with
    IAT, also feature -> gradient reversal -> identity logits. ``forward`` returns both so the DDP
    wrapper sees every parameter used. ``layer_decay``: see :meth:`lr_scales`. ``id_input``
    (:data:`ID_INPUTS`): ``"mean"`` puts the identity head on the mean of the tokens, the pooled
    feature the paper's reversal acts on, while the AU head reads the grid."""

    def __init__(self, vit: dict[str, Any], aus: Sequence[str], n_subjects: int = 0, id_head: str = "none",
                 framing: str = "head", layer_decay: float | None = None, readout: str = "mean",
                 id_input: str = "features") -> None:
        super().__init__()
        if id_input not in ID_INPUTS:
            raise ValueError(f"id_input={id_input!r} is not valid; choose one of {list(ID_INPUTS)}")
        self.id_input = id_input
        if layer_decay is not None and not 0 < layer_decay <= 1:
            raise ValueError(f"layer_decay={layer_decay!r} is not valid; pass a factor in (0, 1] or None")
        self.framing = check_framing(framing)
        self.layer_decay = layer_decay
        self.aus = [str(a) for a in aus]
        for a in self.aus:
            au_index(a)
        self.encoder = ViTFeatures(readout=readout, **vit)
        self.au_head = AUHead(self.encoder.dim, len(self.aus))
        id_dim = self.encoder.spec.width if id_input == "mean" else self.encoder.dim
        self.id_head = None if id_head == "none" else identity_head(id_head, id_dim, n_subjects)

    def lr_scales(self) -> dict[str, float]:
        """Layer-wise learning-rate decay (BEiT, MAE and FMAE fine-tuning): block ``i`` of ``depth``
        trains at ``layer_decay ** (depth - i)`` times the rate, the embeddings (patch projection
        or stem, positions) at ``layer_decay ** (depth + 1)``, the final norm and the heads at the
        full rate, so what pretraining learned low in the network moves least."""
        if self.layer_decay is None:
            return {}
        depth = self.encoder.spec.depth
        out = {}
        for name, _ in self.encoder.named_parameters():
            parts = name.split(".")
            if "embeddings" in parts:
                layer = 0
            elif blocks := [p for p in ("layers", "layer") if p in parts]:  # transformers 5 and 4 names
                layer = int(parts[parts.index(blocks[0]) + 1]) + 1
            else:
                layer = depth + 1
            out[f"encoder.{name}"] = self.layer_decay ** (depth + 1 - layer)
        return out

    def forward(self, images: Tensor, reversal: float = 0.0) -> dict[str, Tensor]:
        h = self.encoder(images)
        out = {"features": h, "au": self.au_head(h)}
        if self.id_head is not None:
            pooled = h.view(len(h), self.encoder.spec.width, -1).mean(-1) if self.id_input == "mean" else h
            out["identity"] = self.id_head(grad_reverse(pooled, reversal))
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
