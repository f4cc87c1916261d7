"""Evaluation: the scoring oracle, edit curves, matched success, invertibility, one seed of the claims."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from facekit import metrics
from facekit.config import get_profile
from facekit.methods.common import profile_config_of
from facekit.methods.oracle import Oracle, read
from facekit.methods.plugen.config import (
    ATTRIBUTE_NAMES,
    EDIT_METHODS,
    N_ATTR,
    TRAIN_HINT,
    DataConfig,
    profile_config,
    world_of,
)
from facekit.methods.plugen.data import (
    apply_levels,
    draw_levels,
    face_pool,
    person_batches,
    test_faces,
    test_params,
)
from facekit.methods.plugen.model import PlugenEditor
from facekit.methods.plugen.train import train_and_load
from facekit.models import augment, supcon_loss
from facekit.synth import ict, procedural
from facekit.synth.params import ID_DIM, FaceParams
from facekit.train import TrainConfig, TrainResult, load_cached, train_or_load

AMOUNTS = (0.25, 0.5, 0.75, 1.0)


# Facial regions an attribute is allowed to change; pixels outside them should stay. The ICT-FaceKit
# backend boxes its regions around landmarks and has no cheek box, so there the cheeks count as outside.
EDIT_REGIONS: dict[str, tuple[str, ...]] = {
    "smile": ("mouth", "cheeks", "chin"),
    "mouth_open": ("mouth", "chin", "cheeks"),
    "eyes_closed": ("eyes", "brows"),
    "glasses": ("eyes", "brows", "nose", "cheeks"),
}


@dataclass
class OracleConfig:
    """The scoring oracle; trained once per profile (seed 0), on the profile's clean renders
    with a new scene (background, light, clothing) in every frame."""

    model: dict[str, Any] = field(default_factory=lambda: {"dim": 128, "widths": [16, 32, 64, 128], "id_dim": 64})
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=2500, batch_size=128, lr=2e-3, warmup_steps=50,
                                                                   schedule="cosine", weight_decay=1e-4))
    temperature: float = 0.1
    code_weight: float = 1.0
    attr_weight: float = 30.0  # levels live in [0, 1], so their MSE is far smaller than the code's (MODEL_CARD.md)


# The oracle's fields that differ from its defaults above (the defaults are the cpu profile).
ORACLE_PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {"model": {"dim": 32, "widths": [8, 16, 16, 32], "id_dim": 16},
              "train": {"steps": 40, "batch_size": 32, "lr": 3e-3, "warmup_steps": 4, "schedule": "cosine",
                        "log_every": 10}},
    "cpu": {},
    "gpu": {"model": {"dim": 256, "widths": [32, 64, 128, 256], "id_dim": 128},
            "train": {"steps": 10000, "batch_size": 512, "lr": 2e-3, "warmup_steps": 300, "schedule": "cosine"}},
}


def oracle_config(profile: str | None = None) -> OracleConfig:
    """The scoring oracle of a profile (one per profile, seed 0)."""
    return profile_config_of(OracleConfig, ORACLE_PROFILES, profile, 0)


def plugen_oracle(**model: Any) -> Oracle:
    """The oracle with PluGeN4Faces' heads: identity embedding, identity code and attribute levels
    (the code and level sizes are the world's, not settings, so they are not in the cache key)."""
    return Oracle(**model, n_codes=ID_DIM, n_levels=N_ATTR)


def oracle_loss(model: nn.Module, batch: dict[str, Tensor], cfg: OracleConfig) -> dict[str, Tensor]:
    x = augment(batch["image"].float() / 255, crop_scale=(1.0, 1.0), flip=False, colour=0.1, grey_p=0.0,
                blur_p=0.3, noise=0.02)
    out = model(x)
    ident = supcon_loss(out["emb"], batch["person"], cfg.temperature)
    code = F.mse_loss(out["code"], batch["code"])
    attr = F.mse_loss(out["levels"], batch["levels"])
    return {"loss": ident + cfg.code_weight * code + cfg.attr_weight * attr, "supcon": ident.detach(),
            "code": code.detach(), "attr": attr.detach()}


def _oracle_path_args(profile: str) -> tuple[OracleConfig, DataConfig]:
    return oracle_config(profile), profile_config(profile).data


def train_oracle(profile: str | None = None, *, progress: bool | None = None) -> TrainResult:
    """Train (or load) the profile's oracle: the seed-0 face pool, whole persons per batch."""
    profile = get_profile(profile)
    cfg, d = _oracle_path_args(profile)
    pool = face_pool(d, new_scene=True)
    data = person_batches(len(pool["image"]), d.frames, cfg.train.batch_size // d.frames,
                                  {k: pool[k] for k in ("image", "person", "code", "levels")}, cfg.train.steps)
    return train_or_load("plugen_oracle", plugen_oracle, cfg.model, data, cfg.train, profile=profile,
                         key={"data": d, "cfg": cfg, "new_scene": True}, progress=progress, loss_fn=lambda m, b: oracle_loss(m, b, cfg))


def load_oracle(profile: str | None = None) -> Oracle:
    profile = get_profile(profile)
    cfg, d = _oracle_path_args(profile)
    return load_cached("plugen_oracle", plugen_oracle, cfg.model, cfg.train, key={"data": d, "cfg": cfg, "new_scene": True},
                       profile=profile, what=f"PluGeN4Faces scoring oracle for profile={profile!r}", hint=TRAIN_HINT)


def oracle_quality(oracle: Oracle, d: DataConfig, split: str = "test") -> dict[str, float]:
    """How well the oracle reads held-out test persons (``split="val"``: validation persons):
    verification ROC-AUC between two renders of each person with different attribute levels and
    scenes (impostor: the next person), identity-code R^2 and the attribute-level MAE."""
    params, levels = test_params(d, split=split)
    p2 = apply_levels(params, draw_levels(d.seed + 13, torch.arange(len(params))))
    from facekit.synth.params import sample_params

    scene = sample_params(seed=d.seed + 14, indices=torch.arange(len(params)), identity=params.identity, pose_scale=0.0)
    p2 = p2.replace(background=scene.background, light_azimuth=scene.light_azimuth,
                    light_elevation=scene.light_elevation, light_strength=scene.light_strength, seed=scene.seed)
    world = world_of(d)
    a, b = read(oracle, world.render(params)), read(oracle, world.render(p2))
    genuine, impostor = (a["emb"] * b["emb"]).sum(1), (a["emb"] * b["emb"].roll(1, 0)).sum(1)
    y = torch.cat([torch.ones(len(genuine)), torch.zeros(len(impostor))])
    code = params.identity
    r2 = 1 - float((a["code"] - code).pow(2).sum() / (code - code.mean(0)).pow(2).sum())
    out = {"verify_auc": metrics.roc_auc(y, torch.cat([genuine, impostor])), "code_r2": r2}
    for k, name in enumerate(ATTRIBUTE_NAMES):
        out[f"mae/{name}"] = metrics.mae(levels[:, k], a["levels"][:, k])
    return out


def region_masks(params: FaceParams, d: DataConfig) -> dict[str, Tensor]:
    """Boolean masks of the facial regions of ``params`` rendered in PluGeN's world (its backend's own)."""
    backend = ict if world_of(d).resolved_backend() == "ict" else procedural
    return backend.region_masks(params, d.size, d.framing)


def edit_targets(levels: Tensor) -> Tensor:
    """The far end of each attribute: level 1 where the true level is below 0.5, else 0."""
    return (levels < 0.5).float()


def _outside_scores(edit: Tensor, ref: Tensor, inside: Tensor) -> tuple[float, float]:
    """PSNR over the pixels outside ``inside`` (N x H x W), and SSIM with the inside pasted from
    ``ref`` so only changes outside count."""
    out = (~inside)[:, None].float()
    mse = ((edit - ref).pow(2) * out).flatten(1).sum(1) / (3 * out.flatten(1).sum(1)).clamp_min(1)
    psnr = float((10 * torch.log10(1 / mse.clamp_min(1e-10))).mean())
    pasted = torch.where(inside[:, None], ref, edit)
    return psnr, metrics.ssim(pasted, ref, window_size=7)


@torch.no_grad()
def edit_curves(editor: PlugenEditor, oracle: Oracle, d: DataConfig, seed: int = 0,
                amounts: Sequence[float] = AMOUNTS, methods: Sequence[str] = EDIT_METHODS,
                split: str = "test") -> pd.DataFrame:
    """One row per (method, attribute, amount) on the test faces of ``seed`` (or validation
    faces, ``split="val"``), amount 0 being the unedited reconstruction."""
    params, levels = test_params(d, seed, split)
    images = world_of(d).render(params)
    masks = region_masks(params, d)
    z = editor.encode(images)
    recon = editor.decode(z)
    ref = read(oracle, recon)
    targets = edit_targets(levels)
    rows = []
    for k, attr in enumerate(ATTRIBUTE_NAMES):
        requested = targets[:, k] - levels[:, k]
        inside = (torch.stack([masks[r] for r in EDIT_REGIONS[attr] if r in masks]).any(0)
                  if attr in EDIT_REGIONS else None)
        for method in methods:
            rows.append({"method": method, "attribute": attr, "amount": 0.0, "success": 0.0, "id_cos": 1.0,
                         "code_dist": float((ref["code"] - params.identity).norm(dim=1).mean()),
                         "psnr_out": np.nan, "ssim_out": np.nan})
            for amount in amounts:
                img = editor.decode(editor.edit_latent(z, {attr: targets[:, k]}, method, amount))
                o = read(oracle, img)
                change = (o["levels"][:, k] - ref["levels"][:, k]) * requested.sign()
                row = {"method": method, "attribute": attr, "amount": float(amount),
                       "success": float(change.mean() / requested.abs().mean()),
                       "id_cos": float((o["emb"] * ref["emb"]).sum(1).mean()),
                       "code_dist": float((o["code"] - params.identity).norm(dim=1).mean()),
                       "psnr_out": np.nan, "ssim_out": np.nan}
                if inside is not None:
                    row["psnr_out"], row["ssim_out"] = _outside_scores(img, recon, inside)
                rows.append(row)
    return pd.DataFrame(rows)


def matched_success(curves: pd.DataFrame, values: Sequence[str] = ("id_cos", "code_dist", "amount")) -> pd.DataFrame:
    """Each method's ``values`` at the matched success ``s*`` of every attribute (see the module
    docstring): one row per (attribute, method) with ``s_star``."""
    rows = []
    for attr, per_attr in curves.groupby("attribute", sort=False):
        curves_m = {m: c.sort_values("amount") for m, c in per_attr.groupby("method", sort=False)}
        s_star = max(0.0, min(float(c["success"].max()) for c in curves_m.values()))
        for method, c in curves_m.items():
            s = c["success"].to_numpy()
            i = int(np.argmax(s >= s_star - 1e-12))
            row = {"attribute": attr, "method": method, "s_star": s_star}
            for v in values:
                col = c[v].to_numpy()
                if i == 0:
                    row[v] = float(col[0])
                    continue
                frac = (s_star - s[i - 1]) / max(1e-12, s[i] - s[i - 1])
                row[v] = float(col[i - 1] + frac * (col[i] - col[i - 1]))
            rows.append(row)
    return pd.DataFrame(rows)


@torch.no_grad()
def invertibility(editor: PlugenEditor, z: Tensor) -> dict[str, float]:
    """Relative round-trip error ``|f^-1(f(z)) - z| / |z|`` of each flow on codes ``z``, in
    float64 and float32 (max and mean over codes)."""
    out = {}
    for method, flow in editor.flows.items():
        for name, dtype in (("f64", torch.float64), ("f32", torch.float32)):
            f = copy.deepcopy(flow).to(dtype).eval()
            x = z.to(dtype).to(next(f.parameters()).device)
            back = f.inverse(f(x)[0])
            rel = ((back - x).norm(dim=1) / x.norm(dim=1)).cpu()
            out[f"{method}/{name}/max"] = float(rel.max())
            out[f"{method}/{name}/mean"] = float(rel.mean())
    return out


def run_seed(profile: str | None = None, seed: int = 0, *, progress: bool | None = False,
             log: Callable[[str], None] = print) -> dict[str, float]:
    """Every number of the PluGeN4Faces claims for one seed, as a flat ``{name: value}`` dict
    (the edit curves are in it as ``curve/<method>/<attribute>/<amount>/<value>``)."""
    return run_seed_with_curves(profile, seed, progress=progress, log=log)[0]


def run_seed_with_curves(profile: str | None = None, seed: int = 0, *, progress: bool | None = False,
                         log: Callable[[str], None] = print) -> tuple[dict[str, float], pd.DataFrame]:
    """:func:`run_seed`'s dict and the edit curves as a table (for figures)."""
    profile = get_profile(profile)
    editor, _ = train_and_load(profile, seed, progress=progress)
    log(f"seed {seed}: autoencoder, flows and linear directions ready")
    oracle = train_oracle(profile, progress=progress).model.eval()
    d = editor.cfg.data
    out: dict[str, float] = {f"oracle/{k}": v for k, v in oracle_quality(oracle, d).items()}
    images = test_faces(d, seed)["image"]
    z = editor.encode(images)
    recon = editor.decode(z)
    out["ae/psnr"], out["ae/ssim"] = metrics.psnr(recon, images), metrics.ssim(recon, images, window_size=7)
    out.update({f"P2/{k}": v for k, v in invertibility(editor, z).items()})
    curves = edit_curves(editor, oracle, d, seed)
    curves["seed"] = seed
    for row in curves.itertuples():
        for v in ("success", "id_cos", "code_dist", "psnr_out", "ssim_out"):
            value = getattr(row, v)
            if np.isfinite(value):
                out[f"curve/{row.method}/{row.attribute}/{row.amount:g}/{v}"] = float(value)
    m = matched_success(curves)
    for row in m.itertuples():
        out[f"matched/{row.method}/{row.attribute}/id_cos"] = row.id_cos
        out[f"matched/{row.method}/{row.attribute}/code_dist"] = row.code_dist
        out[f"matched/{row.attribute}/s_star"] = row.s_star
    for method, g in m.groupby("method"):
        out[f"P1/{method}/id_cos"] = float(g["id_cos"].mean())
        out[f"P1/{method}/code_dist"] = float(g["code_dist"].mean())
    local = curves[curves["attribute"].isin(list(EDIT_REGIONS)) & (curves["amount"] == max(AMOUNTS))]
    for method, g in local.groupby("method"):
        out[f"outside/{method}/psnr"] = float(g["psnr_out"].mean())
        out[f"outside/{method}/ssim"] = float(g["ssim_out"].mean())
    log(f"seed {seed}: evaluated")
    return out, curves


# The metric names this method's runs write, per record: ``run_seed`` (above) for the claims record,
# with the verdicts benchmarks/claims.py adds, and the notebook's own record. A scenario naming
# ``record:metric`` is checked against these when it is loaded (facekit.records.check_metric_name):
# ``{a,b}`` is either alternative, ``*`` a part that depends on the profile.
METRICS = {
    "claims_plugen": ("curve/{plugen4faces,plugen,linear}/{age,eyes_closed,glasses,mouth_open,smile,weight,yaw}/*/"
                      "{success,id_cos,code_dist,psnr_out,ssim_out}",
                      "matched/{plugen4faces,plugen,linear}/{age,eyes_closed,glasses,mouth_open,smile,weight,yaw}/"
                      "{id_cos,code_dist}", "matched/{age,eyes_closed,glasses,mouth_open,smile,weight,yaw}/s_star",
                      "P1/{plugen4faces,plugen,linear}/{id_cos,code_dist}", "P1/plugen4faces_minus_{plugen,linear}/{id_cos,code_dist}",
                      "P2/{plugen4faces,plugen}/{f32,f64}/{max,mean}", "P2/max_rel_error_minus_bound", "{P1,P2}/holds",
                      "ae/{psnr,ssim}", "outside/{plugen4faces,plugen,linear}/{psnr,ssim}", "oracle/{code_r2,verify_auc}",
                      "oracle/mae/{age,eyes_closed,glasses,mouth_open,smile,weight,yaw}"),
    "06_identity_aware_editing": ("P1/{plugen4faces,plugen,linear}/{id_cos,code_dist}", "P2/{plugen4faces,plugen}/{f32,f64}/max",
                                  "ae/psnr", "outside/{plugen4faces,plugen,linear}/psnr"),
}
