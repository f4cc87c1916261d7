"""The data of the generative-contrastive networks: expression sets with true neutrals, and the identity oracle's pairs."""

from __future__ import annotations

import torch
from torch import Tensor

from facekit.methods.common import render_pool
from facekit.methods.gencon.config import BIN_NAMES, ORACLE_FIRST_ID, GenConConfig
from facekit.synth.datasets import FaceDataset
from facekit.synth.params import EMOTIONS, emotion_matrix, identity_codes, sample_aus, sample_params
from facekit.synth.render import render
from facekit.synth.rng import hash_uniform


def expression_set(cfg: GenConConfig, split: str) -> dict[str, Tensor]:
    """Target-style faces of one split's persons with their true neutral counterparts.

    Keys: ``image`` and ``neutral`` (uint8, same pose, light and camera), ``emotion`` (index
    into ``EMOTIONS``), ``intensity`` (0 for neutral), ``bin`` (index into ``BIN_NAMES``, -1
    for neutral) and ``person``. ``train`` holds ``per_person`` images per training person,
    ``val`` and ``test`` ``n_test`` images. Rendered once and cached on disk.
    """
    d = cfg.data
    if split not in ("train", "val", "test"):
        raise ValueError(f"split={split!r} is not valid; choose 'train', 'val' or 'test'")
    ids = d.identities()
    n = d.per_person * len(ids.ids("train")) if split == "train" else d.n_test
    seed = {"train": 11, "val": 12, "test": 13}[split]

    ds = FaceDataset(n, split=split, identities=ids, seed=seed, size=d.size, style="target", expressions="neutral")
    lows, highs = torch.tensor([b[0] for b in d.bins]), torch.tensor([b[1] for b in d.bins])

    def rows(idx: Tensor) -> dict[str, Tensor]:
        p, extra = ds.params(idx)
        emotion = (hash_uniform(seed, idx, 301) * len(EMOTIONS)).long()
        b = (hash_uniform(seed, idx, 302) * len(BIN_NAMES)).long()
        intensity = lows[b] + (highs[b] - lows[b]) * hash_uniform(seed, idx, 303)
        intensity = torch.where(emotion == 0, torch.zeros(()), intensity)
        b = torch.where(emotion == 0, torch.full_like(b, -1), b)
        au = emotion_matrix()[emotion] * intensity[:, None]
        return {"image": ds.render_params(p.replace(au=au)), "neutral": ds.render_params(p), "emotion": emotion,
                "intensity": intensity, "bin": b, "person": extra["person"]}

    return render_pool(f"gencon-{split}", {"data": d, "split": split, "v": 1}, n, rows, images=("image", "neutral"))


def oracle_pairs(cfg: GenConConfig) -> dict[str, Tensor]:
    """Two target-style photos of each oracle person (ids from ``ORACLE_FIRST_ID``), each with
    its own random expression, pose and light: the identity oracle's training data."""
    d = cfg.data
    n = d.oracle_persons
    codes = identity_codes(ORACLE_FIRST_ID + torch.arange(n))

    def view(v: int, idx: Tensor) -> Tensor:
        e = (hash_uniform(31 + v, idx, 311) * len(EMOTIONS)).long()
        au = (emotion_matrix()[e] * hash_uniform(31 + v, idx, 312)[:, None]
              + 0.3 * sample_aus(seed=41 + v, indices=idx, p_active=0.1)).clamp(0, 1)
        return render(sample_params(seed=31 + v, indices=idx, identity=codes[idx], au=au, style="target"), d.size,
                      style="target")

    return render_pool("gencon-oracle", {"size": d.size, "n": n, "v": 1}, n,
                       lambda idx: {"a": view(0, idx), "b": view(1, idx), "person": idx}, images=("a", "b"))
