"""PluGeN4Faces' data: a pool of persons in several frames, and held-out test faces."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from facekit.methods.common import render_pool
from facekit.methods.plugen.config import (
    ATTRIBUTE_NAMES,
    ATTRIBUTES,
    GLASSES_RATE,
    N_ATTR,
    DataConfig,
    world_of,
)
from facekit.synth.params import N_AUS, FaceParams, au_index, sample_params
from facekit.synth.rng import hash_uniform
from facekit.synth.worlds import renderer_fingerprint


def apply_levels(base: FaceParams, levels: Tensor) -> FaceParams:
    """``base`` with the seven attributes set from ``levels`` (N x 7 in [0, 1]); other AUs off."""
    lv = levels.float().clamp(0, 1)
    au = torch.zeros(len(base), N_AUS)
    au[:, au_index("AU12")] = lv[:, 0]
    au[:, au_index("AU25")] = lv[:, 1]
    au[:, au_index("AU26")] = lv[:, 1]
    au[:, au_index("AU43")] = lv[:, 2]
    phys = {name: ATTRIBUTES[name][1] + (ATTRIBUTES[name][2] - ATTRIBUTES[name][1]) * lv[:, k]
            for k, name in enumerate(ATTRIBUTE_NAMES) if k >= 3}
    return base.replace(au=au, age=phys["age"], weight=phys["weight"], yaw=phys["yaw"],
                        glasses=(phys["glasses"] > 0.5).float())


def draw_levels(seed: int, idx: Tensor) -> Tensor:
    """Independent attribute levels per frame: uniform in [0, 1], glasses 0/1 (30 % on)."""
    u = torch.stack([hash_uniform(seed, idx, 300 + k) for k in range(N_ATTR)], 1)
    u[:, ATTRIBUTE_NAMES.index("glasses")] = (u[:, ATTRIBUTE_NAMES.index("glasses")] < GLASSES_RATE).float()
    return u


def _persons(d: DataConfig, split: str, n: int) -> Tensor:
    ids = world_of(d).identities.ids(split)
    if n > len(ids):
        raise ValueError(f"{n} {split} persons requested but the split has {len(ids)}; raise n_identities")
    return ids[:n]


def face_pool(d: DataConfig, new_scene: bool = False) -> dict[str, Tensor]:
    """The training faces: ``n_persons`` train persons x ``frames`` frames, person-major.

    Keys: ``image`` (uint8), ``levels`` (N x 7), ``person`` and ``code`` (identity code).
    One scene per person (light, background, clothing fixed) and attributes varying per frame;
    ``new_scene=True`` draws a new scene for every frame too (the scoring oracle's data, so it
    cannot recognise a person by the backdrop).
    """
    persons = _persons(d, "train", d.n_persons)
    person = persons.repeat_interleave(d.frames)
    world = world_of(d)
    codes = world.identities.codes(person)
    frame = torch.arange(len(person))
    scene = sample_params(seed=d.seed + 5 if new_scene else d.seed, indices=frame if new_scene else person,
                          identity=codes, pose_scale=0.0)
    levels = draw_levels(d.seed + 1, frame)
    params = apply_levels(scene, levels)

    def rows(idx: Tensor) -> dict[str, Tensor]:
        return {"image": world.render(params[idx]), "levels": levels[idx], "person": person[idx], "code": codes[idx]}

    key = {"data": d, "world": world.config(), "renderer": renderer_fingerprint(), "v": 2,
           **({"new_scene": True} if new_scene else {})}
    return render_pool("plugen-pool", key, len(person), rows, chunk=512)


def _test_persons(d: DataConfig, seed: int, split: str = "test") -> Tensor:
    ids = world_of(d).identities.ids(split)
    if d.n_test > len(ids):
        raise ValueError(f"n_test={d.n_test} but the {split} split has {len(ids)} persons; raise n_identities")
    return ids[torch.argsort(hash_uniform(d.seed + 1000 * seed, ids, 21))[:d.n_test]].sort().values


def test_params(d: DataConfig, seed: int = 0, split: str = "test") -> tuple[FaceParams, Tensor]:
    """``n_test`` held-out test persons drawn by ``seed``, one frontal face each (so facial-region
    masks apply), with random levels of every attribute but yaw (0 degrees, level 0.5).
    ``split="val"`` draws validation persons instead, for choosing settings."""
    persons = _test_persons(d, seed, split)
    codes = world_of(d).identities.codes(persons)
    s = d.seed + 1000 * seed
    scene = sample_params(seed=s + 11, indices=persons, identity=codes, pose_scale=0.0)
    levels = draw_levels(s + 12, torch.arange(len(persons)))
    levels[:, ATTRIBUTE_NAMES.index("yaw")] = 0.5
    return apply_levels(scene, levels).replace(pitch=0.0, roll=0.0), levels


def test_faces(d: DataConfig, seed: int = 0, split: str = "test") -> dict[str, Tensor]:
    """:func:`test_params` rendered in PluGeN's world (float images, levels, person, identity code)."""
    params, levels = test_params(d, seed, split)
    return {"image": world_of(d).render(params), "levels": levels, "person": _test_persons(d, seed, split),
            "code": params.identity}


def person_batches(pool_size: int, frames: int, persons: int, extra: Mapping[str, Tensor],
                    steps: int) -> Callable[[int], dict[str, Any]]:
    n_persons = pool_size // frames
    if not 1 <= persons <= n_persons:
        raise ValueError(f"a flow batch of {persons} persons (batch_size / frames) is not valid; the pool has "
                         f"{n_persons} persons of {frames} frames")

    def data(step: int) -> dict[str, Any]:
        who = torch.randperm(n_persons)[:persons]
        idx = (who[:, None] * frames + torch.arange(frames)).reshape(-1)
        return {**{k: v[idx] for k, v in extra.items()}, "frames": frames, "progress": step / steps}

    return data
