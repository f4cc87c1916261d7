"""ComFace: losses, a short training run, transfer heads, bad input and the load round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facekit.methods import comface
from facekit.methods.comface import ChangeHead, ComFaceConfig, ComFaceNet, DataConfig
from facekit.methods.common import PoolSampler
from facekit.models import ConvEncoder, augment, supcon_loss
from facekit.train import TrainConfig, fit

TINY_MODEL = {"dim": 32, "widths": [8, 8, 16, 16], "inter_dim": 16, "intra_dim": 8, "tasks": list(comface.TASKS)}


def tiny_cfg(steps: int = 3) -> ComFaceConfig:
    return ComFaceConfig(model=dict(TINY_MODEL),
                         data=DataConfig(size=32, n_identities=60, pool_pairs=8, n_labelled=(12,), n_eval=12, n_verify=6),
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
    assert torch.allclose(model.embed(x)["intra"], ref, atol=1e-5)
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
