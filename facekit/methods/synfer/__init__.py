"""SynFER: a diffusion model conditioned on text and Action Units makes labelled expression data.

He et al., "SynFER: Towards Boosting Facial Expression Recognition with Synthetic Data",
ICCV 2025 (arXiv 2410.09865). The paper fine-tunes a diffusion model on faces paired with
captions and AU labels (FEText), steers it with an AU adapter and with *semantic guidance*
by an expression classifier, relabels its output with a diffusion-feature *label
calibrator* (FERAnno), and trains expression recognisers on the synthetic data.

The setting here. Every face comes from one training world (``DataConfig.world``, the
``default-target`` world of :mod:`facekit.synth.worlds`: ICT-FaceKit when its assets are found,
target style, emotion prototypes at every intensity bin) at SynFER's size and framing. The
"real" domain is that world on persons of their own (``DataConfig.world_seed``; no other
notebook uses them): a large unlabelled pool (train persons), a small labelled set of 8
classes (neutral + 7 EMFACS emotions, ``n_labelled`` per class, drawn per seed from validation
persons) and a test set of test persons.

Teaching-scale choices (the paper is silent or its scale does not fit a 2-core CPU):

* **Pixel-space DDPM at 32x32** at ``cpu`` (64x64 at ``gpu``), a ~1.1M-parameter diffusers
  ``UNet2DConditionModel`` with attention only at the coarsest level (attention at 16x16 cost
  more than every convolution on a CPU). A latent model would need an autoencoder trained
  first; at 32x32 pixels are already cheap. DDIM with 10 steps at ``cpu``. The UNet predicts
  the clean image (``prediction_type="sample"``), not the noise: at the ``cpu`` budget a
  noise-predicting model still sampled coloured noise early in training, while a clean-image
  predictor gives coherent (if smooth) faces early; ``gpu`` can switch back to ``"epsilon"``.
  Faces are framed on the inner face (``DataConfig.framing``), as FER datasets are: with a
  looser crop and a shorter run the generator had not learned its conditioning (measured in
  MODEL_CARD.md). The UNet also gets the pooled text and AU tokens through its timestep
  embedding (``global_cond``, :class:`facekit.models.diffusion.ConditionalUNet`), and trains
  3,000 steps; :func:`facekit.methods.synfer.evaluate.conditioning_gain` measures how much it
  uses them.
* **Weak AU labels**: the pool's AUs come from the FMAE-IAT detector
  (:func:`facekit.methods.fmae_iat.load`) when one is cached and covers all 17 AUs the
  generator is conditioned on; otherwise from the ground truth, and every record says which
  and why (``au_labels``; the ``cpu`` detector covers the 12 BP4D AUs only). Age, weight, glasses and pose for the
  captions are the renderer's ground truth (attribute estimators are not part of this issue).
* **Text encoder**: a word tokenizer over the caption writer's vocabulary and a one-layer
  transformer trained with the UNet (:mod:`facekit.methods.synfer.data`), not CLIP.
* **One generator for every seed at ``cpu``** (``GeneratorConfig.seed = 0``): a diffusion
  model is the dominant cost (its training time is in MODEL_CARD.md), and the claims
  are about what the *synthetic data* does downstream. Seeds vary the labelled subset, the
  generation noise and prompts, and every classifier. At ``gpu`` each seed trains its own.
* **Label calibrator**: logistic regression on the UNet's pooled middle- and up-block
  features at timestep 200 (fixed noise, empty prompt), trained on the small labelled set;
  its probabilities are averaged with the expression classifier's. A generated image whose
  vote disagrees with its prompt's class is relabelled when the vote's confidence reaches
  ``calib_threshold``, else dropped.
* **Oracle** (an independent judge, trained once per profile on renders of the same world's
  backend, style, size and framing over persons of another world seed, ``oracle_world``):
  emotion accuracy, AU occurrence (when no FMAE detector is cached) and the feature space of
  the Fréchet distance (:data:`FD_SPACE`, named in every record). It trains on the world's mix
  of emotion prototypes and random-AU faces, with trace AUs left out of the AU loss, and reads
  with the audit CNN's layout (``Oracle(backbone="spatial")``: a 4 x 4 map, flattened), since an
  expression is a change at a place and a global pool loses where. The
  calibrator's label accuracy is measured against the oracle's reading of each image, since a
  generated image has no exact ground truth; its prompt class is the generator's intended label.
* **Downstream**: one :class:`facekit.models.ConvEncoder` classifier recipe (same steps,
  batch, augmentation) for (a) labelled only, (b) MoCo v3 pretraining on the 5x synthetic
  images then fine-tuning on the labelled set, (c) synthetic only at 1x (one image per
  labelled image, class-balanced) and 5x, (d) (c) after calibration.

Files: ``config`` (profiles as data), ``data`` (captions, tokenizer, the target-style sets),
``model`` (the diffusers pipeline, classifiers, MoCo v3), ``train`` (:func:`diffusion_loss`,
classifiers, oracle, MoCo), ``evaluate`` (calibrator, generation, quality, :func:`run_seed`),
``viz`` (figures, the explorer).
"""

