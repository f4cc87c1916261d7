"""The ICT-FaceKit backend: a linear 3D morphable face model driven by the same FaceParams.

**The model** (``ICTModel``) is what ICT-FaceKit ships: a neutral mesh, identity PCA modes
and ARKit-style expression shapes, each stored as a full mesh (``mode = mesh - neutral``):

    vertices = neutral + sum_k c_k * identity_k + sum_e w_e * expression_e

in centimetres, in the OBJ frame (x to the subject's left, i.e. the viewer's right; y up;
z out of the face). ``ICTModel.vertices`` evaluates it at full resolution (26,719 vertices).

**How FaceParams drive it** (everything below is data or a documented formula):

* Identity: the 26 named traits of ``IDENTITY_TRAITS``, through a fixed (modes x traits)
  matrix with orthonormal columns (``identity_matrix()``), so a standard-normal code gives
  coefficients with the PCA prior's unit variance. Each *geometric* trait has a linear
  measurement on the mesh (``TRAIT_MEASURES``; e.g. face width is x(landmark 15) - x(1)),
  whose gradient over the modes is known exactly. The trait columns are these gradients
  orthonormalised in trait order (Gram-Schmidt): each trait widens, lengthens, ... its
  own measurement and leaves the measurements of the traits listed before it unchanged.
  Each *appearance* trait (skin, hair, eyes, brows) drives the texture and also a fixed
  random orthonormal shape (seed ``_RESIDUAL_SEED``) orthogonal to every measurement, so
  the code reaches 26 of the 50 modes. Codes pass through ``2.5 * tanh(z / 2.5)`` first.
* AUs: ``AU_TO_SHAPES`` maps each FACS AU to expression-shape weights (left and right
  driven together; ``asymmetry`` tilts them). It follows the upstream README's FACS table,
  except AU10 -> mouthUpperUp (ARKit's "upper lip raise"; upstream lists mouthShrugUpper),
  and it adds AU23 (mouthPress + a little mouthPucker), AU25 (lips apart: mouthLowerDown +
  a little jawOpen) and AU26 (jawOpen 0.6; jawOpen 1 is AU27's full stretch). Two eye AUs get
  the lid movement FACS describes and the single ARKit shape lacks: AU6 narrows the eye from
  below (cheekSquint + eyeSquint 0.35) and AU7 lowers the upper lid a little as it tightens
  (eyeSquint + eyeBlink 0.3). With one shape each they were the least visible AUs and the
  least detected ones in the learnability audit (``benchmarks/RESULTS.md``).
* Weight (BMI): ``weight_direction()``, the minimum-norm identity-coefficient change that
  widens the face (x(15) - x(1)) by 0.6 cm and fills the lower cheeks by 0.2 cm (mean
  displacement along the neutral normals, Gaussian windows at the cheeks) per +10 BMI,
  while keeping the eye, nose, mouth and ear measurements fixed (``_WEIGHT_TARGET``,
  ``_WEIGHT_FIXED``). Added as ``(BMI - 22) / 10`` (clipped to [-0.6, 1.8], as in the
  procedural backend) times the direction.
* Age: geometry and texture. ``sag = (age - 40) / 40`` clipped to [0, 1] moves the jowls
  down and out and the mid-cheeks down (``_sag_field``, Gaussian windows, 0.5 cm at most)
  and adds mouthFrown 0.25 and eyeBlink 0.12 (drooping corners and lids).
  ``wrinkle = (age - 28) / 45`` deepens painted wrinkles (forehead, crow's feet,
  nasolabial folds, under-eye), yellows the skin, teeth and sclera; hair and brows grey
  as in the procedural backend.

**Appearance** is painted in UV space: a bank of static maps over the face's UV tile
(lips, brow coordinates, wrinkle line patterns, blush, lash line; ``TEXTURE_CHANNELS``,
built from the landmark UVs by ``_texture_bank``) is sampled at each pixel's interpolated
UV and combined with per-face colours and amplitudes (``_Look``: the procedural
backend's skin, lip, hair, brow and iris colours, so a face keeps its colouring across
backends; AU-driven wrinkles such as AU1/AU2 forehead lines and AU9 nose lines). Scalp hair is painted from the *rest position* of the surface (hairline
as a function of the angle around the head), so it sits alike on every identity. Eyes
are the mesh's eyeballs: the clear cornea part of the sclera is dropped so the iris
shows, and the iris is coloured by ``eye_colour`` with a pupil and limbal ring from its
radial UV. Glasses are a small frame mesh placed from the eye landmarks and drawn in a
second depth-tested pass.

**Camera and light** follow the procedural backend: the image spans [-1, 1] (x right,
y down), the head turns by yaw (+ to the viewer's right), pitch (+ down) and roll
(+ clockwise) about its centre with R = Rz(roll) Ry(yaw) Rx(pitch), the light comes from
``light_azimuth`` / ``light_elevation`` with the same shading constants, and the
background, shoulders and long hair are the same image-space layers. The camera is a
real perspective camera 10 image units (~1.4 m) away, so UVs and normals are
interpolated perspective-correctly by ``facekit.synth.raster``.

**Speed**: the rasterizer's cost grows with triangles x faces, so the renderer uses a
lower-resolution *vertex subset* (``decimate``): vertices are clustered on a grid in UV
space (separately per material, seam and boundary class, and per connected piece, so
lips, lids and seams keep their outlines; finer around eyes, nose and mouth) and each
cluster is represented by one of its own vertices. Every mode is then just indexed by
the subset, so the linear model is exact at the kept vertices. At 128 px this keeps about
5,800 of 26,719 vertices (11,300 triangles); the level of detail follows the raster size
(``_lod``). Normals are not taken from the coarse mesh but blended from full-resolution
normals (``_normal_basis``). Interior parts that never show (gums, tongue, back teeth,
lacrimal and occlusion layers, eyelash strips) are dropped. Images up to 96 px are
rendered at 2x2 samples per pixel for anti-aliasing; larger ones at one.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from scipy.sparse.csgraph import connected_components

from facekit.synth.appearance import appearance
from facekit.synth.appearance import trait as appearance_trait
from facekit.synth.assets import (
    ICT_NEUTRAL,
    ObjMesh,
    asset_file,
    find_ict_dir,
    ict_manifest,
    load_obj,
)
from facekit.synth.framing import check_framing, face_geometry
from facekit.synth.layout import MAX_SIZE, MIN_SIZE, ZOOM  # shared with the procedural backend
from facekit.synth.params import AU_NAMES, ID_DIM, IDENTITY_TRAITS, N_AUS, FaceParams, au_index
from facekit.synth.raster import downsample, interpolate, rasterize, shade, vertex_normals
from facekit.synth.rng import hash_uniform

Tensor = torch.Tensor

_TRAIT = {name: k for k, (name, _) in enumerate(IDENTITY_TRAITS)}

# Multi-PIE 68-point landmark vertex indices, from the upstream README (0-based).
LANDMARKS_68: tuple[int, ...] = (
    1225, 1888, 1052, 367, 1719, 1722, 2199, 1447, 966, 3661, 4390, 3927, 3924, 2608, 3272, 4088, 3443,
    268, 493, 1914, 2044, 1401, 3615, 4240, 4114, 2734, 2509, 978, 4527, 4942, 4857, 1140, 2075, 1147,
    4269, 3360, 1507, 1542, 1537, 1528, 1518, 1511, 3742, 3751, 3756, 3721, 3725, 3732, 5708, 5695, 2081,
    0, 4275, 6200, 6213, 6346, 6461, 5518, 5957, 5841, 5702, 5711, 5533, 6216, 6207, 6470, 5517, 5966,
)

# Polygon index ranges of the mesh parts, from the upstream README ([start, stop)).
POLYGON_RANGES: dict[str, tuple[int, int]] = {
    "face": (0, 9230),
    "head_neck": (9230, 11144),
    "mouth_socket": (11144, 13226),
    "eye_sockets": (13226, 14034),
    "gums_tongue": (14034, 17006),
    "teeth": (17006, 21496),
    "eyeball_left": (21496, 23094),
    "eyeball_right": (23094, 24692),
}
# Front teeth (upper and lower canine to canine), the only ones an open mouth shows.
_FRONT_TEETH = ((17886, 18370), (20104, 20642))

# FACS AU -> ARKit-style shape weights at AU intensity 1. A name without _L/_R that
# exists in the assets with both suffixes drives both sides.
AU_TO_SHAPES: dict[str, dict[str, float]] = {
    "AU1": {"browInnerUp": 1.0},
    "AU2": {"browOuterUp": 1.0},
    "AU4": {"browDown": 1.0},
    "AU5": {"eyeWide": 1.0},
    "AU6": {"cheekSquint": 1.0, "eyeSquint": 0.35},
    "AU7": {"eyeSquint": 1.0, "eyeBlink": 0.3},
    "AU9": {"noseSneer": 1.0},
    "AU10": {"mouthUpperUp": 1.0},
    "AU12": {"mouthSmile": 1.0},
    "AU14": {"mouthDimple": 1.0},
    "AU15": {"mouthFrown": 1.0},
    "AU17": {"mouthShrugLower": 1.0},
    "AU20": {"mouthStretch": 1.0},
    "AU23": {"mouthPress": 1.0, "mouthPucker": 0.25},
    "AU25": {"mouthLowerDown": 0.6, "jawOpen": 0.12},
    "AU26": {"jawOpen": 0.6},
    "AU43": {"eyeBlink": 1.0},
}
assert set(AU_TO_SHAPES) == set(AU_NAMES)
# Ageing reuses expression shapes: drooping mouth corners and upper lids at sag = 1.
AGE_SHAPES: dict[str, float] = {"mouthFrown": 0.25, "eyeBlink": 0.12}
# The neutral mesh's lips are parted by a hair, so teeth fade in with these shapes'
# weights (times the factor, clipped to 1); a closed mouth shows a dark lip seam.
TEETH_SHOW: dict[str, float] = {"jawOpen": 4.0, "mouthLowerDown": 2.0, "mouthUpperUp": 2.0, "mouthSmile": 1.0}

# Linear measurements of the geometric identity traits: (landmark, axis, weight) terms on
# vertex displacements (axis 0 = x, 1 = y, 2 = z). Named points (``"cheekbone_l"``,
# ``"ear_top_r"``, ...) are vertices found on the neutral mesh (see ``_extra_points``).
TRAIT_MEASURES: dict[str, list[tuple[int | str, int, float]]] = {
    "face_width": [(15, 0, 1.0), (1, 0, -1.0)],
    "face_length": [(27, 1, 1.0), (8, 1, -1.0)],
    "jaw_width": [(12, 0, 1.0), (4, 0, -1.0)],
    "chin_length": [(57, 1, 1.0), (8, 1, -1.0)],
    "cheekbones": [("cheekbone_l", 2, 0.5), ("cheekbone_r", 2, 0.5)],
    "eye_size": [(37, 1, 0.25), (38, 1, 0.25), (41, 1, -0.25), (40, 1, -0.25),
                 (43, 1, 0.25), (44, 1, 0.25), (47, 1, -0.25), (46, 1, -0.25)],
    "eye_spacing": [(42, 0, 1.0), (39, 0, -1.0)],
    "eye_height": [(36, 1, 0.25), (39, 1, 0.25), (42, 1, 0.25), (45, 1, 0.25), (30, 1, -1.0)],
    "eye_tilt": [(36, 1, 0.5), (39, 1, -0.5), (45, 1, 0.5), (42, 1, -0.5)],
    "nose_length": [(27, 1, 1.0), (33, 1, -1.0)],
    "nose_width": [(35, 0, 1.0), (31, 0, -1.0)],
    "mouth_width": [(54, 0, 1.0), (48, 0, -1.0)],
    "lip_fullness": [(51, 1, 1.0), (62, 1, -1.0), (66, 1, 1.0), (57, 1, -1.0)],
    "mouth_height": [(62, 1, -0.5), (66, 1, -0.5), (33, 1, 1.0)],
    "ear_size": [("ear_top_l", 1, 0.5), ("ear_top_r", 1, 0.5), ("ear_bottom_l", 1, -0.5), ("ear_bottom_r", 1, -0.5)],
}
_RESIDUAL_SEED = 20240  # seed of the appearance traits' random shapes
_WEIGHT_TARGET = {"face_width": 0.6, "cheek_fill": 0.2}  # cm per +10 BMI
_WEIGHT_FIXED = ("eye_size", "eye_spacing", "eye_height", "nose_length", "nose_width", "mouth_width", "ear_size")

# Framing: centimetres -> image units, and where the head centre sits in the image.
_CM = 0.072
_PIVOT_CM = (0.0, 3.0, 1.0)  # rest-pose head centre the pose rotates about
_PIVOT_IMG = (0.0, -0.09)
_HEAD_HALF_WIDTH = 7.5 * _CM  # image units, for the long-hair layer behind the head
_CAMERA = 10.0  # camera distance in image units

# Parts of the rendered mesh.
SKIN, HEAD, MOUTH, SOCKET, SCLERA, IRIS, TEETH = range(7)
_SPECULAR = (0.10, 0.10, 0.0, 0.05, 0.5, 0.5, 0.3)  # specular weight per part, in that order

# UV-clustering cell sizes (UV units) per material at level of detail 1.
_CELLS = {"M_Face": 1 / 60, "M_BackHead": 1 / 30, "M_ScleraLeft": 1 / 14, "M_ScleraRight": 1 / 14,
          "M_IrisLeft": 1 / 14, "M_IrisRight": 1 / 14, "M_Teeth": 1 / 30}
_CENTRE_CELL = 0.6  # cell multiplier for the central face (eyes, nose, mouth) in the face tile


# ---------------------------------------------------------------------------------------
# The full-resolution linear model
# ---------------------------------------------------------------------------------------
class ICTModel:
    """Neutral mesh, identity modes and expression shapes as torch tensors (float32, cm).

    neutral (V, 3); identity_modes (K, V, 3); expression_shapes (E, V, 3), named by
    ``shape_names``; ``mesh`` holds the shared topology (faces, UVs, materials).
    """

    def __init__(self, neutral: Tensor, identity_modes: Tensor, expression_shapes: Tensor,
                 shape_names: tuple[str, ...], mesh: ObjMesh) -> None:
        self.neutral = neutral
        self.identity_modes = identity_modes
        self.expression_shapes = expression_shapes
        self.shape_names = shape_names
        self.mesh = mesh

    @classmethod
    def load(cls, folder: str | Path | None = None) -> ICTModel:
        """Load from ``folder`` (default: ``find_ict_dir()``); cached per folder."""
        return _load_model(Path(folder) if folder is not None else find_ict_dir())

    @property
    def n_identity(self) -> int:
        return self.identity_modes.shape[0]

    def shape_index(self, name: str) -> int:
        """Index of an expression shape by name, with an error listing the valid names."""
        if name not in self.shape_names:
            raise KeyError(f"unknown expression shape {name!r}; valid shapes are {list(self.shape_names)}")
        return self.shape_names.index(name)

    def shapes_for(self, name: str) -> list[str]:
        """``name`` itself, or its ``_L`` and ``_R`` shapes when it is a bilateral base name."""
        if name in self.shape_names:
            return [name]
        sides = [f"{name}_L", f"{name}_R"]
        if all(s in self.shape_names for s in sides):
            return sides
        bases = sorted({s[:-2] for s in self.shape_names if s.endswith(("_L", "_R"))})
        raise KeyError(f"unknown expression shape {name!r}; valid shapes are {list(self.shape_names)} "
                       f"and the bilateral names {bases}")

    def au_matrix(self) -> Tensor:
        """(N_AUS, E) shape weights of each AU at intensity 1 (``AU_TO_SHAPES`` expanded)."""
        mat = torch.zeros(N_AUS, len(self.shape_names))
        for au, shapes in AU_TO_SHAPES.items():
            for name, weight in shapes.items():
                for s in self.shapes_for(name):
                    mat[au_index(au), self.shape_index(s)] += weight
        return mat

    def expression_weights(self, au: Tensor, asymmetry: Tensor | float = 0.0) -> Tensor:
        """(N, E) expression-shape weights for AU intensities ``au`` (N, N_AUS).

        ``asymmetry`` (scalar or (N,), in [-1, 1]) scales left-side shapes by
        ``1 + asymmetry`` and right-side ones by ``1 - asymmetry``.
        """
        if au.dim() != 2 or au.shape[1] != N_AUS:
            raise ValueError(f"au has shape {tuple(au.shape)}; expected (N, {N_AUS}) in AU_NAMES order")
        return _tilt(au @ self.au_matrix().to(au.device), _side_signs(self.shape_names).to(au.device), asymmetry)

    def vertices(self, identity: Tensor | None = None, expression: Tensor | None = None) -> Tensor:
        """(N, V, 3) vertices for identity coefficients (N, K) and expression weights (N, E)."""
        n = next((t.shape[0] for t in (identity, expression) if t is not None), 1)
        out = self.neutral.expand(n, -1, -1).clone()
        for coef, basis, what in ((identity, self.identity_modes, "identity"),
                                  (expression, self.expression_shapes, "expression")):
            if coef is None:
                continue
            if coef.dim() != 2 or coef.shape != (n, basis.shape[0]):
                raise ValueError(f"{what} has shape {tuple(coef.shape)}; expected ({n}, {basis.shape[0]})")
            out += torch.einsum("nk,kvc->nvc", coef.float(), basis)
        return out


def _side_signs(names: tuple[str, ...]) -> Tensor:
    return torch.tensor([1.0 if s.endswith("_L") else -1.0 if s.endswith("_R") else 0.0 for s in names])


def _tilt(weights: Tensor, side: Tensor, asymmetry: Tensor | float) -> Tensor:
    """Scale left shapes by ``1 + asymmetry`` and right ones by ``1 - asymmetry``."""
    asym = torch.as_tensor(asymmetry, dtype=weights.dtype, device=weights.device)
    if asym.numel() and float(asym.abs().max()) > 1:
        raise ValueError(f"asymmetry {float(asym.abs().max()):.4g} outside the valid range [-1, 1]")
    return weights * (1 + side * asym.reshape(-1, 1))


@functools.lru_cache(maxsize=2)
def _load_model(folder: Path) -> ICTModel:
    files = [f for f in ict_manifest()["files"] if f.endswith(".obj")]
    id_files = sorted(f for f in files if f.startswith("identity"))
    shape_files = sorted(f for f in files if f != ICT_NEUTRAL and not f.startswith("identity"))
    mesh = load_obj(asset_file(ICT_NEUTRAL, folder))
    neutral = mesh.vertices.astype(np.float64)

    def deltas(names: list[str]) -> Tensor:
        return torch.from_numpy(np.stack([load_obj(asset_file(f, folder)).vertices - neutral for f in names])
                                .astype(np.float32))

    return ICTModel(torch.from_numpy(mesh.vertices), deltas(id_files), deltas(shape_files),
                    tuple(f[:-4] for f in shape_files), mesh)


# ---------------------------------------------------------------------------------------
# Identity, weight and age fitted on the full model
# ---------------------------------------------------------------------------------------
def _extra_points(neutral: np.ndarray) -> dict[str, int]:
    """Vertices the landmark list lacks: the cheekbones and the ear tops and bottoms."""
    face = neutral[:POLYGON_RANGES["face"][1]]
    out = {}
    front = np.where(face[:, 2] > 5)[0]
    for side, sx in (("l", 1.0), ("r", -1.0)):
        d = np.hypot(face[front, 0] - sx * 5.0, face[front, 1] - 1.0)
        out[f"cheekbone_{side}"] = int(front[d.argmin()])
        ear = np.where(face[:, 0] * sx > 7.8)[0]
        out[f"ear_top_{side}"] = int(ear[face[ear, 1].argmax()])
        out[f"ear_bottom_{side}"] = int(ear[face[ear, 1].argmin()])
    return out


def _measure_rows(model: ICTModel, names: list[str]) -> Tensor:
    """(J, V*3) float64 measurement functionals of ``TRAIT_MEASURES[names]`` on displacements."""
    extra = _extra_points(model.neutral.numpy())
    rows = torch.zeros(len(names), model.neutral.numel(), dtype=torch.float64)
    for j, name in enumerate(names):
        for point, axis, weight in TRAIT_MEASURES[name]:
            v = extra[point] if isinstance(point, str) else LANDMARKS_68[point]
            rows[j, v * 3 + axis] += weight
    return rows


def _cheek_fill_row(model: ICTModel) -> Tensor:
    """Mean outward displacement of the lower cheeks (Gaussian windows, neutral normals)."""
    v = model.neutral.double()
    face_end = POLYGON_RANGES["face"][1]
    faces = torch.from_numpy(model.mesh.faces[model.mesh.polygon < face_end].copy())
    normals = vertex_normals(v[None], faces)[0]
    w = sum(torch.exp(-((v[:, 0] - sx * 4.5) ** 2 + (v[:, 1] + 2.5) ** 2) / (2 * 1.5**2)) for sx in (-1.0, 1.0))
    w = w * (v[:, 2] > 5) * (torch.arange(len(v)) < face_end)
    return (w[:, None] * normals).reshape(-1) / w.sum()


@functools.lru_cache(maxsize=2)
def _fitted(model: ICTModel) -> tuple[Tensor, Tensor]:
    """The (K, ID_DIM) identity matrix and the (K,) weight direction; see the module doc.

    torch linear algebra rather than numpy's: numpy's BLAS threads would fight torch's.
    """
    modes = model.identity_modes.double().reshape(model.n_identity, -1)  # (K, V*3)
    geo = list(TRAIT_MEASURES)
    g = _measure_rows(model, geo) @ modes.T  # (J, K): how much each mode moves each measurement
    q, r = torch.linalg.qr(g.T)  # Gram-Schmidt of the measurement gradients, in trait order
    q = q * torch.sign(r.diagonal())  # so each trait increases its own measurement
    ident = torch.zeros(model.n_identity, ID_DIM, dtype=torch.float64)
    for j, name in enumerate(geo):
        ident[:, _TRAIT[name]] = q[:, j]
    # appearance traits: fixed random orthonormal shapes in the complement of every measurement
    others = [k for name, k in _TRAIT.items() if name not in TRAIT_MEASURES]
    gen = torch.Generator().manual_seed(_RESIDUAL_SEED)
    rand = torch.randn(model.n_identity, len(others), generator=gen, dtype=torch.float64)
    ident[:, others] = torch.linalg.qr(rand - q @ (q.T @ rand))[0]
    # weight: min-norm change hitting the width and cheek targets, fixed features unchanged
    rows = torch.cat([_measure_rows(model, ["face_width", *_WEIGHT_FIXED]), _cheek_fill_row(model)[None]])
    target = torch.tensor([_WEIGHT_TARGET["face_width"]] + [0.0] * len(_WEIGHT_FIXED) + [_WEIGHT_TARGET["cheek_fill"]],
                          dtype=torch.float64)
    weight = torch.linalg.pinv(rows @ modes.T) @ target
    return ident.float(), weight.float()


def identity_matrix(model: ICTModel | None = None) -> Tensor:
    """(K, ID_DIM) map from (squashed) identity codes to identity-mode coefficients."""
    return _fitted(model or ICTModel.load())[0].clone()


def weight_direction(model: ICTModel | None = None) -> Tensor:
    """(K,) identity-coefficient change per +10 BMI (see the module doc)."""
    return _fitted(model or ICTModel.load())[1].clone()


def identity_coefficients(identity: Tensor, weight: Tensor, model: ICTModel | None = None) -> Tensor:
    """(N, K) identity-mode coefficients for identity codes (N, ID_DIM) and BMI (N,)."""
    ident, wdir = _fitted(model or ICTModel.load())
    return _identity_coefficients(identity, weight, ident.to(identity.device), wdir.to(identity.device))


def _identity_coefficients(identity: Tensor, weight: Tensor, ident: Tensor, wdir: Tensor) -> Tensor:
    z = 2.5 * torch.tanh(identity.float() / 2.5)
    wn = ((weight.float() - 22) / 10).clamp(-0.6, 1.8)
    return z @ ident.T + wn[:, None] * wdir


@functools.lru_cache(maxsize=2)
def _normal_basis(model: ICTModel) -> tuple[Tensor, Tensor]:
    """Full-resolution vertex normals of the neutral (V, 3) and their change (B, V, 3) at
    weight 1 of each basis shape (identity modes, expressions, sag).

    The renderer blends these linearly (and renormalises) instead of taking normals of
    the decimated mesh, whose sliver triangles would shade unevenly.
    """
    faces = torch.from_numpy(model.mesh.faces.copy())
    sag = torch.from_numpy(_sag_field(model.neutral.numpy()))
    n0 = vertex_normals(model.neutral[None], faces)[0]
    shapes = torch.cat([model.identity_modes, model.expression_shapes, sag[None]])
    return n0, torch.cat([vertex_normals(model.neutral + chunk, faces) - n0 for chunk in shapes.split(16)])


def _sag_field(neutral: np.ndarray) -> np.ndarray:
    """(V, 3) displacement of the face at sag = 1: jowls down and out, mid-cheeks down."""
    v = neutral.astype(np.float64)
    out = np.zeros_like(v)
    front = (v[:, 2] > 2).astype(np.float64)
    for sx in (-1.0, 1.0):
        jowl = np.exp(-((v[:, 0] - sx * 4.8) ** 2 + (v[:, 1] + 5.0) ** 2) / (2 * 1.6**2)) * front
        out[:, 1] -= 0.5 * jowl
        out[:, 0] += sx * 0.15 * jowl
        cheek = np.exp(-((v[:, 0] - sx * 3.6) ** 2 + (v[:, 1] + 1.0) ** 2) / (2 * 1.4**2)) * front
        out[:, 1] -= 0.25 * cheek
    out[POLYGON_RANGES["face"][1]:] = 0  # keep eyes, mouth interior and teeth in place
    return out.astype(np.float32)


# ---------------------------------------------------------------------------------------
# Level of detail: a vertex subset by clustering in UV space
# ---------------------------------------------------------------------------------------
@dataclasses.dataclass
class Decimated:
    """A lower-resolution copy of part of the mesh that reuses original vertices.

    vertices (R,) original indices of the kept vertices; faces (T, 3) into ``vertices``;
    face_uvs (T, 3) into the original UV table; part (T,) part id (``SKIN`` ...).
    """

    vertices: np.ndarray
    faces: np.ndarray
    face_uvs: np.ndarray
    part: np.ndarray


def _select_parts(mesh: ObjMesh) -> tuple[np.ndarray, np.ndarray]:
    """Triangles to render and their part id; drops what never shows (see module doc)."""
    poly, mat = mesh.polygon, mesh.material
    part = np.full(len(poly), -1)

    def rng(name: str) -> np.ndarray:
        lo, hi = POLYGON_RANGES[name]
        return (poly >= lo) & (poly < hi)

    part[rng("face")] = SKIN
    part[rng("head_neck")] = HEAD
    part[rng("mouth_socket")] = MOUTH
    part[rng("eye_sockets")] = SOCKET
    for lo, hi in _FRONT_TEETH:
        part[(poly >= lo) & (poly < hi)] = TEETH
    uv_r = np.linalg.norm(mesh.uvs[mesh.face_uvs] - 0.5, axis=-1).max(1)  # eyeball UVs are discs
    for side in ("Left", "Right"):
        # the sclera's front cap is the clear cornea over the iris: drop it so the iris shows
        part[(mat == mesh.materials.index(f"M_Sclera{side}")) & (uv_r > 0.17)] = SCLERA
        part[(mat == mesh.materials.index(f"M_Iris{side}")) & (uv_r <= 0.5)] = IRIS
    keep = part >= 0
    return np.where(keep)[0], part[keep]


def decimate(mesh: ObjMesh, level: float = 1.0) -> Decimated:
    """Cluster vertices on a UV grid (cell ``_CELLS[material] * level``) into a vertex subset.

    Vertices only merge with vertices of the same class (materials around them, UV seam,
    mesh boundary), in the same UV cell, and connected inside that cell; each cluster
    keeps the member nearest its mean UV. Collapsed triangles are dropped.
    """
    tri_ids, part = _select_parts(mesh)
    faces, fuv, fmat = mesh.faces[tri_ids], mesh.face_uvs[tri_ids], mesh.material[tri_ids]
    nv = len(mesh.vertices)
    flat_v, flat_t = faces.ravel(), fuv.ravel()
    mat_mask = np.zeros(nv, np.int64)
    np.bitwise_or.at(mat_mask, flat_v, np.repeat(np.left_shift(1, fmat), 3))
    pairs = np.unique(np.stack([flat_v, flat_t], 1), axis=0)  # sorted by vertex, then UV
    n_uv = np.bincount(pairs[:, 0], minlength=nv)
    primary = np.zeros(nv, np.int64)
    _, first_pair = np.unique(pairs[:, 0], return_index=True)
    primary[pairs[first_pair, 0]] = pairs[first_pair, 1]  # each vertex's smallest UV index
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    uniq, count = np.unique(np.sort(edges, 1), axis=0, return_counts=True)
    boundary = np.zeros(nv, bool)
    boundary[uniq[count == 1].ravel()] = True
    cell = np.full(nv, np.inf)
    for name, size in _CELLS.items():
        bit = np.left_shift(1, mesh.materials.index(name))
        cell = np.where((mat_mask & bit) > 0, np.minimum(cell, size * level), cell)
    cell = np.where(np.isfinite(cell), cell, 1.0)
    uv = mesh.uvs[primary].astype(np.float64)
    # finer around the eyes, nose and mouth, whose small curved shapes carry expressions
    only_face = mat_mask == np.left_shift(1, mesh.materials.index("M_Face"))
    centre = (uv[:, 0] > 0.3) & (uv[:, 0] < 0.7) & (uv[:, 1] > 0.35) & (uv[:, 1] < 0.78) & only_face
    cell = np.where(centre, cell * _CENTRE_CELL, cell)
    key = np.stack([mat_mask, n_uv > 1, boundary, np.floor(uv[:, 0] / cell), np.floor(uv[:, 1] / cell)], 1)
    _, cls = np.unique(key, axis=0, return_inverse=True)
    cls = cls.ravel()
    same = cls[edges[:, 0]] == cls[edges[:, 1]]
    graph = sp.coo_matrix((np.ones(same.sum()), (edges[same, 0], edges[same, 1])), shape=(nv, nv))
    n_comp, comp = connected_components(graph, directed=False)
    size = np.bincount(comp, minlength=n_comp)
    mean_uv = np.stack([np.bincount(comp, uv[:, i], n_comp) for i in range(2)], 1) / np.maximum(size, 1)[:, None]
    dist = ((uv - mean_uv[comp]) ** 2).sum(1)
    used = mat_mask > 0
    dist[~used] = np.inf
    order = np.lexsort((dist, comp))
    first = np.r_[True, comp[order][1:] != comp[order][:-1]]
    rep_of = np.zeros(n_comp, np.int64)
    rep_of[comp[order][first]] = order[first]
    rep = rep_of[comp]
    new = rep[faces]
    ok = (new[:, 0] != new[:, 1]) & (new[:, 1] != new[:, 2]) & (new[:, 0] != new[:, 2])
    new, fuv, part = new[ok], fuv[ok], part[ok]
    # a corner keeps its own UV tile: take the representative's UV in the same tile
    tile_of = np.floor(mesh.uvs[:, 0]).astype(np.int64)
    lookup = {(int(v), int(tile_of[t])): int(t) for v, t in pairs}
    new_uv = np.array([lookup.get((int(v), int(tile_of[t])), int(t)) for v, t in zip(new.ravel(), fuv.ravel(), strict=True)],
                      dtype=np.int64).reshape(new.shape)
    kept, local = np.unique(new, return_inverse=True)
    return Decimated(vertices=kept, faces=local.reshape(new.shape), face_uvs=new_uv, part=part)


# ---------------------------------------------------------------------------------------
# Texture maps painted in the face's UV tile
# ---------------------------------------------------------------------------------------
TEXTURE_CHANNELS = ("lip", "brow_s", "brow_t", "forehead", "glabella", "crows", "nasolabial",
                    "under_eye", "blush", "lash_line", "nose_lines", "lip_line")
_TEX = 256  # texels per side of the face tile (about 1 mm each)


def _seg_dist(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance from points (P, 2) to the segment a-b."""
    ab = b - a
    t = np.clip(((p[:, 0] - a[0]) * ab[0] + (p[:, 1] - a[1]) * ab[1]) / max(float(ab[0] ** 2 + ab[1] ** 2), 1e-12), 0, 1)
    return np.linalg.norm(p - (a + t[:, None] * ab), axis=1)


