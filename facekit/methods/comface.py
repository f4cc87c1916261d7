"""ComFace: inter-personal and intra-personal representations learned from synthetic faces.

Akamatsu et al., "ComFace: Facial Representation Learning with Synthetic Data for Comparing
Faces", WACV 2025 (arXiv 2405.16016). The idea: to compare two photos of one person (how
much older, heavier, more smiling is face B than face A?) a model needs two things that pull
in opposite directions, so ComFace learns them with two heads on one shared encoder:

* the **inter-personal** head maps every photo of a person to the same place whatever the
  change (supervised-contrastive over persons: two views of one person under different
  ages, weights or expressions are positives, other persons are negatives);
* the **intra-personal** head maps a face to an embedding whose *difference* between two
  photos of one person predicts the change between them (a linear regressor on
  ``g(b) - g(a)`` trained on the known deltas of synthetic pairs).

Both are trained on synthetic faces only, then transferred with a few labelled pairs:
frozen features, pair feature ``g(b) - g(a)``, one ridge regression per task.

Design choices, and where the paper is silent (the teaching version decides):

* Data: same-person pairs from :class:`facekit.synth.datasets.PairDataset`, one factor
  changing (expression intensity, weight or age), pose and light jittered a little within a
  pair. Photo b then gets another pair's background, clothing, pose and light
  (``DataConfig.new_scene``), as two real photos would: with the scene shared, the
  contrastive loss matched backdrops and never learned to recognise a person across pose and
  light (held-out verification ROC-AUC 0.58 in the first claims run). Every pair carries the
  full 3-vector of deltas: the two factors that do not change have a delta of exactly 0,
  which the synthetic world knows, so the intra head learns to say "no age change" on an
  expression pair. A pool of pairs is rendered once per run and
  reused across epochs with fresh augmentations (rendering is the cost on a CPU).
* Augmentation (plain torch; the paper's synthetic images are not re-styled): photometric
  only (colour, grey, blur, noise, flip), drawn independently for a and b, so the features
  tolerate camera effects like those of the target style; no crops, since a crop looks like
  a change of face width (weight).
* Loss: ``supcon(inter) + intra_weight * mse(regressor(g(b) - g(a)), delta / scale)``,
  deltas scaled to [-1, 1] per factor. ``intra_weight = 100`` was chosen on *validation*
  persons (``benchmarks/comface_loss_weight.py``: weight 1, 10, 30, 100); at 1 the scaled MSE
  (about 0.03) was drowned by the contrastive loss (about 1) and the intra features were weak. The regressor has no bias, so "no change" maps to 0 and
  the prediction is antisymmetric in (a, b) by construction. No ordering loss and no
  curriculum from large to small steps.
* Encoder: the shared :class:`facekit.models.ConvEncoder` (about 0.4M parameters at the
  ``cpu`` profile), the same for every baseline. ``cpu`` uses 48x48 faces, 500 steps of 32
  pairs: a step took 0.4-0.8 s on the shared 2-core machine, and the claims run trains nine
  models (3 seeds x ComFace, SimCLR, supervised).

Baselines (same encoder, data and steps x batch): SimCLR on the same pool of images
(:func:`facekit.methods.baselines.train_simclr`), supervised from scratch on the labelled
pairs only, and raw pixels -> PCA -> ridge. The trained model loads through :func:`load`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import Tensor, nn

from facekit import metrics
from facekit.config import get_profile
from facekit.io import disk_cached, to_uint8
from facekit.models import ConvEncoder, augment, supcon_loss
from facekit.models.inputs import model_input
from facekit.synth.datasets import FACTOR_RANGES, FACTOR_UNITS, FACTORS, IdentitySplit, PairDataset
from facekit.synth.params import EMOTIONS, N_AUS, emotion_matrix, sample_params
from facekit.synth.render import render
from facekit.train import TrainConfig, TrainResult, cached_path, load_pretrained, train_or_load

TASKS = FACTORS  # expression-intensity change, weight change, age difference
# Deltas are divided by these (the widest possible change) so the three tasks weigh alike.
DELTA_SCALE = {t: FACTOR_RANGES[t][1] - FACTOR_RANGES[t][0] for t in TASKS}
MIN_LABELLED = 10
METHOD = "comface"
TRAIN_HINT = (
    "run notebooks/02_comface.ipynb at this profile, or `python benchmarks/claims.py --method comface` "
    "(cpu profile, seeds 0-2), which train and cache it"
)


# --------------------------------------------------------------------------- configs


@dataclass
class DataConfig:
    """The synthetic training pool and the transfer sets."""

    size: int = 48
    n_identities: int = 4500  # 70% train: 3150 persons, 675 test persons
    pool_pairs: int = 1200  # per factor; rendered once and reused across epochs
    nuisance: float = 0.3
    new_scene: bool = True  # photo b of a pair gets another pair's background, clothing, pose and light
    n_labelled: tuple[int, ...] = (100, 300, 1000)  # labelled transfer pairs per task
    n_eval: int = 400  # held-out transfer pairs per task (other test persons)
    n_verify: int = 200  # persons for verification (genuine + impostor pairs per change)

    def __post_init__(self) -> None:
        self.n_labelled = tuple(int(n) for n in self.n_labelled)


@dataclass
class ComFaceConfig:
    """Everything that defines a trained ComFace model; hashed into its cache key."""

    model: dict[str, Any] = field(default_factory=lambda: {"dim": 256, "widths": [32, 64, 96, 128], "inter_dim": 128,
                                                           "intra_dim": 64, "tasks": list(TASKS)})
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=500, batch_size=32, lr=2e-3, weight_decay=1e-4,
                                                                   warmup_steps=25, schedule="cosine"))
    temperature: float = 0.1
    intra_weight: float = 100.0  # chosen on validation persons (benchmarks/comface_loss_weight.py)


def profile_config(profile: str | None = None, seed: int = 0) -> ComFaceConfig:
    """The configuration of a profile: ``smoke`` (seconds), ``cpu`` (minutes), ``gpu``.

    ``batch_size`` counts pairs: a step encodes ``2 * batch_size`` images.
    """
    profile = get_profile(profile)
    if profile == "smoke":
        return ComFaceConfig(
            model={"dim": 64, "widths": [16, 16, 32, 32], "inter_dim": 32, "intra_dim": 16, "tasks": list(TASKS)},
            data=DataConfig(size=32, n_identities=300, pool_pairs=48, n_labelled=(20, 40), n_eval=40, n_verify=30),
            train=TrainConfig(steps=30, batch_size=16, lr=2e-3, warmup_steps=3, schedule="cosine", seed=seed, log_every=10),
        )
    if profile == "gpu":
        return ComFaceConfig(
            data=DataConfig(size=64, n_identities=40000, pool_pairs=30000, n_eval=2000, n_verify=1000),
            train=TrainConfig(steps=20000, batch_size=256, lr=2e-3, weight_decay=1e-4, warmup_steps=500,
                              schedule="cosine", seed=seed),
        )
    cfg = ComFaceConfig()
    cfg.train.seed = seed
    return cfg


# ----------------------------------------------------------------------------- model


class ComFaceNet(nn.Module):
    """Shared encoder, inter head (identity embedding), intra head (change embedding) and a
    bias-free linear regressor from intra-embedding differences to the task deltas."""

    def __init__(self, dim: int = 256, widths: Sequence[int] = (32, 64, 128, 160), inter_dim: int = 128,
                 intra_dim: int = 64, tasks: Sequence[str] = TASKS) -> None:
        super().__init__()
        unknown = [t for t in tasks if t not in TASKS]
        if unknown or not tasks:
            raise ValueError(f"tasks={list(tasks)} is not valid; pass a non-empty subset of {list(TASKS)}")
        self.tasks = list(tasks)
        self.encoder = ConvEncoder(dim, tuple(widths))
        self.inter_head = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, inter_dim))
        self.intra_head = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, intra_dim))
        self.regressor = nn.Linear(intra_dim, len(self.tasks), bias=False)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        h = self.encoder(x)
        return {"features": h, "inter": F.normalize(self.inter_head(h), dim=1), "intra": self.intra_head(h)}


def comface_loss(model: nn.Module, batch: dict[str, Tensor], temperature: float = 0.1,
                 intra_weight: float = 1.0, aug: bool = True) -> dict[str, Tensor]:
    """SupCon over persons on the inter embeddings of a and b, plus the MSE of the predicted
    (scaled) deltas from intra-embedding differences. Returns the parts for the log."""
    a, b = batch["a"].float() / 255, batch["b"].float() / 255
    if aug:
        a, b = _photometric(a), _photometric(b)
    out = model(torch.cat([a, b]))
    n = len(a)
    inter = supcon_loss(out["inter"], torch.cat([batch["person"], batch["person"]]), temperature)
    net = model.module if hasattr(model, "module") else model
    pred = net.regressor(out["intra"][n:] - out["intra"][:n])
    intra = F.mse_loss(pred, batch["delta"])
    return {"loss": inter + intra_weight * intra, "inter": inter.detach(), "intra": intra.detach()}


def _photometric(x: Tensor) -> Tensor:
    return augment(x, crop_scale=(1.0, 1.0), colour=0.3, grey_p=0.3, blur_p=0.5, noise=0.04)


# ------------------------------------------------------------------------------ data


def _pairs_new_scene(ds: PairDataset, indices: Tensor) -> dict[str, Tensor]:
    """``ds.batch`` with photo b given another pair's background, clothing (``seed``), pose
    and light: a new scene, as between two real photos of one person.

    A PairDataset holds the scene within a pair (pose and light only jittered). A contrastive
    loss over persons then matched backdrops instead of faces, and never had to recognise a
    person across pose and light: held-out verification ROC-AUC 0.58 in the first claims run;
    0.99 when only the background differed, 0.64-0.69 when only pose and light did.
    """
    idx = torch.as_tensor(indices, dtype=torch.int64)
    base, emotion = ds._held(idx)
    va, vb = ds.values(idx)
    pa, pb = ds._view(base, emotion, va, idx, 0), ds._view(base, emotion, vb, idx, 1)
    other = {f: getattr(pb, f).roll(1, 0) for f in ("yaw", "pitch", "roll", "light_azimuth", "light_elevation",
                                                     "light_strength")}
    pb = pb.replace(background=pa.background.roll(1, 0), seed=pa.seed.roll(1, 0), **other)
    return {"a": ds.render_params(pa), "b": ds.render_params(pb), "delta": vb - va, "person": ds.person_of(idx)}


def _render_pairs(ds: PairDataset, indices: Tensor, task: str, chunk: int = 256,
                  new_scene: bool = False) -> dict[str, Tensor]:
    """Pairs of ``ds`` as uint8 images plus the full scaled 3-vector of deltas (zeros for the
    factors held fixed)."""
    parts: dict[str, list[Tensor]] = {"a": [], "b": [], "delta": [], "person": []}
    for start in range(0, len(indices), chunk):
        chunk_idx = indices[start:start + chunk]
        b = _pairs_new_scene(ds, chunk_idx) if new_scene else ds.batch(chunk_idx)
        delta = torch.zeros(len(b["delta"]), len(TASKS))
        delta[:, TASKS.index(task)] = b["delta"].cpu() / DELTA_SCALE[task]
        for k, v in (("a", to_uint8(b["a"].cpu())), ("b", to_uint8(b["b"].cpu())), ("delta", delta),
                     ("person", b["person"].cpu())):
            parts[k].append(v)
    return {k: torch.cat(v) for k, v in parts.items()}


def training_pool(cfg: ComFaceConfig) -> dict[str, Tensor]:
    """The clean-style, train-split pairs every model of this config trains on (all factors).

    Factor k uses dataset items ``k * pool_pairs ...``, so the three factors together cover
    ``3 * pool_pairs`` consecutive persons of the round-robin (all persons when that exceeds
    the split). Shared by ComFace and the SimCLR baseline; the same for every seed.
    """
    d = cfg.data
    ids = IdentitySplit(d.n_identities)

    def make() -> dict[str, Tensor]:
        parts = []
        for k, task in enumerate(TASKS):
            ds = PairDataset(3 * d.pool_pairs, split="train", identities=ids, seed=0, size=d.size, style="clean",
                             factor=task, nuisance=d.nuisance)
            parts.append(_render_pairs(ds, torch.arange(k * d.pool_pairs, (k + 1) * d.pool_pairs), task,
                                       new_scene=d.new_scene))
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}

    return disk_cached("comface-pool", {"data": d, "v": 1}, make)


def pool_step_fn(pool: dict[str, Tensor], batch_size: int) -> Callable[[int], dict[str, Tensor]]:
    """``step -> batch`` of random pool pairs (fit reseeds torch's RNG per step: exact resume)."""
    n = len(pool["a"])
    if n < 2:
        raise ValueError(f"the training pool has {n} pairs; need at least 2")

    def data(step: int) -> dict[str, Tensor]:
        idx = torch.randint(0, n, (batch_size,))
        return {k: v[idx] for k, v in pool.items()}

    return data


def transfer_sets(cfg: ComFaceConfig, task: str, split: str = "test") -> dict[str, dict[str, Tensor]]:
    """Target-style pairs of test persons for one task: a ``labelled`` pool (the first half of
    the test persons; per-seed subsets of it are the labelled sets) and an ``eval`` set of
    other test persons. Fixed across seeds, so seeds differ in training and in the subset.
    ``split="val"`` builds the same from validation persons, for choosing settings."""
    _check_task(task, TASKS)
    if split not in ("val", "test"):
        raise ValueError(f"split={split!r} is not valid; transfer sets come from 'val' or 'test' persons")
    d = cfg.data
    ids = IdentitySplit(d.n_identities)
    half = len(ids.ids(split)) // 2

    def make(part: str) -> Callable[[], dict[str, Tensor]]:
        def inner() -> dict[str, Tensor]:
            n = max(d.n_labelled) if part == "labelled" else d.n_eval
            ds = PairDataset(n, split=split, identities=ids, seed=101 if part == "labelled" else 202, size=d.size,
                             style="target", factor=task, nuisance=d.nuisance)
            persons = ds.persons
            ds.persons = persons[:half] if part == "labelled" else persons[half:]
            return _render_pairs(ds, torch.arange(n), task)
        return inner

    key = {"size": d.size, "n_identities": d.n_identities, "nuisance": d.nuisance, "task": task, "v": 1,
           **({"split": split} if split != "test" else {})}
    return {part: disk_cached(f"comface-{part}", {**key, "n": max(d.n_labelled) if part == "labelled" else d.n_eval},
                               make(part)) for part in ("labelled", "eval")}


def labelled_subset(n_pool: int, n: int, seed: int) -> Tensor:
    """Indices of the ``n`` labelled pairs a seed uses (nested: the 100 are among the 300)."""
    if not 1 <= n <= n_pool:
        raise ValueError(f"n={n} labelled pairs is not valid; the labelled pool holds {n_pool}")
    return torch.randperm(n_pool, generator=torch.Generator().manual_seed(seed))[:n]


# ----------------------------------------------------------------------- train / load


def _train_key(cfg: ComFaceConfig) -> dict[str, Any]:
    return {"data": cfg.data, "temperature": cfg.temperature, "intra_weight": cfg.intra_weight}


def train(profile: str | None = None, seed: int = 0, cfg: ComFaceConfig | None = None, *,
          progress: bool | None = None) -> TrainResult:
    """Load the cached ComFace model of (profile, seed, config), else train and cache it."""
    cfg = cfg or profile_config(profile, seed)
    step_fn = _LazyPool(cfg)
    return train_or_load(METHOD, ComFaceNet, cfg.model, step_fn, cfg.train, profile=profile, key=_train_key(cfg),
                         progress=progress,
                         loss_fn=lambda m, b: comface_loss(m, b, cfg.temperature, cfg.intra_weight))


class _LazyPool:
    """A step function that renders the pool on first use, so loading a cached model never renders."""

    def __init__(self, cfg: ComFaceConfig) -> None:
        self.cfg, self._fn = cfg, None

    def __call__(self, step: int) -> dict[str, Tensor]:
        if self._fn is None:
            self._fn = pool_step_fn(training_pool(self.cfg), self.cfg.train.batch_size)
        return self._fn(step)


class ComFace:
    """A trained ComFace model: inter / intra embeddings and change estimates for image pairs.

    Images are ``N x 3 x H x W`` in [0, 1]; other sizes are resized to the model's input.
    """

    def __init__(self, net: ComFaceNet, cfg: ComFaceConfig, profile: str, seed: int) -> None:
        self.net, self.cfg, self.profile, self.seed = net.eval(), cfg, profile, seed
        self.tasks = list(net.tasks)
        self.size = cfg.data.size

    def _prepare(self, images: Tensor) -> Tensor:
        return model_input(images, self.size)

    @torch.no_grad()
    def embed(self, images: Tensor, batch_size: int = 256) -> dict[str, Tensor]:
        """``features`` (encoder), ``inter`` (unit-norm identity embedding), ``intra`` (change embedding)."""
        x = self._prepare(images)
        device = next(self.net.parameters()).device
        outs = [self.net(x[i:i + batch_size].to(device)) for i in range(0, len(x), batch_size)]
        return {k: torch.cat([o[k] for o in outs]).cpu() for k in outs[0]}

    def pair_features(self, a: Tensor, b: Tensor) -> Tensor:
        """``intra(b) - intra(a)``: the frozen pair feature the transfer heads regress on."""
        a, b = _same_size_pair(a, b)
        return self.embed(b)["intra"] - self.embed(a)["intra"]

    def similarity(self, a: Tensor, b: Tensor) -> Tensor:
        """Cosine similarity of inter embeddings: the identity-verification score."""
        a, b = _same_size_pair(a, b)
        return (self.embed(a)["inter"] * self.embed(b)["inter"]).sum(1)

    def predict_change(self, a: Tensor, b: Tensor, task: str) -> Tensor:
        """The change from a to b in the task's units, read from the synthetic-trained intra
        regressor (no labelled target data; for calibrated estimates fit a :class:`ChangeHead`)."""
        k = _check_task(task, self.tasks)
        with torch.no_grad():
            pred = self.net.regressor(self.pair_features(a, b).to(self.net.regressor.weight.device)).cpu()
        return pred[:, k] * DELTA_SCALE[task]


def _check_task(task: str, tasks: Sequence[str]) -> int:
    if task not in tasks:
        raise ValueError(f"task={task!r} is not one this model was trained for; valid tasks are {list(tasks)}")
    return list(tasks).index(task)


def _same_size_pair(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    if a.ndim == 3:
        a = a[None]
    if b.ndim == 3:
        b = b[None]
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"a has {a.shape[0]} images and b has {b.shape[0]}; pass one b per a")
    if a.shape[-2:] != b.shape[-2:]:
        warnings.warn(f"a is {tuple(a.shape[-2:])} and b is {tuple(b.shape[-2:])} pixels; resizing b to a's size",
                      stacklevel=3)
        b = F.interpolate(b.float(), size=tuple(a.shape[-2:]), mode="bilinear", antialias=True, align_corners=False)
    return a, b


def load(profile: str | None = None, seed: int = 0, cfg: ComFaceConfig | None = None,
         device: str | torch.device | None = None) -> ComFace:
    """The one way to get a trained ComFace model (the Analyzer calls this).

    Raises ``FileNotFoundError`` naming the command that trains it when it is not cached.
    """
    profile = get_profile(profile)
    cfg = cfg or profile_config(profile, seed)
    path = _cache_path(cfg, profile)
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"no trained ComFace model for profile={profile!r}, seed={seed} at {path}; {TRAIN_HINT}")
    return ComFace(load_pretrained(ComFaceNet, path, device=device), cfg, profile, seed)


