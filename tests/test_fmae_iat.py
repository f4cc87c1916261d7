"""FMAE-IAT: gradient reversal, the MAE, the stream, the AU set, the detector and its bad input."""

from __future__ import annotations

import math
from dataclasses import asdict, replace

import numpy as np
import pytest
import torch

from facekit.methods import fmae_iat
from facekit.methods.fmae_iat.config import AUDataConfig, StreamConfig
from facekit.methods.fmae_iat.data import FaceStream, au_set, fold_split
from facekit.models.heads import AUHead, GradientReversal, grad_reverse, identity_head
from facekit.models.vit_mae import ConvStem, FaceMAE, ViTFeatures, ViTSpec

TINY = ViTSpec(size=32, patch=8, width=32, depth=1, heads=2, decoder_width=32, decoder_depth=1)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEKIT_CACHE", str(tmp_path / "cache"))


def test_gradient_reversal_flips_and_scales_the_gradient():
    x = torch.randn(4, 3, requires_grad=True)
    y = grad_reverse(x, 2.0)
    assert torch.equal(y, x)
    y.sum().backward()
    assert torch.allclose(x.grad, torch.full_like(x, -2.0))
    x.grad = None
    GradientReversal(0.5)(x).pow(2).sum().backward()
    assert torch.allclose(x.grad, -0.5 * 2 * x.detach())


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), "2"])
def test_bad_reversal_scale_is_refused(bad):
    with pytest.raises(ValueError, match=r"reversal scale=.*not valid.*finite number >= 0"):
        grad_reverse(torch.zeros(2), bad)
    with pytest.raises(ValueError, match="reversal scale"):
        fmae_iat.Variant("mae", "linear", bad)
    with pytest.raises(ValueError, match="reversal scale"):
        fmae_iat.FinetuneConfig(scales=(1.0, bad))


def test_heads_shapes_and_bad_kinds():
    h = torch.randn(5, 16)
    assert identity_head("linear", 16, 7)(h).shape == (5, 7)
    mlp = identity_head("mlp", 16, 7)
    assert mlp(h).shape == (5, 7) and len(list(mlp.parameters())) == 4
    assert AUHead(16, 12)(h).shape == (5, 12)
    with pytest.raises(ValueError, match="'deep'.*linear.*mlp"):
        identity_head("deep", 16, 7)


def test_vit_knows_where_each_patch_lies():
    """Fixed 2D sine-cosine positions in encoder and decoder (transformers 5 leaves them zero):
    swapping two patches of an image changes its features, and every position is distinct."""
    torch.manual_seed(0)
    mae = FaceMAE(**asdict(TINY))
    for pe in (mae.mae.vit.embeddings.position_embeddings, mae.mae.decoder.decoder_pos_embed):
        table = pe[0, 1:]
        assert torch.cdist(table, table).add(torch.eye(len(table))).min() > 0.1
    feats = ViTFeatures(**asdict(TINY))
    x = torch.rand(2, 3, 32, 32)
    swapped = x.clone()
    swapped[..., :8, :8], swapped[..., 24:, 24:] = x[..., 24:, 24:], x[..., :8, :8]
    assert (feats(x) - feats(swapped)).abs().max() > 1e-3
    with pytest.raises(ValueError, match="multiples of 4"):
        ViTSpec(width=30, heads=2)


def test_mae_masks_three_quarters_and_reconstructs_visible_patches():
    torch.manual_seed(0)
    mae = FaceMAE(**asdict(TINY))
    x = torch.rand(3, 3, 32, 32)
    loss = mae(x)
    assert loss.ndim == 0 and math.isfinite(float(loss.detach()))
    out = mae.reconstruct(x)
    assert out["mask"].sum(1).tolist() == [12.0] * 3  # 75% of 16 patches hidden
    visible = ~out["mask"].bool()
    patches = mae.mae.patchify(out["reconstruction"])
    assert torch.allclose(patches[visible], mae.mae.patchify(x)[visible], atol=1e-5)
    with pytest.raises(ValueError, match="N x 3 x 32 x 32"):
        mae(torch.rand(2, 3, 40, 40))


