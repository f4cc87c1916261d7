"""Throughput, peak memory and roofline of facekit.kernels beside their torch references.

Prints figures; never a timed test. Every ratio compares variants on the same device in
the same run: the kernel against the eager torch reference and against ``torch.compile``
of that reference. Without CUDA only the torch paths run (the Triton figures need a GPU).

    python benchmarks/kernels.py [--device cpu|cuda] [--only render|contrastive]
        [--sizes 64] [--batch B] [--n N] [--dim D] [--losses info_nce supcon] [--no-compile]

Peak memory: CUDA, ``torch.cuda.max_memory_allocated`` above what the inputs hold; CPU,
the growth of the peak resident set (Linux ``VmHWM``) of a fresh process that builds the
inputs and runs the variant once (tracemalloc cannot see torch's allocator). Compiled variants are not
measured for memory on CPU (a fresh process would compile again).

Renderer roofline: the FLOPs per pixel are counted, not estimated, by running the torch
reference under a dispatch mode that adds up the output elements of every per-pixel
arithmetic op (add, mul, compare, select, exp, sqrt, sin, ...; one FLOP each, clamp two;
copies and views none), with glasses on every face (the upper bound), divided by the
pixels. Transcendentals are also reported apart: they run on the GPU's special-function
units, which the FP32 peak does not include. Bytes per face are the image written (the
parameter table read is added). The limit is min(peak FLOP/s / FLOPs per face, peak
bandwidth / bytes per face), with datasheet peaks for the devices in ``PEAKS``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import platform
import time
from collections.abc import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from facekit.kernels import dispatch
from facekit.kernels.contrastive import info_nce, info_nce_reference, supcon, supcon_reference
from facekit.synth.params import sample_params
from facekit.synth.procedural import render_procedural

# Datasheet peaks: dense FP32 (non-tensor-core) FLOP/s and memory bandwidth in bytes/s,
# matched against torch.cuda.get_device_name() in order (first match wins).
PEAKS: list[tuple[tuple[str, ...], str, float, float]] = [
    (("H200",), "H200 SXM", 67e12, 4.8e12),
    (("H100", "NVL"), "H100 NVL", 60e12, 3.9e12),
    (("H100", "PCIe"), "H100 PCIe", 51e12, 2.0e12),
    (("H100",), "H100 SXM", 67e12, 3.35e12),
    (("A100", "PCIE"), "A100 PCIe", 19.5e12, 1.94e12),
    (("A100",), "A100 SXM", 19.5e12, 2.04e12),
]
RENDER_TARGET = "H100 target: >= 2,000,000 faces/s at 64x64 and >= 20x the torch reference"
LOSS_TARGET = "H100 target at N=65,536, D=256: peak memory <= 1/16 of naive, time <= 1.5x naive"

Case = Callable[[], object]


def device_peaks(device: str) -> tuple[str, float, float] | None:
    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name()
    for keys, label, flops, bandwidth in PEAKS:
        if all(k.lower() in name.lower() for k in keys):
            return label, flops, bandwidth
    return None


# ---- cases: a function that runs one variant once, its inputs built beforehand ------------


def make_case(kernel: str, variant: str, cfg: dict, device: str) -> Case:
    """``kernel`` is "render" or a loss name; ``variant`` "torch", "compiled", "tiled" or "triton"."""
    if kernel == "render":
        params, size = sample_params(cfg["batch"], seed=0).to(device), cfg["size"]
        if variant == "triton":
            from facekit.kernels.render import render_triton

            return lambda: render_triton(params, size)
        fn = torch.compile(render_procedural) if variant == "compiled" else render_procedural

        def run_reference() -> object:
            with dispatch.use_backend("torch"), torch.no_grad():
                return fn(params, size)

        return run_reference
    gen = torch.Generator().manual_seed(0)
    z_a = torch.randn(cfg["n"], cfg["dim"], generator=gen).to(device).requires_grad_()
    z_b = torch.randn(cfg["n"], cfg["dim"], generator=gen).to(device).requires_grad_()
    labels = (torch.arange(cfg["n"]) // 4).to(device)  # SupCon: 4 views per class
    if variant in ("torch", "compiled"):
        ref = info_nce_reference if kernel == "info_nce" else supcon_reference
        loss_fn = torch.compile(ref) if variant == "compiled" else ref
    else:
        loss_fn = info_nce if kernel == "info_nce" else supcon
    args = (z_a, z_b) if kernel == "info_nce" else (z_a, labels)

    def run_loss() -> object:
        with dispatch.use_backend("triton" if variant == "triton" else "torch"):
            z_a.grad = z_b.grad = None
            loss = loss_fn(*args)
            loss.backward()
        return loss

    return run_loss


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def best_seconds(case: Case, device: str, repeats: int) -> float:
    case()  # warm-up: compiles kernels, fills caches
    sync(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        case()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def _rss_growth(kernel: str, variant: str, cfg: dict) -> int:
    """In a fresh process: bytes the peak resident set grows by while the case runs once (Linux)."""
    torch.set_num_threads(cfg["threads"])
    case = make_case(kernel, variant, cfg, "cpu")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak-RSS mark (VmHWM) to the current RSS
    before = _status_kib("VmRSS")
    case()
    return (_status_kib("VmHWM") - before) * 1024


def peak_bytes(kernel: str, variant: str, cfg: dict, device: str, case: Case) -> int | None:
    if device.startswith("cuda"):
        sync(device)
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        case()
        sync(device)
        return torch.cuda.max_memory_allocated() - base
    if variant == "compiled":
        return None
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
        return pool.submit(_rss_growth, kernel, variant, {**cfg, "threads": torch.get_num_threads()}).result()


def measure(kernel: str, variant: str, cfg: dict, device: str, repeats: int) -> tuple[float, int | None] | str:
    """(best seconds, peak bytes), or why the variant could not run."""
    try:
        case = make_case(kernel, variant, cfg, device)
        seconds = best_seconds(case, device, repeats)
        return seconds, peak_bytes(kernel, variant, cfg, device, case)
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        return "out of memory"


# ---- renderer FLOP count ------------------------------------------------------------------

_FREE = {"copy", "_to_copy", "expand", "view", "_unsafe_view", "unsqueeze", "squeeze", "cat", "index",
         "index_put", "slice", "select", "clone", "zeros_like", "ones_like", "full_like", "empty_like",
         "arange", "t", "permute", "alias", "lift_fresh", "detach", "nonzero", "zeros", "full", "fill"}
_TRANSCENDENTAL = {"exp", "sin", "cos", "sqrt", "rsqrt", "pow", "log"}


class _PixelOpTally(TorchDispatchMode):
    """Adds up output elements of per-pixel arithmetic ops (outputs with >= ``pixels`` elements)."""

    def __init__(self, pixels: int) -> None:
        super().__init__()
        self.pixels, self.flops, self.transcendental = pixels, 0, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__.rstrip("_")
        if isinstance(out, torch.Tensor) and out.numel() >= self.pixels and name not in _FREE:
            both_bounds = name == "clamp" and len(args) > 2 and args[1] is not None and args[2] is not None
            square = name == "pow" and len(args) > 1 and args[1] == 2  # x.square(): one multiply
            self.flops += out.numel() * (2 if both_bounds else 1)
            self.transcendental += out.numel() if name in _TRANSCENDENTAL and not square else 0
        return out


def render_flops_per_pixel(size: int) -> tuple[float, float]:
    """(FLOPs, transcendental ops) per pixel of the reference formula, glasses on every face."""
    n = 4
    params = sample_params(n, seed=0).replace(glasses=torch.ones(n))
    tally = _PixelOpTally(size * size)
    with dispatch.use_backend("torch"), torch.no_grad(), tally:
        render_procedural(params, size)
    pixels = n * size * size
    return tally.flops / pixels, tally.transcendental / pixels


# ---- reports ------------------------------------------------------------------------------


def fmt_bytes(b: int | None) -> str:
    return "n/a (CPU: not measured for compiled code)" if b is None else f"{b / 2**20:,.1f} MiB"


def report(title: str, results: dict[str, tuple[float, int | None] | str], unit: str, count: int) -> None:
    print(title)
    base = results["torch"]
    for variant, res in results.items():
        if isinstance(res, str):
            print(f"  {variant:9s} {res}")
            continue
        seconds, peak = res
        line = f"  {variant:9s} {count / seconds:>14,.0f} {unit}  {seconds * 1e3:9.2f} ms  peak {fmt_bytes(peak)}"
        if variant != "torch" and not isinstance(base, str):
            line += f"  | {base[0] / seconds:.2f}x the torch reference's speed"
            if base[1] and peak is not None:
                line += f", {peak / base[1]:.3f}x its memory"
            if variant != "compiled" and isinstance(results.get("compiled"), tuple):
                line += f", {results['compiled'][0] / seconds:.2f}x torch.compile's speed"
        print(line)


def bench_render(args: argparse.Namespace, device: str, kernel_variant: str | None) -> None:
    from facekit.kernels.render import N_FIELDS

    peaks = device_peaks(device)
    for size in args.sizes:
        cfg = {"batch": args.batch or (8192 if device.startswith("cuda") else 64), "size": size}
        variants = ["torch"] + ([] if args.no_compile else ["compiled"]) + ([kernel_variant] if kernel_variant else [])
        results = {v: measure("render", v, cfg, device, args.repeats) for v in variants}
        report(f"renderer {size}x{size}, batch {cfg['batch']}:", results, "faces/s", cfg["batch"])
        flops, trans = render_flops_per_pixel(size)
        written, read = 3 * size * size * 4, N_FIELDS * 4
        per_face = flops * size * size
        print(f"  roofline: {flops:.0f} FLOPs/pixel ({trans:.0f} of them transcendental), "
              f"{per_face / 1e6:.2f} MFLOP and {written:,} B written (+{read} B read) per face, "
              f"{per_face / (written + read):.1f} FLOP/B")
        if peaks is None:
            print(f"  device peak: unknown ({'not a listed GPU' if device.startswith('cuda') else 'CPU'})")
        else:
            label, peak_flops, peak_bw = peaks
            limit = min(peak_flops / per_face, peak_bw / (written + read))
            bound = "compute" if peak_flops / per_face < peak_bw / (written + read) else "memory"
            print(f"  device peak ({label}, datasheet): {peak_flops / 1e12:.1f} TFLOP/s FP32, "
                  f"{peak_bw / 1e12:.2f} TB/s -> limit {limit:,.0f} faces/s ({bound}-bound)")
            res = results.get("triton")
            if isinstance(res, tuple):
                print(f"  triton reaches {cfg['batch'] / res[0] / limit:.1%} of the limit")
        if size == 64:
            print(f"  ({RENDER_TARGET})")


def bench_contrastive(args: argparse.Namespace, device: str, kernel_variant: str | None) -> None:
    cuda = device.startswith("cuda")
    cfg = {"n": args.n or (65536 if cuda else 4096), "dim": args.dim or (256 if cuda else 128)}
    for loss in args.losses:
        variants = ["torch"] + ([] if args.no_compile else ["compiled"]) + ["tiled"]
        variants += [kernel_variant] if kernel_variant else []
        results = {v: measure(loss, v, cfg, device, args.repeats) for v in variants}
        report(f"{loss} forward+backward, N={cfg['n']:,}, D={cfg['dim']} (torch = naive reference):",
               results, "samples/s", cfg["n"])
    print(f"  ({LOSS_TARGET})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--only", choices=["render", "contrastive"], default=None)
    ap.add_argument("--sizes", type=int, nargs="+", default=[64])
    ap.add_argument("--batch", type=int, default=None, help="faces per call; default 8192 (CUDA), 64 (CPU)")
    ap.add_argument("--n", type=int, default=None, help="contrastive batch; default 65536 (CUDA), 4096 (CPU)")
    ap.add_argument("--dim", type=int, default=None, help="embedding size; default 256 (CUDA), 128 (CPU)")
    ap.add_argument("--losses", nargs="+", choices=["info_nce", "supcon"], default=["info_nce", "supcon"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile baselines")
    args = ap.parse_args()
    device = args.device
    cuda = device.startswith("cuda")
    name = torch.cuda.get_device_name() if cuda else platform.processor() or platform.machine()
    print(f"device: {device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}")
    kernel_variant = "triton" if cuda and dispatch.triton_available() else None
    if kernel_variant is None:
        why = dispatch.INSTALL_HINT if cuda else "they need a GPU"
        print(f"Triton kernels not timed: {why}; the torch paths follow")
    if args.only in (None, "render"):
        bench_render(args, device, kernel_variant)
    if args.only in (None, "contrastive"):
        bench_contrastive(args, device, kernel_variant)


if __name__ == "__main__":
    main()
