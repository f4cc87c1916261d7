"""Behaviour of the procedural renderer: every factor changes what it should, and only that."""

import pytest
import torch

from facekit.synth.layout import TRAIT
from facekit.synth.params import AU_NAMES, FaceParams, sample_identities, sample_params
from facekit.synth.procedural import region_masks
from facekit.synth.render import render
from facekit.synth.style import jpeg_like

SIZE = 64


@pytest.fixture(scope="module")
def people():
    return FaceParams.neutral(sample_identities(12, 11))


@pytest.fixture(scope="module")
def neutral(people):
    return render(people, SIZE)


def region_change(before, after, masks, region):
    d = (after - before).abs().sum(1)
    m = masks[region].float()
    return float((d * m).sum() / m.sum())


# AU -> the region FACS says it moves, and a region it must leave alone
AU_REGIONS = {
    "AU1": ("brows", "mouth"), "AU2": ("brows", "mouth"), "AU4": ("brows", "mouth"),
    "AU5": ("eyes", "mouth"), "AU6": ("eyes", "mouth"), "AU7": ("eyes", "mouth"),
    "AU9": ("nose", "chin"), "AU10": ("mouth", "eyes"), "AU12": ("mouth", "brows"),
    "AU14": ("mouth", "eyes"), "AU15": ("mouth", "eyes"), "AU17": ("chin", "eyes"),
    "AU20": ("mouth", "eyes"), "AU23": ("mouth", "eyes"), "AU25": ("mouth", "eyes"),
    "AU26": ("mouth", "eyes"), "AU43": ("eyes", "mouth"),
}
# The floor of each AU at intensity 1, face framing 64 px: the share of its region's pixels
# whose largest channel changes by more than VISIBLE. About half of what the renderer showed
# when the floors were set (benchmarks/render.py --au-visibility gives the whole-image share);
# the ICT-FaceKit backend has its own floors in tests/test_ict.py.
VISIBLE = 0.05
AU_FLOORS = {
    "AU1": 0.20, "AU2": 0.20, "AU4": 0.25, "AU5": 0.10, "AU6": 0.18, "AU7": 0.15, "AU9": 0.25,
    "AU10": 0.30, "AU12": 0.15, "AU14": 0.15, "AU15": 0.18, "AU17": 0.25, "AU20": 0.15, "AU23": 0.14,
    "AU25": 0.20, "AU26": 0.25, "AU43": 0.22,
}


def changed_share(before, after, mask):
    """Share of the mask's pixels whose largest channel changes by more than VISIBLE."""
    d = (after - before).abs().amax(1) > VISIBLE
    return float(d[mask].float().mean())


@pytest.fixture(scope="module")
def face_framed(people):
    return render(people, SIZE, framing="face"), region_masks(people, SIZE, framing="face")


@pytest.mark.parametrize("au", list(AU_REGIONS))
def test_each_au_is_visible_in_its_own_region_only(people, face_framed, au):
    """At face framing 64 px, each AU changes at least its floor of its own region's pixels,
    and under a fifth as much of a region FACS says it leaves alone."""
    neutral, masks = face_framed
    target, other = AU_REGIONS[au]
    after = render(people.with_au(au, 1.0), SIZE, framing="face")
    changed = changed_share(neutral, after, masks[target])
    assert changed >= AU_FLOORS[au], f"{au} changes {changed:.1%} of the {target}; its floor is {AU_FLOORS[au]:.0%}"
    untouched = changed_share(neutral, after, masks[other])
    assert untouched < 0.2 * changed, f"{au} should leave the {other} alone ({untouched:.1%} changed)"


def test_smile_raises_the_cheeks_and_corners():
    """AU12 pulls the corners up and out and bulges the cheeks: the cheeks change too."""
    people = FaceParams.neutral(sample_identities(4, 5))
    masks = region_masks(people, SIZE, framing="face")
    smile = render(people.with_au("AU12", 1.0), SIZE, framing="face")
    assert changed_share(render(people, SIZE, framing="face"), smile, masks["cheeks"]) > 0.15


def test_output_shape_range_and_sizes():
    p = sample_params(3, seed=0)
    for size in (32, 64, 128, 256):
        img = render(p, size)
        assert img.shape == (3, 3, size, size) and img.dtype == torch.float32
        assert float(img.min()) >= 0 and float(img.max()) <= 1
    with pytest.raises(ValueError, match="size=16 is not valid; pass an int from 32 to 256"):
        render(p, 16)
    assert render(p[0:0], 64).shape == (0, 3, 64, 64)


