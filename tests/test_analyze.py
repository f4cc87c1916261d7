"""The Analyzer and `facekit analyze`: one row per input, whatever the input, and models only
from the cache (a missing one is named with the command that makes it)."""

import math
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from facekit.analyze import Analyzer, ModelMissingError, write_table
from facekit.cli import main
from facekit.methods.comface import ComFace, ComFaceNet, profile_config

pytest.importorskip("cv2", reason="the `real` extra (opencv-python-headless) is not installed")


@pytest.fixture(scope="module")
def comface_model():
    """An untrained smoke-size ComFace: real code path, seconds to build."""
    torch.manual_seed(0)
    cfg = profile_config("smoke", 0)
    return ComFace(ComFaceNet(**cfg.model).eval(), cfg, "smoke", 0)


@pytest.fixture(scope="module")
def au_and_expression():
    """Untrained tiny FMAE-IAT detector and generative-contrastive network: the Analyzer's job is
    the plumbing (which row gets which output), which weights do not change."""
    from dataclasses import asdict

    from facekit.methods import fmae_iat, gencon
    from facekit.models.vit_mae import ViTSpec

    torch.manual_seed(0)
    det = fmae_iat.AUDetector(fmae_iat.AUNet(asdict(ViTSpec(size=32, patch=8, width=32, depth=1, heads=2,
                                                            decoder_width=32, decoder_depth=1)), ["AU1", "AU12"]))
    cfg = gencon.profile_config("smoke", 0)
    return {"fmae_iat": det, "gencon": gencon.GenCon(gencon.GenConNet(**cfg.model).eval(), cfg, "smoke", 0)}


@pytest.fixture(scope="module")
def astronaut_png(tmp_path_factory):
    skdata = pytest.importorskip("skimage.data")
    path = tmp_path_factory.mktemp("sk") / "astronaut.png"
    Image.fromarray(skdata.astronaut()).save(path)
    return path


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("FACEKIT_RESULTS", str(tmp_path / "results"))


def test_bad_input_matrix_gets_one_row_each(matrix, astronaut_png, comface_model, au_and_expression, empty_cache,
                                            tmp_path):
    folder, cases = matrix
    odd = tmp_path / "my photos" / "astronaut copy é.png"
    odd.parent.mkdir()
    shutil.copy(astronaut_png, odd)
    sources = [folder, odd, folder / "missing.png"]
    df = Analyzer("smoke", models={"comface": comface_model, **au_and_expression}).analyze(sources)
    by = df.set_index("source")
    assert len(df) == len(cases) + 1  # every file of the folder (notes.txt too), the astronaut, the missing path
    assert by.loc[str(odd), "status"] == "ok"
    for name, (status, _) in cases.items():
        row = by.loc[str(folder / name)]
        expected = {"ok": "no_face"}.get(status, status)  # loaded fine, but the test images hold no face
        assert row["status"] == expected, (name, row["reason"])
        assert row["reason"]
    assert "downscaled" in by.loc[str(folder / "huge.png"), "reason"]
    ok = df[df.status == "ok"]
    assert ok["identity_embedding"].map(len).eq(comface_model.cfg.model["inter_dim"]).all()
    assert df.loc[df.status != "ok", "identity_embedding"].isna().all()
    assert df.attrs["missing"] == {}
    astro = by.loc[str(odd)]
    assert 0 <= astro["AU1"] <= 1 and 0 <= astro["AU12"] <= 1
    probs = astro[[f"p_{c}" for c in au_and_expression["gencon"].classes]].astype(float)
    assert probs.sum() == pytest.approx(1, abs=1e-5) and astro["expression"] == probs.idxmax().removeprefix("p_")
    assert df.loc[df.status != "ok", ["AU1", "p_neutral", "expression"]].isna().all().all()


def test_missing_models_are_named_in_the_table(matrix, comface_model, empty_cache):
    folder, _ = matrix
    df = Analyzer("smoke", models={"comface": comface_model}).analyze(folder / "rgb.png")
    assert set(df.attrs["missing"]) == {"fmae_iat", "gencon"} and df["AU1"].isna().all()  # present, empty
    assert all("facekit train" in why for why in df.attrs["missing"].values())


