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
    assert set(df.attrs["missing"]) == {"fmae_iat", "gencon"} and "AU1" not in df
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
    assert "comface columns left out" in err and "facekit train comface" in err
    rows = pd.read_csv(out)
    assert len(rows) == len(cases) - 1  # the missing path was not passed
    before = out.read_bytes()
    assert main(["analyze", str(folder), "--out", str(out), "--profile", "smoke"]) == 2
    assert "--overwrite" in capsys.readouterr().err and out.read_bytes() == before
    assert main(["analyze", str(folder), "--out", str(out), "--profile", "smoke", "--overwrite"]) == 0
    assert not list(tmp_path.glob(".faces.csv.*"))


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
