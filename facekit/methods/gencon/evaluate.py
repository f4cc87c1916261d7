"""Evaluation: classification and reference scores, the single-image baseline, one seed of the claims."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

from facekit import metrics
from facekit.config import get_profile
from facekit.methods.common import batched
from facekit.methods.gencon.config import BIN_NAMES, profile_config
from facekit.methods.gencon.data import expression_set
from facekit.methods.gencon.model import GenCon, prepare_images
from facekit.methods.gencon.train import frozen, train_single, train_stages
from facekit.methods.oracle import read


def classification_scores(proba: np.ndarray, test: dict[str, Tensor]) -> dict[str, float]:
    """Accuracy and macro-F1 overall and per intensity bin (bins hold the expressive images;
    predicting neutral for a faint expression counts as an error)."""
    y, bins = test["emotion"].numpy(), test["bin"].numpy()
    out = {"acc": metrics.accuracy(y, proba), "f1": metrics.macro_f1(y, proba)}
    for k, name in enumerate(BIN_NAMES):
        m = bins == k
        out[f"acc_{name}"] = metrics.accuracy(y[m], proba[m])
        out[f"f1_{name}"] = metrics.macro_f1(y[m], proba[m])
    return out


@torch.no_grad()
def reference_scores(references: Tensor, test: dict[str, Tensor], oracle: nn.Module) -> dict[str, float]:
    """L1, squared error and SSIM of the references to the true neutrals, and oracle identity similarity
    (cosine) of reference and query, with the true neutral's as the ceiling. ``copy_*`` scores the
    query itself as its reference; ``l1_ratio`` is the reference's L1 over the copy's (below 1:
    the reference is closer to the true neutral than the query is)."""
    x, neutral = test["image"].float() / 255, test["neutral"].float() / 255
    zx, zr, zn = (read(oracle, t)["emb"] for t in (x, references, neutral))
    l1, copy_l1 = float((references - neutral).abs().mean()), float((x - neutral).abs().mean())
    return {"l1": l1, "l1_ratio": l1 / copy_l1, "mse": float((references - neutral).pow(2).mean()),
            "copy_mse": float((x - neutral).pow(2).mean()), "ssim": metrics.ssim(references, neutral),
            "id_sim": float((zr * zx).sum(1).mean()), "id_sim_true_neutral": float((zn * zx).sum(1).mean()),
            "copy_l1": copy_l1, "copy_ssim": metrics.ssim(x, neutral)}


def single_proba(net: nn.Module, images: Tensor, batch_size: int = 256) -> np.ndarray:
    """The single-image baseline's class probabilities."""
    x = prepare_images(images, images.shape[-1])
    return torch.softmax(batched(lambda b: net(b)["logits"], x, batch_size=batch_size), 1).numpy()


def run_seed(profile: str | None = None, seed: int = 0, *, progress: bool | None = False,
             log: Callable[[str], None] = print) -> dict[str, float]:
    """Every number of the gencon claims for one seed: ``gencon/...`` and ``single/...``
    (``acc``, ``f1`` and per bin), ``stage2/...`` (after the two-step training, before
    fine-tuning) and ``reference/...`` (L1, SSIM, identity similarity; ``copy_*`` scores the
    query itself as a reference)."""
    profile = get_profile(profile)
    cfg = profile_config(profile, seed)
    stages = train_stages(profile, seed, cfg, progress=progress)
    model = GenCon(stages["finetune"].model, cfg, profile, seed)
    log(f"seed {seed}: generative-contrastive network ready")
    single = train_single(profile, seed, cfg, progress=progress).model
    log(f"seed {seed}: single-image baseline ready")
    oracle = frozen(stages["oracle"].model)
    stage2 = GenCon(stages["encoder"].model, cfg, profile, seed)
    test = expression_set(cfg, "test")
    x = test["image"].float() / 255
    out: dict[str, float] = {}
    for name, proba in (("gencon", model.predict_proba(x)), ("single", single_proba(single, x)),
                        ("stage2", stage2.predict_proba(x))):
        out.update({f"{name}/{k}": v for k, v in classification_scores(proba, test).items()})
    out.update({f"reference/{k}": v for k, v in reference_scores(model.reference(x), test, oracle).items()})
    log(f"seed {seed}: evaluated")
    return out


# The metric names this method's runs write, per record: ``run_seed`` (above) for the claims record,
# with the verdicts benchmarks/claims.py adds, and the notebook's own record. A scenario naming
# ``record:metric`` is checked against these when it is loaded (facekit.records.check_metric_name):
# ``{a,b}`` is either alternative, ``*`` a part that depends on the profile.
REFERENCE_METRICS = ("reference/{l1,l1_ratio,mse,ssim,copy_l1,copy_mse,copy_ssim,id_sim,id_sim_true_neutral}",)
METRICS = {"claims_gencon": ("{gencon,stage2,single}/{acc,f1}", "{gencon,stage2,single}/{acc,f1}_{low,medium,high}",
                             *REFERENCE_METRICS, "G1/gencon_minus_single/acc", "G2/low_gain_minus_best_other_gain",
                             "{G1,G2}/holds"),
           "05_reference_faces": ("{gencon,single}/{acc,f1}", "{gencon,single}/{acc,f1}_{low,medium,high}",
                                  *REFERENCE_METRICS)}
