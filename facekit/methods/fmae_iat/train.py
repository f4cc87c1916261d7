"""MAE pretraining, Identity Adversarial Training and the reversal-scale search, through :func:`facekit.train.train_or_load`."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from facekit import metrics
from facekit.config import cache_dir, config_hash, get_profile
from facekit.io import atomic_write
from facekit.methods.common import PoolSampler
from facekit.methods.fmae_iat.config import (
    MAE_METHOD,
    METHOD,
    TRAIN_HINT,
    FMAEConfig,
    Variant,
    profile_config,
)
from facekit.methods.fmae_iat.data import FaceStream, au_set, fold_split
from facekit.methods.fmae_iat.model import AUDetector, AUNet, from_mae
from facekit.models.vit_mae import FaceMAE
from facekit.train import TrainResult, cached_path, is_cached, load_cached, train_or_load


def iat_loss(model: nn.Module, batch: dict[str, Tensor], reversal: float, n_subjects: int) -> dict[str, Tensor]:
    """AU BCE (over the known labels: trace AUs are left out) plus, with an identity head, BCE on
    the one-hot subject vector (official code)."""
    x = batch["image"].float() / 255
    flip = torch.rand(len(x), device=x.device) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    out = model(x, reversal)
    known = batch["known"].float() if "known" in batch else torch.ones_like(out["au"])
    au = (F.binary_cross_entropy_with_logits(out["au"], batch["label"].float(), reduction="none") * known).sum()
    au = au / known.sum().clamp(min=1)
    if "identity" not in out:
        return {"loss": au, "au": au.detach()}
    onehot = F.one_hot(batch["subject"], n_subjects).float()
    ident = F.binary_cross_entropy_with_logits(out["identity"], onehot)
    return {"loss": au + ident, "au": au.detach(), "identity": ident.detach()}


def pretrain(profile: str | None = None, seed: int = 0, cfg: FMAEConfig | None = None, *,
             progress: bool | None = None) -> TrainResult:
    """Load the seed's cached MAE, else pretrain it on the stream (runs under ``accelerate launch``)."""
    profile = get_profile(profile)
    cfg = cfg or profile_config(profile, seed)
    stream = FaceStream(cfg.stream, cfg.vit.size, cfg.pretrain.batch_size, seed=seed)
    return train_or_load(MAE_METHOD, FaceMAE, asdict(cfg.vit), stream, cfg.pretrain, profile=profile,
                         key={"stream": cfg.stream}, progress=progress, loss_fn=lambda m, b: m(b))


def load_mae(profile: str | None = None, seed: int = 0, device: str | torch.device | None = None) -> FaceMAE:
    """The seed's pretrained MAE from the cache (for reconstruction figures)."""
    profile = get_profile(profile)
    cfg = profile_config(profile, seed)
    return load_cached(MAE_METHOD, FaceMAE, asdict(cfg.vit), cfg.pretrain, key={"stream": cfg.stream}, profile=profile,
                       device=device, what=f"pretrained FMAE for profile={profile!r}, seed={seed}", hint=TRAIN_HINT)


def model_config(cfg: FMAEConfig, v: Variant) -> dict[str, Any]:
    n_train = cfg.data.n_subjects - len(range(v.fold, cfg.data.n_subjects, cfg.data.n_folds))
    return {"vit": asdict(cfg.vit), "aus": list(cfg.data.aus), "n_subjects": n_train if v.id_head != "none" else 0,
            "id_head": v.id_head, "framing": cfg.data.framing,
            "layer_decay": cfg.finetune.layer_decay if v.init == "mae" else None, "readout": cfg.finetune.readout,
            **({"id_input": "mean"} if v.id_head != "none" and cfg.finetune.readout == "grid" else {})}


def finetune_key(cfg: FMAEConfig, v: Variant, seed: int) -> dict[str, Any]:
    init = ("mae-" + config_hash({"vit": cfg.vit, "stream": cfg.stream, "train": cfg.pretrain})) if v.init == "mae" else "scratch"
    return {"data": cfg.data, "seed": seed, "init": init, "variant": asdict(v), "v": 1}


