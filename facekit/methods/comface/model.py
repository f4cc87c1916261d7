"""ComFace's network and the user-facing model."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from facekit.methods.comface.config import DELTA_SCALE, TASKS, ComFaceConfig, check_task
from facekit.methods.common import batched
from facekit.models import ConvEncoder
from facekit.models.inputs import check_images, model_input


class ComFaceNet(nn.Module):
    """Shared encoder, inter head (identity embedding), intra head (change embedding) and a
    bias-free linear regressor from intra-embedding differences to the task deltas."""

    def __init__(self, dim: int = 256, widths: Sequence[int] = (32, 64, 128, 160), inter_dim: int = 128,
                 intra_dim: int = 64, tasks: Sequence[str] = TASKS) -> None:
        super().__init__()
        unknown = [t for t in tasks if t not in TASKS]
        if unknown or not tasks:
            raise ValueError(f"tasks={list(tasks)} is not valid; pass a non-empty subset of {list(TASKS)}")
        self.tasks = list(tasks)
        self.encoder = ConvEncoder(dim, tuple(widths))
        self.inter_head = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, inter_dim))
        self.intra_head = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, intra_dim))
        self.regressor = nn.Linear(intra_dim, len(self.tasks), bias=False)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        h = self.encoder(x)
        return {"features": h, "inter": F.normalize(self.inter_head(h), dim=1), "intra": self.intra_head(h)}


class ComFace:
    """A trained ComFace model: inter / intra embeddings and change estimates for image pairs.

    Images are ``N x 3 x H x W`` in [0, 1], framed as ``framing`` says: ``"head"`` (aligned
    photos, what the Analyzer passes; the face window is cut out for a face-framed model) or
    ``"face"`` (the training world's renders); other sizes are resized to the model's input.
    """

    def __init__(self, net: ComFaceNet, cfg: ComFaceConfig, profile: str, seed: int) -> None:
        self.net, self.cfg, self.profile, self.seed = net.eval(), cfg, profile, seed
        self.tasks = list(net.tasks)
        self.size, self.framing = cfg.data.size, cfg.data.framing

    def _prepare(self, images: Tensor, framing: str) -> Tensor:
        return model_input(images, self.size, self.framing, framing)

    @torch.no_grad()
    def embed(self, images: Tensor, batch_size: int = 256, framing: str = "head") -> dict[str, Tensor]:
        """``features`` (encoder), ``inter`` (unit-norm identity embedding), ``intra`` (change embedding)."""
        return batched(self.net, self._prepare(images, framing), batch_size=batch_size, device=self.net)

    def identity_embedder(self, framing: str | None = None) -> Callable[[Tensor], Tensor]:
        """``images -> inter embedding`` for images framed as ``framing`` (default: as the model was
        trained, i.e. the worlds' renders): the one callable every verification score takes."""
        fr = self.framing if framing is None else framing
        return lambda images: self.embed(images, framing=fr)["inter"]

    def pair_features(self, a: Tensor, b: Tensor, framing: str = "head") -> Tensor:
        """``intra(b) - intra(a)``: the frozen pair feature the transfer heads regress on."""
        a, b = _same_size_pair(a, b)
        return self.embed(b, framing=framing)["intra"] - self.embed(a, framing=framing)["intra"]

    def similarity(self, a: Tensor, b: Tensor, framing: str = "head") -> Tensor:
        """Cosine similarity of inter embeddings: the identity-verification score."""
        a, b = _same_size_pair(a, b)
        return (self.embed(a, framing=framing)["inter"] * self.embed(b, framing=framing)["inter"]).sum(1)

    def predict_change(self, a: Tensor, b: Tensor, task: str, framing: str = "head") -> Tensor:
        """The change from a to b in the task's units, read from the synthetic-trained intra
        regressor (no labelled target data; for calibrated estimates fit a :class:`ChangeHead`)."""
        k = check_task(task, self.tasks)
        with torch.no_grad():
            feats = self.pair_features(a, b, framing)
            pred = self.net.regressor(feats.to(self.net.regressor.weight.device)).cpu()
        return pred[:, k] * DELTA_SCALE[task]


def _same_size_pair(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    a, b = check_images(a, single=True, name="a"), check_images(b, single=True, name="b")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"a has {a.shape[0]} images and b has {b.shape[0]}; pass one b per a")
    if a.shape[-2:] != b.shape[-2:]:
        warnings.warn(f"a is {tuple(a.shape[-2:])} and b is {tuple(b.shape[-2:])} pixels; resizing b to a's size",
                      stacklevel=3)
        b = F.interpolate(b, size=tuple(a.shape[-2:]), mode="bilinear", antialias=True, align_corners=False)
    return a, b
