"""FMAE-IAT data: the endless pretraining stream ("Face9M by construction") and a BP4D-like AU set.

* :class:`FaceStream` is a step function ``step -> images``: every index is a **new person**
  (identity codes are a hash of the index, so identities never repeat and the stream has no
  end), with random AUs (half EMFACS emotion prototypes, half sparse independent AUs), age,
  weight, pose, lighting, both styles (clean and the target camera pipeline) and, when
  ``ict_fraction > 0``, the ICT-FaceKit backend, framed on the face as FMAE's aligned crops are
  (``framing``; see :mod:`facekit.synth.render`). Batch ``step`` is a pure function of
  ``(seed, step)``, so training resumes exactly and ``accelerate launch`` gives every process
  the same global batch to slice. With ``pool > 0`` (the ``cpu`` profile, where rendering a
  face costs more than a ViT step on it) the stream is its first ``pool`` items rendered once
  and cached, drawn at random with horizontal flips: a finite Face9M, revisited for epochs. It renders on the training device: at ``gpu`` that is the
  fused Triton renderer (``FACEKIT_KERNELS``), about two orders of magnitude faster than the
  ViT step needs, so rendering does not starve the GPU (``benchmarks/train_throughput.py``
  measures the share of time spent waiting for data). ``cpu`` streams about 10^5 images;
  ``gpu`` streams 9 x 10^6 (FMAE's Face9M size).
* :func:`au_set` is the fine-tuning set of one seed, drawn from the training world
  (``AUDataConfig.world``, ``facekit.synth.worlds``: the ICT-FaceKit backend where its assets
  are found, clean style as in BP4D's lab recordings, the world's pose range and AU
  intensities), rendered once and cached: subjects with **subject-specific AU propensities**
  (``expressions="propensity"``: identity predicts AU base rates, as in BP4D), a limited number
  of images each, a subject-independent 3-fold split, separate validation subjects for choosing
  the reversal scale, and held-out images of every subject for the identity probe. An AU
  occurs from FACS level B, as the world labels it; a trace is unknown (``known`` = 0), left out
  of the loss and of every score.

Both are framed on the inner face (``framing="face"``), as BP4D and DISFA pipelines align and
crop: in the head-and-shoulders framing an AU moves too few pixels to be learned at this size
(the measurement is in MODEL_CARD.md).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from facekit.config import get_device
from facekit.methods.common import as_float, render_pool
from facekit.methods.fmae_iat.config import AUDataConfig, StreamConfig
from facekit.synth.params import (
    FaceParams,
    au_index,
    emotion_matrix,
    identity_codes,
    sample_aus,
    sample_params,
)
from facekit.synth.render import render
from facekit.synth.rng import hash_uniform
from facekit.synth.style import get_style
from facekit.synth.worlds import World, WorldFaces, get_world, renderer_fingerprint

AU_WORLD = 5000  # world seed of the fine-tuning subjects (+ run seed); the stream uses its own
HELD_OUT = 10**12  # first stream item of FaceStream.held_out


class FaceStream:
    """``stream(step)`` -> ``batch_size x 3 x size x size`` images of never-seen persons."""

    def __init__(self, cfg: StreamConfig, size: int, batch_size: int, seed: int = 0,
                 device: str | torch.device | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} is not valid; pass an int >= 1")
        self.cfg, self.size, self.batch_size = cfg, size, batch_size
        self.seed = cfg.world_seed + seed
        self.device = get_device(device)
        self._pool: Tensor | None = None

    def params(self, indices: Tensor) -> tuple[FaceParams, Tensor, Tensor]:
        """Faces of stream items ``indices``, plus their style (1 = target) and backend (1 = ict)."""
        idx = torch.as_tensor(indices, dtype=torch.int64).reshape(-1)
        emo = hash_uniform(self.seed, idx, 301) < self.cfg.emotion_fraction
        which = (hash_uniform(self.seed, idx, 302) * (emotion_matrix().shape[0] - 1)).long() + 1
        proto = emotion_matrix()[which] * (0.3 + 0.7 * hash_uniform(self.seed, idx, 303))[:, None]
        au = torch.where(emo[:, None], proto, sample_aus(seed=self.seed, indices=idx, p_active=0.2))
        target = hash_uniform(self.seed, idx, 304) < self.cfg.target_fraction
        ict = hash_uniform(self.seed, idx, 305) < self.cfg.ict_fraction
        parts = []
        for style, m in (("clean", ~target), ("target", target)):
            parts.append(sample_params(seed=self.seed, indices=idx[m], identity=identity_codes(idx[m], self.seed),
                                       au=au[m], style=style, pose_scale=self.cfg.pose_scale))
        order = torch.cat([torch.nonzero(~target).ravel(), torch.nonzero(target).ravel()])
        params = FaceParams.cat(parts)[torch.argsort(order)]
        return params, target, ict

    def images(self, indices: Tensor) -> Tensor:
        params, target, ict = self.params(indices)
        params = params.to(self.device)
        out = torch.empty(len(params), 3, self.size, self.size, device=self.device)
        for style_flag, style in ((False, "clean"), (True, "target")):
            for ict_flag, backend in ((False, "procedural"), (True, "ict")):
                m = torch.nonzero((target == style_flag) & (ict == ict_flag)).ravel()
                if len(m):
                    out[m.to(self.device)] = render(params[m], self.size, style=get_style(style), backend=backend,
                                                        framing=self.cfg.framing)
        return out

    def __call__(self, step: int) -> Tensor:
        if self.cfg.pool == 0:
            return self.images(step * self.batch_size + torch.arange(self.batch_size))
        pool = self.pool()
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        x = as_float(pool[torch.randint(0, len(pool), (self.batch_size,), generator=gen)])
        flip = torch.rand(self.batch_size, generator=gen) < 0.5
        return torch.where(flip[:, None, None, None], x.flip(-1), x).to(self.device)

    def held_out(self, n: int) -> Tensor:
        """``n`` faces of this stream that pretraining never shows (items from 10^12 on: past any
        pool and any number of steps), for reconstruction figures."""
        return self.images(HELD_OUT + torch.arange(n))

    def pool(self) -> Tensor:
        """The first ``cfg.pool`` stream items, rendered once and cached on disk (uint8); read
        once per stream."""
        if self._pool is None:
            key = {"stream": self.cfg, "size": self.size, "seed": self.seed, "renderer": renderer_fingerprint()}
            self._pool = render_pool("fmae_iat-stream", key, self.cfg.pool,
                                     lambda idx: {"image": self.images(idx)})["image"]
        return self._pool


def au_world(d: AUDataConfig, seed: int) -> World:
    """The world of one seed's AU subjects: ``d.world`` at this config's size and framing, with
    its own identities (world seed ``AU_WORLD + seed``), so seeds differ in their subjects."""
    return get_world(d.world, size=d.size, framing=d.framing, world_seed=AU_WORLD + seed)


def au_datasets(d: AUDataConfig, seed: int) -> dict[str, WorldFaces]:
    """The three datasets of a seed's AU world (their ``config()`` goes on the data card)."""
    world = au_world(d, seed)
    common = {"expressions": "propensity", "propensity_strength": d.propensity_strength}
    return {
        "train": world.faces(d.n_subjects * d.images_per_subject, split="train", n_persons=d.n_subjects, seed=11,
                             **common),
        "probe": world.faces(d.n_subjects * d.probe_images_per_subject, split="train", n_persons=d.n_subjects,
                             seed=12, **common),
        "val": world.faces(d.n_val_subjects * d.images_per_subject, split="val", n_persons=d.n_val_subjects, seed=13,
                           **common),
    }


