"""The procedural renderer's per-pixel formula as one fused Triton kernel.

``facekit.synth.procedural.render_procedural`` is the reference: it computes per-face
scalars (``Layout``) and then a long chain of per-pixel tensor ops, each of which reads
and writes whole ``N x H x W`` intermediates from memory. Here the per-face scalars,
plus the per-face products the formula reuses (the ellipsoid quadric, bump centres,
wrinkle windows), are packed into one ``N x K`` float32 table (``pack_faces``), and one
program per (face, tile of pixels) evaluates the whole formula in registers and writes
each pixel once. On a GPU the work is then bound by arithmetic, not by memory traffic.

The maths is the reference's, line for line and in its order, so the images agree to
rounding (the tests check 1/255 per pixel). The glasses are drawn only where a face
wears them, as on the CPU. The clean style only: ``apply_style`` runs after, unchanged.
``facekit.synth.render.render`` routes here on CUDA (see ``facekit.kernels.dispatch``); this
module reads only the shared layout (``facekit.synth.layout``), never the torch reference.
"""

from __future__ import annotations

import torch

from facekit.synth.layout import FEAT, ZOOM, Layout, check_window
from facekit.synth.params import FaceParams

try:
    import triton
    import triton.language as tl
except ImportError:  # the optional ``gpu`` extra
    triton = None

Tensor = torch.Tensor
OUT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
BLOCK = 256  # pixels per program


