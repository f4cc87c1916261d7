"""SynFER: a diffusion model conditioned on text and Action Units makes labelled expression data.

He et al., "SynFER: Towards Boosting Facial Expression Recognition with Synthetic Data",
ICCV 2025 (arXiv 2410.09865). The paper fine-tunes a diffusion model on faces paired with
captions and AU labels (FEText), steers it with an AU adapter and with *semantic guidance*
by an expression classifier, relabels its output with a diffusion-feature *label
calibrator* (FERAnno), and trains expression recognisers on the synthetic data.

The setting here. The "real" domain is the target style on persons of a world of their own
(``DataConfig.world_seed``; no other notebook uses them): a large unlabelled pool (train
persons), a small labelled set of 8 classes (neutral + 7 EMFACS emotions, ``n_labelled`` per
class, drawn per seed from validation persons) and a test set of test persons.

Teaching-scale choices (the paper is silent or its scale does not fit a 2-core CPU):

* **Pixel-space DDPM at 32x32** at ``cpu`` (64x64 at ``gpu``), a ~1.1M-parameter diffusers
  ``UNet2DConditionModel`` with attention only at the coarsest level (attention at 16x16 cost
  more than every convolution on a CPU). A latent model would need an autoencoder trained
  first; at 32x32 pixels are already cheap. DDIM with 10 steps at ``cpu``. The UNet predicts
  the clean image (``prediction_type="sample"``), not the noise: at the ``cpu`` budget a
  noise-predicting model still sampled coloured noise after 200 steps, while a clean-image
  predictor gives coherent (if smooth) faces early; ``gpu`` can switch back to ``"epsilon"``.
  Faces are framed on the inner face (``DataConfig.framing``), as FER datasets are; the first
  ``cpu`` run used a looser crop and 600 steps, and its generator had not learned its
  conditioning (dropping caption and AUs changed its clean-image prediction by under 1%).
  The UNet now also gets the pooled text and AU tokens through its timestep embedding
  (``global_cond``, :class:`facekit.models.diffusion.ConditionalUNet`), and trains 3,000 steps;
  :func:`facekit.methods.synfer_downstream.conditioning_gain` measures how much it uses them.
* **Weak AU labels**: the pool's AUs come from the FMAE-IAT detector
  (:func:`facekit.methods.fmae_iat.load`) when one is cached and covers all 17 AUs the
  generator is conditioned on; otherwise from the ground truth, and every record says which
  and why (``au_labels``; the ``cpu`` detector covers the 12 BP4D AUs only). Age, weight, glasses and pose for the
  captions are the renderer's ground truth (attribute estimators are not part of this issue).
* **Text encoder**: a word tokenizer over the caption writer's vocabulary and a one-layer
  transformer trained with the UNet (:mod:`facekit.methods.synfer_captions`), not CLIP.
* **One generator for every seed at ``cpu``** (``GeneratorConfig.seed = 0``): a diffusion
  model is the dominant cost (3,000 steps of batch 32 took 39 minutes on one thread of the
  2-core machine, shared with three other jobs), and the claims
  are about what the *synthetic data* does downstream. Seeds vary the labelled subset, the
  generation noise and prompts, and every classifier. At ``gpu`` each seed trains its own.
* **Label calibrator**: logistic regression on the UNet's pooled middle- and up-block
  features at timestep 200 (fixed noise, empty prompt), trained on the small labelled set;
  its probabilities are averaged with the expression classifier's. A generated image whose
  vote disagrees with its prompt's class is relabelled when the vote's confidence reaches
  ``calib_threshold``, else dropped.
* **Oracle** (an independent judge, trained once per profile on renders of yet another world):
  emotion accuracy, AU activation (when no FMAE detector is cached) and the feature space of
  the Fréchet distance ("synfer oracle ConvEncoder features", named in every record). The
  calibrator's label accuracy is measured against the oracle's reading of each image, since a
  generated image has no exact ground truth; its prompt class is the generator's intended label.
* **Downstream**: one :class:`facekit.models.ConvEncoder` classifier recipe (same steps,
  batch, augmentation) for (a) labelled only, (b) MoCo v3 pretraining on the 5x synthetic
  images then fine-tuning on the labelled set, (c) synthetic only at 1x (one image per
  labelled image, class-balanced) and 5x, (d) (c) after calibration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler
from torch import Tensor

from facekit.config import get_profile
from facekit.io import disk_cached, to_uint8
from facekit.methods.synfer_captions import CaptionWriter, WordTokenizer
from facekit.methods.synfer_pipeline import SynFERPipeline
from facekit.models.diffusion import ConditionalUNet
from facekit.synth.datasets import FaceDataset, IdentitySplit
from facekit.synth.params import AU_NAMES, EMOTIONS, N_AUS
from facekit.train import TrainConfig, TrainResult, cached_path, train_or_load

METHOD = "synfer"
N_CLASSES = len(EMOTIONS)
TRAIN_HINT = ("run notebooks/04_synfer.ipynb at this profile, `facekit train synfer`, or "
              "`python benchmarks/claims.py --method synfer` (cpu profile, seeds 0-2), which train and cache it")
FD_SPACE = "synfer oracle ConvEncoder features (oracle trained on renders of world 7, seed 0)"


# --------------------------------------------------------------------------- configs


@dataclass
class DataConfig:
    """The target-style "real" domain: pool, labelled pool, test set (per class counts)."""

    size: int = 32
    n_identities: int = 1500
    world_seed: int = 6  # persons of this world appear in no other notebook
    n_pool: int = 2000  # unlabelled pool (FEText stand-in)
    labelled_pool: int = 32  # per class; a seed draws its labelled set from it
    n_labelled: int = 16  # per class
    n_test: int = 50  # per class
    oracle_world: int = 7
    n_oracle: int = 4000
    framing: str = "face"  # FER sets are tight face crops; at 32 px a full head leaves the mouth a few pixels wide


@dataclass
class GeneratorConfig:
    """The conditional DDPM (one cache entry: UNet + text encoder + AU adapter)."""

    model: dict[str, Any] = field(default_factory=lambda: {
        "block_out_channels": [16, 32, 64], "layers_per_block": 1, "dim": 64, "max_len": 16, "au_tokens": 4,
        "text_layers": 1, "attention_head_dim": 16, "attn_levels": 1, "global_cond": True})
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=3000, batch_size=32, lr=2e-3, warmup_steps=100,
                                                                   schedule="cosine", log_every=100, ckpt_every=250))
    p_drop_text: float = 0.15
    p_drop_au: float = 0.15
    num_train_timesteps: int = 1000
    prediction_type: str = "sample"  # "sample" | "epsilon" | "v_prediction"
    seed: int | None = 0  # None: each seed trains its own generator


@dataclass
class SampleConfig:
    """Sampling, guidance and calibration settings."""

    steps: int = 10
    text_scale: float = 2.0
    au_scale: float = 2.0
    semantic_scale: float = 4.0
    guidance_fraction: float = 0.5
    n_guided: int = 64  # images generated with and without semantic guidance
    calib_timestep: int = 200
    calib_threshold: float = 0.5
    scale_5x: int = 5


@dataclass
class ClassifierConfig:
    """One recipe for every expression classifier (downstream (a)-(d), guidance, MoCo fine-tune)."""

    dim: int = 64
    widths: list[int] = field(default_factory=lambda: [16, 32, 48, 64])
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=250, batch_size=64, lr=2e-3, weight_decay=1e-4,
                                                                   warmup_steps=20, schedule="cosine", log_every=50))
    moco_steps: int = 250
    moco_temperature: float = 0.2
    moco_momentum: float = 0.99
    oracle_steps: int = 1500


@dataclass
class SynFERConfig:
    data: DataConfig = field(default_factory=DataConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)


def profile_config(profile: str | None = None, seed: int = 0) -> SynFERConfig:
    """``smoke`` (seconds, meaningless numbers), ``cpu`` (the teaching default), ``gpu``."""
    profile = get_profile(profile)
    if profile == "smoke":
        cfg = SynFERConfig(
            data=DataConfig(n_identities=200, n_pool=96, labelled_pool=6, n_labelled=4, n_test=4, n_oracle=96),
            generator=GeneratorConfig(
                model={"block_out_channels": [16, 16, 32], "layers_per_block": 1, "dim": 32, "max_len": 16, "au_tokens": 2,
                       "text_layers": 1, "attention_head_dim": 8, "attn_levels": 1, "global_cond": True},
                train=TrainConfig(steps=6, batch_size=8, lr=1e-3, log_every=3)),
            sample=SampleConfig(steps=3, n_guided=8, scale_5x=2),
            classifier=ClassifierConfig(dim=16, widths=[8, 8, 16, 16],
                                        train=TrainConfig(steps=4, batch_size=16, lr=2e-3, log_every=2),
                                        moco_steps=4, oracle_steps=6),
        )
    elif profile == "gpu":
        cfg = SynFERConfig(
            data=DataConfig(size=64, n_identities=6000, n_pool=30000, labelled_pool=60, n_labelled=30, n_test=200,
                            n_oracle=20000),
            generator=GeneratorConfig(
                model={"block_out_channels": [64, 128, 256], "layers_per_block": 2, "dim": 128, "max_len": 16,
                       "au_tokens": 4, "text_layers": 2, "attention_head_dim": 32, "attn_levels": 2, "global_cond": True},
                train=TrainConfig(steps=30000, batch_size=128, lr=2e-4, warmup_steps=500, schedule="cosine"), seed=None),
            sample=SampleConfig(steps=50, n_guided=400),
            classifier=ClassifierConfig(dim=256, widths=[32, 64, 128, 160],
                                        train=TrainConfig(steps=3000, batch_size=128, lr=2e-3, weight_decay=1e-4,
                                                          warmup_steps=100, schedule="cosine"),
                                        moco_steps=3000, oracle_steps=4000),
        )
    else:
        cfg = SynFERConfig()
    cfg.generator.train.seed = seed if cfg.generator.seed is None else cfg.generator.seed
    cfg.classifier.train.seed = seed
    return cfg


# ------------------------------------------------------------------------------ data


def _balanced(ds: FaceDataset, per_class: int, chunk: int = 512) -> dict[str, Tensor]:
    """The first ``per_class`` items of each emotion of ``ds`` (class-sorted), as uint8 images."""
    picked: list[Tensor] = []
    counts = torch.zeros(N_CLASSES, dtype=torch.int64)
    start = 0
    while int(counts.min()) < per_class:
        if start >= ds.n:
            raise ValueError(f"the dataset of {ds.n} faces has fewer than {per_class} of some emotion")
        idx = torch.arange(start, min(start + chunk, ds.n))
        emo = ds.params(idx)[1]["emotion"]
        for i, e in zip(idx.tolist(), emo.tolist(), strict=True):
            if counts[e] < per_class:
                picked.append(torch.tensor([i, e]))
                counts[e] += 1
        start += chunk
    pe = torch.stack(picked)
    order = pe[:, 1].argsort(stable=True)
    b = ds.batch(pe[order, 0])
    return {"image": to_uint8(b["image"].cpu()), "label": b["emotion"].cpu(), "au": b["au"].cpu()}


def real_sets(cfg: SynFERConfig) -> dict[str, dict[str, Tensor]]:
    """``labelled`` (``labelled_pool`` per class, val persons) and ``test`` (``n_test`` per class,
    test persons): target style, class-sorted; the same for every seed."""
    d = cfg.data
    ids = IdentitySplit(d.n_identities, world_seed=d.world_seed)

    def make(split: str, per: int, seed: int) -> Callable[[], dict[str, Tensor]]:
        return lambda: _balanced(FaceDataset(per * N_CLASSES * 4, split=split, identities=ids, seed=seed,
                                             size=d.size, framing=d.framing,
                                             style="target", expressions="emotion"), per)

    key = {"size": d.size, "framing": d.framing, "n_identities": d.n_identities, "world": d.world_seed, "v": 3}
    return {"labelled": disk_cached("synfer-labelled", {**key, "n": d.labelled_pool}, make("val", d.labelled_pool, 11)),
            "test": disk_cached("synfer-test", {**key, "n": d.n_test}, make("test", d.n_test, 12))}


def labelled_subset(cfg: SynFERConfig, seed: int) -> Tensor:
    """Indices of this seed's labelled set: ``n_labelled`` per class from the labelled pool."""
    d = cfg.data
    if not 1 <= d.n_labelled <= d.labelled_pool:
        raise ValueError(f"n_labelled={d.n_labelled} is not valid; pass 1..labelled_pool={d.labelled_pool} per class")
    g = torch.Generator().manual_seed(seed)
    return torch.cat([c * d.labelled_pool + torch.randperm(d.labelled_pool, generator=g)[: d.n_labelled]
                      for c in range(N_CLASSES)])


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


