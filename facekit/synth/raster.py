"""A batched, z-buffered triangle rasterizer in plain torch (same code on CPU and GPU).

Why not a library: nvdiffrast and PyTorch3D need compiled extensions and a GPU build; a
teaching toolkit that must run on a 2-core laptop wants something readable that torch
alone runs everywhere. The price is speed, so the design follows how GPUs do it:

1. **Setup.** Cheap tests on every (face-in-batch, triangle) pair first: facing, depth,
   and whether its bounding box holds a pixel centre. Only survivors get edge functions.
2. **Binning.** Survivors are grouped by the size of their pixel box (the longer side
   rounded up to a power of two), so each group is one dense tensor of candidate pixels.
   A face mesh at 128 px is mostly 1- to 4-pixel boxes, so there is little waste, and
   there are few groups (each group is a few tensor operations; on a busy 2-core machine
   the number of operations, not their size, sets the time).
3. **Depth test.** Each candidate inside its triangle packs (quantised depth, triangle)
   into one int64 and ``scatter_reduce(amin)`` keeps the nearest per pixel: an atomic
   z-buffer without a loop over triangles, and deterministic (a minimum has no order).
4. **Resolve.** Each covered pixel evaluates its winning triangle's barycentrics and
   corrects them for perspective (interpolate ``b_i / w_i``, then normalise), so UVs and
   normals are interpolated as they would be on the 3D surface.

Conventions: vertices come in *pixel space*: ``x`` right and ``y`` down in pixels (the
centre of pixel ``(row i, col j)`` is ``(j + 0.5, i + 0.5)``) and ``w`` the positive
view depth (smaller is nearer). A triangle is front-facing when its vertices run
counter-clockwise as the viewer sees it (the OBJ / OpenGL convention). A pixel centre
exactly on an edge counts as inside (both triangles sharing the edge may claim it; the
nearer, then the lower-numbered, wins).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

Tensor = torch.Tensor

_DEPTH_BITS = 30  # quantised depth sits above the 32 bits of the triangle index
_EMPTY = torch.iinfo(torch.int64).max


@dataclasses.dataclass
class Fragments:
    """What the rasterizer saw.

    face: (N, H, W) int64, index of the visible triangle, -1 where nothing was drawn.
    depth: (N, H, W) view depth ``w`` of the visible surface (``inf`` where empty).
    pixels: (P,) flat indices ``n * H * W + row * W + col`` of the covered pixels, ascending.
    bary: (P, 3) perspective-correct barycentrics of the visible triangle at those pixels.
    """

    face: Tensor
    depth: Tensor
    pixels: Tensor
    bary: Tensor

    @property
    def mask(self) -> Tensor:
        """(N, H, W) bool, True where a triangle covers the pixel."""
        return self.face >= 0

    @property
    def batch_index(self) -> Tensor:
        """(P,) which image of the batch each covered pixel belongs to."""
        return self.pixels // (self.face.shape[1] * self.face.shape[2])

    def to_image(self, values: Tensor, background: Tensor | float = 0.0) -> Tensor:
        """Scatter per-pixel ``values`` (P, C) into an (N, C, H, W) image over ``background``
        (a scalar or an (N, C, H, W) tensor)."""
        n, h, w = self.face.shape
        c = values.shape[-1]
        if isinstance(background, Tensor):
            out = background.permute(0, 2, 3, 1).reshape(n * h * w, c).clone()
        else:
            out = torch.full((n * h * w, c), float(background), device=values.device, dtype=values.dtype)
        out[self.pixels] = values.to(out.dtype)
        return out.view(n, h, w, c).permute(0, 3, 1, 2)


def _check_inputs(verts: Tensor, faces: Tensor, height: int, width: int) -> None:
    if verts.dim() != 3 or verts.shape[-1] != 3:
        raise ValueError(f"verts has shape {tuple(verts.shape)}; expected (N, V, 3) with x, y in pixels and w the view depth")
    if faces.dim() != 2 or faces.shape[-1] != 3 or faces.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"faces has shape {tuple(faces.shape)} and dtype {faces.dtype}; expected (F, 3) int64 vertex indices")
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= verts.shape[1]):
        raise ValueError(f"faces index vertices {int(faces.min())} to {int(faces.max())}; valid is 0 to {verts.shape[1] - 1}")
    for name, value in (("height", height), ("width", width)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} is not valid; pass a positive int")


def _box_class(extent: Tensor) -> Tensor:
    """Candidate-box side for a pixel extent: the next power of two."""
    return torch.exp2(torch.ceil(torch.log2(extent.clamp_min(1).float()))).long()


def rasterize(verts: Tensor, faces: Tensor, height: int, width: int, cull_backfaces: bool = True) -> Fragments:
    """Rasterize a batch of meshes that share one triangle list.

    verts: (N, V, 3) pixel-space ``x, y`` and view depth ``w > 0`` (see the module doc).
    faces: (F, 3) vertex indices. Triangles with any ``w <= 0`` (behind the camera) and,
    with ``cull_backfaces``, clockwise ones are skipped.
    """
    _check_inputs(verts, faces, height, width)
    n, dev = verts.shape[0], verts.device
    hw = height * width
    faces = faces.long()
    nf = faces.shape[0]
    zbuf = torch.full((n * hw,), _EMPTY, dtype=torch.int64, device=dev)
    # 1. setup on (N, F): corners, signed area (y up), pixel box, depth
    corner = (faces.view(1, -1) + (torch.arange(n, device=dev) * verts.shape[1])[:, None]).view(-1)
    x, y, w = verts.permute(2, 0, 1).reshape(3, -1).index_select(1, corner).view(3, -1, 3)  # (N*F, 3) each
    x0, x1, x2 = x.unbind(-1)
    y0, y1, y2 = y.unbind(-1)
    area2 = (x1 - x0) * (y0 - y2) - (x0 - x2) * (y1 - y0)
    jx0 = torch.ceil(x.amin(-1) - 0.5).clamp_min(0)
    jy0 = torch.ceil(y.amin(-1) - 0.5).clamp_min(0)
    jx1 = torch.floor(x.amax(-1) - 0.5).clamp_max(width - 1)
    jy1 = torch.floor(y.amax(-1) - 0.5).clamp_max(height - 1)
    keep = (area2 > 0 if cull_backfaces else area2 != 0) & (jx1 >= jx0) & (jy1 >= jy0) & (w.amin(-1) > 0)
    tri = keep.nonzero().squeeze(1)  # survivors, as flat (batch * F + face) indices
    if tri.numel():
        side = _box_class(torch.maximum(jx1[tri] - jx0[tri], jy1[tri] - jy0[tri]).long() + 1)
        bucket, order = torch.sort(side, stable=True)
        tri = tri[order]  # survivors sorted by bucket: each bucket is a contiguous slice
        x, y, w = x[tri], y[tri], w[tri]
        a, b, c = _edge_coefficients(x, y, area2[tri])
        inv_w = 1.0 / w
        # 1/w is affine in screen space: 1/w(px, py) = aw * px + bw * py + cw
        aw, bw, cw = (a * inv_w).sum(-1), (b * inv_w).sum(-1), (c * inv_w).sum(-1)
        w_lo, w_hi = w.min(), w.max()
        scale = (2**_DEPTH_BITS - 1) / (w_hi - w_lo).clamp_min(1e-12)
        start_x, start_y, base = jx0[tri], jy0[tri], (tri // nf) * hw
        keys, counts = torch.unique_consecutive(bucket, return_counts=True)
        lo = 0
        for box, count in zip(keys.tolist(), counts.tolist(), strict=True):
            sl = slice(lo, lo + count)
            ids = torch.arange(lo, lo + count, device=dev)
            lo += count
            offset = torch.arange(box, device=dev, dtype=x.dtype)
            px = start_x[sl, None] + offset.repeat(box)  # (M, box * box) candidate columns
            py = start_y[sl, None] + offset.repeat_interleave(box)
            cx, cy = px + 0.5, py + 0.5
            inside = (px < width) & (py < height)
            for i in range(3):
                inside &= a[sl, i, None] * cx + b[sl, i, None] * cy + c[sl, i, None] >= 0
            depth = 1.0 / (aw[sl, None] * cx + bw[sl, None] * cy + cw[sl, None])
            q = ((depth - w_lo) * scale).clamp(0, 2**_DEPTH_BITS - 1).long()
            packed = torch.where(inside, (q << 32) | ids[:, None], _EMPTY)
            pix = base[sl, None] + py.long().clamp_max(height - 1) * width + px.long().clamp_max(width - 1)
            zbuf.scatter_reduce_(0, pix.view(-1), packed.view(-1), reduce="amin")
    # 4. resolve: barycentrics of the winning triangle at each covered pixel
    pixels = (zbuf != _EMPTY).nonzero().squeeze(1)
    win = zbuf[pixels] & 0xFFFFFFFF  # index into the survivors
    face = torch.full((n * hw,), -1, dtype=torch.int64, device=dev)
    depth_img = torch.full((n * hw,), float("inf"), dtype=verts.dtype, device=dev)
    bary = torch.zeros(len(pixels), 3, dtype=verts.dtype, device=dev)
    if pixels.numel():
        rem = pixels % hw
        cx = (rem % width).to(verts.dtype) + 0.5
        cy = (rem // width).to(verts.dtype) + 0.5
        coef = torch.stack([a, b, c, inv_w], 1)[win]  # (P, 4, 3): one gather
        persp = (coef[:, 0] * cx[:, None] + coef[:, 1] * cy[:, None] + coef[:, 2]) * coef[:, 3]
        total = persp.sum(-1, keepdim=True)
        bary = persp / total
        face[pixels] = tri[win] % nf
        depth_img[pixels] = 1.0 / total[:, 0]
    return Fragments(face=face.view(n, height, width), depth=depth_img.view(n, height, width), pixels=pixels, bary=bary)


def _edge_coefficients(x: Tensor, y: Tensor, area2: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Affine maps pixel -> screen-space barycentrics: ``b_i = a_i x + b_i y + c_i``.

    x, y: (M, 3) corners; area2: (M,) twice the signed area with y up (non-zero).
    """
    x0, x1, x2 = x.unbind(-1)
    y0, y1, y2 = y.unbind(-1)
    inv = (1.0 / area2)[:, None]
    # b0 is the edge function of edge (1, 2), normalised; likewise b1 (2, 0) and b2 (0, 1).
    a = torch.stack((y2 - y1, y0 - y2, y1 - y0), -1) * inv
    b = torch.stack((x1 - x2, x2 - x0, x0 - x1), -1) * inv
    c = torch.stack((x2 * y1 - x1 * y2, x0 * y2 - x2 * y0, x1 * y0 - x0 * y1), -1) * inv
    return a, b, c


