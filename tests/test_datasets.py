import pytest
import torch

from facekit.synth.datasets import FaceDataset, IdentitySplit, PairDataset, SequenceDataset


def test_item_i_is_the_same_image_every_time():
    ds = FaceDataset(40, seed=3)
    whole = ds.batch(range(10))
    again = FaceDataset(40, seed=3).batch([7, 2])
    assert torch.equal(again["image"][0], whole["image"][7])
    assert torch.equal(ds[2]["image"], whole["image"][2])
    assert not torch.equal(FaceDataset(40, seed=4).batch([2])["image"][0], whole["image"][2])


def test_identity_disjoint_splits():
    sp = IdentitySplit(n_identities=100)
    train, val, test = (set(sp.ids(s).tolist()) for s in ("train", "val", "test"))
    assert not (train & val) and not (train & test) and not (val & test)
    assert len(train | val | test) == 100
    ds = FaceDataset(50, split="test", identities=sp)
    assert set(ds.batch(range(50))["person"].tolist()) <= test
    with pytest.raises(ValueError, match="split='dev' is not valid"):
        sp.ids("dev")


def test_emotion_labels_match_aus():
    ds = FaceDataset(32, expressions="emotion")
    b = ds.batch(range(32))
    neutral = b["emotion"] == 0
    assert bool((b["au"][neutral] == 0).all())
    assert bool((b["au"][~neutral].sum(1) > 0).all())


def test_with_neutral_counterpart_differs_only_by_expression():
    ds = FaceDataset(4, expressions="emotion", with_neutral=True, seed=1)
    b = ds.batch(range(4))
    expressive = b["emotion"] != 0
    assert bool(((b["image"] - b["neutral_image"]).abs().amax((1, 2, 3)) > 0)[expressive].all())


@pytest.mark.parametrize("factor", ["expression", "weight", "age"])
def test_pairs_change_one_factor_by_a_known_delta(factor):
    ds = PairDataset(8, factor=factor, nuisance=0.0)
    b = ds.batch(range(8))
    assert torch.allclose(b["delta"], b["value_b"] - b["value_a"])
    big = b["delta"].abs() > b["delta"].abs().median()
    diff = (b["a"] - b["b"]).abs().mean((1, 2, 3))
    assert float(diff[big].mean()) > float(diff[~big].mean())  # bigger change, bigger image difference


def test_pair_zero_delta_and_zero_nuisance_gives_identical_views():
    ds = PairDataset(4, factor="age", nuisance=0.0)
    idx = torch.arange(4)
    base, emotion = ds._held(idx)
    v = torch.full((4,), 40.0)
    a = ds.render_params(ds._view(base, emotion, v, idx, 0))
    b = ds.render_params(ds._view(base, emotion, v, idx, 1))
    assert torch.equal(a, b)


def test_sequences_are_monotonic():
    ds = SequenceDataset(3, factor="weight", length=4)
    b = ds.batch([0, 1, 2])
    assert b["images"].shape == (3, 4, 3, 64, 64)
    assert bool((b["values"].diff(dim=1) >= 0).all())


def test_bad_arguments():
    with pytest.raises(ValueError, match="expressions='happy' is not valid"):
        FaceDataset(3, expressions="happy")
    with pytest.raises(ValueError, match="factor='height' is not valid"):
        PairDataset(3, factor="height")
    with pytest.raises(IndexError, match="index 5 out of range for a dataset of 3 items"):
        FaceDataset(3).batch([5])
    with pytest.raises(ValueError, match="backend='unity' is not valid"):
        FaceDataset(3, backend="unity")


def test_loader_covers_every_item_once():
    ds = FaceDataset(10, size=32)
    seen = torch.cat([b["person"] for b in ds.loader(4, shuffle=True, seed=1)])
    assert len(seen) == 10
