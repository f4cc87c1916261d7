"""SynFER's judges and downstream experiments: oracle, expression classifiers, MoCo v3,
label calibrator, generation quality and the (a)-(d) comparisons of one seed.

Every classifier, whatever its data, is the same :class:`ExpressionNet` trained with the same
:class:`~facekit.methods.synfer.ClassifierConfig` recipe (steps, batch, optimiser,
augmentation), so (a)-(d) differ only in their training images and labels. MoCo v3 (Chen et
al., 2021): an online encoder + projector + predictor, a momentum encoder + projector, and
the symmetric InfoNCE ``ctr(q1, k2) + ctr(q2, k1)`` between two augmented views
(:func:`facekit.kernels.contrastive.info_nce`), then the encoder is fine-tuned on the
labelled set with the recipe of (a).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import Tensor, nn

from facekit import metrics
from facekit.config import get_profile
from facekit.io import disk_cached, to_uint8
from facekit.kernels.contrastive import info_nce
from facekit.methods import synfer
from facekit.methods.synfer_captions import ACTIVE, CaptionWriter
from facekit.methods.synfer_pipeline import SynFERPipeline
from facekit.models import ConvEncoder, augment
from facekit.synth.datasets import FaceDataset, IdentitySplit
from facekit.synth.params import EMOTIONS, N_AUS, emotion_aus
from facekit.train import TrainConfig, train_or_load

MODES = ("au_text", "text", "uncond")


# ------------------------------------------------------------------------ classifiers


class ExpressionNet(nn.Module):
    """ConvEncoder -> emotion logits (and, for the oracle, AU activation logits)."""

    def __init__(self, dim: int = 64, widths: list[int] | tuple[int, ...] = (16, 32, 48, 64), n_classes: int = 8,
                 n_aus: int = 0) -> None:
        super().__init__()
        self.encoder = ConvEncoder(dim, tuple(widths))
        self.head = nn.Linear(dim, n_classes)
        self.au_head = nn.Linear(dim, n_aus) if n_aus else None

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.encoder(x))

    def outputs(self, x: Tensor) -> dict[str, Tensor]:
        h = self.encoder(x)
        out = {"features": h, "logits": self.head(h)}
        if self.au_head is not None:
            out["au_logits"] = self.au_head(h)
        return out


@torch.no_grad()
def predict(net: ExpressionNet, images: Tensor, batch_size: int = 256) -> dict[str, Tensor]:
    """``features``, ``proba`` (softmax) and, for the oracle, ``au_proba`` of images in [0, 1] or uint8."""
    net.eval()
    dev = next(net.parameters()).device
    outs = [net.outputs(_float(images[i:i + batch_size]).to(dev)) for i in range(0, len(images), batch_size)]
    res = {"features": torch.cat([o["features"] for o in outs]).cpu(),
           "proba": torch.cat([o["logits"] for o in outs]).softmax(1).cpu()}
    if "au_logits" in outs[0]:
        res["au_proba"] = torch.cat([o["au_logits"] for o in outs]).sigmoid().cpu()
    return res


def _float(x: Tensor) -> Tensor:
    return x.float() / 255 if x.dtype == torch.uint8 else x.float()


def _views(x: Tensor) -> Tensor:
    return augment(x, crop_scale=(0.8, 1.0), colour=0.3, grey_p=0.2, blur_p=0.3, noise=0.03)


def classifier_loss(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    return F.cross_entropy(model(_views(_float(batch["image"]))), batch["label"])


def _sampler(data: dict[str, Tensor], batch_size: int) -> Callable[[int], dict[str, Tensor]]:
    n = len(data["image"])
    if n < 1:
        raise ValueError("the training set is empty (did calibration drop every image?)")

    def step(_: int) -> dict[str, Tensor]:
        idx = torch.randint(0, n, (batch_size,))
        return {k: v[idx] for k, v in data.items()}

    return step


def _cls_kwargs(cfg: synfer.SynFERConfig) -> dict[str, Any]:
    return {"dim": cfg.classifier.dim, "widths": list(cfg.classifier.widths), "n_classes": synfer.N_CLASSES}


def train_classifier(profile: str, cfg: synfer.SynFERConfig, data: dict[str, Tensor], name: str, key: Any,
                     init: dict[str, Tensor] | None = None, progress: bool | None = False) -> ExpressionNet:
    """Load or train an :class:`ExpressionNet` on ``data`` (``image`` uint8, ``label``) with the
    shared recipe; ``init`` (an encoder state dict) starts it from pretrained weights."""
    def factory(**kw: Any) -> ExpressionNet:
        net = ExpressionNet(**kw)
        if init is not None:
            net.encoder.load_state_dict(init)
        return net

    res = train_or_load(f"synfer-{name}", factory, _cls_kwargs(cfg), _sampler(data, cfg.classifier.train.batch_size),
                        cfg.classifier.train, profile=profile, key=key, progress=progress, loss_fn=classifier_loss)
    return res.model


def accuracy(net: ExpressionNet, sets: dict[str, Tensor]) -> float:
    return metrics.accuracy(sets["label"].numpy(), predict(net, sets["image"])["proba"].argmax(1).numpy())


# ---------------------------------------------------------------------------- oracle


def oracle_data(cfg: synfer.SynFERConfig) -> dict[str, Tensor]:
    """Target-style renders of another world's persons, with emotions and AU activations."""
    d = cfg.data

    def make() -> dict[str, Tensor]:
        ds = FaceDataset(d.n_oracle, split="train", identities=IdentitySplit(d.n_identities, world_seed=d.oracle_world),
                         seed=20, size=d.size, framing=d.framing, style="target", expressions="emotion")
        parts = [ds.batch(torch.arange(lo, min(lo + 512, d.n_oracle))) for lo in range(0, d.n_oracle, 512)]
        return {"image": torch.cat([to_uint8(p["image"].cpu()) for p in parts]),
                "label": torch.cat([p["emotion"].cpu() for p in parts]),
                "au": torch.cat([(p["au"].cpu() > ACTIVE).float() for p in parts])}

    return disk_cached("synfer-oracle", {"size": d.size, "framing": d.framing, "n": d.n_oracle, "world": d.oracle_world,
                                          "n_identities": d.n_identities, "v": 3}, make)


