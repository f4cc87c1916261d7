"""The data of the generative-contrastive networks, drawn from the training world: expression sets
with true neutrals, the identity oracle's pairs, and one fixed photo setup of a person."""

from __future__ import annotations

import torch
from torch import Tensor

from facekit.methods.common import render_pool
from facekit.methods.gencon.config import BIN_NAMES, DataConfig, GenConConfig, world_of
from facekit.synth.params import EMOTIONS, FaceParams, emotion_matrix
from facekit.synth.rng import hash_uniform
from facekit.synth.worlds import renderer_fingerprint

SPLIT_SEEDS = {"train": 11, "val": 12, "test": 13}


def expression_set(cfg: GenConConfig, split: str) -> dict[str, Tensor]:
    """Faces of one split's persons in gencon's world, with their true neutral counterparts.

    Keys: ``image`` and ``neutral`` (uint8, same person, pose, light and camera; the neutral is
    :meth:`World.neutral`), ``emotion`` (index into ``EMOTIONS``, uniform), ``intensity`` (0 for
    neutral), ``bin`` (index into ``BIN_NAMES``, -1 for neutral) and ``person``. The bins are
    drawn in equal shares, each intensity uniform within its bin, so every bin has as many
    faces to score. ``train`` holds ``per_person`` images per training person, ``val`` and
    ``test`` ``n_test`` images. Rendered once and cached on disk under the world's config.
    """
    d = cfg.data
    if split not in SPLIT_SEEDS:
        raise ValueError(f"split={split!r} is not valid; choose one of {list(SPLIT_SEEDS)}")
    w = world_of(d)
    seed = SPLIT_SEEDS[split]
    n = d.per_person * len(w.identities.ids("train")) if split == "train" else d.n_test
    ds = w.faces(n, split=split, seed=seed, expressions="neutral")
    lows, highs = torch.tensor([b[0] for b in d.bins]), torch.tensor([b[1] for b in d.bins])

    def rows(idx: Tensor) -> dict[str, Tensor]:
        p, extra = ds.params(idx)
        emotion = (hash_uniform(seed, idx, 301) * len(EMOTIONS)).long()
        b = (hash_uniform(seed, idx, 302) * len(BIN_NAMES)).long()
        intensity = lows[b] + (highs[b] - lows[b]) * hash_uniform(seed, idx, 303)
        intensity = torch.where(emotion == 0, torch.zeros(()), intensity)
        b = torch.where(emotion == 0, torch.full_like(b, -1), b)
        q = p.replace(au=emotion_matrix()[emotion] * intensity[:, None])
        return {"image": ds.render_params(q), "neutral": ds.render_params(w.neutral(q)), "emotion": emotion,
                "intensity": intensity, "bin": b, "person": extra["person"]}

    key = {"world": w.config(), "dataset": ds.config(), "bins": d.bins, "renderer": renderer_fingerprint(), "v": 2}
    return render_pool(f"gencon-{split}", key, n, rows, images=("image", "neutral"))


def oracle_pairs(cfg: GenConConfig) -> dict[str, Tensor]:
    """Pairs of training photos of one person (``a``, ``b``, ``person``), each photo with its own
    expression, pose and light: the identity oracle's training data. They come from the training
    split of :func:`expression_set` (every image paired with the person's next one), so the
    oracle renders nothing of its own and never sees a test person."""
    train = expression_set(cfg, "train")
    order = torch.argsort(train["person"], stable=True)
    person = train["person"][order]
    same = person[1:] == person[:-1]
    a, b = order[:-1][same], order[1:][same]
    return {"a": train["image"][a], "b": train["image"][b], "person": person[:-1][same]}


def person_photo(d: DataConfig, person: int) -> FaceParams:
    """One fixed photo setup (pose, light, camera, style) of a held-out ``person``, neutral:
    what the intensity sweep and the explorer vary the expression on."""
    w = world_of(d)
    ds = w.faces(len(w.identities.ids("test")), split="test", seed=99, expressions="neutral")
    where = torch.nonzero(ds.persons == person).ravel()
    if not len(where):
        raise ValueError(f"person={person} is not valid; pick a test person of the world, e.g. "
                         f"{ds.persons[:5].tolist()}")
    return ds.params(where[:1])[0]


def render_photo(d: DataConfig, params: FaceParams) -> Tensor:
    """Render params in gencon's world (its backend, framing, size and each face's style)."""
    return world_of(d).render(params)