def interpolate(frags: Fragments, attr: Tensor, attr_faces: Tensor) -> Tensor:
    """Interpolate per-corner attributes at the covered pixels: ``(P, C)``.

    attr: (N, A, C) or (1, A, C) attribute table (vertex positions, normals, UVs, ...).
    attr_faces: (F, 3) index of each triangle corner into the table: the vertex index
    list for per-vertex attributes, or a separate list for seamed ones like UVs.
    Use ``frags.to_image`` to place the result in an image.
    """
    n, h, w = frags.face.shape
    if attr.dim() != 3 or attr.shape[0] not in (1, n):
        raise ValueError(f"attr has shape {tuple(attr.shape)}; expected (N, A, C) or (1, A, C) with N={n}")
    n_attr, c = attr.shape[1], attr.shape[2]
    corner = attr_faces.long()[frags.face.view(-1)[frags.pixels]]  # (P, 3)
    if attr.shape[0] > 1:
        corner = corner + (frags.batch_index * n_attr)[:, None]
    vals = attr.reshape(-1, c).index_select(0, corner.view(-1)).view(-1, 3, c)
    return torch.bmm(frags.bary.unsqueeze(1).to(attr.dtype), vals).squeeze(1)


def vertex_normals(verts: Tensor, faces: Tensor) -> Tensor:
    """Area-weighted unit vertex normals (N, V, 3) of meshes in any right-handed frame."""
    v0, v1, v2 = (verts[:, faces[:, i]] for i in range(3))
    fn = torch.linalg.cross(v1 - v0, v2 - v0)
    normals = torch.zeros_like(verts)
    for i in range(3):
        normals.index_add_(1, faces[:, i], fn)
    return F.normalize(normals, dim=-1, eps=1e-12)


