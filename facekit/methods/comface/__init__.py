"""ComFace: inter-personal and intra-personal representations learned from synthetic faces.

Akamatsu et al., "ComFace: Facial Representation Learning with Synthetic Data for Comparing
Faces", WACV 2025 (arXiv 2405.16016). The idea: to compare two photos of one person (how
much older, heavier, more smiling is face B than face A?) a model needs two things that pull
in opposite directions, so ComFace learns them with two heads on one shared encoder:

* the **inter-personal** head maps every photo of a person to the same place whatever the
  change (supervised-contrastive over persons: two views of one person under different
  ages, weights or expressions are positives, other persons are negatives);
* the **intra-personal** head maps a face to an embedding whose *difference* between two
  photos of one person predicts the change between them (a linear regressor on
  ``g(b) - g(a)`` trained on the known deltas of synthetic pairs).

Both are trained on synthetic faces only, then transferred with a few labelled pairs:
frozen features, pair feature ``g(b) - g(a)``, one ridge regression per task.

Design choices, and where the paper is silent (the teaching version decides):

* Data: same-person pairs from the training worlds (:mod:`facekit.synth.worlds`), one factor
  changing (expression intensity, weight or age), pose and light jittered a little within a
  pair. ``DataConfig.world`` (``"default-mixed"``: ICT-FaceKit when its assets are found, half
  the faces in the photo-like target style) holds the pool ComFace and its baselines train on;
  ``DataConfig.test_world`` (``"default-target"``: the target style only, the stand-in for real
  photos) holds the labelled transfer pairs, their evaluation pairs and the verification pairs,
  all of persons no model trained on. Faces are 64 px in the ``"face"`` framing (the inner face,
  as aligned crops are): expression and age live inside it, and at 48 px in the head framing an
  emotion moved too few pixels to be learned (expression-change Spearman 0.02); the cheeks and
  jaw line that show weight stay in the window (MODEL_CARD.md has the figures). Photo b then
  gets another pair's background, clothing, pose and light
  (``DataConfig.new_scene``), as two real photos would: with the scene shared, the
  contrastive loss matched backdrops and never learned to recognise a person across pose and
  light (the measurement is in MODEL_CARD.md). Every pair carries the
  full 3-vector of deltas: the two factors that do not change have a delta of exactly 0,
  which the synthetic world knows, so the intra head learns to say "no age change" on an
  expression pair. A pool of pairs is rendered once per config, cached as uint8 under a key
  that holds the world, and reused across epochs with fresh augmentations (rendering is the
  cost on a CPU).
* Augmentation (plain torch; the paper's synthetic images are not re-styled): photometric
  only (colour, grey, blur, noise, flip), drawn independently for a and b, so the features
  tolerate camera effects like those of the target style; no crops, since a crop looks like
  a change of face width (weight).
* Loss: ``supcon(inter) + intra_weight * mse(regressor(g(b) - g(a)), delta / scale)``,
  deltas scaled to [-1, 1] per factor. ``intra_weight = 30`` was chosen on *validation*
  persons (``benchmarks/comface_loss_weight.py``, which reads change MAE and verification; the
  sweeps are in MODEL_CARD.md): at a weight of 1 the scaled MSE was drowned by the contrastive
  loss and the intra features were weak; at 100 it took the shared encoder from identity. The
  regressor has no bias, so "no change" maps to 0 and
  the prediction is antisymmetric in (a, b) by construction. No ordering loss and no
  curriculum from large to small steps.
* Encoder: the shared :class:`facekit.models.ConvEncoder`, the same for every baseline.
  ``cpu`` uses 64x64 faces, 1,000 steps of 32 pairs, sized so that ``facekit train comface``
  fits its share of the first-run budget (times in MODEL_CARD.md).
* Input framing: :class:`ComFace` takes aligned, head-framed photos by default (what the
  Analyzer passes) and cuts the face window out itself; the worlds' face-framed renders are
  passed with ``framing="face"``.

Baselines (same encoder, data and steps x batch): SimCLR on the same pool of images
(:func:`facekit.methods.comface.evaluate.train_simclr`), supervised from scratch on the labelled
pairs only, and raw pixels -> PCA -> ridge. The trained model loads through :func:`load`.

Files: ``config`` (profiles as data), ``data`` (pairs), ``model`` (network, :class:`ComFace`),
``train`` (the loss, :func:`comface_loss`), ``evaluate`` (transfer heads, verification,
baselines, :func:`run_seed`), ``viz`` (figures and the widget).
"""

from __future__ import annotations

from facekit.methods.base import Claim
from facekit.methods.comface.config import (
    DELTA_SCALE,
    METHOD,
    MIN_LABELLED,
    PROFILES,
    TASKS,
    TRAIN_HINT,
    ComFaceConfig,
    DataConfig,
    check_task,
    profile_config,
)
from facekit.methods.comface.data import (
    images,
    labelled_subset,
    task_deltas,
    training_pool,
    transfer_sets,
    verification_pairs,
    world_of,
)
from facekit.methods.comface.evaluate import (
    METRICS,
    ChangeHead,
    evaluate_head,
    orl_verification,
    pca_pair_features,
    run_seed,
    verification_auc,
)
from facekit.methods.comface.model import ComFace, ComFaceNet
from facekit.methods.comface.train import (
    cache_path,
    comface_loss,
    load,
    pool_sampler,
    train,
    train_and_load,
)
from facekit.synth.datasets import FACTOR_UNITS

Config = ComFaceConfig
NOTEBOOK = "notebooks/02_comface.ipynb"
N_CLAIM = 300  # the middle labelled-set size of the cpu profile, where C1 is judged
CLAIMS = (
    *(Claim(f"C1/{task}/{base}", f"{task} MAE with {N_CLAIM} labelled pairs: ComFace below {base}",
            f"comface/{task}/n{N_CLAIM}/mae", f"{base}/{task}/n{N_CLAIM}/mae", "lower")
      for task in TASKS for base in ("simclr", "pca")),
    Claim("C2", "verification ROC-AUC >= 0.95 (age +30 y and strong expression, held-out target-style persons)",
          "comface/verify/auc", 0.95, "higher"),
)

__all__ = [
    "METRICS",
    "CLAIMS",
    "DELTA_SCALE",
    "FACTOR_UNITS",
    "METHOD",
    "MIN_LABELLED",
    "NOTEBOOK",
    "PROFILES",
    "TASKS",
    "TRAIN_HINT",
    "ChangeHead",
    "ComFace",
    "ComFaceConfig",
    "ComFaceNet",
    "Config",
    "cache_path",
    "DataConfig",
    "check_task",
    "comface_loss",
    "evaluate_head",
    "images",
    "labelled_subset",
    "load",
    "orl_verification",
    "pca_pair_features",
    "pool_sampler",
    "profile_config",
    "run_seed",
    "task_deltas",
    "train",
    "train_and_load",
    "training_pool",
    "transfer_sets",
    "verification_auc",
    "verification_pairs",
    "world_of",
]