def _cache_path(cfg: ComFaceConfig, profile: str) -> Path:
    return cached_path(METHOD, profile, cfg.train.seed, {"model": cfg.model, "train": cfg.train, "key": _train_key(cfg)})


def train_and_load(profile: str | None = None, seed: int = 0, *, progress: bool | None = None) -> tuple[ComFace, TrainResult]:
    """Load the checkpoint if it exists, else train it; return the model and the training log."""
    profile = get_profile(profile)
    cfg = profile_config(profile, seed)
    result = train(profile, seed, cfg, progress=progress)
    return ComFace(result.model, cfg, profile, seed), result


# --------------------------------------------------------------------- transfer heads


class ChangeHead:
    """Frozen pair features -> one task's delta: standardise, then ridge with alpha chosen by
    (efficient leave-one-out) cross-validation. scikit-learn style ``fit`` / ``predict``."""

    alphas = np.logspace(-3, 4, 15)

    def __init__(self, task: str) -> None:
        _check_task(task, TASKS)
        self.task = task
        self.pipeline: Pipeline | None = None

    def fit(self, pair_features: Tensor | np.ndarray, deltas: Tensor | np.ndarray) -> ChangeHead:
        x, y = np.asarray(pair_features, dtype=np.float64), np.asarray(deltas, dtype=np.float64).ravel()
        if len(x) < MIN_LABELLED:
            raise ValueError(f"got {len(x)} labelled pairs for task {self.task!r}; the ridge head needs at least "
                             f"{MIN_LABELLED} (the protocol uses 100, 300 or 1000)")
        if x.ndim != 2 or len(x) != len(y):
            raise ValueError(f"pass pair features (n, d) and n deltas, got {x.shape} and {y.shape}")
        self.pipeline = make_pipeline(StandardScaler(), RidgeCV(alphas=self.alphas)).fit(x, y)
        return self

    def predict(self, pair_features: Tensor | np.ndarray) -> np.ndarray:
        if self.pipeline is None:
            raise RuntimeError(f"this ChangeHead for {self.task!r} is not fitted; call fit(pair_features, deltas) first")
        return self.pipeline.predict(np.asarray(pair_features, dtype=np.float64))