def _poly_dist(p: np.ndarray, pts: np.ndarray, closed: bool = False) -> np.ndarray:
    """Distance from points (P, 2) to a polyline (M, 2)."""
    segs = list(zip(pts[:-1], pts[1:], strict=True)) + ([(pts[-1], pts[0])] if closed else [])
    return np.min([_seg_dist(p, a, b) for a, b in segs], axis=0)


def _inside(p: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd point-in-polygon test for points (P, 2)."""
    inside = np.zeros(len(p), bool)
    for a, b in zip(poly, np.roll(poly, -1, axis=0), strict=True):
        cross = (a[1] > p[:, 1]) != (b[1] > p[:, 1])
        x_at = a[0] + (p[:, 1] - a[1]) * (b[0] - a[0]) / (b[1] - a[1] + 1e-12)
        inside ^= cross & (p[:, 0] < x_at)
    return inside


def landmark_uvs(mesh: ObjMesh) -> np.ndarray:
    """(68, 2) face-tile UV of each landmark vertex."""
    face = mesh.material == mesh.materials.index("M_Face")
    v2t = dict(zip(mesh.faces[face].ravel().tolist(), mesh.face_uvs[face].ravel().tolist(), strict=True))
    return mesh.uvs[[v2t[v] for v in LANDMARKS_68]].astype(np.float64)


def _texture_bank(mesh: ObjMesh) -> np.ndarray:
    """(C, _TEX, _TEX) static maps over the face tile, channels ``TEXTURE_CHANNELS``.

    Row 0 is v = 0 (the chin side); every map is built from the landmark UVs, so it
    follows the mesh whatever the identity or expression.
    """
    lm = landmark_uvs(mesh)
    g = (np.arange(_TEX) + 0.5) / _TEX
    uu, vv = np.meshgrid(g, g)
    p = np.stack([uu.ravel(), vv.ravel()], 1)
    u, v = p[:, 0], p[:, 1]
    ch: dict[str, np.ndarray] = {}
    outer = lm[48:60]
    d = _poly_dist(p, outer, closed=True)
    ch["lip"] = np.where(_inside(p, outer), 1.0, np.clip(1 - d / 0.006, 0, 1))
    # brows: s from the inner (0) to the outer (1) end, t = v minus the landmark brow line
    s = np.zeros_like(u)
    t = np.zeros_like(u)
    for brow, left in ((lm[17:22][::-1], False), (lm[22:27], True)):  # inner end first
        side = (u >= 0.5) if left else (u < 0.5)
        order = np.argsort(brow[:, 0])
        s[side] = (u[side] - brow[0, 0]) / (brow[-1, 0] - brow[0, 0])
        t[side] = v[side] - np.interp(u[side], brow[order, 0], brow[order, 1])
    ch["brow_s"], ch["brow_t"] = s, t
    brow_top = lm[17:27, 1].max()

    def band(x: np.ndarray, lo: float, hi: float, soft: float) -> np.ndarray:
        return np.clip((x - lo) / soft + 1, 0, 1) * np.clip((hi - x) / soft + 1, 0, 1)

    def lines(x: np.ndarray, period: float) -> np.ndarray:
        return (0.5 - 0.5 * np.cos(2 * np.pi * x / period)) ** 4

    ch["forehead"] = band(v, brow_top + 0.04, 0.95, 0.03) * band(u, 0.32, 0.68, 0.06) * lines(v - brow_top, 0.032)
    ch["glabella"] = band(u, 0.475, 0.525, 0.01) * band(v, lm[39, 1] + 0.01, brow_top + 0.01, 0.015) * lines(u - 0.5 + 0.008, 0.016)
    crows = np.zeros_like(u)
    for corner, sx in ((lm[36], -1.0), (lm[45], 1.0)):
        du, dv = sx * (u - corner[0]), v - corner[1]
        fan = (0.5 - 0.5 * np.cos(np.arctan2(dv, du + 0.02) * 16)) ** 3
        crows += fan * band(du, 0.012, 0.06, 0.01) * band(dv, -0.04, 0.03, 0.01)
    ch["crows"] = crows
    fold = np.zeros_like(u)
    for wing, corner, sx in ((lm[31], lm[48], -1.0), (lm[35], lm[54], 1.0)):
        a = wing + np.array([sx * 0.025, 0.005])
        b = corner + np.array([sx * 0.03, -0.04])
        fold = np.maximum(fold, np.exp(-(_seg_dist(p, a, b) / 0.007) ** 2))
    ch["nasolabial"] = fold
    under = np.zeros_like(u)
    for lo in (lm[40:42], lm[46:48]):
        c = lo.mean(0)
        under += np.exp(-((u - c[0]) / 0.035) ** 2 - ((v - c[1] + 0.03) / 0.012) ** 2)
    ch["under_eye"] = under
    ch["blush"] = sum(np.exp(-((u - 0.5 - sx * 0.19) / 0.06) ** 2 - ((v - 0.56) / 0.05) ** 2) for sx in (-1.0, 1.0))
    lash = np.zeros_like(u)
    for upper, lower in ((lm[36:40], lm[[39, 40, 41, 36]]), (lm[42:46], lm[[45, 46, 47, 42]])):
        lash = np.maximum(lash, np.exp(-(_poly_dist(p, upper) / 0.005) ** 2))
        lash = np.maximum(lash, 0.35 * np.exp(-(_poly_dist(p, lower) / 0.004) ** 2))
    ch["lash_line"] = lash
    ch["nose_lines"] = band(u, 0.465, 0.535, 0.01) * band(v, lm[29, 1], lm[39, 1] - 0.005, 0.01) * lines(v, 0.012)
    ch["lip_line"] = np.exp(-(_poly_dist(p, lm[60:68], closed=True) / 0.004) ** 2)
    return np.stack([ch[c].reshape(_TEX, _TEX) for c in TEXTURE_CHANNELS]).astype(np.float32)


# ---------------------------------------------------------------------------------------
# Glasses: a frame mesh placed from the eye landmarks
# ---------------------------------------------------------------------------------------
_LENS_SEGMENTS = 20


def _glasses_template() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit template: (Vg, 4) rows (x, y, z, anchor), faces (Fg, 3), is_lens (Fg,).

    Anchor 0/1 = right/left lens centre (x, y as lens-radius units, z in cm), 2/3 = right/
    left ear point (cm offsets). ``_draw_glasses`` places them per face.
    """
    verts: list[tuple[float, float, float, int]] = []
    faces: list[tuple[int, int, int]] = []
    lens: list[bool] = []
    ang = np.linspace(0, 2 * np.pi, _LENS_SEGMENTS, endpoint=False)
    for anchor in (0, 1):
        base = len(verts)
        verts.append((0.0, 0.0, 0.0, anchor))
        for a in ang:
            verts.append((math.cos(a), math.sin(a), 0.0, anchor))
            verts.append((1.12 * math.cos(a), 1.12 * math.sin(a), 0.0, anchor))
        for i in range(_LENS_SEGMENTS):
            j = (i + 1) % _LENS_SEGMENTS
            i0, i1, j0, j1 = base + 1 + 2 * i, base + 2 + 2 * i, base + 1 + 2 * j, base + 2 + 2 * j
            faces += [(i0, i1, j1), (i0, j1, j0), (base, i0, j0)]
            lens += [False, False, True]
    # bridge between the inner rims, and arms from the outer rims to the ears
    quads = [((0.98, 0.30, 0, 0), (0.98, 0.45, 0, 0), (-0.98, 0.45, 0, 1), (-0.98, 0.30, 0, 1))]
    for anchor, ear, sx in ((0, 2, -1.0), (1, 3, 1.0)):
        quads.append(((sx * 1.05, 0.25, 0, anchor), (sx * 1.05, 0.45, 0, anchor), (0, 0.15, 0, ear), (0, -0.15, 0, ear)))
    for quad in quads:
        base = len(verts)
        verts += list(quad)
        faces += [(base, base + 1, base + 2), (base, base + 2, base + 3)]
        lens += [False, False]
    return np.array(verts, np.float32), np.array(faces, np.int64), np.array(lens)


# ---------------------------------------------------------------------------------------
# The renderer
# ---------------------------------------------------------------------------------------
def _lod(raster_size: int) -> float:
    """UV cell multiplier for a raster resolution: about 1-2 pixels per triangle edge.

    Three levels only, so each process builds at most three renderers.
    """
    return 2.0 if raster_size < 96 else 1.0 if raster_size < 192 else 0.6


class _Renderer:
    """Everything render_ict needs, precomputed on one device for one level of detail."""

    def __init__(self, model: ICTModel, level: float, device: torch.device) -> None:
        dec = decimate(model.mesh, level)
        idx = torch.from_numpy(dec.vertices)
        sag = torch.from_numpy(_sag_field(model.neutral.numpy()))
        basis = torch.cat([model.identity_modes[:, idx], model.expression_shapes[:, idx], sag[None, idx]])
        self.n_vertices = len(idx)
        self.basis = basis.reshape(basis.shape[0], -1).to(device)
        self.neutral = model.neutral[idx].to(device)
        n0, n_basis = _normal_basis(model)
        self.normal0 = n0[idx].to(device)
        self.normal_basis = n_basis[:, idx].reshape(n_basis.shape[0], -1).to(device)
        self.faces = torch.from_numpy(dec.faces).to(device)
        self.face_uvs = torch.from_numpy(dec.face_uvs).to(device)
        self.uvs = torch.tensor(model.mesh.uvs, dtype=torch.float32)[None].to(device)
        self.part = torch.from_numpy(dec.part).to(device)
        self.rest = self.neutral[None]
        ident, wdir = _fitted(model)
        self.ident, self.wdir = ident.to(device), wdir.to(device)
        self.au_mat = model.au_matrix().to(device)
        self.side = _side_signs(model.shape_names).to(device)
        self.age_shapes = _shape_vector(model, AGE_SHAPES).to(device)
        self.teeth_show = _shape_vector(model, TEETH_SHOW).to(device)
        self.bank = torch.from_numpy(_texture_bank(model.mesh))[None].to(device)
        # the 68 landmarks and the two ear points (for glasses), with the full basis
        extra = _extra_points(model.neutral.numpy())
        p_idx = torch.tensor([*LANDMARKS_68, extra["ear_top_r"], extra["ear_top_l"]])
        p_basis = torch.cat([model.identity_modes[:, p_idx], model.expression_shapes[:, p_idx], sag[None, p_idx]])
        self.point_basis = p_basis.reshape(p_basis.shape[0], -1).to(device)
        self.point_neutral = model.neutral[p_idx].to(device)
        g_verts, g_faces, g_lens = _glasses_template()
        self.g_template = torch.from_numpy(g_verts).to(device)
        self.g_faces = torch.from_numpy(g_faces).to(device)
        self.g_lens = torch.from_numpy(g_lens).to(device)

    # -- geometry ---------------------------------------------------------------------------
    def points(self, coef: Tensor) -> Tensor:
        """(N, 70, 3) the 68 landmarks, then the right and left ear points, in OBJ-frame cm."""
        return self.point_neutral + (coef @ self.point_basis).view(len(coef), -1, 3)

    def coefficients(self, p: FaceParams, asymmetry: Tensor | float = 0.0) -> Tensor:
        """(N, K + E + 1): identity, expression and sag coefficients of every face."""
        ident = _identity_coefficients(p.identity, p.weight, self.ident, self.wdir)
        sag = ((p.age.float() - 40) / 40).clamp(0, 1)
        expr = _tilt(p.au.float() @ self.au_mat, self.side, asymmetry) + sag[:, None] * self.age_shapes
        return torch.cat([ident, expr, sag[:, None]], 1)


def _shape_vector(model: ICTModel, weights: dict[str, float]) -> Tensor:
    """(E,) expression weights from a {name or bilateral base name: weight} table."""
    vec = torch.zeros(len(model.shape_names))
    for name, weight in weights.items():
        for s in model.shapes_for(name):
            vec[model.shape_index(s)] = weight
    return vec


def _rotation(p: FaceParams) -> Tensor:
    """(N, 3, 3) head-to-view rotation R = Rz(roll) Ry(yaw) Rx(pitch), as the procedural backend."""
    yaw, pitch, roll = (torch.deg2rad(x.float()) for x in (p.yaw, p.pitch, p.roll))
    cy, sy, cp, sp, cr, sr = yaw.cos(), yaw.sin(), pitch.cos(), pitch.sin(), roll.cos(), roll.sin()
    one, zero = torch.ones_like(cy), torch.zeros_like(cy)
    ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).view(-1, 3, 3)
    rx = torch.stack([one, zero, zero, zero, cp, sp, zero, -sp, cp], -1).view(-1, 3, 3)
    rz = torch.stack([cr, -sr, zero, sr, cr, zero, zero, zero, one], -1).view(-1, 3, 3)
    return rz @ ry @ rx


