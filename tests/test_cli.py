import csv
import subprocess
import sys

import pytest

from facekit.cli import main
from facekit.runner import parse_params


def test_info_prints_versions(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "torch" in out and "cache dir" in out and "ICT assets" in out


def test_synth_writes_images_labels_and_card(tmp_path):
    out = tmp_path / "faces"
    assert main(["synth", str(out), "--n", "6", "--size", "32", "--expressions", "emotion"]) == 0
    assert sorted(p.name for p in out.glob("*.png")) == [f"face_{i}.png" for i in range(6)]
    rows = list(csv.DictReader((out / "labels.csv").open()))
    assert len(rows) == 6 and "AU12" in rows[0] and "emotion" in rows[0]
    card = (out / "card.md").read_text()
    assert "Privacy" in card and "(face_0.png)" in card
    assert not list(out.glob(".*.tmp"))


def test_synth_refuses_non_empty_folder_and_touches_nothing(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    assert main(["synth", str(out), "--n", "2"]) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert main(["synth", str(out), "--n", "12", "--size", "32", "--overwrite"]) == 0
    assert (out / "keep.txt").read_text() == "user data"
    assert "(face_00.png)" in (out / "card.md").read_text()  # the card shows a file that exists


def test_synth_bad_value_is_a_clear_error(tmp_path, capsys):
    assert main(["synth", str(tmp_path / "x"), "--size", "999"]) == 2
    assert "size=999 is not valid" in capsys.readouterr().err


def test_cards_up_to_date_and_refuse_to_overwrite(tmp_path, capsys):
    assert main(["cards", "--out", str(tmp_path), "--only", "pairs_age"]) == 0
    assert main(["cards", "--out", str(tmp_path), "--only", "pairs_age"]) == 0
    assert "unchanged" in capsys.readouterr().out
    (tmp_path / "pairs_age.md").write_text("edited by hand")
    assert main(["cards", "--out", str(tmp_path), "--only", "pairs_age"]) == 1
    assert (tmp_path / "pairs_age.md").read_text() == "edited by hand"
    assert main(["cards", "--out", str(tmp_path), "--only", "nope"]) == 2


def test_committed_cards_match_the_generator(tmp_path):
    """data_cards/ is regenerated from code; a stale card fails here."""
    from pathlib import Path

    from facekit.cards import card_datasets, write_card

    root = Path(__file__).resolve().parents[1] / "data_cards"
    assert set(p.stem for p in root.glob("*.md")) == set(card_datasets())
    for name in card_datasets():
        path, _ = write_card(name, tmp_path)
        assert path.read_text() == (root / f"{name}.md").read_text(), f"data_cards/{name}.md is stale: run `facekit cards --overwrite`"


def test_parse_params():
    assert parse_params(["seed=3", "name=abc", "scale=0.5"]) == {"seed": 3, "name": "abc", "scale": 0.5}
    with pytest.raises(ValueError, match="key=value"):
        parse_params(["seed"])


def test_run_goes_on_past_a_failing_notebook(tmp_path):
    import nbformat

    folder = tmp_path / "nbs"
    folder.mkdir()
    for name, code in [("00_good", "x = 1"), ("01_bad", "raise RuntimeError('boom')"), ("02_good", "y = 2")]:
        nb = nbformat.v4.new_notebook()
        params = nbformat.v4.new_code_cell("profile = 'smoke'\nseed = 0")
        params.metadata["tags"] = ["parameters"]
        nb.cells = [params, nbformat.v4.new_code_cell(code)]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, folder / f"{name}.ipynb")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "facekit.cli", "run", "--notebooks", str(folder), "--out", str(out),
                           "--profile", "smoke", "--param", "seed=5"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert "01_bad: FAILED" in proc.stdout and "RuntimeError" in proc.stdout and "boom" in proc.stdout
    assert "00_good: ok" in proc.stdout and "02_good: ok" in proc.stdout
    assert (out / "01_bad.ipynb").exists() and (out / "02_good.ipynb").exists()
    executed = nbformat.read(out / "00_good.ipynb", as_version=4)
    assert any("seed = 5" in c.source for c in executed.cells)


def test_train_unknown_method_names_the_valid_ones(capsys):
    assert main(["train", "nope"]) == 2
    err = capsys.readouterr().err
    assert "method='nope'" in err and "comface" in err and "plugen" in err


def test_run_grid_keeps_every_run_and_its_records(tmp_path):
    import nbformat
    import pandas as pd

    folder = tmp_path / "nbs"
    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("profile = 'smoke'\nseed = 0\nscale = 1.0")
    params.metadata["tags"] = ["parameters"]
    body = ("from facekit import records\n"
            "if scale < 0:\n    raise ValueError('scale must be >= 0')\n"
            "records.record('05_grid', {'f1': seed + scale}, profile=profile)")
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / "05_grid.ipynb")
    grid = tmp_path / "grid.yaml"
    grid.write_text("notebooks: ['05']\nprofile: smoke\nparameters:\n  seed: [0, 1]\n  scale: [0.5, -1]\n")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "facekit.cli", "run", "--grid", str(grid), "--notebooks", str(folder),
                           "--out", str(out), "--jobs", "2"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 4 and (summary.status == "failed").sum() == 2
    good = summary[summary.status == "ok"].sort_values("seed")
    assert good["05_grid/f1"].tolist() == [0.5, 1.5]  # each run's own record, not the last one's
    assert summary.loc[summary.status == "failed", "error"].str.contains("scale must be >= 0").all()
    assert len(list(out.glob("05_grid/*/05_grid.ipynb"))) == 4  # failed runs keep their executed notebook
    assert (out / "summary.md").read_text().startswith("| notebook | seed | scale |")
    bad = tmp_path / "bad.yaml"
    bad.write_text("parameters:\n  seed: 3\n")
    assert main(["run", "--grid", str(bad)]) == 2
