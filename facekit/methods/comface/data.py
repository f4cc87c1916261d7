"""ComFace's data: same-person pairs from the training worlds (``facekit.synth.worlds``), rendered once per config."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from facekit.io import disk_cached, to_uint8
from facekit.methods.comface.config import DELTA_SCALE, TASKS, ComFaceConfig, DataConfig, check_task
from facekit.methods.common import render_pool
from facekit.synth.datasets import PairDataset
from facekit.synth.params import EMOTIONS, emotion_matrix
from facekit.synth.worlds import World, get_world, renderer_fingerprint


def _pairs_new_scene(ds: PairDataset, indices: Tensor) -> dict[str, Tensor]:
    """``ds.batch`` with photo b given another pair's background, clothing (``seed``), pose
    and light: a new scene, as between two real photos of one person.

    A PairDataset holds the scene within a pair (pose and light only jittered). A contrastive
    loss over persons then matched backdrops instead of faces, and never had to recognise a
    person across pose and light (the verification numbers are in MODEL_CARD.md).
    """
    idx = torch.as_tensor(indices, dtype=torch.int64)
    base, emotion = ds._held(idx)
    va, vb = ds.values(idx)
    pa, pb = ds._view(base, emotion, va, idx, 0), ds._view(base, emotion, vb, idx, 1)
    other = {f: getattr(pb, f).roll(1, 0) for f in ("yaw", "pitch", "roll", "light_azimuth", "light_elevation",
                                                     "light_strength")}
    pb = pb.replace(background=pa.background.roll(1, 0), seed=pa.seed.roll(1, 0), **other)
    return {"a": ds.render_params(pa), "b": ds.render_params(pb), "delta": vb - va, "person": ds.person_of(idx)}


def pair_rows(ds: PairDataset, task: str, new_scene: bool = False,
              offset: int = 0) -> Callable[[Tensor], dict[str, Tensor]]:
    """``indices -> rows`` for :func:`facekit.methods.common.render_pool`: pairs ``offset +
    indices`` of ``ds`` (images a and b) with the full scaled 3-vector of deltas (zeros for the
    factors held fixed) and the person."""
    def rows(idx: Tensor) -> dict[str, Tensor]:
        b = _pairs_new_scene(ds, offset + idx) if new_scene else ds.batch(offset + idx)
        delta = torch.zeros(len(b["delta"]), len(TASKS))
        delta[:, TASKS.index(task)] = b["delta"].cpu() / DELTA_SCALE[task]
        return {"a": b["a"], "b": b["b"], "delta": delta, "person": b["person"]}

    return rows


WORLD_ROLES = ("train", "test")


def world_of(d: DataConfig, role: str = "train") -> World:
    """ComFace's world for ``role``: ``"train"`` is ``d.world`` (the pool), ``"test"`` is
    ``d.test_world`` (transfer and verification), each at this config's size, framing and persons."""
    if role not in WORLD_ROLES:
        raise ValueError(f"role={role!r} is not valid; choose one of {list(WORLD_ROLES)}")
    return get_world(d.world if role == "train" else d.test_world, size=d.size, framing=d.framing,
                     n_identities=d.n_identities)


def world_key(w: World) -> dict[str, Any]:
    """What a cached set depends on besides its own sizes: the world (backend resolved) and the renderer."""
    return {"world": w.config(), "renderer": renderer_fingerprint()}


def training_pool(cfg: ComFaceConfig) -> dict[str, Tensor]:
    """The train-split pairs of ``cfg.data.world`` every model of this config trains on (all factors).

    Factor k uses dataset items ``k * pool_pairs ...`` of a round robin over the persons: with
    ``same_persons`` over the first ``pool_pairs`` train persons, so each has one pair of every
    factor (row ``i`` of each factor is person ``i``), else over all train persons. Shared by
    ComFace and the SimCLR baseline; the same for every seed.
    """
    d = cfg.data
    w = world_of(d)
    n_persons = min(d.pool_pairs, len(w.identities.ids("train"))) if d.same_persons else None
    parts = []
    for k, task in enumerate(TASKS):
        ds = w.pairs(3 * d.pool_pairs, split="train", seed=0, factor=task, nuisance=d.nuisance, n_persons=n_persons)
        parts.append(render_pool(f"comface-pool-{task}", {"data": d, **world_key(w), "v": 2}, d.pool_pairs,
                                 pair_rows(ds, task, d.new_scene, offset=k * d.pool_pairs), images=("a", "b")))
    return {key: torch.cat([p[key] for p in parts]) for key in parts[0]}


