"""3D assets: find them, download them (checked against pinned checksums), parse OBJ files.

The ICT-FaceKit files are MIT-licensed but large, so the project never ships them. They are
looked up in ``FACEKIT_ASSETS`` and then ``<cache>/assets`` (``facekit.config.asset_dirs``),
either directly or in an ``ict-facekit/`` subfolder, as ``.obj`` or gzip-compressed
``.obj.gz``. ``fetch_ict`` (the ``facekit assets fetch ict`` command) downloads them from
upstream at a pinned commit and checks each against ``facekit/data/ict_manifest.json``.

Parsing a 2.6 MB OBJ in Python takes a tenth of a second, and the model has 108 of them, so
parsed meshes are cached as ``.npz`` in ``<cache>/obj``, keyed by the sha256 of the
uncompressed file. All ICT files share one topology, so faces and UVs are stored once
(keyed by a hash of the non-vertex lines) and each file's entry holds only its vertices.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from facekit.config import asset_dirs, cache_dir
from facekit.download import ChecksumError, download, join_url
from facekit.io import atomic_write

log = logging.getLogger(__name__)

ICT_DIR = "ict-facekit"
ICT_NEUTRAL = "generic_neutral_mesh.obj"
MANIFEST_PATH = Path(__file__).resolve().parent.parent / "data" / "ict_manifest.json"
FETCH_COMMAND = "facekit assets fetch ict"


class AssetsNotFoundError(FileNotFoundError):
    """The 3D assets are not where the loader looks; the message says how to get them."""


@functools.lru_cache(maxsize=1)
def ict_manifest() -> dict[str, Any]:
    """The pinned upstream commit, URL pattern and sha256 of every ICT-FaceKit file (read-only)."""
    with open(MANIFEST_PATH, encoding="utf-8") as fh:
        return json.load(fh)


def _how_to_get() -> str:
    return (f"run `{FETCH_COMMAND}` to download them (about 270 MB) into {cache_dir() / 'assets' / ICT_DIR}, "
            f"or set FACEKIT_ASSETS=/path/to/assets (a folder holding {ICT_DIR}/ or the files themselves)")


def find_ict_dir() -> Path:
    """The first folder holding the ICT-FaceKit neutral mesh, searched in ``asset_dirs()`` order."""
    searched = []
    for base in asset_dirs():
        for folder in (base / ICT_DIR, base):
            searched.append(str(folder))
            if any((folder / (ICT_NEUTRAL + ext)).is_file() for ext in ("", ".gz")):
                return folder
    raise AssetsNotFoundError(f"ICT-FaceKit assets not found (looked for {ICT_NEUTRAL}[.gz] in {searched}); {_how_to_get()}")


def asset_file(name: str, folder: Path) -> Path:
    """``folder/name`` or ``folder/name.gz``, whichever exists."""
    for path in (folder / name, folder / (name + ".gz")):
        if path.is_file():
            return path
    raise AssetsNotFoundError(f"ICT-FaceKit file {name} (or {name}.gz) is missing from {folder}; {_how_to_get()}")


def read_bytes(path: Path) -> bytes:
    """The uncompressed content of ``path`` (gunzipped when it ends in ``.gz``)."""
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as fh:
            return fh.read()
    return path.read_bytes()


def _upstream_name(path: Path) -> str:
    return path.name[:-3] if path.name.endswith(".gz") else path.name


def verify(name: str, data: bytes, expected: str | None = None) -> str:
    """sha256 of ``data``; raise ``ChecksumError`` naming the file if it differs from the
    manifest entry for ``name`` (or from ``expected``)."""
    got = hashlib.sha256(data).hexdigest()
    want = expected or ict_manifest()["files"].get(name)
    if want is not None and got != want:
        raise ChecksumError(f"{name}: sha256 {got} does not match the pinned {want}; the file is corrupt or "
                            f"incomplete: delete it and run `{FETCH_COMMAND} --overwrite`")
    return got


# ---------------------------------------------------------------------------------------
# Downloading
# ---------------------------------------------------------------------------------------
def fetch_ict(dest: str | Path | None = None, base_url: str | None = None, overwrite: bool = False,
              files: Iterable[str] | None = None) -> Path:
    """Download the ICT-FaceKit files into ``dest`` and return the folder.

    dest: default ``<cache>/assets/ict-facekit``, where the loader looks.
    base_url: where the files are; default the upstream repository at the pinned commit.
        A ``file://`` URL or a local folder works too (offline mirrors, tests).
    overwrite: download again even when a file is present and its checksum matches.
    files: names from the manifest (default: all of them).

    Interrupted downloads resume from their ``.part`` file (HTTP Range); every file is
    checked against its pinned sha256 before it atomically replaces the target.
    """
    manifest = ict_manifest()
    sums: dict[str, str] = manifest["files"]
    names = list(sums) if files is None else list(files)
    unknown = [name for name in names if name not in sums]
    if unknown:
        raise KeyError(f"unknown ICT-FaceKit file(s) {unknown}; valid names are {sorted(sums)}")
    folder = Path(dest).expanduser() if dest is not None else cache_dir() / "assets" / ICT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    base = base_url if base_url is not None else manifest["url"].format(commit=manifest["commit"], file="")
    for name in names:
        if not overwrite and _present(folder, name, sums[name]):
            log.info("%s: present, checksum ok", name)
            continue
        download(join_url(base, name), folder / name, sums[name], restart=overwrite,
                 fix=f"run `{FETCH_COMMAND} --overwrite`")
        log.info("%s: downloaded, checksum ok", name)
    return folder


def _present(folder: Path, name: str, sha: str) -> bool:
    for path in (folder / name, folder / (name + ".gz")):
        if path.is_file():
            if hashlib.sha256(read_bytes(path)).hexdigest() == sha:
                return True
            log.warning("%s: checksum mismatch, downloading it again", path)
    return False


# ---------------------------------------------------------------------------------------
# OBJ parsing and its cache
# ---------------------------------------------------------------------------------------
@dataclasses.dataclass
class ObjMesh:
    """A triangulated OBJ mesh as numpy arrays.

    vertices (V, 3) float32; uvs (T, 2) float32; faces (F, 3) int64 vertex indices;
    face_uvs (F, 3) int64 UV indices (-1 where the file gives none); polygon (F,) int64,
    the OBJ polygon each triangle comes from (quads give two); material (F,) int64 index
    into ``materials`` (-1 before any ``usemtl``).
    """

    vertices: np.ndarray
    uvs: np.ndarray
    faces: np.ndarray
    face_uvs: np.ndarray
    polygon: np.ndarray
    material: np.ndarray
    materials: tuple[str, ...]


_TOPOLOGY_FIELDS = ("uvs", "faces", "face_uvs", "polygon", "material")


def load_obj(path: str | Path) -> ObjMesh:
    """Parse an ``.obj`` or ``.obj.gz``, from the cache when this content was parsed before.

    A file whose name is in the ICT manifest must match its pinned sha256
    (``ChecksumError`` names it otherwise).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"OBJ file {path} does not exist")
    root = cache_dir() / "obj"
    st = path.stat()
    memo = root / "by-path" / (hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:32] + ".json")
    sha = None
    if memo.is_file():
        seen = json.loads(memo.read_text())
        if seen["size"] == st.st_size and seen["mtime_ns"] == st.st_mtime_ns:
            sha = seen["sha256"]
    if sha is not None and (root / f"{sha}.npz").is_file():
        return _load_cached(root, sha)
    data = read_bytes(path)
    sha = verify(_upstream_name(path), data)
    if not (root / f"{sha}.npz").is_file():
        _parse_to_cache(data, root, sha, path)
    atomic_write(memo, json.dumps({"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                                    "sha256": sha}).encode())
    return _load_cached(root, sha)


def _load_cached(root: Path, sha: str) -> ObjMesh:
    with np.load(root / f"{sha}.npz") as entry:
        vertices, topo_key = entry["vertices"], str(entry["topology"])
    arrays, materials = _load_topology(root / f"topology-{topo_key}.npz")
    return ObjMesh(vertices=vertices, materials=materials, **arrays)


@functools.lru_cache(maxsize=8)
def _load_topology(path: Path) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """Shared, read-only topology arrays (the ICT files all use the same one)."""
    with np.load(path) as topo:
        arrays = {k: topo[k] for k in _TOPOLOGY_FIELDS}
        materials = tuple(str(m) for m in topo["materials"])
    for arr in arrays.values():
        arr.setflags(write=False)
    return arrays, materials


def _parse_to_cache(data: bytes, root: Path, sha: str, path: Path) -> None:
    text = data.decode("utf-8", errors="replace")
    lines = text.splitlines()
    vertex_lines = [ln[2:] for ln in lines if ln.startswith("v ")]
    try:
        vertices = np.array(" ".join(vertex_lines).split(), dtype=np.float32).reshape(len(vertex_lines), -1)[:, :3]
    except ValueError as err:
        raise ValueError(f"{path}: cannot read the vertex lines ({err}); expected 'v x y z' per line") from None
    rest = "\n".join(ln for ln in lines if not ln.startswith("v ")).encode()
    topo_key = hashlib.sha256(rest).hexdigest()[:32]
    topo_path = root / f"topology-{topo_key}.npz"
    if not topo_path.is_file():
        topo, materials = _parse_topology(lines, len(vertices), path)
        _atomic_savez(topo_path, materials=np.array(materials, dtype=str), **topo)
    _atomic_savez(root / f"{sha}.npz", vertices=vertices, topology=np.array(topo_key))


def _parse_topology(lines: list[str], n_vertices: int, path: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    uv_lines = [ln[3:] for ln in lines if ln.startswith("vt ")]
    uvs = np.array(" ".join(uv_lines).split(), dtype=np.float32).reshape(len(uv_lines), -1)[:, :2] \
        if uv_lines else np.zeros((0, 2), np.float32)
    materials: list[str] = []
    current = -1
    polys: list[list[str]] = []
    poly_mat: list[int] = []
    for ln in lines:
        if ln.startswith("f "):
            polys.append(ln[2:].split())
            poly_mat.append(current)
        elif ln.startswith("usemtl"):
            name = ln.split(maxsplit=1)[1].strip() if len(ln.split()) > 1 else ""
            if name not in materials:
                materials.append(name)
            current = materials.index(name)
    tris: list[np.ndarray] = []
    for k in sorted({len(p) for p in polys}):
        if k < 3:
            raise ValueError(f"{path}: a face has {k} corners; OBJ faces need at least 3")
        ids = np.array([i for i, p in enumerate(polys) if len(p) == k])
        corners = np.array([_corner(tok, path) for i in ids for tok in polys[i]], dtype=np.int64).reshape(len(ids), k, 2)
        for j in range(1, k - 1):  # fan triangulation: quads split along the (0, 2) diagonal
            tris.append(np.concatenate([ids[:, None], corners[:, [0, j, j + 1], 0], corners[:, [0, j, j + 1], 1]], 1))
    table = np.concatenate(tris) if tris else np.zeros((0, 7), np.int64)
    table = table[np.lexsort((np.arange(len(table)), table[:, 0]))]  # triangles in polygon order
    faces, face_uvs = table[:, 1:4] - 1, table[:, 4:7] - 1
    if faces.size and (faces.min() < 0 or faces.max() >= n_vertices):
        raise ValueError(f"{path}: face vertex indices run from {faces.min() + 1} to {faces.max() + 1}; "
                         f"the file has {n_vertices} vertices (relative, negative indices are not supported)")
    if face_uvs.size and face_uvs.max() >= len(uvs):
        raise ValueError(f"{path}: face UV indices reach {face_uvs.max() + 1}; the file has {len(uvs)} UVs")
    material = np.array(poly_mat, dtype=np.int64)[table[:, 0]] if len(table) else np.zeros(0, np.int64)
    topo = {"uvs": uvs, "faces": faces, "face_uvs": face_uvs, "polygon": table[:, 0], "material": material}
    return topo, materials


def _corner(token: str, path: Path) -> tuple[int, int]:
    """``v``, ``v/vt``, ``v//vn`` or ``v/vt/vn`` -> (v, vt) with vt 0 when absent (1-based)."""
    parts = token.split("/")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 and parts[1] else 0
    except ValueError:
        raise ValueError(f"{path}: cannot read face corner {token!r}; expected v, v/vt, v//vn or v/vt/vn") from None


def _atomic_savez(path: Path, **arrays: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # a file object: np.savez would append ".npz" to a name
            np.savez(fh, **arrays)

    atomic_write(path, write)
