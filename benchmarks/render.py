"""Faces per second of the renderers (prints figures; never a timed test).

    python benchmarks/render.py [--backend procedural|ict] [--device cpu|cuda] [--sizes 64 128]
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from facekit.synth.params import sample_params
from facekit.synth.render import render


def faces_per_second(batch: int, size: int, backend: str, device: str, style: str, repeats: int) -> float:
    params = sample_params(batch, seed=0, style=style).to(device)
    render(params, size, style=style, backend=backend)  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        render(params, size, style=style, backend=backend)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return batch / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="procedural", choices=["procedural", "ict"])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=None, help="default: 256 (procedural), 64 (ict)")
    ap.add_argument("--sizes", type=int, nargs="+", default=None, help="default: 64 128 (procedural), 128 (ict)")
    ap.add_argument("--style", default="clean")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    batch = args.batch or (256 if args.backend == "procedural" else 64)
    sizes = args.sizes or ([64, 128] if args.backend == "procedural" else [128])
    dev_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or platform.machine()
    print(f"device: {args.device} ({dev_name}), torch {torch.__version__}, threads {torch.get_num_threads()}")
    for size in sizes:
        fps = faces_per_second(batch, size, args.backend, args.device, args.style, args.repeats)
        print(f"{args.backend} {size}x{size} batch {batch} style {args.style}: {fps:,.0f} faces/s")


if __name__ == "__main__":
    main()
