"""A convolutional autoencoder: the latent space the PluGeN4Faces flow plugs into.

PluGeN4Faces plugs its flow onto StyleGAN's latent space. A StyleGAN is out of reach on a
2-core CPU, so facekit trains a small deterministic autoencoder on synthetic faces instead:
the encoder is the shared :class:`facekit.models.ConvEncoder` (so the latent space is learned
by the same backbone as every other method), the decoder mirrors it with nearest-neighbour
upsampling. Two choices make the latent space behave more like a generator's:

* the training loss adds Gaussian noise to the code before decoding (``latent_noise``), so
  nearby codes decode to nearby faces and an edited code that leaves the data manifold a
  little still decodes to a face (a deterministic autoencoder otherwise decodes such codes
  to noise);
* a small L2 penalty on the code (``latent_l2`` in the method's config) keeps the codes at a
  scale where that noise means something;
* optionally (``n_aux > 0``) a linear head reads labels from the code, so that small details
  a 32-pixel reconstruction loss barely notices (a smile, closed eyes) are still carried by
  the code, as they are in a large generator's latent space.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from facekit.models.encoders import ConvEncoder


def _up(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.GroupNorm(math.gcd(8, c_out), c_out),
        nn.SiLU(),
    )


class ConvDecoder(nn.Module):
    """``N x latent_dim`` codes -> ``N x 3 x size x size`` images in [0, 1].

    A linear map to a ``size / 8`` square grid of ``widths[-1]`` channels, then three
    upsampling stages down the widths in reverse (``size`` must be a multiple of 8).
    """

    def __init__(self, latent_dim: int = 128, size: int = 32,
                 widths: Sequence[int] = (32, 64, 128, 160)) -> None:
        super().__init__()
        widths = [int(w) for w in widths]
        if size % 8 or size < 16:
            raise ValueError(f"size={size} is not valid; pass a multiple of 8, at least 16")
        self.base = size // 8
        rev = widths[::-1][:4]
        self.proj = nn.Linear(latent_dim, rev[0] * self.base * self.base)
        self.c0 = rev[0]
        self.up = nn.Sequential(*(_up(a, b) for a, b in zip(rev[:3], rev[1:4], strict=True)))
        self.out = nn.Conv2d(rev[3], 3, 3, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        h = self.proj(z).view(len(z), self.c0, self.base, self.base)
        return torch.sigmoid(self.out(self.up(h)))


class AutoEncoder(nn.Module):
    """Encoder (images -> ``latent_dim`` codes) and decoder (codes -> images) at one ``size``.

    ``encode`` resizes any input to ``size`` first, so photos of any size can be embedded.
    """

    def __init__(self, latent_dim: int = 128, size: int = 32,
                 widths: Sequence[int] = (32, 64, 128, 160), n_aux: int = 0) -> None:
        super().__init__()
        if not 16 <= latent_dim <= 1024:
            raise ValueError(f"latent_dim={latent_dim} is not valid; pass 16 to 1024 (PluGeN uses 128-512)")
        self.latent_dim, self.size = latent_dim, size
        self.encoder = ConvEncoder(latent_dim, tuple(widths))
        self.decoder = ConvDecoder(latent_dim, size, widths)
        self.aux = nn.Linear(latent_dim, n_aux) if n_aux > 0 else None

    def encode(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected N x 3 x H x W images in [0, 1], got shape {tuple(x.shape)}")
        if x.shape[-2:] != (self.size, self.size):
            x = nn.functional.interpolate(x.float(), size=(self.size, self.size), mode="bilinear",
                                          antialias=True, align_corners=False)
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z)

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))


__all__ = ["AutoEncoder", "ConvDecoder"]