def _to_view(verts_cm: Tensor, rot: Tensor) -> Tensor:
    """OBJ-frame centimetres (N, V, 3) -> view space in image units (x right, y down, z to the viewer)."""
    pivot = torch.tensor(_PIVOT_CM, device=verts_cm.device)
    flip = torch.tensor([_CM, -_CM, _CM], device=verts_cm.device)
    head = (verts_cm - pivot) * flip
    view = head @ rot.transpose(1, 2)
    return view + torch.tensor([_PIVOT_IMG[0], _PIVOT_IMG[1], 0.0], device=verts_cm.device)


def _to_pixels(view: Tensor, size: int) -> Tensor:
    """Perspective projection to pixel x, y and view depth w."""
    w = _CAMERA - view[..., 2]
    scale = _CAMERA / w
    return torch.stack([(view[..., 0] * scale + 1) * size / 2, (view[..., 1] * scale + 1) * size / 2, w], -1)


@functools.lru_cache(maxsize=4)
def _renderer(folder: Path, level: float, device: str) -> _Renderer:
    return _Renderer(ICTModel.load(folder), level, torch.device(device))


def _check(params: FaceParams, size: int) -> None:
    if not isinstance(params, FaceParams):
        raise TypeError(f"params must be a FaceParams, got {type(params).__name__}")
    if not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"size={size!r} is not valid; pass an int from {MIN_SIZE} to {MAX_SIZE}")


