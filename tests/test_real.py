"""facekit.real: every odd input gets a record (never a crash), faces are found where they are,
and crops come out in the synthetic faces' framing at the requested size."""

import math
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from facekit.real import STATUSES, align_faces, crop_face, image_files, load_images
from facekit.real.load import MAX_SIDE

NO_CV2 = "the `real` extra (opencv-python-headless) is not installed"


def test_every_case_gets_its_status_and_the_batch_goes_on(matrix):
    d, cases = matrix
    paths = [d / name for name in cases]
    recs = load_images(paths)
    assert [r.source for r in recs] == [str(p) for p in paths]
    for r, (want, _) in zip(recs, cases.values(), strict=True):
        assert r.status == want, (r.source, r.reason)
        assert r.status in STATUSES and r.reason
        if r.ok:
            assert r.image is not None and r.image.dtype == np.float32 and r.image.shape[2] == 3
            assert 0.0 <= r.image.min() and r.image.max() <= 1.0
        else:
            assert r.image is None and STATUSES[r.status] in r.reason


def test_modes_are_converted_faithfully(matrix):
    d, _ = matrix
    got = {r.source.rsplit("/", 1)[-1]: r.image for r in load_images([d / n for n in (
        "sideways.jpg", "grey.pgm", "deep16.png", "cmyk.jpg", "transparent.png", "huge.png")])}
    side = got["sideways.jpg"]
    assert side.shape == (64, 48, 3)  # 64 wide x 48 high stored, shown upright as 48 x 64
    assert side[5, 24, 0] > 0.9 and side[5, 24, 1] < 0.2  # the red half is now on top
    assert side[-5, 24, 1] > 0.6
    assert np.allclose(got["grey.pgm"][..., 0], got["grey.pgm"][..., 2])
    assert got["deep16.png"][0, 0, 0] == pytest.approx(1.0) and got["deep16.png"][0, 30, 0] == pytest.approx(0.5, abs=1e-3)
    assert np.allclose(got["cmyk.jpg"][20, 20], (0, 1, 1), atol=0.05)
    assert np.allclose(got["transparent.png"], 1.0)
    assert max(got["huge.png"].shape[:2]) == MAX_SIDE and got["huge.png"].shape[:2] == (1638, 2048)


def test_folders_are_sorted_recursive_and_skip_hidden(matrix, tmp_path, face_like):
    d, _ = matrix
    (d / ".ipynb_checkpoints").mkdir(exist_ok=True)
    Image.fromarray(face_like()).save(d / ".ipynb_checkpoints" / "copy.png")
    files = image_files(d)
    assert files == sorted(files) and all(".ipynb" not in str(f) for f in files)
    assert any(f.name == "ünï cödé 顔.png" for f in files) and not any(f.suffix == ".txt" for f in files)
    assert [r.source for r in load_images(d)] == [str(f) for f in files]
    (tmp_path / "nothing").mkdir()
    assert [r.status for r in load_images([tmp_path / "nothing", d / "rgb.png"])] == ["no_images", "ok"]


def test_arrays_in_any_layout(tmp_path, face_like):
    u8 = face_like()
    recs = load_images([
        u8, u8[..., 0], u8.astype(np.float32) / 255, torch.from_numpy(u8).permute(2, 0, 1),
        np.stack([u8, u8]), np.zeros((40, 40, 5)), np.full((40, 40), 2.0), "not/there.png",
    ])
    assert [r.source for r in recs[:-1]] == [f"array[{i}]" for i in range(8)]
    assert [r.status for r in recs] == ["ok"] * 6 + ["bad_array", "bad_array", "missing"]
    for r in recs[2:6]:  # float, channel-first torch and both halves of a batch: same pixels
        assert np.allclose(r.image, recs[0].image, atol=1e-6)
    assert np.allclose(recs[1].image[..., 0], recs[1].image[..., 2])  # grey to 3 channels


@pytest.fixture(scope="module")
def astronaut():
    skdata = pytest.importorskip("skimage.data")
    return skdata.astronaut().astype(np.float32) / 255


def test_haar_finds_the_astronaut_face_and_eyes(astronaut):
    pytest.importorskip("cv2", reason=NO_CV2)
    from facekit.real import detect_faces, find_eyes

    faces = detect_faces(astronaut, detector="haar")
    assert len(faces) == 1
    cx, cy = faces[0].center
    assert abs(cx - 223) < 15 and abs(cy - 113) < 15 and 70 < faces[0].w < 120  # her face
    (lx, ly), (rx, ry) = find_eyes(astronaut, faces[0])
    assert lx < cx < rx and max(ly, ry) < cy and abs(ry - ly) < 8


