"""The ICT-FaceKit backend: assets (lookup, fetch, checksums, OBJ cache), the linear model,
the FaceParams mapping and the renderer's conventions.

The 3D tests need the upstream files; they skip with a reason when none are found
(``FACEKIT_ASSETS=../shared/assets`` in CI).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from facekit.synth import assets
from facekit.synth.assets import (
    AssetsNotFoundError,
    ChecksumError,
    asset_file,
    fetch_ict,
    find_ict_dir,
    ict_manifest,
    load_obj,
)
from facekit.synth.params import AU_NAMES, ID_DIM, IDENTITY_TRAITS, N_AUS, FaceParams, sample_params

SKIP_REASON = "ICT-FaceKit assets not found: set FACEKIT_ASSETS or run `facekit assets fetch ict`"
SMALL_FILES = ("ICTFaceModelMaterial.mtl", "vertex_indices.json")


def _ict_dir() -> Path:
    try:
        return find_ict_dir()
    except AssetsNotFoundError:
        pytest.skip(SKIP_REASON)


@pytest.fixture(scope="module")
def ict_dir() -> Path:
    return _ict_dir()


@pytest.fixture(scope="module")
def model(ict_dir: Path):
    from facekit.synth.ict import ICTModel

    return ICTModel.load(ict_dir)


def _upstream_bytes(folder: Path, name: str) -> bytes:
    return assets.read_bytes(asset_file(name, folder))


@pytest.fixture
def mirror(ict_dir: Path, tmp_path: Path) -> Path:
    """A local folder laid out like upstream's FaceXModel/, holding the small files."""
    src = tmp_path / "mirror"
    src.mkdir()
    for name in SMALL_FILES:
        (src / name).write_bytes(_upstream_bytes(ict_dir, name))
    return src


# ----------------------------------------------------------------------------- assets


def test_manifest_pins_commit_and_every_file() -> None:
    manifest = ict_manifest()
    assert len(manifest["commit"]) == 40
    assert manifest["url"].startswith("https://raw.githubusercontent.com/ICT-VGL/ICT-FaceKit/{commit}/FaceXModel/")
    files = manifest["files"]
    assert len(files) == 110 and "generic_neutral_mesh.obj" in files and "identity049.obj" in files
    assert all(len(sha) == 64 for sha in files.values())


def test_missing_assets_error_says_how_to_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEKIT_ASSETS", str(tmp_path / "nowhere"))
    monkeypatch.setenv("FACEKIT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(AssetsNotFoundError, match="facekit assets fetch ict") as err:
        find_ict_dir()
    assert "FACEKIT_ASSETS=/path/to/assets" in str(err.value)
    assert isinstance(err.value, FileNotFoundError)
    from facekit.synth.ict import render_ict

    with pytest.raises(AssetsNotFoundError, match="FACEKIT_ASSETS"):
        render_ict(FaceParams.neutral(n=1), 64)


def test_lookup_accepts_parent_or_folder_and_gz(ict_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "generic_neutral_mesh.obj").write_bytes(_upstream_bytes(ict_dir, "generic_neutral_mesh.obj"))
    monkeypatch.setenv("FACEKIT_ASSETS", str(plain))
    assert find_ict_dir() == plain  # the files directly in FACEKIT_ASSETS, uncompressed
    if ict_dir.name == "ict-facekit":
        monkeypatch.setenv("FACEKIT_ASSETS", str(ict_dir.parent))
        assert find_ict_dir() == ict_dir  # the parent of ict-facekit/
    a = load_obj(asset_file("generic_neutral_mesh.obj", plain))
    b = load_obj(asset_file("generic_neutral_mesh.obj", ict_dir))
    assert np.array_equal(a.vertices, b.vertices)
    with pytest.raises(AssetsNotFoundError, match=r"identity000\.obj.*facekit assets fetch ict"):
        asset_file("identity000.obj", plain)


def test_fetch_from_local_folder_and_file_url(mirror: Path, tmp_path: Path) -> None:
    dest = fetch_ict(dest=tmp_path / "a", base_url=str(mirror), files=SMALL_FILES)
    assert sorted(p.name for p in dest.iterdir()) == sorted(SMALL_FILES)
    for name in SMALL_FILES:
        assert hashlib.sha256((dest / name).read_bytes()).hexdigest() == ict_manifest()["files"][name]
    dest2 = fetch_ict(dest=tmp_path / "b", base_url=mirror.as_uri(), files=SMALL_FILES[:1])
    assert (dest2 / SMALL_FILES[0]).read_bytes() == (mirror / SMALL_FILES[0]).read_bytes()
    # present and valid: nothing to do, even with the source gone
    shutil.rmtree(mirror)
    assert fetch_ict(dest=dest, base_url=str(mirror), files=SMALL_FILES) == dest


def test_fetch_resumes_a_partial_download(mirror: Path, tmp_path: Path) -> None:
    name = SMALL_FILES[0]
    good = (mirror / name).read_bytes()
    half = len(good) // 2
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / (name + ".part")).write_bytes(good[:half])
    # spoil the source's first half: only a download that resumes at `half` can succeed
    (mirror / name).write_bytes(b"x" * half + good[half:])
    fetch_ict(dest=dest, base_url=str(mirror), files=[name])
    assert (dest / name).read_bytes() == good
    assert not (dest / (name + ".part")).exists()