def test_deterministic():
    p = sample_params(4, seed=3)
    assert torch.equal(render(p, SIZE), render(p, SIZE))
    assert torch.equal(render(p, SIZE, style="target"), render(p, SIZE, style="target"))


def test_faces_are_shaded_not_flat(people, neutral):
    masks = region_masks(people, SIZE)
    cheek = neutral.mean(1)[masks["cheeks"]]
    assert float(cheek.std()) > 0.02  # lighting varies across the skin


@pytest.mark.parametrize("au", list(AU_REGIONS))
def test_each_au_moves_its_own_region_only(people, neutral, au):
    target, other = AU_REGIONS[au]
    masks = region_masks(people, SIZE)
    after = render(people.with_au(au, 1.0), SIZE)
    changed = region_change(neutral, after, masks, target)
    untouched = region_change(neutral, after, masks, other)
    assert changed > 0.01, f"{au} should change the {target}"
    assert untouched < 0.2 * changed, f"{au} should leave the {other} alone"


def test_au_effect_grows_with_intensity(people, neutral):
    masks = region_masks(people, SIZE)
    changes = [region_change(neutral, render(people.with_au("AU12", v), SIZE), masks, "mouth") for v in (0.25, 0.5, 1.0)]
    assert changes[0] < changes[1] < changes[2]


def foreground(params, size=SIZE):
    """Pixels that belong to the person: those that do not change with the background."""
    a = render(params.replace(background=0.0), size)
    b = render(params.replace(background=1.0), size)
    return (a - b).abs().sum(1) < 1e-3


def test_specific_au_geometry(people, neutral):
    """AU26 drops the jaw (the chin moves, the forehead does not); AU43 closes the eyes and
    AU5 widens them (less / more visible sclera)."""
    masks = region_masks(people, SIZE)
    open_jaw = render(people.with_au("AU26", 1.0), SIZE)
    assert region_change(neutral, open_jaw, masks, "chin") > 0.05
    assert region_change(neutral, open_jaw, masks, "forehead") == 0
    eyes = masks["eyes"]
    white = lambda img: float(((img.min(1).values > 0.7) & eyes).float().sum())  # noqa: E731
    assert white(render(people.with_au("AU43", 1.0), SIZE)) < 0.3 * white(neutral)
    assert white(render(people.with_au("AU5", 1.0), SIZE)) > white(neutral)


def test_identity_stays_stable_under_expression(people, neutral):
    """Hair and upper-face identity regions do not move with a mouth expression, and a face
    stays closer to its own neutral than to another person's."""
    happy = render(people.replace(au=torch.zeros_like(people.au)).with_au("AU12", 1.0).with_au("AU25", 1.0), SIZE)
    masks = region_masks(people, SIZE)
    assert region_change(neutral, happy, masks, "forehead") == 0
    own = (happy - neutral).abs().mean((1, 2, 3))
    other = (happy - neutral.roll(1, 0)).abs().mean((1, 2, 3))
    assert bool((own < other).all())


def test_age_adds_wrinkles_and_grey_hair(people, neutral):
    old = render(people.replace(age=78.0), SIZE)
    masks = region_masks(people, SIZE)
    assert region_change(neutral, old, masks, "forehead") > 0.02
    # hair greys: the hair at the top of the head becomes less saturated
    top = slice(6, 14)
    sat = lambda img: (img.max(1).values - img.min(1).values)[:, top, 24:40].mean()  # noqa: E731
    assert float(sat(old)) < float(sat(neutral))


def test_weight_widens_the_face(people):
    ident = people.identity.clone()
    ident[:, TRAIT["hair_length"]] = -3.0  # short hair, so the face outline is the silhouette
    slim = people.replace(identity=ident, weight=18.0)
    heavy = slim.replace(weight=38.0)
    row = SIZE // 2 + 8  # cheek level
    w_slim = foreground(slim)[:, row].float().sum(-1)
    w_heavy = foreground(heavy)[:, row].float().sum(-1)
    assert bool((w_heavy > w_slim + 2).all())


def test_pose_and_light_change_the_image(people, neutral):
    assert float((render(people.replace(yaw=30.0), SIZE) - neutral).abs().mean()) > 0.02
    assert float((render(people.replace(light_azimuth=-80.0), SIZE) - neutral).abs().mean()) > 0.01


