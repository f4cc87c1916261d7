"""No committed notebook re-runs a claims protocol: a whole seed of it trains every baseline,
fold and variant, and a cold `cpu` run of notebook 03 was still in it after 58 minutes (issue
19). A notebook trains or loads the one model it teaches and reads the seed's figures from the
claims records (``facekit.records.seed_scores``)."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

# The claims protocol's entry points: a method's run_seed (and plugen's run_seed_with_curves),
# the benchmark's seeds loop and its claims functions, or the benchmark script run or imported
# (naming the command in a message is fine).
PROTOCOL = re.compile(r"\brun_seeds?(_with_curves)?\s*\(|\bclaims_fn\s*\(|^\s*[!%].*benchmarks/claims"
                      r"|^\s*(from|import)\s+(benchmarks\.)?claims\b")


def protocol_calls(nb: nbformat.NotebookNode) -> list[str]:
    """One line per code line (comments aside) that reaches a claims-protocol entry point."""
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for line in cell.source.splitlines():
            code = line.split("#", 1)[0]
            if PROTOCOL.search(code):
                found.append(f"cell {i}: {line.strip()[:80]}")
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_no_notebook_reruns_a_claims_seed(path):
    bad = protocol_calls(nbformat.read(path, as_version=4))
    assert not bad, (f"{path.name} runs the claims protocol; read the seed's figures with "
                     "facekit.records.seed_scores instead:\n" + "\n".join(bad))


def test_the_check_catches_each_entry_point():
    cell = nbformat.v4.new_code_cell
    nb = nbformat.v4.new_notebook(cells=[
        cell("scores = comface.run_seed(profile, seed)"),
        cell("out, curves = plugen_eval.run_seed_with_curves(profile, seed)"),
        cell("!python benchmarks/claims.py --method gencon"),
        cell("from claims import claims_fn"),
        cell("scores = seed_scores('gencon', seed, profile)  # not run_seed(profile, seed)\n"
             "print('run `python benchmarks/claims.py --method gencon`')"),
        nbformat.v4.new_markdown_cell("`fmae_iat.run_seed` scores four variants"),
    ])
    assert protocol_calls(nb) == ["cell 0: scores = comface.run_seed(profile, seed)",
                                  "cell 1: out, curves = plugen_eval.run_seed_with_curves(profile, seed)",
                                  "cell 2: !python benchmarks/claims.py --method gencon",
                                  "cell 3: from claims import claims_fn"]
