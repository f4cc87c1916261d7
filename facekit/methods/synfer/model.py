"""The networks: the conditional diffusion pipeline (diffusers), the expression classifier and the MoCo v3 network."""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import diffusers
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler, DiffusionPipeline
from diffusers.utils import BaseOutput
from torch import Tensor, nn

from facekit._version import __version__
from facekit.io import atomic_write
from facekit.kernels.contrastive import info_nce
from facekit.methods.common import as_float, batched
from facekit.methods.oracle import Oracle, read
from facekit.methods.synfer.config import SynFERConfig
from facekit.methods.synfer.data import WordTokenizer
from facekit.models import ConvEncoder
from facekit.models.diffusion import ConditionalUNet
from facekit.models.inputs import check_images
from facekit.synth.params import AU_NAMES
from facekit.train import (
    load_pretrained,
    save_pretrained,
)


def noise_scheduler(cfg: SynFERConfig) -> DDPMScheduler:
    kinds = ("sample", "epsilon", "v_prediction")
    if cfg.generator.prediction_type not in kinds:
        raise ValueError(f"prediction_type={cfg.generator.prediction_type!r} is not valid; choose one of {list(kinds)}")
    return DDPMScheduler(num_train_timesteps=cfg.generator.num_train_timesteps, beta_schedule="squaredcos_cap_v2",
                         clip_sample=True, prediction_type=cfg.generator.prediction_type)


def make_pipeline(model: ConditionalUNet, cfg: SynFERConfig) -> SynFERPipeline:
    sched = DDIMScheduler.from_config(noise_scheduler(cfg).config)
    return SynFERPipeline(model.eval(), sched, cfg.generator.model["max_len"])


INDEX_NAME = "model_index.json"


@dataclass
class SynFEROutput(BaseOutput):
    """``images``: ``N x 3 x H x W`` in [0, 1]."""

    images: Tensor


def _check_scale(name: str, value: float) -> float:
    if not isinstance(value, int | float) or value < 0 or value != value:
        raise ValueError(f"{name}={value!r} is not valid; pass a guidance scale >= 0 (0 switches it off)")
    return float(value)