def _label_kind(profile: str) -> str:
    """What the pool's AU labels are, for cache keys (the reason a detector is missing is not)."""
    return "ground truth" if au_detector(profile)[0] is None else "detector"


def detect_aus(det: Any, images: Tensor, framing: str) -> Tensor:
    """AU activation probabilities in ``AU_NAMES`` order from the FMAE-IAT detector."""
    p = torch.as_tensor(np.asarray(det.predict_proba(images, framing=framing)), dtype=torch.float32)
    return p[:, [list(det.aus).index(a) for a in AU_NAMES]]


def _pool_key(d: DataConfig) -> dict[str, Any]:
    return {"size": d.size, "framing": d.framing, "n_identities": d.n_identities, "world_seed": d.world_seed,
            "n_pool": d.n_pool}


def pool_dataset(d: DataConfig) -> FaceDataset:
    """The unlabelled pool's faces (its data card describes it)."""
    return FaceDataset(d.n_pool, split="train", identities=IdentitySplit(d.n_identities, world_seed=d.world_seed),
                       seed=10, size=d.size, framing=d.framing, style="target", expressions="emotion")


def training_pool(cfg: SynFERConfig, profile: str) -> dict[str, Tensor]:
    """The unlabelled pool with its weak AU labels and captions (token ids): the FEText stand-in."""
    d = cfg.data
    det = au_detector(profile)[0]

    def make() -> dict[str, Tensor]:
        ds = pool_dataset(d)
        parts: dict[str, list[Tensor]] = {k: [] for k in ("image", "au", "age", "weight", "glasses", "yaw")}
        for lo in range(0, d.n_pool, 512):
            b = ds.batch(torch.arange(lo, min(lo + 512, d.n_pool)))
            parts["image"].append(to_uint8(b["image"].cpu()))
            parts["au"].append(detect_aus(det, b["image"].cpu(), d.framing) if det is not None else b["au"].cpu())
            for k in ("age", "weight", "glasses", "yaw"):
                parts[k].append(b[k].cpu())
        pool = {k: torch.cat(v) for k, v in parts.items()}
        writer, tok = CaptionWriter(), WordTokenizer(cfg.generator.model["max_len"])
        rng = np.random.default_rng(0)
        captions = [writer.caption(pool["au"][i], float(pool["age"][i]), float(pool["weight"][i]),
                                   float(pool["glasses"][i]), float(pool["yaw"][i]), rng) for i in range(d.n_pool)]
        return {"image": pool["image"], "au": pool["au"], "ids": tok(captions)}

    return disk_cached("synfer-pool", {"pool": _pool_key(d), "max_len": cfg.generator.model["max_len"],
                                        "au_labels": _label_kind(profile),
                                        "v": 3}, make)