def test_fetch_corrupt_file_fails_naming_it(mirror: Path, tmp_path: Path) -> None:
    name = SMALL_FILES[1]
    data = bytearray((mirror / name).read_bytes())
    data[-2] ^= 0xFF
    (mirror / name).write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match=name):
        fetch_ict(dest=tmp_path / "dest", base_url=str(mirror), files=list(SMALL_FILES))
    assert not (tmp_path / "dest" / name).exists() and not (tmp_path / "dest" / (name + ".part")).exists()
    assert (tmp_path / "dest" / SMALL_FILES[0]).exists()  # the good file before it stays
    with pytest.raises(KeyError, match="valid names are"):
        fetch_ict(dest=tmp_path / "dest", base_url=str(mirror), files=["identity999.obj"])


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder with HTTP Range support (206), as GitHub's raw host does."""

    def do_GET(self) -> None:
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = int(self.headers["Range"].split("=")[1].split("-")[0]) if self.headers.get("Range") else 0
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_mirror(mirror: Path) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_RangeHandler, directory=str(mirror)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_fetch_over_http_resumes_with_range(http_mirror: str, mirror: Path, tmp_path: Path) -> None:
    name = SMALL_FILES[1]
    good = (mirror / name).read_bytes()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / (name + ".part")).write_bytes(good[:100])
    (mirror / name).write_bytes(b"y" * 100 + good[100:])
    fetch_ict(dest=dest, base_url=http_mirror, files=[name])
    assert (dest / name).read_bytes() == good
    fetch_ict(dest=dest, base_url=http_mirror, files=[SMALL_FILES[0]], overwrite=True)
    assert (dest / SMALL_FILES[0]).read_bytes() == (mirror / SMALL_FILES[0]).read_bytes()


def test_load_obj_checks_checksum_and_parses_formats(ict_dir: Path, tmp_path: Path) -> None:
    bad = bytearray(_upstream_bytes(ict_dir, "identity000.obj"))
    bad[-3] = ord("9") if bad[-3] != ord("9") else ord("8")
    (tmp_path / "identity000.obj.gz").write_bytes(gzip.compress(bytes(bad)))
    with pytest.raises(ChecksumError, match=r"identity000\.obj"):
        load_obj(tmp_path / "identity000.obj.gz")
    # a file of our own (not in the manifest): every face-corner format, a quad, materials
    (tmp_path / "mine.obj").write_text(
        "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nv 0 0 1\nvt 0 0\nvt 1 0\nvt 1 1\nvn 0 0 1\n"
        "usemtl A\nf 1/1/1 2/2/1 3/3/1 4/1/1\nusemtl B\nf 1//1 2//1 5//1\nf 3 4 5\nf 2/2 3/3 5/1\n")
    mesh = load_obj(tmp_path / "mine.obj")
    assert mesh.vertices.shape == (5, 3) and mesh.uvs.shape == (3, 2)
    assert mesh.faces.tolist() == [[0, 1, 2], [0, 2, 3], [0, 1, 4], [2, 3, 4], [1, 2, 4]]
    assert mesh.face_uvs.tolist() == [[0, 1, 2], [0, 2, 0], [-1, -1, -1], [-1, -1, -1], [1, 2, 0]]
    assert mesh.polygon.tolist() == [0, 0, 1, 2, 3]
    assert mesh.materials == ("A", "B") and mesh.material.tolist() == [0, 0, 1, 1, 1]
    (tmp_path / "broken.obj").write_text("v 0 0 0\nv 1 0 0\nf 1 2 7\n")
    with pytest.raises(ValueError, match="the file has 2 vertices"):
        load_obj(tmp_path / "broken.obj")


