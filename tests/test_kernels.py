"""facekit.kernels: the tiled contrastive losses and the fused renderer against their references.

The Triton kernels run under the Triton interpreter on CPU tensors (tiny shapes: it is
slow), or on CUDA when a GPU is there and ``TRITON_INTERPRET=0`` is set. Without Triton
those tests skip; the plain-torch tiled losses are tested always.
"""

import os

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

os.environ.setdefault("TRITON_INTERPRET", "1")  # also in conftest.py: before any kernel module is imported

from facekit.kernels import contrastive, dispatch  # noqa: E402
from facekit.kernels.contrastive import info_nce, info_nce_reference, supcon, supcon_reference  # noqa: E402
from facekit.synth.params import sample_params  # noqa: E402
from facekit.synth.procedural import render_procedural  # noqa: E402
from facekit.synth.render import render  # noqa: E402

TOL = 1e-4  # relative, fp32, loss and gradients
PIXEL_TOL = 1 / 255

needs_triton = pytest.mark.skipif(not dispatch.triton_available(), reason=dispatch.INSTALL_HINT)
DEVICE = "cuda" if torch.cuda.is_available() and not dispatch.interpreting() else "cpu"


def rel_err(x: torch.Tensor, ref: torch.Tensor, floor: float = 1e-3) -> float:
    """Max error relative to the reference's largest entry (absolute when that is below ``floor``)."""
    return float((x.double() - ref.double()).abs().max() / ref.double().abs().max().clamp_min(floor))


def embeddings(n: int, d: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed)).to(DEVICE, dtype)


