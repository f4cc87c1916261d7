"""The scoring oracle: one network that judges generated or edited faces for every method.

An oracle is trained once, apart from the model it scores, and frozen; a method reads the faces
it makes through it (identity for GenCon's references, emotion and AUs for SynFER's samples,
identity, identity code and attribute levels for PluGeN4Faces' edits). Each method asks for the
heads it needs; the encoder, the reading and the output names are the same everywhere, so a
score means the same thing in every record.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from facekit.methods.common import as_float, batched
from facekit.models import ConvEncoder, SpatialEncoder

BACKBONES: dict[str, type[nn.Module]] = {"conv": ConvEncoder, "spatial": SpatialEncoder}


class Oracle(nn.Module):
    """Image -> ``features`` (the ConvEncoder's), ``emb`` (a unit-norm identity embedding) and,
    for each head asked for: ``logits`` (``n_classes`` emotions), ``au_logits`` (``n_aus`` AU
    activations), ``code`` (an ``n_codes``-dim identity code) and ``levels`` (``n_levels``
    attribute levels).

    ``emb`` is the normalised output of a two-layer ``id_dim`` head when ``id_dim`` is given, else
    the normalised features (an encoder trained with SupCon needs no extra head).

    ``backbone``: ``"conv"`` (:class:`facekit.models.ConvEncoder`, GroupNorm, a 2 x 2 pooled map:
    the identity oracles, whose contrastive batches mix persons) or ``"spatial"``
    (:class:`facekit.models.SpatialEncoder`, the audit CNN's layout with its 4 x 4 map: the
    expression oracle, since an expression is a change at a place).
    """

    def __init__(self, dim: int = 64, widths: Sequence[int] = (16, 32, 48, 64), *, id_dim: int = 0,
                 n_classes: int = 0, n_aus: int = 0, n_codes: int = 0, n_levels: int = 0,
                 backbone: str = "conv") -> None:
        super().__init__()
        for name, n in (("id_dim", id_dim), ("n_classes", n_classes), ("n_aus", n_aus), ("n_codes", n_codes),
                        ("n_levels", n_levels)):
            if not isinstance(n, int) or n < 0:
                raise ValueError(f"Oracle {name}={n!r} is not valid; pass a non-negative int (0: no such head)")
        if backbone not in BACKBONES:
            raise ValueError(f"Oracle backbone={backbone!r} is not valid; choose one of {list(BACKBONES)}")
        self.encoder = BACKBONES[backbone](dim, tuple(widths))
        self.id_head = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, id_dim)) if id_dim else None
        # The names below are those of the weights the methods cached before this module existed.
        self.head = nn.Linear(dim, n_classes) if n_classes else None
        self.au_head = nn.Linear(dim, n_aus) if n_aus else None
        self.code_head = nn.Linear(dim, n_codes) if n_codes else None
        self.attr_head = nn.Linear(dim, n_levels) if n_levels else None

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        h = self.encoder(x)
        out = {"features": h, "emb": F.normalize(self.id_head(h) if self.id_head is not None else h, dim=1)}
        for key, head in (("logits", self.head), ("au_logits", self.au_head), ("code", self.code_head),
                          ("levels", self.attr_head)):
            if head is not None:
                out[key] = head(h)
        return out


def read(oracle: nn.Module, images: Tensor, batch_size: int = 512) -> dict[str, Tensor]:
    """The oracle's outputs for images (floats in [0, 1], or uint8 as pools store them), in
    batches on the oracle's device, without gradients, gathered on the CPU."""
    oracle.eval()
    return batched(lambda x: oracle(as_float(x)), images, batch_size=batch_size, device=oracle)


__all__ = ["BACKBONES", "Oracle", "read"]
