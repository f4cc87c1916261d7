"""SynFER: captions, the AU adapter, the pipeline (guidance, save/load, bad input), the
calibrator's vote, MoCo v3 and the load contract."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler
from diffusers.models.attention_processor import IPAdapterAttnProcessor2_0
from torch import nn

import facekit
from facekit.methods import synfer
from facekit.methods.synfer import CaptionWriter, WordTokenizer, expression_words
from facekit.models.diffusion import ConditionalUNet
from facekit.synth.params import AU_NAMES, EMOTIONS, N_AUS, emotion_aus
from facekit.train import TrainConfig, fit

TINY = {"block_out_channels": [8, 16], "layers_per_block": 1, "dim": 16, "max_len": 16, "au_tokens": 2,
        "text_layers": 1, "attention_head_dim": 8, "attn_levels": 1}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEKIT_CACHE", str(tmp_path / "cache"))


def tiny_model(seed: int = 0) -> ConditionalUNet:
    torch.manual_seed(seed)
    return ConditionalUNet(len(WordTokenizer()), N_AUS, sample_size=32, **TINY)


@pytest.fixture(scope="module")
def pipe():
    return synfer.make_pipeline(tiny_model(), synfer.profile_config("smoke"))


def test_captions_vary_and_name_the_expression():
    writer, rng = CaptionWriter(), np.random.default_rng(0)
    happy = emotion_aus("happiness", 0.9)
    caps = {writer.caption(happy, 25, 22, 0, 0, rng) for _ in range(12)}
    assert len(caps) >= 4
    assert all(any(w in c for w in ("happy", "smiling", "joyful", "pulled lip corners")) for c in caps)
    assert expression_words(emotion_aus("anger", 0.8)) == (EMOTIONS.index("anger"), pytest.approx(0.8))
    assert expression_words(torch.zeros(N_AUS)) == (0, 0.0)
    assert any("glasses" in writer.caption(happy, 60, 30, 1.0, 20, rng) for _ in range(12))


def test_tokenizer_pads_and_reports_unknown_words():
    tok = WordTokenizer()
    ids = tok(["", "a photo of a happy person", "a zebra"])
    assert ids.shape == (3, 16) and int(ids[0].abs().sum()) == 0
    assert int((ids[1] > 1).sum()) == 6 and int((ids[2] == 1).sum()) == 1
    assert tok.unknown("a zebra smiling") == ["zebra"]
    with pytest.raises(TypeError, match="prompt 0"):
        tok([3])


def test_au_tokens_enter_by_decoupled_cross_attention():
    m = tiny_model().eval()
    procs = m.unet.attn_processors
    assert any(isinstance(p, IPAdapterAttnProcessor2_0) for n, p in procs.items() if n.endswith("attn2.processor"))
    assert not any(isinstance(p, IPAdapterAttnProcessor2_0) for n, p in procs.items() if n.endswith("attn1.processor"))
    x, t = torch.randn(2, 3, 32, 32), torch.tensor([500, 500])
    ids = WordTokenizer()(["a photo of a happy person"] * 2)
    a0, a1 = torch.zeros(2, N_AUS), emotion_aus("surprise").repeat(2, 1)
    with torch.no_grad():
        for layer in m.au_adapter.mlp:  # random, non-trivial AU tokens
            if isinstance(layer, nn.Linear):
                nn.init.normal_(layer.weight, std=1.0)
        for p in m.modules():
            if isinstance(p, IPAdapterAttnProcessor2_0):
                for lin in (*p.to_k_ip, *p.to_v_ip):
                    nn.init.normal_(lin.weight, std=1.0)
        off = torch.zeros(2)
        assert torch.equal(m(x, t, ids, a0, off), m(x, t, ids, a1, off))  # dropped AUs contribute nothing
        assert not torch.allclose(m(x, t, ids, a0), m(x, t, ids, a1), atol=1e-4)


def test_training_lowers_the_diffusion_loss():
    cfg = synfer.profile_config("smoke")
    pool = synfer.training_pool(cfg, "smoke")
    batch = {k: v[:16] for k, v in pool.items()}
    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2")
    res = fit(tiny_model(), lambda step: batch, TrainConfig(steps=30, batch_size=16, lr=3e-3, log_every=10),
              loss_fn=lambda m, b: synfer.diffusion_loss(m, b, sched, 0.1, 0.1), progress=False)
    assert res.history[-1]["loss"] < 0.7 * res.history[0]["loss"]
    assert pool["ids"].shape == (len(pool["image"]), 16) and pool["au"].shape[1] == N_AUS


def test_pipeline_bad_input(pipe):
    with pytest.raises(ValueError, match="AU1.*AU43"):
        pipe("a happy person", au=torch.zeros(1, 5), num_inference_steps=2)
    with pytest.raises(ValueError, match="text_scale=-1"):
        pipe("a happy person", text_scale=-1, num_inference_steps=2)
    with pytest.raises(ValueError, match="au_scale"):
        pipe("a happy person", au=torch.zeros(N_AUS), au_scale=-0.5, num_inference_steps=2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        pipe("a happy person", au=torch.full((N_AUS,), 2.0), num_inference_steps=2)
    with pytest.raises(ValueError, match="semantic_classifier"):
        pipe("a happy person", semantic_scale=1.0, num_inference_steps=2)
    empty = pipe("", num_images=2, num_inference_steps=2).images  # empty prompt: unconditional
    assert empty.shape == (2, 3, 32, 32) and 0 <= float(empty.min()) and float(empty.max()) <= 1
    assert not torch.equal(empty[0], empty[1])


def test_conditions_change_the_sample_and_noise_is_per_face(pipe):
    a = pipe(["a happy person", "a sad person"], au=emotion_aus("happiness"), num_inference_steps=3).images
    b = pipe(["a happy person"], au=emotion_aus("happiness"), num_inference_steps=3).images
    torch.testing.assert_close(a[0], b[0], atol=1e-5, rtol=0)  # face i's noise depends on (seed, i) only
    c = pipe(["a happy person"], au=None, num_inference_steps=3).images
    assert float((b - c).abs().max()) > 1e-4


def test_save_load_round_trip_and_version_check(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "p")
    again = synfer.SynFERPipeline.from_pretrained(tmp_path / "p")
    x = pipe("a calm person", au=torch.zeros(N_AUS), num_inference_steps=2).images
    torch.testing.assert_close(again("a calm person", au=torch.zeros(N_AUS), num_inference_steps=2).images, x)
    index = json.loads((tmp_path / "p" / "model_index.json").read_text())
    index["facekit_version"] = "0.0.1"
    (tmp_path / "p" / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match=rf"facekit 0\.0\.1.*facekit {facekit.__version__}"):
        synfer.SynFERPipeline.from_pretrained(tmp_path / "p")
    with pytest.raises(FileNotFoundError, match="model_index.json"):
        synfer.SynFERPipeline.from_pretrained(tmp_path / "nothing")


class _Redness(nn.Module):
    """A toy 2-class 'expression classifier': class 1 = redder than green."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = 20 * (x[:, 0].mean((1, 2)) - x[:, 1].mean((1, 2)))
        return torch.stack([-d, d], 1)


