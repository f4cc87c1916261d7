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
    assert main(["synth", str(out), "--n", "12", "--size", "32", "--overwrite"]) == 2  # not a dataset
    assert (out / "keep.txt").read_text() == "user data"
    ds = tmp_path / "ds"
    assert main(["synth", str(ds), "--n", "2", "--size", "32"]) == 0
    assert main(["synth", str(ds), "--n", "12", "--size", "32", "--overwrite"]) == 0
    assert "(face_00.png)" in (ds / "card.md").read_text()  # the card shows a file that exists


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


# ------------------------------------------------------------------ hardening (issue 21)

def _synth_cmd(out, *extra):
    return [sys.executable, "-m", "facekit.cli", "synth", str(out), "--size", "32", *extra]


def _dataset_is_whole(out):
    from pathlib import Path

    out = Path(out)
    rows = list(csv.DictReader((out / "labels.csv").open()))
    assert sorted(r["file"] for r in rows) == sorted(p.name for p in out.glob("*.png"))
    assert (out / "card.md").is_file()
    return rows


@pytest.mark.parametrize("argv", [["--n", "0"], ["--batch-size", "0"], ["--batch-size", "-1"], ["--n", "x"],
                                  ["--seed", "-1"]])
def test_synth_bad_numbers_are_usage_errors_before_any_work(argv, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["synth", str(tmp_path / "ds"), *argv])
    err = capsys.readouterr().err
    assert info.value.code == 2 and ("is not valid" in err or "is not a whole number" in err)
    assert not (tmp_path / "ds").exists() and list(tmp_path.iterdir()) == []


def test_synth_overwrite_replaces_the_whole_folder(tmp_path, capsys):
    out = tmp_path / "ds"
    assert main(["synth", str(out), "--n", "5", "--size", "32"]) == 0
    assert main(["synth", str(out), "--n", "3", "--size", "32", "--seed", "1", "--overwrite"]) == 0
    assert len(_dataset_is_whole(out)) == 3 and len(list(out.glob("*.png"))) == 3  # no stale images
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no temp folder or lock left
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("user data")
    assert main(["synth", str(mine), "--n", "2", "--overwrite"]) == 2  # not a dataset: never deleted
    assert "not a facekit dataset" in capsys.readouterr().err and (mine / "keep.txt").read_text() == "user data"
    (tmp_path / "file").write_text("x")
    assert main(["synth", str(tmp_path / "file" / "ds")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_two_synth_runs_into_one_folder(tmp_path):
    """They used to interleave: 250 images under 200 labels. Now one writes, the other refuses."""
    out = tmp_path / "ds"
    procs = [subprocess.Popen(_synth_cmd(out, "--n", "40", "--seed", str(s), "--batch-size", "8"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for s in (0, 1)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert sorted(rc for rc, _ in results) == [0, 2], results
    loser = next(err for rc, err in results if rc == 2)
    assert "Traceback" not in loser and ("another run" in loser or "not empty" in loser)
    assert len(_dataset_is_whole(out)) == 40
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_synth_ctrl_c_leaves_the_target_as_it_was(tmp_path):
    import signal

    out = tmp_path / "ds"
    assert main(["synth", str(out), "--n", "2", "--size", "32"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    # a job started in the background inherits an ignored SIGINT; give the child the default back
    proc = subprocess.Popen(_synth_cmd(out, "--n", "4000", "--batch-size", "4", "--overwrite"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stderr.readline().endswith("faces\n")  # rendering has begun
    proc.send_signal(signal.SIGINT)
    rc, err = proc.wait(timeout=120), proc.stderr.read()
    assert rc == 130 and "Traceback" not in err and err.strip().splitlines()[-1].startswith("interrupted:")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def _notebooks(tmp_path):
    import nbformat

    folder = tmp_path / "nbs"
    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1")]
    nbformat.write(nb, folder / "00_a.ipynb")
    return folder


@pytest.mark.parametrize(("argv", "match"), [
    (["--only", "99"], r"--only \['99'\] matched no notebook; available: \['00_a'\]"),
    (["--param", "x=[1"], r"--param 'x=\[1': the value is not valid YAML"),
    (["--param", "1x=2"], "is not a valid Python name"),
    (["--notebooks", "MISSING"], "is not a folder"),
    (["--grid", "GRID:parameters: [1"], "is not valid YAML at line 1"),
    (["--grid", "GRID:parameters:\n  seed: 3\n"], r"parameters.seed=3 is not valid; pass a list"),
    (["--grid", "GRID:parameters: {seed: [1]}\njobs: 2\n"], r"unknown keys \['jobs'\]"),
    (["--grid", "GRID:parameters: {seed: [1]}\nprofile: fast\n"], "profile='fast' is not valid"),
    (["--grid", "GRID:- 1\n"], r"holds \[1\], not a mapping; pass a mapping"),
])
def test_run_bad_arguments_are_one_line_and_exit_2(argv, match, tmp_path, capsys):
    import re

    folder = _notebooks(tmp_path)
    if argv[0] == "--grid":
        (tmp_path / "g.yaml").write_text(argv[1].removeprefix("GRID:"))
        argv = ["--grid", str(tmp_path / "g.yaml")]
    if "--notebooks" not in argv:
        argv = [*argv, "--notebooks", str(folder)]
    argv = [str(tmp_path / a) if a == "MISSING" else a for a in argv]
    assert main(["run", *argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert re.search(match, err), err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "out").exists()
    with pytest.raises(SystemExit) as info:
        main(["run", "--jobs", "0", "--notebooks", str(folder)])
    assert info.value.code == 2


@pytest.mark.parametrize(("key", "value", "match"), [
    ("currency", "[EUR, USD]", r"currency=\['EUR', 'USD'\] is not valid; pass a string"),
    ("thresholds", "{go_min_roi: high}", r"thresholds.go_min_roi='high' is not valid; pass a finite number"),
    ("horizon_months", "1.5", r"horizon_months=1.5 is not valid; pass a whole number"),
    ("assumptions", "just one", r"assumptions='just one' is not valid; pass a list of strings"),
    ("quality", "42", r"quality=42 is not valid; pass a string"),
    ("decisions_per_month", "many", r"decisions_per_month='many' is not valid"),
    ("colour", "red", r"unknown keys \['colour'\]"),
])
def test_report_wrong_typed_scenario_is_one_line_and_exit_2(key, value, match, tmp_path, capsys):
    import re

    import yaml

    from facekit.pilot import SCENARIO_DIR

    data = yaml.safe_load((SCENARIO_DIR / "customer_service.yaml").read_text())
    data[key] = yaml.safe_load(value)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["report", "--scenario", str(path), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert re.search(match, err), err
    assert len(err.strip().splitlines()) == 1 and list(tmp_path.iterdir()) == [path]


def test_outputs_and_environment_are_checked_before_any_command(tmp_path, monkeypatch, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["cards", "--out", str(tmp_path / "file"), "--only", "pairs_age"]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err
    assert main(["assets", "fetch", "ict", "--dest", str(tmp_path / "file")]) == 2
    assert "--dest" in capsys.readouterr().err
    monkeypatch.setenv("FACEKIT_OFFLINE", "maybe")
    assert main(["info"]) == 2
    err = capsys.readouterr().err
    assert err == "error: FACEKIT_OFFLINE='maybe' is not valid; use 1 (offline) or 0\n"