def test_second_load_comes_from_the_cache(ict_dir: Path) -> None:
    from facekit.synth import ict

    ict.ICTModel.load(ict_dir)  # parses (first run) or reads the cache
    ict._load_model.cache_clear()
    t0 = time.perf_counter()
    model = ict.ICTModel.load(ict_dir)
    assert time.perf_counter() - t0 < 1.0
    assert model.identity_modes.shape == (50, 26719, 3) and model.expression_shapes.shape == (57, 26719, 3)


# ----------------------------------------------------------------------------- the model


@pytest.mark.parametrize("k", [0, 17, 49])
def test_identity_mode_reproduces_its_obj(model, ict_dir: Path, k: int) -> None:
    coef = torch.zeros(1, model.n_identity)
    coef[0, k] = 1.0
    want = torch.from_numpy(load_obj(asset_file(f"identity{k:03d}.obj", ict_dir)).vertices)
    assert (model.vertices(identity=coef)[0] - want).abs().max() < 2e-5  # cm; float32 rounding only


def test_every_expression_shape_reproduces_its_obj(model, ict_dir: Path) -> None:
    verts = model.vertices(expression=torch.eye(len(model.shape_names)))
    want = torch.from_numpy(np.stack([load_obj(asset_file(f"{name}.obj", ict_dir)).vertices
                                      for name in model.shape_names]))
    err = (verts - want).abs().amax((1, 2))
    assert err.max() < 2e-5, f"{model.shape_names[int(err.argmax())]} differs by {float(err.max()):.3g} cm"


def test_au_table_uses_existing_shapes_and_unknown_names_list_valid_ones(model) -> None:
    from facekit.synth.ict import AU_TO_SHAPES

    mat = model.au_matrix()
    assert mat.shape == (N_AUS, len(model.shape_names))
    assert set(AU_TO_SHAPES) == set(AU_NAMES) and (mat.sum(1) > 0).all()
    assert mat[AU_NAMES.index("AU12"), model.shape_index("mouthSmile_L")] == 1.0
    with pytest.raises(KeyError, match="valid shapes are.*jawOpen"):
        model.shape_index("jawDrop")
    with pytest.raises(KeyError, match="bilateral names.*mouthSmile"):
        model.shapes_for("smile")
    au = torch.zeros(1, N_AUS)
    au[0, AU_NAMES.index("AU12")] = 0.5
    w = model.expression_weights(au, asymmetry=0.5)
    assert w[0, model.shape_index("mouthSmile_L")] == pytest.approx(0.75)
    assert w[0, model.shape_index("mouthSmile_R")] == pytest.approx(0.25)
    with pytest.raises(ValueError, match=r"asymmetry 2 outside the valid range \[-1, 1\]"):
        model.expression_weights(au, asymmetry=2.0)
    with pytest.raises(ValueError, match="identity has shape"):
        model.vertices(identity=torch.zeros(1, 3))


def test_au26_drops_the_jaw_and_keeps_the_forehead(model) -> None:
    from facekit.synth.ict import LANDMARKS_68

    au = torch.zeros(2, N_AUS)
    au[1, AU_NAMES.index("AU26")] = 1.0
    rest, open_ = model.vertices(expression=model.expression_weights(au))
    chin, jaw = LANDMARKS_68[8], [LANDMARKS_68[i] for i in (5, 6, 7, 9, 10, 11)]
    assert open_[chin, 1] < rest[chin, 1] - 1.0  # the chin drops by more than a centimetre
    assert (open_[jaw, 1] < rest[jaw, 1] - 0.3).all()
    forehead = (rest[:, 1] > 7.0) & (rest[:, 2] > 5.0) & (rest[:, 0].abs() < 5.0)  # above the brows (cm)
    assert forehead.sum() > 500
    assert (open_[forehead] - rest[forehead]).norm(dim=1).max() < 2e-3  # under 0.02 mm


