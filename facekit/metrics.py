"""Metric functions and confidence intervals (the records they end up in: :mod:`facekit.records`).

A claim ("method A beats baseline B") is checked with :func:`claim_holds`: every seed must go
the claimed way *and* the interval of the paired difference must exclude zero.

Metric functions take numpy arrays, torch tensors or lists and return a plain ``float``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats
from sklearn import metrics as skm

__all__ = [
    "Interval",
    "PairedDifference",
    "accuracy",
    "bootstrap_ci",
    "claim_holds",
    "frechet_distance",
    "macro_f1",
    "mae",
    "mean_ci",
    "multilabel_auc",
    "multilabel_f1",
    "optimistic_best_threshold_f1",
    "paired_difference",
    "psnr",
    "roc_auc",
    "spearman",
    "ssim",
]

ArrayLike = np.ndarray | torch.Tensor | Sequence[float]


def as_numpy(x: ArrayLike) -> np.ndarray:
    """Arrays, tensors and lists alike as one numpy array (what every metric function computes on)."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _same_length(name: str, a: np.ndarray, b: np.ndarray) -> None:
    if len(a) != len(b):
        raise ValueError(f"{name}: got {len(a)} and {len(b)} samples; pass arrays of equal length")


# --------------------------------------------------------------------------- intervals


class Interval(NamedTuple):
    """A point estimate with its confidence interval."""

    value: float
    low: float
    high: float


