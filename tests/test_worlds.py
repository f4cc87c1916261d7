import dataclasses

import pytest
import torch

from facekit.synth.worlds import (
    INTENSITY_BIN_EDGES,
    OCCURRENCE_THRESHOLD,
    WORLDS,
    World,
    au_labels,
    facs_level,
    get_world,
    intensity_bin,
    world_for,
)

SMALL = {"size": 32, "backend": "procedural"}


def test_same_seed_same_faces_other_seed_other_faces():
    w = get_world("default-mixed", **SMALL)
    a = w.faces(12, seed=3).batch(range(12))
    b = get_world("default-mixed", **SMALL).faces(12, seed=3).batch([5, 2])
    assert torch.equal(b["image"][0], a["image"][5]) and torch.equal(b["au"][1], a["au"][2])
    other = w.faces(12, seed=4).batch(range(12))
    assert not torch.equal(other["image"], a["image"])


def test_pool_is_cached_as_uint8_and_matches_the_render(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEKIT_CACHE", str(tmp_path))
    w = get_world("procedural", size=32)
    pool = w.pool(10, seed=1, chunk=4)
    assert pool["image"].dtype == torch.uint8 and pool["image"].shape == (10, 3, 32, 32)
    fresh = w.faces(10, seed=1).batch(range(10))["image"]
    assert (pool["image"].float() / 255 - fresh).abs().max() <= 0.5 / 255 + 1e-6
    assert len(list((tmp_path / "data").glob("world-procedural-train-*.safetensors"))) == 1
    again = w.pool(10, seed=1, chunk=4)  # read back, not re-rendered
    assert torch.equal(again["image"], pool["image"])


def test_labels_follow_the_occurrence_threshold():
    au = torch.tensor([[0.0, 0.05, OCCURRENCE_THRESHOLD, 0.9]])
    occurs, known = au_labels(au)
    assert occurs.tolist() == [[False, False, True, True]]
    assert known.tolist() == [[True, False, True, True]]  # the trace AU is neither positive nor negative
    assert facs_level(au).tolist() == [[-1, 0, 1, 4]]
    b = intensity_bin(torch.tensor([0.0, INTENSITY_BIN_EDGES[0], 0.5, 0.95]))
    assert b.tolist() == [-1, 0, 1, 2]


def test_world_batches_carry_visible_labels_and_emotions_in_bins():
    w = get_world("default", **SMALL)
    b = w.faces(64, seed=0).batch(range(64))
    occurs, known = au_labels(b["au"], w.occurrence_threshold)
    assert torch.equal(b["au_occurs"], occurs) and torch.equal(b["au_known"], known)
    shown = b["emotion"] >= 0
    assert 0 < int(shown.sum()) < 64  # emotions and random AUs mixed
    expressive = b["emotion"] > 0
    assert bool((b["intensity"][expressive] >= INTENSITY_BIN_EDGES[0]).all())
    assert bool((b["intensity_bin"][expressive] >= 0).all())


def test_target_share_picks_the_style_per_face():
    w = get_world("default-mixed", **SMALL)
    ds = w.faces(40, seed=0)
    p, _ = ds.params(range(40))
    target = w.is_target(p.seed)
    assert 0 < int(target.sum()) < 40
    img = w.render(p)
    clean_world = dataclasses.replace(w, target_share=0.0)
    clean = clean_world.render(p)
    assert torch.equal(img[~target], clean[~target]) and not torch.equal(img[target], clean[target])


def test_same_person_pairs_hold_the_person_and_change_the_rest():
    w = get_world("default", **SMALL)
    pa, pb, person = w.same_person_pairs(8, seed=0)
    assert torch.equal(pa.identity, pb.identity) and torch.equal(pa.age, pb.age)
    assert not torch.equal(pa.au, pb.au) and not torch.equal(pa.background, pb.background)
    assert bool((person != person.roll(1)).all())


def test_neutral_counterpart_and_expression_pairs():
    w = get_world("default", **SMALL)
    p, _ = w.faces(4).params(range(4))
    assert float(w.neutral(p).au.abs().sum()) == 0 and torch.equal(w.neutral(p).identity, p.identity)
    b = w.pairs(4, factor="expression", nuisance=0.0).batch(range(4))
    assert b["a"].shape == (4, 3, 32, 32)


def test_registry_and_backend_resolution():
    assert {"default", "default-target", "procedural", "ict"} <= set(WORLDS)
    assert world_for("procedural", "target").name == "procedural-target"
    assert get_world("ict", size=48).size == 48
    cfg = get_world("procedural").config()
    assert cfg["backend"] == "procedural" and cfg["occurrence_threshold"] == OCCURRENCE_THRESHOLD


def test_auto_falls_back_to_procedural_without_assets(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEKIT_ASSETS", str(tmp_path / "none"))
    monkeypatch.setenv("FACEKIT_CACHE", str(tmp_path))
    assert get_world("default").resolved_backend() == "procedural"
    with pytest.raises(FileNotFoundError, match="facekit assets fetch ict"):
        get_world("ict").resolved_backend()


@pytest.mark.parametrize(("call", "message"), [
    (lambda: get_world("nope"), r"world='nope' is not valid; choose one of \['default'"),
    (lambda: get_world("default", colour=1), r"unknown World field\(s\) \['colour'\]"),
    (lambda: World("x", backend="blender"), r"World.backend='blender' is not valid; choose one of \['auto', 'procedural', 'ict'\]"),
    (lambda: World("x", framing="body"), r"World.framing='body' is not valid; choose one of \['head', 'face'\]"),
    (lambda: World("x", size=7), r"World.size=7 is not valid"),
    (lambda: World("x", target_share=1.5), r"World.target_share=1.5 is not valid; pass a share in \[0, 1\]"),
    (lambda: World("x", au_intensity=(0.6, 0.2)), r"World.au_intensity=\(0.6, 0.2\) is not valid"),
    (lambda: world_for("ict", "sepia"), r"style='sepia' is not valid; choose one of \['clean', 'target'\]"),
    (lambda: world_for("maya", "clean"), r"backend='maya' is not valid; choose one of \['auto', 'procedural', 'ict'\]"),
])
def test_bad_input_names_the_field_and_the_valid_values(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()
