"""FMAE-IAT: MAE pretraining on a large synthetic face stream, then Identity Adversarial Training.

Ning et al., "Representation Learning and Identity Adversarial Training for Facial Behavior
Understanding" (arXiv 2407.11243). AU detectors trained on a few dozen subjects learn *who*
as a shortcut for *what the face does*: in BP4D a subject's identity predicts their AU base
rates. FMAE-IAT answers with two steps:

1. **FMAE**: pretrain a ViT as a masked autoencoder (mask ratio 0.75, normalised-pixel loss)
   on a very large and diverse face corpus (Face9M). Here: :class:`~facekit.methods.fmae_iat.data.FaceStream`,
   a synthetic stream of new persons (at ``cpu`` its first 4,000 faces, rendered once and
   revisited; 9 x 10^6 streamed at ``gpu``).
2. **IAT**: fine-tune for multi-label AU detection (BCE) while the pooled feature also goes
   through a gradient-reversal layer to a **linear** identity head over the training subjects
   (BCE on a one-hot subject vector, as the official code). Loss = AU loss + identity loss;
   the reversal scale is chosen on validation subjects from {0.5, 1, 2} (the paper used 2, 1
   and 0.5 on BP4D, BP4D+ and DISFA).

Protocol (:func:`run_seed`): a BP4D-like set per seed drawn from the training world
(``fmae_iat.data.au_set``: ICT-FaceKit faces, clean style, AU occurrence from FACS level B,
traces left out), 3-fold subject-independent cross-validation (train on 80 subjects, test on 40
unseen ones; each subject is tested once and the test predictions of the folds are pooled), mean
F1 over 12 AUs at threshold 0.5 (primary) and at the per-AU best threshold (**optimistic**: it
uses test labels; the official code reports it), mean ROC-AUC, and an identity probe: logistic
regression on frozen pooled features of *held-out* images of fold 0's training subjects
(2-fold cross-validated), against chance 1 / n_subjects.

Teaching-scale choices (the paper is silent or its scale does not fit a 2-core CPU; what each
buys is measured in MODEL_CARD.md with ``benchmarks/fmae_backbones.py``):

* ViT-MAE from ``transformers`` at 64x64, width 128, depth 4, MLP ratio 2; decoder width 64,
  depth 2 (``facekit.models.vit_mae``). The paper uses ViT-Base/Large at 224. Faces are framed
  on the inner face (``framing="face"``), as aligned AU crops are.
* Tokens from a convolutional stem (Xiao et al. 2021) on an 8 x 8 grid, not ViT's linear patch
  projection: with a few thousand faces a ViT does not learn local filters from scratch, and
  patch 4 (256 tokens) costs about five times as much per step. MAE still masks tokens; the stem
  sees the whole image (``stem_masking=False``: greying the hidden patches out for it was no
  better).
* The heads read the tokens pooled onto a 4 x 4 grid (``readout="grid"``), not their mean: an AU
  is a change at a place, and the mean makes the encoder carry the place in its channels. The
  identity head reads the mean of the tokens (the paper's pooled feature): on the 2,048-d grid
  the reversed gradient overpowered the AU loss.
* Subjects: 120 (80 per training fold) x 40 images. BP4D has 41 subjects with thousands of
  frames each, but consecutive frames are near duplicates; at this scale more subjects with
  fewer images each is what lets a detector generalise to unseen ones.
* Pretraining 600 steps x 64 on the stream's first 4,000 faces (about 10 epochs, flips);
  AdamW, betas (0.9, 0.95), weight decay 0.05, cosine schedule (MAE's recipe). ICT faces cost
  more to render than a ViT step, so a pool revisited replaces the endless stream at ``cpu``.
  Every run seed pretrains its own MAE on its own stream; all of that seed's fine-tuning
  variants share it.
* Fine-tuning 500 steps x 32 images, the same for every variant; random horizontal flips (all
  rendered AUs are bilateral).
* The reversal scale is chosen once per seed with the linear head, by validation F1 of fold 0's
  models (train on fold 0's 80 subjects, score 24 validation subjects); the chosen fold-0
  model is reused, not retrained. The MLP ablation uses the same scale, so the head is the only
  difference. The final detector (:func:`train_and_load`, :func:`load`) is fold 0's
  MAE + IAT (linear) model at the chosen scale.

The claims table carries the always-present F1, the base-rate loss and the ROC-AUC so that a
reader can tell "predicts more positives" from "sees the AU". Two defects of earlier runs are
fixed: the faces were framed head-and-shoulders (a full AU12 moved few of the pixels), and the
ViT's position embeddings were zero (``facekit.models.vit_mae``).

Files: ``config`` (profiles as data, variants), ``data`` (the stream, the AU world), ``model``
(:class:`AUNet`, :class:`AUDetector`), ``train`` (pretraining, :func:`iat_loss`, the scale
search), ``evaluate`` (cross-validation, identity probe, :func:`run_seed`), ``viz`` (figures,
the AU meter); ``python -m facekit.methods.fmae_iat pretrain`` runs the pretraining alone.
"""

