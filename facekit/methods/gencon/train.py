"""The losses and the training stages (oracle, G, E, end-to-end), through :func:`facekit.train.train_or_load`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from facekit.config import get_profile
from facekit.methods.common import PoolSampler
from facekit.methods.gencon.config import METHOD, TRAIN_HINT, GenConConfig, profile_config, world_of
from facekit.methods.gencon.data import expression_set, oracle_pairs
from facekit.methods.gencon.model import GenCon, GenConNet, SingleImageNet
from facekit.methods.oracle import Oracle
from facekit.models import supcon_loss
from facekit.models.unet import UNet
from facekit.train import TrainResult, load_cached, train_or_load


def _flip_together(*xs: Tensor) -> tuple[Tensor, ...]:
    """The same random horizontal flip for each image and its neutral counterpart."""
    m = (torch.rand(len(xs[0]), device=xs[0].device) < 0.5).view(-1, 1, 1, 1)
    return tuple(torch.where(m, x.flip(3), x) for x in xs)


def oracle_loss(model: nn.Module, batch: dict[str, Tensor], temperature: float = 0.1) -> Tensor:
    a, b = _flip_together(batch["a"].float() / 255, batch["b"].float() / 255)
    return supcon_loss(model(torch.cat([a, b]))["emb"], torch.cat([batch["person"], batch["person"]]), temperature)


def reference_loss(reference: Tensor, query: Tensor, neutral: Tensor, oracle: nn.Module,
                   id_weight: float, mse_weight: float) -> dict[str, Tensor]:
    """G's loss: L1 plus ``mse_weight`` x squared error to the true neutral, plus ``id_weight``
    x (1 - cos) to the query's identity."""
    err = reference - neutral
    l1, mse = err.abs().mean(), err.pow(2).mean()
    with torch.no_grad():
        target = oracle(query)["emb"]
    ident = 1 - (oracle(reference)["emb"] * target).sum(1).mean()
    return {"loss": l1 + mse_weight * mse + id_weight * ident, "l1": l1.detach(), "mse": mse.detach(),
            "identity": ident.detach()}