def finetune(profile: str | None, seed: int, v: Variant, cfg: FMAEConfig | None = None, *,
             progress: bool | None = None) -> TrainResult:
    """Load or train one fine-tuned variant (cache key: config, data, init and variant)."""
    profile = get_profile(profile)
    cfg = cfg or profile_config(profile, seed)
    mc, key = model_config(cfg, v), finetune_key(cfg, v, seed)
    path = cached_path(METHOD, profile, seed, {"model": mc, "train": cfg.finetune.train, "key": key})
    factory: Callable[..., nn.Module] = AUNet
    if v.init == "mae" and not is_cached(path):
        factory = partial(from_mae, pretrain(profile, seed, cfg, progress=progress).model.encoder_state())

    data = PoolSampler(lambda: fold_split(au_set(cfg.data, seed)["train"], v.fold)[0], cfg.finetune.train.batch_size,
                       keys=("image", "label", "known", "subject"))  # the fold's images, read on the first step only

    return train_or_load(METHOD, factory, mc, data, cfg.finetune.train, profile=profile, key=key, progress=progress,
                         loss_fn=lambda m, b: iat_loss(m, b, v.scale, max(1, mc["n_subjects"])))


def selection_path(cfg: FMAEConfig, profile: str, seed: int) -> Path:
    key = {"data": cfg.data, "vit": cfg.vit, "stream": cfg.stream, "pretrain": cfg.pretrain, "finetune": cfg.finetune}
    return cache_dir() / "models" / METHOD / profile / f"seed{seed}-scale-{config_hash(key)}.json"


def choose_scale(profile: str | None = None, seed: int = 0, cfg: FMAEConfig | None = None, *,
                 progress: bool | None = None) -> dict[str, Any]:
    """The reversal scale with the best validation F1 (linear head, fold 0's training subjects),
    ``{"chosen": s, "val_f1": {str(s): f1}}``; cached beside the models."""
    profile = get_profile(profile)
    cfg = cfg or profile_config(profile, seed)
    path = selection_path(cfg, profile, seed)
    if path.is_file():
        return json.loads(path.read_text())
    val = au_set(cfg.data, seed)["val"]
    scores = {}
    for s in cfg.finetune.scales:
        det = AUDetector(finetune(profile, seed, Variant("mae", "linear", s, 0), cfg, progress=progress).model, s)
        scores[str(s)] = metrics.multilabel_f1(val["label"].numpy(), det.predict_proba(val["image"].float() / 255,
                                                                                       framing=cfg.data.framing),
                                               known=val["known"].numpy())
    best = max(cfg.finetune.scales, key=lambda s: (scores[str(s)], -s))  # ties: the smaller scale
    out = {"chosen": best, "val_f1": scores}
    atomic_write(path, json.dumps(out, indent=2) + "\n")
    return out


def final_variant(cfg: FMAEConfig, profile: str, seed: int, progress: bool | None) -> Variant:
    return Variant("mae", "linear", choose_scale(profile, seed, cfg, progress=progress)["chosen"], 0)


def train_and_load(profile: str | None = None, seed: int = 0, *,
                   progress: bool | None = None) -> tuple[AUDetector, TrainResult]:
    """The final IAT detector (MAE-pretrained, linear identity head, validation-chosen scale):
    loaded from the cache, else trained (with the MAE and the scale search)."""
    profile = get_profile(profile)
    cfg = profile_config(profile, seed)
    searched = selection_path(cfg, profile, seed).is_file()
    v = final_variant(cfg, profile, seed, progress)
    result = finetune(profile, seed, v, cfg, progress=progress)  # trained by the scale search if it just ran
    return AUDetector(result.model, v.scale), replace(result, loaded=result.loaded and searched)


def load(profile: str | None = None, seed: int = 0, *, device: str | torch.device | None = None,
         cfg: FMAEConfig | None = None, aus: Sequence[str] | None = None) -> AUDetector:
    """The final IAT detector from the cache only (the Analyzer calls this). ``aus`` is checked
    against the checkpoint's list. Raises ``FileNotFoundError`` naming what trains it."""
    profile = get_profile(profile)
    cfg = cfg or profile_config(profile, seed)
    sel = selection_path(cfg, profile, seed)
    if not sel.is_file():
        raise FileNotFoundError(f"no trained FMAE-IAT detector for profile={profile!r}, seed={seed} "
                                f"(no scale selection at {sel}); {TRAIN_HINT}")
    v = Variant("mae", "linear", json.loads(sel.read_text())["chosen"], 0)
    net = load_cached(METHOD, AUNet, model_config(cfg, v), cfg.finetune.train, key=finetune_key(cfg, v, seed),
                      profile=profile, device=device,
                      what=f"FMAE-IAT detector for profile={profile!r}, seed={seed}", hint=TRAIN_HINT)
    return AUDetector(net, v.scale, aus)