def au_set(d: AUDataConfig, seed: int) -> dict[str, dict[str, Tensor]]:
    """``{"train", "probe", "val"}`` -> uint8 ``image``, 0/1 ``label`` (N x len(aus): the AU
    occurs, FACS level B or above), ``known`` (0 where the AU shows only a trace: neither a
    positive nor a negative, left out of losses and scores), ``subject`` (index within the set's
    subjects); ``train`` and ``probe`` also carry ``fold`` (subject mod n_folds). Rendered once
    per seed and cached on disk."""
    cols = torch.tensor([au_index(a) for a in d.aus])
    sets = au_datasets(d, seed)

    def rows(part: str) -> Callable[[Tensor], dict[str, Tensor]]:
        ds = sets[part]

        def chunk(idx: Tensor) -> dict[str, Tensor]:
            b = ds.batch(idx)
            out = {"image": b["image"], "label": b["au_occurs"][:, cols].cpu().to(torch.uint8),
                   "known": b["au_known"][:, cols].cpu().to(torch.uint8),
                   "subject": torch.searchsorted(ds.persons, b["person"].cpu())}  # 0..n_persons-1
            if part != "val":
                out["fold"] = out["subject"] % d.n_folds
            return out

        return chunk

    world = au_world(d, seed)
    key = {"data": d, "seed": seed, "world": world.config(), "renderer": renderer_fingerprint(), "v": 2}
    return {part: render_pool(f"fmae_iat-{part}", key, len(sets[part]), rows(part)) for part in ("train", "probe", "val")}


def fold_split(part: dict[str, Tensor], fold: int) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """(training subjects, test subjects) of one fold, training subjects renumbered 0..k-1 (the
    identity head's classes)."""
    test = part["fold"] == fold
    train = {k: v[~test] for k, v in part.items()}
    train["subject"] = torch.unique(train["subject"], return_inverse=True)[1]
    return train, {k: v[test] for k, v in part.items()}


__all__ = ["AU_WORLD", "FaceStream", "au_datasets", "au_set", "au_world", "fold_split"]
