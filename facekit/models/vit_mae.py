"""A ViT masked autoencoder and its encoder, from ``transformers`` (``ViTMAE``; no timm).

:class:`FaceMAE` wraps ``ViTMAEForPreTraining`` (He et al. 2022, as FMAE uses it): 75% of the
patches are hidden, the encoder sees the rest, a light decoder predicts the hidden patches, and
the loss is the MSE on *normalised* pixels (each target patch minus its mean over its standard
deviation), which the MAE paper found to give better features than raw pixels.
:class:`ViTFeatures` is the same encoder without masking for fine-tuning: the pooled feature is
the mean of the patch tokens (MAE's ``global_pool`` fine-tuning recipe). Both take ``N x 3 x
H x W`` images in [0, 1] at the configured size and normalise them internally, so the two
share weights key for key (:meth:`FaceMAE.encoder_state`).

Positions are MAE's fixed 2D sine-cosine embeddings, written here (:func:`sincos_positions`)
rather than left to ``transformers``: from version 5 its weight initialisation leaves the
encoder's position embeddings and zeroes the decoder's, so a model built from a config is
blind to where a patch lies. The encoder then sees a bag of patches (the mouth and the brow
look alike) and the decoder predicts the same patch at every hidden position. ``ViTSpec.positions``
names the scheme, so models cached before this fix are never loaded as if they had it.

``ViTSpec.stem`` chooses how pixels become tokens. ``"patch"`` is ViT's one linear projection
of each patch; ``"conv"`` is the convolutional stem of Xiao et al. 2021 ("Early convolutions
help transformers see better"): 3x3 stride-2 convolutions (BatchNorm, ReLU), one per halving of
the patch side, then a 1x1 projection to the width, on the same token grid. A few thousand
faces are too little data for a ViT to learn local filters from a patch projection; the stem
brings the locality of a CNN and leaves the transformer (and MAE's token masking) as it is.
A token's receptive field (15 px for patch 8) reaches a few pixels into its neighbours, so under
MAE a visible token sees the rim of the hidden patches beside it. ``ViTSpec.stem_masking``
greys the hidden patches out for the stem (:class:`ConvStem`'s ``pixel_mask``) to close that
leak; its BatchNorm then learns on images three quarters grey, unlike the whole faces of
fine-tuning. Which of the two gives the better detector is measured, not assumed
(``facekit/methods/fmae_iat/MODEL_CARD.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from transformers import ViTMAEConfig, ViTMAEForPreTraining, ViTMAEModel

# Pixel normalisation inside the models (faces in [0, 1] have a mean near 0.5).
_MEAN, _STD = 0.5, 0.25
STEMS = ("patch", "conv")


@dataclass
class ViTSpec:
    """The architecture; plain numbers so it hashes into cache keys and saves as JSON."""

    size: int = 48
    patch: int = 8
    width: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: int = 2
    decoder_width: int = 64
    decoder_depth: int = 2
    mask_ratio: float = 0.75
    norm_pix_loss: bool = True
    positions: str = "sincos"
    stem: str = "patch"
    stem_masking: bool = True  # under MAE, a conv stem sees the hidden patches as grey (else the whole image)

    def __post_init__(self) -> None:
        if self.stem not in STEMS:
            raise ValueError(f"stem={self.stem!r} is not valid; choose one of {list(STEMS)}")
        if self.stem == "conv" and (self.patch & (self.patch - 1) or self.patch < 2):
            raise ValueError(f"patch={self.patch} is not valid with stem='conv'; pass a power of 2 >= 2")
        if self.positions != "sincos":
            raise ValueError(f"positions={self.positions!r} is not valid; the one scheme is 'sincos'")
        if self.width % 4 or self.decoder_width % 4:
            raise ValueError(f"width={self.width}, decoder_width={self.decoder_width} are not valid; 2D sine-cosine "
                             "positions need multiples of 4")
        if self.size % self.patch or self.size < self.patch:
            raise ValueError(f"size={self.size} is not valid with patch={self.patch}; pass a multiple of the patch")
        if self.width % self.heads:
            raise ValueError(f"width={self.width} is not valid with heads={self.heads}; pass a multiple of heads")
        if not 0 <= self.mask_ratio < 1:
            raise ValueError(f"mask_ratio={self.mask_ratio} is not valid; pass a value in [0, 1)")

    def hf_config(self, mask_ratio: float | None = None) -> ViTMAEConfig:
        return ViTMAEConfig(
            image_size=self.size, patch_size=self.patch, num_channels=3, hidden_size=self.width,
            num_hidden_layers=self.depth, num_attention_heads=self.heads,
            intermediate_size=self.mlp_ratio * self.width, decoder_hidden_size=self.decoder_width,
            decoder_num_hidden_layers=self.decoder_depth, decoder_num_attention_heads=max(1, self.decoder_width // 32),
            decoder_intermediate_size=self.mlp_ratio * self.decoder_width,
            mask_ratio=self.mask_ratio if mask_ratio is None else mask_ratio, norm_pix_loss=self.norm_pix_loss,
        )

    @property
    def n_patches(self) -> int:
        return (self.size // self.patch) ** 2


def sincos_positions(grid: int, dim: int) -> Tensor:
    """``1 x (1 + grid^2) x dim`` fixed positions of a ``grid x grid`` patch layout (MAE's 2D
    sine-cosine: half the channels encode the column, half the row; a zero row for the CLS token)."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim // 4))
    rows, cols = torch.meshgrid(torch.arange(grid, dtype=torch.float64), torch.arange(grid, dtype=torch.float64),
                                indexing="ij")

    def encode(pos: Tensor) -> Tensor:
        angle = pos.reshape(-1, 1) * omega
        return torch.cat([angle.sin(), angle.cos()], 1)

    table = torch.cat([encode(cols), encode(rows)], 1)
    return torch.cat([torch.zeros(1, dim, dtype=torch.float64), table]).float()[None]


