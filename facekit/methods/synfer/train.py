"""The losses and training: the conditional DDPM, expression classifiers, the oracle and MoCo v3 pretraining."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from torch import Tensor, nn

from facekit.config import get_profile
from facekit.methods.common import PoolSampler, as_float, render_pool
from facekit.methods.oracle import Oracle
from facekit.methods.synfer.config import (
    METHOD,
    N_CLASSES,
    TRAIN_HINT,
    SynFERConfig,
    profile_config,
)
from facekit.methods.synfer.data import (
    CaptionWriter,
    WordTokenizer,
    oracle_data,
    oracle_world,
    pool_dataset,
    pool_key,
)
from facekit.methods.synfer.model import (
    ExpressionNet,
    MoCoNet,
    SynFERPipeline,
    make_pipeline,
    noise_scheduler,
)
from facekit.models import augment
from facekit.models.diffusion import ConditionalUNet
from facekit.synth.params import AU_NAMES, N_AUS
from facekit.synth.worlds import renderer_fingerprint
from facekit.train import (
    TrainConfig,
    TrainResult,
    load_cached,
    model_path,
    train_or_load,
)


def au_detector(profile: str) -> tuple[Any | None, str]:
    """The FMAE-IAT AU detector when it imports and a cached model exists, else ``None``; and
    the description every record carries (``au_labels``)."""
    try:
        from facekit.methods import fmae_iat  # type: ignore[attr-defined]

        det = fmae_iat.load(profile, 0)
    except (ImportError, ValueError, FileNotFoundError) as err:
        return None, f"ground truth (no FMAE-IAT detector cached: {type(err).__name__})"
    missing = [a for a in AU_NAMES if a not in det.aus]
    if missing:
        return None, f"ground truth (the FMAE-IAT detector lacks {missing})"
    return det, f"FMAE-IAT detector ({profile}, seed 0)"


def label_kind(profile: str) -> str:
    """What the pool's AU labels are, for cache keys (the reason a detector is missing is not)."""
    return "ground truth" if au_detector(profile)[0] is None else "detector"


def detect_aus(det: Any, images: Tensor, framing: str) -> Tensor:
    """AU activation probabilities in ``AU_NAMES`` order from the FMAE-IAT detector."""
    p = torch.as_tensor(np.asarray(det.predict_proba(images, framing=framing)), dtype=torch.float32)
    return p[:, [list(det.aus).index(a) for a in AU_NAMES]]


def training_pool(cfg: SynFERConfig, profile: str) -> dict[str, Tensor]:
    """The unlabelled pool with its weak AU labels and captions (token ids): the FEText stand-in."""
    d = cfg.data
    det = au_detector(profile)[0]
    ds = pool_dataset(d)

    def rows(idx: Tensor) -> dict[str, Tensor]:
        b = ds.batch(idx)
        au = detect_aus(det, b["image"].cpu(), d.framing) if det is not None else b["au"]
        return {"image": b["image"], "au": au, **{k: b[k] for k in ("age", "weight", "glasses", "yaw")}}

    def captioned(pool: dict[str, Tensor]) -> dict[str, Tensor]:
        writer, tok = CaptionWriter(), WordTokenizer(cfg.generator.model["max_len"])
        rng = np.random.default_rng(0)
        captions = [writer.caption(pool["au"][i], float(pool["age"][i]), float(pool["weight"][i]),
                                   float(pool["glasses"][i]), float(pool["yaw"][i]), rng) for i in range(d.n_pool)]
        return {"image": pool["image"], "au": pool["au"], "ids": tok(captions)}

    return render_pool("synfer-pool", {"pool": pool_key(d), "max_len": cfg.generator.model["max_len"],
                                       "au_labels": label_kind(profile), "renderer": renderer_fingerprint(), "v": 4},
                       d.n_pool, rows, chunk=512,
                       finish=captioned)


