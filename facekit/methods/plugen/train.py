"""The losses and training of the autoencoder, the two flows and the linear directions."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import Ridge
from torch import Tensor, nn

from facekit.config import get_profile
from facekit.methods.common import PoolSampler
from facekit.methods.plugen.config import (
    ATTRIBUTE_NAMES,
    N_ATTR,
    TRAIN_HINT,
    PlugenConfig,
    profile_config,
    to_target,
)
from facekit.methods.plugen.data import face_pool, person_batches
from facekit.methods.plugen.model import LinearDirections, PlugenEditor, PlugenFlow, encode_all
from facekit.models.autoencoder import AutoEncoder
from facekit.train import (
    TrainResult,
    cached_path,
    is_cached,
    load_pretrained,
    require_cached,
    save_pretrained,
    train_or_load,
)


def ae_loss(model: nn.Module, batch: dict[str, Tensor], cfg: PlugenConfig) -> dict[str, Tensor]:
    """Reconstruction MSE from a noised code, a small L2 penalty on the code and, when the
    autoencoder has a label head, the MSE of the attribute levels it reads from the code."""
    net = model.module if hasattr(model, "module") else model
    x = batch["image"].float() / 255
    z = net.encode(x)
    rec = net.decode(z + cfg.latent_noise * torch.randn_like(z))
    mse = F.mse_loss(rec, x)
    reg = z.pow(2).mean()
    aux = F.mse_loss(net.aux(z), batch["levels"]) if net.aux is not None else torch.zeros(())
    return {"loss": mse + cfg.latent_l2 * reg + cfg.aux_weight * aux, "mse": mse.detach(), "code_l2": reg.detach(),
            "aux": aux.detach()}


def flow_loss(model: nn.Module, batch: dict[str, Any], cfg: PlugenConfig, id_weight: float) -> dict[str, Tensor]:
    """The PluGeN4Faces objective, per latent dimension (see the module docstring)."""
    z, target, progress = batch["z"], to_target(batch["levels"]), float(batch["progress"])
    u, ladj = model(z)
    d, k = z.shape[1], target.shape[1]
    u_attr, u_id = u[:, :k], u[:, k:]
    nll = (0.5 * u_id.pow(2).sum(1) - ladj).mean() / d
    group = u_id.view(-1, batch["frames"], u_id.shape[1])
    ident = (group - group.mean(1, keepdim=True)).pow(2).sum(-1).mean() / d
    loss = nll + id_weight * progress * ident
    attr = torch.zeros(())
    if progress >= cfg.attr_start:
        t = (progress - cfg.attr_start) / max(1e-8, 1 - cfg.attr_start)
        sigma = cfg.sigma_start * (cfg.sigma_end / cfg.sigma_start) ** t
        attr = (0.5 * ((u_attr - target) / sigma).pow(2) + math.log(sigma)).sum(1).mean() / d
        loss = loss + cfg.attr_weight * attr
    return {"loss": loss, "nll": nll.detach(), "identity": ident.detach(), "attr": attr.detach()}


def part_key(cfg: PlugenConfig, part: str) -> dict[str, Any]:
    """What besides the model and train configs changes a part's weights."""
    ae = {"data": cfg.data, "noise": cfg.latent_noise, "l2": cfg.latent_l2, "aux": cfg.aux_weight, "ae": cfg.ae_model,
          "ae_train": cfg.ae_train}
    if part == "ae":
        return ae
    flow = {**ae, "attr_weight": cfg.attr_weight, "attr_start": cfg.attr_start,
            "sigma": (cfg.sigma_start, cfg.sigma_end)}
    if part == "linear":
        return {**ae, "ridge_alpha": cfg.ridge_alpha, "calibrated": True}
    return {**flow, "id_weight": cfg.id_weight if part == "plugen4faces" else 0.0}


def part_paths(cfg: PlugenConfig, profile: str) -> dict[str, Path]:
    ae_seed, seed = cfg.ae_train.seed, cfg.flow_train.seed
    return {
        "ae": cached_path("plugen_ae", profile, ae_seed, {"model": cfg.ae_model, "train": cfg.ae_train,
                                                          "key": part_key(cfg, "ae")}),
        **{m: cached_path(f"plugen_flow_{m}", profile, seed, {"model": {**cfg.flow_model, "n_attr": N_ATTR},
                                                              "train": cfg.flow_train, "key": part_key(cfg, m)})
           for m in ("plugen4faces", "plugen")},
        "linear": cached_path("plugen_linear", profile, ae_seed, part_key(cfg, "linear")),
    }