def test_target_style_degrades_and_greys():
    p = sample_params(64, seed=2)
    clean, target = render(p, SIZE), render(p, SIZE, style="target")
    assert float((clean - target).abs().mean()) > 0.03
    grey = (target[:, 0] - target[:, 1]).abs().amax((1, 2)) < 1e-3
    assert 5 < int(grey.sum()) < 40  # about 30% of faces are grey
    with pytest.raises(ValueError, match="valid; choose one of"):
        render(p, SIZE, style="sepia")


def test_jpeg_like_is_lossy_but_close():
    p = sample_params(2, seed=1)
    img = render(p, SIZE)
    low, high = jpeg_like(img, 10), jpeg_like(img, 95)
    assert float((img - high).abs().mean()) < float((img - low).abs().mean())
    with pytest.raises(ValueError, match="quality=0"):
        jpeg_like(img, 0)


def test_all_aus_listed():
    assert set(AU_REGIONS) == set(AU_NAMES) == set(AU_FLOORS)


def test_face_framing_is_the_face_window_of_the_head_framing(people):
    """A face-framed render is the head framing's face window drawn at full resolution: the same
    picture as cutting that window from a large head render, and larger AU changes per pixel."""
    from facekit.synth.render import reframe

    face = render(people, 48, framing="face")
    cut = reframe(render(people, 192), 48, "face")
    assert face.shape == (12, 3, 48, 48)
    assert float((face - cut).abs().mean()) < 0.03
    smile = people.with_au("AU12", 1.0)
    head_change = float((render(smile, 48) - render(people, 48)).abs().mean())
    face_change = float((render(smile, 48, framing="face") - face).abs().mean())
    assert face_change > 2 * head_change


def test_face_window_is_exactly_the_crop_of_the_head_render(people):
    """The face framing draws only the window, with the very pixels of the full render."""
    from facekit.synth.framing import face_geometry
    from facekit.synth.procedural import render_procedural

    full, row, col = face_geometry(40)
    crop = render_procedural(people, full)[..., row:row + 40, col:col + 40]
    assert torch.equal(render(people, 40, framing="face"), crop)
    with pytest.raises(ValueError, match="window=.*not valid"):
        render_procedural(people, 40, window=(full, full - 20, 0))


def test_framing_errors_name_the_value():
    p = FaceParams.neutral(sample_identities(1, 0))
    with pytest.raises(ValueError, match=r"framing='tight'.*\['head', 'face'\]"):
        render(p, 32, framing="tight")
    with pytest.raises(ValueError, match="size=200 is not valid with framing='face'.*size <= 140"):
        render(p, 200, framing="face")
    from facekit.synth.render import reframe

    with pytest.raises(ValueError, match="cannot be reframed as 'head'"):
        reframe(torch.rand(1, 3, 32, 32), 32, "head", source="face")


