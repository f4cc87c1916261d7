"""Shared test set-up: Triton's interpreter, and fixtures for the real-photo tests (loading,
alignment, the Analyzer)."""

import os

# Triton decides at decoration time whether a kernel is interpreted, so this must be set before
# any test module imports facekit.kernels (test_analyze imports ComFace, which imports them).
os.environ.setdefault("TRITON_INTERPRET", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402


def _face_like(w: int = 64, h: int = 48) -> np.ndarray:
    """A uint8 RGB image whose left half is red: orientation is visible in the pixels."""
    a = np.full((h, w, 3), 200, np.uint8)
    a[:, : w // 2] = (255, 0, 0)
    return a


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    """One file per case, named by the status it must get."""
    d = tmp_path_factory.mktemp("photos")
    cases: dict[str, tuple[str, object]] = {}
    Image.fromarray(_face_like()).save(d / "rgb.png")
    cases["rgb.png"] = ("ok", None)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: display rotated 90 degrees clockwise
    Image.fromarray(_face_like()).save(d / "sideways.jpg", exif=exif, quality=95)
    cases["sideways.jpg"] = ("ok", None)
    Image.fromarray(_face_like()[..., 0]).save(d / "grey.pgm")
    cases["grey.pgm"] = ("ok", None)
    Image.fromarray(_face_like()).convert("P", palette=Image.Palette.ADAPTIVE).save(d / "palette.gif")
    cases["palette.gif"] = ("ok", None)
    deep = np.full((40, 40), 32768, np.uint16)
    deep[:, :20] = 65535
    Image.fromarray(deep).save(d / "deep16.png")
    cases["deep16.png"] = ("ok", None)
    Image.new("CMYK", (40, 40), (255, 0, 0, 0)).save(d / "cmyk.jpg")  # pure cyan ink
    cases["cmyk.jpg"] = ("ok", None)
    rgba = np.zeros((40, 40, 4), np.uint8)  # fully transparent: must come out white
    Image.fromarray(rgba).save(d / "transparent.png")
    cases["transparent.png"] = ("ok", None)
    Image.fromarray(_face_like(20, 20)).save(d / "tiny.png")
    cases["tiny.png"] = ("too_small", None)
    Image.fromarray(np.full((2400, 3000, 3), 90, np.uint8)).save(d / "huge.png", compress_level=1)
    cases["huge.png"] = ("ok", None)
    good = (d / "rgb.png").read_bytes()
    (d / "truncated.png").write_bytes(good[: len(good) // 2])
    cases["truncated.png"] = ("corrupt", None)
    (d / "noise.jpg").write_bytes(np.random.default_rng(0).bytes(500))
    cases["noise.jpg"] = ("not_image", None)
    (d / "notes.txt").write_text("not a photo")
    cases["notes.txt"] = ("not_image", None)
    (d / "empty.png").write_bytes(b"")
    cases["empty.png"] = ("empty", None)
    cases["missing.png"] = ("missing", None)
    odd = d / "with space" / "ünï cödé 顔.png"
    odd.parent.mkdir()
    Image.fromarray(_face_like()).save(odd)
    cases[str(odd.relative_to(d))] = ("ok", None)
    return d, cases


@pytest.fixture
def face_like():
    """The image maker behind ``matrix``: orientation shows in its pixels."""
    return _face_like
