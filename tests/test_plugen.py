"""PluGeN4Faces: the flow, the losses, editing behaviour, bad input, scoring and the widget."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from facekit.methods import plugen
from facekit.methods.plugen import ATTRIBUTE_NAMES, DataConfig, PlugenConfig
from facekit.methods.plugen import evaluate as plugen_eval
from facekit.models.flows import RealNVP
from facekit.synth.params import FaceParams, identity_codes
from facekit.synth.procedural import region_masks
from facekit.synth.render import render
from facekit.train import TrainConfig


def tiny_cfg(seed: int = 0) -> PlugenConfig:
    return PlugenConfig(
        data=DataConfig(n_identities=60, n_persons=8, frames=4, n_test=6),
        ae_model={"latent_dim": 16, "size": 32, "widths": [8, 8, 16, 16]},
        ae_train=TrainConfig(steps=3, batch_size=8, seed=seed, log_every=1),
        flow_model={"features": 16, "transforms": 2, "hidden": 16},
        flow_train=TrainConfig(steps=4, batch_size=8, seed=seed, log_every=1),
    )


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEKIT_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def editor():
    return plugen.train_and_load("smoke", 0, progress=False, cfg=tiny_cfg())[0]


def test_flow_is_invertible_and_its_log_det_is_right():
    torch.manual_seed(0)
    flow = RealNVP(6, transforms=3, hidden=16)
    x = torch.randn(32, 6) * 3 + 1
    flow(x)  # training mode: BatchNorm updates its running statistics
    with pytest.raises(RuntimeError, match="eval"):
        flow.inverse(x)
    flow.eval().double()
    x = x.double()
    u, ladj = flow(x)
    assert ((flow.inverse(u) - x).norm(dim=1) / x.norm(dim=1)).max() < 1e-12
    jac = torch.autograd.functional.jacobian(lambda v: flow(v[None])[0][0], x[0])
    assert torch.allclose(torch.linalg.slogdet(jac)[1], ladj[0], atol=1e-8)


def test_identity_term_pulls_frames_of_a_person_together():
    cfg = tiny_cfg()
    torch.manual_seed(0)
    flow = plugen.PlugenFlow(16, 2, 16)
    levels = torch.rand(8, plugen.N_ATTR)
    same = torch.randn(2, 1, 16).expand(2, 4, 16).reshape(8, 16)
    spread = same + torch.randn(8, 16)
    batch = {"levels": levels, "frames": 4, "progress": 1.0}
    flow.eval()  # fixed BatchNorm: the identical frames map to identical codes
    tight = plugen.flow_loss(flow, {**batch, "z": same}, cfg, 1.0)
    loose = plugen.flow_loss(flow, {**batch, "z": spread}, cfg, 1.0)
    assert float(tight["identity"]) < 1e-10 < float(loose["identity"])
    off = plugen.flow_loss(flow, {**batch, "z": spread, "progress": 0.1}, cfg, 1.0)
    assert float(off["attr"]) == 0.0 and float(loose["attr"]) != 0.0  # attribute term switched on late


def test_levels_drive_the_renderer_where_facs_says():
    p = FaceParams.neutral(identity_codes([3]))
    lv = torch.zeros(1, plugen.N_ATTR)
    lv[0, ATTRIBUTE_NAMES.index("yaw")] = 0.5
    base = plugen.apply_levels(p, lv)
    assert float(base.yaw) == 0.0 and float(base.age) == plugen.ATTRIBUTES["age"][1]
    smile = lv.clone()
    smile[0, 0] = 1.0
    diff = (render(plugen.apply_levels(p, smile), 64) - render(base, 64)).abs().sum(1)[0]
    masks = region_masks(base, 64)
    assert diff[masks["mouth"][0]].mean() > 5 * diff[masks["forehead"][0]].mean()


def test_load_names_the_notebook_and_command():
    with pytest.raises(FileNotFoundError, match=r"06_identity_aware_editing.*facekit train plugen"):
        plugen.load("smoke", 0, cfg=tiny_cfg())


def test_train_load_round_trip_and_edits(editor):
    cfg = tiny_cfg()
    again = plugen.load("smoke", 0, cfg=cfg)
    x = plugen.test_faces(cfg.data)["image"]
    assert torch.allclose(again.edit(x, smile=0.9), editor.edit(x, smile=0.9), atol=1e-5)
    z = editor.encode(x)
    for method in plugen.EDIT_METHODS:
        assert torch.allclose(editor.edit_latent(z, {"age": 1.0}, method, amount=0.0), z, atol=1e-4)
        moved = editor.edit_latent(z, {"age": 0.8}, method)
        assert torch.allclose(editor.readout(moved, method)[:, ATTRIBUTE_NAMES.index("age")], torch.full((6,), 0.8),
                              atol=1e-3)
        keep = [k for k, n in enumerate(ATTRIBUTE_NAMES) if n != "age"]
        if method != "linear":  # the flow leaves the other attribute dimensions exactly where they were
            assert torch.allclose(editor.readout(moved, method)[:, keep], editor.readout(z, method)[:, keep], atol=1e-3)
    big = torch.rand(2, 3, 50, 50)  # any size goes in, the model's size comes out
    assert editor.edit(big, glasses=1.0).shape == (2, 3, 32, 32)


def test_bad_input_says_what_is_valid(editor):
    x = torch.rand(2, 3, 32, 32)
    with pytest.raises(ValueError, match=r"unknown attribute\(s\) \['beard'\].*'smile', 'mouth_open'"):
        editor.edit(x, beard=1.0)
    with pytest.warns(UserWarning, match=r"age=1.7 is outside the trained range \[0, 1\].*clipped to 1"):
        clipped = editor.edit(x, age=1.7)
    assert torch.allclose(clipped, editor.edit(x, age=1.0))
    with pytest.raises(ValueError, match="method='stylegan' is not valid"):
        editor.edit(x, method="stylegan", smile=1.0)
    with pytest.raises(ValueError, match=r"floats in \[0, 1\]"):
        editor.edit(x * 255, smile=1.0)
    with pytest.raises(ValueError, match="optimise_steps"):
        editor.embed(x, optimise_steps=-1)


def test_overflowing_flow_inverse_is_reported_and_left_unedited(editor):
    far = torch.full((2, 16), 3e38)  # the float32 limit: any scale above 1 overflows
    with pytest.warns(UserWarning, match="overflowed for 2 of 2 codes"):
        out = editor.edit_latent(far, {"smile": 1.0}, "plugen4faces")
    assert torch.equal(out, far)


def test_embedding_optimisation_lowers_reconstruction_error(editor):
    x = torch.rand(3, 3, 32, 32)
    err = [float((editor.decode(editor.embed(x, n)) - x).pow(2).mean()) for n in (0, 20)]
    assert err[1] < err[0]


def test_photo_without_a_face_is_reported_not_edited(editor):
    pytest.importorskip("cv2")
    grey = np.full((96, 96, 3), 0.5, dtype=np.float32)
    with pytest.warns(UserWarning, match="no face found"):
        crops, edited, records = editor.edit_photos([grey], smile=1.0)
    assert len(edited) == 0 and records[0].status == "no_face"


def test_matched_success_interpolates_to_the_weakest_method():
    rows = []
    for method, top in (("plugen4faces", 0.8), ("plugen", 0.8), ("linear", 0.4)):
        for a in (0.0, 0.5, 1.0):
            rows.append({"method": method, "attribute": "smile", "amount": a, "success": top * a,
                         "id_cos": 1 - (0.1 if method == "plugen4faces" else 0.4) * a, "code_dist": 1.0})
    m = plugen_eval.matched_success(pd.DataFrame(rows)).set_index("method")
    assert m["s_star"].iloc[0] == pytest.approx(0.4)
    assert m.loc["plugen4faces", "amount"] == pytest.approx(0.5)  # reaches 0.4 half way
    assert m.loc["plugen4faces", "id_cos"] == pytest.approx(0.95)
    assert m.loc["linear", "id_cos"] == pytest.approx(0.6)


def test_scoring_pipeline_runs_on_untrained_parts(editor):
    d = tiny_cfg().data
    oracle = plugen_eval.plugen_oracle(dim=16, widths=(8, 8, 16, 16), id_dim=8).eval()
    curves = plugen_eval.edit_curves(editor, oracle, d, 0, amounts=(1.0,), methods=("plugen4faces", "linear"))
    assert len(curves) == len(ATTRIBUTE_NAMES) * 2 * 2
    assert curves.loc[curves["attribute"] == "smile", "psnr_out"].notna().sum() == 2  # edited rows only
    assert curves.loc[curves["attribute"] == "age", "psnr_out"].isna().all()  # a global attribute has no outside
    inv = plugen_eval.invertibility(editor, editor.encode(plugen.test_faces(d)["image"]))
    assert inv["plugen4faces/f64/max"] < 1e-10


def test_editor_widget_updates_on_slider(editor):
    from facekit.methods.plugen.viz import EditorWidget

    faces = plugen.test_faces(tiny_cfg().data)
    w = EditorWidget(editor, faces["image"], faces["levels"])
    before, png = w.updates, w.panels["linear"].value
    w.sliders["smile"].value = 1.0 if float(faces["levels"][0, 0]) < 0.5 else 0.0
    assert w.updates == before + 1 and "smile" in w.targets() and w.panels["linear"].value != png
    w.face.value = 1
    assert w.targets() == {} and "facekit-explorer" in w.widget._dom_classes