class SynFERPipeline(DiffusionPipeline):
    """Text- and AU-conditioned face generation with classifier-free and semantic guidance."""

    model: ConditionalUNet
    scheduler: DDIMScheduler

    def __init__(self, model: ConditionalUNet, scheduler: DDIMScheduler, max_len: int = 16) -> None:
        super().__init__()
        self.register_modules(model=model, scheduler=scheduler)
        self.register_to_config(max_len=max_len)
        self.tokenizer = WordTokenizer(max_len)
        self.aus = list(AU_NAMES)

    # ------------------------------------------------------------------ save / load
    def save_pretrained(self, save_directory: str | Path, **_: object) -> None:  # type: ignore[override]
        """Write the pipeline to a local folder (weights as safetensors)."""
        path = Path(save_directory)
        save_pretrained(self.model, self.model.kwargs, path / "model")
        self.scheduler.save_pretrained(path / "scheduler")
        index = {"_class_name": type(self).__name__, "_diffusers_version": diffusers.__version__,
                 "facekit_version": __version__, "max_len": self.config.max_len,
                 "model": ["facekit.models.diffusion", "ConditionalUNet"], "scheduler": ["diffusers", "DDIMScheduler"]}
        atomic_write(path / INDEX_NAME, json.dumps(index, indent=2) + "\n")

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, **kwargs: object) -> SynFERPipeline:  # type: ignore[override]
        """Load a folder written by :meth:`save_pretrained` (local only, safetensors only)."""
        path = Path(pretrained_model_name_or_path)
        if not (path / INDEX_NAME).is_file():
            raise FileNotFoundError(f"{path / INDEX_NAME} not found; pass a folder written by SynFERPipeline.save_pretrained")
        index = json.loads((path / INDEX_NAME).read_text())
        saved = (index.get("facekit_version"), index.get("_diffusers_version"))
        now = (__version__, diffusers.__version__)
        if saved != now:
            raise ValueError(f"{path} was saved by facekit {saved[0]} with diffusers {saved[1]}; this is facekit {now[0]} "
                             f"with diffusers {now[1]}. Re-create the pipeline with this version (train_and_load) "
                             "or install the version that saved it.")
        model = load_pretrained(ConditionalUNet, path / "model", device=kwargs.get("device"))  # type: ignore[arg-type]
        scheduler = DDIMScheduler.from_pretrained(path / "scheduler")
        return cls(model.eval(), scheduler, int(index["max_len"]))

    # ------------------------------------------------------------------- inputs
    def check_au(self, au: Tensor | Sequence[Sequence[float]] | None, n: int) -> Tensor | None:
        """AU intensities as an ``n x len(aus)`` float tensor in [0, 1] (a single vector broadcasts)."""
        if au is None:
            return None
        a = torch.as_tensor(au, dtype=torch.float32)
        if a.ndim == 1:
            a = a[None].expand(n, -1)
        if a.ndim != 2 or a.shape[1] != len(self.aus):
            raise ValueError(f"au has shape {tuple(a.shape)}; expected {len(self.aus)} intensities per face, "
                             f"in the order {self.aus}")
        if a.shape[0] != n:
            raise ValueError(f"au has {a.shape[0]} rows for {n} prompts; pass one AU vector per prompt (or one for all)")
        if a.numel() and (float(a.min()) < 0 or float(a.max()) > 1):
            raise ValueError(f"au intensities must lie in [0, 1]; got [{float(a.min()):.3g}, {float(a.max()):.3g}]")
        return a

    @torch.no_grad()
    def encode(self, prompts: Sequence[str], au: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """Text embeddings, empty-prompt embeddings and AU tokens (zeros when ``au`` is None)."""
        dev = self.model.unet.device
        ids = self.tokenizer(list(prompts)).to(dev)
        text = self.model.text_encoder(ids)
        null = self.model.text_encoder(torch.zeros_like(ids))
        tokens = self.model.au_adapter(au.to(dev)) if au is not None else torch.zeros(
            len(ids), self.model.au_adapter.num_tokens, self.model.au_adapter.dim, device=dev)
        return text, null, tokens

    # ------------------------------------------------------------------ sampling
    def _guided(self, x: Tensor, t: Tensor, text: Tensor, null: Tensor, tokens: Tensor, has_au: bool,
                s_text: float, s_au: float) -> Tensor:
        zero = torch.zeros_like(tokens)
        conds = [(null, zero)]
        if not has_au or s_text != s_au:
            conds.append((text, zero))
        if has_au:
            conds.append((text, tokens))
        k = len(conds)
        out = self.model.denoise(x.repeat(k, 1, 1, 1), t.repeat(k), torch.cat([c[0] for c in conds]),
                                 torch.cat([c[1] for c in conds])).chunk(k)
        if not has_au:
            return out[0] + s_text * (out[1] - out[0])
        if k == 2:
            return out[0] + s_au * (out[1] - out[0])
        return out[0] + s_text * (out[1] - out[0]) + s_au * (out[2] - out[1])

    def _semantic_step(self, x: Tensor, t: Tensor, text: Tensor, tokens: Tensor, classifier: nn.Module,
                       target: Tensor, scale: float) -> Tensor:
        e = text.detach().requires_grad_(True)
        with torch.enable_grad():
            x0 = self.predicted_x0(x, t, self.model.denoise(x, t, e, tokens))
            loss = F.cross_entropy(classifier((x0.clamp(-1, 1) + 1) / 2), target, reduction="sum")
            (g,) = torch.autograd.grad(loss, e)
        norm = g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1)
        return (text - scale * g / norm).detach()

    def predicted_x0(self, x: Tensor, t: Tensor, out: Tensor) -> Tensor:
        """The clean image the model's output implies at timestep ``t`` (any prediction type)."""
        kind = self.scheduler.config.prediction_type
        if kind == "sample":
            return out
        a = self.scheduler.alphas_cumprod.to(x.device)[t].view(-1, 1, 1, 1)
        if kind == "epsilon":
            return (x - (1 - a).sqrt() * out) / a.sqrt()
        return a.sqrt() * x - (1 - a).sqrt() * out  # v-prediction

    @torch.no_grad()
    def __call__(self, prompt: str | Sequence[str] = "", au: Tensor | Sequence[Sequence[float]] | None = None, *,
                 num_images: int | None = None, num_inference_steps: int = 20, text_scale: float = 2.0,
                 au_scale: float = 2.0, seed: int = 0, batch_size: int = 128,
                 semantic_classifier: nn.Module | None = None, semantic_target: Tensor | Sequence[int] | None = None,
                 semantic_scale: float = 0.0, guidance_fraction: float = 0.5) -> SynFEROutput:
        """Generate faces. ``prompt`` is one string or one per face (``""``: unconditional text);
        ``au`` is ``None`` (text only), one AU vector, or one per face (order ``self.aus``).
        Semantic guidance runs when ``semantic_scale > 0`` and a classifier and target classes
        are given. Face i's starting noise depends only on (``seed``, i)."""
        s_text, s_au, s_sem = (_check_scale(n, v) for n, v in (("text_scale", text_scale), ("au_scale", au_scale),
                                                                  ("semantic_scale", semantic_scale)))
        if not 0 <= guidance_fraction <= 1:
            raise ValueError(f"guidance_fraction={guidance_fraction!r} is not valid; pass the share of steps in [0, 1]")
        if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(f"num_inference_steps={num_inference_steps!r} is not valid; pass an int >= 1")
        prompts = [prompt] * (num_images or 1) if isinstance(prompt, str) else list(prompt)
        if num_images is not None and len(prompts) != num_images:
            raise ValueError(f"got {len(prompts)} prompts and num_images={num_images}; pass one prompt or one per image")
        n = len(prompts)
        unknown = sorted({w for p in prompts for w in self.tokenizer.unknown(p)})
        if unknown:
            warnings.warn(f"words {unknown} are not in the caption vocabulary and are read as <unk>; see "
                          "pipe.tokenizer.vocab for the words the model was trained on", stacklevel=2)
        au_t = self.check_au(au, n)
        target = None
        if s_sem > 0:
            if semantic_classifier is None or semantic_target is None:
                raise ValueError("semantic_scale > 0 needs semantic_classifier and semantic_target (one class per face)")
            target = torch.as_tensor(semantic_target, dtype=torch.int64).reshape(-1)
            if len(target) != n:
                raise ValueError(f"semantic_target has {len(target)} classes for {n} faces; pass one per face")
        dev = self.model.unet.device
        size = self.model.sample_size
        noise = torch.cat([torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(seed * 1_000_003 + i))
                           for i in range(n)]) if n else torch.zeros(0, 3, size, size)
        self.scheduler.set_timesteps(num_inference_steps)
        n_guided = int(round(guidance_fraction * num_inference_steps))
        out = []
        for lo in range(0, n, batch_size):
            sl = slice(lo, lo + batch_size)
            text, null, tokens = self.encode(prompts[sl], au_t[sl] if au_t is not None else None)
            x = noise[sl].to(dev)
            for i, t in enumerate(self.scheduler.timesteps):
                tt = torch.full((len(x),), int(t), device=dev, dtype=torch.int64)
                if target is not None and i < n_guided:
                    text = self._semantic_step(x, tt, text, tokens if au_t is not None else torch.zeros_like(tokens),
                                               semantic_classifier, target[sl].to(dev), s_sem)
                pred = self._guided(x, tt, text, null, tokens, au_t is not None, s_text, s_au)
                x = self.scheduler.step(pred, t, x).prev_sample
            out.append(((x.clamp(-1, 1) + 1) / 2).cpu())
        images = torch.cat(out) if out else torch.zeros(0, 3, size, size)
        return SynFEROutput(images=images)

    # --------------------------------------------------------------- calibrator
    @torch.no_grad()
    def features(self, images: Tensor, timestep: int = 200, seed: int = 0, batch_size: int = 256) -> Tensor:
        """UNet features of ``images`` (``N x 3 x H x W`` in [0, 1]) noised to ``timestep`` with fixed
        noise, under the empty prompt and no AUs: the spatial means of the middle block and of each
        up block, concatenated (the label calibrator's input). uint8 images are scaled to [0, 1]."""
        images = check_images(images, uint8=True)
        unet = self.model.unet
        grabbed: list[Tensor] = []
        hooks = [m.register_forward_hook(lambda _m, _i, o: grabbed.append((o[0] if isinstance(o, tuple) else o).mean((2, 3))))
                 for m in (unet.mid_block, *unet.up_blocks)]
        try:
            feats = []
            for lo in range(0, len(images), batch_size):
                x = images[lo:lo + batch_size].to(unet.device) * 2 - 1
                g = torch.Generator().manual_seed(seed + lo)
                noise = torch.randn(x.shape, generator=g).to(unet.device)
                tt = torch.full((len(x),), timestep, device=unet.device, dtype=torch.int64)
                xt = self.scheduler.add_noise(x, noise, tt)
                text, null, tokens = self.encode([""] * len(x), None)
                grabbed.clear()
                self.model.denoise(xt, tt, null, tokens)
                feats.append(torch.cat(grabbed, 1).cpu())
        finally:
            for h in hooks:
                h.remove()
        return torch.cat(feats)


