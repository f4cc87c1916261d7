"""The procedural renderer's layout: every per-face scalar its per-pixel formula reads.

A face's layout is a pure function of its FaceParams: the posed head ellipsoid, where each
feature sits and how large it is, what each Action Unit moves and by how much, colours and
light. The torch reference (``facekit.synth.procedural``) and the fused Triton kernel
(``facekit.kernels.render``) both evaluate the same pixel formula over this one ``Layout``,
which is why it is public: the two implementations share it instead of importing each other.
"""

from __future__ import annotations

import torch

from facekit.synth.appearance import appearance
from facekit.synth.params import AU_NAMES, ID_DIM, IDENTITY_TRAITS, FaceParams, au_index
from facekit.synth.rng import hash_uniform

# Index of each identity trait in the identity code.
TRAIT = {name: k for k, (name, _) in enumerate(IDENTITY_TRAITS)}
assert len(TRAIT) == ID_DIM

MIN_SIZE, MAX_SIZE = 32, 256  # image sizes the renderer draws
ZOOM = 1.3  # the head-and-shoulders frame: image coordinates are divided by it
FEAT = 1.2  # facial features are laid out in head units / FEAT: their size relative to the skull

Tensor = torch.Tensor


def check_window(size: int, window: tuple[int, int, int] | None) -> tuple[int, int, int]:
    """``(full, row, col)``: the ``size x size`` window of a ``full x full`` image that a renderer
    draws (the whole image when ``window`` is None), or an error that says what is valid."""
    full, row, col = window if window is not None else (size, 0, 0)
    if not isinstance(full, int) or not MIN_SIZE <= full <= MAX_SIZE:
        raise ValueError(f"size={full!r} is not valid; pass an int from {MIN_SIZE} to {MAX_SIZE}")
    if not isinstance(size, int) or not 1 <= size <= full or not 0 <= row <= full - size or not 0 <= col <= full - size:
        raise ValueError(f"window={window!r} is not valid for size={size!r}; the window must fit inside the {full} px image")
    return full, row, col