def grads(fn, *inputs: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    leaves = [x.detach().clone().requires_grad_() for x in inputs]
    loss = fn(*leaves)
    return loss.detach(), torch.autograd.grad(loss, leaves)


def check_info_nce(n: int, d: int, tile: int, **kw) -> None:
    za, zb = embeddings(n, d, 1), embeddings(n, d, 2)
    ref, ref_g = grads(lambda a, b: info_nce_reference(a, b, 0.1, **kw), za, zb)
    out, out_g = grads(lambda a, b: info_nce(a, b, 0.1, tile=tile, **kw), za, zb)
    assert rel_err(out, ref, floor=1.0) < TOL
    for g, rg in zip(out_g, ref_g, strict=True):
        assert rel_err(g, rg) < TOL


def check_supcon(n: int, d: int, tile: int, classes: int = 5, **kw) -> None:
    z = embeddings(n, d, 3)
    labels = torch.randint(0, classes, (n,), generator=torch.Generator().manual_seed(4)).to(DEVICE)
    ref, (ref_g,) = grads(lambda x: supcon_reference(x, labels, 0.1, **kw), z)
    out, (out_g,) = grads(lambda x: supcon(x, labels, 0.1, tile=tile, **kw), z)
    assert rel_err(out, ref, floor=1.0) < TOL
    assert rel_err(out_g, ref_g) < TOL


class LargestTensor(TorchDispatchMode):
    """Records the largest tensor any op creates, forward and backward."""

    numel = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.numel = max([self.numel] + [t.numel() for t in tree_leaves(out) if isinstance(t, torch.Tensor)])
        return out


# ---- dispatcher ----------------------------------------------------------------------------


def test_dispatch_defaults_and_overrides(monkeypatch):
    monkeypatch.delenv("FACEKIT_KERNELS", raising=False)
    assert dispatch.backend("cpu") == "torch"
    monkeypatch.setenv("FACEKIT_KERNELS", "torch")
    assert dispatch.backend("cpu") == "torch"
    monkeypatch.setenv("FACEKIT_KERNELS", "cuda")
    with pytest.raises(ValueError, match="FACEKIT_KERNELS='cuda' is not valid; choose one of"):
        dispatch.backend("cpu")
    monkeypatch.setenv("FACEKIT_KERNELS", "triton")
    monkeypatch.setattr(dispatch, "triton_available", lambda: False)
    with pytest.raises(RuntimeError, match=r"triton not installed: pip install -e '\.\[gpu\]'"):
        dispatch.backend("cpu")
    monkeypatch.setattr(dispatch, "triton_available", lambda: True)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(RuntimeError, match="need CUDA tensors, got cpu"):
        dispatch.backend("cpu")
    with dispatch.use_backend("torch"):
        assert dispatch.backend("cpu") == "torch"


# ---- contrastive: plain-torch tiled path (always) -----------------------------------------------


@pytest.mark.parametrize("n,d,tile", [(37, 16, 16), (64, 20, 16), (2, 5, 16), (1, 8, 16)])
def test_tiled_torch_matches_reference(n, d, tile):
    with dispatch.use_backend("torch"):
        check_info_nce(n, d, tile)
        check_supcon(n, d, tile)
        check_info_nce(n, d, tile, normalize=False)
        check_supcon(n, d, tile, normalize=False)


def test_tiled_torch_never_builds_the_n_by_n_matrix():
    n, d, tile = 256, 16, 32
    za, zb = embeddings(n, d, 1).requires_grad_(), embeddings(n, d, 2).requires_grad_()
    labels = torch.arange(n) % 7
    largest = {}
    for name, loss_fn in [("info_nce", lambda: info_nce(za, zb, tile=tile)),
                          ("supcon", lambda: supcon(za, labels, tile=tile)),
                          ("reference", lambda: info_nce_reference(za, zb))]:
        with dispatch.use_backend("torch"), LargestTensor() as mode:
            loss_fn().backward()
        largest[name] = mode.numel
    assert largest["info_nce"] <= n * d and largest["supcon"] <= n * d  # embeddings, tile^2 = 1024
    assert largest["reference"] >= n * n  # the naive loss does build it: the probe sees it


def test_contrastive_edge_cases_and_errors():
    z = embeddings(6, 8)
    with dispatch.use_backend("torch"):
        for fn in (lambda x: info_nce(x, x), lambda x: supcon(x, torch.zeros(0, dtype=torch.long))):
            empty = torch.zeros(0, 8, requires_grad=True)
            loss = fn(empty)
            loss.backward()
            assert float(loss.detach()) == 0 and empty.grad.shape == (0, 8)
        distinct = supcon(z.requires_grad_(), torch.arange(6))  # no positive pairs at all
        distinct.backward()
        assert float(distinct.detach()) == 0 and float(z.grad.abs().max()) == 0
        strided = embeddings(16, 12).T  # 12 x 16, not contiguous
        assert torch.allclose(info_nce(strided, strided), info_nce_reference(strided, strided), rtol=TOL)
        half = info_nce(z.detach().half(), z.detach().half())
        assert abs(float(half) - float(info_nce_reference(z.detach(), z.detach()))) < 1e-2
    with pytest.raises(TypeError, match="dtype torch.float64; pass float32, float16 or bfloat16"):
        info_nce(z.double(), z.double())
    with pytest.raises(ValueError, match="one shape, dtype and device"):
        info_nce(z, z[:3])
    with pytest.raises(ValueError, match="temperature=0 is not valid"):
        info_nce(z, z, 0)
    with pytest.raises(ValueError, match="tile=24 is not valid; pass a power of two"):
        info_nce(z, z, tile=24)
    with pytest.raises(ValueError, match=r"labels must be an integer tensor of shape \(6,\)"):
        supcon(z, torch.zeros(6))


# ---- contrastive: Triton kernels -------------------------------------------------------------


@needs_triton
@pytest.mark.parametrize("n,d,tile", [(37, 16, 16), (40, 20, 32), (2, 5, 16), (1, 8, 16)])
def test_triton_contrastive_matches_reference(n, d, tile):
    with dispatch.use_backend("triton"):
        check_info_nce(n, d, tile)
        check_supcon(n, d, tile)
        check_supcon(n, d, tile, classes=1)
    assert contrastive.triton is not None


@needs_triton
def test_triton_contrastive_half_inputs():
    z = embeddings(37, 16)
    labels = torch.arange(37, device=DEVICE) % 4
    # the interpreter multiplies bfloat16 bit patterns in tl.dot (triton-lang/triton#11584)
    dtypes = (torch.float16, torch.bfloat16) if DEVICE == "cuda" else (torch.float16,)
    with dispatch.use_backend("triton"):
        for dtype in dtypes:
            zh = z.to(dtype).requires_grad_()
            loss = supcon(zh, labels, tile=16)
            loss.backward()
            assert zh.grad.dtype == dtype
            assert abs(float(loss.detach()) - float(supcon_reference(z, labels))) < 2e-2


# ---- renderer ---------------------------------------------------------------------------------


def faces(n: int, seed: int):
    p = sample_params(n, seed=seed, pose_scale=1.5)
    return p.replace(glasses=(torch.arange(n) % 2 == 0).float()).to(DEVICE)  # wearers and not


@needs_triton
@pytest.mark.parametrize("size", [32, 64, 128, 256])
def test_fused_renderer_matches_reference(size):
    from facekit.kernels.render import render_triton

    p = faces(2, seed=size)
    with dispatch.use_backend("torch"):
        ref = render_procedural(p, size)
    out = render_triton(p, size, block=4096)  # big blocks: the interpreter is per-program slow
    assert out.shape == ref.shape and out.dtype == torch.float32
    assert float((out - ref).abs().max()) <= PIXEL_TOL


@needs_triton
def test_fused_renderer_tiles_dtypes_and_errors():
    from facekit.kernels.render import render_triton

    p = faces(2, seed=1)
    with dispatch.use_backend("torch"):
        ref = render_procedural(p, 40)
    out = render_triton(p, 40)  # default block: 7 tiles per face, the last one masked
    assert float((out - ref).abs().max()) <= PIXEL_TOL
    for dtype in (torch.float16, torch.bfloat16):
        low = render_triton(p, 40, dtype=dtype, block=2048)
        assert low.dtype == dtype and float((low.float() - ref).abs().max()) <= PIXEL_TOL
    assert render_triton(p[0:0], 32).shape == (0, 3, 32, 32)
    with pytest.raises(ValueError, match="size=16 is not valid"):
        render_triton(p, 16)
    with pytest.raises(ValueError, match="dtype=torch.float64 is not valid"):
        render_triton(p, 32, dtype=torch.float64)
    with pytest.raises(ValueError, match="block=100 is not valid"):
        render_triton(p, 32, block=100)


@needs_triton
def test_fused_renderer_draws_the_face_window():
    from facekit.kernels.render import render_triton
    from facekit.synth.framing import face_geometry

    p = faces(2, seed=5)
    window = face_geometry(32)
    with dispatch.use_backend("torch"):
        ref = render_procedural(p, 32, window=window)
    out = render_triton(p, 32, block=2048, window=window)
    assert out.shape == (2, 3, 32, 32) and float((out - ref).abs().max()) <= PIXEL_TOL


@needs_triton
def test_render_routes_to_the_kernel(monkeypatch):
    from facekit.kernels.render import render_triton

    p = faces(2, seed=7)
    with dispatch.use_backend("torch"):
        ref = render(p, 32)
    monkeypatch.setenv("FACEKIT_KERNELS", "triton")
    out = render(p, 32)  # render picks the kernel over the torch reference
    assert torch.equal(out, render_triton(p, 32))
    assert float((out - ref).abs().max()) <= PIXEL_TOL