def mean_ci(values: ArrayLike, level: float = 0.95) -> Interval:
    """Mean with the Student t interval, the right interval for a handful of seeds
    (a normal interval would be too narrow at n = 3)."""
    v = as_numpy(values).astype(np.float64).ravel()
    if len(v) < 2:
        raise ValueError(f"mean_ci needs at least 2 values (one per seed), got {len(v)}")
    if not 0 < level < 1:
        raise ValueError(f"level={level!r} is not valid; pass a float in (0, 1), e.g. 0.95")
    mean = float(v.mean())
    half = float(stats.t.ppf((1 + level) / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return Interval(mean, mean - half, mean + half)


def bootstrap_ci(
    data: ArrayLike | tuple[ArrayLike, ...],
    fn: Callable[..., float] = np.mean,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap interval of ``fn`` over test samples, for one-seed numbers
    such as an AUC on a test set.

    ``data`` is one array, or a tuple of arrays resampled jointly along their first axis
    (e.g. ``(y_true, y_score)`` with ``fn=roc_auc``), so pairs stay pairs. Written out rather
    than using ``scipy.stats.bootstrap``, whose paired mode does not keep 2-D samples (such as
    multi-label scores) row-aligned.
    """
    arrays = tuple(as_numpy(d) for d in data) if isinstance(data, tuple) else (as_numpy(data),)
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(
            f"bootstrap_ci: arrays have lengths {[len(a) for a in arrays]}; pass equal lengths"
        )
    if n < 2 or n_boot < 1:
        raise ValueError(
            f"bootstrap_ci needs n >= 2 samples and n_boot >= 1, got n={n}, n_boot={n_boot}"
        )
    if not 0 < level < 1:
        raise ValueError(f"level={level!r} is not valid; pass a float in (0, 1), e.g. 0.95")
    rng = np.random.default_rng(seed)
    boots = np.empty(n_boot)
    for i in range(n_boot):
        idx = rng.integers(0, n, n)
        boots[i] = fn(*(a[idx] for a in arrays))
    bad = int((~np.isfinite(boots)).sum())
    if bad:
        raise ValueError(
            f"fn was undefined (non-finite) on {bad} of {n_boot} resamples, e.g. an AUC of a resample "
            f"with one class; bootstrap a larger test set than n={n}"
        )
    low, high = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(fn(*arrays)), float(low), float(high))


class PairedDifference(NamedTuple):
    """``a - b`` per seed: mean, t interval, and whether the claim "a is better" holds."""

    mean: float
    low: float
    high: float
    n: int
    every_seed: bool
    holds: bool


def paired_difference(
    a_per_seed: ArrayLike,
    b_per_seed: ArrayLike,
    *,
    higher_is_better: bool = True,
    level: float = 0.95,
) -> PairedDifference:
    """Compare two methods run on the same seeds. Pairing removes the seed-to-seed variance that
    both share, so it detects smaller effects than comparing two separate intervals.

    ``every_seed``: each seed's difference goes the claimed way (strictly). ``holds``: that, and
    the interval excludes zero on the claimed side.
    """
    a, b = as_numpy(a_per_seed).astype(np.float64).ravel(), as_numpy(b_per_seed).astype(np.float64).ravel()
    _same_length("paired_difference", a, b)
    diff = a - b
    mean, low, high = mean_ci(diff, level)
    every = bool(np.all(diff > 0)) if higher_is_better else bool(np.all(diff < 0))
    excludes_zero = low > 0 if higher_is_better else high < 0
    return PairedDifference(mean, low, high, len(diff), every, every and excludes_zero)


def claim_holds(
    a_per_seed: ArrayLike,
    b_per_seed: ArrayLike,
    *,
    higher_is_better: bool = True,
    level: float = 0.95,
) -> bool:
    """The project's rule for "A beats B": every seed goes the claimed way and the interval of
    the paired difference excludes zero."""
    return paired_difference(
        a_per_seed, b_per_seed, higher_is_better=higher_is_better, level=level
    ).holds


# --------------------------------------------------------------------- regression / ranking


def mae(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean absolute error, in the target's own units (e.g. years of age difference), which is
    what ComFace reports for change estimation."""
    return float(skm.mean_absolute_error(as_numpy(y_true), as_numpy(y_pred)))


def spearman(x: ArrayLike, y: ArrayLike) -> float:
    """Spearman rank correlation: does the model order changes correctly, whatever its scale?
    (Representations are compared before any calibration.)"""
    a, b = as_numpy(x).ravel(), as_numpy(y).ravel()
    _same_length("spearman", a, b)
    return float(stats.spearmanr(a, b).statistic)


# ------------------------------------------------------------------------ classification


def roc_auc(y_true: ArrayLike, scores: ArrayLike) -> float:
    """ROC-AUC, for face verification: ``y_true`` is 1 for same-person pairs, ``scores`` a
    similarity. Threshold-free, so it rates the embedding rather than one operating point."""
    return float(skm.roc_auc_score(as_numpy(y_true).ravel(), as_numpy(scores).ravel()))


def _labels(y_pred: ArrayLike) -> np.ndarray:
    p = as_numpy(y_pred)
    return p.argmax(axis=1) if p.ndim == 2 else p


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Fraction correct. ``y_pred`` is labels, or (n, classes) scores (argmax is taken)."""
    return float(skm.accuracy_score(as_numpy(y_true), _labels(y_pred)))


def macro_f1(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """F1 averaged over classes with equal weight, so rare expressions count as much as common
    ones (accuracy hides a classifier that ignores them). ``y_pred``: labels or scores."""
    return float(skm.f1_score(as_numpy(y_true), _labels(y_pred), average="macro", zero_division=0))


def _multilabel(y_true: ArrayLike, scores: ArrayLike,
                known: ArrayLike | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per label, ``(labels, scores)`` over the rows where the label is known (all rows without
    ``known``), for the labels with at least one positive example."""
    y, s = as_numpy(y_true).astype(int), as_numpy(scores).astype(np.float64)
    if y.ndim != 2 or y.shape != s.shape:
        raise ValueError(
            f"pass (samples, labels) arrays of the same shape, got {y.shape} and {s.shape}"
        )
    k = np.ones_like(y, dtype=bool) if known is None else as_numpy(known).astype(bool)
    if k.shape != y.shape:
        raise ValueError(f"known has shape {k.shape}; pass one flag per label, shape {y.shape}")
    cols = [(y[k[:, j], j], s[k[:, j], j]) for j in range(y.shape[1])]
    cols = [(yj, sj) for yj, sj in cols if yj.sum() > 0]
    if not cols:
        raise ValueError("no label has a positive example; F1 is undefined")
    return cols


def multilabel_f1(y_true: ArrayLike, scores: ArrayLike, threshold: float = 0.5,
                  known: ArrayLike | None = None) -> float:
    """Mean per-label F1 at a fixed threshold: the AU-detection protocol (FMAE-IAT).

    ``scores`` are probabilities (apply a sigmoid to logits). Labels with no positive example
    are left out: their F1 is undefined, and counting them as 0 or 1 would bias the mean.
    ``known`` (same shape, optional) leaves out the entries whose label is unknown (a trace AU,
    neither present nor absent).
    """
    # one column at a time: with a single label column sklearn would read the input as binary
    return float(np.mean([skm.f1_score(yj, (sj >= threshold).astype(int), zero_division=0)
                          for yj, sj in _multilabel(y_true, scores, known)]))


def multilabel_auc(y_true: ArrayLike, scores: ArrayLike, known: ArrayLike | None = None) -> float:
    """Mean per-label ROC-AUC over labels with both classes present: threshold-free, so it tells
    a detector that ranks faces by the AU apart from one that only moves its threshold.
    ``known`` as in :func:`multilabel_f1`."""
    both = [(yj, sj) for yj, sj in _multilabel(y_true, scores, known) if yj.sum() < len(yj)]
    if not both:
        raise ValueError("no label has both positive and negative examples; ROC-AUC is undefined")
    return float(np.mean([skm.roc_auc_score(yj, sj) for yj, sj in both]))


def optimistic_best_threshold_f1(y_true: ArrayLike, scores: ArrayLike, known: ArrayLike | None = None) -> float:
    """OPTIMISTIC mean per-label F1 with each label's threshold chosen on the evaluated data.

    Some AU papers report this; it uses test labels to pick the threshold, so it overstates
    what a deployed detector achieves. Report it only labelled as optimistic, beside
    :func:`multilabel_f1` at a threshold fixed in advance. ``known`` as in :func:`multilabel_f1`.
    """
    best = []
    for yj, sj in _multilabel(y_true, scores, known):
        precision, recall, _ = skm.precision_recall_curve(yj, sj)
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.where(
                precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0
            )
        best.append(f1.max())
    return float(np.mean(best))


# -------------------------------------------------------------------------------- images


def _image_pair(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if (
        not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor))
        or x.ndim != 4
        or x.shape != y.shape
    ):
        shapes = [
            tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__ for t in (x, y)
        ]
        raise ValueError(f"pass two N x C x H x W tensors of the same shape, got {shapes}")
    dtype = torch.promote_types(x.dtype, torch.float32)
    return x.to(dtype), y.to(dtype)


def psnr(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB, averaged over images (per-image PSNR, then mean, so
    one perfect image does not dominate). ``inf`` when every image is identical."""
    p, t = _image_pair(pred, target)
    mse = (p - t).pow(2).flatten(1).mean(1)
    return float((10 * torch.log10(data_range**2 / mse)).mean())


def _gaussian(window_size: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    coords = torch.arange(window_size, dtype=like.dtype, device=like.device) - (window_size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = 1.0,
    window_size: int = 11,
    sigma: float = 1.5,
) -> float:
    """Structural similarity (Wang et al. 2004) with an 11-tap Gaussian window, averaged over
    the valid region, channels and images. Scores structure rather than pixel error, so it
    tracks perceived reconstruction quality better than PSNR. Inputs: N x C x H x W in
    ``[0, data_range]``; matches ``skimage.metrics.structural_similarity(gaussian_weights=True)``.
    """
    a, b = _image_pair(x, y)
    n, c, h, w = a.shape
    if min(h, w) < window_size:
        raise ValueError(
            f"images are {h}x{w}; SSIM needs at least {window_size}x{window_size} (or a smaller window_size)"
        )
    g = _gaussian(window_size, sigma, a)
    kh, kw = g.view(1, 1, -1, 1).repeat(c, 1, 1, 1), g.view(1, 1, 1, -1).repeat(c, 1, 1, 1)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(t, kh, groups=c), kw, groups=c)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    score = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )
    return float(score.mean())


# ------------------------------------------------------------------------------ features


def frechet_distance(features_a: ArrayLike, features_b: ArrayLike) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (n x d each), the
    statistic behind FID: ``|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))``.

    It compares whole distributions (mean and spread), so it penalises a generator that
    collapses onto a few good faces. The matrix square root's trace is taken from the
    eigenvalues of the symmetric ``S_a^(1/2) S_b S_a^(1/2)``, which stays real and stable
    where ``scipy.linalg.sqrtm`` of the non-symmetric product can return complex noise.
    Biased for small n: compare sets of equal size.
    """
    a, b = as_numpy(features_a).astype(np.float64), as_numpy(features_b).astype(np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(
            f"pass two (n >= 2, d) feature arrays with the same d, got {a.shape} and {b.shape}"
        )
    mu = a.mean(0) - b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    evals, evecs = np.linalg.eigh(cov_a)
    root_a = (evecs * np.sqrt(evals.clip(min=0))) @ evecs.T
    cross = np.linalg.eigvalsh(root_a @ cov_b @ root_a).clip(min=0)
    return float(mu @ mu + np.trace(cov_a) + np.trace(cov_b) - 2 * np.sqrt(cross).sum())
