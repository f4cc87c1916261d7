"""The structure check: imports go down the layers, with no cycles (facekit.tools.imports)."""

from facekit.tools import imports


def test_no_module_imports_upward_and_there_are_no_cycles():
    g = imports.graph()
    assert len(g) > 50 and "facekit.methods.comface.train" in g
    assert imports.upward(g) == []
    assert imports.cycles(g) == []
    assert imports.private_imports() == []


def test_the_check_finds_an_upward_import_and_a_cycle():
    g = {"facekit.synth.params": {"facekit.methods.comface.model": 3},
         "facekit.methods.comface.model": {"facekit.methods.comface.viz": 5, "facekit.synth.params": 1},
         "facekit.methods.comface.viz": {"facekit.methods.comface.model": 2}}
    assert imports.upward(g) == ["facekit.synth.params:3 imports facekit.methods.comface.model, which is above it",
                                 "facekit.methods.comface.model:5 imports facekit.methods.comface.viz, which is above it"]
    assert imports.cycles(g) == [["facekit.methods.comface.model", "facekit.methods.comface.viz",
                                  "facekit.synth.params"]]