def landmarks_ict(params: FaceParams, size: int = 64, asymmetry: Tensor | float = 0.0) -> Tensor:
    """(N, 68, 2) pixel positions (x right, y down) of the Multi-PIE landmarks in
    ``render_ict(params, size)``; occluded ones included. Ground truth for landmark tasks."""
    _check(params, size)
    r = _renderer(find_ict_dir().resolve(), 1.0, str(params.device))
    points = r.points(r.coefficients(params, asymmetry))[:, :68]
    return _to_pixels(_to_view(points, _rotation(params)), size)[..., :2]


def render_ict(params: FaceParams, size: int = 64, supersample: int | None = None,
               asymmetry: Tensor | float = 0.0, window: tuple[int, int, int] | None = None) -> Tensor:
    """Render ``params`` with the ICT-FaceKit model: ``N x 3 x size x size`` in [0, 1].

    ``supersample`` (default 2 up to 96 pixels of the full image, else 1) renders that many
    samples per pixel side and box-filters them, for anti-aliased edges. ``asymmetry`` (scalar
    or (N,), in [-1, 1]) drives the AUs' left-side shapes by ``1 + asymmetry`` and right-side
    ones by ``1 - asymmetry``; FaceParams' AUs are bilateral, so the default is 0.
    ``window = (full, row, col)`` draws only the ``size x size`` window at (row, col) of the
    ``full x full`` head-framed image (the face framing, ``facekit.synth.framing.face_geometry``):
    the same picture as cropping the full render, without shading the pixels cut away.
    """
    full, row, col = window if window is not None else (size, 0, 0)
    _check(params, full)
    if not 0 <= row <= full - size or not 0 <= col <= full - size:
        raise ValueError(f"window={window!r} is not valid; a {size} px window must fit inside the {full} px image")
    ss = supersample if supersample is not None else (2 if full <= 96 else 1)
    if not isinstance(ss, int) or not 1 <= ss <= 4:
        raise ValueError(f"supersample={ss!r} is not valid; pass an int from 1 to 4")
    dev = params.device
    n = len(params)
    if n == 0:
        return torch.zeros(0, 3, size, size, device=dev)
    res, full_res = size * ss, full * ss
    shift = torch.tensor([col * ss, row * ss, 0.0], device=dev)
    rows, cols = slice(row * ss, row * ss + res), slice(col * ss, col * ss + res)
    r = _renderer(find_ict_dir().resolve(), _lod(full_res), str(dev))
    coef = r.coefficients(params, asymmetry)
    expr = coef[:, r.ident.shape[0]:-1]
    look = _Look(params, (expr @ r.teeth_show).clamp(0, 1))
    verts_cm = r.neutral + (coef @ r.basis).view(n, r.n_vertices, 3)
    rot = _rotation(params)
    frags = rasterize(_to_pixels(_to_view(verts_cm, rot), full_res) - shift, r.faces, res, res)
    img = _backdrop(params, look, full_res)[..., rows, cols]
    if frags.pixels.numel():
        normals = (r.normal0 + (coef @ r.normal_basis).view(n, r.n_vertices, 3)) * torch.tensor([1.0, -1.0, 1.0], device=dev)
        attrs = torch.cat([normals @ rot.transpose(1, 2), r.rest.expand(n, -1, -1)], -1)
        colour = _surface(r, look, frags.face.view(-1)[frags.pixels], interpolate(frags, r.uvs, r.face_uvs),
                          interpolate(frags, attrs, r.faces), frags.batch_index)
        img = frags.to_image(colour, img)
    if bool((params.glasses > 0).any()):
        img = _draw_glasses(r, params, look, coef, rot, frags.depth, img, full_res, shift)
    return downsample(img, ss).clamp(0, 1)