def transfer_sets(cfg: ComFaceConfig, task: str, split: str = "test") -> dict[str, dict[str, Tensor]]:
    """Pairs of ``cfg.data.test_world`` (the target style: real photos) for one task: a
    ``labelled`` pool (the first half of the split's persons; per-seed subsets of it are the
    labelled sets) and an ``eval`` set of the other half. Fixed across seeds, so seeds differ in
    training and in the subset. ``split="val"`` builds the same from validation persons, for
    choosing settings."""
    check_task(task, TASKS)
    if split not in ("val", "test"):
        raise ValueError(f"split={split!r} is not valid; transfer sets come from 'val' or 'test' persons")
    d = cfg.data
    w = world_of(d, "test")
    half = len(w.identities.ids(split)) // 2

    def pool(part: str) -> dict[str, Tensor]:
        n = max(d.n_labelled) if part == "labelled" else d.n_eval
        ds = w.pairs(n, split=split, seed=101 if part == "labelled" else 202, factor=task, nuisance=d.nuisance)
        persons = ds.persons
        ds.persons = persons[:half] if part == "labelled" else persons[half:]
        return render_pool(f"comface-{part}", {**key, "n": n}, n, pair_rows(ds, task), images=("a", "b"))

    key = {"n_identities": d.n_identities, "nuisance": d.nuisance, "task": task, "split": split, **world_key(w),
           "v": 2}
    return {part: pool(part) for part in ("labelled", "eval")}


def labelled_subset(n_pool: int, n: int, seed: int) -> Tensor:
    """Indices of the ``n`` labelled pairs a seed uses (nested: the 100 are among the 300)."""
    if not 1 <= n <= n_pool:
        raise ValueError(f"n={n} labelled pairs is not valid; the labelled pool holds {n_pool}")
    return torch.randperm(n_pool, generator=torch.Generator().manual_seed(seed))[:n]


def task_deltas(pairs: dict[str, Tensor], task: str) -> np.ndarray:
    """A task's deltas in its own units (pairs store scaled deltas)."""
    return pairs["delta"][:, TASKS.index(task)].numpy() * DELTA_SCALE[task]


def images(pairs: dict[str, Tensor], which: str, idx: Tensor | None = None) -> Tensor:
    x = pairs[which] if idx is None else pairs[which][idx]
    return x.float() / 255


def verification_pairs(cfg: ComFaceConfig, seed: int = 303, split: str = "test") -> dict[str, Tensor]:
    """Verification pairs of held-out persons of ``cfg.data.test_world`` across a *large* change:
    the ``test`` persons for the claims, the ``val`` persons for choosing a setting.

    For each of ``n_verify`` persons: an age pair (age a and a + 30 years) and an expression
    pair (neutral and one emotion at full intensity), each photo with its own pose, light,
    background and glasses (the world's faces of two seeds). Impostors pair person i's first
    photo with person i+1's second photo. ``kind`` is 0 for age pairs, 1 for expression pairs.
    """
    if split not in ("val", "test"):
        raise ValueError(f"split={split!r} is not valid; verification pairs come from 'val' or 'test' persons")
    d = cfg.data
    w = world_of(d, "test")

    def make() -> dict[str, Tensor]:
        n = min(d.n_verify, len(w.identities.ids(split)))
        pa, extra = w.faces(n, split=split, seed=seed, expressions="neutral", n_persons=n).params(range(n))
        pb, _ = w.faces(n, split=split, seed=seed + 1, expressions="neutral", n_persons=n).params(range(n))
        g = torch.Generator().manual_seed(seed)
        age = 18 + 32 * torch.rand(n, generator=g)
        emotion = torch.randint(1, len(EMOTIONS), (n,), generator=g)
        age_a, age_b = pa.replace(age=age), pb.replace(age=age + 30, weight=pa.weight)
        expr_a, expr_b = pa.replace(age=age), pb.replace(age=age, weight=pa.weight, au=emotion_matrix()[emotion])
        a = torch.cat([w.render(age_a).cpu(), w.render(expr_a).cpu()])
        b = torch.cat([w.render(age_b).cpu(), w.render(expr_b).cpu()])
        person = extra["person"]
        return {"a": to_uint8(a), "b": to_uint8(b), "person": torch.cat([person, person]),
                "kind": torch.cat([torch.zeros(n), torch.ones(n)]).long()}

    return disk_cached("comface-verify", {"n_identities": d.n_identities, "n": d.n_verify, "seed": seed,
                                           "split": split, **world_key(w), "v": 2}, make)
