"""Contrastive losses that never build the N x N logit matrix.

InfoNCE and supervised contrastive (SupCon) losses compare every sample with every
other: the naive code materialises ``N x N`` logits (16 GiB in fp32 at N = 65,536), and
autograd keeps two more such matrices for the backward pass. Here the logits are
computed tile by tile with an online log-sum-exp, as flash attention does for softmax:
the forward pass keeps one float per row (its log-sum-exp) and the backward pass
recomputes each tile from the embeddings. Memory is O(N D + tile^2) instead of O(N^2).

Three implementations of the same maths, picked by ``facekit.kernels.dispatch``:
- Triton kernels (CUDA, or the CPU interpreter under ``TRITON_INTERPRET=1``);
- a plain-torch tiled loop with the same memory bound (CPU, or no Triton);
- ``info_nce_reference`` / ``supcon_reference``: the naive code, kept as the ground truth.

Inputs are L2-normalised here by default (``normalize=True``), so a logit is a cosine
similarity over ``temperature``; pass ``normalize=False`` if the caller already did it.
Embeddings may be float32, float16 or bfloat16; sums and the loss are float32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from facekit.kernels.dispatch import backend

try:
    import triton
    import triton.language as tl
except ImportError:  # the optional ``gpu`` extra; the torch path needs nothing more
    triton = None

Tensor = torch.Tensor
DTYPES = (torch.float32, torch.float16, torch.bfloat16)
TORCH_TILE = 1024  # rows and columns per tile of the torch loop: few Python steps, small slabs


# ---- naive references (materialise the N x N logits) ------------------------------------


def info_nce_reference(z_a: Tensor, z_b: Tensor, temperature: float = 0.1, normalize: bool = True) -> Tensor:
    """Naive InfoNCE: cross-entropy of ``z_a z_b^T / temperature`` with targets on the diagonal."""
    if normalize:
        z_a, z_b = F.normalize(z_a, dim=1), F.normalize(z_b, dim=1)
    if len(z_a) == 0:
        return (z_a.sum() + z_b.sum()).float() * 0
    logits = (z_a @ z_b.T).float() / temperature
    return F.cross_entropy(logits, torch.arange(len(z_a), device=z_a.device))


def supcon_reference(z: Tensor, labels: Tensor, temperature: float = 0.1, normalize: bool = True) -> Tensor:
    """Naive supervised contrastive loss (Khosla et al. 2020, the "L_out" form).

    For each anchor i: ``logsumexp_{a != i} s_ia - mean_{p in P(i)} s_ip`` with ``P(i)`` the
    other samples of its label, averaged over the anchors that have a positive.
    """
    if normalize:
        z = F.normalize(z, dim=1)
    logits = (z @ z.T).float() / temperature
    own = torch.eye(len(z), dtype=torch.bool, device=z.device)
    pos = (labels[:, None] == labels[None, :]) & ~own
    count = pos.sum(1)
    has = count > 0
    # the most negative float, not -inf, on the diagonal: a batch of one then has finite gradients
    lse = logits.masked_fill(own, torch.finfo(logits.dtype).min).logsumexp(1)
    mean_pos = (logits * pos).sum(1) / count.clamp_min(1)
    return torch.where(has, lse - mean_pos, 0.0).sum() / has.sum().clamp_min(1)


# ---- public API ------------------------------------------------------------------------


def info_nce(z_a: Tensor, z_b: Tensor, temperature: float = 0.1, *, normalize: bool = True,
             tile: int | None = None) -> Tensor:
    """InfoNCE of queries ``z_a`` against keys ``z_b`` (both ``N x D``); row i's positive is ``z_b[i]``.

    One direction, as in MoCo v3 and CLIP's halves: add ``info_nce(z_b, z_a)`` for the
    symmetric loss. For SimCLR's NT-Xent use ``supcon(cat([z1, z2]), cat([ids, ids]))``.
    ``tile`` (a power of two >= 16) is the rows and columns per tile; the default suits
    the device. Returns a float32 scalar (0 for an empty batch).
    """
    z_a = _check_embeddings(z_a, "z_a")
    z_b = _check_embeddings(z_b, "z_b")
    if z_a.shape != z_b.shape or z_a.dtype != z_b.dtype or z_a.device != z_b.device:
        raise ValueError(f"z_a and z_b must have one shape, dtype and device; got {tuple(z_a.shape)} "
                         f"{z_a.dtype} on {z_a.device} and {tuple(z_b.shape)} {z_b.dtype} on {z_b.device}")
    scale, impl = _check_temperature(temperature), backend(z_a.device)
    tile = _check_tile(tile, impl, z_a.shape[1])
    if normalize:
        z_a, z_b = F.normalize(z_a, dim=1), F.normalize(z_b, dim=1)
    if len(z_a) == 0:
        return (z_a.sum() + z_b.sum()).float() * 0
    return _InfoNCE.apply(z_a, z_b, scale, tile, impl)


def supcon(z: Tensor, labels: Tensor, temperature: float = 0.1, *, normalize: bool = True,
           tile: int | None = None) -> Tensor:
    """Supervised contrastive loss of ``z`` (``N x D``) with integer ``labels`` (``N``).

    Every other sample with the same label is a positive; anchors without a positive are
    left out of the mean (0 if none has one). Same ``tile`` and return as ``info_nce``.
    """
    z = _check_embeddings(z, "z")
    if not isinstance(labels, Tensor) or labels.shape != (len(z),) or labels.is_floating_point():
        raise ValueError(f"labels must be an integer tensor of shape ({len(z)},), one per row of z; got "
                         f"{labels.dtype if isinstance(labels, Tensor) else type(labels).__name__} "
                         f"{tuple(getattr(labels, 'shape', ()))}")
    if labels.device != z.device:
        raise ValueError(f"labels are on {labels.device} but z is on {z.device}; move them together")
    scale, impl = _check_temperature(temperature), backend(z.device)
    tile = _check_tile(tile, impl, z.shape[1])
    if normalize:
        z = F.normalize(z, dim=1)
    if len(z) == 0:
        return z.sum().float() * 0
    return _SupCon.apply(z, labels.long().contiguous(), scale, tile, impl)


def _check_embeddings(z: Tensor, name: str) -> Tensor:
    if not isinstance(z, Tensor) or z.dim() != 2:
        raise ValueError(f"{name} must be an N x D tensor of embeddings; got "
                         f"{tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__}")
    if z.dtype not in DTYPES:
        raise TypeError(f"{name} has dtype {z.dtype}; pass float32, float16 or bfloat16 (e.g. {name}.float())")
    if z.shape[1] == 0:
        raise ValueError(f"{name} has no features (D = 0)")
    return z.contiguous()


def _check_temperature(temperature: float) -> float:
    if not temperature > 0:
        raise ValueError(f"temperature={temperature!r} is not valid; pass a positive float such as 0.1")
    return 1.0 / float(temperature)


def _check_tile(tile: int | None, impl: str, d: int) -> int:
    if tile is None:
        return TORCH_TILE if impl == "torch" else (64 if d <= 128 else 32)
    if not isinstance(tile, int) or tile < 16 or tile & (tile - 1):
        raise ValueError(f"tile={tile!r} is not valid; pass a power of two >= 16 (or None for the default)")
    return tile


# ---- autograd wrappers -------------------------------------------------------------------


class _InfoNCE(torch.autograd.Function):
    """Forward keeps only the per-row log-sum-exp; backward recomputes the logits tile by tile."""

    @staticmethod
    def forward(ctx, z_a: Tensor, z_b: Tensor, scale: float, tile: int, impl: str) -> Tensor:
        fwd = _nce_forward_triton if impl == "triton" else _nce_forward_torch
        lse, pos = fwd(z_a, z_b, scale, tile)
        ctx.save_for_backward(z_a, z_b, lse)
        ctx.scale, ctx.tile, ctx.impl = scale, tile, impl
        return (lse - pos).mean()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        z_a, z_b, lse = ctx.saved_tensors
        weight = (grad.float() / len(z_a)).expand(len(z_a)).contiguous()
        bwd = _nce_backward_triton if ctx.impl == "triton" else _nce_backward_torch
        da, db = bwd(z_a, z_b, lse, weight, ctx.scale, ctx.tile, *ctx.needs_input_grad[:2])
        return da, db, None, None, None


class _SupCon(torch.autograd.Function):
    """As ``_InfoNCE``, for one set of embeddings compared with itself."""

    @staticmethod
    def forward(ctx, z: Tensor, labels: Tensor, scale: float, tile: int, impl: str) -> Tensor:
        fwd = _supcon_forward_triton if impl == "triton" else _supcon_forward_torch
        lse, pos_sum, pos_count = fwd(z, labels, scale, tile)
        has = pos_count > 0
        anchors = has.sum().clamp_min(1)
        inv_count = 1.0 / pos_count.clamp_min(1)
        ctx.save_for_backward(z, labels, lse, has, anchors, inv_count)
        ctx.scale, ctx.tile, ctx.impl = scale, tile, impl
        return torch.where(has, lse - pos_sum * inv_count, 0.0).sum() / anchors

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        z, labels, lse, has, anchors, inv_count = ctx.saved_tensors
        weight = has * (grad.float() / anchors)
        bwd = _supcon_backward_triton if ctx.impl == "triton" else _supcon_backward_torch
        return bwd(z, labels, lse, weight, inv_count, ctx.scale, ctx.tile), None, None, None, None


# ---- plain-torch tiled path ------------------------------------------------------------------
# The same algorithm as the kernels with one slab of tile x tile logits alive at a time.


def _nce_forward_torch(z_a: Tensor, z_b: Tensor, scale: float, tile: int) -> tuple[Tensor, Tensor]:
    n = len(z_a)
    lse = torch.full((n,), float("-inf"), device=z_a.device)
    pos = torch.empty(n, device=z_a.device)
    for r in range(0, n, tile):
        a = z_a[r:r + tile].float()
        pos[r:r + tile] = (a * z_b[r:r + tile].float()).sum(1) * scale
        for c in range(0, n, tile):
            s = (a @ z_b[c:c + tile].float().T) * scale
            lse[r:r + tile] = torch.logaddexp(lse[r:r + tile], s.logsumexp(1))  # online log-sum-exp
    return lse, pos


def _nce_backward_torch(z_a: Tensor, z_b: Tensor, lse: Tensor, weight: Tensor, scale: float, tile: int,
                        need_a: bool, need_b: bool) -> tuple[Tensor | None, Tensor | None]:
    # dL/ds_ij = w_i (softmax_ij - [i == j]); da = scale dS b, db = scale dS^T a
    n = len(z_a)
    da = torch.zeros(z_a.shape, device=z_a.device) if need_a else None
    db = torch.zeros(z_b.shape, device=z_b.device) if need_b else None
    for r in range(0, n, tile):
        a = z_a[r:r + tile].float()
        for c in range(0, n, tile):
            b = z_b[c:c + tile].float()
            ds = torch.exp((a @ b.T) * scale - lse[r:r + tile, None])
            if r == c:
                ds.diagonal().sub_(1)
            ds *= weight[r:r + tile, None] * scale
            if da is not None:
                da[r:r + tile] += ds @ b
            if db is not None:
                db[c:c + tile] += ds.T @ a
    return (None if da is None else da.to(z_a.dtype)), (None if db is None else db.to(z_b.dtype))


def _supcon_tile(z: Tensor, labels: Tensor, r: int, c: int, tile: int, scale: float) -> tuple[Tensor, Tensor]:
    """Logits of rows ``r:r+tile`` against columns ``c:c+tile`` (self-pairs at -inf) and positives."""
    s = (z[r:r + tile].float() @ z[c:c + tile].float().T) * scale
    pos = labels[r:r + tile, None] == labels[None, c:c + tile]
    if r == c:
        s.fill_diagonal_(float("-inf"))
        pos.fill_diagonal_(False)
    return s, pos


def _supcon_forward_torch(z: Tensor, labels: Tensor, scale: float, tile: int) -> tuple[Tensor, Tensor, Tensor]:
    n = len(z)
    lse = torch.full((n,), float("-inf"), device=z.device)
    pos_sum = torch.zeros(n, device=z.device)
    pos_count = torch.zeros(n, device=z.device)
    for r in range(0, n, tile):
        for c in range(0, n, tile):
            s, pos = _supcon_tile(z, labels, r, c, tile, scale)
            lse[r:r + tile] = torch.logaddexp(lse[r:r + tile], s.logsumexp(1))
            pos_sum[r:r + tile] += torch.where(pos, s, 0.0).sum(1)
            pos_count[r:r + tile] += pos.sum(1)
    return lse.nan_to_num(neginf=0.0), pos_sum, pos_count  # -inf only for a batch of one


def _supcon_backward_torch(z: Tensor, labels: Tensor, lse: Tensor, weight: Tensor, inv_count: Tensor,
                           scale: float, tile: int) -> Tensor:
    # dL/ds_ij = w_i (softmax_ij - [j in P(i)] / |P(i)|); s = z z^T, so dz = scale (dS + dS^T) z
    n = len(z)
    dz = torch.zeros(z.shape, device=z.device)
    for r in range(0, n, tile):
        for c in range(0, n, tile):
            s, pos = _supcon_tile(z, labels, r, c, tile, scale)
            ds = torch.exp(s - lse[r:r + tile, None]) - pos * inv_count[r:r + tile, None]
            ds *= weight[r:r + tile, None] * scale
            dz[r:r + tile] += ds @ z[c:c + tile].float()
            dz[c:c + tile] += ds.T @ z[r:r + tile].float()
    return dz.to(z.dtype)


# ---- Triton path -----------------------------------------------------------------------------
# One program per block of rows loops over all column blocks. The backward passes are
# written so each program owns its output rows: no atomics, deterministic results.


def _launch_options(z: Tensor, tile: int) -> dict[str, object]:
    block_d = max(16, triton.next_power_of_2(z.shape[1]))
    # fp32 logits are exact ("ieee") unless torch itself allows TF32 matmuls
    precision = "tf32" if z.dtype == torch.float32 and torch.backends.cuda.matmul.allow_tf32 else "ieee"
    return {"BLOCK": tile, "BLOCK_D": block_d, "PRECISION": precision, "num_warps": 4 if block_d <= 64 else 8}


def _nce_forward_triton(z_a: Tensor, z_b: Tensor, scale: float, tile: int) -> tuple[Tensor, Tensor]:
    n, d = z_a.shape
    lse, pos = torch.empty(n, device=z_a.device), torch.empty(n, device=z_a.device)
    _nce_fwd_kernel[(triton.cdiv(n, tile),)](z_a, z_b, lse, pos, n, d, scale, **_launch_options(z_a, tile))
    return lse, pos


def _nce_backward_triton(z_a: Tensor, z_b: Tensor, lse: Tensor, weight: Tensor, scale: float, tile: int,
                         need_a: bool, need_b: bool) -> tuple[Tensor | None, Tensor | None]:
    n, d = z_a.shape
    opts, grid = _launch_options(z_a, tile), (triton.cdiv(n, tile),)
    da = db = None
    if need_a:
        da = torch.empty_like(z_a)
        _nce_bwd_kernel[grid](z_a, z_b, lse, weight, da, n, d, scale, QUERIES=True, **opts)
    if need_b:
        db = torch.empty_like(z_b)
        _nce_bwd_kernel[grid](z_b, z_a, lse, weight, db, n, d, scale, QUERIES=False, **opts)
    return da, db


def _supcon_forward_triton(z: Tensor, labels: Tensor, scale: float, tile: int) -> tuple[Tensor, Tensor, Tensor]:
    n, d = z.shape
    lse, pos_sum, pos_count = (torch.empty(n, device=z.device) for _ in range(3))
    _supcon_fwd_kernel[(triton.cdiv(n, tile),)](z, labels, lse, pos_sum, pos_count, n, d, scale,
                                                **_launch_options(z, tile))
    return lse, pos_sum, pos_count


def _supcon_backward_triton(z: Tensor, labels: Tensor, lse: Tensor, weight: Tensor, inv_count: Tensor,
                            scale: float, tile: int) -> Tensor:
    n, d = z.shape
    dz = torch.empty_like(z)
    _supcon_bwd_kernel[(triton.cdiv(n, tile),)](z, labels, lse, weight.contiguous(), inv_count, dz, n, d, scale,
                                                **_launch_options(z, tile))
    return dz


if triton is not None:

    @triton.jit
    def _load_rows(ptr, rows, n, d, BLOCK_D: tl.constexpr):
        dims = tl.arange(0, BLOCK_D)
        mask = (rows < n)[:, None] & (dims < d)[None, :]
        return tl.load(ptr + rows[:, None] * d + dims[None, :], mask=mask, other=0.0)

    @triton.jit
    def _online_lse(m, acc, s):
        """One online log-sum-exp step over a tile of logits ``s`` (a row may be all -inf)."""
        m_new = tl.maximum(m, tl.max(s, 1))
        shift = tl.where(m_new == float("-inf"), 0.0, m_new)
        return m_new, acc * tl.exp(m - shift) + tl.sum(tl.exp(s - shift[:, None]), 1)

    @triton.jit
    def _nce_fwd_kernel(a_ptr, b_ptr, lse_ptr, pos_ptr, n, d, scale, BLOCK: tl.constexpr,
                        BLOCK_D: tl.constexpr, PRECISION: tl.constexpr):
        rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        a = _load_rows(a_ptr, rows, n, d, BLOCK_D)
        m = tl.full([BLOCK], float("-inf"), tl.float32)
        acc = tl.zeros([BLOCK], tl.float32)
        for start in range(0, n, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            s = tl.dot(a, tl.trans(_load_rows(b_ptr, cols, n, d, BLOCK_D)), input_precision=PRECISION) * scale
            m, acc = _online_lse(m, acc, tl.where((cols < n)[None, :], s, float("-inf")))
        own = _load_rows(b_ptr, rows, n, d, BLOCK_D).to(tl.float32)
        tl.store(lse_ptr + rows, m + tl.log(acc), mask=rows < n)
        tl.store(pos_ptr + rows, tl.sum(a.to(tl.float32) * own, 1) * scale, mask=rows < n)

    @triton.jit
    def _nce_bwd_kernel(x_ptr, y_ptr, lse_ptr, w_ptr, dx_ptr, n, d, scale, QUERIES: tl.constexpr,
                        BLOCK: tl.constexpr, BLOCK_D: tl.constexpr, PRECISION: tl.constexpr):
        """Rows of dz_a = scale dS z_b (QUERIES), or of dz_b = scale dS^T z_a, for a block of x's rows.

        dS_ij = w_i (exp(s_ij - lse_i) - [i == j]); lse and w belong to the query rows.
        """
        rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        x = _load_rows(x_ptr, rows, n, d, BLOCK_D)
        lse_r = tl.load(lse_ptr + rows, mask=rows < n, other=0.0)
        w_r = tl.load(w_ptr + rows, mask=rows < n, other=0.0)
        grad = tl.zeros([BLOCK, BLOCK_D], tl.float32)
        for start in range(0, n, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            y = _load_rows(y_ptr, cols, n, d, BLOCK_D)
            s = tl.dot(x, tl.trans(y), input_precision=PRECISION) * scale
            same = tl.where(rows[:, None] == cols[None, :], 1.0, 0.0)
            if QUERIES:
                ds = (tl.exp(s - lse_r[:, None]) - same) * w_r[:, None]
            else:  # x holds keys, y queries: s is s^T, the query of column j owns lse_j and w_j
                lse_c = tl.load(lse_ptr + cols, mask=cols < n, other=0.0)
                w_c = tl.load(w_ptr + cols, mask=cols < n, other=0.0)
                ds = (tl.exp(s - lse_c[None, :]) - same) * w_c[None, :]
            ds = tl.where((cols < n)[None, :], ds, 0.0)
            grad += tl.dot(ds.to(y.dtype), y, input_precision=PRECISION)
        dims = tl.arange(0, BLOCK_D)
        mask = (rows < n)[:, None] & (dims < d)[None, :]
        tl.store(dx_ptr + rows[:, None] * d + dims[None, :], grad * scale, mask=mask)

    @triton.jit
    def _supcon_fwd_kernel(z_ptr, y_ptr, lse_ptr, psum_ptr, pcount_ptr, n, d, scale, BLOCK: tl.constexpr,
                           BLOCK_D: tl.constexpr, PRECISION: tl.constexpr):
        rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        z = _load_rows(z_ptr, rows, n, d, BLOCK_D)
        y_r = tl.load(y_ptr + rows, mask=rows < n, other=0)
        m = tl.full([BLOCK], float("-inf"), tl.float32)
        acc = tl.zeros([BLOCK], tl.float32)
        pos_sum = tl.zeros([BLOCK], tl.float32)
        pos_count = tl.zeros([BLOCK], tl.float32)
        for start in range(0, n, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            y_c = tl.load(y_ptr + cols, mask=cols < n, other=0)
            s = tl.dot(z, tl.trans(_load_rows(z_ptr, cols, n, d, BLOCK_D)), input_precision=PRECISION) * scale
            valid = (cols < n)[None, :] & (rows[:, None] != cols[None, :])
            pos = valid & (y_r[:, None] == y_c[None, :])
            pos_sum += tl.sum(tl.where(pos, s, 0.0), 1)
            pos_count += tl.sum(tl.where(pos, 1.0, 0.0), 1)
            m, acc = _online_lse(m, acc, tl.where(valid, s, float("-inf")))
        lse = tl.where(acc > 0, m + tl.log(tl.where(acc > 0, acc, 1.0)), 0.0)  # acc = 0: a batch of one
        tl.store(lse_ptr + rows, lse, mask=rows < n)
        tl.store(psum_ptr + rows, pos_sum, mask=rows < n)
        tl.store(pcount_ptr + rows, pos_count, mask=rows < n)

    @triton.jit
    def _supcon_bwd_kernel(z_ptr, y_ptr, lse_ptr, w_ptr, inv_ptr, dz_ptr, n, d, scale, BLOCK: tl.constexpr,
                           BLOCK_D: tl.constexpr, PRECISION: tl.constexpr):
        """Rows of dz = scale (dS + dS^T) z: s is symmetric, so dS^T's tile uses the column's lse."""
        rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        z = _load_rows(z_ptr, rows, n, d, BLOCK_D)
        y_r = tl.load(y_ptr + rows, mask=rows < n, other=0)
        lse_r = tl.load(lse_ptr + rows, mask=rows < n, other=0.0)
        w_r = tl.load(w_ptr + rows, mask=rows < n, other=0.0)
        inv_r = tl.load(inv_ptr + rows, mask=rows < n, other=0.0)
        grad = tl.zeros([BLOCK, BLOCK_D], tl.float32)
        for start in range(0, n, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            zc = _load_rows(z_ptr, cols, n, d, BLOCK_D)
            y_c = tl.load(y_ptr + cols, mask=cols < n, other=0)
            lse_c = tl.load(lse_ptr + cols, mask=cols < n, other=0.0)
            w_c = tl.load(w_ptr + cols, mask=cols < n, other=0.0)
            inv_c = tl.load(inv_ptr + cols, mask=cols < n, other=0.0)
            s = tl.dot(z, tl.trans(zc), input_precision=PRECISION) * scale
            valid = (cols < n)[None, :] & (rows[:, None] != cols[None, :])
            pos = tl.where(valid & (y_r[:, None] == y_c[None, :]), 1.0, 0.0)
            p_r = tl.where(valid, tl.exp(s - lse_r[:, None]), 0.0)
            p_c = tl.where(valid, tl.exp(s - lse_c[None, :]), 0.0)
            ds = w_r[:, None] * (p_r - pos * inv_r[:, None]) + w_c[None, :] * (p_c - pos * inv_c[None, :])
            grad += tl.dot(ds.to(zc.dtype), zc, input_precision=PRECISION)
        dims = tl.arange(0, BLOCK_D)
        mask = (rows < n)[:, None] & (dims < d)[None, :]
        tl.store(dz_ptr + rows[:, None] * d + dims[None, :], grad * scale, mask=mask)