def test_identity_traits_are_orthonormal_and_move_their_measurement(model) -> None:
    from facekit.synth.ict import (
        TRAIT_MEASURES,
        _measure_rows,
        identity_coefficients,
        identity_matrix,
        weight_direction,
    )

    a = identity_matrix(model).double()
    torch.testing.assert_close(a.T @ a, torch.eye(ID_DIM, dtype=torch.float64), atol=1e-5, rtol=0)
    names = list(TRAIT_MEASURES)
    rows = _measure_rows(model, names)
    g = rows @ model.identity_modes.double().reshape(model.n_identity, -1).T  # (J, K)
    trait_idx = [next(k for k, (t, _) in enumerate(IDENTITY_TRAITS) if t == n) for n in names]
    effect = g @ a[:, trait_idx]  # measurement j for a unit of trait i
    assert (effect.diagonal() > 0).all()
    assert effect.triu(1).abs().max() < 1e-6  # no trait moves the measurements listed before it
    width = g[names.index("face_width")] @ weight_direction(model).double()
    assert width == pytest.approx(0.6, abs=1e-4)  # cm per +10 BMI
    coef = identity_coefficients(torch.zeros(2, ID_DIM), torch.tensor([22.0, 32.0]), model)
    torch.testing.assert_close(coef, torch.stack([torch.zeros(model.n_identity), weight_direction(model)]))


# ----------------------------------------------------------------------------- rendering


def test_render_shape_range_and_determinism(ict_dir: Path) -> None:
    from facekit.synth.ict import render_ict
    from facekit.synth.render import render

    p = sample_params(6, seed=3)
    a = render_ict(p, 64)
    assert a.shape == (6, 3, 64, 64) and a.dtype == torch.float32
    assert 0.0 <= float(a.min()) and float(a.max()) <= 1.0
    assert torch.equal(a, render_ict(p, 64))
    torch.testing.assert_close(render_ict(p[2:3], 64)[0], a[2], atol=1e-3, rtol=0)  # batch-independent
    assert torch.equal(render(p, 64, backend="ict"), a)
    assert render_ict(p[:0], 64).shape == (0, 3, 64, 64)
    with pytest.raises(ValueError, match="size=20 is not valid"):
        render_ict(p, 20)


def test_pose_and_light_follow_the_procedural_conventions(ict_dir: Path) -> None:
    from facekit.synth.ict import landmarks_ict, render_ict

    def nose_tip(**kw: float) -> torch.Tensor:
        return landmarks_ict(FaceParams.neutral(n=1, **kw), 128)[0, 30]

    front = nose_tip()
    assert nose_tip(yaw=30.0)[0] > front[0] + 5  # + yaw turns to the viewer's right
    assert nose_tip(pitch=20.0)[1] > front[1] + 3  # + pitch looks down
    eyes = landmarks_ict(FaceParams.neutral(n=1, roll=20.0), 128)[0, [36, 45]]
    assert eyes[1, 1] > eyes[0, 1] + 3  # + roll is clockwise: the image-right eye drops
    img = render_ict(FaceParams.neutral(n=2, light_azimuth=torch.tensor([-70.0, 70.0]), background=0.0), 128)
    right_minus_left = img[:, :, 40:90, 64:90].mean((1, 2, 3)) - img[:, :, 40:90, 38:64].mean((1, 2, 3))
    assert right_minus_left[1] > 0.05 > -0.05 > right_minus_left[0]  # + azimuth lights the viewer's right


def test_aus_weight_age_and_glasses_change_the_face(ict_dir: Path) -> None:
    from facekit.synth.ict import landmarks_ict, render_ict

    base = FaceParams.neutral(n=1)
    lm = landmarks_ict(FaceParams.cat([base, base.with_au("AU26", 1.0), base.replace(weight=35.0),
                                      base.replace(age=80.0)]), 128)
    assert lm[1, 8, 1] > lm[0, 8, 1] + 3  # jaw drop moves the chin down in the image
    width = lm[:, 15, 0] - lm[:, 1, 0]
    assert width[2] > width[0] + 1  # heavier: wider face
    assert lm[3, 5, 1] > lm[0, 5, 1]  # older: jowls sag
    smile = landmarks_ict(base.with_au("AU12", 1.0), 128, asymmetry=0.8)[0]
    assert smile[54, 1] < smile[48, 1] - 1  # the subject's left (image right) corner rises more
    plain, specs = render_ict(FaceParams.cat([base, base.replace(glasses=1.0)]), 96)
    eye_band = (specs - plain)[:, 25:50].abs()
    assert eye_band.mean() > 0.005 and eye_band.max() > 0.3
    assert (specs - plain)[:, 80:].abs().max() < 1e-6