def test_semantic_guidance_moves_towards_the_target_class(pipe):
    prompts = ["a photo of a happy person"] * 6
    target = torch.ones(6, dtype=torch.int64)
    plain = pipe(prompts, num_inference_steps=4).images
    guided = pipe(prompts, num_inference_steps=4, semantic_classifier=_Redness(), semantic_target=target,
                  semantic_scale=50.0, guidance_fraction=1.0).images
    score = lambda x: _Redness()(x)[:, 1].mean()  # noqa: E731
    assert float(score(guided)) > float(score(plain))
    with pytest.raises(ValueError, match="semantic_scale"):
        pipe(prompts, semantic_classifier=_Redness(), semantic_target=target, semantic_scale=-1.0)


def test_calibrator_vote_keeps_relabels_and_drops():
    labels = torch.tensor([0, 1, 2])
    p_cal = torch.tensor([[0.9, 0.1, 0.0], [0.0, 0.1, 0.9], [0.4, 0.3, 0.3]])
    p_cls = torch.tensor([[0.8, 0.2, 0.0], [0.0, 0.2, 0.8], [0.3, 0.4, 0.3]])
    out = synfer.calibrate(labels, p_cal, p_cls, threshold=0.5)
    assert out["keep"].tolist() == [True, True, False]
    assert out["label"].tolist()[:2] == [0, 2] and out["changed"].tolist() == [False, True, False]
    with pytest.raises(ValueError, match="threshold=1.5"):
        synfer.calibrate(labels, p_cal, p_cls, threshold=1.5)