class _Look:
    """Per-face colours and amplitudes, (N, ...) tensors; colours come from
    ``facekit.synth.appearance``, shared with the procedural backend, so a face keeps its
    skin, hair and eye colour across backends."""

    def __init__(self, p: FaceParams, teeth: Tensor) -> None:
        dev = p.device
        self.teeth = teeth  # (N,) 0: closed mouth, teeth hidden; 1: teeth fully shown

        def trait(name: str) -> Tensor:
            return appearance_trait(p, name)

        look = appearance(p)
        self.wrinkle, self.grey = look.wrinkle, look.grey
        self.wn = ((p.weight.float() - 22) / 10).clamp(-0.6, 1.8)
        self.skin, self.lip, self.hair, self.brow, self.iris = look.skin, look.lip, look.hair, look.brow, look.iris
        self.hair_len, self.fringe = look.hair_len, look.fringe
        self.hairline = 11.3 - 0.8 * trait("hairline") + 8 * look.recede  # cm, front hairline height
        # brows in UV units (the landmark line runs along their upper edge): half-thickness,
        # extra arch, centre offset
        self.brow_thick = 0.010 * (1 + 0.35 * trait("brow_thickness"))
        self.brow_arch = 0.006 * trait("brow_arch")
        self.brow_lift = -0.009 + 0.005 * trait("brow_height")
        au = {name: p.au[:, au_index(name)].float() for name in ("AU1", "AU2", "AU4", "AU6", "AU9", "AU10", "AU12")}
        w = self.wrinkle
        self.lines = torch.zeros(len(p), len(TEXTURE_CHANNELS), device=dev)  # darkening per channel
        for name, amp in (("forehead", 0.22 * w + 0.30 * torch.maximum(au["AU1"], au["AU2"])),
                          ("glabella", 0.15 * w + 0.35 * au["AU4"]),
                          ("crows", 0.30 * w + 0.30 * au["AU6"]),
                          ("nasolabial", 0.06 + 0.22 * w + 0.20 * au["AU12"] + 0.15 * au["AU10"] + 0.08 * self.wn.clamp_min(0)),
                          ("under_eye", 0.15 * w),
                          ("nose_lines", 0.35 * au["AU9"])):
            self.lines[:, TEXTURE_CHANNELS.index(name)] = amp
        self.blush = 0.06 * (1 + au["AU6"])
        az, el = torch.deg2rad(p.light_azimuth.float()), torch.deg2rad(p.light_elevation.float())
        self.light = torch.stack([az.sin() * el.cos(), -el.sin(), az.cos() * el.cos()], -1)
        self.strength = p.light_strength.float()