def test_orl_folder_one_row_per_file(comface_model, empty_cache):
    """The issue's acceptance check: the real ORL folder, one row per file, with statuses."""
    from facekit.real import orl_dir

    try:
        root = orl_dir()
    except FileNotFoundError as err:
        pytest.skip(str(err))
    files = [p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")]
    df = Analyzer("smoke", models={"comface": comface_model}).analyze(root)
    assert len(df) == len(files) and df.source.is_unique
    photos = df[df.source.str.endswith(".pgm")]
    assert len(photos) == 400
    assert (photos.status == "ok").sum() >= 330  # Haar finds about 88% of these small, often tilted faces
    assert set(photos.status) <= {"ok", "no_face"}
    assert df.loc[~df.source.str.endswith(".pgm"), "status"].eq("not_image").all()  # README and friends
    assert photos.loc[photos.status == "ok", "box_w"].gt(40).all()


def test_missing_model_names_notebook_and_command(empty_cache, astronaut_png):
    an = Analyzer("smoke", seed=3)
    with pytest.raises(ModelMissingError, match=r"facekit train comface --profile smoke --seed 3"):
        an.compare(astronaut_png, astronaut_png)
    with pytest.raises(ModelMissingError, match="notebooks/05_reference_faces.ipynb|gencon"):
        an.reference(astronaut_png)
    status = an.status()
    assert not status.loc["comface", "available"] and "facekit train comface" in status.loc["comface", "note"]


def test_compare_gives_each_change_with_unit_and_caveat(comface_model, astronaut_png, empty_cache):
    an = Analyzer("smoke", models={"comface": comface_model})
    df = an.compare(astronaut_png, astronaut_png)
    assert list(df.index) == ["identity_similarity", "expression_change", "weight_change", "age_change"]
    assert df.loc["identity_similarity", "value"] == pytest.approx(1.0, abs=1e-4)  # a photo is itself
    assert df["caveat"].str.len().gt(20).all() and df.loc["age_change", "unit"] == "years"
    noise = np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"compare\(b\): array\[0\] was not used \(no_face\)"):
        an.compare(astronaut_png, noise)


def test_reference_and_edit_refuse_or_warn_on_a_non_face(empty_cache):
    class Ref:  # stands in for the gencon model: the Analyzer's job is the face handling
        def reference(self, x):
            return x

    class Ed:
        attributes = ["smile"]

        def edit(self, x, **kw):
            return x

    an = Analyzer("smoke", models={"gencon": Ref(), "plugen": Ed()})
    noise = np.random.default_rng(1).integers(0, 255, (96, 96, 3), dtype=np.uint8)
    with pytest.warns(UserWarning, match="no frontal face"):
        ref = an.reference(noise)
    assert ref.shape == (3, 64, 64)
    with pytest.raises(ValueError, match="edit: array"):
        an.edit(noise, smile=0.5)
    with pytest.raises(ValueError, match=r"cannot edit \['age'\]: the plugin was trained on \['smile'\]"):
        an.edit(noise, age=1.0)


def test_write_table_csv_parquet_and_overwrite(tmp_path):
    df = pd.DataFrame({"source": ["a", "b"], "status": ["ok", "no_face"],
                       "identity_embedding": [np.array([0.5, -1.0]), math.nan]})
    out = write_table(df, tmp_path / "faces.csv")
    back = pd.read_csv(out)
    assert back.loc[0, "identity_embedding"] == "0.5 -1" and back.status.tolist() == ["ok", "no_face"]
    with pytest.raises(FileExistsError, match="--overwrite"):
        write_table(df, out)
    with pytest.raises(ValueError, match=r"\.csv or \.parquet"):
        write_table(df, tmp_path / "faces.xlsx")
    pytest.importorskip("pyarrow")
    pq = write_table(df, tmp_path / "faces.parquet")
    assert pd.read_parquet(pq).loc[0, "identity_embedding"].tolist() == [0.5, -1.0]


