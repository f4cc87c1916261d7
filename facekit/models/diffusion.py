"""Conditional diffusion building blocks: a diffusers UNet, a text encoder and an AU adapter.

SynFER (He et al., ICCV 2025) conditions a diffusion UNet on a caption and on Action Units.
The AUs enter in the IP-Adapter style: an MLP turns the AU vector into a few extra tokens,
and every cross-attention layer attends to them with its *own* key/value projections
(decoupled cross-attention), beside the text tokens. diffusers' ``IPAdapterAttnProcessor2_0``
is exactly that processor, so it is used as is; the AU tokens play the image tokens' part.

Zero AU tokens contribute exactly nothing (the AU key/value maps have no bias, so the extra
attention output is a mix of zero vectors). That is the "AU dropped" state used for
classifier-free guidance; a neutral face (all AUs 0) is a different, non-zero token set.

The text encoder is a documented simpler choice than the paper's CLIP (no weights can be
downloaded here): a learned token embedding, learned positions and a small pre-norm
transformer (``torch.nn.TransformerEncoder``), trained with the UNet. An empty prompt is all
padding tokens: the unconditional text embedding.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import AttnProcessor2_0, IPAdapterAttnProcessor2_0
from torch import Tensor, nn


def build_unet(sample_size: int = 32, block_out_channels: Sequence[int] = (32, 64, 64), layers_per_block: int = 1,
               cross_attention_dim: int = 64, attention_head_dim: int = 16, norm_num_groups: int = 8,
               attn_levels: int = 1, global_cond_dim: int = 0) -> UNet2DConditionModel:
    """A small pixel-space ``UNet2DConditionModel``; the ``attn_levels`` coarsest levels (and the
    middle block) have self- and cross-attention. Attention at 16x16 costs more than the
    convolutions on a CPU, hence one level by default. ``global_cond_dim > 0`` adds a projected
    global condition vector to the timestep embedding (``class_embed_type="projection"``)."""
    n = len(block_out_channels)
    if n < 2 or not 1 <= attn_levels <= n:
        raise ValueError(f"block_out_channels={tuple(block_out_channels)}, attn_levels={attn_levels} are not valid; "
                         "pass at least 2 levels and 1 <= attn_levels <= levels")
    down = ("DownBlock2D",) * (n - attn_levels) + ("CrossAttnDownBlock2D",) * attn_levels
    up = ("CrossAttnUpBlock2D",) * attn_levels + ("UpBlock2D",) * (n - attn_levels)
    return UNet2DConditionModel(
        sample_size=sample_size, in_channels=3, out_channels=3, down_block_types=down, up_block_types=up,
        block_out_channels=tuple(block_out_channels), layers_per_block=layers_per_block,
        cross_attention_dim=cross_attention_dim, attention_head_dim=attention_head_dim, norm_num_groups=norm_num_groups,
        **({"class_embed_type": "projection", "projection_class_embeddings_input_dim": global_cond_dim}
           if global_cond_dim else {}),
    )


def install_au_attention(unet: UNet2DConditionModel, num_tokens: int) -> None:
    """Give every cross-attention layer of ``unet`` an IP-Adapter processor for ``num_tokens``
    AU tokens (self-attention keeps the plain processor). The processors are submodules of
    their attention layers, so their weights train and save with the UNet."""
    procs: dict[str, nn.Module | AttnProcessor2_0] = {}
    for name in unet.attn_processors:
        if name.endswith("attn2.processor"):
            hidden = _hidden_size(unet, name)
            procs[name] = IPAdapterAttnProcessor2_0(hidden, unet.config.cross_attention_dim, num_tokens=(num_tokens,))
        else:
            procs[name] = AttnProcessor2_0()
    unet.set_attn_processor(procs)


def _hidden_size(unet: UNet2DConditionModel, name: str) -> int:
    channels = unet.config.block_out_channels
    if name.startswith("mid_block"):
        return channels[-1]
    if name.startswith("up_blocks"):
        return list(reversed(channels))[int(name.split(".")[1])]
    return channels[int(name.split(".")[1])]


class AUAdapter(nn.Module):
    """AU intensities ``N x n_aus`` -> ``N x num_tokens x dim`` AU tokens (a two-layer MLP)."""

    def __init__(self, n_aus: int, num_tokens: int = 4, dim: int = 64, hidden: int = 128) -> None:
        super().__init__()
        self.n_aus, self.num_tokens, self.dim = n_aus, num_tokens, dim
        self.mlp = nn.Sequential(nn.Linear(n_aus, hidden), nn.SiLU(), nn.Linear(hidden, num_tokens * dim))
        self.norm = nn.LayerNorm(dim)

    def forward(self, au: Tensor) -> Tensor:
        return self.norm(self.mlp(au).view(len(au), self.num_tokens, self.dim))


class TextEncoder(nn.Module):
    """Token ids ``N x L`` -> token embeddings ``N x L x dim`` (embedding, positions, transformer)."""

    def __init__(self, vocab_size: int, max_len: int = 16, dim: int = 64, layers: int = 1, heads: int = 4) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        self.pos = nn.Parameter(torch.zeros(1, max_len, dim))
        nn.init.normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0, batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.max_len = max_len

    def forward(self, ids: Tensor) -> Tensor:
        if ids.ndim != 2 or ids.shape[1] != self.max_len:
            raise ValueError(f"token ids have shape {tuple(ids.shape)}; expected N x {self.max_len}")
        return self.norm(self.transformer(self.embed(ids) + self.pos))


class ConditionalUNet(nn.Module):
    """UNet, text encoder and AU adapter in one module (one cache entry, one optimiser).

    ``forward(sample, timestep, ids, au, au_keep)`` returns the UNet's prediction; ``au_keep`` (0/1 per
    sample) zeroes the AU tokens of dropped samples (classifier-free guidance on AUs).

    ``global_cond=True`` also adds the mean text token and the mean AU token, projected, to the
    timestep embedding, as SDXL adds its pooled text embedding: every ResNet block is then
    modulated by the condition, not only the cross-attention at the coarsest level. On the
    2-core budget a cross-attention-only model had learned next to nothing of its condition
    after 1,500 steps (issue 6's investigation); the pooled path is what lets a small model
    pick the condition up early. Both views come from the same tokens, so classifier-free and
    semantic guidance work unchanged.
    """

    def __init__(self, vocab_size: int, n_aus: int, sample_size: int = 32, block_out_channels: Sequence[int] = (32, 64, 64),
                 layers_per_block: int = 1, dim: int = 64, max_len: int = 16, au_tokens: int = 4,
                 text_layers: int = 1, attention_head_dim: int = 16, attn_levels: int = 1,
                 global_cond: bool = False) -> None:
        super().__init__()
        self.kwargs = {"vocab_size": vocab_size, "n_aus": n_aus, "sample_size": sample_size,
                       "block_out_channels": list(block_out_channels), "layers_per_block": layers_per_block, "dim": dim,
                       "max_len": max_len, "au_tokens": au_tokens, "text_layers": text_layers,
                       "attention_head_dim": attention_head_dim, "attn_levels": attn_levels, "global_cond": global_cond}
        self.global_cond = global_cond
        self.unet = build_unet(sample_size, block_out_channels, layers_per_block, dim, attention_head_dim,
                               attn_levels=attn_levels, global_cond_dim=2 * dim if global_cond else 0)
        install_au_attention(self.unet, au_tokens)
        self.text_encoder = TextEncoder(vocab_size, max_len, dim, text_layers)
        self.au_adapter = AUAdapter(n_aus, au_tokens, dim)
        self.n_aus, self.sample_size = n_aus, sample_size

    def denoise(self, sample: Tensor, timestep: Tensor, text: Tensor, au_tokens: Tensor) -> Tensor:
        """The UNet's prediction (noise, clean image or velocity, as trained) from already-encoded
        text embeddings and AU tokens."""
        pooled = torch.cat([text.mean(1), au_tokens.mean(1)], 1) if self.global_cond else None
        return self.unet(sample, timestep, encoder_hidden_states=(text, [au_tokens]), class_labels=pooled).sample

    def forward(self, sample: Tensor, timestep: Tensor, ids: Tensor, au: Tensor, au_keep: Tensor | None = None) -> Tensor:
        tokens = self.au_adapter(au)
        if au_keep is not None:
            tokens = tokens * au_keep.view(-1, 1, 1).to(tokens.dtype)
        return self.denoise(sample, timestep, self.text_encoder(ids), tokens)


__all__ = ["AUAdapter", "ConditionalUNet", "TextEncoder", "build_unet", "install_au_attention"]