class ConvStem(nn.Module):
    """Xiao et al.'s stem: ``log2(patch)`` 3x3 stride-2 convolutions (widths doubling up to half
    the ViT width), then a 1x1 projection; ``N x 3 x H x W`` -> ``N x width x H/patch x W/patch``.
    While ``pixel_mask`` (``N x 1 x H x W``, 1 visible) is set, the input is multiplied by it."""

    def __init__(self, patch: int, width: int) -> None:
        super().__init__()
        n = patch.bit_length() - 1
        layers: list[nn.Module] = []
        c = 3
        for i in range(n):
            w = max(8, width // 2 ** (n - i))
            layers += [nn.Conv2d(c, w, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU()]
            c = w
        self.convs = nn.Sequential(*layers)
        self.project = nn.Conv2d(c, width, 1)
        self.pixel_mask: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        if self.pixel_mask is not None:
            x = x * self.pixel_mask
        return self.project(self.convs(x))


def _install_stem(embeddings: nn.Module, spec: ViTSpec) -> None:
    """Swap the patch projection of a ``transformers`` ViTMAE for a :class:`ConvStem` where the
    spec asks for one (same token grid, so positions and masking are unchanged)."""
    if spec.stem == "conv":
        embeddings.patch_embeddings.projection = ConvStem(spec.patch, spec.width)


def _check_images(x: Tensor, size: int) -> Tensor:
    if x.ndim != 4 or x.shape[1] != 3 or tuple(x.shape[-2:]) != (size, size):
        raise ValueError(f"images have shape {tuple(x.shape)}; this ViT takes N x 3 x {size} x {size} in [0, 1]")
    return (x - _MEAN) / _STD


class FaceMAE(nn.Module):
    """``ViTMAEForPreTraining`` on faces: ``model(images)`` returns the masked-patch loss."""

    def __init__(self, **spec: Any) -> None:
        super().__init__()
        self.spec = ViTSpec(**spec)
        self.mae = ViTMAEForPreTraining(self.spec.hf_config())
        grid = self.spec.size // self.spec.patch
        with torch.no_grad():
            self.mae.vit.embeddings.position_embeddings.copy_(sincos_positions(grid, self.spec.width))
            self.mae.decoder.decoder_pos_embed.copy_(sincos_positions(grid, self.spec.decoder_width))
            nn.init.normal_(self.mae.decoder.mask_token, std=0.02)
        _install_stem(self.mae.vit.embeddings, self.spec)

    @property
    def stem(self) -> ConvStem | None:
        """The conv stem (registered once, inside the encoder), or ``None``."""
        proj = self.mae.vit.embeddings.patch_embeddings.projection
        return proj if isinstance(proj, ConvStem) else None

    def _run(self, x: Tensor, noise: Tensor | None) -> Any:
        """The MAE on normalised images; with a conv stem, the hidden patches (the same ones
        ``transformers`` drops, from the same ``noise``) are greyed out for the stem."""
        stem = self.stem
        if stem is None or not self.spec.stem_masking:
            return self.mae(pixel_values=x, noise=noise)
        grid = self.spec.size // self.spec.patch
        if noise is None:
            noise = torch.rand(len(x), grid * grid, device=x.device)
        keep = int(grid * grid * (1 - self.spec.mask_ratio))
        visible = torch.zeros_like(noise).scatter_(1, torch.argsort(noise, 1)[:, :keep], 1.0)
        pixel = visible.view(-1, 1, grid, grid).repeat_interleave(self.spec.patch, 2).repeat_interleave(self.spec.patch, 3)
        stem.pixel_mask = pixel.to(x.dtype)
        try:
            return self.mae(pixel_values=x, noise=noise)
        finally:
            stem.pixel_mask = None

    def forward(self, images: Tensor, noise: Tensor | None = None) -> Tensor:
        return self._run(_check_images(images, self.spec.size), noise).loss

    def encoder_state(self) -> dict[str, Tensor]:
        """The encoder's weights, keyed as :class:`ViTFeatures` expects them."""
        return {f"vit.{k}": v for k, v in self.mae.vit.state_dict().items()}

    @torch.no_grad()
    def reconstruct(self, images: Tensor, noise: Tensor | None = None) -> dict[str, Tensor]:
        """``masked`` input (hidden patches grey), ``reconstruction`` (visible patches pasted back)
        and ``prediction`` (every patch predicted), all in [0, 1].

        With the normalised-pixel loss the decoder predicts each patch up to its mean and
        scale; as in the MAE paper's figures, we restore them from the true patch statistics.
        """
        x = _check_images(images, self.spec.size)
        out = self._run(x, noise)
        target = self.mae.patchify(x)
        pred = out.logits
        if self.spec.norm_pix_loss:
            pred = pred * (target.var(-1, keepdim=True) + 1e-6) ** 0.5 + target.mean(-1, keepdim=True)
        mask = out.mask[..., None]
        size = (self.spec.size, self.spec.size)

        def image(patches: Tensor) -> Tensor:
            return (self.mae.unpatchify(patches, size) * _STD + _MEAN).clamp(0, 1)

        grey = torch.full_like(target, (0.5 - _MEAN) / _STD)
        return {"masked": image(target * (1 - mask) + grey * mask), "reconstruction": image(target * (1 - mask) + pred * mask),
                "prediction": image(pred), "mask": out.mask}


READOUTS = ("mean", "grid")
READOUT_GRID = 4  # the "grid" readout's side, as the audit CNN's 4 x 4 map


class ViTFeatures(nn.Module):
    """The MAE encoder without masking: images -> pooled features.

    ``readout="mean"`` (MAE's ``global_pool``): the mean of the patch tokens, ``N x width``.
    ``readout="grid"``: the token grid average-pooled to ``READOUT_GRID x READOUT_GRID`` and
    flattened, ``N x 16 width``, so a linear head reads *where* on the face a token lies (an AU
    is a change at a place); it has no weights, so MAE encoders load into either.
    """

    def __init__(self, readout: str = "mean", **spec: Any) -> None:
        super().__init__()
        if readout not in READOUTS:
            raise ValueError(f"readout={readout!r} is not valid; choose one of {list(READOUTS)}")
        self.spec = ViTSpec(**spec)
        self.readout = readout
        self.vit = ViTMAEModel(self.spec.hf_config(mask_ratio=0.0))
        with torch.no_grad():
            self.vit.embeddings.position_embeddings.copy_(sincos_positions(self.spec.size // self.spec.patch,
                                                                           self.spec.width))
        _install_stem(self.vit.embeddings, self.spec)
        self.grid = min(READOUT_GRID, self.spec.size // self.spec.patch)
        self.dim = self.spec.width * (self.grid ** 2 if readout == "grid" else 1)

    def forward(self, images: Tensor) -> Tensor:
        x = _check_images(images, self.spec.size)
        # ViTMAE shuffles patches by ``noise`` even with nothing masked; a fixed ramp keeps the
        # order (and the features) deterministic.
        noise = torch.arange(self.spec.n_patches, device=x.device, dtype=x.dtype).expand(len(x), -1)
        tokens = self.vit(pixel_values=x, noise=noise).last_hidden_state[:, 1:]
        if self.readout == "mean":
            return tokens.mean(1)
        side = self.spec.size // self.spec.patch
        grid = tokens.transpose(1, 2).reshape(len(x), self.spec.width, side, side)
        return nn.functional.adaptive_avg_pool2d(grid, self.grid).flatten(1)


__all__ = ["READOUTS", "READOUT_GRID", "STEMS", "ConvStem", "FaceMAE", "ViTFeatures", "ViTSpec", "sincos_positions"]