def test_requests_are_balanced_and_neutral_has_no_aus():
    req = synfer.requests(synfer.profile_config("smoke"), 16, seed=3)
    assert torch.bincount(req["label"], minlength=8).tolist() == [2] * 8
    assert float(req["au"][req["label"] == 0].abs().sum()) == 0
    assert all(float(req["au"][i].max()) >= 0.5 for i in range(16) if req["label"][i] > 0)
    short = synfer.requests(synfer.profile_config("smoke"), 5, seed=3)
    assert short["prompt"] == req["prompt"][:5] and torch.equal(short["au"], req["au"][:5])
    with pytest.raises(ValueError, match="mode='text_au'"):
        synfer.generate(None, synfer.profile_config("smoke"), "smoke", 0, 8, "text_au")


def test_moco_step_updates_the_momentum_encoder():
    net = synfer.MoCoNet(16, [8, 8, 16, 16], proj_dim=8, hidden=16)
    before = [p.clone() for p in net.momentum_encoder.parameters()]
    res = fit(net, lambda s: {"image": torch.randint(0, 255, (8, 3, 32, 32), dtype=torch.uint8)},
              TrainConfig(steps=3, batch_size=8, lr=1e-2, log_every=1),
              loss_fn=lambda m, b: synfer.moco_loss(m, b, 0.2, 0.9), progress=False)
    assert all(np.isfinite(h["loss"]) for h in res.history)
    assert any(not torch.equal(a, b) for a, b in zip(before, net.momentum_encoder.parameters(), strict=True))
    assert all(not p.requires_grad for p in net.momentum_encoder.parameters())


def test_load_without_a_cached_model_names_the_way_to_train():
    with pytest.raises(FileNotFoundError, match=r"04_synfer.ipynb.*facekit train synfer"):
        synfer.load("smoke", 0)
    assert synfer.au_detector("smoke")[1].startswith("ground truth")
    assert list(AU_NAMES) == synfer.make_pipeline(tiny_model(), synfer.profile_config("smoke")).aus


def test_explorer_regenerates_on_slider_and_prompt(pipe):
    from facekit.methods.synfer.viz import SynFERExplorer, emotion_grid

    ex = SynFERExplorer(pipe, steps=2, aus=("AU12", "AU26"))
    first, n = ex.image.value, ex.generations
    ex.sliders["AU12"].value = 1.0
    assert ex.generations == n + 1 and ex.image.value != first and "AU12" in ex.caption.value
    with pytest.warns(UserWarning, match="zebra"):
        ex.prompt.value = "a zebra"
    assert ex.generations == n + 2 and "zebra" in ex.caption.value
    ex.prompt.value = ""
    assert "unconditional" in ex.caption.value
    with pytest.raises(ValueError, match="AU99"):
        SynFERExplorer(pipe, aus=("AU99",))
    grid = emotion_grid(pipe, (0.5, 1.0), steps=2, emotions=("neutral", "happiness"))
    assert grid.shape == (2, 2, 3, 32, 32)


def test_conditioning_gain_sees_a_generator_that_uses_its_condition():
    """Two classes of image told apart only by caption and AUs: after training, the condition
    lowers the clean-image error at high noise (gain well above 0); untrained, it does not."""
    from facekit.methods.synfer import conditioning_gain

    torch.manual_seed(0)
    n = 16
    which = torch.arange(n) % 2
    image = torch.zeros(n, 3, 32, 32, dtype=torch.uint8)
    image[which == 0, 0], image[which == 1, 2] = 230, 230  # red faces of class 0, blue of class 1
    ids = torch.zeros(n, 16, dtype=torch.long)
    ids[:, 0] = 3 + which
    au = torch.zeros(n, N_AUS)
    au[:, 0] = which.float()
    pool = {"image": image, "ids": ids, "au": au}
    model = ConditionalUNet(len(WordTokenizer()), N_AUS, sample_size=32, **{**TINY, "global_cond": True})
    cfg = synfer.profile_config("smoke")
    untrained = conditioning_gain(synfer.make_pipeline(model, cfg), pool, timesteps=(900,), n=n)[900]
    sched = synfer.noise_scheduler(cfg)
    fit(model, lambda step: pool, TrainConfig(steps=60, batch_size=n, lr=3e-3, log_every=20),
        loss_fn=lambda m, b: synfer.diffusion_loss(m, b, sched, 0.1, 0.1), progress=False)
    trained = conditioning_gain(synfer.make_pipeline(model, cfg), pool, timesteps=(900,), n=n)[900]
    assert abs(untrained) < 0.02 and trained > 0.1