# ----------------------------------------------------------------------------- AU visibility

# AU -> (its region, a region FACS says it leaves alone) in ``facekit.synth.ict.region_masks``.
AU_REGIONS = {
    "AU1": ("brows", "mouth"), "AU2": ("brows", "mouth"), "AU4": ("brows", "mouth"),
    "AU5": ("eyes", "mouth"), "AU6": ("eyes", "chin"), "AU7": ("eyes", "mouth"),
    "AU9": ("nose", "chin"), "AU10": ("mouth", "eyes"), "AU12": ("mouth", "brows"),
    "AU14": ("mouth", "eyes"), "AU15": ("mouth", "eyes"), "AU17": ("chin", "eyes"),
    "AU20": ("mouth", "eyes"), "AU23": ("mouth", "eyes"), "AU25": ("mouth", "eyes"),
    "AU26": ("chin", "brows"), "AU43": ("eyes", "mouth"),
}
# The floor of each AU at intensity 1, face framing 64 px: the share of its region's pixels
# whose largest channel changes by more than 0.05 (about half of what the model showed when
# the floors were set; the procedural floors are in tests/test_render.py).
AU_FLOORS = {
    "AU1": 0.18, "AU2": 0.20, "AU4": 0.18, "AU5": 0.08, "AU6": 0.13, "AU7": 0.11, "AU9": 0.23,
    "AU10": 0.26, "AU12": 0.40, "AU14": 0.25, "AU15": 0.18, "AU17": 0.25, "AU20": 0.17, "AU23": 0.18,
    "AU25": 0.20, "AU26": 0.40, "AU43": 0.14,
}


@pytest.fixture(scope="module")
def au_renders(ict_dir: Path):
    from facekit.synth.ict import region_masks
    from facekit.synth.render import render

    people = FaceParams.neutral(sample_params(6, seed=4).identity)
    neutral = render(people, 64, backend="ict", framing="face")
    changed = {}
    for au in AU_NAMES:
        after = render(people.with_au(au, 1.0), 64, backend="ict", framing="face")
        changed[au] = (after - neutral).abs().amax(1) > 0.05
    return region_masks(people, 64, framing="face"), changed


def test_au_table_and_floors_cover_every_au() -> None:
    assert set(AU_REGIONS) == set(AU_FLOORS) == set(AU_NAMES)


@pytest.mark.parametrize("au", AU_NAMES)
def test_each_au_is_visible_in_its_own_region_only(au_renders, au: str) -> None:
    masks, changed = au_renders
    target, other = AU_REGIONS[au]
    share = float(changed[au][masks[target]].float().mean())
    assert share >= AU_FLOORS[au], f"{au} changes {share:.1%} of the {target}; its floor is {AU_FLOORS[au]:.0%}"
    outside = float(changed[au][masks[other]].float().mean())
    assert outside < 0.3 * share, f"{au} should leave the {other} alone ({outside:.1%} changed)"


def test_face_window_is_the_crop_of_the_full_render(ict_dir: Path) -> None:
    """render(framing='face') draws only the face window (faster); it is the crop of the full
    head render up to rounding at triangle edges and depth ties."""
    from facekit.synth.framing import face_geometry
    from facekit.synth.ict import render_ict
    from facekit.synth.render import render

    # frontal: a posed face is aligned as well as cut (tests/test_render.py, pose alignment)
    p = sample_params(4, seed=8, pose_scale=0).replace(glasses=torch.tensor([1.0, 0.0, 0.0, 1.0]))
    full, row, col = face_geometry(48)
    crop = render_ict(p, full)[..., row:row + 48, col:col + 48]
    window = render(p, 48, backend="ict", framing="face")
    d = (window - crop).abs().amax(1)
    assert window.shape == (4, 3, 48, 48)
    assert float(d.mean()) < 2e-3 and float((d > 1 / 255).float().mean()) < 0.01
    with pytest.raises(ValueError, match="window=.*not valid"):
        render_ict(p, 48, window=(full, full - 10, 0))
