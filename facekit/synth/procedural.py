"""The embedded procedural face renderer: no assets, batched torch, same code on CPU and GPU.

How it works (a "2.5D" renderer):
1. The head is an ellipsoid posed by yaw, pitch and roll. For every pixel an orthographic
   ray is intersected with it, giving a surface point in *head coordinates* (U right,
   V down, W towards the viewer when frontal) and the surface normal.
2. Every facial feature (eyes, brows, nose, mouth, wrinkles, hair line, glasses) is a
   closed-form shape in head coordinates, so pose foreshortens all of them consistently.
3. A height field of bumps and grooves (nose, cheeks, eye sockets, wrinkles, folds)
   perturbs the normal with analytic gradients; Lambert + Blinn-Phong shading follows.
4. Ears, neck, shoulders and long hair are drawn in image space behind the head.

Each step is a per-pixel formula over per-face scalars (``facekit.synth.layout.Layout``),
which is what lets a fused GPU kernel compute the same image (``facekit.kernels.render``;
``facekit.synth.render`` picks between the two). This module is the plain-torch reference.
Action Units move what FACS says they move; see ``Layout.__init__`` for each one.
"""

from __future__ import annotations

import math

import torch

from facekit.synth.framing import check_framing, face_geometry
from facekit.synth.layout import FEAT, ZOOM, Layout, check_window
from facekit.synth.layout import MAX_SIZE as MAX_SIZE  # the sizes it draws, re-exported for callers
from facekit.synth.layout import MIN_SIZE as MIN_SIZE
from facekit.synth.params import FaceParams

CPU_CHUNK = 64

Tensor = torch.Tensor


def _smooth(d: Tensor, pw: float) -> Tensor:
    """Anti-aliased coverage of a signed distance ``d`` (negative inside), ~1 pixel wide."""
    return (0.5 - d * (1.0 / pw)).clamp(0.0, 1.0)