def test_dlib_detector_agrees_with_haar(astronaut):
    pytest.importorskip("cv2", reason=NO_CV2)
    pytest.importorskip("dlib", reason="the `real` extra (dlib-bin) is not installed")
    from facekit.real import detect_faces

    (haar,) = detect_faces(astronaut, detector="haar")
    for detector in ("dlib", "auto"):
        (face,) = detect_faces(astronaut, detector=detector)
        assert abs(face.center[0] - haar.center[0]) < 0.1 * haar.w and abs(face.center[1] - haar.center[1]) < 0.1 * haar.w
        assert abs(face.w / haar.w - 1) < 0.1
    # "auto" also places the 68 landmarks: both eyes inside the face's upper half, level
    (lx, ly), (rx, ry) = face.landmarks[36], face.landmarks[45]
    assert haar.x < lx < haar.center[0] < rx < haar.x + haar.w and max(ly, ry) < haar.center[1] and abs(ry - ly) < 8


def test_crop_roll_levels_the_eyes():
    pytest.importorskip("cv2", reason=NO_CV2)
    img = np.ones((200, 200, 3), np.float32)
    eyes = ((70, 90), (130, 110))  # right eye lower: a head tilted clockwise
    for x, y in eyes:
        img[y - 3 : y + 4, x - 3 : x + 4] = 0
    roll = math.degrees(math.atan2(eyes[1][1] - eyes[0][1], eyes[1][0] - eyes[0][0]))
    out = crop_face(img, (100, 100), 100, 100, roll)
    ys, xs = np.nonzero(out[..., 0] < 0.5)
    left, right = ys[xs < 50].mean(), ys[xs >= 50].mean()
    assert abs(left - right) < 1.0 and abs(left - 50) < 1.0


def test_align_reports_every_input_and_flags_fallbacks(astronaut, tmp_path):
    pytest.importorskip("cv2", reason=NO_CV2)
    blank = np.full((80, 120, 3), 0.5, np.float32)
    x, recs = align_faces([astronaut, blank, tmp_path / "nope.jpg"], 64)
    assert x.shape == (1, 3, 64, 64) and x.dtype == torch.float32
    assert [r.status for r in recs] == ["ok", "no_face", "missing"] and [r.row for r in recs] == [0, None, None]
    assert recs[0].eyes is not None and "fallback" in recs[1].reason
    x, recs = align_faces([astronaut, blank], 128, fallback="center")
    assert x.shape == (2, 3, 128, 128) and 0 <= x.min() and x.max() <= 1
    assert [(r.status, r.crop) for r in recs] == [("ok", "landmarks"), ("fallback", "center")]
    # found again in the aligned crop, the astronaut's eyes are where the renderer draws eyes
    from facekit.real import detect_faces
    from facekit.real.canonical import canonical_pixels, points_from_68

    (again,) = detect_faces(x[0].permute(1, 2, 0).numpy())
    assert np.abs(points_from_68(np.asarray(again.landmarks))[:2] - canonical_pixels(128)[:2]).max() < 3  # px of 128
    # with the box detectors the crop is cut around the box (eyes 42 % down, centred)
    x, recs = align_faces([astronaut], 128, detector="haar")
    (lx, ly), (rx, ry) = recs[0].eyes
    box = recs[0].box
    side = box.w * 1.6
    assert recs[0].crop == "face" and abs(((ly + ry) / 2 - (box.center[1] - side / 2)) / side - 0.42) < 0.05


def test_align_rejects_bad_arguments_by_name():
    pytest.importorskip("cv2", reason=NO_CV2)
    with pytest.raises(ValueError, match="size=4"):
        align_faces([], 4)
    with pytest.raises(ValueError, match="fallback='middle'"):
        align_faces([], 64, fallback="middle")
    with pytest.raises(ValueError, match="detect=False"):
        align_faces([], 64, detect=False)
    with pytest.raises(ValueError, match="detector='mtcnn'"):
        align_faces([], 64, detector="mtcnn")


def test_missing_opencv_names_the_extra(monkeypatch):
    from facekit.real.detect import require_cv2

    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(ImportError, match=r"\.\[real\]"):
        require_cv2()


def test_orl_folder_order_and_fallback_on_a_fake_set(tmp_path, monkeypatch):
    pytest.importorskip("cv2", reason=NO_CV2)
    from facekit.real import ORL_BOX, load_orl

    rng = np.random.default_rng(0)
    for person in ("s1", "s2", "s10"):
        (tmp_path / person).mkdir()
        for shot in (1, 2, 10):
            Image.fromarray(rng.integers(0, 255, (112, 92), dtype=np.uint8)).save(tmp_path / person / f"{shot}.pgm")
    monkeypatch.setenv("FACEKIT_ORL", str(tmp_path))
    x, person, report = load_orl(32, detect=False)
    assert x.shape == (9, 3, 32, 32) and person.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert [r.source.split("/")[-2:] for r in report][:4] == [["s1", "1.pgm"], ["s1", "2.pgm"], ["s1", "10.pgm"], ["s2", "1.pgm"]]
    assert all(r.status == "fallback" and r.box == ORL_BOX for r in report)


