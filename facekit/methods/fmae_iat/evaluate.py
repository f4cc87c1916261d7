"""Evaluation: subject-independent cross-validation of four variants, the identity probe, one seed of the claims."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from facekit import metrics
from facekit.config import get_profile
from facekit.methods.fmae_iat.config import VARIANT_NAMES, profile_config, variants
from facekit.methods.fmae_iat.data import au_set, fold_split
from facekit.methods.fmae_iat.model import AUDetector
from facekit.methods.fmae_iat.train import choose_scale, finetune, pretrain


def identity_probe(features: np.ndarray, subjects: np.ndarray, seed: int = 0) -> float:
    """Accuracy of a logistic-regression probe of subject identity from frozen features
    (2-fold stratified cross-validation over the given images)."""
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    cv = StratifiedKFold(2, shuffle=True, random_state=seed)
    return float(cross_val_score(clf, features, subjects, cv=cv).mean())


def run_seed(profile: str | None = None, seed: int = 0, *, progress: bool | None = False,
             log: Callable[[str], None] = print, names: Sequence[str] = VARIANT_NAMES) -> dict[str, float]:
    """Every number of the FMAE-IAT claims for one seed, as ``{name: value}``.

    ``<variant>/f1`` (threshold 0.5, test predictions of the folds pooled), ``<variant>/f1_optimistic``,
    ``<variant>/f1/<AU>``, ``<variant>/auc`` (mean ROC-AUC over AUs, threshold-free),
    ``<variant>/probe`` (fold 0's model) for the variants in
    ``VARIANT_NAMES``; ``probe/chance``, ``scale`` and ``val_f1/scale<s>``. Sanity references:
    ``all_positive/f1`` (every AU always predicted present: F1 at 0.5 rewards that when AUs are
    rare), ``<variant>/train_au_bce`` (fold 0's final training AU loss) against
    ``base_rate/train_au_bce`` (the loss of predicting each AU's base rate, i.e. learning nothing
    from the image). ``names`` limits the variants (``("iat_linear",)``: the floor of issue 18
    without the three baselines' nine models).
    """
    bad = sorted(set(names) - set(VARIANT_NAMES))
    if bad or not names:
        raise ValueError(f"names={list(names)} is not valid; choose from {list(VARIANT_NAMES)}")
    profile = get_profile(profile)
    cfg = profile_config(profile, seed)
    pretrain(profile, seed, cfg, progress=progress)
    log(f"seed {seed}: MAE ready")
    sel = choose_scale(profile, seed, cfg, progress=progress)
    log(f"seed {seed}: reversal scale {sel['chosen']} (validation F1 {sel['val_f1']})")
    data = au_set(cfg.data, seed)
    out: dict[str, float] = {"scale": float(sel["chosen"]), **{f"val_f1/scale{k}": v for k, v in sel["val_f1"].items()}}
    probe = data["probe"]
    probe0 = {k: v[probe["fold"] != 0] for k, v in probe.items()}
    out["probe/chance"] = 1.0 / len(torch.unique(probe0["subject"]))
    train0 = fold_split(data["train"], 0)[0]
    rate, known = train0["label"].float(), train0["known"].float()
    p = ((rate * known).sum(0) / known.sum(0).clamp(min=1)).clamp(1e-6, 1 - 1e-6).expand_as(rate)
    out["base_rate/train_au_bce"] = float((F.binary_cross_entropy(p, rate, reduction="none") * known).sum()
                                          / known.sum())
    for name in names:
        labels, knowns, scores = [], [], []
        for fold in range(cfg.data.n_folds):
            result = finetune(profile, seed, variants(name, sel["chosen"], fold), cfg, progress=progress)
            det = AUDetector(result.model)
            test = fold_split(data["train"], fold)[1]
            labels.append(test["label"].numpy())
            knowns.append(test["known"].numpy().astype(bool))
            scores.append(det.predict_proba(test["image"].float() / 255, framing=cfg.data.framing))
            if fold == 0:
                feats = det.features(probe0["image"].float() / 255, framing=cfg.data.framing)
                out[f"{name}/probe"] = identity_probe(feats, probe0["subject"].numpy(), seed)
                out[f"{name}/train_au_bce"] = result.history[-1]["au"]
        y, k, s = np.concatenate(labels), np.concatenate(knowns), np.concatenate(scores)
        out["all_positive/f1"] = metrics.multilabel_f1(y, np.ones_like(s), known=k)
        out[f"{name}/f1"] = metrics.multilabel_f1(y, s, known=k)
        out[f"{name}/f1_optimistic"] = metrics.optimistic_best_threshold_f1(y, s, known=k)
        out[f"{name}/auc"] = metrics.multilabel_auc(y, s, known=k)
        for j, au in enumerate(cfg.data.aus):
            if y[k[:, j], j].any():
                out[f"{name}/f1/{au}"] = float(f1_score(y[k[:, j], j], s[k[:, j], j] >= 0.5, zero_division=0))
        log(f"seed {seed}: {name} F1 {out[f'{name}/f1']:.3f}, probe {out[f'{name}/probe']:.3f}")
    return out


# The metric names this method's runs write, per record: ``run_seed`` (above) for the claims record,
# with the verdicts benchmarks/claims.py adds, and the notebook's own record. A scenario naming
# ``record:metric`` is checked against these when it is loaded (facekit.records.check_metric_name):
# ``{a,b}`` is either alternative, ``*`` a part that depends on the profile.
RUN_METRICS = ("{scratch,mae,iat_linear,iat_mlp}/{f1,f1_optimistic,probe,auc,train_au_bce}", "all_positive/f1",
               "base_rate/train_au_bce", "probe/chance", "scale", "val_f1/scale*")
METRICS = {"claims_fmae_iat": (*RUN_METRICS, "{scratch,mae,iat_linear,iat_mlp}/f1/AU*", "{F1,F2,F3,F4}/{difference,holds}"),
           "03_mae_iat_au": RUN_METRICS}