def test_backend_errors_and_the_auto_fallback(tmp_path, monkeypatch):
    """'auto' draws procedurally without assets and says so once; an explicit 'ict' without
    assets raises an error naming the fetch command; unknown names list the valid ones."""
    import warnings

    from facekit.synth import render as render_mod

    p = FaceParams.neutral(sample_identities(2, 0))
    with pytest.raises(ValueError, match=r"backend='blender'.*\['auto', 'procedural', 'ict'\]"):
        render(p, 32, backend="blender")
    monkeypatch.setenv("FACEKIT_ASSETS", str(tmp_path / "nowhere"))
    monkeypatch.setenv("FACEKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(render_mod, "_warned_fallback", False)
    with pytest.raises(FileNotFoundError, match="facekit assets fetch ict"):
        render(p, 32, backend="ict")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        auto = render(p, 32, backend="auto")
        render(p, 32, backend="auto")
    assert torch.equal(auto, render(p, 32, backend="procedural"))
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "procedural" in messages[0] and "facekit assets fetch ict" in messages[0]
    assert render_mod.resolve_backend("procedural") == "procedural"


def test_region_masks_follow_the_framing(people):
    """The face-framed masks are the face window of the head-framed ones at the full size."""
    from facekit.synth.framing import face_geometry

    full, row, col = face_geometry(SIZE)
    head = region_masks(people, full)
    face = region_masks(people, SIZE, framing="face")
    for name, m in face.items():
        assert m.shape == (12, SIZE, SIZE) and torch.equal(m, head[name][:, row:row + SIZE, col:col + SIZE])
        assert bool(m.any())


def test_emotion_prototype_grid_labels_and_skips_missing_backends(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from facekit.synth.params import EMOTIONS
    from facekit.viz import emotion_prototype_grid

    monkeypatch.setenv("FACEKIT_ASSETS", str(tmp_path / "nowhere"))
    monkeypatch.setenv("FACEKIT_CACHE", str(tmp_path / "cache"))
    fig = emotion_prototype_grid(n_identities=2, size=48)
    axes = fig.axes
    assert len(axes) == 2 * len(EMOTIONS)
    assert [ax.get_title() for ax in axes[:len(EMOTIONS)]] == list(EMOTIONS)
    assert axes[len(EMOTIONS)].get_ylabel() == "procedural\nperson 2"
    assert "ict skipped" in fig._suptitle.get_text()
    plt.close(fig)
    with pytest.raises(ValueError, match="no backend"):
        emotion_prototype_grid(backends=("ict",))
    with pytest.raises(ValueError, match="backends=.*not valid"):
        emotion_prototype_grid(backends=("blender",))


def _backends() -> list[str]:
    from facekit.synth.assets import AssetsNotFoundError, find_ict_dir

    try:
        find_ict_dir()
    except AssetsNotFoundError:
        return ["procedural"]
    return ["procedural", "ict"]


@pytest.mark.parametrize("backend", _backends())
def test_pose_alignment_undoes_roll_exactly(backend):
    """The face framing's alignment of a head rolled by r degrees is a rotation by r at scale 1,
    so the eyes and mouth land where the frontal face has them."""

    from facekit.synth.pose_align import frontal_to_posed

    p = FaceParams.neutral(sample_identities(3, 4))
    roll = torch.tensor([-12.0, 5.0, 20.0])
    T = frontal_to_posed(p.replace(roll=roll), backend)
    angle = torch.rad2deg(torch.atan2(T[:, 1, 0], T[:, 0, 0]))
    scale = torch.hypot(T[:, 0, 0], T[:, 1, 0])
    assert torch.allclose(angle, roll, atol=0.2), angle
    assert torch.allclose(scale, torch.ones(3), atol=2e-3), scale
    same = frontal_to_posed(p, backend)
    assert torch.allclose(same, torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]).expand(3, 2, 3), atol=1e-5)


@pytest.mark.parametrize("backend", _backends())
def test_face_framing_aligns_posed_faces(backend):
    """A posed face-framed render looks like the same person's frontal one (the aligner of
    real photos does the same); cutting the fixed window out of the posed head render does not.
    Frontal faces are drawn as they were (ICT up to rasterisation ties in another batch, as in
    tests/test_ict.py's window test)."""
    from facekit.synth.framing import face_geometry

    p = FaceParams.neutral(sample_identities(6, 21))
    posed = p.replace(yaw=torch.tensor([14.0, -14, 6, -6, 0, 0]), pitch=torch.tensor([0.0, 0, 8, -8, 0, 0]),
                      roll=torch.tensor([6.0, -6, 0, 0, 10, -10]))
    frontal = render(p, 48, framing="face", backend=backend)
    aligned = render(posed, 48, framing="face", backend=backend)
    full, row, col = face_geometry(48)
    cut = render(posed, full, backend=backend)[..., row:row + 48, col:col + 48]
    # the inner face only: the light, the background and the shoulders do not turn with the head
    masks = region_masks(p, 48, framing="face")
    inner = (masks["brows"] | masks["eyes"] | masks["nose"] | masks["mouth"]).unsqueeze(1).float()

    def err(x):
        return ((x - frontal).abs() * inner).sum((1, 2, 3)) / (3 * inner.sum((1, 2, 3)))

    err_aligned, err_cut = err(aligned), err(cut)
    assert bool((err_aligned < 0.8 * err_cut).all()) and err_aligned.mean() < 0.6 * err_cut.mean(), (err_aligned, err_cut)
    mixed = p.replace(roll=torch.tensor([0.0, 0, 0, 0, 10, 0]))
    both = render(mixed, 48, framing="face", backend=backend)
    keep = torch.tensor([0, 1, 2, 3, 5])
    d = (both[keep] - frontal[keep]).abs().amax(1)
    assert float(d.mean()) < 2e-3 and float((d > 1 / 255).float().mean()) < 0.01