# ----------------------------------------------------------------------- generator


def noise_scheduler(cfg: SynFERConfig) -> DDPMScheduler:
    kinds = ("sample", "epsilon", "v_prediction")
    if cfg.generator.prediction_type not in kinds:
        raise ValueError(f"prediction_type={cfg.generator.prediction_type!r} is not valid; choose one of {list(kinds)}")
    return DDPMScheduler(num_train_timesteps=cfg.generator.num_train_timesteps, beta_schedule="squaredcos_cap_v2",
                         clip_sample=True, prediction_type=cfg.generator.prediction_type)


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


def _model_kwargs(cfg: SynFERConfig) -> dict[str, Any]:
    return {"vocab_size": len(WordTokenizer(cfg.generator.model["max_len"])), "n_aus": N_AUS,
            "sample_size": cfg.data.size, **cfg.generator.model}


def _generator_key(cfg: SynFERConfig, profile: str) -> dict[str, Any]:
    g = cfg.generator
    return {"pool": _pool_key(cfg.data), "p_drop_text": g.p_drop_text,
            "p_drop_au": g.p_drop_au, "T": g.num_train_timesteps, "au_labels": _label_kind(profile),
            "prediction": g.prediction_type}


def train_generator(profile: str | None = None, seed: int = 0, cfg: SynFERConfig | None = None, *,
                    progress: bool | None = None) -> TrainResult:
    """Load the cached conditional DDPM of (profile, generator seed, config), else train it."""
    profile = get_profile(profile)
    cfg = cfg or profile_config(profile, seed)
    sched = noise_scheduler(cfg)
    holder: dict[str, Tensor] = {}

    def data(step: int) -> dict[str, Tensor]:
        if not holder:
            holder.update(training_pool(cfg, profile))
        idx = torch.randint(0, len(holder["image"]), (cfg.generator.train.batch_size,))
        return {k: v[idx] for k, v in holder.items()}

    g = cfg.generator
    return train_or_load(METHOD, ConditionalUNet, _model_kwargs(cfg), data, g.train, profile=profile,
                         key=_generator_key(cfg, profile), progress=progress,
                         loss_fn=lambda m, b: diffusion_loss(m, b, sched, g.p_drop_text, g.p_drop_au))