def test_encoder_weights_move_from_mae_to_the_au_model():
    torch.manual_seed(0)
    mae = FaceMAE(**asdict(TINY))
    net = fmae_iat.model.from_mae(mae.encoder_state(), vit=asdict(TINY), aus=["AU1", "AU12"], n_subjects=3, id_head="linear")
    for k, v in mae.mae.vit.state_dict().items():
        assert torch.equal(net.encoder.vit.state_dict()[k], v), k
    feats = ViTFeatures(**asdict(TINY))
    x = torch.rand(2, 3, 32, 32)
    assert feats(x).shape == (2, 32)
    assert torch.equal(net.encoder(x), net.encoder(x))  # no random patch shuffle at fine-tuning


def test_conv_stem_keeps_the_token_grid_and_hides_masked_pixels_from_the_mae():
    """Xiao et al.'s stem replaces the patch projection on the same grid; under MAE the stem sees
    hidden patches as grey, so what is under them cannot reach the visible tokens."""
    spec = asdict(replace(TINY, stem="conv"))
    torch.manual_seed(0)
    mae = FaceMAE(**spec)
    assert isinstance(mae.stem, ConvStem) and FaceMAE(**asdict(TINY)).stem is None
    x = torch.rand(2, 3, 32, 32)
    noise = torch.rand(2, 16)
    hidden = torch.argsort(noise, 1)[:, 4:]  # 75% of 16 patches
    y = x.clone()
    for i in range(2):
        for j in hidden[i].tolist():
            r, c = divmod(j, 4)
            y[i, :, 8 * r:8 * r + 8, 8 * c:8 * c + 8] = torch.rand(3, 8, 8)
    mae.eval()
    seen = mae.mae.vit(pixel_values=x, noise=noise).last_hidden_state  # no pixel mask: leaks
    assert not torch.allclose(seen, mae.mae.vit(pixel_values=y, noise=noise).last_hidden_state)
    mae.stem.pixel_mask = None
    captured = []
    hook = mae.mae.vit.register_forward_hook(lambda m, i, o: captured.append(o.last_hidden_state))
    mae(x, noise=noise), mae(y, noise=noise)
    hook.remove()
    assert torch.allclose(captured[0], captured[1], atol=1e-5) and mae.stem.pixel_mask is None
    feats = ViTFeatures(**spec)
    assert feats.load_state_dict(mae.encoder_state()).missing_keys == [] and feats(x).shape == (2, 32)
    with pytest.raises(ValueError, match="stem='conv'"):
        ViTSpec(size=30, patch=6, stem="conv")
    with pytest.raises(ValueError, match="stem='deep'"):
        ViTSpec(stem="deep")


def test_grid_readout_keeps_where_a_token_lies():
    """The mean of the tokens cannot tell a change at the top of the face from one at the bottom
    once the encoder is linear in them; the 4 x 4 grid readout keeps the place."""
    torch.manual_seed(0)
    mean, grid = ViTFeatures(**asdict(TINY)), ViTFeatures(readout="grid", **asdict(TINY))
    grid.load_state_dict(mean.state_dict())
    x = torch.rand(2, 3, 32, 32)
    assert mean(x).shape == (2, 32) and grid(x).shape == (2, 16 * 32) and grid.dim == 16 * 32
    assert torch.allclose(grid(x).view(2, 32, 16).mean(-1), mean(x), atol=1e-5)  # same tokens, pooled
    net = fmae_iat.AUNet(asdict(TINY), ["AU1", "AU12"], n_subjects=3, id_head="linear", readout="grid")
    assert net(x)["au"].shape == (2, 2) and net(x)["identity"].shape == (2, 3) and net.id_head.in_features == 16 * 32
    on_mean = fmae_iat.AUNet(asdict(TINY), ["AU1"], n_subjects=3, id_head="linear", readout="grid", id_input="mean")
    assert on_mean.id_head.in_features == 32 and on_mean(x)["identity"].shape == (2, 3)
    with pytest.raises(ValueError, match="id_input='grid'"):
        fmae_iat.AUNet(asdict(TINY), ["AU1"], id_input="grid")
    with pytest.raises(ValueError, match="readout='max'"):
        ViTFeatures(readout="max", **asdict(TINY))
    with pytest.raises(ValueError, match="readout='max'"):
        fmae_iat.FinetuneConfig(readout="max")


