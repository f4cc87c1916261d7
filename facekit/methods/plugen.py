"""PluGeN4Faces: identity-aware attribute editing with a flow plugged onto a latent space.

Suwała et al., "PluGeN4Faces: Decoupling face attributes from identity", WACV 2024
(arXiv 2309.12033). A conditional invertible flow maps each latent code ``z`` of a generator
to ``u = (u_attr, u_id)``: a few **attribute** dimensions held near their labels, and many
**identity** dimensions with an identity loss that pulls all codes of one person towards that
person's mean. Editing: encode, flow forward, set an attribute dimension, flow back, decode.

What facekit builds, and the choices made where the paper is silent or out of reach:

* **Latent space** (:class:`facekit.models.autoencoder.AutoEncoder`): a 128-d convolutional
  autoencoder trained on 32x32 synthetic faces, in place of StyleGAN (out of reach on 2 CPU
  cores; 32 px keeps the whole claims run near 30 minutes). Real photos are embedded like
  e4e + optimisation: the encoder's code, then a few Adam steps on the reconstruction error.
  Like the paper's pretrained StyleGAN, the autoencoder is trained **once per profile**
  (seed 0) and shared by every seed and method; a seed varies what the paper's runs vary,
  the plugin (flow initialisation and batches), and the held-out test faces it is scored on.
  (It also keeps the 3-seed claims run near 30 minutes on 2 cores.) A linear head reads the
  seven levels from the code during training (``aux_weight`` 0.1): without it the 32-pixel
  reconstruction loss left smile and closed eyes out of the code (a ridge regression on the
  codes explained 3 % and 9 % of their variance, against 88 % for age), so no method could
  edit them.
* **Data** (:func:`face_pool`): ``n_persons`` train persons x ``frames`` frames, like the
  paper's many video frames of one person. A person keeps light, background and clothing
  across frames (one scene, as in a video); the seven attributes change from frame to frame,
  each drawn independently: smile = AU12, mouth open = AU25 + AU26, eyes closed = AU43, age,
  weight (BMI), yaw and glasses. Labels are *levels* in [0, 1] over the trained range
  (:data:`ATTRIBUTES`); the flow's attribute dimensions target ``2 * level - 1``.
* **Flow** (:class:`facekit.models.flows.RealNVP` on zuko): 10 affine couplings with BatchNorm
  between them, as in the official nflows code. Losses, as in the official code:

  - NLL only on the identity dimensions (standard normal prior) plus the log-determinant;
  - a Gaussian NLL on the attribute dimensions around their labels, switched on after
    ``attr_start`` of training (official code: late; here 25 %, since the whole run is a
    few thousand steps) with sigma shrinking geometrically from ``sigma_start`` to
    ``sigma_end`` (1.0 to 0.1), weight ``attr_weight`` = 1;
  - the identity loss (squared distance of each frame's ``u_id`` to its person's mean, per
    dimension), weighted by training progress (the official code multiplies by the epoch):
    ``id_weight * step / steps`` with ``id_weight`` = 1.

  A batch holds ``flow_train.batch_size / frames`` whole persons (all their frames), so the
  person mean exists.
* **Baselines**, same autoencoder, data and codes: (a) PluGeN, the same flow and schedule
  with ``id_weight = 0``; (b) InterFaceGAN-style linear directions: one scikit-learn ridge
  regression per attribute from ``z`` to the level; an edit moves ``z`` along ``w / |w|^2``
  until the regression reads the target. A convex fit on the shared codes, so it is the same
  for every seed (cached under seed 0).
* **Edit strength.** ``edit(images, smile=0.8)`` sets the smile *level* (0 = none, 1 = the
  strongest trained) and leaves the other attributes alone; a level outside [0, 1] is
  clipped with a warning. Every method moves from its own reading of the current level
  (the flow's attribute dimension, the ridge prediction) towards the target, so
  ``amount=0`` is no edit in every method and the comparison curves
  (:mod:`facekit.methods.plugen_eval`) scale ``amount`` from 0 to 1.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import Ridge
from torch import Tensor, nn

from facekit.config import get_profile
from facekit.io import disk_cached, to_uint8
from facekit.models.autoencoder import AutoEncoder
from facekit.models.flows import RealNVP
from facekit.synth.datasets import FACTOR_RANGES, IdentitySplit
from facekit.synth.params import N_AUS, FaceParams, au_index, sample_params
from facekit.synth.render import render
from facekit.synth.rng import hash_uniform
from facekit.train import TrainConfig, TrainResult, cached_path, load_pretrained, train_or_load

METHOD = "plugen"
TRAIN_HINT = ("run notebooks/06_identity_aware_editing.ipynb at this profile, or `facekit train plugen` "
              "(or `python benchmarks/claims.py --method plugen`: cpu profile, seeds 0-2), which train and cache it")
# name -> (what it is, level 0, level 1, unit)
ATTRIBUTES: dict[str, tuple[str, float, float, str]] = {
    "smile": ("AU12 Lip Corner Puller", 0.0, 1.0, "AU intensity"),
    "mouth_open": ("AU25 Lips Part + AU26 Jaw Drop", 0.0, 1.0, "AU intensity"),
    "eyes_closed": ("AU43 Eyes Closed", 0.0, 1.0, "AU intensity"),
    "age": ("age", *FACTOR_RANGES["age"], "years"),
    "weight": ("weight", *FACTOR_RANGES["weight"], "BMI"),
    "yaw": ("head yaw", -30.0, 30.0, "degrees"),
    "glasses": ("glasses", 0.0, 1.0, "0 none, 1 frames"),
}
ATTRIBUTE_NAMES: tuple[str, ...] = tuple(ATTRIBUTES)
N_ATTR = len(ATTRIBUTES)
EDIT_METHODS = ("plugen4faces", "plugen", "linear")
GLASSES_RATE = 0.3


# --------------------------------------------------------------------------- configs


@dataclass
class DataConfig:
    """The synthetic faces every model of a profile trains on, and the held-out test faces."""

    size: int = 32
    n_identities: int = 2000  # 70 % train (1400 persons), 15 % test (300)
    n_persons: int = 800  # train persons in the pool
    frames: int = 8  # frames per person
    n_test: int = 120  # held-out test persons, one frontal face each
    seed: int = 0


@dataclass
class PlugenConfig:
    """Everything that defines the trained models of one seed; parts are hashed into cache keys."""

    data: DataConfig = field(default_factory=DataConfig)
    ae_model: dict[str, Any] = field(default_factory=lambda: {"latent_dim": 128, "size": 32, "widths": [16, 32, 64, 128],
                                                              "n_aux": N_ATTR})
    ae_train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=1000, batch_size=64, lr=2e-3, warmup_steps=50,
                                                                      schedule="cosine", weight_decay=1e-5))
    latent_noise: float = 0.05
    latent_l2: float = 1e-3
    aux_weight: float = 0.1  # attribute levels read from the code by a linear head (see the docstring)
    flow_model: dict[str, Any] = field(default_factory=lambda: {"features": 128, "transforms": 10, "hidden": 256})
    flow_train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=1500, batch_size=128, lr=1e-3, warmup_steps=50,
                                                                        schedule="cosine", weight_decay=1e-5))
    id_weight: float = 1.0
    attr_weight: float = 1.0
    attr_start: float = 0.25
    sigma_start: float = 1.0
    sigma_end: float = 0.1
    ridge_alpha: float = 1.0


def profile_config(profile: str | None = None, seed: int = 0) -> PlugenConfig:
    """``smoke`` (seconds), ``cpu`` (the teaching default), ``gpu`` (64 px, longer)."""
    profile = get_profile(profile)
    if profile == "smoke":
        cfg = PlugenConfig(
            data=DataConfig(n_identities=300, n_persons=48, frames=4, n_test=24),
            ae_model={"latent_dim": 32, "size": 32, "widths": [8, 16, 16, 32], "n_aux": N_ATTR},
            ae_train=TrainConfig(steps=40, batch_size=32, lr=3e-3, warmup_steps=4, schedule="cosine", log_every=10),
            flow_model={"features": 32, "transforms": 4, "hidden": 64},
            flow_train=TrainConfig(steps=40, batch_size=32, lr=1e-3, warmup_steps=4, schedule="cosine", log_every=10),
        )
    elif profile == "gpu":
        cfg = PlugenConfig(
            data=DataConfig(size=64, n_identities=20000, n_persons=10000, frames=16, n_test=1000),
            ae_model={"latent_dim": 256, "size": 64, "widths": [32, 64, 128, 256], "n_aux": N_ATTR},
            ae_train=TrainConfig(steps=20000, batch_size=256, lr=2e-3, warmup_steps=500, schedule="cosine"),
            flow_model={"features": 256, "transforms": 10, "hidden": 512},
            flow_train=TrainConfig(steps=20000, batch_size=512, lr=1e-3, warmup_steps=500, schedule="cosine"),
        )
    else:
        cfg = PlugenConfig()
    cfg.flow_train.seed = seed  # the autoencoder (ae_train.seed = 0) is shared by every seed
    return cfg


# ------------------------------------------------------------------------------ data


def apply_levels(base: FaceParams, levels: Tensor) -> FaceParams:
    """``base`` with the seven attributes set from ``levels`` (N x 7 in [0, 1]); other AUs off."""
    lv = levels.float().clamp(0, 1)
    au = torch.zeros(len(base), N_AUS)
    au[:, au_index("AU12")] = lv[:, 0]
    au[:, au_index("AU25")] = lv[:, 1]
    au[:, au_index("AU26")] = lv[:, 1]
    au[:, au_index("AU43")] = lv[:, 2]
    phys = {name: ATTRIBUTES[name][1] + (ATTRIBUTES[name][2] - ATTRIBUTES[name][1]) * lv[:, k]
            for k, name in enumerate(ATTRIBUTE_NAMES) if k >= 3}
    return base.replace(au=au, age=phys["age"], weight=phys["weight"], yaw=phys["yaw"],
                        glasses=(phys["glasses"] > 0.5).float())


def draw_levels(seed: int, idx: Tensor) -> Tensor:
    """Independent attribute levels per frame: uniform in [0, 1], glasses 0/1 (30 % on)."""
    u = torch.stack([hash_uniform(seed, idx, 300 + k) for k in range(N_ATTR)], 1)
    u[:, ATTRIBUTE_NAMES.index("glasses")] = (u[:, ATTRIBUTE_NAMES.index("glasses")] < GLASSES_RATE).float()
    return u


def _persons(d: DataConfig, split: str, n: int) -> Tensor:
    ids = IdentitySplit(d.n_identities).ids(split)
    if n > len(ids):
        raise ValueError(f"{n} {split} persons requested but the split has {len(ids)}; raise n_identities")
    return ids[:n]


def face_pool(d: DataConfig, new_scene: bool = False) -> dict[str, Tensor]:
    """The training faces: ``n_persons`` train persons x ``frames`` frames, person-major.

    Keys: ``image`` (uint8), ``levels`` (N x 7), ``person`` and ``code`` (identity code).
    One scene per person (light, background, clothing fixed) and attributes varying per frame;
    ``new_scene=True`` draws a new scene for every frame too (the scoring oracle's data, so it
    cannot recognise a person by the backdrop).
    """
    def make() -> dict[str, Tensor]:
        persons = _persons(d, "train", d.n_persons)
        person = persons.repeat_interleave(d.frames)
        codes = IdentitySplit(d.n_identities).codes(person)
        frame = torch.arange(len(person))
        scene = sample_params(seed=d.seed + 5 if new_scene else d.seed, indices=frame if new_scene else person,
                              identity=codes, pose_scale=0.0)
        levels = draw_levels(d.seed + 1, frame)
        params = apply_levels(scene, levels)
        images = torch.cat([render(params[i:i + 512], d.size) for i in range(0, len(params), 512)])
        return {"image": to_uint8(images), "levels": levels, "person": person, "code": codes}

    key = {"data": d, "v": 1, **({"new_scene": True} if new_scene else {})}
    return disk_cached("plugen-pool", key, make)


def _test_persons(d: DataConfig, seed: int, split: str = "test") -> Tensor:
    ids = IdentitySplit(d.n_identities).ids(split)
    if d.n_test > len(ids):
        raise ValueError(f"n_test={d.n_test} but the {split} split has {len(ids)} persons; raise n_identities")
    return ids[torch.argsort(hash_uniform(d.seed + 1000 * seed, ids, 21))[:d.n_test]].sort().values


def test_params(d: DataConfig, seed: int = 0, split: str = "test") -> tuple[FaceParams, Tensor]:
    """``n_test`` held-out test persons drawn by ``seed``, one frontal face each (so facial-region
    masks apply), with random levels of every attribute but yaw (0 degrees, level 0.5).
    ``split="val"`` draws validation persons instead, for choosing settings."""
    persons = _test_persons(d, seed, split)
    codes = IdentitySplit(d.n_identities).codes(persons)
    s = d.seed + 1000 * seed
    scene = sample_params(seed=s + 11, indices=persons, identity=codes, pose_scale=0.0)
    levels = draw_levels(s + 12, torch.arange(len(persons)))
    levels[:, ATTRIBUTE_NAMES.index("yaw")] = 0.5
    return apply_levels(scene, levels).replace(pitch=0.0, roll=0.0), levels


def test_faces(d: DataConfig, seed: int = 0) -> dict[str, Tensor]:
    """:func:`test_params` rendered (float images, levels, person, identity code)."""
    params, levels = test_params(d, seed)
    return {"image": render(params, d.size), "levels": levels, "person": _test_persons(d, seed),
            "code": params.identity}


def _to_target(levels: Tensor) -> Tensor:
    return 2 * levels - 1


# ----------------------------------------------------------------------------- models


class PlugenFlow(nn.Module):
    """The plugin: a RealNVP whose first ``n_attr`` output dimensions are the attributes."""

    def __init__(self, features: int = 128, transforms: int = 10, hidden: int = 256, n_attr: int = N_ATTR) -> None:
        super().__init__()
        if not 0 < n_attr < features:
            raise ValueError(f"n_attr={n_attr} is not valid for {features} features; pass 1 to {features - 1}")
        self.n_attr = n_attr
        self.flow = RealNVP(features, transforms, hidden)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return self.flow(z)

    def inverse(self, u: Tensor) -> Tensor:
        return self.flow.inverse(u)


class LinearDirections(nn.Module):
    """InterFaceGAN-style directions: ``level ~ z @ weight.T + bias`` per attribute (weights
    fitted by scikit-learn ridge, stored as buffers so they load from safetensors)."""

    def __init__(self, features: int = 128, n_attr: int = N_ATTR) -> None:
        super().__init__()
        self.register_buffer("weight", torch.zeros(n_attr, features))
        self.register_buffer("bias", torch.zeros(n_attr))

    def forward(self, z: Tensor) -> Tensor:
        return z @ self.weight.T + self.bias


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
    z, target, progress = batch["z"], _to_target(batch["levels"]), float(batch["progress"])
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


# --------------------------------------------------------------------------- training


def _key(cfg: PlugenConfig, part: str) -> dict[str, Any]:
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


def _paths(cfg: PlugenConfig, profile: str) -> dict[str, Path]:
    ae_seed, seed = cfg.ae_train.seed, cfg.flow_train.seed
    return {
        "ae": cached_path("plugen_ae", profile, ae_seed, {"model": cfg.ae_model, "train": cfg.ae_train,
                                                          "key": _key(cfg, "ae")}),
        **{m: cached_path(f"plugen_flow_{m}", profile, seed, {"model": {**cfg.flow_model, "n_attr": N_ATTR},
                                                              "train": cfg.flow_train, "key": _key(cfg, m)})
           for m in ("plugen4faces", "plugen")},
        "linear": cached_path("plugen_linear", profile, ae_seed, _key(cfg, "linear")),
    }


@torch.no_grad()
def encode_all(ae: AutoEncoder, images: Tensor, batch: int = 512) -> Tensor:
    """Codes of uint8 or float images, in batches."""
    ae.eval()
    device = next(ae.parameters()).device
    outs = []
    for i in range(0, len(images), batch):
        x = images[i:i + batch]
        x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
        outs.append(ae.encode(x.to(device)).cpu())
    return torch.cat(outs)


def _person_batches(pool_size: int, frames: int, persons: int, extra: Mapping[str, Tensor],
                    steps: int) -> Callable[[int], dict[str, Any]]:
    n_persons = pool_size // frames
    if not 1 <= persons <= n_persons:
        raise ValueError(f"a flow batch of {persons} persons (batch_size / frames) is not valid; the pool has "
                         f"{n_persons} persons of {frames} frames")

    def data(step: int) -> dict[str, Any]:
        who = torch.randperm(n_persons)[:persons]
        idx = (who[:, None] * frames + torch.arange(frames)).reshape(-1)
        return {**{k: v[idx] for k, v in extra.items()}, "frames": frames, "progress": step / steps}

    return data


def train_parts(profile: str | None = None, seed: int = 0, cfg: PlugenConfig | None = None, *,
                progress: bool | None = None) -> dict[str, TrainResult]:
    """Train (or load) the autoencoder, both flows and the linear directions of one seed."""
    profile = get_profile(profile)
    cfg = cfg or profile_config(profile, seed)
    if cfg.flow_model["features"] != cfg.ae_model["latent_dim"]:
        raise ValueError(f"flow_model.features={cfg.flow_model['features']} must equal ae_model.latent_dim="
                         f"{cfg.ae_model['latent_dim']}")
    pool = face_pool(cfg.data)
    images = pool["image"]

    def ae_data(step: int) -> dict[str, Tensor]:
        idx = torch.randint(0, len(images), (cfg.ae_train.batch_size,))
        return {"image": images[idx], "levels": pool["levels"][idx]}

    out = {"ae": train_or_load("plugen_ae", AutoEncoder, cfg.ae_model, ae_data, cfg.ae_train, profile=profile,
                               key=_key(cfg, "ae"), progress=progress,
                               loss_fn=lambda m, b: ae_loss(m, b, cfg))}
    ae = out["ae"].model
    paths = _paths(cfg, profile)
    need_codes = not all((paths[m] / "model.safetensors").is_file() for m in ("plugen4faces", "plugen", "linear"))
    codes = encode_all(ae, images) if need_codes else torch.zeros(0)
    for name in ("plugen4faces", "plugen"):
        data = _person_batches(len(images), cfg.data.frames, cfg.flow_train.batch_size // cfg.data.frames, {"z": codes, "levels": pool["levels"]},
                               cfg.flow_train.steps)
        weight = cfg.id_weight if name == "plugen4faces" else 0.0
        out[name] = train_or_load(f"plugen_flow_{name}", PlugenFlow, {**cfg.flow_model, "n_attr": N_ATTR}, data,
                                  cfg.flow_train, profile=profile, key=_key(cfg, name), progress=progress,
                                  loss_fn=lambda m, b, w=weight: flow_loss(m, b, cfg, w))
    out["linear"] = _fit_linear(cfg, paths["linear"], codes, pool["levels"])
    return out


def _fit_linear(cfg: PlugenConfig, path: Path, codes: Tensor, levels: Tensor) -> TrainResult:
    from facekit.train import save_pretrained

    config = {"features": cfg.ae_model["latent_dim"], "n_attr": N_ATTR}
    if (path / "model.safetensors").is_file():
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


# ----------------------------------------------------------------------------- editor


@dataclass
class PlugenTrainResult:
    """What :func:`train_and_load` returns beside the editor: each part's log, and whether
    every part came from the cache."""

    parts: dict[str, TrainResult]

    @property
    def loaded(self) -> bool:
        return all(r.loaded for r in self.parts.values())

    @property
    def history(self) -> dict[str, list[dict[str, float]]]:
        return {k: r.history for k, r in self.parts.items()}


class PlugenEditor:
    """Edit face attributes of images: ``editor.edit(images, smile=0.9, age=0.2)``.

    ``method`` picks the latent editor: ``"plugen4faces"`` (identity-aware flow, default),
    ``"plugen"`` (the flow trained without the identity term) or ``"linear"``.
    """

    def __init__(self, ae: AutoEncoder, flows: Mapping[str, PlugenFlow], linear: LinearDirections,
                 cfg: PlugenConfig, profile: str, seed: int) -> None:
        self.ae, self.flows, self.linear = ae.eval(), {k: f.eval() for k, f in flows.items()}, linear.eval()
        self.cfg, self.profile, self.seed = cfg, profile, seed
        self.attributes: list[str] = list(ATTRIBUTE_NAMES)
        self.methods: list[str] = list(EDIT_METHODS)
        self.size = ae.size

    @property
    def device(self) -> torch.device:
        return next(self.ae.parameters()).device

    # -- latent space ---------------------------------------------------------------
    def _images(self, images: Tensor) -> Tensor:
        x = torch.as_tensor(images)
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"images has shape {tuple(x.shape)}; pass N x 3 x H x W floats in [0, 1]")
        if x.dtype == torch.uint8:
            return x.float() / 255
        if x.numel() and (float(x.min()) < 0 or float(x.max()) > 1):
            raise ValueError(f"images range from {float(x.min()):.3g} to {float(x.max()):.3g}; pass floats in [0, 1]")
        return x.float()

    @torch.no_grad()
    def encode(self, images: Tensor) -> Tensor:
        return encode_all(self.ae, self._images(images)).to(self.device)

    @torch.no_grad()
    def decode(self, z: Tensor) -> Tensor:
        return torch.cat([self.ae.decode(z[i:i + 512].to(self.device)) for i in range(0, len(z), 512)]).cpu()

    def embed(self, images: Tensor, optimise_steps: int = 50, lr: float = 0.03, anchor: float = 0.1) -> Tensor:
        """Codes of (real) images: the encoder's guess, then ``optimise_steps`` Adam steps on the
        reconstruction MSE plus ``anchor * mean((z - z_encoder)^2)`` (e4e + optimisation).

        The anchor keeps the code where the flows were trained: at ``anchor=1e-3`` 100 steps on
        ``skimage.data.astronaut()`` left the training codes (flow outputs up to 19 against
        about 7) and both flows' inverses overflowed; at 0.1 the reconstruction error was
        nearly as low (MSE 0.014 against 0.012) and the edits stayed finite."""
        if not isinstance(optimise_steps, int) or optimise_steps < 0:
            raise ValueError(f"optimise_steps={optimise_steps!r} is not valid; pass an int >= 0")
        x = self._images(images)
        z0 = self.encode(x)
        if optimise_steps == 0:
            return z0
        target = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True,
                               align_corners=False).to(self.device) if x.shape[-1] != self.size else x.to(self.device)
        z = z0.clone().requires_grad_(True)
        opt = torch.optim.Adam([z], lr=lr)
        for p in self.ae.parameters():
            p.requires_grad_(False)
        try:
            for _ in range(optimise_steps):
                loss = F.mse_loss(self.ae.decode(z), target) + anchor * (z - z0).pow(2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
        finally:
            for p in self.ae.parameters():
                p.requires_grad_(True)
        return z.detach()

    # -- editing --------------------------------------------------------------------
    def check_levels(self, levels: Mapping[str, float]) -> dict[str, float]:
        """Validate attribute names; clip levels to [0, 1] with a warning that says so."""
        unknown = [k for k in levels if k not in self.attributes]
        if unknown:
            raise ValueError(f"unknown attribute(s) {unknown}; this editor was trained on {self.attributes}")
        out = {}
        for name, value in levels.items():
            v = float(value)
            if not math.isfinite(v):
                raise ValueError(f"{name}={value!r} is not valid; pass a level in [0, 1]")
            if not 0 <= v <= 1:
                lo, hi = ATTRIBUTES[name][1:3]
                warnings.warn(f"{name}={v:g} is outside the trained range [0, 1] (level 0 = {lo:g}, 1 = {hi:g} "
                              f"{ATTRIBUTES[name][3]}); clipped to {min(1.0, max(0.0, v)):g}", stacklevel=3)
                v = min(1.0, max(0.0, v))
            out[name] = v
        return out

    def readout(self, z: Tensor, method: str = "plugen4faces") -> Tensor:
        """The method's own reading of each attribute level (N x 7)."""
        self._check_method(method)
        with torch.no_grad():
            if method == "linear":
                return self.linear(z.to(self.device)).cpu()
            u, _ = self.flows[method](z.to(self.device))
            return ((u[:, :N_ATTR] + 1) / 2).cpu()

    @torch.no_grad()
    def edit_latent(self, z: Tensor, levels: Mapping[str, float | Tensor], method: str = "plugen4faces",
                    amount: float = 1.0) -> Tensor:
        """Move codes ``amount`` of the way from the method's reading to the target ``levels``
        (a float or a per-face tensor per attribute; not validated here, see :meth:`edit`)."""
        self._check_method(method)
        z = z.to(self.device)
        if method == "linear":
            w = self.linear.weight
            for name, level in levels.items():
                k = ATTRIBUTE_NAMES.index(name)
                now = self.linear(z)[:, k]
                step = amount * (torch.as_tensor(level, dtype=z.dtype, device=z.device) - now)
                z = z + step[:, None] * (w[k] / w[k].pow(2).sum())[None]
            return z
        flow = self.flows[method]
        u, _ = flow(z)
        for name, level in levels.items():
            k = ATTRIBUTE_NAMES.index(name)
            target = _to_target(torch.as_tensor(level, dtype=u.dtype, device=u.device))
            u[:, k] = u[:, k] + amount * (target - u[:, k])
        out = flow.inverse(u)
        bad = ~torch.isfinite(out).all(1)
        if bad.any():
            warnings.warn(f"the {method} flow's inverse overflowed for {int(bad.sum())} of {len(z)} codes (far from "
                          "the codes it was trained on, e.g. a real photo optimised too far); those are returned "
                          "unedited", stacklevel=2)
            out = torch.where(bad[:, None], z, out)
        return out

    def edit(self, images: Tensor, method: str = "plugen4faces", optimise_steps: int = 0,
             **levels: float) -> Tensor:
        """Edited images (``N x 3 x size x size``) with each named attribute set to its level.

        ``images``: ``N x 3 x H x W`` in [0, 1], any size (resized to the model's). Unknown
        attributes raise ``ValueError`` listing :attr:`attributes`; levels outside [0, 1] are
        clipped with a warning. ``optimise_steps > 0`` refines the codes (for real photos).
        """
        levels = self.check_levels(levels)
        z = self.embed(images, optimise_steps)
        return self.decode(self.edit_latent(z, levels, method))

    def edit_photos(self, sources: Any, method: str = "plugen4faces", optimise_steps: int = 100,
                    fallback: Any = None, min_face: int = 24, **levels: float) -> tuple[Tensor, Tensor, list[Any]]:
        """Real photos (paths, arrays, ...): find and crop the face, embed, edit.

        Returns ``(crops, edited, records)``; a photo with no face found is reported in its
        record (and in a warning) and not edited, unless ``fallback`` (see
        :func:`facekit.real.align_faces`) says what to crop instead.
        """
        from facekit.real import align_faces

        levels = self.check_levels(levels)
        crops, records = align_faces(sources, size=self.size, fallback=fallback, min_face=min_face)
        missing = [f"{r.source}: {r.reason}" for r in records if r.status not in ("ok", "fallback")]
        if missing:
            warnings.warn("not edited (no face found): " + "; ".join(missing), stacklevel=2)
        if len(crops) == 0:
            return crops, crops, records
        z = self.embed(crops, optimise_steps)
        return crops, self.decode(self.edit_latent(z, levels, method)), records

    def _check_method(self, method: str) -> None:
        if method not in EDIT_METHODS:
            raise ValueError(f"method={method!r} is not valid; choose one of {list(EDIT_METHODS)}")