def oracle_loss(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    out = (model.module if hasattr(model, "module") else model).outputs(_views(_float(batch["image"])))
    return F.cross_entropy(out["logits"], batch["label"]) + F.binary_cross_entropy_with_logits(out["au_logits"], batch["au"])


def train_oracle(profile: str | None, cfg: synfer.SynFERConfig, progress: bool | None = False) -> ExpressionNet:
    """The independent judge (seed 0, one per profile): emotion and AU heads on renders."""
    profile = get_profile(profile)
    c = cfg.classifier
    tc = TrainConfig(steps=c.oracle_steps, batch_size=c.train.batch_size, lr=c.train.lr, weight_decay=1e-4,
                     warmup_steps=c.train.warmup_steps, schedule="cosine", seed=0, log_every=c.train.log_every)
    holder: dict[str, Tensor] = {}

    def data(step: int) -> dict[str, Tensor]:
        if not holder:
            holder.update(oracle_data(cfg))
        idx = torch.randint(0, len(holder["image"]), (tc.batch_size,))
        return {k: v[idx] for k, v in holder.items()}

    kw = {"dim": 2 * c.dim, "widths": [2 * w for w in c.widths], "n_classes": synfer.N_CLASSES, "n_aus": N_AUS}
    return train_or_load("synfer-oracle", ExpressionNet, kw, data, tc, profile=profile, progress=progress,
                         key={"size": cfg.data.size, "framing": cfg.data.framing, "n": cfg.data.n_oracle,
                              "world": cfg.data.oracle_world},
                         loss_fn=oracle_loss).model


# ------------------------------------------------------------------------------ MoCo v3


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


def moco_loss(model: nn.Module, batch: dict[str, Tensor], temperature: float, momentum: float) -> Tensor:
    net = model.module if hasattr(model, "module") else model
    net.update_momentum(momentum)
    x = _float(batch["image"])
    return model(augment(x), augment(x), temperature)


def pretrain_moco(profile: str, cfg: synfer.SynFERConfig, images: Tensor, key: Any,
                  progress: bool | None = False) -> dict[str, Tensor]:
    """MoCo v3 on ``images`` (no labels); returns the online encoder's state dict."""
    c = cfg.classifier
    tc = TrainConfig(steps=c.moco_steps, batch_size=c.train.batch_size, lr=c.train.lr, weight_decay=c.train.weight_decay,
                     warmup_steps=c.train.warmup_steps, schedule="cosine", seed=c.train.seed, log_every=c.train.log_every)
    kw = {"dim": c.dim, "widths": list(c.widths)}
    res = train_or_load("synfer-moco", MoCoNet, kw, _sampler({"image": images}, tc.batch_size), tc, profile=profile,
                        key=key, progress=progress, loss_fn=lambda m, b: moco_loss(m, b, c.moco_temperature,
                                                                                   c.moco_momentum))
    return res.model.encoder.state_dict()


# ------------------------------------------------------------------------- calibrator


class LabelCalibrator:
    """Logistic regression on the UNet's features of an image (FERAnno at teaching scale)."""

    def __init__(self, pipe: SynFERPipeline, timestep: int = 200) -> None:
        self.pipe, self.timestep = pipe, timestep
        self.model: Pipeline | None = None

    def features(self, images: Tensor) -> np.ndarray:
        return self.pipe.features(_float(images), self.timestep).numpy()

    def fit(self, images: Tensor, labels: Tensor) -> LabelCalibrator:
        self.model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000))
        self.model.fit(self.features(images), np.asarray(labels))
        return self

    def predict_proba(self, images: Tensor) -> Tensor:
        if self.model is None:
            raise RuntimeError("this LabelCalibrator is not fitted; call fit(images, labels) first")
        p = np.zeros((len(images), synfer.N_CLASSES))
        p[:, self.model.classes_] = self.model.predict_proba(self.features(images))
        return torch.as_tensor(p, dtype=torch.float32)