def test_layer_decay_scales_the_learning_rate_by_depth():
    net = fmae_iat.AUNet(asdict(replace(TINY, depth=2)), ["AU1"], layer_decay=0.5)
    scales = net.lr_scales()
    emb = [v for k, v in scales.items() if "embeddings" in k]
    assert emb and set(emb) == {0.125}  # 0.5 ** (depth + 1)
    assert {v for k, v in scales.items() if ".layers.0." in k or ".layer.0." in k} == {0.25}
    assert {v for k, v in scales.items() if ".layers.1." in k or ".layer.1." in k} == {0.5}
    assert not any(k.startswith("au_head") for k in scales)  # heads: full rate
    assert fmae_iat.AUNet(asdict(TINY), ["AU1"]).lr_scales() == {}
    with pytest.raises(ValueError, match="layer_decay=1.5"):
        fmae_iat.AUNet(asdict(TINY), ["AU1"], layer_decay=1.5)
    with pytest.raises(ValueError, match="layer_decay=0"):
        fmae_iat.FinetuneConfig(layer_decay=0.0)


def test_stream_is_endless_new_people_and_reproducible():
    stream = FaceStream(StreamConfig(target_fraction=0.5), size=32, batch_size=8)
    a, b = stream(3), stream(3)
    assert a.shape == (8, 3, 32, 32) and torch.equal(a, b)
    assert not torch.equal(stream(4), a)
    p, target, _ = stream.params(torch.arange(64))
    assert len(torch.unique(p.identity, dim=0)) == 64  # every item is a new person
    assert 0 < int(target.sum()) < 64  # both styles
    with pytest.raises(ValueError, match="target_fraction=1.5"):
        StreamConfig(target_fraction=1.5)
    with pytest.raises(ValueError, match="pool=-1"):
        StreamConfig(pool=-1)


def test_pooled_stream_revisits_its_first_faces_with_flips():
    stream = FaceStream(StreamConfig(pool=6), size=32, batch_size=8)
    first = stream.images(torch.arange(6))
    batch = stream(0)
    assert torch.equal(batch, stream(0)) and not torch.equal(batch, stream(1))
    views = torch.cat([first, first.flip(-1)])
    for img in batch:  # every image is a stored face (uint8: within half a grey level), maybe mirrored
        assert (views - img).abs().amax((1, 2, 3)).min() < 0.003


def test_au_set_folds_are_subject_disjoint_and_identity_predicts_au_rates():
    d = AUDataConfig(n_subjects=6, n_val_subjects=2, images_per_subject=30, probe_images_per_subject=2, size=32,
                     propensity_strength=2.0)
    data = au_set(d, seed=0)
    train = data["train"]
    assert train["label"].shape == (180, 12) and set(train["subject"].tolist()) == set(range(6))
    assert train["known"].shape == (180, 12) and 0 < int((train["known"] == 0).sum()) < 180 * 12 * 0.1
    assert int((train["label"] * (1 - train["known"])).sum()) == 0  # a trace is never a positive
    tr, te = fold_split(train, 1)
    assert set(tr["subject"].tolist()) == set(range(4)) and set(te["subject"].tolist()) == {1, 4}
    rates = torch.stack([train["label"][train["subject"] == s].float().mean(0) for s in range(6)])
    assert float(rates.std(0).mean()) > 0.1  # subject-specific base rates (binomial noise alone ~0.08)
    with pytest.raises(KeyError, match="AU99"):
        AUDataConfig(aus=("AU1", "AU99"))