def train_parts(profile: str | None = None, seed: int = 0, cfg: PlugenConfig | None = None, *,
                progress: bool | None = None) -> dict[str, TrainResult]:
    """Train (or load) the autoencoder, both flows and the linear directions of one seed."""
    profile = get_profile(profile)
    cfg = cfg or profile_config(profile, seed)
    if cfg.flow_model["features"] != cfg.ae_model["latent_dim"]:
        raise ValueError(f"flow_model.features={cfg.flow_model['features']} must equal ae_model.latent_dim="
                         f"{cfg.ae_model['latent_dim']}")
    if cfg.ae_model["size"] != cfg.data.size:
        raise ValueError(f"ae_model.size={cfg.ae_model['size']} must equal data.size={cfg.data.size} (the autoencoder "
                         "reconstructs the pool's faces)")
    pool = face_pool(cfg.data)
    images = pool["image"]

    ae_data = PoolSampler(pool, cfg.ae_train.batch_size, keys=("image", "levels"))
    out = {"ae": train_or_load("plugen_ae", AutoEncoder, cfg.ae_model, ae_data, cfg.ae_train, profile=profile,
                               key=part_key(cfg, "ae"), progress=progress,
                               loss_fn=lambda m, b: ae_loss(m, b, cfg))}
    ae = out["ae"].model
    paths = part_paths(cfg, profile)
    need_codes = not all(is_cached(paths[m]) for m in ("plugen4faces", "plugen", "linear"))
    codes = encode_all(ae, images) if need_codes else torch.zeros(0)
    for name in ("plugen4faces", "plugen"):
        data = person_batches(len(images), cfg.data.frames, cfg.flow_train.batch_size // cfg.data.frames, {"z": codes, "levels": pool["levels"]},
                               cfg.flow_train.steps)
        weight = cfg.id_weight if name == "plugen4faces" else 0.0
        out[name] = train_or_load(f"plugen_flow_{name}", PlugenFlow, {**cfg.flow_model, "n_attr": N_ATTR}, data,
                                  cfg.flow_train, profile=profile, key=part_key(cfg, name), progress=progress,
                                  loss_fn=lambda m, b, w=weight: flow_loss(m, b, cfg, w))
    out["linear"] = _fit_linear(cfg, paths["linear"], codes, pool["levels"])
    return out


def _fit_linear(cfg: PlugenConfig, path: Path, codes: Tensor, levels: Tensor) -> TrainResult:
    config = {"features": cfg.ae_model["latent_dim"], "n_attr": N_ATTR}
    if is_cached(path):
        return TrainResult(load_pretrained(LinearDirections, path), [], 0, path, loaded=True)
    model = LinearDirections(**config)
    x, y = codes.double().numpy(), levels.double().numpy()
    normal = Ridge(alpha=cfg.ridge_alpha).fit(x, y).coef_
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    proj = x @ normal.T  # the codes' positions along each attribute's normal
    log = {"step": 0}
    for k, name in enumerate(ATTRIBUTE_NAMES):  # level ~ a * position + b, fitted along the normal
        a, b = np.polyfit(proj[:, k], y[:, k], 1)
        model.weight[k] = torch.as_tensor(a * normal[k], dtype=torch.float32)
        model.bias[k] = float(b)
        log[f"r2/{name}"] = float(1 - np.var(y[:, k] - (a * proj[:, k] + b)) / np.var(y[:, k]))
    save_pretrained(model, config, path)
    return TrainResult(model, [log], 0, path)


@dataclass
class PlugenTrainResult(TrainResult):
    """What :func:`train_and_load` returns beside the editor: a :class:`~facekit.train.TrainResult`
    of the PluGeN4Faces flow whose ``history`` maps each part (``ae``, ``plugen4faces``,
    ``plugen``, ``linear``) to its log, ``parts`` each part's own result, and ``loaded`` whether
    every part came from the cache."""

    history: dict[str, list[dict[str, float]]]  # type: ignore[assignment]
    parts: dict[str, TrainResult] = field(default_factory=dict)

    @classmethod
    def of(cls, parts: dict[str, TrainResult]) -> PlugenTrainResult:
        main = parts["plugen4faces"]
        return cls(model=main.model, history={k: r.history for k, r in parts.items()}, step=main.step,
                   run_dir=main.run_dir, loaded=all(r.loaded for r in parts.values()), parts=parts)


def load(profile: str | None = None, seed: int = 0, *, device: str | torch.device | None = None,
         cfg: PlugenConfig | None = None) -> PlugenEditor:
    """The trained editor of a profile and seed, from the cache only (the Analyzer calls this).

    Raises ``FileNotFoundError`` naming the notebook and command that train it.
    """
    profile = get_profile(profile)
    cfg = cfg or profile_config(profile, seed)
    paths = {part: require_cached(path, f"PluGeN4Faces {part} for profile={profile!r}, seed={seed}", TRAIN_HINT)
             for part, path in part_paths(cfg, profile).items()}
    ae = load_pretrained(AutoEncoder, paths["ae"], device=device)
    flows = {m: load_pretrained(PlugenFlow, paths[m], device=device) for m in ("plugen4faces", "plugen")}
    return PlugenEditor(ae, flows, load_pretrained(LinearDirections, paths["linear"], device=device), cfg, profile, seed)


def train_and_load(profile: str | None = None, seed: int = 0, *, progress: bool | None = None,
                   cfg: PlugenConfig | None = None) -> tuple[PlugenEditor, PlugenTrainResult]:
    """Load every part if cached, else train it; return the editor and the training logs."""
    profile = get_profile(profile)
    cfg = cfg or profile_config(profile, seed)
    parts = train_parts(profile, seed, cfg, progress=progress)
    flows = {m: parts[m].model for m in ("plugen4faces", "plugen")}
    return PlugenEditor(parts["ae"].model, flows, parts["linear"].model, cfg, profile, seed), PlugenTrainResult.of(parts)