def _interp(x: Tensor, xs: Tensor, ys: Tensor) -> Tensor:
    """Piecewise-linear interpolation of (xs, ys) at x, per row: ys is (P, K)."""
    i = torch.bucketize(x, xs).clamp(1, len(xs) - 1)
    x0, x1 = xs[i - 1], xs[i]
    t = ((x - x0) / (x1 - x0)).clamp(0, 1)
    y0, y1 = ys.gather(1, (i - 1)[:, None])[:, 0], ys.gather(1, i[:, None])[:, 0]
    return y0 + (y1 - y0) * t


def _surface(r: _Renderer, look: _Look, frags_face: Tensor, uv: Tensor, attrs: Tensor, bi: Tensor) -> Tensor:
    """(P, 3) shaded colour of the covered pixels (see the module doc for what is painted)."""
    dev = uv.device
    part = r.part[frags_face]
    normal = F.normalize(attrs[:, :3], dim=-1)
    rest = attrs[:, 3:]
    is_face = part == SKIN
    tex = F.grid_sample(r.bank, (uv * 2 - 1).view(1, 1, -1, 2), mode="bilinear", padding_mode="border",
                        align_corners=False)[0, :, 0].T * is_face[:, None]  # (P, C)
    c = {name: tex[:, k] for k, name in enumerate(TEXTURE_CHANNELS)}
    # skin: tone, blush, wrinkle lines, lips, lash and lip lines, brows
    albedo = look.skin[bi]
    albedo = albedo * (1 - (look.blush[bi] * c["blush"])[:, None] * torch.tensor([0.0, 0.6, 0.7], device=dev))
    albedo = albedo * (1 - (tex * look.lines[bi]).sum(-1).clamp(0, 0.6))[:, None]
    albedo = albedo + (look.lip[bi] - albedo) * (0.8 * c["lip"])[:, None]
    albedo = albedo * (1 - 0.65 * c["lash_line"] - 0.45 * c["lip_line"])[:, None]
    s = c["brow_s"]
    centre = look.brow_lift[bi] + look.brow_arch[bi] * 4 * s * (1 - s)
    thick = look.brow_thick[bi] * (1.1 - 0.5 * s.clamp(0, 1))
    brow = ((thick - (c["brow_t"] - centre).abs()) / 0.004 + 0.5).clamp(0, 1)
    brow = brow * ((s + 0.04) / 0.06).clamp(0, 1) * ((1.04 - s) / 0.06).clamp(0, 1) * is_face * (1 - c["lip"])
    albedo = albedo + (look.brow[bi] - albedo) * (0.9 * brow)[:, None]
    # scalp hair from the rest position: hairline height by angle around the head
    theta = torch.atan2(rest[:, 0], rest[:, 2] - 1.0).abs() / math.pi  # 0 front, 0.5 side, 1 back
    front = look.hairline[bi] - look.fringe[bi] * 3.0 * (1 - rest[:, 0].abs() / 4).clamp(0, 1)
    knots = torch.tensor([0.0, 0.2, 0.36, 0.5, 0.7, 1.0], device=dev)
    heights = torch.stack([front, front - 0.3, torch.full_like(front, 7.5), torch.full_like(front, 4.8),
                           torch.full_like(front, 1.0), torch.full_like(front, -3.5)], 1)
    on_head = (part == SKIN) | (part == HEAD)
    hair = ((rest[:, 1] - _interp(theta, knots, heights)) / 0.4 + 0.5).clamp(0, 1) * on_head
    strand = 1 + 0.10 * torch.sin(rest[:, 0] * 9 + 3 * torch.sin(rest[:, 1] * 1.3))
    albedo = albedo + (look.hair[bi] * strand[:, None] - albedo) * hair[:, None]
    # the other parts, each on its own (few) pixels
    for pid in (MOUTH, SOCKET, SCLERA, IRIS, TEETH):
        idx = (part == pid).nonzero().squeeze(1)
        if idx.numel():
            albedo[idx] = _part_albedo(pid, albedo[idx], uv[idx], look, bi[idx])
    spec = torch.tensor(_SPECULAR, device=dev)[part] + 0.15 * c["lip"] + 0.15 * hair
    return shade(albedo, normal, look.light[bi], look.strength[bi], spec)