def evaluate_head(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                  task: str) -> dict[str, float]:
    """Fit a :class:`ChangeHead` and score it: MAE (task units) and Spearman rho on ``test``."""
    head = ChangeHead(task).fit(train_x, train_y)
    pred = head.predict(test_x)
    return {"mae": metrics.mae(test_y, pred), "spearman": metrics.spearman(test_y, pred)}


def task_deltas(pairs: dict[str, Tensor], task: str) -> np.ndarray:
    """A task's deltas in its own units (pairs store scaled deltas)."""
    return pairs["delta"][:, TASKS.index(task)].numpy() * DELTA_SCALE[task]


def images(pairs: dict[str, Tensor], which: str, idx: Tensor | None = None) -> Tensor:
    x = pairs[which] if idx is None else pairs[which][idx]
    return x.float() / 255


# ----------------------------------------------------------------------- verification


def verification_pairs(cfg: ComFaceConfig, seed: int = 303) -> dict[str, Tensor]:
    """Target-style verification pairs of held-out test persons across a *large* change.

    For each of ``n_verify`` persons: an age pair (age a and a + 30 years) and an expression
    pair (neutral and one emotion at full intensity), each photo with its own pose, light and
    background. Impostors pair person i's first photo with person i+1's second photo.
    ``kind`` is 0 for age pairs, 1 for expression pairs.
    """
    d = cfg.data
    ids = IdentitySplit(d.n_identities)

    def make() -> dict[str, Tensor]:
        persons = ids.ids("test")[: d.n_verify]
        n = len(persons)
        codes = ids.codes(persons)
        idx = torch.arange(n)
        pa = sample_params(seed=seed, indices=idx, identity=codes, au=torch.zeros(n, N_AUS), style="target")
        pb = sample_params(seed=seed + 1, indices=idx, identity=codes, au=torch.zeros(n, N_AUS), style="target")
        g = torch.Generator().manual_seed(seed)
        age = 18 + 32 * torch.rand(n, generator=g)
        emotion = torch.randint(1, len(EMOTIONS), (n,), generator=g)
        weight = pa.weight
        age_a, age_b = pa.replace(age=age), pb.replace(age=age + 30, weight=weight)
        expr_a, expr_b = pa.replace(age=age), pb.replace(age=age, weight=weight, au=emotion_matrix()[emotion])
        a = torch.cat([render(age_a, d.size, style="target"), render(expr_a, d.size, style="target")])
        b = torch.cat([render(age_b, d.size, style="target"), render(expr_b, d.size, style="target")])
        return {"a": to_uint8(a), "b": to_uint8(b), "person": torch.cat([persons, persons]),
                "kind": torch.cat([torch.zeros(n), torch.ones(n)]).long()}

    return disk_cached("comface-verify", {"size": d.size, "n_identities": d.n_identities, "n": d.n_verify,
                                           "seed": seed, "v": 1}, make)


