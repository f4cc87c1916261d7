"""Generative-contrastive networks: data, U-Net, staged training, the public API and bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from facekit.io import to_uint8
from facekit.methods import gencon
from facekit.methods.gencon import DataConfig, GenConConfig
from facekit.methods.gencon.config import stage_train as _tc
from facekit.methods.gencon.viz import IntensityExplorer
from facekit.models.unet import UNet
from facekit.synth.params import EMOTIONS, emotion_matrix
from facekit.synth.worlds import INTENSITY_BIN_EDGES


def tiny_cfg() -> GenConConfig:
    return GenConConfig(
        model={"g_widths": [8, 8, 16], "dim": 16, "e_widths": [8, 8, 8, 16], "n_classes": len(EMOTIONS)},
        oracle_model={"dim": 8, "widths": [8, 8, 8, 8]},
        data=DataConfig(size=32, n_identities=20, per_person=4, n_test=24),
        oracle_train=_tc(3, 16, 2e-3), generator_train=_tc(4, 8, 2e-3), encoder_train=_tc(4, 8, 2e-3),
        finetune_train=_tc(4, 8, 5e-4),
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The tiny config trained through every stage, in a private cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACEKIT_CACHE", str(tmp_path_factory.mktemp("cache")))
        cfg = tiny_cfg()
        final = gencon.train("smoke", 0, cfg, progress=False)
        stage2 = gencon.train_stage(cfg, "smoke", "encoder", gencon.GenConNet, None, False).model
        model = gencon.load("smoke", 0, cfg=cfg)
        yield {"cfg": cfg, "final": final, "stage2": stage2, "model": model}


def test_unet_starts_as_identity_and_checks_sizes():
    net = UNet((8, 16, 32))
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(net(x), x)
    with pytest.raises(ValueError, match="multiples of 4"):
        net(torch.rand(1, 3, 30, 30))
    with pytest.raises(ValueError, match="N x 3 x H x W"):
        net(torch.rand(1, 1, 32, 32))
    with pytest.raises(ValueError, match="widths"):
        UNet((8, 12))


def test_expression_set_has_exact_neutrals_and_disjoint_persons(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEKIT_CACHE", str(tmp_path))
    cfg = tiny_cfg()
    train, test = gencon.expression_set(cfg, "train"), gencon.expression_set(cfg, "test")
    neutral = train["emotion"] == 0
    assert neutral.any() and (~neutral).any()
    assert torch.equal(train["image"][neutral], train["neutral"][neutral])
    assert (train["bin"][neutral] == -1).all() and (train["intensity"][neutral] == 0).all()
    diff = (train["image"][~neutral].float() - train["neutral"][~neutral].float()).abs().mean((1, 2, 3))
    assert (diff > 0).float().mean() > 0.9  # a faint contempt can vanish in the pixels, nothing else does
    for k, (lo, hi) in enumerate(cfg.data.bins):
        m = train["bin"] == k
        assert ((train["intensity"][m] >= lo) & (train["intensity"][m] <= hi)).all()
    assert not set(train["person"].tolist()) & set(test["person"].tolist())
    with pytest.raises(ValueError, match="split='dev'"):
        gencon.expression_set(cfg, "dev")
    with pytest.raises(ValueError, match="bins="):
        DataConfig(bins=((0.0, 0.5), (0.5, 1.0), (0.2, 0.1)))


def test_faces_come_from_the_named_world(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEKIT_CACHE", str(tmp_path))
    cfg = tiny_cfg()
    cfg.data = DataConfig(world="procedural", size=32, n_identities=20, per_person=2, n_test=8)
    train = gencon.expression_set(cfg, "train")
    w = gencon.world_of(cfg.data)
    assert (w.name, w.size, w.framing, w.n_identities) == ("procedural", 32, "face", 20)
    p, extra = w.faces(len(train["emotion"]), split="train", seed=11, expressions="neutral").params([0, 1])
    assert torch.equal(extra["person"], train["person"][:2])
    au = emotion_matrix()[train["emotion"][:2]] * train["intensity"][:2, None]
    assert torch.equal(to_uint8(w.render(p.replace(au=au))), train["image"][:2])  # the world drew these faces
    assert torch.equal(to_uint8(w.render(w.neutral(p))), train["neutral"][:2])
    assert set(train["person"].tolist()) == set(w.identities.ids("train").tolist())
    other = DataConfig(world="procedural-target", size=32, n_identities=20, per_person=2, n_test=8)
    cfg.data = other
    assert not torch.equal(gencon.expression_set(cfg, "train")["image"], train["image"])  # the world is in the key


def test_oracle_pairs_are_two_photos_of_one_training_person(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEKIT_CACHE", str(tmp_path))
    cfg = tiny_cfg()
    pairs, train = gencon.oracle_pairs(cfg), gencon.expression_set(cfg, "train")
    n_persons = len(cfg.data.identities().ids("train"))
    assert len(pairs["person"]) == (cfg.data.per_person - 1) * n_persons
    assert set(pairs["person"].tolist()) <= set(train["person"].tolist())
    assert not set(pairs["person"].tolist()) & set(cfg.data.identities().ids("test").tolist())
    assert all(not torch.equal(a, b) for a, b in zip(pairs["a"], pairs["b"], strict=True))


def test_data_config_errors_name_the_field():
    with pytest.raises(ValueError, match="DataConfig.world='nope' is not valid; choose one of .*'default'"):
        DataConfig(world="nope")
    with pytest.raises(ValueError, match="DataConfig.per_person=1 is not valid"):
        DataConfig(per_person=1)
    assert DataConfig().bins == tuple(zip(INTENSITY_BIN_EDGES[:-1], INTENSITY_BIN_EDGES[1:], strict=True))


def test_generator_learns_to_remove_the_expression(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEKIT_CACHE", str(tmp_path))
    data = gencon.expression_set(tiny_cfg(), "train")
    m = data["bin"] == 2  # strong expressions
    x, n = data["image"][m].float() / 255, data["neutral"][m].float() / 255
    torch.manual_seed(0)
    g = UNet((8, 16, 32))
    opt = torch.optim.Adam(g.parameters(), 3e-3)
    for _ in range(60):
        err = g(x) - n
        loss = err.abs().mean() + 100 * err.pow(2).mean()  # gencon's reconstruction loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert (g(x) - n).abs().mean() < 0.8 * (x - n).abs().mean()  # better than copying the query


def test_stages_freeze_then_finetune_the_generator(trained):
    g_stage2 = trained["stage2"].generator.state_dict()
    g_final = trained["model"].net.generator.state_dict()
    # stage 2 trained E only; stage 3 moved G too
    assert any(not torch.equal(g_stage2[k], g_final[k]) for k in g_final)
    e2, e3 = trained["stage2"].encoder.state_dict(), trained["model"].net.encoder.state_dict()
    assert any(not torch.equal(e2[k], e3[k]) for k in e3)
    hist = trained["final"].history
    assert {"ce", "l1", "identity"} <= set(hist[-1])


def test_public_api_shapes(trained):
    model = trained["model"]
    assert model.classes == list(EMOTIONS)
    x = torch.rand(3, 3, 50, 50)
    ref = model.reference(x)
    assert ref.shape == (3, 3, 32, 32) and 0 <= float(ref.min()) and float(ref.max()) <= 1
    p = model.predict_proba(x)
    assert p.shape == (3, len(EMOTIONS)) and np.allclose(p.sum(1), 1, atol=1e-5)
    assert model.reference(torch.rand(2, 1, 32, 32)).shape == (2, 3, 32, 32)  # grey photos


@pytest.mark.parametrize("bad, match", [
    (torch.rand(3, 32, 32), "pass a batch N x 3 x H x W"),
    (torch.rand(0, 3, 32, 32), "empty batch"),
    (torch.rand(2, 4, 32, 32), "shape"),
    (torch.rand(2, 3, 32, 40), "32x40 pixels; pass square"),
    (torch.rand(2, 3, 8, 8), "at least 16x16"),
    (torch.randint(0, 255, (2, 3, 32, 32), dtype=torch.uint8), "divide uint8 images by 255"),
    (torch.rand(2, 3, 32, 32) * 255, "pass floats in \\[0, 1\\]"),
    ([[0.5]], "torch.Tensor"),
])
def test_bad_images_raise_clear_errors(trained, bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        trained["model"].reference(bad)


def test_load_without_cache_names_notebook_and_command(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEKIT_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="05_reference_faces.*facekit train gencon"):
        gencon.load("smoke", 0, cfg=tiny_cfg())


def test_real_photos_warn_when_no_face(trained):
    skimage_data = pytest.importorskip("skimage.data")
    pytest.importorskip("cv2")
    model = trained["model"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        q, ref, recs = model.reference_photos([skimage_data.astronaut()])
    assert recs[0].status == "ok" and ref.shape == (1, 3, 32, 32) and q.shape == ref.shape
    flat = np.full((120, 120, 3), 0.5, dtype=np.float32)
    with pytest.warns(UserWarning, match="no reference made"):
        q, ref, recs = model.reference_photos([flat])
    assert len(ref) == 0 and recs[0].status == "no_face"
    with pytest.warns(UserWarning, match="found no face"):
        q, ref, recs = model.reference_photos([flat], fallback="center")
    assert len(ref) == 1


def test_widget_updates_with_the_slider(trained):
    with pytest.raises(ValueError, match="person=-3 is not valid; pick a test person"):
        gencon.person_photo(trained["cfg"].data, -3)
    w = IntensityExplorer(trained["model"], emotion="surprise")
    before, caption = w.images[0].value, w.caption.value
    w.intensity.value = 1.0
    assert w.images[0].value != before and w.caption.value != caption and "1.00" in w.caption.value
    with pytest.raises(ValueError, match="emotion='joy'"):
        IntensityExplorer(trained["model"], emotion="joy")
