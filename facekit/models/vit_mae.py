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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from transformers import ViTMAEConfig, ViTMAEForPreTraining, ViTMAEModel

# Pixel normalisation inside the models (faces in [0, 1] have a mean near 0.5).
_MEAN, _STD = 0.5, 0.25


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

    def __post_init__(self) -> None:
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

    def forward(self, images: Tensor, noise: Tensor | None = None) -> Tensor:
        return self.mae(pixel_values=_check_images(images, self.spec.size), noise=noise).loss

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
        out = self.mae(pixel_values=x, noise=noise)
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


class ViTFeatures(nn.Module):
    """The MAE encoder without masking: images -> pooled ``N x width`` features."""

    def __init__(self, **spec: Any) -> None:
        super().__init__()
        self.spec = ViTSpec(**spec)
        self.vit = ViTMAEModel(self.spec.hf_config(mask_ratio=0.0))
        with torch.no_grad():
            self.vit.embeddings.position_embeddings.copy_(sincos_positions(self.spec.size // self.spec.patch,
                                                                           self.spec.width))
        self.dim = self.spec.width

    def forward(self, images: Tensor) -> Tensor:
        x = _check_images(images, self.spec.size)
        # ViTMAE shuffles patches by ``noise`` even with nothing masked; a fixed ramp keeps the
        # order (and the features) deterministic.
        noise = torch.arange(self.spec.n_patches, device=x.device, dtype=x.dtype).expand(len(x), -1)
        tokens = self.vit(pixel_values=x, noise=noise).last_hidden_state
        return tokens[:, 1:].mean(1)


__all__ = ["FaceMAE", "ViTFeatures", "ViTSpec", "sincos_positions"]
