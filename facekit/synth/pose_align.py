"""Pose alignment of the face framing: the face window follows the posed face, as real crops do.

Real AU and expression pipelines never see a face where the head put it: a detector finds the
eyes and the mouth and a similarity transform (shift, in-plane rotation, scale) puts them in
fixed places (``facekit.real.align`` does this to every photo). A fixed window of a posed head
render leaves that variation in: with the default pose spread (yaw sd 12, pitch sd 7, roll sd 5
degrees) the learnability audit's CNN found AUs far harder to tell on unseen persons than on
frontal faces (``benchmarks/RESULTS.md``, world audit). So the ``"face"`` framing warps each
posed face by the similarity that takes its eyes and mouth (at a neutral expression, so that the
warp never depends on the expression it should show) to where the same face has them frontally.
What a similarity cannot undo, the foreshortening of a turned head, stays, as it does in photos.
A frontal face is left exactly as it is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from facekit.synth.params import FaceParams

Tensor = torch.Tensor
# How far (share of the window's side) a posed face may sit from the window and still be read
# from drawn pixels: at pose_scale 1, all but 1% of ICT faces and 0.05% of procedural ones (4,000
# faces, 48 and 64 px).
MARGIN = 0.35
# Multi-PIE 68-point indices whose mean is each key point: eye contours and outer lip (image-left
# eye first). ``facekit.real`` reads a photo's landmarks through the same groups.
LANDMARK_GROUPS = {"left_eye": range(36, 42), "right_eye": range(42, 48), "mouth": range(48, 60)}


def key_points(params: FaceParams, backend: str) -> Tensor:
    """(N, 3, 2) image-left eye, image-right eye and mouth centres at a neutral expression, in
    the head framing's coordinates ([-1, 1], x right, y down)."""
    neutral = params.replace(au=torch.zeros_like(params.au))
    if backend == "ict":
        from facekit.synth.ict import landmarks_ict

        size = 256  # landmark positions are exact at any size; 256 keeps them in float range
        lm = landmarks_ict(neutral, size) / size * 2 - 1
        return torch.stack([lm[:, list(g)].mean(1) for g in LANDMARK_GROUPS.values()], 1)
    if backend == "procedural":
        return _procedural_points(neutral)
    raise ValueError(f"backend={backend!r} is not valid for pose alignment; choose 'procedural' or 'ict'")


def _procedural_points(params: FaceParams) -> Tensor:
    """Feature centres of the procedural head: laid out on its ellipsoid, rotated, projected."""
    from facekit.synth.layout import FEAT, ZOOM, Layout

    L = Layout(params)
    ex, ey, my = (t.reshape(-1) * FEAT for t in (L.ex, L.ey, L.my))
    ea, eb, ec = (t.reshape(-1) for t in (L.ea, L.eb, L.ec))
    u = torch.stack([-ex, ex, 0 * ex], 1)
    v = torch.stack([ey, ey, my], 1)
    w = ec.view(-1, 1) * (1 - (u / ea.view(-1, 1)).square() - (v / eb.view(-1, 1)).square()).clamp_min(0).sqrt()
    R = [[t.reshape(-1, 1) for t in row] for row in L.R]
    x = R[0][0] * u + R[0][1] * v + R[0][2] * w + L.cx.reshape(-1, 1)
    y = R[1][0] * u + R[1][1] * v + R[1][2] * w + L.cy.reshape(-1, 1)
    return torch.stack([x, y], -1) * ZOOM


def similarity(src: Tensor, dst: Tensor) -> Tensor:
    """(N, 2, 3) least-squares similarity transforms taking ``src`` points onto ``dst`` points
    (both (N, K, 2)): ``dst ~ A @ src + b``."""
    s = torch.complex(src[..., 0].double(), src[..., 1].double())
    d = torch.complex(dst[..., 0].double(), dst[..., 1].double())
    sm, dm = s.mean(1, keepdim=True), d.mean(1, keepdim=True)
    a = ((d - dm) * (s - sm).conj()).sum(1) / (s - sm).abs().square().sum(1)
    b = dm[:, 0] - a * sm[:, 0]
    A = torch.stack([torch.stack([a.real, -a.imag], -1), torch.stack([a.imag, a.real], -1)], 1)
    return torch.cat([A, torch.stack([b.real, b.imag], -1).unsqueeze(-1)], -1).float()


def is_posed(params: FaceParams) -> Tensor:
    return (params.yaw != 0) | (params.pitch != 0) | (params.roll != 0)


def frontal_to_posed(params: FaceParams, backend: str) -> Tensor:
    """(N, 2, 3) maps from where a face's points sit frontally to where its pose put them."""
    frontal = params.replace(yaw=torch.zeros_like(params.yaw), pitch=torch.zeros_like(params.pitch),
                             roll=torch.zeros_like(params.roll))
    return similarity(key_points(frontal, backend), key_points(params, backend))


def source_box(full: int, row: int, col: int, size: int) -> tuple[int, int, int]:
    """The square ``(side, row, col)`` of the ``full`` px head image that posed faces are drawn in
    before the warp: the window widened by :data:`MARGIN` of its side on every side (clamped to
    the image). It is the same for every face, so a face's pixels never depend on the others in its
    batch; the rare pose that reads beyond it gets the box's edge pixels."""
    m = round(MARGIN * size)
    side = min(full, size + 2 * m)
    return side, min(max(0, row - m), full - side), min(max(0, col - m), full - side)


def warp_window(big: Tensor, T: Tensor, full: int, box: tuple[int, int, int], window: tuple[int, int, int],
                size: int) -> Tensor:
    """The aligned ``size`` px face window: output pixel x reads ``big`` (the ``box`` region of
    the head image) at ``T(x)``, bilinearly."""
    side, r0, c0 = box
    _, row, col = window
    idx = torch.arange(size, dtype=torch.float32, device=big.device) + 0.5
    gx = (idx + col) * (2 / full) - 1
    gy = (idx + row) * (2 / full) - 1
    pts = torch.stack(torch.broadcast_tensors(gx.view(1, -1), gy.view(-1, 1)), -1).view(1, -1, 2)
    src = pts @ T[:, :, :2].transpose(1, 2) + T[:, :, 2].unsqueeze(1)
    # head-image coordinates -> grid_sample's [-1, 1] over the box (align_corners=False)
    px = (src + 1) * full / 2 - torch.tensor([c0, r0], dtype=torch.float32, device=big.device)
    grid = (px / side * 2 - 1).view(-1, size, size, 2)
    return F.grid_sample(big, grid, mode="bilinear", padding_mode="border", align_corners=False)
