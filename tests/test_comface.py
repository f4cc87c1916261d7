"""ComFace: losses, a short training run, transfer heads, bad input and the load round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facekit.io import to_uint8
from facekit.methods import comface
from facekit.methods.comface import ChangeHead, ComFaceConfig, ComFaceNet, DataConfig
from facekit.methods.comface.data import world_of
from facekit.methods.common import PoolSampler
from facekit.models import ConvEncoder, augment, supcon_loss
from facekit.synth.framing import reframe
from facekit.synth.worlds import get_world
from facekit.train import TrainConfig, fit

TINY_MODEL = {"dim": 32, "widths": [8, 8, 16, 16], "inter_dim": 16, "intra_dim": 8, "tasks": list(comface.TASKS)}


def tiny_cfg(steps: int = 3, world: str = "procedural", test_world: str = "procedural-target") -> ComFaceConfig:
    """Procedural worlds keep the tests fast; the default config draws from the ICT worlds."""
    return ComFaceConfig(model=dict(TINY_MODEL),
                         data=DataConfig(world=world, test_world=test_world, size=32, n_identities=60, pool_pairs=8,
                                         n_labelled=(12,), n_eval=12, n_verify=6),
                         train=TrainConfig(steps=steps, batch_size=8, lr=3e-3, log_every=1))


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEKIT_CACHE", str(tmp_path / "cache"))


def test_supcon_pulls_positives_together():
    labels = torch.arange(8).repeat(2)
    centres = torch.randn(8, 16)
    aligned = torch.cat([centres, centres + 0.01 * torch.randn(8, 16)])
    shuffled = torch.cat([centres, centres[torch.randperm(8)]])
    assert supcon_loss(aligned, labels) < supcon_loss(shuffled, labels)
    with pytest.raises(ValueError, match="positive"):
        supcon_loss(torch.randn(4, 3), torch.arange(4))


def test_encoder_and_augment_shapes():
    x = torch.rand(5, 3, 48, 48)
    assert ConvEncoder(16, (8, 8, 16, 16))(x).shape == (5, 16)
    y = augment(x)
    assert y.shape == x.shape and 0 <= float(y.min()) and float(y.max()) <= 1


def test_training_lowers_loss_and_separates_persons():
    cfg = tiny_cfg()
    batch = PoolSampler(comface.training_pool(cfg), 24)(0)
    torch.manual_seed(0)
    net = ComFaceNet(**cfg.model)
    result = fit(net, lambda step: batch, TrainConfig(steps=40, batch_size=24, lr=3e-3, log_every=5),
                 loss_fn=lambda m, b: comface.comface_loss(m, b, aug=False), progress=False)
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < 0.7 * losses[0]
    with torch.no_grad():
        out = result.model(torch.cat([batch["a"], batch["b"]]).float() / 255)
    za, zb = out["inter"][:24], out["inter"][24:]
    same = (za * zb).sum(1)
    diff = (za * zb.roll(1, 0)).sum(1)[batch["person"] != batch["person"].roll(1)]
    assert same.mean() > diff.mean()


def test_change_head_api_and_errors():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6))
    y = x @ rng.normal(size=6) + 0.01 * rng.normal(size=200)
    head = ChangeHead("age").fit(x[:150], y[:150])
    assert np.abs(head.predict(x[150:]) - y[150:]).mean() < 0.1
    with pytest.raises(ValueError, match=f"at least {comface.MIN_LABELLED}"):
        ChangeHead("age").fit(np.zeros((0, 6)), np.zeros(0))
    with pytest.raises(ValueError, match="valid tasks are"):
        ChangeHead("smile")
    with pytest.raises(RuntimeError, match="not fitted"):
        ChangeHead("weight").predict(x)


def test_load_round_trip_and_bad_input():
    cfg = tiny_cfg()
    with pytest.raises(FileNotFoundError, match="02_comface"):
        comface.load("smoke", 0, cfg=cfg)
    trained = comface.train("smoke", 0, cfg, progress=False).model
    model = comface.load("smoke", 0, cfg=cfg)
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        ref = trained(x)["intra"]
    assert torch.allclose(model.embed(x, framing="face")["intra"], ref, atol=1e-5)
    with pytest.raises(ValueError, match=r"valid tasks are \['expression', 'weight', 'age'\]"):
        model.predict_change(x, x, "smile")
    with pytest.warns(UserWarning, match="resizing"):
        delta = model.predict_change(x, torch.rand(3, 3, 40, 40), "age")
    assert delta.shape == (3,)


def test_change_meter_widget():
    from facekit.methods.comface.viz import ChangeMeter

    cfg = tiny_cfg()
    model = comface.ComFace(ComFaceNet(**cfg.model).eval(), cfg, "smoke", 0)
    meter = ChangeMeter(model)
    before = meter.updates
    meter.value_b.value = meter.value_a.value + 10
    assert meter.updates == before + 1
    assert meter.estimate()["true"] == pytest.approx(10)
    meter.factor.value = "expression"
    assert 0 <= meter.value_a.value <= 1 and "facekit-explorer" in meter.widget._dom_classes


def test_sets_come_from_the_named_worlds():
    cfg = tiny_cfg()
    d = cfg.data
    assert world_of(d) == get_world("procedural", size=32, framing="face", n_identities=60)
    assert world_of(d, "test") == get_world("procedural-target", size=32, framing="face", n_identities=60)
    # an eval pair is the test world's pair of the second half of the test persons, rendered as that world renders
    w = world_of(d, "test")
    ds = w.pairs(d.n_eval, split="test", seed=202, factor="age", nuisance=d.nuisance)
    ds.persons = ds.persons[len(w.identities.ids("test")) // 2:]
    ev = comface.transfer_sets(cfg, "age")["eval"]
    ref = ds.batch([0, 1])
    assert torch.equal(ev["a"][:2], to_uint8(ref["a"].cpu())) and torch.equal(ev["b"][:2], to_uint8(ref["b"].cpu()))
    assert set(ev["person"].tolist()) <= set(ds.persons.tolist())
    # another world is another cached pool (the world is in the cache key), not a stale hit
    clean = comface.training_pool(cfg)["a"]
    target = comface.training_pool(tiny_cfg(world="procedural-target"))["a"]
    assert clean.shape == target.shape and not torch.equal(clean, target)
    test_pairs = comface.verification_pairs(cfg)
    assert test_pairs["a"].shape[-1] == d.size
    # the pairs a setting is chosen on are of validation persons, never the test persons
    val_pairs = comface.verification_pairs(cfg, split="val")
    assert set(val_pairs["person"].tolist()) <= set(w.identities.ids("val").tolist())
    assert not set(val_pairs["person"].tolist()) & set(test_pairs["person"].tolist())
    with pytest.raises(ValueError, match=r"split='train' is not valid; verification pairs come from 'val' or 'test'"):
        comface.verification_pairs(cfg, split="train")


def test_data_config_errors_name_the_field():
    with pytest.raises(ValueError, match=r"DataConfig.world='nowhere' is not valid; choose one of \['default'"):
        DataConfig(world="nowhere")
    with pytest.raises(ValueError, match=r"DataConfig.test_world='ict-blur' is not valid"):
        DataConfig(test_world="ict-blur")
    with pytest.raises(ValueError, match=r"DataConfig.framing='body' is not valid; choose one of \['head', 'face'\]"):
        DataConfig(framing="body")
    with pytest.raises(ValueError, match=r"role='val' is not valid; choose one of \['train', 'test'\]"):
        world_of(DataConfig(), "val")


def test_face_framed_model_cuts_the_face_from_head_framed_photos():
    cfg = tiny_cfg()
    torch.manual_seed(0)
    model = comface.ComFace(ComFaceNet(**cfg.model).eval(), cfg, "smoke", 0)
    assert model.framing == "face"
    head = torch.rand(2, 3, 64, 64)
    face = reframe(head, cfg.data.size, "face")
    assert torch.allclose(model.embed(head)["inter"], model.embed(face, framing="face")["inter"], atol=1e-5)
    assert not torch.allclose(model.embed(head)["inter"], model.embed(head, framing="face")["inter"], atol=1e-3)
    # the verification scores' embedder reads renders as the model was trained, photos when told
    assert torch.allclose(model.identity_embedder()(face), model.embed(face, framing="face")["inter"])
    assert torch.allclose(model.identity_embedder("head")(head), model.embed(face, framing="face")["inter"], atol=1e-5)
