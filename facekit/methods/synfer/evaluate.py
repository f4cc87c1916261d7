"""Evaluation: the label calibrator, generation, quality against the oracle, one seed of the claims."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.pipeline import make_pipeline as sk_pipeline
from sklearn.preprocessing import StandardScaler
from torch import Tensor

from facekit import metrics
from facekit.config import get_profile
from facekit.io import disk_cached, to_uint8
from facekit.methods.common import as_float
from facekit.methods.oracle import Oracle
from facekit.methods.synfer.config import MODES, N_CLASSES, SynFERConfig, profile_config
from facekit.methods.synfer.data import ACTIVE, labelled_subset, real_sets, requests
from facekit.methods.synfer.model import ExpressionNet, SynFERPipeline, predict
from facekit.methods.synfer.train import (
    au_detector,
    detect_aus,
    generator_path,
    pretrain_moco,
    train_and_load,
    train_classifier,
    train_oracle,
    training_pool,
)
from facekit.synth.worlds import INTENSITY_BINS, intensity_bin


def accuracy(net: ExpressionNet | Oracle, sets: dict[str, Tensor]) -> float:
    return metrics.accuracy(sets["label"].numpy(), predict(net, sets["image"])["proba"].argmax(1).numpy())


def oracle_accuracy(oracle: Oracle, test: dict[str, Tensor]) -> dict[str, float]:
    """The oracle's 8-class accuracy on rendered test faces (``oracle/test_acc``) and per
    emotion-intensity bin of the world (``oracle/test_acc/<bin>``, neutral faces apart), so a
    figure over every bin shows where it is lost."""
    pred = predict(oracle, test["image"])["proba"].argmax(1)
    out = {"oracle/test_acc": metrics.accuracy(test["label"].numpy(), pred.numpy())}
    bins = intensity_bin(test["intensity"])  # -1: neutral (intensity 0)
    for b, name in [(-1, "neutral"), *enumerate(INTENSITY_BINS)]:
        m = bins == b
        if bool(m.any()):
            out[f"oracle/test_acc/{name}"] = metrics.accuracy(test["label"][m].numpy(), pred[m].numpy())
    return out


class LabelCalibrator:
    """Logistic regression on the UNet's features of an image (FERAnno at teaching scale)."""

    def __init__(self, pipe: SynFERPipeline, timestep: int = 200) -> None:
        self.pipe, self.timestep = pipe, timestep
        self.model: Pipeline | None = None

    def features(self, images: Tensor) -> np.ndarray:
        return self.pipe.features(images, self.timestep).numpy()

    def fit(self, images: Tensor, labels: Tensor) -> LabelCalibrator:
        self.model = sk_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000))
        self.model.fit(self.features(images), np.asarray(labels))
        return self

    def predict_proba(self, images: Tensor) -> Tensor:
        if self.model is None:
            raise RuntimeError("this LabelCalibrator is not fitted; call fit(images, labels) first")
        p = np.zeros((len(images), N_CLASSES))
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