class ExpressionNet(nn.Module):
    """ConvEncoder -> emotion logits: the downstream classifiers (the oracle is
    :class:`facekit.methods.oracle.Oracle`)."""

    def __init__(self, dim: int = 64, widths: list[int] | tuple[int, ...] = (16, 32, 48, 64), n_classes: int = 8) -> None:
        super().__init__()
        self.encoder = ConvEncoder(dim, tuple(widths))
        self.head = nn.Linear(dim, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.encoder(x))

    def outputs(self, x: Tensor) -> dict[str, Tensor]:
        h = self.encoder(x)
        return {"features": h, "logits": self.head(h)}


@torch.no_grad()
def predict(net: ExpressionNet | Oracle, images: Tensor, batch_size: int = 256) -> dict[str, Tensor]:
    """``features``, ``proba`` (softmax) and, for the oracle, ``au_proba`` of images in [0, 1] or uint8."""
    net.eval()
    out = read(net, images, batch_size) if isinstance(net, Oracle) else \
        batched(lambda x: net.outputs(as_float(x)), images, batch_size=batch_size, device=net)
    res = {"features": out["features"], "proba": out["logits"].softmax(1)}
    if "au_logits" in out:
        res["au_proba"] = out["au_logits"].sigmoid()
    return res


def _mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.LayerNorm(hidden), nn.SiLU(), nn.Linear(hidden, d_out))


