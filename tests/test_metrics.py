"""facekit.metrics: intervals, claim rule, record files, metric functions vs reference code."""

from __future__ import annotations

import json
import math
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from scipy import stats
from sklearn import metrics as skm

import facekit
from facekit import metrics as fm
from facekit import records as fr
from facekit.config import config_hash
from facekit.train import TrainConfig

RNG = np.random.default_rng(0)


# ----------------------------------------------------------------------------- intervals


def test_mean_ci_is_the_student_t_interval() -> None:
    # mean 2, sd 1, n 3: half-width t(0.975, df=2) / sqrt(3) = 4.302653 / 1.732051
    value, low, high = fm.mean_ci([1.0, 2.0, 3.0])
    assert value == 2.0
    assert (low, high) == pytest.approx((2 - 2.484138, 2 + 2.484138), abs=1e-6)
    assert fm.mean_ci(torch.tensor([5.0, 5.0])) == (5.0, 5.0, 5.0)
    with pytest.raises(ValueError, match="at least 2 values"):
        fm.mean_ci([1.0])


def test_bootstrap_ci_is_seeded_and_keeps_pairs_together() -> None:
    x = RNG.normal(size=400)
    iv = fm.bootstrap_ci(x, n_boot=500, seed=1)
    assert iv == fm.bootstrap_ci(x, n_boot=500, seed=1)
    se = x.std(ddof=1) / math.sqrt(len(x))
    assert iv.low < iv.value < iv.high
    assert iv.high - iv.low == pytest.approx(2 * 1.96 * se, rel=0.15)
    y = (RNG.random(300) < 0.5).astype(int)
    s = y + RNG.normal(size=300)
    auc = fm.bootstrap_ci((y, s), fm.roc_auc, n_boot=200, seed=0)
    assert auc.value == pytest.approx(skm.roc_auc_score(y, s))
    assert auc.low < auc.value < auc.high
    with pytest.raises(ValueError, match="lengths"):
        fm.bootstrap_ci((y, s[:-1]), fm.roc_auc)
    with pytest.raises(ValueError, match="undefined|not defined"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # resamples with a single class have no AUC
        fm.bootstrap_ci(([0, 1, 0, 0, 0], [0.1, 0.9, 0.4, 0.7, 0.6]), fm.roc_auc, n_boot=50)


def test_paired_difference_and_the_claim_rule() -> None:
    d = fm.paired_difference([0.80, 0.82, 0.81], [0.70, 0.71, 0.72])  # diffs .10 .11 .09
    assert d.mean == pytest.approx(0.10)
    assert (d.low, d.high) == pytest.approx((0.10 - 0.0248414, 0.10 + 0.0248414), abs=1e-6)
    assert d.n == 3 and d.every_seed and d.holds
    # one seed goes the other way: no claim, whatever the mean says
    assert not fm.claim_holds([0.80, 0.82, 0.69], [0.70, 0.71, 0.72])
    # every seed agrees but the interval includes zero: still no claim
    wide = fm.paired_difference([0.71, 1.70, 0.72], [0.70, 0.70, 0.70])
    assert wide.every_seed and wide.low < 0 and not wide.holds
    # lower is better (errors)
    assert fm.claim_holds([1.0, 1.1, 1.05], [2.0, 2.1, 2.0], higher_is_better=False)
    assert not fm.claim_holds([1.0, 1.1, 1.05], [2.0, 2.1, 2.0])


# ------------------------------------------------------------------------------- records


@pytest.fixture
def results(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("FACEKIT_RESULTS", str(tmp_path))
    return tmp_path


def test_record_writes_every_field(results: Path) -> None:
    cfg = TrainConfig(steps=10)
    path = fr.record(
        "03_comface",
        [
            fr.Metric.from_seeds("expr_mae", [0.3, 0.32, 0.31], seeds=[0, 1, 2]),
            fr.Metric.from_bootstrap(
                "verif_auc",
                (np.arange(40) % 2, np.linspace(0, 1, 40)),
                fm.roc_auc,
                seed=0,
                n_boot=50,
            ),
        ],
        profile="smoke",
        config=cfg,
    )
    assert path == results / "smoke" / "03_comface.json"
    doc = json.loads(path.read_text())
    assert doc["notebook"] == "03_comface" and doc["profile"] == "smoke"
    entry = doc["metrics"]["expr_mae"]
    fields = {
        "name",
        "value",
        "ci",
        "ci_level",
        "ci_method",
        "n",
        "seeds",
        "values",
        "extra",
        "profile",
        "config_hash",
        "version",
        "git_rev",
        "time",
    }
    assert set(entry) == fields and set(doc["metrics"]["verif_auc"]) == fields
    assert entry["value"] == pytest.approx(0.31) and entry["n"] == 3 and entry["seeds"] == [0, 1, 2]
    assert entry["ci"] == pytest.approx(list(fm.mean_ci([0.3, 0.32, 0.31])[1:]))
    assert entry["ci_method"] == "t" and entry["ci_level"] == 0.95
    assert entry["config_hash"] == config_hash(cfg) and entry["version"] == facekit.__version__
    assert entry["git_rev"] == "unknown" or re.fullmatch(r"[0-9a-f]{40}(-dirty)?", entry["git_rev"])
    assert entry["time"].endswith("+00:00")
    assert (
        doc["metrics"]["verif_auc"]["ci_method"] == "bootstrap"
        and doc["metrics"]["verif_auc"]["n"] == 40
    )


def test_record_replaces_by_name_atomically(results: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fr.record("01_synth", {"a": 1.0, "b": 2.0}, profile="smoke", seeds=[0])
    fr.record("01_synth", {"a": 3.0}, profile="smoke")
    recs = fr.load_records("smoke")
    assert {k: v["value"] for k, v in recs["01_synth"].items()} == {"a": 3.0, "b": 2.0}
    assert recs["01_synth"]["b"]["seeds"] == [0] and recs["01_synth"]["a"]["ci"] is None
    before = (results / "smoke" / "01_synth.json").read_bytes()

    def crash(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("facekit.io.os.replace", crash)
    with pytest.raises(OSError, match="disk full"):
        fr.record("01_synth", {"a": 4.0}, profile="smoke")
    assert (results / "smoke" / "01_synth.json").read_bytes() == before
    assert [p.name for p in (results / "smoke").iterdir()] == ["01_synth.json"]  # no temp left


def test_record_rejects_bad_input(results: Path) -> None:
    with pytest.raises(ValueError, match="non-finite"):
        fr.record("01_synth", {"psnr": float("inf")}, profile="smoke")
    with pytest.raises(ValueError, match="notebook="):
        fr.record("../evil", {"a": 1.0}, profile="smoke")
    with pytest.raises(ValueError, match="profile="):
        fr.record("01_synth", {"a": 1.0}, profile="big")
    with pytest.raises(ValueError, match="one value per seed"):
        fr.Metric.from_seeds("x", [1.0, 2.0], seeds=[0])
    (results / "smoke").mkdir(parents=True, exist_ok=True)
    (results / "smoke" / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="bad.json is not valid JSON"):
        fr.load_records("smoke")


# ------------------------------------------------------------------- metric functions


def test_scalar_metrics_match_sklearn_and_scipy() -> None:
    y = RNG.integers(0, 4, 200)
    logits = RNG.normal(size=(200, 4)) + np.eye(4)[y] * 1.5
    pred = logits.argmax(1)
    assert fm.accuracy(torch.from_numpy(y), torch.from_numpy(logits)) == pytest.approx(
        skm.accuracy_score(y, pred)
    )
    assert fm.macro_f1(y, logits) == pytest.approx(skm.f1_score(y, pred, average="macro"))
    t, p = RNG.normal(size=100), RNG.normal(size=100)
    assert fm.mae(t, p) == pytest.approx(np.abs(t - p).mean())
    assert fm.spearman(t, p) == pytest.approx(stats.spearmanr(t, p).statistic)
    assert fm.spearman(t, np.exp(t)) == pytest.approx(1.0)
    same = RNG.integers(0, 2, 100)
    similarity = same + RNG.normal(size=100)
    assert fm.roc_auc(same, torch.from_numpy(similarity)) == pytest.approx(
        skm.roc_auc_score(same, similarity)
    )


def test_multilabel_f1_fixed_and_optimistic() -> None:
    y = (RNG.random((150, 5)) < 0.3).astype(int)
    y[:, 4] = 0  # an AU that never occurs: left out of the mean
    scores = np.clip(y * 0.4 + RNG.random((150, 5)) * 0.6, 0, 1)
    expected = skm.f1_score(y[:, :4], (scores[:, :4] >= 0.5).astype(int), average="macro")
    assert fm.multilabel_f1(y, scores) == pytest.approx(expected)
    brute = np.mean(
        [
            max(
                skm.f1_score(y[:, j], (scores[:, j] >= th).astype(int), zero_division=0)
                for th in scores[:, j]
            )
            for j in range(4)
        ]
    )
    best = fm.optimistic_best_threshold_f1(y, scores)
    assert best == pytest.approx(brute)
    assert best >= fm.multilabel_f1(y, scores)
    with pytest.raises(ValueError, match="same shape"):
        fm.multilabel_f1(y, scores[:, :3])
    # ROC-AUC: the AU that never occurs is left out; a constant detector scores 0.5 whatever its threshold
    assert fm.multilabel_auc(y, scores) == pytest.approx(np.mean([skm.roc_auc_score(y[:, j], scores[:, j]) for j in range(4)]))
    assert fm.multilabel_auc(y, np.full(y.shape, 0.9)) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="ROC-AUC is undefined"):
        fm.multilabel_auc(np.ones((4, 2)), np.zeros((4, 2)))


def test_psnr_known_value() -> None:
    target = torch.rand(2, 3, 16, 16) * 0.8
    assert fm.psnr(target + 0.1, target) == pytest.approx(20.0, abs=1e-4)  # mse 0.01


def test_ssim_identity_noise_and_skimage() -> None:
    structural_similarity = pytest.importorskip("skimage.metrics").structural_similarity
    gen = torch.Generator().manual_seed(0)
    img = torch.nn.functional.avg_pool2d(
        torch.rand(2, 3, 72, 72, generator=gen), 3, 1
    )  # smooth, 70x70
    assert fm.ssim(img, img) == pytest.approx(1.0, abs=1e-6)
    scores = [
        fm.ssim((img + s * torch.randn(img.shape, generator=gen)).clamp(0, 1), img)
        for s in (0.02, 0.1, 0.3)
    ]
    assert 1.0 > scores[0] > scores[1] > scores[2]
    noisy = (img + 0.1 * torch.randn(img.shape, generator=gen)).clamp(0, 1)
    ref = np.mean(
        [
            structural_similarity(
                noisy[i].numpy(),
                img[i].numpy(),
                channel_axis=0,
                data_range=1.0,
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
            )
            for i in range(2)
        ]
    )
    assert fm.ssim(noisy, img) == pytest.approx(ref, abs=1e-4)
    with pytest.raises(ValueError, match="at least 11x11"):
        fm.ssim(img[..., :8, :8], img[..., :8, :8])


def test_frechet_distance() -> None:
    a, b = RNG.normal(size=(500, 6)), RNG.normal(loc=0.5, scale=1.5, size=(400, 6))
    assert fm.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    mu = a.mean(0) - b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ref = mu @ mu + np.trace(ca + cb - 2 * scipy.linalg.sqrtm(ca @ cb).real)
    assert fm.frechet_distance(torch.from_numpy(a), b) == pytest.approx(ref, rel=1e-6)
    # 1-D closed form: (m_a - m_b)^2 + (s_a - s_b)^2
    x, z = a[:, :1], b[:, :1]
    closed = (x.mean() - z.mean()) ** 2 + (x.std(ddof=1) - z.std(ddof=1)) ** 2
    assert fm.frechet_distance(x, z) == pytest.approx(closed)
    with pytest.raises(ValueError, match="same d"):
        fm.frechet_distance(a, b[:, :3])


def test_multilabel_f1_with_one_label_column() -> None:
    y = np.array([[1], [0], [1], [0]])
    s = np.array([[0.9], [0.2], [0.1], [0.7]])  # one hit, one miss, one false alarm: F1 = 0.5
    assert fm.multilabel_f1(y, s) == pytest.approx(0.5)


def test_multilabel_scores_leave_out_unknown_labels() -> None:
    """An unknown entry (a trace AU) is neither a positive nor a negative: it changes no score."""
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, (40, 3))
    s = rng.random((40, 3))
    known = np.ones_like(y, dtype=bool)
    known[:5, 0] = False
    for fn in (fm.multilabel_f1, fm.multilabel_auc, fm.optimistic_best_threshold_f1):
        flipped = y.copy()
        flipped[:5, 0] = 1 - flipped[:5, 0]
        assert fn(y, s, known=known) == pytest.approx(fn(flipped, s, known=known))
    assert fm.multilabel_f1(y, s, known=known) != pytest.approx(fm.multilabel_f1(1 - y, s, known=known))
    assert fm.multilabel_auc(y[5:], s[5:], known=known[5:]) == pytest.approx(fm.multilabel_auc(y[5:], s[5:]))
    with pytest.raises(ValueError, match=r"known has shape \(40, 2\)"):
        fm.multilabel_f1(y, s, known=known[:, :2])
