"""FMAE-IAT data: the endless pretraining stream ("Face9M by construction") and a BP4D-like AU set.

* :class:`FaceStream` is a step function ``step -> images``: every index is a **new person**
  (identity codes are a hash of the index, so identities never repeat and the stream has no
  end), with random AUs (half EMFACS emotion prototypes, half sparse independent AUs), age,
  weight, pose, lighting, both styles (clean and the target camera pipeline) and, when
  ``ict_fraction > 0``, the ICT-FaceKit backend, framed on the face as FMAE's aligned crops are
  (``framing``; see :mod:`facekit.synth.render`). Batch ``step`` is a pure function of
  ``(seed, step)``, so training resumes exactly and ``accelerate launch`` gives every process
  the same global batch to slice. It renders on the training device: at ``gpu`` that is the
  fused Triton renderer (``FACEKIT_KERNELS``), about two orders of magnitude faster than the
  ViT step needs, so rendering does not starve the GPU (``benchmarks/train_throughput.py``
  measures the share of time spent waiting for data). ``cpu`` streams about 10^5 images;
  ``gpu`` streams 9 x 10^6 (FMAE's Face9M size).
* :func:`au_set` is the fine-tuning world of one seed, rendered once and cached: subjects
  with **subject-specific AU propensities** (``FaceDataset(expressions="propensity")``:
  identity predicts AU base rates, as in BP4D), a limited number of images each, a
  subject-independent 3-fold split, separate validation subjects for choosing the reversal
  scale, and held-out images of every subject for the identity probe.

Both are framed on the inner face (``framing="face"``), as BP4D and DISFA pipelines align and
crop: in the head-and-shoulders framing an AU moves too few pixels to be learned at 48 pixels
(the measurement is in MODEL_CARD.md).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from facekit.config import get_device
from facekit.methods.common import render_pool
from facekit.methods.fmae_iat.config import AUDataConfig, StreamConfig
from facekit.synth.datasets import FaceDataset, IdentitySplit
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

AU_WORLD = 5000  # world seed of the fine-tuning subjects (+ run seed); the stream uses its own
AU_ACTIVE = 0.0  # an AU "occurs" when its intensity exceeds this (sampled intensities are 0 or 0.2-1)


class FaceStream:
    """``stream(step)`` -> ``batch_size x 3 x size x size`` images of never-seen persons."""

    def __init__(self, cfg: StreamConfig, size: int, batch_size: int, seed: int = 0,
                 device: str | torch.device | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} is not valid; pass an int >= 1")
        self.cfg, self.size, self.batch_size = cfg, size, batch_size
        self.seed = cfg.world_seed + seed
        self.device = get_device(device)

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
        return self.images(step * self.batch_size + torch.arange(self.batch_size))


def au_datasets(d: AUDataConfig, seed: int) -> dict[str, FaceDataset]:
    """The three datasets of a seed's AU world (their ``config()`` goes on the data card)."""
    world = IdentitySplit(4 * (d.n_subjects + d.n_val_subjects), world_seed=AU_WORLD + seed)
    common = {"identities": world, "size": d.size, "style": "clean", "pose_scale": d.pose_scale, "framing": d.framing,
              "expressions": "propensity", "propensity_strength": d.propensity_strength}
    return {
        "train": FaceDataset(d.n_subjects * d.images_per_subject, split="train", n_persons=d.n_subjects, seed=11,
                             **common),
        "probe": FaceDataset(d.n_subjects * d.probe_images_per_subject, split="train", n_persons=d.n_subjects,
                             seed=12, **common),
        "val": FaceDataset(d.n_val_subjects * d.images_per_subject, split="val", n_persons=d.n_val_subjects, seed=13,
                           **common),
    }


def au_set(d: AUDataConfig, seed: int) -> dict[str, dict[str, Tensor]]:
    """``{"train", "probe", "val"}`` -> uint8 ``image``, 0/1 ``label`` (N x len(aus)), ``subject``
    (index within the set's subjects); ``train`` and ``probe`` also carry ``fold`` (subject mod
    n_folds). Rendered once per seed and cached on disk."""
    cols = torch.tensor([au_index(a) for a in d.aus])
    sets = au_datasets(d, seed)

    def rows(part: str) -> Callable[[Tensor], dict[str, Tensor]]:
        ds = sets[part]

        def chunk(idx: Tensor) -> dict[str, Tensor]:
            b = ds.batch(idx)
            out = {"image": b["image"], "label": (b["au"][:, cols].cpu() > AU_ACTIVE).to(torch.uint8),
                   "subject": torch.searchsorted(ds.persons, b["person"].cpu())}  # 0..n_persons-1
            if part != "val":
                out["fold"] = out["subject"] % d.n_folds
            return out

        return chunk

    return {part: render_pool(f"fmae_iat-{part}", {"data": d, "seed": seed, "v": 1}, len(sets[part]), rows(part))
            for part in ("train", "probe", "val")}


def fold_split(part: dict[str, Tensor], fold: int) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """(training subjects, test subjects) of one fold, training subjects renumbered 0..k-1 (the
    identity head's classes)."""
    test = part["fold"] == fold
    train = {k: v[~test] for k, v in part.items()}
    train["subject"] = torch.unique(train["subject"], return_inverse=True)[1]
    return train, {k: v[test] for k, v in part.items()}


__all__ = ["AU_WORLD", "FaceStream", "au_datasets", "au_set", "fold_split"]