def verification_auc(embed: Callable[[Tensor], Tensor], pairs: dict[str, Tensor]) -> dict[str, float]:
    """ROC-AUC of cosine similarity: genuine pairs vs impostors (same kinds of change), overall
    and per change. ``embed`` maps images to embeddings."""
    za = F.normalize(embed(images(pairs, "a")), dim=1)
    zb = F.normalize(embed(images(pairs, "b")), dim=1)
    out = {}
    kinds = pairs["kind"]
    scores, labels = [], []
    for k, name in enumerate(("age", "expression")):
        m = torch.nonzero(kinds == k).ravel()
        genuine = (za[m] * zb[m]).sum(1)
        impostor = (za[m] * zb[m.roll(1)]).sum(1)
        s = torch.cat([genuine, impostor])
        y = torch.cat([torch.ones(len(m)), torch.zeros(len(m))])
        out[f"auc_{name}"] = metrics.roc_auc(y, s)
        scores.append(s)
        labels.append(y)
    out["auc"] = metrics.roc_auc(torch.cat(labels), torch.cat(scores))
    return out


def orl_verification(embed: Callable[[Tensor], Tensor], size: int = 64) -> dict[str, Any]:
    """Verification ROC-AUC over all pairs of the real ORL faces, when ``facekit.real.orl`` exists.

    Returns ``{"skipped": reason}`` when the loader is not installed yet (another issue adds it).
    """
    try:
        from facekit.real.orl import load_orl  # type: ignore[import-not-found]
    except ImportError as err:
        return {"skipped": f"facekit.real.orl.load_orl is not available ({err}); the ORL check was not run"}
    imgs, person, _ = load_orl(size=size)
    z = F.normalize(embed(torch.as_tensor(imgs, dtype=torch.float32)), dim=1)
    person = torch.as_tensor(person)
    iu = torch.triu_indices(len(z), len(z), 1)
    s = (z @ z.T)[iu[0], iu[1]]
    y = (person[iu[0]] == person[iu[1]]).float()
    return {"auc": metrics.roc_auc(y, s), "n_images": len(z), "n_persons": int(person.unique().numel())}