def _part_albedo(pid: int, skin: Tensor, uv: Tensor, look: _Look, bi: Tensor) -> Tensor:
    """Albedo of the mouth, eye sockets, eyeballs and teeth; eyeball UVs are discs."""
    dev = uv.device
    wr = look.wrinkle[bi][:, None]
    mouth = torch.tensor([0.18, 0.05, 0.06], device=dev)
    radial = (uv - 0.5).norm(dim=-1) / 0.5
    if pid == MOUTH:
        return mouth.expand_as(skin)
    if pid == SOCKET:
        return skin * torch.tensor([0.85, 0.55, 0.55], device=dev)
    if pid == SCLERA:  # white, yellowing with age, darker towards the eye corners
        sclera = torch.tensor([0.93, 0.92, 0.90], device=dev) + wr * torch.tensor([-0.03, -0.06, -0.14], device=dev)
        return sclera * (1 - 0.25 * ((radial - 0.35) / 0.3).clamp(0, 1))[:, None]
    if pid == IRIS:  # radial gradient, pupil, limbal ring
        iris = look.iris[bi] * (0.75 + 0.35 * radial)[:, None]
        iris = iris * (1 - 0.9 * ((0.40 - radial) / 0.04 + 0.5).clamp(0, 1))[:, None]
        return iris * (1 - 0.5 * ((radial - 0.86) / 0.08).clamp(0, 1))[:, None]
    teeth = torch.tensor([0.92, 0.90, 0.84], device=dev) + wr * torch.tensor([-0.07, -0.10, -0.19], device=dev)
    return mouth + (teeth - mouth) * look.teeth[bi][:, None]


