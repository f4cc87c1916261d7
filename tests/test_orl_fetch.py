"""`facekit data fetch orl`, offline: a fake olivettifaces.mat built here, served from a path,
a file:// URL and a local socket; the loader finds what it wrote; sections skip without it."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from facekit import download as dl
from facekit.cli import main
from facekit.real import orl


@pytest.fixture()
def fake_mat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, np.ndarray]:
    """A MATLAB file shaped like scikit-learn's source (4096 x 400, columns first), its sha pinned."""
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (400, 64, 64), dtype=np.uint8)
    faces[:, 0, 0], faces[:, 0, 1] = 0, 255  # full range: the 0..255 rescaling keeps every value
    path = tmp_path / "mirror" / orl.OLIVETTI_MAT
    path.parent.mkdir()
    savemat(str(path), {"faces": faces.transpose(0, 2, 1).reshape(400, -1).T})
    monkeypatch.setattr(orl, "OLIVETTI_SHA256", hashlib.sha256(path.read_bytes()).hexdigest())
    monkeypatch.setenv("FACEKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("FACEKIT_ORL", raising=False)
    monkeypatch.setattr(orl, "shared_orl", lambda: tmp_path / "no-shared")
    return path, faces


def test_fetch_writes_the_folders_the_loader_finds(fake_mat):
    pytest.importorskip("cv2")
    path, faces = fake_mat
    with pytest.raises(FileNotFoundError, match="facekit data fetch orl"):
        orl.orl_dir()
    folder = orl.fetch_orl(source=path.as_uri())
    assert folder == orl.fetched_dir() and orl.orl_dir() == folder
    assert sorted(int(d.name[1:]) for d in folder.glob("s*")) == list(range(1, 41))
    from PIL import Image

    assert np.array_equal(np.asarray(Image.open(folder / "s3" / "7.pgm")), faces[26])  # person 3, photo 7
    x, person, report = orl.load_orl(32, detect=False)
    assert x.shape == (400, 3, 32, 32) and person.bincount().tolist() == [10] * 40
    assert {r.status for r in report} == {"fallback"}
    assert "Olivetti" in orl.orl_source(folder)


def test_fetch_resumes_and_is_idempotent(fake_mat, tmp_path):
    path, _ = fake_mat
    dest = tmp_path / "orl"
    data = path.read_bytes()
    dest.mkdir()
    (dest / (orl.OLIVETTI_MAT + ".part")).write_bytes(data[:1000])
    orl.fetch_orl(dest, source=str(path))
    assert (dest / orl.OLIVETTI_MAT).read_bytes() == data and not (dest / (orl.OLIVETTI_MAT + ".part")).exists()
    stamp = (dest / orl.OLIVETTI_MARK).stat().st_mtime_ns
    path.unlink()  # a complete copy needs no source
    assert orl.fetch_orl(dest, source=str(path)) == dest
    assert (dest / orl.OLIVETTI_MARK).stat().st_mtime_ns == stamp


def test_a_wrong_file_is_refused_and_leaves_nothing(fake_mat, tmp_path, monkeypatch):
    path, _ = fake_mat
    monkeypatch.setattr(orl, "OLIVETTI_SHA256", "0" * 64)
    dest = tmp_path / "orl"
    with pytest.raises(dl.ChecksumError, match="olivettifaces.mat.*--overwrite"):
        orl.fetch_orl(dest, source=str(path))
    assert not any(dest.rglob("*.pgm")) and not (dest / orl.OLIVETTI_MARK).exists()
    assert not (dest / (orl.OLIVETTI_MAT + ".part")).exists()


def test_an_unanswering_server_fails_in_seconds(tmp_path, monkeypatch):
    """Offline or stalled: the timeout bounds the wait, and the error names file and source."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(server.accept()[0]), daemon=True).start()
    monkeypatch.setattr(dl, "TIMEOUT", 0.5)
    url = f"http://127.0.0.1:{server.getsockname()[1]}/olivettifaces.mat"
    t0 = time.monotonic()
    with pytest.raises(OSError, match=r"cannot download olivettifaces\.mat from http://127\.0\.0\.1"):
        orl.fetch_orl(tmp_path / "orl", source=url)
    assert time.monotonic() - t0 < 5
    server.close()


def test_cli_fetch(fake_mat, tmp_path, capsys):
    path, _ = fake_mat
    assert main(["data", "fetch", "orl", "--source", str(path), "--dest", str(tmp_path / "orl")]) == 0
    assert "400 photos verified" in capsys.readouterr().out
    assert main(["data", "fetch", "lfw"]) == 2
    assert "unknown data set 'lfw'; valid: ['orl']" in capsys.readouterr().err
    assert main(["data", "fetch", "orl", "--source", str(tmp_path / "absent.mat"), "--dest", str(tmp_path / "x")]) == 1
    assert "cannot download olivettifaces.mat" in capsys.readouterr().err
    (tmp_path / "a_file").write_text("x")  # --dest is checked before any download, as for assets fetch
    assert main(["data", "fetch", "orl", "--source", str(path), "--dest", str(tmp_path / "a_file")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --dest") and "Traceback" not in err


def test_orl_or_skip_says_what_and_how_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FACEKIT_ORL", str(tmp_path / "nowhere"))
    assert orl.orl_candidates() == [tmp_path / "nowhere"]  # a named copy is the only place looked
    assert orl.orl_or_skip("the ORL demo") is None
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "skipping the ORL demo" in out and "`facekit data fetch orl`" in out
    monkeypatch.setenv("FACEKIT_ORL", str(tmp_path))
    assert orl.orl_or_skip("the ORL demo") == tmp_path and capsys.readouterr().out == ""


def test_pinned_source_is_scikit_learns():
    olivetti = pytest.importorskip("sklearn.datasets._olivetti_faces")
    faces = getattr(olivetti, "FACES", None)
    if faces is None:
        pytest.skip("this scikit-learn names its Olivetti source differently")
    assert (faces.url, faces.checksum, faces.filename) == (orl.OLIVETTI_URL, orl.OLIVETTI_SHA256, orl.OLIVETTI_MAT)