def test_iat_loss_adds_the_identity_term():
    torch.manual_seed(0)
    net = fmae_iat.AUNet(asdict(TINY), ["AU1", "AU12"], n_subjects=3, id_head="linear")
    batch = {"image": torch.randint(0, 255, (6, 3, 32, 32), dtype=torch.uint8), "label": torch.zeros(6, 2),
             "subject": torch.tensor([0, 1, 2, 0, 1, 2])}
    out = fmae_iat.iat_loss(net, batch, reversal=2.0, n_subjects=3)
    assert torch.allclose(out["loss"], out["au"] + out["identity"])
    # the identity head learns (normal gradient) while the encoder is pushed the other way
    out["loss"].backward()
    assert net.id_head.weight.grad.abs().sum() > 0
    none = fmae_iat.AUNet(asdict(TINY), ["AU1", "AU12"])
    assert "identity" not in fmae_iat.iat_loss(none, batch, 0.0, 1)


def test_detector_trains_loads_resizes_and_checks_aus():
    with pytest.raises(FileNotFoundError, match=r"03_mae_iat_au.*facekit train fmae_iat"):
        fmae_iat.load("smoke", seed=0)
    det, result = fmae_iat.train_and_load("smoke", seed=0, progress=False)
    assert not result.loaded and len(det.aus) >= 12 and det.aus[:2] == ["AU1", "AU2"]
    grey = torch.rand(3, 1, 50, 37)  # wrong size and one channel: resized and expanded
    p = det.predict_proba(grey)
    assert p.shape == (3, len(det.aus)) and np.all((p >= 0) & (p <= 1))
    assert det.features(grey).shape == (3, det.net.encoder.dim)
    again = fmae_iat.load("smoke", seed=0)
    assert np.allclose(again.predict_proba(grey), p, atol=1e-6)
    with pytest.raises(ValueError, match=r"AU list \['AU1', 'AU2'\] does not match the checkpoint's AU list \['AU1'"):
        fmae_iat.load("smoke", seed=0, aus=["AU1", "AU2"])
    with pytest.raises(ValueError, match="N x 3 x H x W"):
        det.predict_proba(torch.rand(2, 2, 32, 32))
    # trained on face-framed renders, it cuts the face window out of head-framed input itself
    from facekit.synth.params import sample_params
    from facekit.synth.render import render

    assert det.net.framing == "face"
    faces = sample_params(4, seed=3, pose_scale=0)
    head, face = render(faces, 128), render(faces, det.size, framing="face")
    # (resampling the 128 px head render differs from rendering at the model's size by a few grey
    # levels, which the conv stem passes on; a wrong window would move whole features)
    assert np.abs(det.predict_proba(head) - det.predict_proba(face, framing="face")).max() < 0.1
    with pytest.raises(ValueError, match="cannot be reframed as 'head'"):
        fmae_iat.AUDetector(fmae_iat.AUNet(asdict(TINY), ["AU1"])).predict_proba(face, framing="face")


def test_identity_probe_separates_clusters_from_noise():
    rng = np.random.default_rng(0)
    subjects = np.repeat(np.arange(5), 8)
    clustered = rng.normal(size=(5, 10))[subjects] + 0.1 * rng.normal(size=(40, 10))
    assert fmae_iat.identity_probe(clustered, subjects) > 0.9
    assert fmae_iat.identity_probe(rng.normal(size=(40, 10)), subjects) < 0.5


def test_au_meter_widget_updates_face_and_probabilities():
    from facekit.methods.fmae_iat.viz import AUMeter

    torch.manual_seed(0)
    det = fmae_iat.AUDetector(fmae_iat.AUNet(asdict(TINY), ["AU1", "AU12"]))
    meter = AUMeter(det, size=48)
    image, before = meter.image.value, dict(meter.last)
    assert meter.sliders["AU12"].continuous_update is False
    meter.sliders["AU12"].value = 1.0
    assert meter.image.value != image and meter.last != before
    assert "<b>" in meter.readout.value and "Lip Corner Puller" in meter.readout.value