def calibrate(labels: Tensor, p_calibrator: Tensor, p_classifier: Tensor, threshold: float) -> dict[str, Tensor]:
    """The ensemble vote (mean of the two probability vectors). Agreeing labels stay; a
    disagreeing one is relabelled when the vote's confidence is at least ``threshold``, else its
    image is dropped. Returns ``label`` (new labels), ``keep`` (bool mask) and ``changed``."""
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold={threshold!r} is not valid; pass a probability in [0, 1]")
    vote = (p_calibrator + p_classifier) / 2
    conf, pred = vote.max(1)
    agree = pred == labels
    relabel = ~agree & (conf >= threshold)
    return {"label": torch.where(relabel, pred, labels), "keep": agree | relabel, "changed": relabel}


# -------------------------------------------------------------------------- generation


@torch.no_grad()
def conditioning_gain(pipe: SynFERPipeline, pool: dict[str, Tensor], timesteps: tuple[int, ...] = (300, 600, 900),
                      n: int = 256, seed: int = 0) -> dict[int, float]:
    """How much the generator uses its condition: the relative drop of the clean-image error on
    pool images noised to ``t`` when their caption and AUs are given, against both dropped.
    Near 0, the generator ignores its condition whatever its loss curve says."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(pool["image"]), generator=g)[:n]
    x = _float(pool["image"][idx]) * 2 - 1
    ids, au, model = pool["ids"][idx], pool["au"][idx].float(), pipe.model
    out = {}
    for t0 in timesteps:
        t = torch.full((len(x),), t0, dtype=torch.long)
        xt = pipe.scheduler.add_noise(x, torch.randn(x.shape, generator=g), t)
        err = [float((pipe.predicted_x0(xt, t, model(xt, t, i, au, k)) - x).square().mean())
               for i, k in ((ids, torch.ones(len(x))), (torch.zeros_like(ids), torch.zeros(len(x))))]
        out[t0] = (err[1] - err[0]) / err[1]
    return out


def requests(cfg: synfer.SynFERConfig, n: int, seed: int) -> dict[str, Any]:
    """``n`` generation requests, class ``i % 8`` for request i (so any prefix of 8k is balanced, and
    a prefix of a longer list is the shorter list):
    AU vector = the class's EMFACS prototype at an intensity in [0.5, 1] (neutral: none), and a
    caption written from those AUs and random age, weight, glasses and pose."""
    writer = CaptionWriter()
    labels = torch.arange(n) % synfer.N_CLASSES
    rngs = [np.random.default_rng([1000 + seed, i]) for i in range(n)]  # request i depends on (seed, i) only
    intensity = torch.tensor([r.uniform(0.5, 1.0) for r in rngs], dtype=torch.float32) * (labels > 0)
    au = torch.stack([emotion_aus(EMOTIONS[int(c)], float(s)) for c, s in zip(labels, intensity, strict=True)]) if n \
        else torch.zeros(0, N_AUS)
    prompts = [writer.caption(au[i], float(r.uniform(18, 70)), float(r.uniform(17, 34)), float(r.random() < 0.15),
                              float(r.normal(0, 12)), r) for i, r in enumerate(rngs)]
    return {"label": labels, "au": au, "prompt": prompts, "intensity": intensity}


def generate(pipe: SynFERPipeline, cfg: synfer.SynFERConfig, profile: str, seed: int, n: int, mode: str,
             semantic: ExpressionNet | None = None) -> dict[str, Tensor]:
    """Generate the first ``n`` requests of this seed in ``mode`` (``au_text``, ``text`` or ``uncond``),
    with semantic guidance when ``semantic`` is given; cached on disk (uint8)."""
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is not valid; choose one of {list(MODES)}")
    s = cfg.sample
    req = requests(cfg, n, seed)

    def make() -> dict[str, Tensor]:
        kw: dict[str, Any] = {}
        if semantic is not None:
            kw = {"semantic_classifier": semantic.eval(), "semantic_target": req["label"],
                  "semantic_scale": s.semantic_scale, "guidance_fraction": s.guidance_fraction}
        out = pipe(req["prompt"] if mode != "uncond" else [""] * n, req["au"] if mode == "au_text" else None,
                   num_inference_steps=s.steps, text_scale=s.text_scale, au_scale=s.au_scale, seed=seed, **kw)
        return {"image": to_uint8(out.images)}

    gen = synfer._generator_path(cfg, profile).name
    key = {"generator": gen, "profile": profile, "sample": s, "seed": seed, "n": n, "mode": mode,
           "semantic": semantic is not None, "v": 1}
    images = disk_cached("synfer-gen", key, make)["image"]
    return {"image": images, "label": req["label"], "au": req["au"]}


def quality(images: Tensor, wanted: dict[str, Tensor], oracle: ExpressionNet, test_features: Tensor,
            detector: Any | None) -> dict[str, float]:
    """Oracle expression accuracy, AU-control F1 (the detector, else the oracle's AU head, on the
    generated images against the requested AUs) and the Fréchet distance to the real test set."""
    o = predict(oracle, images)
    au_p = synfer.detect_aus(detector, _float(images)) if detector is not None else o["au_proba"]
    return {"oracle_acc": metrics.accuracy(wanted["label"].numpy(), o["proba"].argmax(1).numpy()),
            "au_f1": metrics.multilabel_f1((wanted["au"] > ACTIVE).float().numpy(), au_p.numpy()),
            "fd": metrics.frechet_distance(o["features"].numpy(), test_features.numpy())}


# ------------------------------------------------------------------------------ one seed


def run_seed(profile: str | None = None, seed: int = 0, *, progress: bool | None = False,
             log: Callable[[str], None] = print) -> dict[str, float]:
    """Every SynFER number of one seed as ``{name: value}``: generation quality per mode
    (``quality/<mode>/{oracle_acc,au_f1,fd}``), semantic guidance (``guidance/{off,on}/oracle_acc``),
    calibration (``calib/...``) and test accuracy of the downstream classifiers (``down/<name>``)."""
    profile = get_profile(profile)
    cfg = synfer.profile_config(profile, seed)
    s, out = cfg.sample, {}
    pipe, _ = synfer.train_and_load(profile, seed, progress=progress)
    log(f"seed {seed}: generator ready")
    for t0, gain in conditioning_gain(pipe, synfer.training_pool(cfg, profile), seed=seed).items():
        out[f"generator/cond_gain/t{t0}"] = gain
    real = synfer.real_sets(cfg)
    idx = synfer.labelled_subset(cfg, seed)
    lab = {"image": real["labelled"]["image"][idx], "label": real["labelled"]["label"][idx]}
    test = real["test"]
    oracle = train_oracle(profile, cfg, progress)
    detector, au_source = synfer.au_detector(profile)
    out["oracle/test_acc"] = accuracy(oracle, test)
    ckey = {"classifier": cfg.classifier, "data": cfg.data, "seed": seed}
    cls_a = train_classifier(profile, cfg, lab, "labelled", {**ckey, "set": "labelled"}, progress=progress)
    out["down/a_labelled"] = accuracy(cls_a, test)
    log(f"seed {seed}: oracle and (a) ready")
    n1 = synfer.N_CLASSES * cfg.data.n_labelled
    gen5 = generate(pipe, cfg, profile, seed, n1 * s.scale_5x, "au_text")
    gen1 = {k: v[:n1] for k, v in gen5.items()}
    test_feat = predict(oracle, test["image"])["features"]
    for mode in MODES:
        g = gen1 if mode == "au_text" else generate(pipe, cfg, profile, seed, n1, mode)
        for k, v in quality(g["image"], g, oracle, test_feat, detector).items():
            out[f"quality/{mode}/{k}"] = v
    ng = min(s.n_guided, n1)
    guided = generate(pipe, cfg, profile, seed, ng, "text", semantic=cls_a)
    plain = generate(pipe, cfg, profile, seed, n1, "text")
    for name, g in (("off", plain["image"][:ng]), ("on", guided["image"])):
        out[f"guidance/{name}/oracle_acc"] = metrics.accuracy(guided["label"].numpy(),
                                                              predict(oracle, g)["proba"].argmax(1).numpy())
    log(f"seed {seed}: generated and scored")
    cal = LabelCalibrator(pipe, s.calib_timestep).fit(lab["image"], lab["label"])
    p_cal, p_cls = cal.predict_proba(gen5["image"]), predict(cls_a, gen5["image"])["proba"]
    res = calibrate(gen5["label"], p_cal, p_cls, s.calib_threshold)
    judge = predict(oracle, gen5["image"])["proba"].argmax(1)
    keep = res["keep"]
    out.update({"calib/calibrator_real_acc": accuracy_of(cal.predict_proba(test["image"]), test["label"]),
                "calib/changed_frac": float(res["changed"].float().mean()),
                "calib/dropped_frac": float((~keep).float().mean()),
                "calib/label_acc_before": float((gen5["label"] == judge).float().mean()),
                "calib/label_acc_after": float((res["label"][keep] == judge[keep]).float().mean()) if keep.any() else 0.0})
    sets = {"c_1x": gen1, "c_5x": gen5}
    for name, n in (("d_1x", n1), ("d_5x", n1 * s.scale_5x)):
        k = keep[:n]
        sets[name] = {"image": gen5["image"][:n][k], "label": res["label"][:n][k]}
    gkey = {**ckey, "generator": synfer._generator_path(cfg, profile).name, "sample": s}
    for name, data in sets.items():
        net = train_classifier(profile, cfg, {"image": data["image"], "label": data["label"]}, "synthetic",
                               {**gkey, "set": name}, progress=progress)
        out[f"down/{name}"] = accuracy(net, test)
    log(f"seed {seed}: (c) and (d) trained")
    enc = pretrain_moco(profile, cfg, gen5["image"], {**gkey, "set": "5x"}, progress=progress)
    cls_b = train_classifier(profile, cfg, lab, "moco-finetune", {**gkey, "set": "labelled", "init": "moco-5x"},
                             init=enc, progress=progress)
    out["down/b_moco"] = accuracy(cls_b, test)
    log(f"seed {seed}: (b) trained; au_labels: {au_source}")
    return out


def accuracy_of(proba: Tensor, labels: Tensor) -> float:
    return metrics.accuracy(labels.numpy(), proba.argmax(1).numpy())


__all__ = ["MODES", "ExpressionNet", "LabelCalibrator", "MoCoNet", "calibrate", "generate", "predict", "quality",
           "requests", "run_seed", "train_classifier", "train_oracle"]