def test_orl_absent_names_where_it_looked(tmp_path, monkeypatch):
    from facekit.real import orl

    monkeypatch.setattr(orl, "orl_candidates", lambda: [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(FileNotFoundError, match="FACEKIT_ORL") as e:
        orl.orl_dir()
    assert str(tmp_path / "a") in str(e.value) and str(tmp_path / "b") in str(e.value)


@pytest.fixture(scope="module")
def orl64():
    pytest.importorskip("cv2", reason=NO_CV2)
    from facekit.real import load_orl, orl_dir

    try:
        orl_dir()
    except FileNotFoundError as e:
        pytest.skip(f"ORL faces not available: {e}")
    return load_orl(64)


def test_orl_loads_400_faces_of_40_people(orl64):
    x, person, report = orl64
    assert x.shape == (400, 3, 64, 64) and 0 <= x.min() and x.max() <= 1
    assert person.dtype == torch.long and torch.bincount(person).tolist() == [10] * 40
    statuses = [r.status for r in report]
    assert set(statuses) <= {"ok", "fallback"} and statuses.count("ok") >= 300  # 349 measured


@pytest.fixture(scope="module")
def embed():
    pytest.importorskip("dlib", reason="the `real` extra (dlib-bin) is not installed")
    from facekit.real import identity_embedding
    from facekit.real.identity import model_dir

    try:
        model_dir()
    except ImportError as e:
        pytest.skip(str(e))
    return identity_embedding


def test_identity_embedding_of_an_aligned_photo(embed, astronaut):
    x, _ = align_faces([astronaut], 64)
    e = embed(torch.cat([x, x.flip(3)]))  # a mirror image is the same person
    assert e.shape == (2, 128) and e.dtype == np.float32
    assert np.linalg.norm(e[0] - e[1]) < 0.6
    with pytest.raises(ValueError, match="N x 3 x S x S"):
        embed(x[0])


def test_identity_embedding_separates_orl_people(embed, orl64):
    x, person, _ = orl64
    e = embed(x[[0, 1, 10, 11]])  # two photos each of two people
    d = np.linalg.norm(e[:, None] - e[None], axis=2)
    assert d[0, 1] < 0.6 and d[2, 3] < 0.6 and d[0, 2] > 0.6 and d[1, 3] > 0.6


def test_missing_dlib_names_the_extra(monkeypatch):
    from facekit.real import identity

    identity._models.cache_clear()
    monkeypatch.setitem(sys.modules, "dlib", None)
    with pytest.raises(ImportError, match=r"\.\[real\]"):
        identity.identity_embedding(torch.zeros(1, 3, 64, 64))
    identity._models.cache_clear()


_PEAK = """
import resource, sys
from facekit.real.load import load_file
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rec = load_file(sys.argv[1])
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(rec.status, rec.image.shape if rec.image is not None else None, (after - before) * 1024)
"""


@pytest.mark.parametrize("mode", ["P", "I;16"])
def test_a_huge_image_is_reduced_before_any_float_copy(mode, tmp_path):
    """12000 x 9000 in a mode Pillow cannot ``reduce`` directly: the peak memory the load adds
    (measured in a fresh process, ru_maxrss) stays under 1 GB; it was 3.4 GB."""
    import subprocess

    if mode == "P":
        img = Image.new("P", (12000, 9000), 1)
        img.putpalette([0, 0, 0, 200, 30, 30] + [0] * 762)
        path = tmp_path / "huge.gif"
    else:
        img = Image.new("I;16", (12000, 9000), 40000)
        path = tmp_path / "huge16.png"
    img.save(path)
    del img
    proc = subprocess.run([sys.executable, "-c", _PEAK, str(path)], capture_output=True, text=True, timeout=300)
    status, *_, peak = proc.stdout.split()
    assert proc.returncode == 0 and status == "ok", proc.stderr
    assert int(peak) < 1 << 30, f"loading added {int(peak) / 2**30:.2f} GB"


@pytest.mark.parametrize("mode", ["P", "PA", "1", "I;16", "I", "F", "LA", "CMYK", "RGBA"])
def test_reducing_keeps_the_colours_of_every_mode(mode, tmp_path):
    from facekit.real.load import _reduce, _to_rgb_float

    small = Image.new("RGB", (40, 30), (200, 30, 30))
    pal = small.convert("P", palette=Image.Palette.ADAPTIVE)  # no dithering: one colour
    img = {"P": pal, "PA": pal.convert("PA"), "1": Image.new("1", (40, 30), 1),
           "I;16": Image.new("I;16", (40, 30), 40000), "I": Image.new("I", (40, 30), 40000),
           "F": Image.new("F", (40, 30), 0.25), "LA": Image.new("LA", (40, 30), (128, 255)),
           "CMYK": Image.new("CMYK", (40, 30), (255, 0, 0, 0)), "RGBA": small.convert("RGBA")}[mode]
    want = _to_rgb_float(img)[0, 0]
    got = _to_rgb_float(_reduce(img, 4))
    assert got.shape == (8, 10, 3) and np.allclose(got[0, 0], want, atol=1 / 255)