def make_pipeline(model: ConditionalUNet, cfg: SynFERConfig) -> SynFERPipeline:
    sched = DDIMScheduler.from_config(noise_scheduler(cfg).config)
    return SynFERPipeline(model.eval(), sched, cfg.generator.model["max_len"])


def load(profile: str | None = None, seed: int = 0, device: str | torch.device | None = None) -> SynFERPipeline:
    """The cached SynFER pipeline of (profile, seed); ``FileNotFoundError`` says how to train it."""
    from facekit.train import load_pretrained

    profile = get_profile(profile)
    cfg = profile_config(profile, seed)
    path = _generator_path(cfg, profile)
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"no trained SynFER generator for profile={profile!r}, seed={seed} at {path}; {TRAIN_HINT}")
    return make_pipeline(load_pretrained(ConditionalUNet, path, device=device), cfg)


def _generator_path(cfg: SynFERConfig, profile: str) -> Path:
    return cached_path(METHOD, profile, cfg.generator.train.seed,
                       {"model": _model_kwargs(cfg), "train": cfg.generator.train, "key": _generator_key(cfg, profile)})


def train_and_load(profile: str | None = None, seed: int = 0, *,
                   progress: bool | None = None) -> tuple[SynFERPipeline, TrainResult]:
    """Load the generator if cached, else train it; return the pipeline and the training log."""
    profile = get_profile(profile)
    cfg = profile_config(profile, seed)
    result = train_generator(profile, seed, cfg, progress=progress)
    return make_pipeline(result.model, cfg), result



__all__ = [
    "FD_SPACE",
    "ClassifierConfig",
    "DataConfig",
    "GeneratorConfig",
    "SampleConfig",
    "SynFERConfig",
    "SynFERPipeline",
    "WordTokenizer",
    "diffusion_loss",
    "labelled_subset",
    "load",
    "make_pipeline",
    "profile_config",
    "real_sets",
    "train_and_load",
    "train_generator",
    "training_pool",
]
