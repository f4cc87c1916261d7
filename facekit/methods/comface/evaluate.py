"""ComFace's evaluation: transfer heads, verification, the baselines and one seed of the claims."""

from __future__ import annotations

from collections.abc import Callable
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
from facekit.methods.comface.config import (
    DELTA_SCALE,
    MIN_LABELLED,
    TASKS,
    ComFaceConfig,
    check_task,
    profile_config,
)
from facekit.methods.comface.data import (
    images,
    labelled_subset,
    task_deltas,
    transfer_sets,
    verification_pairs,
)
from facekit.methods.comface.train import photometric, pool_sampler, train_and_load
from facekit.methods.common import PoolSampler, batched
from facekit.models import ConvEncoder, augment, supcon_loss
from facekit.train import TrainResult, train_or_load


class ChangeHead:
    """Frozen pair features -> one task's delta: standardise, then ridge with alpha chosen by
    (efficient leave-one-out) cross-validation. scikit-learn style ``fit`` / ``predict``."""

    alphas = np.logspace(-3, 4, 15)

    def __init__(self, task: str) -> None:
        check_task(task, TASKS)
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
    profile = get_profile(profile)
    cfg = profile_config(profile, seed)
    out: dict[str, float] = {}
    model, _ = train_and_load(profile, seed, progress=progress)
    log(f"seed {seed}: ComFace ready")
    simclr = train_simclr(profile, seed, cfg, progress=progress).model
    log(f"seed {seed}: SimCLR ready")
    sets = {t: transfer_sets(cfg, t) for t in TASKS}
    n_sup = sorted(cfg.data.n_labelled)[len(cfg.data.n_labelled) // 2]
    sup = train_supervised(profile, seed, cfg, sets, n_sup, progress=progress)
    log(f"seed {seed}: supervised baseline ready")
    simclr_embed = embedder(simclr)
    fr = cfg.data.framing  # the worlds' renders are framed as the model was trained
    for task in TASKS:
        lab, ev = sets[task]["labelled"], sets[task]["eval"]
        y_lab, y_ev = task_deltas(lab, task), task_deltas(ev, task)
        feats = {
            "comface": (model.pair_features(images(lab, "a"), images(lab, "b"), fr).numpy(),
                        model.pair_features(images(ev, "a"), images(ev, "b"), fr).numpy()),
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
        pred = predict_supervised(sup, images(ev, "a"), images(ev, "b"), task)
        out[f"supervised/{task}/n{n_sup}/mae"] = metrics.mae(y_ev, pred)
        out[f"supervised/{task}/n{n_sup}/spearman"] = metrics.spearman(y_ev, pred)
    vp = verification_pairs(cfg)
    for name, fn in (("comface", model.identity_embedder(fr)), ("simclr", simclr_embed)):
        for k, v in verification_auc(fn, vp).items():
            out[f"{name}/verify/{k}"] = v
    log(f"seed {seed}: evaluated")
    return out


class SimCLRNet(nn.Module):
    """Encoder plus a projection MLP; the encoder output is the transferred feature (as in SimCLR)."""

    def __init__(self, dim: int = 256, widths: list[int] | tuple[int, ...] = (32, 64, 128, 160), proj_dim: int = 128) -> None:
        super().__init__()
        self.encoder = ConvEncoder(dim, tuple(widths))
        self.projector = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, proj_dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.projector(self.encoder(x))


def simclr_loss(model: nn.Module, batch: dict[str, Tensor], temperature: float = 0.1) -> Tensor:
    """NT-Xent: SupCon with one label per source image, two augmented views each."""
    x = batch["image"].float() / 255
    views = torch.cat([augment(x), augment(x)])
    labels = torch.arange(len(x), device=x.device).repeat(2)
    return supcon_loss(model(views), labels, temperature)


def _model_kwargs(cfg: ComFaceConfig) -> dict[str, Any]:
    return {"dim": cfg.model["dim"], "widths": list(cfg.model["widths"])}


def train_simclr(profile: str | None, seed: int, cfg: ComFaceConfig, *, progress: bool | None = None) -> TrainResult:
    """Load or train SimCLR on the images of ComFace's training pool (a and b as separate
    instances), with ComFace's optimiser settings and steps."""
    pool_fn = pool_sampler(cfg)
    n = cfg.train.batch_size

    def data(step: int) -> dict[str, Tensor]:
        pairs = pool_fn(step)  # n random pairs; take a or b of each at random
        pick = torch.rand(n) < 0.5
        return {"image": torch.where(pick.view(-1, 1, 1, 1), pairs["a"], pairs["b"])}

    return train_or_load("comface-simclr", SimCLRNet, {**_model_kwargs(cfg), "proj_dim": cfg.model["inter_dim"]},
                         data, cfg.train, profile=profile, progress=progress,
                         key={"data": cfg.data, "temperature": cfg.temperature, "views": 2},
                         loss_fn=lambda m, b: simclr_loss(m, b, cfg.temperature))


def embedder(net: SimCLRNet, batch_size: int = 256) -> Callable[[Tensor], Tensor]:
    """images -> SimCLR encoder features (frozen, eval mode, CPU output)."""
    net.eval()
    return lambda x: batched(net.encoder, x, batch_size=batch_size, device=net)


class SupervisedPairNet(nn.Module):
    """Encoder and a linear map from ``f(b) - f(a)`` to the scaled deltas of every task."""

    def __init__(self, dim: int = 256, widths: list[int] | tuple[int, ...] = (32, 64, 128, 160), n_tasks: int = 3) -> None:
        super().__init__()
        self.encoder = ConvEncoder(dim, tuple(widths))
        self.head = nn.Linear(dim, n_tasks, bias=False)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        h = self.encoder(torch.cat([a, b]))
        return self.head(h[len(a):] - h[: len(a)])


def supervised_loss(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    """MSE on each pair's own task only (``mask``): the labelled sets are per task."""
    a, b = photometric(batch["a"].float() / 255), photometric(batch["b"].float() / 255)
    pred = model(a, b)
    return ((pred - batch["delta"]) ** 2 * batch["mask"]).sum(1).mean()


def train_supervised(profile: str | None, seed: int, cfg: ComFaceConfig, sets: dict[str, dict[str, dict[str, Tensor]]],
                     n_labelled: int, *, progress: bool | None = None) -> TrainResult:
    """Load or train the from-scratch baseline on ``n_labelled`` target pairs per task (the
    same subsets the ridge heads get for this seed), with ComFace's steps and batch."""
    parts: dict[str, list[Tensor]] = {"a": [], "b": [], "delta": [], "mask": []}
    for k, task in enumerate(TASKS):
        lab = sets[task]["labelled"]
        idx = labelled_subset(len(lab["a"]), n_labelled, seed)
        mask = torch.zeros(n_labelled, len(TASKS))
        mask[:, k] = 1
        for name, v in (("a", lab["a"][idx]), ("b", lab["b"][idx]), ("delta", lab["delta"][idx]), ("mask", mask)):
            parts[name].append(v)
    data = PoolSampler({k: torch.cat(v) for k, v in parts.items()}, cfg.train.batch_size)
    return train_or_load("comface-supervised", SupervisedPairNet, {**_model_kwargs(cfg), "n_tasks": len(TASKS)},
                         data, cfg.train, profile=profile, progress=progress,
                         key={"data": cfg.data, "n_labelled": n_labelled, "subset_seed": seed},
                         loss_fn=supervised_loss)


def predict_supervised(result: TrainResult, a: Tensor, b: Tensor, task: str, batch_size: int = 256) -> np.ndarray:
    """The supervised baseline's delta estimates for one task, in the task's units."""
    k = check_task(task, TASKS)
    net = result.model.eval()
    return (batched(net, a, b, batch_size=batch_size, device=net)[:, k] * DELTA_SCALE[task]).numpy()


# The metric names this method's runs write, per record: ``run_seed`` (above) for the claims record,
# with the verdicts benchmarks/claims.py adds, and the notebook's own record. A scenario naming
# ``record:metric`` is checked against these when it is loaded (facekit.records.check_metric_name):
# ``{a,b}`` is either alternative, ``*`` a part that depends on the profile.
RUN_METRICS = ("{comface,simclr,pca,supervised}/{age,expression,weight}/n*/{mae,spearman}",
               "{comface,simclr}/verify/{auc,auc_age,auc_expression}")
METRICS = {"claims_comface": (*RUN_METRICS, "C1/{age,expression,weight}/comface_minus_{pca,simclr}/mae", "{C1,C2}/holds"),
           "02_comface": ("{comface,simclr,pca,supervised}/{age,expression,weight}/n*/mae",
                          "comface/verify/{auc,auc_age,auc_expression}")}