def _images(batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    return _flip_together(batch["image"].float() / 255, batch["neutral"].float() / 255)  # type: ignore[return-value]


def generator_loss(model: nn.Module, batch: dict[str, Tensor], oracle: nn.Module, id_weight: float,
                   mse_weight: float) -> dict[str, Tensor]:
    x, neutral = _images(batch)
    return reference_loss(model(x), x, neutral, oracle, id_weight, mse_weight)


def encoder_loss(model: nn.Module, batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """Step 2: cross-entropy on ``E(x) - E(G(x))`` with G frozen."""
    x, _ = _images(batch)
    net = model.module if hasattr(model, "module") else model
    with torch.no_grad():
        reference = net.generator(x)
    logits = net.classifier(net.contrast(x, reference))
    ce = F.cross_entropy(logits, batch["emotion"])
    return {"loss": ce, "ce": ce.detach()}


def finetune_loss(model: nn.Module, batch: dict[str, Tensor], oracle: nn.Module, id_weight: float,
                  mse_weight: float, rec_weight: float) -> dict[str, Tensor]:
    """Step 3, end to end: classification loss plus G's reconstruction loss."""
    x, neutral = _images(batch)
    out = model(x)
    ce = F.cross_entropy(out["logits"], batch["emotion"])
    rec = reference_loss(out["reference"], x, neutral, oracle, id_weight, mse_weight)
    return {"loss": ce + rec_weight * rec["loss"], "ce": ce.detach(), "l1": rec["l1"], "mse": rec["mse"],
            "identity": rec["identity"]}


def single_loss(model: nn.Module, batch: dict[str, Tensor]) -> dict[str, Tensor]:
    x, _ = _images(batch)
    ce = F.cross_entropy(model(x)["logits"], batch["emotion"])
    return {"loss": ce, "ce": ce.detach()}


def stage_keys(cfg: GenConConfig) -> dict[str, dict[str, Any]]:
    """Each stage's cache key holds everything upstream of it, so changing G retrains E; the
    world's config (its resolved backend among it) is in every key, so a model trained on
    ICT-FaceKit faces is never loaded for procedural ones."""
    data = {"data": cfg.data, "world": world_of(cfg.data).config()}
    oracle = {**data, "oracle_model": cfg.oracle_model, "temperature": cfg.temperature}
    gen = {**oracle, "oracle_train": cfg.oracle_train, "id_weight": cfg.id_weight, "mse_weight": cfg.mse_weight}
    enc = {**gen, "generator_train": cfg.generator_train, "head": "layernorm-linear"}
    fine = {**enc, "encoder_train": cfg.encoder_train, "rec_weight": cfg.rec_weight}
    return {"oracle": oracle, "generator": gen, "encoder": enc, "finetune": fine, "single": {**data, "head": "layernorm-linear"}}


def frozen(model: nn.Module) -> nn.Module:
    return model.eval().requires_grad_(False)


def train_oracle(profile: str | None = None, seed: int = 0, cfg: GenConConfig | None = None, *,
                 progress: bool | None = None) -> TrainResult:
    cfg = cfg or profile_config(profile, seed)
    return train_or_load(f"{METHOD}-oracle", Oracle, cfg.oracle_model,
                         PoolSampler(lambda: oracle_pairs(cfg), cfg.oracle_train.batch_size), cfg.oracle_train,
                         loss_fn=lambda m, b: oracle_loss(m, b, cfg.temperature), profile=profile,
                         key=stage_keys(cfg)["oracle"], progress=progress)


def train_stages(profile: str | None = None, seed: int = 0, cfg: GenConConfig | None = None, *,
                 progress: bool | None = None) -> dict[str, TrainResult]:
    """Every stage, each loaded from the cache or trained: ``oracle``, ``generator`` (G),
    ``encoder`` (E and the classifier, G frozen) and ``finetune`` (end to end).

    A cached stage loads without rendering anything.
    """
    profile = get_profile(profile)
    cfg = cfg or profile_config(profile, seed)
    out = {"oracle": train_oracle(profile, seed, cfg, progress=progress)}
    oracle = frozen(out["oracle"].model)
    w = cfg.id_weight
    out["generator"] = train_or_load(f"{METHOD}-generator", UNet, {"widths": cfg.model["g_widths"]},
                                     PoolSampler(lambda: expression_set(cfg, "train"), cfg.generator_train.batch_size),
                                     cfg.generator_train, loss_fn=lambda m, b: generator_loss(m, b, oracle, w, cfg.mse_weight),
                                     profile=profile, key=stage_keys(cfg)["generator"], progress=progress)

    def with_generator(**kw: Any) -> GenConNet:
        net = GenConNet(**kw)
        net.generator.load_state_dict(out["generator"].model.state_dict())
        net.generator.requires_grad_(False)
        return net

    out["encoder"] = train_stage(cfg, profile, "encoder", with_generator, encoder_loss, progress)

    def from_encoder_stage(**kw: Any) -> GenConNet:
        net = GenConNet(**kw)
        net.load_state_dict(out["encoder"].model.state_dict())
        return net.requires_grad_(True)

    out["finetune"] = train_stage(cfg, profile, "finetune", from_encoder_stage,
                             lambda m, b: finetune_loss(m, b, oracle, w, cfg.mse_weight, cfg.rec_weight), progress)
    return out


def train(profile: str | None = None, seed: int = 0, cfg: GenConConfig | None = None, *,
          progress: bool | None = None) -> TrainResult:
    """The two-step training then end-to-end fine-tuning; returns the final stage."""
    return train_stages(profile, seed, cfg, progress=progress)["finetune"]


def train_stage(cfg: GenConConfig, profile: str, stage: str, factory: Callable[..., nn.Module],
           loss_fn: Callable[..., Any] | None, progress: bool | None) -> TrainResult:
    tc = {"encoder": cfg.encoder_train, "finetune": cfg.finetune_train}[stage]
    method = METHOD if stage == "finetune" else f"{METHOD}-{stage}"
    return train_or_load(method, factory, cfg.model, PoolSampler(lambda: expression_set(cfg, "train"), tc.batch_size),
                         tc, loss_fn=loss_fn, profile=profile, key=stage_keys(cfg)[stage], progress=progress)


def train_single(profile: str | None = None, seed: int = 0, cfg: GenConConfig | None = None, *,
                 progress: bool | None = None) -> TrainResult:
    """The single-image baseline (same E, images, labels, batch and lr; the summed step budget)."""
    cfg = cfg or profile_config(profile, seed)
    tc = cfg.single_train()
    model = {k: cfg.model[k] for k in ("dim", "e_widths", "n_classes")}
    return train_or_load(f"{METHOD}-single", SingleImageNet, model,
                         PoolSampler(lambda: expression_set(cfg, "train"), tc.batch_size), tc, loss_fn=single_loss,
                         profile=profile, key=stage_keys(cfg)["single"], progress=progress)


def load(profile: str | None = None, seed: int = 0, *, device: str | torch.device | None = None,
         cfg: GenConConfig | None = None) -> GenCon:
    """The trained model from the cache only (the Analyzer calls this); ``FileNotFoundError``
    naming the notebook and command that train it when it is not there."""
    profile = get_profile(profile)
    cfg = cfg or profile_config(profile, seed)
    net = load_cached(METHOD, GenConNet, cfg.model, cfg.finetune_train, key=stage_keys(cfg)["finetune"],
                      profile=profile, device=device, what=f"gencon model for profile={profile!r}, seed={seed}",
                      hint=TRAIN_HINT.format(profile=profile, seed=seed))
    return GenCon(net, cfg, profile, seed)


def train_and_load(profile: str | None = None, seed: int = 0, *,
                   progress: bool | None = None) -> tuple[GenCon, TrainResult]:
    """Load the final model if cached, else train every stage; return it and the last stage's log."""
    profile = get_profile(profile)
    cfg = profile_config(profile, seed)
    result = train(profile, seed, cfg, progress=progress)
    return GenCon(result.model, cfg, profile, seed), result
