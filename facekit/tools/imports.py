"""The structure check: every import in ``facekit/`` goes down the layers, none makes a cycle, and
no module imports another's private names.

    python -m facekit.tools.imports        # prints each violation; exit status 1 when there is one

Layers, lowest first (a module may import its own layer and the ones below it):

0. ``_version``, ``config``, ``io``, ``download``, ``schema``, ``checks``: settings, files,
   downloads and the validation of what a user passes;
1. ``synth`` (the synthetic world) and ``real`` (photos);
2. ``models``, ``kernels``, and what trains and scores them: ``train``, ``metrics``, ``viz``;
3. ``methods`` (within a package: ``config`` < ``data`` < ``model`` < ``train`` < ``evaluate``
   < ``viz`` < ``__init__``/``__main__``; ``base`` and ``common`` below every package);
4. ``records``, ``cards``, ``analyze``, ``dataset_writer``: what reads the methods' results and
   models, and writes datasets with their cards;
5. ``pilot``, ``report``, ``runner``: KPIs and reports from the records;
6. ``cli``, ``widgets``, ``runtime``, ``tools``: the user's entry points.

Imports inside functions count as well: a lazy import is still a dependency. The package's own
``facekit/__init__.py`` (the public facade) is not checked.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS: dict[str, int] = {
    "_version": 0, "config": 0, "io": 0, "download": 0, "schema": 0, "checks": 0,
    "synth": 1, "real": 1,
    "models": 2, "kernels": 2, "train": 2, "metrics": 2, "viz": 2,
    "methods": 3,
    "records": 4, "cards": 4, "analyze": 4, "dataset_writer": 4,
    "pilot": 5, "report": 5, "runner": 5,
    "cli": 6, "widgets": 6, "runtime": 6, "tools": 6,
}
METHOD_FILES = ("config", "data", "model", "train", "evaluate", "viz", "__init__", "__main__")
# The one sanctioned upward import: ``synth.render`` picks the renderer's implementation (the
# plain-torch reference or its fused Triton kernel), lazily, inside the function; the kernels
# read only ``synth.layout`` and ``synth.params``, so there is no cycle.
ALLOWED_CYCLES: set[frozenset[str]] = set()
ALLOWED_PRIVATE: set[tuple[str, str]] = set()
ALLOWED_UPWARD = {("facekit.synth.render", "facekit.kernels"), ("facekit.synth.render", "facekit.kernels.render"),
                  ("facekit.synth.render", "facekit.kernels.dispatch")}


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the package by dotted name (``facekit.methods.comface.train``)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def imports(path: Path, known: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """The facekit modules ``path`` imports, with the line of each import."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
                       for a in node.names]
        else:
            continue
        for t in targets:
            if t == "facekit" or t.startswith("facekit."):
                while t not in known and "." in t:
                    t = t.rsplit(".", 1)[0]
                yield t, node.lineno


def private_imports(root: Path = ROOT) -> list[str]:
    """``from facekit.x import _name``: a private name used outside its module."""
    out = []
    for name, path in modules(root).items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("facekit"):
                for a in node.names:
                    if a.name.startswith("_") and not a.name.startswith("__") and (name, a.name) not in ALLOWED_PRIVATE:
                        out.append(f"{name}:{node.lineno} imports the private name {a.name} from {node.module}")
    return out


def rank(name: str) -> tuple[int, int]:
    """(layer, place inside the layer) of a module; the place orders a method package's files."""
    parts = name.split(".")
    if len(parts) < 2:
        return (-1, 0)
    layer = LAYERS.get(parts[1], 6)
    if parts[1] == "methods":
        if len(parts) == 2 or parts[2] in ("base", "common"):
            return (layer, 0)
        sub = parts[3] if len(parts) > 3 else "__init__"
        return (layer, 1 + METHOD_FILES.index(sub) if sub in METHOD_FILES else len(METHOD_FILES))
    return (layer, 0)


def graph(root: Path = ROOT) -> dict[str, dict[str, int]]:
    """``{module: {imported module: line}}`` over the package (the facade excluded)."""
    known = modules(root)
    return {name: {t: line for t, line in imports(path, known) if t != name}
            for name, path in known.items() if name != "facekit"}


def _same_package(a: str, b: str) -> bool:
    pa, pb = a.split("."), b.split(".")
    return pa[:2] == pb[:2] == ["facekit", "methods"] and len(pa) > 3 and len(pb) > 3 and pa[2] == pb[2]


def upward(g: dict[str, dict[str, int]]) -> list[str]:
    """Imports that go up a layer (or, inside a method package, up its file order)."""
    out = []
    for a, targets in g.items():
        for b, line in targets.items():
            if b == "facekit":
                continue
            (la, pa), (lb, pb) = rank(a), rank(b)
            inside = _same_package(a, b) or b in ("facekit.methods.base", "facekit.methods.common")
            if lb > la or (inside and lb == la and pb > pa):
                if (a, b) not in ALLOWED_UPWARD:
                    out.append(f"{a}:{line} imports {b}, which is above it")
    return out


def cycles(g: dict[str, dict[str, int]]) -> list[list[str]]:
    """Import cycles (strongly connected groups of two or more modules), the allowed one excepted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g.get(v, {}):
            if w not in g:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1 and frozenset(group) not in ALLOWED_CYCLES:
                out.append(sorted(group))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def main() -> int:
    g = graph()
    problems = upward(g) + [f"import cycle: {' <-> '.join(c)}" for c in cycles(g)] + private_imports()
    for p in problems:
        print(p)
    print(f"{len(g)} modules, {sum(len(t) for t in g.values())} imports: "
          + (f"{len(problems)} problem(s)" if problems else "every import goes down the layers, no cycles, "
                                                "no private names"))
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