def _mix(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    return a + (b - a) * t


def _band(x: Tensor, lo: float | Tensor, hi: float | Tensor, soft: float) -> Tensor:
    """1 inside [lo, hi], fading linearly over ``soft`` outside."""
    inv = 1.0 / soft
    return ((x - lo) * inv + 1).clamp(0, 1) * ((hi - x) * inv + 1).clamp(0, 1)


def _gauss_bump(u: Tensor, v: Tensor, cu: Tensor | float, cv: Tensor | float, su: Tensor | float,
                sv: Tensor | float, amp: Tensor | float) -> tuple[Tensor, Tensor]:
    """Gradient (dh/du, dh/dv) of ``amp * exp(-((u-cu)/su)^2 - ((v-cv)/sv)^2)``."""
    isu, isv = 1.0 / su, 1.0 / sv
    du, dv = (u - cu) * isu, (v - cv) * isv
    # Cut to exactly 0 beyond r^2 = 12 (exp(-12) ~ 6e-6: invisible), so a bump never touches far-away
    # regions even by rounding, and clamped so those pixels never produce denormals (slow on CPUs).
    r2 = du * du + dv * dv
    g = amp * torch.exp(-r2.clamp_max(60.0)) * (r2 < 12.0)
    g = -2 * g
    return g * du * isu, g * dv * isv


def render_procedural(params: FaceParams, size: int = 64, window: tuple[int, int, int] | None = None) -> Tensor:
    """Render ``params`` to an ``N x 3 x size x size`` float image in [0, 1] (clean style).

    ``window = (full, row, col)`` draws only the ``size x size`` window at (row, col) of the
    ``full x full`` image (the face framing, ``facekit.synth.framing.face_geometry``): every
    pixel is a function of its own coordinates, so this is exactly the crop of the full render.
    """
    if not isinstance(params, FaceParams):
        raise TypeError(f"params must be a FaceParams, got {type(params).__name__}")
    full, row0, col0 = check_window(size, window)
    dev = params.device
    n = len(params)
    if n == 0:
        return torch.zeros(0, 3, size, size, device=dev)
    if dev.type == "cpu" and n > CPU_CHUNK:
        # CPU: chunks keep the per-pixel intermediates in cache (about 1.4x faster)
        return torch.cat([render_procedural(params[i:i + CPU_CHUNK], size, window) for i in range(0, n, CPU_CHUNK)])
    L = Layout(params)
    # ZOOM frames the head and shoulders; coordinates below are in the zoomed frame.
    pw = 2.0 / full / ZOOM
    grid = torch.arange(size, device=dev, dtype=torch.float32)
    x = (((grid + col0) + 0.5) * (2.0 / full) - 1).div(ZOOM).view(1, 1, size)
    y = (((grid + row0) + 0.5) * (2.0 / full) - 1).div(ZOOM).view(1, size, 1)

    # ---- image-space layers behind the head --------------------------------------------
    shade_bg = 1.05 - 0.12 * (y + 1)
    img = L.background * shade_bg.unsqueeze(1)
    px, py = x - L.cx, y - L.cy
    # long hair behind the head
    hl = L.hair_len
    hair_back = _smooth((torch.sqrt((px / (L.ea * (1.16 + 0.12 * hl))).square()
                                    + ((py - 0.25 * hl) / (L.eb * (0.98 + 0.45 * hl))).square()) - 1) * L.ea, pw)
    hair_back = hair_back * (hl > 0.05).float() * ((py + 0.2) / 0.1).clamp(0, 1)
    img = _mix(img, L.hair_col * 0.75, hair_back.unsqueeze(1))
    # shoulders and neck
    sh = _smooth((torch.sqrt((px / 0.95).square() + ((y - 1.22) / 0.42).square()) - 1) * 0.42, pw)
    img = _mix(img, L.cloth * (1.0 - 0.25 * (y - 0.6)).unsqueeze(1), sh.unsqueeze(1))
    neck_w = 0.17 * (1 + 0.35 * L.wn)
    neck = _smooth(px.abs() - neck_w, pw) * ((y - 0.15) / pw).clamp(0, 1) * (1 - sh)
    neck_shade = 0.55 + 0.25 * ((y - L.cy - L.eb * 0.7) / 0.4).clamp(0, 1)
    img = _mix(img, L.skin * neck_shade.unsqueeze(1), neck.unsqueeze(1))

    # ---- ray / ellipsoid intersection ------------------------------------------------------
    R = L.R
    ia, ib, ic = 1 / L.ea ** 2, 1 / L.eb ** 2, 1 / L.ec ** 2
    # M = R diag(ia, ib, ic) R^T
    M = [[R[i][0] * R[j][0] * ia + R[i][1] * R[j][1] * ib + R[i][2] * R[j][2] * ic for j in range(3)] for i in range(3)]
    qa = M[2][2]
    qb = M[0][2] * px + M[1][2] * py
    qc = M[0][0] * px * px + 2 * M[0][1] * px * py + M[1][1] * py * py - 1
    disc = qb * qb - qa * qc
    pz = (-qb + torch.sqrt(disc.clamp_min(0))) / qa
    # head coordinates q = R^T p
    U = R[0][0] * px + R[1][0] * py + R[2][0] * pz
    V = R[0][1] * px + R[1][1] * py + R[2][1] * pz
    W = R[0][2] * px + R[1][2] * py + R[2][2] * pz
    un, vn = U / L.ea, V / L.eb
    # silhouette coverage: near the rim, disc ~ 2 * distance / a^3 (exact for a sphere)
    head_cov = _smooth(-disc * L.ea ** 3 * 0.5, pw)

    # ears (image space, attached to the projected side of the head, behind it)
    for side in (-1.0, 1.0):
        ex_ = side * L.ea * 0.97
        ey_ = 0.05 * L.eb
        epx = R[0][0] * ex_ + R[0][1] * ey_
        epy = R[1][0] * ex_ + R[1][1] * ey_
        epz = R[2][0] * ex_ + R[2][1] * ey_
        vis = (epz / L.ea + 0.45).clamp(0, 1)
        d = torch.sqrt(((px - epx) / (0.05 * L.ear)).square() + ((py - epy) / (0.10 * L.ear)).square()) - 1
        ear = _smooth(d * 0.05, pw) * vis
        img = _mix(img, L.skin * (0.72 + 0.1 * side * L.light[0]).unsqueeze(1), ear.unsqueeze(1))

    # short-hair volume around the top of the skull
    cap_d = torch.sqrt((px / (L.ea * 1.07)).square() + ((py + 0.02) / (L.eb * 1.05)).square()) - 1
    cap = _smooth(cap_d * L.ea, pw) * ((-(py - L.eb * (L.hairline + 0.25) * 0.9)) / 0.05).clamp(0, 1)
    cap = cap * (1 - head_cov)

    # ---- face region and hair region on the ellipsoid ------------------------------------
    lower = (vn > 0).float()
    wx = 1 - (1 - L.jaw) * (vn.clamp(0, 1) / L.chin).clamp(0, 1) ** 1.6 * lower
    vy = L.chin * lower + 1.2 * (1 - lower)
    face_d = torch.sqrt((un / wx).square() + (vn / vy).square()) - 1
    face = _smooth(face_d * L.ea, pw) * (W > -0.2 * L.ec).float()
    hairline = L.hairline + 0.22 * un * un + L.fringe * 0.3 * (1 - un.abs() * 1.6).clamp(0, 1) + 0.015 * torch.sin(un * 25) * L.fringe
    hair_side = ((un.abs() - 0.90) / 0.04).clamp(0, 1) * ((0.1 + 0.3 * hl - vn) / 0.05).clamp(0, 1)
    hair = torch.maximum(_smooth((vn - hairline) * L.eb, pw), hair_side)

    # Facial features are laid out in head units divided by FEAT, which sets their size
    # relative to the skull; the ellipsoid normal is kept from the unscaled coordinates.
    base_u, base_v, base_w = U * ia, V * ib, W * ic
    U, V = U / FEAT, V / FEAT
    pw = pw / FEAT
    # Every feature is bilaterally symmetric, so it is evaluated once on the mirrored
    # coordinate |U| (half the work); horizontal gradients take the sign of U back.
    Ua = U.abs()

    # ---- height field: bumps and grooves, as analytic gradients -------------------------
    gu = torch.zeros_like(U)
    gv = torch.zeros_like(U)

    def add(g: tuple[Tensor, Tensor]) -> None:
        nonlocal gu, gv
        gu = gu + g[0]
        gv = gv + g[1]

    # nose bridge and tip
    add(_gauss_bump(Ua, V, 0.0, L.ny - 0.005, 0.030, 0.030, 0.028))
    add(_gauss_bump(Ua, V, 0.0, (L.ey + L.ny) * 0.5, 0.018, 0.07, 0.012))
    # nostril wings
    add(_gauss_bump(Ua, V, L.nw, L.ny + 0.008, 0.014, 0.012, 0.008))
    # eye sockets (hollows), cheeks (raised by AU6 and weight), brow ridge
    add(_gauss_bump(Ua, V, L.ex, L.ey, 0.06, 0.045, -0.012))
    add(_gauss_bump(Ua, V, 0.19, L.cheek_v, 0.08, 0.06, L.cheek_a))
    add(_gauss_bump(Ua, V, L.ex, L.ey - 0.07, 0.07, 0.02, 0.006))
    # under-eye bags with age
    add(_gauss_bump(Ua, V, L.ex, L.ey + 0.045, 0.04, 0.012, 0.004 * L.wrinkle))
    # dimples (AU14)
    add(_gauss_bump(Ua, V, L.mw + 0.02, L.my + L.m_corner, 0.018, 0.016, L.dimple_a))
    # nasolabial fold: a groove from the nose wing to past the mouth corner
    fu0, fv0 = L.nw + 0.02, L.ny
    fu1, fv1 = L.mw + 0.025, L.my + L.m_corner + 0.03
    du_, dv_ = fu1 - fu0, fv1 - fv0
    seg = (((Ua - fu0) * du_ + (V - fv0) * dv_) / (du_ * du_ + dv_ * dv_)).clamp(0, 1)
    cu, cv = fu0 + seg * du_, fv0 + seg * dv_
    add(_gauss_bump(Ua, V, cu, cv, 0.013, 0.013, L.fold_a))
    # chin, and the chin-raiser bulge (AU17)
    add(_gauss_bump(Ua, V, 0.0, L.chin_v, 0.07, 0.04, L.chin_a))
    # jowls with age and weight
    add(_gauss_bump(Ua, V, L.jaw * L.ea * 0.85, L.jowl_v, 0.05, 0.05, 0.006 * L.sag + 0.006 * L.wn.clamp_min(0)))
    # wrinkles: sinusoidal grooves inside soft windows
    fore = _band(V, L.hairline * L.eb + 0.03, L.by - 0.045, 0.02) * _band(Ua, -0.22, 0.22, 0.05)
    gv = gv + fore * L.fore_amp * (2 * math.pi / 0.03) * torch.cos(2 * math.pi * V / 0.03)
    glab = _band(Ua, -0.03, 0.03, 0.01) * _band(V, L.by - 0.03, L.ey - 0.01, 0.01)
    gu = gu + glab * L.glab_amp * (2 * math.pi / 0.02) * torch.cos(2 * math.pi * Ua / 0.02)
    nose_w = _band(Ua, -0.035, 0.035, 0.01) * _band(V, L.ey - 0.005, L.ey + 0.055, 0.01)
    gv = gv + nose_w * L.nose_wr * (2 * math.pi / 0.016) * torch.cos(2 * math.pi * V / 0.016)
    crow = _band(Ua, L.ex + L.ew * 0.9, L.ex + L.ew + 0.045, 0.01) * _band(V, L.ey - 0.035, L.ey + 0.035, 0.01)
    phase = 2 * math.pi * (V - 0.5 * (Ua - L.ex) * (V - L.ey) * 10) / 0.016
    gv = gv + crow * L.crow_amp * (2 * math.pi / 0.016) * torch.cos(phase)

    # ---- normals and shading -------------------------------------------------------------
    nfu = base_u - torch.sign(U) * gu
    nfv = base_v - gv
    nfw = base_w
    nn = torch.rsqrt(nfu * nfu + nfv * nfv + nfw * nfw + 1e-12)
    nfu, nfv, nfw = nfu * nn, nfv * nn, nfw * nn
    nx = R[0][0] * nfu + R[0][1] * nfv + R[0][2] * nfw
    ny = R[1][0] * nfu + R[1][1] * nfv + R[1][2] * nfw
    nz = R[2][0] * nfu + R[2][1] * nfv + R[2][2] * nfw
    ndl = (nx * L.light[0] + ny * L.light[1] + nz * L.light[2]).clamp_min(0)
    ndh = (nx * L.half[0] + ny * L.half[1] + nz * L.half[2]).clamp_min(0)
    ambient = 0.32 + 0.08 * (-ny).clamp_min(0) + 0.05 * nz
    diffuse = ambient + 0.72 * L.light_strength * ndl
    n4 = ndh.square().square()
    spec = L.light_strength * n4.square().square() * n4  # ndh ** 20, by squaring

    # ---- albedo on the face --------------------------------------------------------------
    col = L.skin.expand(n, 3, size, size)
    # cheeks flush a little, more with AU6
    blush = torch.exp((-((Ua - 0.17) / 0.06).square() - ((V - 0.07 + L.blush_dv) / 0.05).square()).clamp_min(-60.0))
    col = col * (1 - (L.blush_amp * blush).unsqueeze(1) * torch.tensor([0.0, 0.6, 0.7], device=dev).view(1, 3, 1, 1))

    # mouth
    sx = Ua / L.mw
    inside_x = (1 - sx * sx).clamp_min(0)
    shape = inside_x.sqrt()
    line = L.my + L.m_corner * sx * sx
    centre_w = (1 - (sx / 0.55).square()).clamp_min(0)
    top_open = line - L.lip_raise * centre_w  # AU10 lifts the upper lip in the centre
    gap = L.gap * inside_x ** 0.7
    lip_top = top_open - L.lip_up * shape * (1 - 0.25 * torch.exp(-(Ua / 0.02).square().clamp_max(60.0)))
    lip_bot = line + gap + L.lip_lo * shape
    xcov = _smooth((sx.abs() - 1) * L.mw, pw)
    lips = _smooth(torch.maximum(lip_top - V, V - lip_bot), pw) * xcov
    opening = _smooth(torch.maximum(top_open - V, V - (line + gap)), pw) * xcov * (top_open < line + gap).float()
    col = _mix(col, L.lip_col.expand_as(col), lips.unsqueeze(1))
    teeth = ((V - top_open) < 0.014).float() * _band(sx, -0.8, 0.8, 0.2)
    mouth_in = _mix(torch.tensor([0.25, 0.06, 0.07], device=dev).view(1, 3, 1, 1).expand_as(col),
                    torch.tensor([0.92, 0.90, 0.84], device=dev).view(1, 3, 1, 1).expand_as(col), teeth.unsqueeze(1))
    col = _mix(col, mouth_in, opening.unsqueeze(1))
    # the dark line between closed lips
    seam = _smooth((V - line).abs() - 0.0035, pw) * xcov * (1 - opening)
    col = col * (1 - 0.6 * seam.unsqueeze(1))

    # nostrils
    d = torch.sqrt(((Ua - L.nw * 0.55) / 0.012).square() + ((V - L.ny - 0.012) / 0.007).square()) - 1
    col = col * (1 - 0.55 * _smooth(d * 0.007, pw)).unsqueeze(1)

    # brows
    bs = (Ua - L.bx) / L.bw  # -1 inner, +1 outer
    centre = L.by + L.b_in * (1 - bs) * 0.5 + L.b_out * (1 + bs) * 0.5 - L.b_arch * (1 - bs * bs)
    thick = L.b_thick * (1.2 - 0.45 * (bs + 1) * 0.5)
    bd = torch.maximum((V - centre).abs() - thick, (bs.abs() - 1) * L.bw)
    brow = _smooth(bd, pw) * 0.9
    col = _mix(col, L.brow_col.expand_as(col), brow.unsqueeze(1))

    # eyes
    es = (Ua - L.ex) / L.ew  # -1 inner, +1 outer corner
    ex2 = (1 - es * es).clamp_min(0)
    mid = L.ey + L.tilt * -es
    up = mid - L.eh_up * ex2 ** 0.8
    lo = mid + L.eh_lo * ex2 ** 0.8
    xin = _smooth((es.abs() - 1) * L.ew, pw)
    eye = _smooth(torch.maximum(up - V, V - lo), pw * 0.7) * xin
    d_iris = torch.sqrt((Ua - L.ex).square() + (V - L.ey).square())
    iris = _smooth(d_iris - L.iris_r, pw)
    pupil = _smooth(d_iris - L.iris_r * 0.42, pw)
    sclera = torch.tensor([0.93, 0.92, 0.90], device=dev).view(1, 3, 1, 1)
    e_col = _mix(sclera.expand_as(col), L.iris_col.expand_as(col), iris.unsqueeze(1))
    e_col = e_col * (1 - 0.9 * pupil).unsqueeze(1)
    col = _mix(col, e_col, eye.unsqueeze(1))
    eye_light = eye
    # lash line on the upper lid (a closed eye shows only this)
    lash = _smooth((V - up).abs() - 0.006, pw) * xin * (V < up + 0.004).float()
    col = col * (1 - 0.7 * lash).unsqueeze(1)
    # catch-light
    glint = _smooth(torch.sqrt((Ua - L.ex - 0.01).square() + (V - L.ey + 0.01).square()) - 0.006, pw) * eye
    col = _mix(col, torch.ones_like(col), 0.8 * glint.unsqueeze(1))

    # glasses frames and lenses, computed only for the faces that wear them
    wearers = (L.glasses.view(-1) > 0).nonzero().view(-1)
    if len(wearers):
        ug, vg, exg, eyg = Ua[wearers], V[wearers], L.ex[wearers], L.ey[wearers]
        d = torch.sqrt(((ug - exg) / 0.10).square() + ((vg - eyg - 0.005) / 0.072).square())
        g_cov = _smooth(((d - 1).abs() - 0.09) * 0.08, pw)
        lens = _smooth((d - 1) * 0.08, pw) * L.glasses[wearers]
        arm = _band(ug, exg + 0.095, 0.60, 0.005) * _smooth((vg - eyg + 0.01).abs() - 0.008, pw)
        bridge = _band(ug, -(exg - 0.095), exg - 0.095, 0.005) * _smooth((vg - eyg + 0.02).abs() - 0.007, pw)
        g_cov = torch.maximum(torch.maximum(g_cov, arm), bridge) * L.glasses[wearers]

    # hair on the head
    strand = 1 + 0.10 * torch.sin(U * 140 + V * 40)
    hair_col = L.hair_col * strand.unsqueeze(1)
    col = _mix(col, hair_col, hair.unsqueeze(1))
    is_skin = (1 - hair) * (1 - eye_light)
    shaded = col * diffuse.unsqueeze(1) + (0.10 * is_skin + 0.25 * hair + 0.5 * eye_light).unsqueeze(1) * spec.unsqueeze(1)
    if len(wearers):
        # lenses reflect a little of the sky; frames are dark and glossy
        sg = shaded[wearers]
        sg = _mix(sg, torch.tensor([0.80, 0.86, 0.95], device=dev).view(1, 3, 1, 1).expand_as(sg), 0.12 * lens.unsqueeze(1))
        frame = torch.tensor([0.08, 0.07, 0.08], device=dev).view(1, 3, 1, 1) + 0.3 * spec[wearers].unsqueeze(1)
        shaded[wearers] = _mix(sg, frame.expand_as(sg), g_cov.unsqueeze(1))

    # ---- composite -------------------------------------------------------------------------
    img = _mix(img, L.hair_col * (0.55 + 0.35 * (-py).clamp(0, 1)).unsqueeze(1), cap.unsqueeze(1))
    cover = head_cov * torch.maximum(face, hair)
    img = _mix(img, shaded, cover.unsqueeze(1))
    return img.clamp(0, 1)


REGIONS = ("forehead", "brows", "eyes", "nose", "mouth", "chin", "cheeks")


def region_boxes(params: FaceParams) -> dict[str, Tensor]:
    """Per-face boxes ``(x0, y0, x1, y1)`` in image coordinates ([-1, 1], y down) around each
    facial region of a *frontal* face (yaw = pitch = roll = 0), from the renderer's own layout.

    Used to check that an AU changes the region FACS says it moves, and only that region.
    """
    if float(params.yaw.abs().max()) > 0 or float(params.pitch.abs().max()) > 0 or float(params.roll.abs().max()) > 0:
        raise ValueError("region_boxes needs frontal faces: set yaw, pitch and roll to 0")
    L = Layout(params)

    def box(u0: Tensor | float, v0: Tensor | float, u1: Tensor | float, v1: Tensor | float) -> Tensor:
        parts = [torch.as_tensor(t, dtype=torch.float32).expand(L.n, 1, 1).reshape(-1) for t in (u0, v0, u1, v1)]
        x0, y0, x1, y1 = parts
        s = FEAT * ZOOM
        cx, cy = L.cx.reshape(-1) * ZOOM, L.cy.reshape(-1) * ZOOM
        return torch.stack([x0 * s + cx, y0 * s + cy, x1 * s + cx, y1 * s + cy], 1)

    ex_out = L.ex + L.ew
    return {
        "forehead": box(-0.2, L.hairline * L.eb / FEAT + 0.03, 0.2, L.by - 0.05),
        "brows": box(-(L.bx + L.bw), L.by - 0.05, L.bx + L.bw, L.by + 0.03),
        "eyes": box(-ex_out, L.ey - 0.04, ex_out, L.ey + 0.035),
        "nose": box(-L.nw - 0.015, L.ey + 0.02, L.nw + 0.015, L.ny + 0.025),
        "mouth": box(-L.mw - 0.02, L.my - 0.05, L.mw + 0.02, L.my + 0.06),
        "chin": box(-0.07, L.my + 0.07, 0.07, L.chin * L.eb / FEAT),
        "cheeks": box(-0.27, L.ey + 0.05, 0.27, L.ny),
    }


def region_masks(params: FaceParams, size: int, framing: str = "head") -> dict[str, Tensor]:
    """Boolean ``N x size x size`` masks of ``region_boxes``, for images rendered in ``framing``."""
    check_framing(framing)
    full, row, col = face_geometry(size) if framing == "face" else (size, 0, 0)
    t = (torch.arange(full, dtype=torch.float32) + 0.5) * (2.0 / full) - 1
    x, y = t.view(1, 1, full), t.view(1, full, 1)
    out = {}
    for name, b in region_boxes(params).items():
        b = b.view(-1, 4, 1, 1)
        inside = (x >= b[:, 0]) & (x <= b[:, 2]) & (y >= b[:, 1]) & (y <= b[:, 3])
        out[name] = inside[:, row:row + size, col:col + size]
    return out