def shade(albedo: Tensor, normal: Tensor, light: Tensor, strength: Tensor, specular: Tensor,
          shininess: float = 20.0) -> Tensor:
    """Lambert diffuse plus a Blinn-Phong specular term; channels last, any leading shape.

    albedo (..., 3); normal (..., 3) unit view-space normals (x right, y down, z to the
    viewer); light (..., 3) unit direction *to* the light; strength (...) key-light
    intensity; specular (...) specular weight. The ambient term and constants are those
    of the procedural backend, so both backends are lit alike.
    """
    half = F.normalize(light + torch.tensor([0.0, 0.0, 1.0], device=light.device, dtype=light.dtype), dim=-1)
    ndl = (normal * light).sum(-1).clamp_min(0)
    ndh = (normal * half).sum(-1).clamp_min(0)
    ambient = 0.32 + 0.08 * (-normal[..., 1]).clamp_min(0) + 0.05 * normal[..., 2]
    diffuse = ambient + 0.72 * strength * ndl
    return albedo * diffuse[..., None] + (specular * strength * ndh**shininess)[..., None]


def downsample(image: Tensor, factor: int) -> Tensor:
    """Box-filter an ``N x C x (H*f) x (W*f)`` supersampled image down by ``factor``."""
    return image if factor == 1 else F.avg_pool2d(image, factor)