def test_oracle_reads_places_at_32_and_64_px_and_names_bad_backbones():
    from facekit.methods.oracle import Oracle
    from facekit.models import SpatialEncoder

    enc = SpatialEncoder(16, (8, 8, 16, 16)).eval()
    assert [enc(torch.rand(2, 3, s, s)).shape for s in (32, 64)] == [(2, 16), (2, 16)]
    # a mark in the left or in the right half gives different features: the map is not pooled away
    left, right = torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 32)
    left[..., 12:20, 2:10], right[..., 12:20, 22:30] = 1.0, 1.0
    with torch.no_grad():
        assert not torch.allclose(enc(left), enc(right), atol=1e-4)
    out = Oracle(16, (8, 8, 16, 16), n_classes=8, n_aus=N_AUS, backbone="spatial")(torch.rand(3, 3, 32, 32))
    assert out["logits"].shape == (3, 8) and out["au_logits"].shape == (3, N_AUS) and out["features"].shape == (3, 16)
    with pytest.raises(ValueError, match=r"backbone='vit'.*\['conv', 'spatial'\]"):
        Oracle(16, backbone="vit")


def test_oracle_loss_skips_trace_aus_and_random_au_faces_emotions():
    from facekit.methods.oracle import Oracle
    from facekit.methods.synfer.train import oracle_loss

    net = Oracle(16, (8, 8, 16, 16), n_classes=8, n_aus=N_AUS, backbone="spatial").eval()
    g = torch.Generator().manual_seed(0)
    batch = {"image": torch.randint(0, 255, (6, 3, 32, 32), dtype=torch.uint8, generator=g),
             "emotion": torch.tensor([0, 3, -1, -1, 5, 7]), "au_occurs": torch.rand(6, N_AUS, generator=g) > 0.5,
             "au_known": torch.rand(6, N_AUS, generator=g) > 0.3}

    def loss(b: dict) -> float:
        torch.manual_seed(1)  # the same views
        with torch.no_grad():
            return float(oracle_loss(net, b))

    base = loss(batch)
    flipped = {**batch, "au_occurs": torch.where(batch["au_known"], batch["au_occurs"], ~batch["au_occurs"])}
    assert loss(flipped) == pytest.approx(base)  # an unknown (trace) AU is no label
    relabelled = {**batch, "emotion": torch.tensor([0, 3, -1, -1, 5, 6])}
    assert loss(relabelled) != pytest.approx(base)  # the emotion labels are used where shown


def test_synfer_world_follows_the_config_and_names_bad_worlds():
    from facekit.methods.synfer.data import oracle_world, world_of

    d = synfer.profile_config("smoke").data
    w, o = world_of(d), oracle_world(d)
    assert (w.size, w.framing, w.style, w.n_identities, w.world_seed) == (d.size, d.framing, "target", d.n_identities,
                                                                           d.world_seed)
    assert o.world_seed == d.oracle_world != d.world_seed
    with pytest.raises(ValueError, match=r"world='nowhere'.*default-target"):
        world_of(synfer.DataConfig(world="nowhere"))


def test_oracle_accuracy_splits_by_intensity_bin():
    from facekit.methods.oracle import Oracle

    torch.manual_seed(0)
    net = Oracle(16, (8, 8, 16, 16), n_classes=8, n_aus=N_AUS, backbone="spatial")
    labels = torch.tensor([0, 0, 1, 2, 3, 4, 5, 6, 7, 1])
    intensity = torch.tensor([0.0, 0.0, 0.2, 0.3, 0.5, 0.6, 0.8, 0.9, 1.0, 0.39])
    test = {"image": torch.randint(0, 255, (10, 3, 32, 32), dtype=torch.uint8), "label": labels, "intensity": intensity}
    out = synfer.oracle_accuracy(net, test)
    assert set(out) == {"oracle/test_acc", *(f"oracle/test_acc/{b}" for b in ("neutral", "low", "medium", "high"))}
    counts = {"neutral": 2, "low": 3, "medium": 2, "high": 3}
    assert out["oracle/test_acc"] == pytest.approx(sum(out[f"oracle/test_acc/{b}"] * n for b, n in counts.items()) / 10)
