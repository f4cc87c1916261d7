"""The pieces every method package shares, written once: pool samplers, batched inference and
rendered pools.

Each was written again in every method before (nine samplers with three kinds of laziness, ten
inference loops, seven chunked render-and-cache builders); here each has one definition, so a
fix or a speed-up reaches all five methods.
"""

from __future__ import annotations

import copy
import dataclasses
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from facekit.config import get_profile
from facekit.io import disk_cached, to_uint8

T = TypeVar("T", Tensor, dict[str, Tensor])
C = TypeVar("C")


def build_config(cls: type[C], fields: Mapping[str, Any]) -> C:
    """``cls(**fields)``, where a field that is itself a dataclass may be given as a dict of its
    fields (built recursively, its other fields at their defaults)."""
    hints = typing.get_type_hints(cls)
    kw = {}
    for name, value in fields.items():
        kind = hints.get(name)
        if isinstance(value, Mapping) and dataclasses.is_dataclass(kind):
            value = build_config(kind, value)
        kw[name] = copy.deepcopy(value)  # a config never shares a mutable value with the profile table
    return cls(**kw)


def profile_config_of(cls: type[C], profiles: Mapping[str, Mapping[str, Any]], profile: str | None, seed: int,
                      seeded: Sequence[str] = ("train",)) -> C:
    """A method's config for a profile: ``profiles[profile]`` are the fields that differ from the
    defaults of ``cls`` (a dict for a nested dataclass replaces it, its other fields at their own
    defaults); ``seed`` goes into the ``seed`` of each nested config named in ``seeded``
    (``"a.b"`` for deeper ones). The profiles are data, so they can be read, diffed and tested."""
    cfg = build_config(cls, profiles[get_profile(profile)])
    for path in seeded:
        target: Any = cfg
        for part in path.split("."):
            target = getattr(target, part)
        target.seed = seed
    return cfg


class PoolSampler:
    """``step -> batch`` of ``batch_size`` random rows of a pool of tensors.

    ``pool`` is the tensors themselves or a function that makes them; a function is called on the
    first step only, so loading a cached model renders nothing. ``keys`` limits the batch to some
    of the pool's tensors. Rows are drawn with torch's global RNG, which :func:`facekit.train.fit`
    reseeds every step, so an interrupted run resumes exactly.
    """

    def __init__(self, pool: Mapping[str, Tensor] | Callable[[], Mapping[str, Tensor]], batch_size: int,
                 keys: Sequence[str] | None = None, *, min_rows: int = 1, empty: str = "the pool") -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} is not valid; pass a positive int")
        self._make = pool if callable(pool) else None
        self._pool: dict[str, Tensor] | None = None if callable(pool) else self._check(pool, min_rows, empty)
        self.batch_size, self.keys, self.min_rows, self.empty = batch_size, keys, min_rows, empty

    @staticmethod
    def _check(pool: Mapping[str, Tensor], min_rows: int, empty: str) -> dict[str, Tensor]:
        n = len(next(iter(pool.values()))) if pool else 0
        if n < min_rows:
            raise ValueError(f"{empty} has {n} rows; need at least {min_rows}")
        return dict(pool)

    @property
    def pool(self) -> dict[str, Tensor]:
        """The pool's tensors (made now when they were given as a function)."""
        if self._pool is None:
            assert self._make is not None
            self._pool = self._check(self._make(), self.min_rows, self.empty)
        return self._pool

    def __call__(self, step: int) -> dict[str, Tensor]:
        pool = self.pool
        idx = torch.randint(0, len(next(iter(pool.values()))), (self.batch_size,))
        return {k: pool[k][idx] for k in (self.keys or pool)}


@torch.no_grad()
def batched(fn: Callable[..., T], *xs: Tensor, batch_size: int = 256,
            device: str | torch.device | nn.Module | None = None) -> T:
    """``fn`` over ``xs`` in batches of ``batch_size`` rows without gradients, the results (a
    tensor or a dict of tensors) concatenated on the CPU.

    ``device`` (a device or a module whose parameters say where it lives) is where each batch is
    moved before ``fn`` sees it; ``None`` leaves the batches where they are.
    """
    if isinstance(device, nn.Module):
        device = next(device.parameters()).device
    outs = []
    for i in range(0, len(xs[0]), batch_size):
        parts = [x[i:i + batch_size] for x in xs]
        outs.append(fn(*(p.to(device) for p in parts) if device is not None else parts))
    if isinstance(outs[0], Mapping):
        return {k: torch.cat([o[k].cpu() for o in outs]) for k in outs[0]}  # type: ignore[return-value]
    return torch.cat([o.cpu() for o in outs])  # type: ignore[return-value]


def render_pool(name: str, key: Any, n: int, make_chunk: Callable[[Tensor], Mapping[str, Tensor]], *,
                images: Sequence[str] = ("image",), chunk: int = 256,
                finish: Callable[[dict[str, Tensor]], dict[str, Tensor]] | None = None) -> dict[str, Tensor]:
    """``n`` rows rendered ``chunk`` at a time by ``make_chunk(indices)``, the ``images`` among
    them stored as uint8 (a quarter of the bytes), cached on disk under ``name`` and ``key``.

    ``finish`` turns the gathered rows into what is cached, for what needs every row at once
    (captions drawn from one random stream over the pool). Rendering dominates on a CPU, so a
    pool is rendered once and read back by every later run.
    """

    def make() -> dict[str, Tensor]:
        parts: dict[str, list[Tensor]] = {}
        for start in range(0, n, chunk):
            for k, v in make_chunk(torch.arange(start, min(start + chunk, n))).items():
                v = v.cpu()
                parts.setdefault(k, []).append(to_uint8(v) if k in images else v)
        rows = {k: torch.cat(v) for k, v in parts.items()}
        return finish(rows) if finish is not None else rows

    return disk_cached(name, key, make)


def as_float(x: Tensor) -> Tensor:
    """uint8 images (as pools store them) as floats in [0, 1]; float images unchanged."""
    return x.float() / 255 if x.dtype == torch.uint8 else x.float()


__all__ = ["PoolSampler", "as_float", "batched", "build_config", "profile_config_of", "render_pool"]
