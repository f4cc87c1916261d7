"""MAE pretraining throughput with the renderer feeding it (FMAE-IAT, issue 5).

    python benchmarks/train_throughput.py [--profile cpu] [--steps 30] [--device cpu|cuda]

Runs the profile's ``FaceStream`` -> ``FaceMAE`` AdamW steps exactly as pretraining does (the
stream renders each batch on the training device, then one optimiser step) and prints
images/s and the share of wall time spent waiting for data (rendering). On a GPU the share
should stay below 10%; on a CPU the renderer and the ViT share the same cores, so the share is
simply the renderer's part of the work. Prints a Markdown row for ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict

import torch

from facekit.config import get_device
from facekit.methods import fmae_iat
from facekit.methods.fmae_iat.data import FaceStream
from facekit.models.vit_mae import FaceMAE
from facekit.records import git_revision


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(profile: str, steps: int, warmup: int, device: torch.device) -> dict[str, float]:
    cfg = fmae_iat.profile_config(profile)
    bs = cfg.pretrain.batch_size
    stream = FaceStream(cfg.stream, cfg.vit.size, bs, device=device)
    model = FaceMAE(**asdict(cfg.vit)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.pretrain.lr, betas=cfg.pretrain.betas)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.pretrain.mixed_precision == "bf16")
    wait = total = 0.0
    for step in range(warmup + steps):
        _sync(device)
        t0 = time.perf_counter()
        x = stream(step)
        _sync(device)
        t1 = time.perf_counter()
        with autocast:
            loss = model(x)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(device)
        t2 = time.perf_counter()
        if step >= warmup:
            wait, total = wait + t1 - t0, total + t2 - t0
    return {"images_per_s": steps * bs / total, "data_wait_share": wait / total, "batch": bs, "size": cfg.vit.size,
            "params_m": sum(p.numel() for p in model.parameters()) / 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default=None, help="default: FACEKIT_DEVICE, else cuda when present, else cpu")
    args = ap.parse_args()
    device = get_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    r = measure(args.profile, args.steps, args.warmup, device)
    print(f"FMAE pretraining ({args.profile} profile: {r['size']}x{r['size']}, batch {r['batch']}, "
          f"{r['params_m']:.2f}M parameters) on {name}: {r['images_per_s']:,.0f} images/s, "
          f"{100 * r['data_wait_share']:.1f}% of the time waiting for data")
    print(f"| {args.profile} | {r['size']}x{r['size']} | {r['batch']} | {name} | {r['images_per_s']:,.0f} | "
          f"{100 * r['data_wait_share']:.1f}% | {git_revision()[:7]} | "
          f"`python benchmarks/train_throughput.py --profile {args.profile} --steps {args.steps}` |")


if __name__ == "__main__":
    main()