def load(profile: str | None = None, seed: int = 0, device: str | torch.device | None = None,
         cfg: PlugenConfig | None = None) -> PlugenEditor:
    """The trained editor of a profile and seed, from the cache only (the Analyzer calls this).

    Raises ``FileNotFoundError`` naming the notebook and command that train it.
    """
    profile = get_profile(profile)
    cfg = cfg or profile_config(profile, seed)
    paths = _paths(cfg, profile)
    for part, path in paths.items():
        if not (path / "model.safetensors").is_file():
            raise FileNotFoundError(f"no trained PluGeN4Faces {part} for profile={profile!r}, seed={seed} at {path}; "
                                    f"{TRAIN_HINT}")
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
    return PlugenEditor(parts["ae"].model, flows, parts["linear"].model, cfg, profile, seed), PlugenTrainResult(parts)


def levels_to_units(name: str, level: float | np.ndarray) -> float | np.ndarray:
    """A level in [0, 1] in the attribute's own units (years, BMI, degrees, ...)."""
    if name not in ATTRIBUTES:
        raise ValueError(f"unknown attribute {name!r}; valid attributes are {list(ATTRIBUTE_NAMES)}")
    lo, hi = ATTRIBUTES[name][1:3]
    return lo + (hi - lo) * level


__all__ = [
    "ATTRIBUTES",
    "ATTRIBUTE_NAMES",
    "EDIT_METHODS",
    "DataConfig",
    "LinearDirections",
    "PlugenConfig",
    "PlugenEditor",
    "PlugenFlow",
    "PlugenTrainResult",
    "ae_loss",
    "apply_levels",
    "face_pool",
    "flow_loss",
    "load",
    "profile_config",
    "test_faces",
    "train_and_load",
    "train_parts",
]