class MoCoNet(nn.Module):
    """MoCo v3: online encoder, projector, predictor; momentum encoder and projector (no grad)."""

    def __init__(self, dim: int = 64, widths: list[int] | tuple[int, ...] = (16, 32, 48, 64), proj_dim: int = 64,
                 hidden: int = 128, n_classes: int = 8) -> None:
        super().__init__()
        self.encoder = ConvEncoder(dim, tuple(widths))
        self.projector = _mlp(dim, hidden, proj_dim)
        self.predictor = _mlp(proj_dim, hidden, proj_dim)
        self.momentum_encoder = copy.deepcopy(self.encoder).requires_grad_(False)
        self.momentum_projector = copy.deepcopy(self.projector).requires_grad_(False)

    @torch.no_grad()
    def update_momentum(self, m: float) -> None:
        for online, target in ((self.encoder, self.momentum_encoder), (self.projector, self.momentum_projector)):
            for p, q in zip(online.parameters(), target.parameters(), strict=True):
                q.mul_(m).add_(p.detach(), alpha=1 - m)

    def forward(self, v1: Tensor, v2: Tensor, temperature: float) -> Tensor:
        q1, q2 = (self.predictor(self.projector(self.encoder(v))) for v in (v1, v2))
        with torch.no_grad():
            k1, k2 = (self.momentum_projector(self.momentum_encoder(v)) for v in (v1, v2))
        return info_nce(q1, k2, temperature) + info_nce(q2, k1, temperature)