class Layout:
    """Per-face scalars, shaped (N, 1, 1) so they broadcast over the pixel grid."""

    def __init__(self, p: FaceParams) -> None:
        def col(x: Tensor) -> Tensor:
            return x.float().view(-1, 1, 1)

        def trait(name: str) -> Tensor:
            return col(torch.tanh(0.6 * p.identity[:, TRAIT[name]]))

        def au(name: str) -> Tensor:
            return col(p.au[:, au_index(name)])

        self.n = len(p)
        # AUs act on the image only through the scalars below: the pixel formula never reads them.
        a = {k: au(k) for k in AU_NAMES}
        age = col(p.age)
        look = appearance(p)  # colours and ageing amounts, shared with the ICT backend
        self.wrinkle = col(look.wrinkle)  # wrinkles and skin ageing
        self.sag = ((age - 40) / 40).clamp(0, 1)  # gravity: jowls, drooping corners
        wn = ((col(p.weight) - 22) / 10).clamp(-0.6, 1.8)  # 0 at BMI 22
        self.wn = wn

        # Pose: rotation head -> view; R = Rz(roll) Ry(yaw) Rx(pitch).
        yaw, pitch, roll = (torch.deg2rad(col(x)) for x in (p.yaw, p.pitch, p.roll))
        cy, sy, cp, sp, cr, sr = yaw.cos(), yaw.sin(), pitch.cos(), pitch.sin(), roll.cos(), roll.sin()
        # Ry(yaw) with + turning the face to the viewer's right; Rx(pitch) with + looking down.
        ry = [[cy, 0 * cy, sy], [0 * cy, 1 + 0 * cy, 0 * cy], [-sy, 0 * cy, cy]]
        rx = [[1 + 0 * cp, 0 * cp, 0 * cp], [0 * cp, cp, sp], [0 * cp, -sp, cp]]
        rz = [[cr, -sr, 0 * cr], [sr, cr, 0 * cr], [0 * cr, 0 * cr, 1 + 0 * cr]]
        self.R = matmul3(rz, matmul3(ry, rx))

        # Head ellipsoid (image units; the image spans [-1, 1]).
        self.cx = 0 * wn
        self.cy = -0.04 + 0 * wn
        self.ea = 0.47 * (1 + 0.06 * trait("face_width") + 0.10 * wn)
        self.eb = 0.66 * (1 + 0.05 * trait("face_length"))
        self.ec = 0.50 + 0 * wn
        # Face outline in normalised head coordinates: chin and jaw. AU26 drops the jaw.
        self.chin = 0.80 + 0.05 * trait("chin_length") + 0.13 * a["AU26"] + 0.03 * self.sag - 0.02 * a["AU17"]
        self.jaw = (0.66 + 0.08 * trait("jaw_width") + 0.12 * wn + 0.06 * self.sag).clamp(0.45, 0.95)

        # Magnitudes below are set so that at face framing each AU at intensity 1 changes about
        # as many pixels as the same AU does in the ICT-FaceKit model (benchmarks/render.py
        # --au-visibility; the floors are tested in tests/test_render.py).
        # Eyes (head units; side-relative quantities use s = +1 outer, -1 inner).
        self.ex = 0.175 * (1 + 0.08 * trait("eye_spacing"))
        self.ey = -0.06 + 0.025 * trait("eye_height") + 0.01 * self.sag
        self.ew = 0.080 * (1 + 0.10 * trait("eye_size"))
        eh = 0.034 * (1 + 0.15 * trait("eye_size"))
        closed = 1 - a["AU43"]
        # AU5 raises the upper lid, AU7 tightens (lowers upper, raises lower lid), AU6, AU9 and
        # a strong AU12 push the lower lid up from below, AU4 lowers the brow onto the upper lid, AU43 closes
        # the eye; age makes the upper lid droop.
        self.eh_up = (eh * (1 + 1.1 * a["AU5"] - 0.45 * a["AU7"] - 0.25 * a["AU6"] - 0.2 * a["AU4"]
                            - 0.15 * self.sag)).clamp_min(0) * closed
        self.eh_lo = (0.75 * eh * (1 - 0.65 * a["AU7"] - 0.6 * a["AU6"] - 0.35 * a["AU9"] - 0.2 * a["AU12"] + 0.25 * a["AU5"])
                      ).clamp_min(0) * (1 - 0.85 * a["AU43"])
        self.tilt = 0.012 * trait("eye_tilt") - 0.008 * self.sag
        self.iris_r = 0.023 + 0 * wn
        # Brows: AU1 lifts the inner end, AU2 the outer end, AU4 lowers and draws them together,
        # AU9 pulls the inner end down a little.
        self.bx = self.ex - 0.028 * a["AU4"]
        self.by = self.ey - 0.075 * (1 + 0.12 * trait("brow_height"))
        self.bw = 0.085 + 0 * wn
        self.b_in = -0.060 * a["AU1"] + 0.040 * a["AU4"] + 0.015 * a["AU9"]  # displacement of the inner end (+ down)
        self.b_out = -0.055 * a["AU2"] + 0.016 * a["AU4"] + 0.012 * self.sag  # of the outer end
        self.b_arch = 0.014 * (1 + 0.6 * trait("brow_arch")) + 0.012 * a["AU2"]
        self.b_thick = 0.014 * (1 + 0.35 * trait("brow_thickness"))

        # Nose: AU9 wrinkles, lifts and widens the nose, AU10 lifts the nostril wings a little.
        self.ny = 0.10 * (1 + 0.12 * trait("nose_length")) - 0.018 * a["AU9"] - 0.010 * a["AU10"]
        self.nw = 0.034 * (1 + 0.2 * trait("nose_width") + 0.15 * wn) + 0.012 * a["AU9"] + 0.008 * a["AU10"]

        # Mouth. AU12 pulls the corners up and out, AU15 down, AU20 stretches sideways,
        # AU23 tightens, narrows and thins the lips, AU14 tucks the corners in with dimples,
        # AU10 (and AU9) raise the upper lip, AU17 pushes the lower lip up and the mouth line
        # into an arch, AU25 parts the lips and AU26 drops the jaw.
        self.my = (self.ny + 0.10 * (1 + 0.1 * trait("mouth_height")) + 0.012 * self.sag + 0.03 * a["AU26"]
                   - 0.008 * a["AU17"])
        self.mw = (0.120 * (1 + 0.12 * trait("mouth_width") + 0.05 * wn) + 0.045 * a["AU12"] + 0.070 * a["AU20"]
                   - 0.035 * a["AU23"] - 0.022 * a["AU14"])
        self.m_corner = (-0.080 * a["AU12"] + 0.075 * a["AU15"] + 0.020 * a["AU20"] + 0.025 * a["AU17"]
                         + 0.008 * self.sag - 0.015 * a["AU14"])
        lip = 1 + 0.3 * trait("lip_fullness") - 0.1 * self.wrinkle
        self.lip_up = (0.020 * lip * (1 - 0.75 * a["AU23"]) * (1 - 0.5 * a["AU20"]) * (1 - 0.3 * a["AU12"])
                       * (1 - 0.2 * a["AU14"]))
        self.lip_lo = (0.026 * lip * (1 - 0.7 * a["AU23"]) * (1 - 0.5 * a["AU20"]) * (1 + 0.35 * a["AU17"])
                       * (1 - 0.2 * a["AU14"]) * (1 + 0.2 * a["AU15"]))
        self.gap = ((0.065 * a["AU25"] + 0.09 * a["AU26"] + 0.03 * a["AU10"] + 0.012 * a["AU9"]) * (1 - 0.6 * a["AU23"])
                    * (1 - 0.5 * a["AU17"]))
        self.lip_raise = 0.040 * a["AU10"] + 0.025 * a["AU9"]

        # Relief (height-field amplitudes and centres the AUs drive), in the formula's order.
        wpos = wn.clamp_min(0)
        # the cheeks bulge up and out with AU6 and AU12, a little with AU10, AU9, AU14 (and weight)
        self.cheek_v = 0.07 - 0.04 * a["AU6"] - 0.02 * a["AU12"] + 0.02 * self.sag
        self.cheek_a = (0.010 + 0.030 * a["AU6"] + 0.055 * a["AU12"] + 0.020 * a["AU10"] + 0.015 * a["AU9"]
                        + 0.010 * a["AU14"] + 0.01 * wpos)
        # beside the corners: AU14 dimples and AU20 stretches the skin in, AU15 pouches it out
        self.dimple_a = -0.070 * a["AU14"] - 0.040 * a["AU20"] + 0.040 * a["AU15"]
        # nasolabial fold: deepened by AU12, AU10, AU9, AU20, AU14 and age
        self.fold_a = -(0.004 + 0.010 * self.wrinkle + 0.028 * a["AU12"] + 0.022 * a["AU10"] + 0.020 * a["AU9"]
                        + 0.014 * a["AU20"] + 0.008 * a["AU14"] + 0.004 * wpos)
        # the chin boss rises towards the mouth with AU17 and bulges with AU23 and AU15
        self.chin_v = self.chin * self.eb * 0.86 - 0.07 * a["AU17"]
        self.chin_a = 0.010 + 0.035 * a["AU17"] + 0.025 * a["AU23"] + 0.012 * a["AU15"]
        self.jowl_v = self.chin * self.eb * 0.86 - 0.06
        # wrinkle depths: forehead (AU1, AU2), glabella (AU4), nose (AU9), crow's feet (AU6)
        self.fore_amp = 0.0012 * self.wrinkle + 0.0045 * torch.maximum(a["AU1"], a["AU2"])
        self.glab_amp = 0.0045 * a["AU4"] + 0.0015 * 0.3 * self.wrinkle
        self.nose_wr = 0.0055 * a["AU9"]
        self.crow_amp = 0.0008 * self.wrinkle + 0.0035 * a["AU6"]
        self.blush_dv = 0.03 * a["AU6"] + 0.02 * a["AU12"]
        self.blush_amp = 0.06 * (1 + 1.5 * a["AU6"] + 0.5 * a["AU12"])

        def rgb4(c: Tensor) -> Tensor:
            return c.view(-1, 3, 1, 1)

        self.skin, self.iris_col = rgb4(look.skin), rgb4(look.iris)
        # AU23 presses the lips: their red rolls in, so what shows is closer to the skin
        self.lip_col = rgb4(look.lip) + (self.skin - rgb4(look.lip)) * 0.35 * a["AU23"].view(-1, 1, 1, 1)
        self.hair_col, self.brow_col = rgb4(look.hair), rgb4(look.brow)
        self.hair_len, self.fringe = col(look.hair_len), col(look.fringe)
        self.hairline = -0.56 - 0.08 * trait("hairline") - col(look.recede)
        self.ear = 1 + 0.2 * trait("ear_size")
        self.glasses = col(p.glasses)

        # Light (view space: x right, y down, z towards the viewer).
        az, el = torch.deg2rad(col(p.light_azimuth)), torch.deg2rad(col(p.light_elevation))
        self.light = (az.sin() * el.cos(), -el.sin(), az.cos() * el.cos())
        self.light_strength = col(p.light_strength)
        hx, hy, hz = self.light[0], self.light[1], self.light[2] + 1
        hn = torch.sqrt(hx * hx + hy * hy + hz * hz)
        self.half = (hx / hn, hy / hn, hz / hn)
        self.background = p.background.float().view(-1, 3, 1, 1)
        sd = p.seed.view(-1, 1, 1, 1)
        idx = torch.arange(3, device=sd.device).view(1, 3, 1, 1)
        self.cloth = 0.15 + 0.6 * hash_uniform(sd, idx, 11)


def matmul3(a: list[list[Tensor]], b: list[list[Tensor]]) -> list[list[Tensor]]:
    """The product of two 3x3 matrices whose entries are per-face tensors."""
    return [[a[i][0] * b[0][j] + a[i][1] * b[1][j] + a[i][2] * b[2][j] for j in range(3)] for i in range(3)]