@torch.no_grad()
def conditioning_gain(pipe: SynFERPipeline, pool: dict[str, Tensor], timesteps: tuple[int, ...] = (300, 600, 900),
                      n: int = 256, seed: int = 0) -> dict[int, float]:
    """How much the generator uses its condition: the relative drop of the clean-image error on
    pool images noised to ``t`` when their caption and AUs are given, against both dropped.
    Near 0, the generator ignores its condition whatever its loss curve says."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(pool["image"]), generator=g)[:n]
    x = as_float(pool["image"][idx]) * 2 - 1
    ids, au, model = pool["ids"][idx], pool["au"][idx].float(), pipe.model
    out = {}
    for t0 in timesteps:
        t = torch.full((len(x),), t0, dtype=torch.long)
        xt = pipe.scheduler.add_noise(x, torch.randn(x.shape, generator=g), t)
        err = [float((pipe.predicted_x0(xt, t, model(xt, t, i, au, k)) - x).square().mean())
               for i, k in ((ids, torch.ones(len(x))), (torch.zeros_like(ids), torch.zeros(len(x))))]
        out[t0] = (err[1] - err[0]) / err[1]
    return out


def generate(pipe: SynFERPipeline, cfg: SynFERConfig, profile: str, seed: int, n: int, mode: str,
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

    gen = generator_path(cfg, profile).name
    key = {"generator": gen, "profile": profile, "sample": s, "seed": seed, "n": n, "mode": mode,
           "semantic": semantic is not None, "v": 1}
    images = disk_cached("synfer-gen", key, make)["image"]
    return {"image": images, "label": req["label"], "au": req["au"]}


def quality(images: Tensor, wanted: dict[str, Tensor], oracle: Oracle, test_features: Tensor,
            detector: Any | None) -> dict[str, float]:
    """Oracle expression accuracy, AU-control F1 (the detector, else the oracle's AU head, on the
    generated images against the requested AUs) and the Fréchet distance to the real test set."""
    o = predict(oracle, images)
    au_p = detect_aus(detector, as_float(images)) if detector is not None else o["au_proba"]
    return {"oracle_acc": metrics.accuracy(wanted["label"].numpy(), o["proba"].argmax(1).numpy()),
            "au_f1": metrics.multilabel_f1((wanted["au"] > ACTIVE).float().numpy(), au_p.numpy()),
            "fd": metrics.frechet_distance(o["features"].numpy(), test_features.numpy())}


def run_seed(profile: str | None = None, seed: int = 0, *, progress: bool | None = False,
             log: Callable[[str], None] = print) -> dict[str, float]:
    """Every SynFER number of one seed as ``{name: value}``: generation quality per mode
    (``quality/<mode>/{oracle_acc,au_f1,fd}``), semantic guidance (``guidance/{off,on}/oracle_acc``),
    calibration (``calib/...``) and test accuracy of the downstream classifiers (``down/<name>``)."""
    profile = get_profile(profile)
    cfg = profile_config(profile, seed)
    s, out = cfg.sample, {}
    pipe, _ = train_and_load(profile, seed, progress=progress)
    log(f"seed {seed}: generator ready")
    for t0, gain in conditioning_gain(pipe, training_pool(cfg, profile), seed=seed).items():
        out[f"generator/cond_gain/t{t0}"] = gain
    real = real_sets(cfg)
    idx = labelled_subset(cfg, seed)
    lab = {"image": real["labelled"]["image"][idx], "label": real["labelled"]["label"][idx]}
    test = real["test"]
    oracle = train_oracle(profile, cfg, progress)
    detector, au_source = au_detector(profile)
    out.update(oracle_accuracy(oracle, test))
    ckey = {"classifier": cfg.classifier, "data": cfg.data, "seed": seed}
    cls_a = train_classifier(profile, cfg, lab, "labelled", {**ckey, "set": "labelled"}, progress=progress)
    out["down/a_labelled"] = accuracy(cls_a, test)
    log(f"seed {seed}: oracle and (a) ready")
    n1 = N_CLASSES * cfg.data.n_labelled
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
    gkey = {**ckey, "generator": generator_path(cfg, profile).name, "sample": s}
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


# The metric names this method's runs write, per record: ``run_seed`` (above) for the claims record,
# with the verdicts benchmarks/claims.py adds, and the notebook's own record. A scenario naming
# ``record:metric`` is checked against these when it is loaded (facekit.records.check_metric_name):
# ``{a,b}`` is either alternative, ``*`` a part that depends on the profile.
QUALITY_METRICS = ("quality/{au_text,text,uncond}/{oracle_acc,au_f1,fd}", "guidance/{off,on}/oracle_acc")
METRICS = {"claims_synfer": (*QUALITY_METRICS, "calib/{calibrator_real_acc,changed_frac,dropped_frac,label_acc_before,"
                                               "label_acc_after}",
                             "down/{a_labelled,b_moco,c_1x,c_5x,d_1x,d_5x}", "generator/cond_gain/t*", "oracle/test_acc",
                             "oracle/test_acc/{neutral,low,medium,high}",
                             "{S1,S2,S3,S4}/difference"),
           "04_synfer": (*QUALITY_METRICS, "calib/{relabelled,dropped,label_acc_before,label_acc_after}",
                         "classifier_a/test_acc")}