# ------------------------------------------------------------------------- benchmark


def pca_pair_features(fit_images: Tensor, n_components: int = 128) -> Callable[[Tensor, Tensor], np.ndarray]:
    """Baseline (c): raw pixels -> PCA (fitted on ``fit_images``, the labelled images) -> b - a."""
    from sklearn.decomposition import PCA

    flat = fit_images.reshape(len(fit_images), -1).numpy()
    pca = PCA(n_components=min(n_components, len(flat) - 1, flat.shape[1]), random_state=0).fit(flat)

    def pair(a: Tensor, b: Tensor) -> np.ndarray:
        return pca.transform(b.reshape(len(b), -1).numpy()) - pca.transform(a.reshape(len(a), -1).numpy())

    return pair


def run_seed(profile: str | None = None, seed: int = 0, *, progress: bool | None = False,
             log: Callable[[str], None] = print) -> dict[str, float]:
    """Every number of the ComFace claims for one seed, as a flat ``{name: value}`` dict.

    Names: ``<method>/<task>/n<labelled>/{mae,spearman}`` for methods comface, simclr, pca
    (frozen features + ridge) and supervised (end to end, at the middle labelled size), and
    ``<method>/verify/{auc,auc_age,auc_expression}``. Trains (or loads) ComFace, SimCLR and
    the supervised baseline for this seed.
    """
    from facekit.methods import baselines

    profile = get_profile(profile)
    cfg = profile_config(profile, seed)
    out: dict[str, float] = {}
    model, _ = train_and_load(profile, seed, progress=progress)
    log(f"seed {seed}: ComFace ready")
    simclr = baselines.train_simclr(profile, seed, cfg, progress=progress).model
    log(f"seed {seed}: SimCLR ready")
    sets = {t: transfer_sets(cfg, t) for t in TASKS}
    n_sup = sorted(cfg.data.n_labelled)[len(cfg.data.n_labelled) // 2]
    sup = baselines.train_supervised(profile, seed, cfg, sets, n_sup, progress=progress)
    log(f"seed {seed}: supervised baseline ready")
    simclr_embed = baselines.embedder(simclr)
    for task in TASKS:
        lab, ev = sets[task]["labelled"], sets[task]["eval"]
        y_lab, y_ev = task_deltas(lab, task), task_deltas(ev, task)
        feats = {
            "comface": (model.pair_features(images(lab, "a"), images(lab, "b")).numpy(),
                        model.pair_features(images(ev, "a"), images(ev, "b")).numpy()),
            "simclr": ((simclr_embed(images(lab, "b")) - simclr_embed(images(lab, "a"))).numpy(),
                       (simclr_embed(images(ev, "b")) - simclr_embed(images(ev, "a"))).numpy()),
        }
        for n in cfg.data.n_labelled:
            idx = labelled_subset(len(y_lab), n, seed)
            for name, (f_lab, f_ev) in feats.items():
                for k, v in evaluate_head(f_lab[idx], y_lab[idx], f_ev, y_ev, task).items():
                    out[f"{name}/{task}/n{n}/{k}"] = v
            pca = pca_pair_features(torch.cat([images(lab, "a", idx), images(lab, "b", idx)]))
            res = evaluate_head(pca(images(lab, "a", idx), images(lab, "b", idx)), y_lab[idx],
                                pca(images(ev, "a"), images(ev, "b")), y_ev, task)
            for k, v in res.items():
                out[f"pca/{task}/n{n}/{k}"] = v
        pred = baselines.predict_supervised(sup, images(ev, "a"), images(ev, "b"), task)
        out[f"supervised/{task}/n{n_sup}/mae"] = metrics.mae(y_ev, pred)
        out[f"supervised/{task}/n{n_sup}/spearman"] = metrics.spearman(y_ev, pred)
    vp = verification_pairs(cfg)
    for name, fn in (("comface", lambda x: model.embed(x)["inter"]), ("simclr", simclr_embed)):
        for k, v in verification_auc(fn, vp).items():
            out[f"{name}/verify/{k}"] = v
    log(f"seed {seed}: evaluated")
    return out


__all__ = [
    "DELTA_SCALE",
    "FACTOR_UNITS",
    "TASKS",
    "ChangeHead",
    "ComFace",
    "ComFaceConfig",
    "ComFaceNet",
    "DataConfig",
    "comface_loss",
    "evaluate_head",
    "load",
    "orl_verification",
    "profile_config",
    "run_seed",
    "train",
    "train_and_load",
    "transfer_sets",
    "verification_auc",
    "verification_pairs",
]