def test_cli_analyze_rows_statuses_and_no_clobber(matrix, tmp_path, capsys, empty_cache):
    folder, cases = matrix
    out = tmp_path / "faces.csv"
    assert main(["analyze", str(folder), "--out", str(out), "--profile", "smoke"]) == 0
    err = capsys.readouterr().err
    assert "comface columns left empty" in err and "facekit train comface" in err
    rows = pd.read_csv(out)
    assert len(rows) == len(cases) - 1  # the missing path was not passed
    before = out.read_bytes()
    assert main(["analyze", str(folder), "--out", str(out), "--profile", "smoke"]) == 2
    assert "--overwrite" in capsys.readouterr().err and out.read_bytes() == before
    assert main(["analyze", str(folder), "--out", str(out), "--profile", "smoke", "--overwrite"]) == 0
    assert not list(tmp_path.glob(".faces.csv.*"))


# ------------------------------------------------------------------ hardening (issue 21)

def _is_root() -> bool:
    import os

    return hasattr(os, "geteuid") and os.geteuid() == 0


def test_every_entry_of_a_folder_gets_a_row(tmp_path, empty_cache, face_like):
    import os

    folder = tmp_path / "walk"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(face_like()).save(folder / "sub" / "ok.png")
    (folder / "broken.png").symlink_to(folder / "gone.png")
    (folder / "self.png").symlink_to(folder / "self.png")  # a link to itself: ELOOP
    (folder / "sub" / "up").symlink_to(folder)  # a folder link back to an ancestor
    os.mkfifo(folder / "pipe.png")  # opening a FIFO would hang: it must get a row, not a read
    (folder / ".hidden.png").write_bytes(b"x")
    df = Analyzer("smoke").analyze(folder)
    by = df.set_index("source")["status"].to_dict()
    assert by == {str(folder / "broken.png"): "broken_link", str(folder / "pipe.png"): "not_regular",
                  str(folder / "self.png"): "loop", str(folder / "sub" / "ok.png"): "no_face",
                  str(folder / "sub" / "up"): "loop"}
    assert df.reason.str.len().gt(10).all()
    with pytest.raises(ValueError, match="path '' is empty"):
        Analyzer("smoke").analyze(["", folder])


@pytest.mark.skipif(_is_root(), reason="root reads every folder, so permissions cannot be tested")
def test_a_folder_listed_but_not_entered_gets_rows(tmp_path, empty_cache, face_like):
    folder = tmp_path / "perm"
    locked = folder / "locked"
    locked.mkdir(parents=True)
    Image.fromarray(face_like()).save(locked / "a.png")
    (folder / "secret.png").write_bytes(b"x" * 10)
    (folder / "secret.png").chmod(0)
    locked.chmod(0o400)  # r--: its names can be listed, but it cannot be entered
    try:
        df = Analyzer("smoke").analyze(folder)
    finally:
        locked.chmod(0o700)
    assert set(df.status) == {"unreadable"} and len(df) == 2


def _damaged_comface(profile: str = "smoke", seed: int = 0):
    """A cached smoke ComFace whose weight file is cut in half (no training: untrained weights)."""
    from facekit.methods import comface
    from facekit.train import WEIGHTS_NAME, save_pretrained

    cfg = comface.profile_config(profile, seed)
    path = comface.cache_path(cfg, profile)
    save_pretrained(comface.ComFaceNet(**cfg.model), cfg.model, path)
    weights = path / WEIGHTS_NAME
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return path


def test_a_damaged_cache_is_a_missing_model(empty_cache, matrix, tmp_path):
    path = _damaged_comface()
    an = Analyzer("smoke")
    status = an.status()
    assert status.loc["comface", "state"] == "damaged" and not status.loc["comface", "available"]
    note = status.loc["comface", "note"]
    assert note.startswith("damaged:") and str(path) in note and "facekit train comface --profile smoke" in note
    assert status.loc["gencon", "state"] == "missing"
    folder, _ = matrix
    df = an.analyze(folder / "rgb.png")
    assert "identity_embedding" in df and df["identity_embedding"].isna().all()
    assert df.attrs["models"]["comface"]["state"] == "damaged" and "damaged" in df.attrs["missing"]["comface"]
    with pytest.raises(ModelMissingError, match="damaged"):
        an.compare(folder / "rgb.png", folder / "rgb.png")
    assert main(["train", "comface", "--profile", "smoke", "--quiet"]) == 2  # says to delete it; trains nothing


