"""facekit.synth.raster against a brute-force per-pixel reference, and its conventions."""

from __future__ import annotations

import pytest
import torch

from facekit.synth.raster import downsample, interpolate, rasterize, shade, vertex_normals


def brute_force(verts: torch.Tensor, faces: torch.Tensor, height: int, width: int,
                cull: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every pixel against every triangle, in float64 Python: (face, depth, bary) images.

    Written independently of the rasterizer: inside = all three edge functions >= 0 with
    y up; nearest w wins, then the lower triangle index; barycentrics corrected by 1/w.
    """
    n = verts.shape[0]
    face = torch.full((n, height, width), -1)
    depth = torch.full((n, height, width), float("inf"), dtype=torch.float64)
    bary = torch.zeros(n, height, width, 3, dtype=torch.float64)

    def cross(ax: float, ay: float, bx: float, by: float, cx: float, cy: float) -> float:
        return (bx - ax) * (ay - cy) - (cx - ax) * (ay - by)  # y flipped: counter-clockwise > 0

    for b in range(n):
        corners = verts[b].double().tolist()
        for f, (i0, i1, i2) in enumerate(faces.tolist()):
            (x0, y0, w0), (x1, y1, w1), (x2, y2, w2) = corners[i0], corners[i1], corners[i2]
            area = cross(x0, y0, x1, y1, x2, y2)
            if area == 0 or (cull and area < 0) or min(w0, w1, w2) <= 0:
                continue
            for i in range(height):
                for j in range(width):
                    px, py = j + 0.5, i + 0.5
                    l0 = cross(x1, y1, x2, y2, px, py) / area
                    l1 = cross(x2, y2, x0, y0, px, py) / area
                    l2 = cross(x0, y0, x1, y1, px, py) / area
                    if min(l0, l1, l2) < 0:
                        continue
                    inv_w = l0 / w0 + l1 / w1 + l2 / w2
                    if 1 / inv_w < depth[b, i, j]:
                        depth[b, i, j] = 1 / inv_w
                        face[b, i, j] = f
                        bary[b, i, j] = torch.tensor([l0 / w0, l1 / w1, l2 / w2]) / inv_w
    return face, depth, bary


def random_mesh(seed: int, n: int = 2, v: int = 14, f: int = 12, height: int = 14, width: int = 18
                ) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    verts = torch.rand(n, v, 3, generator=g) * torch.tensor([width * 1.3, height * 1.3, 3.0])
    verts = verts - torch.tensor([width * 0.15, height * 0.15, -1.0])  # some off-screen, w in [1, 4]
    faces = torch.randint(0, v, (f, 3), generator=g)
    ok = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    return verts, faces[ok]


def bary_image(frags) -> torch.Tensor:
    n, h, w = frags.face.shape
    out = torch.zeros(n * h * w, 3)
    out[frags.pixels] = frags.bary
    return out.view(n, h, w, 3)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("cull", [True, False])
def test_agrees_with_brute_force(seed: int, cull: bool) -> None:
    verts, faces = random_mesh(seed)
    frags = rasterize(verts, faces, 14, 18, cull_backfaces=cull)
    face, depth, bary = brute_force(verts, faces, 14, 18, cull)
    assert (face >= 0).sum() > 50  # the scene is not empty
    assert torch.equal(frags.mask, face >= 0)
    # intersecting triangles may tie to float32 precision; elsewhere the same triangle wins
    differ = frags.face != face
    assert differ.sum() <= 2
    torch.testing.assert_close(frags.depth[differ].double(), depth[differ], atol=1e-5, rtol=0)
    hit = (face >= 0) & ~differ
    torch.testing.assert_close(frags.depth[hit].double(), depth[hit], atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(bary_image(frags)[hit].double(), bary[hit], atol=1e-4, rtol=1e-4)
    assert torch.isinf(frags.depth[face < 0]).all()


def test_large_triangles_use_every_box_size() -> None:
    # one triangle spanning the image plus many small ones: all box classes at once
    verts, faces = random_mesh(5, n=1, v=40, f=60, height=40, width=40)
    big = torch.tensor([[[-5.3, -4.7, 3.5], [45.1, -5.2, 3.5], [-4.9, 44.6, 3.5]]])  # no centre on an edge
    verts = torch.cat([verts, big], 1)
    faces = torch.cat([faces, torch.tensor([[40, 42, 41]])])  # counter-clockwise with y up
    frags = rasterize(verts, faces, 40, 40)
    face, _, _ = brute_force(verts, faces, 40, 40)
    assert torch.equal(frags.face, face)


def test_perspective_correct_interpolation() -> None:
    # a tilted quad seen in perspective: interpolated view-space positions must project
    # back onto the pixel centre, which only perspective-correct interpolation achieves
    f, size = 20.0, 32
    view = torch.tensor([[[-1.0, -1.0, 3.0], [1.0, -1.0, 6.0], [1.0, 1.0, 6.0], [-1.0, 1.0, 3.0]]])
    pix = torch.stack([view[..., 0] / view[..., 2] * f + size / 2, view[..., 1] / view[..., 2] * f + size / 2,
                       view[..., 2]], -1)
    faces = torch.tensor([[0, 2, 1], [0, 3, 2]])  # counter-clockwise as seen with y up
    frags = rasterize(pix, faces, size, size)
    pos = interpolate(frags, view, faces)
    rem = frags.pixels % (size * size)
    cx, cy = (rem % size).double() + 0.5, (rem // size).double() + 0.5
    assert len(pos) > 100
    torch.testing.assert_close(pos[:, 0].double() / pos[:, 2] * f + size / 2, cx, atol=1e-3, rtol=0)
    torch.testing.assert_close(pos[:, 1].double() / pos[:, 2] * f + size / 2, cy, atol=1e-3, rtol=0)
    torch.testing.assert_close(frags.depth.view(-1)[frags.pixels], pos[:, 2], atol=1e-4, rtol=1e-5)


def test_culling_and_depth_order() -> None:
    tri = torch.tensor([[2.0, 2.0, 5.0], [2.0, 12.0, 5.0], [12.0, 2.0, 5.0]])  # counter-clockwise (y up)
    near = tri.clone()
    near[:, 2] = 2.0
    verts = torch.cat([tri, near])[None]
    front = rasterize(verts, torch.tensor([[0, 1, 2], [3, 4, 5]]), 16, 16)
    assert (front.face[front.mask] == 1).all()  # the nearer one wins whatever its order
    back = rasterize(verts, torch.tensor([[0, 2, 1]]), 16, 16)
    assert not back.mask.any()
    both = rasterize(verts, torch.tensor([[0, 2, 1]]), 16, 16, cull_backfaces=False)
    assert both.mask.sum() > 30


def test_per_corner_attributes_and_to_image() -> None:
    verts, faces = random_mesh(3, n=2)
    frags = rasterize(verts, faces, 14, 18)
    # a seamed table: each corner its own row; the value is the triangle index
    table = torch.arange(len(faces)).float().repeat_interleave(3)[None, :, None]
    corners = torch.arange(3 * len(faces)).view(-1, 3)
    vals = interpolate(frags, table, corners)
    image = frags.to_image(vals, background=-1.0)
    assert image.shape == (2, 1, 14, 18)
    torch.testing.assert_close(image[:, 0], frags.face.float())


def test_deterministic_and_empty() -> None:
    verts, faces = random_mesh(4)
    a, b = rasterize(verts, faces, 14, 18), rasterize(verts, faces, 14, 18)
    assert torch.equal(a.face, b.face) and torch.equal(a.bary, b.bary)
    none = rasterize(verts, faces[:0], 14, 18)
    assert not none.mask.any() and none.pixels.numel() == 0
    behind = verts.clone()
    behind[..., 2] = -1.0
    assert not rasterize(behind, faces, 14, 18).mask.any()


def test_bad_input_names_what_is_expected() -> None:
    verts, faces = random_mesh(0)
    with pytest.raises(ValueError, match=r"expected \(N, V, 3\)"):
        rasterize(verts[..., :2], faces, 8, 8)
    with pytest.raises(ValueError, match="valid is 0 to 13"):
        rasterize(verts, faces + 100, 8, 8)
    with pytest.raises(ValueError, match="height=0"):
        rasterize(verts, faces, 0, 8)
    frags = rasterize(verts, faces, 8, 8)
    with pytest.raises(ValueError, match=r"expected \(N, A, C\)"):
        interpolate(frags, verts[0], faces)


def test_normals_shading_and_downsample() -> None:
    quad = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 1.0, 0.0]]])
    normals = vertex_normals(quad, torch.tensor([[0, 1, 2], [0, 2, 3]]))
    torch.testing.assert_close(normals, torch.tensor([0.0, 0.0, 1.0]).expand(1, 4, 3))
    albedo = torch.full((2, 3), 0.5)
    n = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    lit = shade(albedo, n, torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]), torch.ones(2), torch.zeros(2))
    assert lit[0, 0] > lit[1, 0]  # facing the light is brighter than grazing it
    img = torch.arange(16.0).view(1, 1, 4, 4)
    torch.testing.assert_close(downsample(img, 2), torch.tensor([[[[2.5, 4.5], [10.5, 12.5]]]]))