def _backdrop(p: FaceParams, look: _Look, res: int) -> Tensor:
    """(N, 3, res, res) background, long hair and shoulders: the procedural backend's layers."""
    dev = p.device
    pw = 2.0 / res / ZOOM
    t = ((torch.arange(res, device=dev, dtype=torch.float32) + 0.5) * (2.0 / res) - 1) / ZOOM
    x, y = t.view(1, 1, res), t.view(1, res, 1)
    img = p.background.float().view(-1, 3, 1, 1) * (1.05 - 0.12 * (y + 1)).unsqueeze(1)

    def smooth(d: Tensor) -> Tensor:
        return (0.5 - d / pw).clamp(0, 1)

    hl = look.hair_len.view(-1, 1, 1)
    ea, cy = _HEAD_HALF_WIDTH / ZOOM, _PIVOT_IMG[1] / ZOOM
    ellipse = torch.sqrt((x / (ea * (1.25 + 0.12 * hl))) ** 2 + ((y - cy - 0.25 * hl) / (0.62 * (0.98 + 0.45 * hl))) ** 2)
    hair_back = smooth((ellipse - 1) * ea) * (hl > 0.05).float() * ((y - cy + 0.2) / 0.1).clamp(0, 1)
    img = img + (look.hair.view(-1, 3, 1, 1) * 0.75 - img) * hair_back.unsqueeze(1)
    cloth = 0.15 + 0.6 * hash_uniform(p.seed.view(-1, 1, 1, 1), torch.arange(3, device=dev).view(1, 3, 1, 1), 11)
    sh = smooth((torch.sqrt((x / 0.95) ** 2 + ((y - 1.22) / 0.42) ** 2) - 1) * 0.42)
    return img + (cloth * (1.0 - 0.25 * (y - 0.6)).unsqueeze(1) - img) * sh.unsqueeze(1)


def _draw_glasses(r: _Renderer, p: FaceParams, look: _Look, coef: Tensor, rot: Tensor, depth: Tensor,
                  img: Tensor, full_res: int, shift: Tensor) -> Tensor:
    """Composite frames (and a faint lens tint) over ``img`` where they are in front of the face;
    ``img`` is the window of the ``full_res`` image whose corner is at pixel ``shift``."""
    dev = img.device
    sel = (p.glasses > 0).nonzero(as_tuple=True)[0]
    points = r.points(coef[sel])
    eyes = torch.stack([points[:, 36:42].mean(1), points[:, 42:48].mean(1)], 1)  # right, left
    lens_centre = eyes + torch.tensor([0.0, 0.1, 1.5], device=dev)
    tpl = r.g_template
    kind = tpl[:, 3].long()
    lens_pos = lens_centre[:, kind.clamp(max=1)] + tpl[None, :, :3] * torch.tensor([2.2, 1.6, 0.0], device=dev)
    ear_pos = points[:, 68:70][:, (kind - 2).clamp(0, 1)] + tpl[None, :, :3]
    g_cm = torch.where((kind < 2)[None, :, None], lens_pos, ear_pos)
    h, w = img.shape[-2:]
    frags = rasterize(_to_pixels(_to_view(g_cm, rot[sel]), full_res) - shift, r.g_faces, h, w, cull_backfaces=False)
    front = frags.mask & (frags.depth < depth[sel])
    is_lens = r.g_lens[frags.face.clamp_min(0)]
    facing = rot[sel][:, :, 2]  # the head's forward axis in view space
    half = F.normalize(look.light[sel] + torch.tensor([0.0, 0.0, 1.0], device=dev), dim=-1)
    spec = look.strength[sel] * (facing * half).sum(-1).clamp_min(0) ** 20
    frame_rgb = (torch.tensor([0.08, 0.07, 0.08], device=dev) + 0.3 * spec[:, None]).view(-1, 3, 1, 1)
    alpha = p.glasses[sel].float().view(-1, 1, 1, 1)
    sky = torch.tensor([0.80, 0.86, 0.95], device=dev).view(1, 3, 1, 1)
    out = img[sel]
    out = out + (sky - out) * (0.12 * alpha * (is_lens & front).unsqueeze(1))
    out = out + (frame_rgb - out) * (alpha * (~is_lens & front).unsqueeze(1))
    img = img.clone()
    img[sel] = out
    return img


# Facial regions as landmark groups (Multi-PIE 68-point indices) and the margin, in units of
# the inter-ocular distance, added to each group's box: (left, top, right, bottom).
_REGION_LANDMARKS: dict[str, tuple[tuple[int, ...], tuple[float, float, float, float]]] = {
    "brows": (tuple(range(17, 27)), (0.05, 0.12, 0.05, 0.10)),
    "eyes": (tuple(range(36, 48)), (0.08, 0.10, 0.08, 0.10)),
    "nose": (tuple(range(27, 36)), (0.05, 0.0, 0.05, 0.04)),
    "mouth": (tuple(range(48, 68)), (0.08, 0.08, 0.08, 0.08)),
    "chin": ((6, 7, 8, 9, 10, 57), (0.0, -0.10, 0.0, 0.0)),
}


def region_masks(params: FaceParams, size: int, framing: str = "head") -> dict[str, Tensor]:
    """Boolean ``N x size x size`` masks of the facial regions of ``render(params, size,
    backend="ict", framing=framing)``, as boxes around the model's own landmarks.

    The ICT counterpart of ``facekit.synth.procedural.region_masks`` (same region names, less
    the forehead and cheeks, which have no landmarks): the tests use it to check that each AU
    moves its own region.
    """
    check_framing(framing)
    full, row, col = face_geometry(size) if framing == "face" else (size, 0, 0)
    pts = landmarks_ict(params, full) - torch.tensor([col, row], dtype=torch.float32, device=params.device)
    iod = (pts[:, 42:48].mean(1) - pts[:, 36:42].mean(1)).norm(dim=-1).view(-1, 1)  # (N, 1)
    grid = torch.arange(size, dtype=torch.float32, device=params.device) + 0.5
    x, y = grid.view(1, 1, size), grid.view(1, size, 1)
    out = {}
    for name, (idx, (ml, mt, mr, mb)) in _REGION_LANDMARKS.items():
        g = pts[:, list(idx)]
        x0, x1 = g[..., 0].amin(1, keepdim=True) - ml * iod, g[..., 0].amax(1, keepdim=True) + mr * iod
        y0, y1 = g[..., 1].amin(1, keepdim=True) - mt * iod, g[..., 1].amax(1, keepdim=True) + mb * iod
        if name == "chin":  # from below the lower lip to the chin's lowest point, between the mouth corners
            y0 = pts[:, 57:58, 1] + 0.10 * iod
            x0, x1 = pts[:, 48:49, 0], pts[:, 54:55, 0]
        out[name] = ((x >= x0.view(-1, 1, 1)) & (x <= x1.view(-1, 1, 1))
                     & (y >= y0.view(-1, 1, 1)) & (y <= y1.view(-1, 1, 1)))
    return out