from __future__ import annotations

from facekit.methods.base import Claim
from facekit.methods.synfer.config import (
    FD_SPACE,
    METHOD,
    MODES,
    N_CLASSES,
    PROFILES,
    TRAIN_HINT,
    ClassifierConfig,
    DataConfig,
    GeneratorConfig,
    SampleConfig,
    SynFERConfig,
    profile_config,
)
from facekit.methods.synfer.data import (
    CaptionWriter,
    WordTokenizer,
    expression_words,
    labelled_subset,
    pool_dataset,
    real_sets,
    requests,
)
from facekit.methods.synfer.evaluate import (
    METRICS,
    LabelCalibrator,
    accuracy,
    calibrate,
    conditioning_gain,
    generate,
    oracle_accuracy,
    quality,
    run_seed,
)
from facekit.methods.synfer.model import (
    ExpressionNet,
    MoCoNet,
    SynFERPipeline,
    make_pipeline,
    noise_scheduler,
    predict,
)
from facekit.methods.synfer.train import (
    au_detector,
    diffusion_loss,
    generator_path,
    load,
    moco_loss,
    train_and_load,
    train_classifier,
    train_generator,
    train_oracle,
    training_pool,
)

Config = SynFERConfig
NOTEBOOK = "notebooks/04_synfer.ipynb"
CLAIMS = (
    Claim("S1", "(b) MoCo v3 on 5x synthetic, fine-tuned, beats (a) labelled only: test accuracy", "down/b_moco",
          "down/a_labelled", "higher"),
    Claim("S2", "(c) synthetic only: 5x beats 1x: test accuracy", "down/c_5x", "down/c_1x", "higher"),
    Claim("S3", "(d) the calibrator improves (c) at 5x: test accuracy", "down/d_5x", "down/c_5x", "higher"),
    Claim("S4", "AU-conditioned generation has higher AU-control F1 than text-only", "quality/au_text/au_f1",
          "quality/text/au_f1", "higher"),
)
# The data cards facekit.cards writes for this method (``facekit cards``), from the cpu config.
DATA_CARDS = {"synfer_pool": (lambda: pool_dataset(profile_config("cpu", 0).data),
                              "SynFER's unlabelled target-style pool (notebook 04): emotion prototypes of the "
                              "training world at 32 px, the inner face, for the diffusion model")}

__all__ = [
    "METRICS",
    "CLAIMS",
    "DATA_CARDS",
    "FD_SPACE",
    "METHOD",
    "MODES",
    "NOTEBOOK",
    "N_CLASSES",
    "PROFILES",
    "TRAIN_HINT",
    "CaptionWriter",
    "ClassifierConfig",
    "Config",
    "DataConfig",
    "ExpressionNet",
    "GeneratorConfig",
    "LabelCalibrator",
    "MoCoNet",
    "SampleConfig",
    "SynFERConfig",
    "SynFERPipeline",
    "WordTokenizer",
    "accuracy",
    "au_detector",
    "calibrate",
    "conditioning_gain",
    "diffusion_loss",
    "expression_words",
    "generate",
    "generator_path",
    "labelled_subset",
    "load",
    "make_pipeline",
    "moco_loss",
    "noise_scheduler",
    "oracle_accuracy",
    "pool_dataset",
    "predict",
    "profile_config",
    "quality",
    "real_sets",
    "requests",
    "run_seed",
    "train_and_load",
    "train_classifier",
    "train_generator",
    "train_oracle",
    "training_pool",
]
