"""Faces per second of the renderers, and how visible each Action Unit is (prints figures;
never a timed test).

    python benchmarks/render.py [--backend procedural|ict] [--device cpu|cuda] [--sizes 64 128]
    python benchmarks/render.py --au-visibility [--backend procedural|ict] [--n 16]

``--au-visibility`` prints, per AU, the share of pixels of a face-framed 64 px render whose
largest channel changes by more than 0.05 when that AU goes from 0 to 1 on neutral, frontal
faces (the measure of issue 16; the per-region floors are tested in tests/test_render.py and
tests/test_ict.py).
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from facekit.synth.params import AU_NAMES, FaceParams, sample_identities, sample_params
from facekit.synth.render import render

THRESHOLD = 0.05


def faces_per_second(batch: int, size: int, backend: str, device: str, style: str, repeats: int,
                     framing: str = "head") -> float:
    params = sample_params(batch, seed=0, style=style).to(device)
    render(params, size, style=style, backend=backend, framing=framing)  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        render(params, size, style=style, backend=backend, framing=framing)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return batch / best


def au_visibility(backend: str, n: int = 16, size: int = 64, framing: str = "face", seed: int = 0) -> dict[str, float]:
    """Per AU, the share of pixels whose largest channel changes by more than ``THRESHOLD``
    when the AU goes from 0 to 1 on ``n`` neutral faces."""
    people = FaceParams.neutral(sample_identities(n, seed))
    base = render(people, size, backend=backend, framing=framing)
    out = {}
    for au in AU_NAMES:
        d = (render(people.with_au(au, 1.0), size, backend=backend, framing=framing) - base).abs().amax(1)
        out[au] = float((d > THRESHOLD).float().mean())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="procedural", choices=["procedural", "ict"])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=None, help="default: 256 (procedural), 64 (ict)")
    ap.add_argument("--sizes", type=int, nargs="+", default=None, help="default: 64 128")
    ap.add_argument("--framing", default="head", choices=["head", "face"])
    ap.add_argument("--style", default="clean")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--au-visibility", action="store_true", help="print per-AU pixel-change shares instead")
    ap.add_argument("--n", type=int, default=16, help="faces for --au-visibility")
    args = ap.parse_args()
    if args.au_visibility:
        shares = au_visibility(args.backend, args.n)
        print(f"{args.backend}, face framing 64 px, {args.n} neutral faces: share of pixels changing by > {THRESHOLD}")
        print(" ".join(f"{au} {100 * s:.1f}%" for au, s in shares.items()))
        return
    batch = args.batch or (256 if args.backend == "procedural" else 64)
    sizes = args.sizes or [64, 128]
    dev_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or platform.machine()
    print(f"device: {args.device} ({dev_name}), torch {torch.__version__}, threads {torch.get_num_threads()}")
    for size in sizes:
        fps = faces_per_second(batch, size, args.backend, args.device, args.style, args.repeats, args.framing)
        print(f"{args.backend} {size}x{size} {args.framing} framing, batch {batch}, style {args.style}: {fps:,.0f} faces/s")


if __name__ == "__main__":
    main()