def diffusion_loss(model: torch.nn.Module, batch: dict[str, Tensor], scheduler: DDPMScheduler, p_drop_text: float,
                   p_drop_au: float) -> Tensor:
    """MSE of the UNet's prediction (clean image, noise or velocity: the scheduler's
    ``prediction_type``), with the text and the AU condition each dropped independently
    (probabilities ``p_drop_text`` / ``p_drop_au``) so both can be guided classifier-free."""
    x = batch["image"].float() / 127.5 - 1
    n = len(x)
    noise = torch.randn_like(x)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (n,), device=x.device)
    ids = torch.where((torch.rand(n, device=x.device) < p_drop_text)[:, None], torch.zeros_like(batch["ids"]),
                      batch["ids"])
    keep = (torch.rand(n, device=x.device) >= p_drop_au).float()
    pred = model(scheduler.add_noise(x, noise, t), t, ids, batch["au"].float(), keep)
    kind = scheduler.config.prediction_type
    target = x if kind == "sample" else noise if kind == "epsilon" else scheduler.get_velocity(x, noise, t)
    return F.mse_loss(pred, target)


def model_kwargs(cfg: SynFERConfig) -> dict[str, Any]:
    return {"vocab_size": len(WordTokenizer(cfg.generator.model["max_len"])), "n_aus": N_AUS,
            "sample_size": cfg.data.size, **cfg.generator.model}


def generator_key(cfg: SynFERConfig, profile: str) -> dict[str, Any]:
    g = cfg.generator
    return {"pool": pool_key(cfg.data), "p_drop_text": g.p_drop_text,
            "p_drop_au": g.p_drop_au, "T": g.num_train_timesteps, "au_labels": label_kind(profile),
            "prediction": g.prediction_type}


def train_generator(profile: str | None = None, seed: int = 0, cfg: SynFERConfig | None = None, *,
                    progress: bool | None = None) -> TrainResult:
    """Load the cached conditional DDPM of (profile, generator seed, config), else train it."""
    profile = get_profile(profile)
    cfg = cfg or profile_config(profile, seed)
    sched = noise_scheduler(cfg)
    data = PoolSampler(lambda: training_pool(cfg, profile), cfg.generator.train.batch_size)

    g = cfg.generator
    return train_or_load(METHOD, ConditionalUNet, model_kwargs(cfg), data, g.train, profile=profile,
                         key=generator_key(cfg, profile), progress=progress,
                         loss_fn=lambda m, b: diffusion_loss(m, b, sched, g.p_drop_text, g.p_drop_au))


def load(profile: str | None = None, seed: int = 0, *, device: str | torch.device | None = None,
         cfg: SynFERConfig | None = None) -> SynFERPipeline:
    """The cached SynFER pipeline of (profile, seed); ``FileNotFoundError`` says how to train it."""
    profile = get_profile(profile)
    cfg = cfg or profile_config(profile, seed)
    net = load_cached(METHOD, ConditionalUNet, model_kwargs(cfg), cfg.generator.train, key=generator_key(cfg, profile),
                      profile=profile, device=device,
                      what=f"SynFER generator for profile={profile!r}, seed={seed}", hint=TRAIN_HINT)
    return make_pipeline(net, cfg)


def generator_path(cfg: SynFERConfig, profile: str) -> Path:
    """Where the generator of ``cfg`` is cached (the cards and benchmarks read it)."""
    return model_path(METHOD, model_kwargs(cfg), cfg.generator.train, key=generator_key(cfg, profile), profile=profile)


def train_and_load(profile: str | None = None, seed: int = 0, *,
                   progress: bool | None = None) -> tuple[SynFERPipeline, TrainResult]:
    """Load the generator if cached, else train it; return the pipeline and the training log."""
    profile = get_profile(profile)
    cfg = profile_config(profile, seed)
    result = train_generator(profile, seed, cfg, progress=progress)
    return make_pipeline(result.model, cfg), result


def classifier_views(x: Tensor) -> Tensor:
    return augment(x, crop_scale=(0.8, 1.0), colour=0.3, grey_p=0.2, blur_p=0.3, noise=0.03)