from facekit.methods.base import Claim, Derived
from facekit.methods.fmae_iat.config import (
    BP4D_AUS,
    INITS,
    MAE_METHOD,
    METHOD,
    PROFILES,
    TRAIN_HINT,
    VARIANT_NAMES,
    AUDataConfig,
    FinetuneConfig,
    FMAEConfig,
    StreamConfig,
    Variant,
    profile_config,
    variants,
)
from facekit.methods.fmae_iat.data import FaceStream, au_datasets, au_set, fold_split
from facekit.methods.fmae_iat.evaluate import METRICS, identity_probe, run_seed
from facekit.methods.fmae_iat.model import AUDetector, AUNet
from facekit.methods.fmae_iat.train import (
    choose_scale,
    finetune,
    iat_loss,
    load,
    load_mae,
    pretrain,
    selection_path,
    train_and_load,
)

Config = FMAEConfig
NOTEBOOK = "notebooks/03_mae_iat_au.ipynb"
# F4 reads "at least as good": non-inferiority with a margin of 1 F1 point (about the size of
# the paper's IAT gains), i.e. the interval of linear - MLP lies above -0.01.
F4_MARGIN = 0.01


def share_removed(before: float, after: float, chance: float) -> float:
    """The share of the identity probe's distance to chance that IAT removed (undefined, so F3
    cannot hold, when the probe without IAT is not above chance)."""
    return (before - after) / (before - chance) if before > chance else float("nan")


CLAIMS = (
    Claim("F1", "MAE-pretrained > same ViT from scratch (no IAT), mean F1", "mae/f1", "scratch/f1", "higher"),
    Claim("F2", "MAE + IAT (linear head, chosen scale) > MAE without IAT, mean F1", "iat_linear/f1", "mae/f1",
          "higher"),
    Claim("F3", "IAT removes >= 1/2 of the identity probe's distance to chance (share removed vs 0.5)",
          Derived("share of the identity probe's distance to chance removed by IAT",
                  ("mae/probe", "iat_linear/probe", "probe/chance"), share_removed), 0.5, "higher"),
    Claim("F4", f"linear identity head at least as good as MLP, mean F1 (non-inferiority, margin {F4_MARGIN})",
          "iat_linear/f1", "iat_mlp/f1", "higher", margin=-F4_MARGIN),
)
# The data cards facekit.cards writes for this method (``facekit cards``), from the cpu config.
DATA_CARDS = {"au_bp4d_like": (lambda: au_datasets(profile_config("cpu", 0).data, 0)["train"],
                               "the BP4D-like AU set of notebook 03 (seed 0), drawn from the training world: 120 subjects "
                               "with subject-specific AU propensities, 40 images each, 3 subject-independent folds; an "
                               "AU is present from FACS level B, a trace is unknown")}

__all__ = [
    "METRICS",
    "CLAIMS",
    "DATA_CARDS",
    "F4_MARGIN",
    "INITS",
    "MAE_METHOD",
    "METHOD",
    "NOTEBOOK",
    "PROFILES",
    "TRAIN_HINT",
    "VARIANT_NAMES",
    "BP4D_AUS",
    "AUDataConfig",
    "AUDetector",
    "AUNet",
    "Config",
    "FMAEConfig",
    "FaceStream",
    "FinetuneConfig",
    "StreamConfig",
    "Variant",
    "au_set",
    "choose_scale",
    "finetune",
    "fold_split",
    "iat_loss",
    "identity_probe",
    "load",
    "load_mae",
    "pretrain",
    "profile_config",
    "run_seed",
    "selection_path",
    "share_removed",
    "train_and_load",
    "variants",
]