def _face_scalars(L: Layout) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Every per-face value the pixel formula reads, in the kernel's load order: scalars, colours.

    Products of per-face values are formed here, once per face, with the reference's
    own expressions, so the kernel's per-pixel work is only what varies per pixel.
    """
    R, hl = L.R, L.hair_len
    ia, ib, ic = 1 / L.ea ** 2, 1 / L.eb ** 2, 1 / L.ec ** 2
    M = [[R[i][0] * R[j][0] * ia + R[i][1] * R[j][1] * ib + R[i][2] * R[j][2] * ic for j in range(3)] for i in range(3)]
    s: dict[str, Tensor] = {
        # layers behind the head
        "cx": L.cx, "cy": L.cy, "ea": L.ea, "eb": L.eb,
        "hb_a": L.ea * (1.16 + 0.12 * hl), "hb_b": L.eb * (0.98 + 0.45 * hl), "hb_dy": 0.25 * hl,
        "hb_on": (hl > 0.05).float(), "neck_w": 0.17 * (1 + 0.35 * L.wn), "neck_dy": L.eb * 0.7,
        # pose, ellipsoid quadric and silhouette
        **{f"r{i}{j}": R[i][j] for i in range(3) for j in range(3)},
        "m00": M[0][0], "m01": M[0][1], "m02": M[0][2], "m11": M[1][1], "m12": M[1][2], "m22": M[2][2],
        "ia": ia, "ib": ib, "ic": ic, "ea3": L.ea ** 3,
    }
    for name, side in (("l", -1.0), ("r", 1.0)):  # ears
        ex_, ey_ = side * L.ea * 0.97, 0.05 * L.eb
        epz = R[2][0] * ex_ + R[2][1] * ey_
        s[f"ear_{name}x"] = R[0][0] * ex_ + R[0][1] * ey_
        s[f"ear_{name}y"] = R[1][0] * ex_ + R[1][1] * ey_
        s[f"ear_{name}vis"] = (epz / L.ea + 0.45).clamp(0, 1)
    s.update({
        "ear_a": 0.05 * L.ear, "ear_b": 0.10 * L.ear,
        "cap_a": L.ea * 1.07, "cap_b": L.eb * 1.05, "cap_y": L.eb * (L.hairline + 0.25) * 0.9,
        # face outline and hair line
        "jaw": L.jaw, "chin": L.chin, "w_min": -0.2 * L.ec, "hairline": L.hairline, "fringe": L.fringe,
        "hair_len": hl,
        # height-field bumps: centre (u, v) and amplitude, in the reference's order
        # (the constant ones are literals in the kernel)
        "nose_v": L.ny - 0.005, "bridge_v": (L.ey + L.ny) * 0.5, "wing_v": L.ny + 0.008,
        "cheek_v": L.cheek_v, "cheek_a": L.cheek_a,
        "ridge_v": L.ey - 0.07, "bag_v": L.ey + 0.045, "bag_a": 0.004 * L.wrinkle,
        "dimple_u": L.mw + 0.02, "dimple_v": L.my + L.m_corner, "dimple_a": L.dimple_a,
    })
    fu0, fv0 = L.nw + 0.02, L.ny  # nasolabial fold: a segment, its groove depth
    du, dv = L.mw + 0.025 - fu0, L.my + L.m_corner + 0.03 - fv0
    s.update({
        "fold_u": fu0, "fold_v": fv0, "fold_du": du, "fold_dv": dv, "fold_len2": du * du + dv * dv,
        "fold_a": L.fold_a,
        "chin_v": L.chin_v, "chin_a": L.chin_a,
        "jowl_u": L.jaw * L.ea * 0.85, "jowl_v": L.jowl_v, "jowl_a": 0.006 * L.sag + 0.006 * L.wn.clamp_min(0),
        # wrinkle windows and amplitudes
        "fore_lo": L.hairline * L.eb + 0.03, "fore_hi": L.by - 0.045,
        "fore_amp": L.fore_amp,
        "glab_lo": L.by - 0.03, "glab_hi": L.ey - 0.01, "glab_amp": L.glab_amp,
        "nose_wr": L.nose_wr,
        "crow_lo": L.ex + L.ew * 0.9, "crow_hi": L.ex + L.ew + 0.045, "crow_amp": L.crow_amp,
        # light
        "lx": L.light[0], "ly": L.light[1], "lz": L.light[2], "hx": L.half[0], "hy": L.half[1], "hz": L.half[2],
        "strength": L.light_strength, "diffuse": 0.72 * L.light_strength,
        "blush_dv": L.blush_dv, "blush_amp": L.blush_amp,
        # mouth, nose, brows, eyes, glasses
        "mw": L.mw, "my": L.my, "m_corner": L.m_corner, "lip_raise": L.lip_raise, "gap": L.gap,
        "lip_up": L.lip_up, "lip_lo": L.lip_lo, "nw": L.nw, "ny": L.ny,
        "bx": L.bx, "bw": L.bw, "by": L.by, "b_in": L.b_in, "b_out": L.b_out, "b_arch": L.b_arch,
        "b_thick": L.b_thick,
        "ex": L.ex, "ey": L.ey, "ew": L.ew, "tilt": L.tilt, "eh_up": L.eh_up, "eh_lo": L.eh_lo,
        "iris_r": L.iris_r, "glasses": L.glasses,
    })
    colours = {
        "background": L.background, "hair_col": L.hair_col, "cloth": L.cloth, "skin": L.skin,
        **{f"ear_{name}col": L.skin * (0.72 + 0.1 * side * L.light[0]).unsqueeze(1)
           for name, side in (("l", -1.0), ("r", 1.0))},
        "lip_col": L.lip_col, "brow_col": L.brow_col, "iris_col": L.iris_col,
    }
    return s, colours


def pack_faces(params: FaceParams) -> Tensor:
    """The ``N x K`` float32 table of per-face values the kernel reads (K = ``N_FIELDS``)."""
    scalars, colours = _face_scalars(Layout(params))
    cols = [v.reshape(-1, 1) for v in scalars.values()] + [c.reshape(-1, 3) for c in colours.values()]
    return torch.cat(cols, 1).float().contiguous()


N_SCALARS, N_COLOURS = 112, 9
N_FIELDS = N_SCALARS + 3 * N_COLOURS


def render_triton(params: FaceParams, size: int = 64, dtype: torch.dtype = torch.float32,
                  block: int = BLOCK, window: tuple[int, int, int] | None = None) -> Tensor:
    """``render_procedural(params, size, window)`` computed by the fused kernel, as ``dtype``.

    ``block`` (a power of two) is the pixels per program. Needs CUDA tensors (or
    ``TRITON_INTERPRET=1``); not differentiable, unlike the torch reference.
    """
    if triton is None:
        raise RuntimeError("triton not installed: pip install -e '.[gpu]'")
    if not isinstance(params, FaceParams):
        raise TypeError(f"params must be a FaceParams, got {type(params).__name__}")
    full, row0, col0 = check_window(size, window)
    if not isinstance(block, int) or block < 16 or block & (block - 1):
        raise ValueError(f"block={block!r} is not valid; pass a power of two >= 16")
    if dtype not in OUT_DTYPES:
        raise ValueError(f"dtype={dtype} is not valid; choose one of {list(OUT_DTYPES)}")
    n = len(params)
    out = torch.empty(n, 3, size, size, device=params.device, dtype=dtype)
    if n == 0:
        return out
    table = pack_faces(params)
    assert table.shape[1] == N_FIELDS, "pack_faces and the kernel's loads disagree"
    pw = 2.0 / full / ZOOM  # one pixel, as in the reference
    _render_kernel[(n, triton.cdiv(size * size, block))](
        table, out, size, row0, col0, 2.0 / full, pw, 1.0 / pw, 1.0 / (pw / FEAT), 1.0 / (pw / FEAT * 0.7),
        K=N_FIELDS, ZOOM=ZOOM, FEAT=FEAT, BLOCK=block, num_warps=4,
    )
    return out


if triton is not None:

    @triton.jit
    def _clamp01(x):
        return tl.minimum(tl.maximum(x, 0.0), 1.0)

    @triton.jit
    def _smooth(d, inv_pw):
        """Anti-aliased coverage of a signed distance (reference: ``_smooth``)."""
        return _clamp01(0.5 - d * inv_pw)

    @triton.jit
    def _mix(a, b, t):
        return a + (b - a) * t

    @triton.jit
    def _band(x, lo, hi, soft: tl.constexpr):
        inv: tl.constexpr = 1.0 / soft
        return _clamp01((x - lo) * inv + 1.0) * _clamp01((hi - x) * inv + 1.0)

    @triton.jit
    def _pow(x, p: tl.constexpr):
        """``x ** p`` for x >= 0 (0 maps to 0, as in torch)."""
        return tl.exp2(p * tl.log2(tl.maximum(x, 1e-30)))

    @triton.jit
    def _bump(u, v, cu, cv, su: tl.constexpr, sv: tl.constexpr, amp):
        """Gradient of a Gaussian bump (reference: ``_gauss_bump``)."""
        isu: tl.constexpr = 1.0 / su
        isv: tl.constexpr = 1.0 / sv
        du = (u - cu) * isu
        dv = (v - cv) * isv
        r2 = du * du + dv * dv
        g = -2.0 * (amp * tl.exp(-tl.minimum(r2, 60.0)) * tl.where(r2 < 12.0, 1.0, 0.0))
        return g * du * isu, g * dv * isv

    @triton.jit
    def _rgb(r: tl.constexpr, g: tl.constexpr, b: tl.constexpr):
        """A constant colour as a row of the [pixels, 4] colour tiles (channel 3 is padding)."""
        c = tl.arange(0, 4)
        return tl.where(c == 0, r, tl.where(c == 1, g, tl.where(c == 2, b, 0.0)))[None, :]

    @triton.jit
    def _load_rgb(ptr):
        c = tl.arange(0, 4)
        return tl.load(ptr + c, mask=c < 3, other=0.0)[None, :]

    @triton.jit
    def _render_kernel(par_ptr, out_ptr, size, row0, col0, step, pw, inv_pw, inv_pw_f, inv_pw_eye, K: tl.constexpr,
                       ZOOM: tl.constexpr, FEAT: tl.constexpr, BLOCK: tl.constexpr):
        """One face, BLOCK pixels: the reference's formula, section by section.

        Per-pixel values are [BLOCK] vectors; colours are [BLOCK, 4] tiles (RGB + padding).
        """
        face = tl.program_id(0).to(tl.int64)
        pix = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        x = ((((pix % size) + col0).to(tl.float32) + 0.5) * step - 1.0) / ZOOM
        y = ((((pix // size) + row0).to(tl.float32) + 0.5) * step - 1.0) / ZOOM
        f = par_ptr + face * K
        cx, cy, ea, eb = tl.load(f + 0), tl.load(f + 1), tl.load(f + 2), tl.load(f + 3)
        hb_a, hb_b, hb_dy, hb_on = tl.load(f + 4), tl.load(f + 5), tl.load(f + 6), tl.load(f + 7)
        neck_w, neck_dy, r00, r01 = tl.load(f + 8), tl.load(f + 9), tl.load(f + 10), tl.load(f + 11)
        r02, r10, r11, r12 = tl.load(f + 12), tl.load(f + 13), tl.load(f + 14), tl.load(f + 15)
        r20, r21, r22, m00 = tl.load(f + 16), tl.load(f + 17), tl.load(f + 18), tl.load(f + 19)
        m01, m02, m11, m12 = tl.load(f + 20), tl.load(f + 21), tl.load(f + 22), tl.load(f + 23)
        m22, ia, ib, ic = tl.load(f + 24), tl.load(f + 25), tl.load(f + 26), tl.load(f + 27)
        ea3, ear_lx, ear_ly, ear_lvis = tl.load(f + 28), tl.load(f + 29), tl.load(f + 30), tl.load(f + 31)
        ear_rx, ear_ry, ear_rvis, ear_a = tl.load(f + 32), tl.load(f + 33), tl.load(f + 34), tl.load(f + 35)
        ear_b, cap_a, cap_b, cap_y = tl.load(f + 36), tl.load(f + 37), tl.load(f + 38), tl.load(f + 39)
        jaw, chin, w_min, hairline = tl.load(f + 40), tl.load(f + 41), tl.load(f + 42), tl.load(f + 43)
        fringe, hair_len, nose_v, bridge_v = tl.load(f + 44), tl.load(f + 45), tl.load(f + 46), tl.load(f + 47)
        wing_v, cheek_v, cheek_a, ridge_v = tl.load(f + 48), tl.load(f + 49), tl.load(f + 50), tl.load(f + 51)
        bag_v, bag_a, dimple_u, dimple_v = tl.load(f + 52), tl.load(f + 53), tl.load(f + 54), tl.load(f + 55)
        dimple_a, fold_u, fold_v, fold_du = tl.load(f + 56), tl.load(f + 57), tl.load(f + 58), tl.load(f + 59)
        fold_dv, fold_len2, fold_a, chin_v = tl.load(f + 60), tl.load(f + 61), tl.load(f + 62), tl.load(f + 63)
        chin_a, jowl_u, jowl_v, jowl_a = tl.load(f + 64), tl.load(f + 65), tl.load(f + 66), tl.load(f + 67)
        fore_lo, fore_hi, fore_amp, glab_lo = tl.load(f + 68), tl.load(f + 69), tl.load(f + 70), tl.load(f + 71)
        glab_hi, glab_amp, nose_wr, crow_lo = tl.load(f + 72), tl.load(f + 73), tl.load(f + 74), tl.load(f + 75)
        crow_hi, crow_amp, lx, ly = tl.load(f + 76), tl.load(f + 77), tl.load(f + 78), tl.load(f + 79)
        lz, hx, hy, hz = tl.load(f + 80), tl.load(f + 81), tl.load(f + 82), tl.load(f + 83)
        strength, diffuse, blush_dv, blush_amp = tl.load(f + 84), tl.load(f + 85), tl.load(f + 86), tl.load(f + 87)
        mw, my, m_corner, lip_raise = tl.load(f + 88), tl.load(f + 89), tl.load(f + 90), tl.load(f + 91)
        gap, lip_up, lip_lo, nw = tl.load(f + 92), tl.load(f + 93), tl.load(f + 94), tl.load(f + 95)
        ny, bx, bw, by = tl.load(f + 96), tl.load(f + 97), tl.load(f + 98), tl.load(f + 99)
        b_in, b_out, b_arch, b_thick = tl.load(f + 100), tl.load(f + 101), tl.load(f + 102), tl.load(f + 103)
        ex, ey, ew, tilt = tl.load(f + 104), tl.load(f + 105), tl.load(f + 106), tl.load(f + 107)
        eh_up, eh_lo, iris_r, glasses = tl.load(f + 108), tl.load(f + 109), tl.load(f + 110), tl.load(f + 111)
        background, hair_col, cloth = _load_rgb(f + 112), _load_rgb(f + 115), _load_rgb(f + 118)
        skin, ear_lcol, ear_rcol = _load_rgb(f + 121), _load_rgb(f + 124), _load_rgb(f + 127)
        lip_col, brow_col, iris_col = _load_rgb(f + 130), _load_rgb(f + 133), _load_rgb(f + 136)
        two_pi = 6.283185307179586

        # ---- image-space layers behind the head
        img = background * (1.05 - 0.12 * (y + 1.0))[:, None]
        px = x - cx
        py = y - cy
        hb = tl.sqrt((px / hb_a) * (px / hb_a) + ((py - hb_dy) / hb_b) * ((py - hb_dy) / hb_b)) - 1.0
        hair_back = _smooth(hb * ea, inv_pw) * hb_on * _clamp01((py + 0.2) / 0.1)
        img = _mix(img, hair_col * 0.75, hair_back[:, None])
        sh = _smooth((tl.sqrt((px / 0.95) * (px / 0.95) + ((y - 1.22) / 0.42) * ((y - 1.22) / 0.42)) - 1.0) * 0.42,
                     inv_pw)
        img = _mix(img, cloth * (1.0 - 0.25 * (y - 0.6))[:, None], sh[:, None])
        neck = _smooth(tl.abs(px) - neck_w, inv_pw) * _clamp01((y - 0.15) / pw) * (1.0 - sh)
        neck_shade = 0.55 + 0.25 * _clamp01((y - cy - neck_dy) / 0.4)
        img = _mix(img, skin * neck_shade[:, None], neck[:, None])

        # ---- ray / ellipsoid intersection
        qb = m02 * px + m12 * py
        qc = m00 * px * px + 2.0 * m01 * px * py + m11 * py * py - 1.0
        disc = qb * qb - m22 * qc
        pz = (-qb + tl.sqrt(tl.maximum(disc, 0.0))) / m22
        U = r00 * px + r10 * py + r20 * pz
        V = r01 * px + r11 * py + r21 * pz
        W = r02 * px + r12 * py + r22 * pz
        un = U / ea
        vn = V / eb
        head_cov = _smooth(-disc * ea3 * 0.5, inv_pw)

        # ears
        d = tl.sqrt(((px - ear_lx) / ear_a) * ((px - ear_lx) / ear_a) + ((py - ear_ly) / ear_b) * ((py - ear_ly) / ear_b))
        img = _mix(img, ear_lcol, (_smooth((d - 1.0) * 0.05, inv_pw) * ear_lvis)[:, None])
        d = tl.sqrt(((px - ear_rx) / ear_a) * ((px - ear_rx) / ear_a) + ((py - ear_ry) / ear_b) * ((py - ear_ry) / ear_b))
        img = _mix(img, ear_rcol, (_smooth((d - 1.0) * 0.05, inv_pw) * ear_rvis)[:, None])

        # short-hair volume around the top of the skull
        cap_d = tl.sqrt((px / cap_a) * (px / cap_a) + ((py + 0.02) / cap_b) * ((py + 0.02) / cap_b)) - 1.0
        cap = _smooth(cap_d * ea, inv_pw) * _clamp01((-(py - cap_y)) / 0.05) * (1.0 - head_cov)

        # ---- face region and hair region on the ellipsoid
        lower = tl.where(vn > 0, 1.0, 0.0)
        wx = 1.0 - (1.0 - jaw) * _pow(_clamp01(_clamp01(vn) / chin), 1.6) * lower
        vy = chin * lower + 1.2 * (1.0 - lower)
        face_d = tl.sqrt((un / wx) * (un / wx) + (vn / vy) * (vn / vy)) - 1.0
        face_m = _smooth(face_d * ea, inv_pw) * tl.where(W > w_min, 1.0, 0.0)
        hairline_v = (hairline + 0.22 * un * un + fringe * 0.3 * _clamp01(1.0 - tl.abs(un) * 1.6)
                      + 0.015 * tl.sin(un * 25.0) * fringe)
        hair_side = _clamp01((tl.abs(un) - 0.90) / 0.04) * _clamp01((0.1 + 0.3 * hair_len - vn) / 0.05)
        hair = tl.maximum(_smooth((vn - hairline_v) * eb, inv_pw), hair_side)

        # features in head units / FEAT, on the mirrored coordinate |U|
        base_u = U * ia
        base_v = V * ib
        base_w = W * ic
        U = U / FEAT
        V = V / FEAT
        Ua = tl.abs(U)

        # ---- height field: bumps and grooves, as analytic gradients
        gu, gv = _bump(Ua, V, 0.0, nose_v, 0.030, 0.030, 0.028)
        du, dv = _bump(Ua, V, 0.0, bridge_v, 0.018, 0.07, 0.012)
        gu, gv = gu + du, gv + dv
        du, dv = _bump(Ua, V, nw, wing_v, 0.014, 0.012, 0.008)
        gu, gv = gu + du, gv + dv
        du, dv = _bump(Ua, V, ex, ey, 0.06, 0.045, -0.012)
        gu, gv = gu + du, gv + dv
        du, dv = _bump(Ua, V, 0.19, cheek_v, 0.08, 0.06, cheek_a)
        gu, gv = gu + du, gv + dv
        du, dv = _bump(Ua, V, ex, ridge_v, 0.07, 0.02, 0.006)
        gu, gv = gu + du, gv + dv
        du, dv = _bump(Ua, V, ex, bag_v, 0.04, 0.012, bag_a)
        gu, gv = gu + du, gv + dv
        du, dv = _bump(Ua, V, dimple_u, dimple_v, 0.018, 0.016, dimple_a)
        gu, gv = gu + du, gv + dv
        seg = _clamp01(((Ua - fold_u) * fold_du + (V - fold_v) * fold_dv) / fold_len2)
        du, dv = _bump(Ua, V, fold_u + seg * fold_du, fold_v + seg * fold_dv, 0.013, 0.013, fold_a)
        gu, gv = gu + du, gv + dv
        du, dv = _bump(Ua, V, 0.0, chin_v, 0.07, 0.04, chin_a)
        gu, gv = gu + du, gv + dv
        du, dv = _bump(Ua, V, jowl_u, jowl_v, 0.05, 0.05, jowl_a)
        gu, gv = gu + du, gv + dv
        # wrinkles: sinusoidal grooves inside soft windows
        fore = _band(V, fore_lo, fore_hi, 0.02) * _band(Ua, -0.22, 0.22, 0.05)
        gv = gv + fore * fore_amp * (two_pi / 0.03) * tl.cos(two_pi * V / 0.03)
        glab = _band(Ua, -0.03, 0.03, 0.01) * _band(V, glab_lo, glab_hi, 0.01)
        gu = gu + glab * glab_amp * (two_pi / 0.02) * tl.cos(two_pi * Ua / 0.02)
        nose_wb = _band(Ua, -0.035, 0.035, 0.01) * _band(V, ey - 0.005, ey + 0.055, 0.01)
        gv = gv + nose_wb * nose_wr * (two_pi / 0.016) * tl.cos(two_pi * V / 0.016)
        crow = _band(Ua, crow_lo, crow_hi, 0.01) * _band(V, ey - 0.035, ey + 0.035, 0.01)
        phase = two_pi * (V - 0.5 * (Ua - ex) * (V - ey) * 10.0) / 0.016
        gv = gv + crow * crow_amp * (two_pi / 0.016) * tl.cos(phase)

        # ---- normals and shading
        nfu = base_u - tl.where(U > 0, 1.0, tl.where(U < 0, -1.0, 0.0)) * gu
        nfv = base_v - gv
        nfw = base_w
        nn = tl.rsqrt(nfu * nfu + nfv * nfv + nfw * nfw + 1e-12)
        nfu, nfv, nfw = nfu * nn, nfv * nn, nfw * nn
        nx = r00 * nfu + r01 * nfv + r02 * nfw
        ny_ = r10 * nfu + r11 * nfv + r12 * nfw
        nz = r20 * nfu + r21 * nfv + r22 * nfw
        ndl = tl.maximum(nx * lx + ny_ * ly + nz * lz, 0.0)
        ndh = tl.maximum(nx * hx + ny_ * hy + nz * hz, 0.0)
        lit = 0.32 + 0.08 * tl.maximum(-ny_, 0.0) + 0.05 * nz + diffuse * ndl
        n4 = ndh * ndh
        n4 = n4 * n4
        spec = strength * ((n4 * n4) * (n4 * n4)) * n4  # ndh ** 20, by squaring

        # ---- albedo on the face
        blush = tl.exp(tl.maximum(-((Ua - 0.17) / 0.06) * ((Ua - 0.17) / 0.06)
                                  - ((V - 0.07 + blush_dv) / 0.05) * ((V - 0.07 + blush_dv) / 0.05), -60.0))
        col = skin * (1.0 - (blush_amp * blush)[:, None] * _rgb(0.0, 0.6, 0.7))

        # mouth
        sx = Ua / mw
        inside_x = tl.maximum(1.0 - sx * sx, 0.0)
        shape = tl.sqrt(inside_x)
        line = my + m_corner * sx * sx
        top_open = line - lip_raise * tl.maximum(1.0 - (sx / 0.55) * (sx / 0.55), 0.0)
        lip_gap = gap * _pow(inside_x, 0.7)
        lip_top = top_open - lip_up * shape * (1.0 - 0.25 * tl.exp(-tl.minimum((Ua / 0.02) * (Ua / 0.02), 60.0)))
        lip_bot = line + lip_gap + lip_lo * shape
        xcov = _smooth((tl.abs(sx) - 1.0) * mw, inv_pw_f)
        lips = _smooth(tl.maximum(lip_top - V, V - lip_bot), inv_pw_f) * xcov
        opening = (_smooth(tl.maximum(top_open - V, V - (line + lip_gap)), inv_pw_f) * xcov
                   * tl.where(top_open < line + lip_gap, 1.0, 0.0))
        col = _mix(col, lip_col, lips[:, None])
        teeth = tl.where(V - top_open < 0.014, 1.0, 0.0) * _band(sx, -0.8, 0.8, 0.2)
        col = _mix(col, _mix(_rgb(0.25, 0.06, 0.07), _rgb(0.92, 0.90, 0.84), teeth[:, None]), opening[:, None])
        seam = _smooth(tl.abs(V - line) - 0.0035, inv_pw_f) * xcov * (1.0 - opening)
        col = col * (1.0 - 0.6 * seam)[:, None]

        # nostrils
        d = tl.sqrt(((Ua - nw * 0.55) / 0.012) * ((Ua - nw * 0.55) / 0.012)
                    + ((V - ny - 0.012) / 0.007) * ((V - ny - 0.012) / 0.007)) - 1.0
        col = col * (1.0 - 0.55 * _smooth(d * 0.007, inv_pw_f))[:, None]

        # brows
        bs = (Ua - bx) / bw
        centre = by + b_in * (1.0 - bs) * 0.5 + b_out * (1.0 + bs) * 0.5 - b_arch * (1.0 - bs * bs)
        thick = b_thick * (1.2 - 0.45 * (bs + 1.0) * 0.5)
        brow = _smooth(tl.maximum(tl.abs(V - centre) - thick, (tl.abs(bs) - 1.0) * bw), inv_pw_f) * 0.9
        col = _mix(col, brow_col, brow[:, None])

        # eyes
        es = (Ua - ex) / ew
        lid = _pow(tl.maximum(1.0 - es * es, 0.0), 0.8)
        mid = ey + tilt * -es
        up = mid - eh_up * lid
        lo = mid + eh_lo * lid
        xin = _smooth((tl.abs(es) - 1.0) * ew, inv_pw_f)
        eye = _smooth(tl.maximum(up - V, V - lo), inv_pw_eye) * xin
        d_iris = tl.sqrt((Ua - ex) * (Ua - ex) + (V - ey) * (V - ey))
        iris = _smooth(d_iris - iris_r, inv_pw_f)
        pupil = _smooth(d_iris - iris_r * 0.42, inv_pw_f)
        e_col = _mix(_rgb(0.93, 0.92, 0.90), iris_col, iris[:, None]) * (1.0 - 0.9 * pupil)[:, None]
        col = _mix(col, e_col, eye[:, None])
        lash = _smooth(tl.abs(V - up) - 0.006, inv_pw_f) * xin * tl.where(V < up + 0.004, 1.0, 0.0)
        col = col * (1.0 - 0.7 * lash)[:, None]
        d = tl.sqrt((Ua - ex - 0.01) * (Ua - ex - 0.01) + (V - ey + 0.01) * (V - ey + 0.01))
        glint = _smooth(d - 0.006, inv_pw_f) * eye
        col = _mix(col, 1.0, 0.8 * glint[:, None])

        # hair on the head, then lighting
        strand = 1.0 + 0.10 * tl.sin(U * 140.0 + V * 40.0)
        col = _mix(col, hair_col * strand[:, None], hair[:, None])
        is_skin = (1.0 - hair) * (1.0 - eye)
        shaded = col * lit[:, None] + ((0.10 * is_skin + 0.25 * hair + 0.5 * eye) * spec)[:, None]

        # glasses frames and lenses, only for the faces that wear them
        if glasses > 0:
            d = tl.sqrt(((Ua - ex) / 0.10) * ((Ua - ex) / 0.10) + ((V - ey - 0.005) / 0.072) * ((V - ey - 0.005) / 0.072))
            frame = _smooth((tl.abs(d - 1.0) - 0.09) * 0.08, inv_pw_f)
            lens = _smooth((d - 1.0) * 0.08, inv_pw_f) * glasses
            arm = _band(Ua, ex + 0.095, 0.60, 0.005) * _smooth(tl.abs(V - ey + 0.01) - 0.008, inv_pw_f)
            bridge = _band(Ua, -(ex - 0.095), ex - 0.095, 0.005) * _smooth(tl.abs(V - ey + 0.02) - 0.007, inv_pw_f)
            frame = tl.maximum(tl.maximum(frame, arm), bridge) * glasses
            shaded = _mix(shaded, _rgb(0.80, 0.86, 0.95), (0.12 * lens)[:, None])
            shaded = _mix(shaded, _rgb(0.08, 0.07, 0.08) + (0.3 * spec)[:, None], frame[:, None])

        # ---- composite
        img = _mix(img, hair_col * (0.55 + 0.35 * _clamp01(-py))[:, None], cap[:, None])
        img = _mix(img, shaded, (head_cov * tl.maximum(face_m, hair))[:, None])
        c = tl.arange(0, 4)[None, :]
        plane = size * size
        dst = out_ptr + face * 3 * plane + c * plane + pix[:, None]
        tl.store(dst, _clamp01(img), mask=(pix < plane)[:, None] & (c < 3))