@pytest.mark.parametrize(("var", "value", "match"), [
    ("FACEKIT_CACHE", "FILE", "FACEKIT_CACHE=.* is not a folder"),
    ("FACEKIT_PROFILE", "fast", r"FACEKIT_PROFILE='fast' is not valid; set it to one of \['smoke', 'cpu', 'gpu'\]"),
    ("FACEKIT_DEVICE", "tpu", "FACEKIT_DEVICE='tpu' is not valid"),
    ("FACEKIT_DEVICE", "cuda", "FACEKIT_DEVICE='cuda' but this machine has no CUDA"),
    ("FACEKIT_RESULTS", "FILE", "FACEKIT_RESULTS=.* is not a folder"),
    ("FACEKIT_OFFLINE", "maybe", "FACEKIT_OFFLINE='maybe' is not valid"),
])
def test_bad_environment_is_one_error_naming_the_variable(var, value, match, tmp_path, monkeypatch, capsys,
                                                          matrix):
    from facekit import config

    if value == "cuda" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    if value == "FILE":
        value = str(tmp_path / "a_file")
        (tmp_path / "a_file").write_text("x")
    monkeypatch.setenv("FACEKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(var, value)
    call = {"FACEKIT_CACHE": config.cache_dir, "FACEKIT_PROFILE": config.get_profile,
            "FACEKIT_DEVICE": config.get_device, "FACEKIT_RESULTS": config.results_dir,
            "FACEKIT_OFFLINE": config.offline}[var]
    with pytest.raises(config.ConfigError, match=match):
        call()
    if var in ("FACEKIT_CACHE", "FACEKIT_PROFILE"):  # the command says it in one line, exit 2
        folder, _ = matrix
        assert main(["analyze", str(folder / "rgb.png")]) == 2
        err = capsys.readouterr().err
        assert var in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_columns_are_the_same_whichever_models_are_cached(matrix, comface_model, au_and_expression, empty_cache,
                                                           tmp_path):
    folder, _ = matrix
    src = [folder / "rgb.png", folder / "notes.txt"]
    none = Analyzer("smoke").analyze(src)
    some = Analyzer("smoke", models={"comface": comface_model}).analyze(src)
    assert list(none.columns) == list(some.columns)
    assert {"AU12", "p_happiness", "expression", "identity_embedding"} <= set(none.columns)
    assert none[["AU12", "p_happiness", "identity_embedding"]].isna().all().all()
    assert some.attrs["models"]["comface"]["state"] == "given"
    assert some.attrs["models"]["gencon"]["state"] == "missing" and "facekit train gencon" in \
        some.attrs["models"]["gencon"]["note"]
    assert list(Analyzer("smoke").analyze([]).columns) == list(none.columns)  # even with no rows
    import json

    from facekit.analyze import models_note_path

    out = write_table(some, tmp_path / "t.csv")
    note = json.loads(models_note_path(out).read_text())
    assert note["models"]["fmae_iat"]["state"] == "missing" and note["models"]["comface"]["state"] == "given"
    pq = pytest.importorskip("pyarrow.parquet")
    out = write_table(some, tmp_path / "t.parquet")
    meta = json.loads(pq.read_schema(out).metadata[b"facekit.models"])
    assert meta["models"]["gencon"]["state"] == "missing"


def test_compare_with_a_grey_copy_reports_no_spurious_change(comface_model, astronaut_png, empty_cache):
    """ComFace saw colour faces only; a photo against its grey copy used to read as a 3.4-year
    age change, because colour alone moved the intra embedding."""
    # The Haar box crop: landmark alignment can move a few pixels between a photo and its grey
    # copy, which is alignment jitter, not the colour effect this test is about.
    an = Analyzer("smoke", models={"comface": comface_model}, detector="haar")
    grey = np.asarray(Image.open(astronaut_png).convert("L").convert("RGB"))
    same = an.compare(astronaut_png, astronaut_png)["value"]
    mixed = an.compare(astronaut_png, grey)["value"]
    assert mixed["identity_similarity"] == pytest.approx(1.0, abs=1e-3)
    for q in ("expression_change", "weight_change", "age_change"):  # only resampling noise is left
        assert abs(mixed[q] - same[q]) < 0.01, q
    from facekit.analyze import same_colour_space

    a, b = an.face(astronaut_png, what="a"), an.face(grey, what="b")
    raw = float(comface_model.predict_change(a, b, "age")[0])
    assert abs(raw - same["age_change"]) > 10 * abs(mixed["age_change"] - same["age_change"])  # the fix matters
    ga, gb = same_colour_space(a, b)
    assert torch.equal(ga[:, 0], ga[:, 1]) and torch.allclose(ga, gb, atol=2 / 255)


def test_tables_are_private_and_replacing_keeps_the_mode(tmp_path):
    import os
    import stat

    df = pd.DataFrame({"source": ["a"], "status": ["ok"], "identity_embedding": [np.array([0.1, 0.2])]})
    out = write_table(df, tmp_path / "faces.csv")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600  # identity embeddings are biometric data
    os.chmod(out, 0o640)
    write_table(df, out, overwrite=True)
    assert stat.S_IMODE(out.stat().st_mode) == 0o640


def test_write_table_never_clobbers_a_table_made_meanwhile(tmp_path):
    """Another run wrote --out while we analysed: its file stays, ours is kept beside it."""
    from facekit import io as fio

    df = pd.DataFrame({"source": ["mine"], "status": ["ok"]})
    out = tmp_path / "faces.csv"
    real = fio.atomic_write

    def racing(path, data, **kw):  # the other run finishes just before our rename
        if path == out:
            out.write_text("theirs\n")
        return real(path, data, **kw)

    import facekit.io

    facekit.io.atomic_write = racing
    try:
        with pytest.raises(FileExistsError, match="created meanwhile") as info:
            write_table(df, out)
    finally:
        facekit.io.atomic_write = real
    assert out.read_text() == "theirs\n"
    kept = [p for p in tmp_path.iterdir() if p.name.startswith(".faces.csv.")]
    assert len(kept) == 1 and str(kept[0]) in str(info.value) and "mine" in kept[0].read_text()


@pytest.mark.parametrize("argv_out", ["NOTES/faces.csv", "DIR", "DIR/faces.txt"])
def test_cli_analyze_checks_out_before_any_work(argv_out, matrix, tmp_path, capsys, empty_cache, monkeypatch):
    import facekit.analyze

    (tmp_path / "NOTES").write_text("a file")
    (tmp_path / "DIR").mkdir()

    def boom(*a, **k):
        raise AssertionError("analysis ran before --out was checked")

    monkeypatch.setattr(facekit.analyze.Analyzer, "analyze", boom)
    folder, _ = matrix
    assert main(["analyze", str(folder / "rgb.png"), "--out", str(tmp_path / argv_out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --out") and len(err.strip().splitlines()) == 1
    assert main(["analyze", ""]) == 2 and "is empty" in capsys.readouterr().err


def test_two_analyze_runs_onto_one_out(matrix, tmp_path, empty_cache):
    import os
    import subprocess
    import sys

    folder, _ = matrix
    out = tmp_path / "faces.csv"
    cmd = [sys.executable, "-m", "facekit.cli", "analyze", str(folder / "rgb.png"), str(folder / "grey.pgm"),
           "--out", str(out), "--profile", "smoke"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
             for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(rc for rc, _ in results)
    assert codes == [0, 2], results
    loser = next(err for rc, err in results if rc == 2)
    assert "Traceback" not in loser and ("exists" in loser or "created meanwhile" in loser)
    assert len(pd.read_csv(out)) == 2


def test_named_slots_are_checked_against_the_capabilities(comface_model, au_and_expression, empty_cache):
    an = Analyzer("smoke", au_model=au_and_expression["fmae_iat"], identity_model=comface_model,
                  expression_model=None, change_model=None, reference_model=None, editor=None)
    assert an.slot("au_model") is au_and_expression["fmae_iat"] and an.slot("expression_model") is None
    with pytest.raises(TypeError, match=r"au_model=ComFace does not have the AUModel capability"):
        Analyzer("smoke", au_model=comface_model)
    with pytest.raises(ValueError, match=r"method='nope' is unknown"):
        Analyzer("smoke", identity_model="nope")
    with pytest.raises(ModelMissingError, match="reference_model slot is empty"):
        an.reference(np.zeros((64, 64, 3), np.uint8))
