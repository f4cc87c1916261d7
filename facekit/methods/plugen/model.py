"""The flows, the linear directions and the user-facing :class:`PlugenEditor`."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from facekit.methods.common import as_float, batched
from facekit.methods.plugen.config import (
    ATTRIBUTE_NAMES,
    ATTRIBUTES,
    EDIT_METHODS,
    N_ATTR,
    PlugenConfig,
    to_target,
)
from facekit.models.autoencoder import AutoEncoder
from facekit.models.flows import RealNVP
from facekit.models.inputs import check_images, model_input
from facekit.synth.framing import FACE_HALF_WIDTH


class PlugenFlow(nn.Module):
    """The plugin: a RealNVP whose first ``n_attr`` output dimensions are the attributes."""

    def __init__(self, features: int = 128, transforms: int = 10, hidden: int = 256, n_attr: int = N_ATTR) -> None:
        super().__init__()
        if not 0 < n_attr < features:
            raise ValueError(f"n_attr={n_attr} is not valid for {features} features; pass 1 to {features - 1}")
        self.n_attr = n_attr
        self.flow = RealNVP(features, transforms, hidden)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return self.flow(z)

    def inverse(self, u: Tensor) -> Tensor:
        return self.flow.inverse(u)


class LinearDirections(nn.Module):
    """InterFaceGAN-style directions: ``level ~ z @ weight.T + bias`` per attribute (weights
    fitted by scikit-learn ridge, stored as buffers so they load from safetensors)."""

    def __init__(self, features: int = 128, n_attr: int = N_ATTR) -> None:
        super().__init__()
        self.register_buffer("weight", torch.zeros(n_attr, features))
        self.register_buffer("bias", torch.zeros(n_attr))

    def forward(self, z: Tensor) -> Tensor:
        return z @ self.weight.T + self.bias


@torch.no_grad()
def encode_all(ae: AutoEncoder, images: Tensor, batch: int = 512) -> Tensor:
    """Codes of uint8 or float images, in batches."""
    ae.eval()
    return batched(lambda x: ae.encode(as_float(x)), images, batch_size=batch, device=ae)


class PlugenEditor:
    """Edit face attributes of images: ``editor.edit(images, smile=0.9, age=0.2)``.

    ``method`` picks the latent editor: ``"plugen4faces"`` (identity-aware flow, default),
    ``"plugen"`` (the flow trained without the identity term) or ``"linear"``. Images are framed
    as the model was trained (:attr:`framing`, the world's renders) unless a ``framing`` argument
    says otherwise (``"head"``: aligned photos, whose face window is then cut out).
    """

    def __init__(self, ae: AutoEncoder, flows: Mapping[str, PlugenFlow], linear: LinearDirections,
                 cfg: PlugenConfig, profile: str, seed: int) -> None:
        self.ae, self.flows, self.linear = ae.eval(), {k: f.eval() for k, f in flows.items()}, linear.eval()
        self.cfg, self.profile, self.seed = cfg, profile, seed
        self.attributes: list[str] = list(ATTRIBUTE_NAMES)
        self.methods: list[str] = list(EDIT_METHODS)
        self.size, self.framing = ae.size, cfg.data.framing

    @property
    def device(self) -> torch.device:
        return next(self.ae.parameters()).device

    # -- latent space ---------------------------------------------------------------
    def _prepare(self, images: Tensor, framing: str | None) -> Tensor:
        if framing is None or framing == self.framing:
            return check_images(images, single=True, uint8=True)
        return model_input(images, self.size, self.framing, framing)

    @torch.no_grad()
    def encode(self, images: Tensor, framing: str | None = None) -> Tensor:
        return encode_all(self.ae, self._prepare(images, framing)).to(self.device)

    @torch.no_grad()
    def decode(self, z: Tensor) -> Tensor:
        return torch.cat([self.ae.decode(z[i:i + 512].to(self.device)) for i in range(0, len(z), 512)]).cpu()

    def embed(self, images: Tensor, optimise_steps: int = 50, lr: float = 0.03, anchor: float = 0.1,
              framing: str | None = None) -> Tensor:
        """Codes of (real) images: the encoder's guess, then ``optimise_steps`` Adam steps on the
        reconstruction MSE plus ``anchor * mean((z - z_encoder)^2)`` (e4e + optimisation).

        The anchor keeps the code where the flows were trained, so their inverses stay finite
        on real photos; the default 0.1 costs little reconstruction (the measurement is in
        MODEL_CARD.md)."""
        if not isinstance(optimise_steps, int) or optimise_steps < 0:
            raise ValueError(f"optimise_steps={optimise_steps!r} is not valid; pass an int >= 0")
        x = self._prepare(images, framing)
        z0 = self.encode(x)
        if optimise_steps == 0:
            return z0
        target = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True,
                               align_corners=False).to(self.device) if x.shape[-1] != self.size else x.to(self.device)
        z = z0.clone().requires_grad_(True)
        opt = torch.optim.Adam([z], lr=lr)
        for p in self.ae.parameters():
            p.requires_grad_(False)
        try:
            for _ in range(optimise_steps):
                loss = F.mse_loss(self.ae.decode(z), target) + anchor * (z - z0).pow(2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
        finally:
            for p in self.ae.parameters():
                p.requires_grad_(True)
        return z.detach()

    # -- editing --------------------------------------------------------------------
    def check_levels(self, levels: Mapping[str, float]) -> dict[str, float]:
        """Validate attribute names; clip levels to [0, 1] with a warning that says so."""
        unknown = [k for k in levels if k not in self.attributes]
        if unknown:
            raise ValueError(f"unknown attribute(s) {unknown}; this editor was trained on {self.attributes}")
        out = {}
        for name, value in levels.items():
            v = float(value)
            if not math.isfinite(v):
                raise ValueError(f"{name}={value!r} is not valid; pass a level in [0, 1]")
            if not 0 <= v <= 1:
                lo, hi = ATTRIBUTES[name][1:3]
                warnings.warn(f"{name}={v:g} is outside the trained range [0, 1] (level 0 = {lo:g}, 1 = {hi:g} "
                              f"{ATTRIBUTES[name][3]}); clipped to {min(1.0, max(0.0, v)):g}", stacklevel=3)
                v = min(1.0, max(0.0, v))
            out[name] = v
        return out

    def readout(self, z: Tensor, method: str = "plugen4faces") -> Tensor:
        """The method's own reading of each attribute level (N x 7)."""
        self._check_method(method)
        with torch.no_grad():
            if method == "linear":
                return self.linear(z.to(self.device)).cpu()
            u, _ = self.flows[method](z.to(self.device))
            return ((u[:, :N_ATTR] + 1) / 2).cpu()

    @torch.no_grad()
    def edit_latent(self, z: Tensor, levels: Mapping[str, float | Tensor], method: str = "plugen4faces",
                    amount: float = 1.0) -> Tensor:
        """Move codes ``amount`` of the way from the method's reading to the target ``levels``
        (a float or a per-face tensor per attribute; not validated here, see :meth:`edit`)."""
        self._check_method(method)
        z = z.to(self.device)
        if method == "linear":
            w = self.linear.weight
            for name, level in levels.items():
                k = ATTRIBUTE_NAMES.index(name)
                now = self.linear(z)[:, k]
                step = amount * (torch.as_tensor(level, dtype=z.dtype, device=z.device) - now)
                z = z + step[:, None] * (w[k] / w[k].pow(2).sum())[None]
            return z
        flow = self.flows[method]
        u, _ = flow(z)
        for name, level in levels.items():
            k = ATTRIBUTE_NAMES.index(name)
            target = to_target(torch.as_tensor(level, dtype=u.dtype, device=u.device))
            u[:, k] = u[:, k] + amount * (target - u[:, k])
        out = flow.inverse(u)
        bad = ~torch.isfinite(out).all(1)
        if bad.any():
            warnings.warn(f"the {method} flow's inverse overflowed for {int(bad.sum())} of {len(z)} codes (far from "
                          "the codes it was trained on, e.g. a real photo optimised too far); those are returned "
                          "unedited", stacklevel=2)
            out = torch.where(bad[:, None], z, out)
        return out

    def edit(self, images: Tensor, method: str = "plugen4faces", optimise_steps: int = 0,
             framing: str | None = None, **levels: float) -> Tensor:
        """Edited images (``N x 3 x size x size``) with each named attribute set to its level.

        ``images``: ``N x 3 x H x W`` in [0, 1], any size (resized to the model's). Unknown
        attributes raise ``ValueError`` listing :attr:`attributes`; levels outside [0, 1] are
        clipped with a warning. ``optimise_steps > 0`` refines the codes (for real photos);
        ``framing="head"`` for aligned photos (see the class docstring).
        """
        levels = self.check_levels(levels)
        z = self.embed(images, optimise_steps, framing=framing)
        return self.decode(self.edit_latent(z, levels, method))

    def edit_photos(self, sources: Any, method: str = "plugen4faces", optimise_steps: int = 100,
                    fallback: Any = None, min_face: int = 24, **levels: float) -> tuple[Tensor, Tensor, list[Any]]:
        """Real photos (paths, arrays, ...): find and crop the face, embed, edit.

        Returns ``(crops, edited, records)``, the crops in the model's framing; a photo with no
        face found is reported in its record (and in a warning) and not edited, unless
        ``fallback`` (see :func:`facekit.real.align_faces`) says what to crop instead.
        """
        from facekit.real import align_faces

        levels = self.check_levels(levels)
        head = self.size if self.framing == "head" else math.ceil(self.size / FACE_HALF_WIDTH)
        crops, records = align_faces(sources, size=head, fallback=fallback, min_face=min_face)
        if len(crops) and self.framing != "head":
            crops = model_input(crops, self.size, self.framing, "head")
        missing = [f"{r.source}: {r.reason}" for r in records if r.status not in ("ok", "fallback")]
        if missing:
            warnings.warn("not edited (no face found): " + "; ".join(missing), stacklevel=2)
        if len(crops) == 0:
            return crops, crops, records
        z = self.embed(crops, optimise_steps)
        return crops, self.decode(self.edit_latent(z, levels, method)), records

    def _check_method(self, method: str) -> None:
        if method not in EDIT_METHODS:
            raise ValueError(f"method={method!r} is not valid; choose one of {list(EDIT_METHODS)}")