def classifier_loss(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    return F.cross_entropy(model(classifier_views(as_float(batch["image"]))), batch["label"])


def sampler(data: dict[str, Tensor], batch_size: int) -> PoolSampler:
    """Random rows of a classifier's training set (an empty one is an error, not a silent skip)."""
    return PoolSampler(data, batch_size, empty="the training set (did calibration drop every image?)")


def classifier_kwargs(cfg: SynFERConfig) -> dict[str, Any]:
    return {"dim": cfg.classifier.dim, "widths": list(cfg.classifier.widths), "n_classes": N_CLASSES}


def train_classifier(profile: str, cfg: SynFERConfig, data: dict[str, Tensor], name: str, key: Any,
                     init: dict[str, Tensor] | None = None, progress: bool | None = False) -> ExpressionNet:
    """Load or train an :class:`ExpressionNet` on ``data`` (``image`` uint8, ``label``) with the
    shared recipe; ``init`` (an encoder state dict) starts it from pretrained weights."""
    def factory(**kw: Any) -> ExpressionNet:
        net = ExpressionNet(**kw)
        if init is not None:
            net.encoder.load_state_dict(init)
        return net

    res = train_or_load(f"synfer-{name}", factory, classifier_kwargs(cfg), sampler(data, cfg.classifier.train.batch_size),
                        cfg.classifier.train, profile=profile, key=key, progress=progress, loss_fn=classifier_loss)
    return res.model


def oracle_views(x: Tensor) -> Tensor:
    """Mild views for the oracle: its 4 x 4 map reads places, so crops stay small; blur and noise
    cover the smoothness of generated faces."""
    return augment(x, crop_scale=(0.9, 1.0), colour=0.2, grey_p=0.1, blur_p=0.3, noise=0.02)


def oracle_loss(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    """Emotion cross-entropy on the prototype faces plus AU occurrence BCE over the known labels
    (trace AUs left out), as the audit CNN is trained."""
    out = model(oracle_views(as_float(batch["image"])))
    emo = batch["emotion"] >= 0
    ce = F.cross_entropy(out["logits"][emo], batch["emotion"][emo]) if bool(emo.any()) else out["logits"].sum() * 0
    known = batch["au_known"].float()
    bce = F.binary_cross_entropy_with_logits(out["au_logits"], batch["au_occurs"].float(), reduction="none")
    return ce + (bce * known).sum() / known.sum().clamp(min=1)


def oracle_kwargs(cfg: SynFERConfig) -> dict[str, Any]:
    c = cfg.classifier
    return {"dim": 2 * c.dim, "widths": [2 * w for w in c.widths], "n_classes": N_CLASSES, "n_aus": N_AUS,
            "backbone": c.oracle_backbone}


def train_oracle(profile: str | None, cfg: SynFERConfig, progress: bool | None = False) -> Oracle:
    """The independent judge (seed 0, one per profile): emotion and AU heads on the renders of
    :func:`facekit.methods.synfer.data.oracle_data`."""
    profile = get_profile(profile)
    c = cfg.classifier
    tc = TrainConfig(steps=c.oracle_steps, batch_size=c.train.batch_size, lr=c.train.lr, weight_decay=1e-4,
                     warmup_steps=c.train.warmup_steps, schedule="cosine", seed=0, log_every=c.train.log_every)
    data = PoolSampler(lambda: oracle_data(cfg), tc.batch_size)
    key = {"world": oracle_world(cfg.data).config(), "n": cfg.data.n_oracle, "loss": "emotion+au_known", "v": 4}
    return train_or_load("synfer-oracle", Oracle, oracle_kwargs(cfg), data, tc, profile=profile, progress=progress,
                         key=key, loss_fn=oracle_loss).model


def moco_loss(model: nn.Module, batch: dict[str, Tensor], temperature: float, momentum: float) -> Tensor:
    net = model.module if hasattr(model, "module") else model
    net.update_momentum(momentum)
    x = as_float(batch["image"])
    return model(augment(x), augment(x), temperature)


def pretrain_moco(profile: str, cfg: SynFERConfig, images: Tensor, key: Any,
                  progress: bool | None = False) -> dict[str, Tensor]:
    """MoCo v3 on ``images`` (no labels); returns the online encoder's state dict."""
    c = cfg.classifier
    tc = TrainConfig(steps=c.moco_steps, batch_size=c.train.batch_size, lr=c.train.lr, weight_decay=c.train.weight_decay,
                     warmup_steps=c.train.warmup_steps, schedule="cosine", seed=c.train.seed, log_every=c.train.log_every)
    kw = {"dim": c.dim, "widths": list(c.widths)}
    res = train_or_load("synfer-moco", MoCoNet, kw, sampler({"image": images}, tc.batch_size), tc, profile=profile,
                        key=key, progress=progress, loss_fn=lambda m, b: moco_loss(m, b, c.moco_temperature,
                                                                                   c.moco_momentum))
    return res.model.encoder.state_dict()
