"""PluGeN4Faces: identity-aware attribute editing with a flow plugged onto a latent space.

Suwała et al., "PluGeN4Faces: Decoupling face attributes from identity", WACV 2024
(arXiv 2309.12033). A conditional invertible flow maps each latent code ``z`` of a generator
to ``u = (u_attr, u_id)``: a few **attribute** dimensions held near their labels, and many
**identity** dimensions with an identity loss that pulls all codes of one person towards that
person's mean. Editing: encode, flow forward, set an attribute dimension, flow back, decode.

What facekit builds, and the choices made where the paper is silent or out of reach:

* **Latent space** (:class:`facekit.models.autoencoder.AutoEncoder`): a 128-d convolutional
  autoencoder trained on 32x32 faces of the training world, in place of StyleGAN (out of reach
  on 2 CPU cores). Real photos are embedded like e4e + optimisation: the encoder's code, then
  a few Adam steps on the reconstruction error.
  Like the paper's pretrained StyleGAN, the autoencoder is trained **once per profile**
  (seed 0) and shared by every seed and method; a seed varies what the paper's runs vary,
  the plugin (flow initialisation and batches), and the held-out test faces it is scored on.
  A linear head reads the seven levels from the code during training (``aux_weight`` 0.1):
  without it a 32-pixel reconstruction loss left smile and closed eyes out of the code, so no
  method could edit them.
* **Data** (:func:`face_pool`): drawn from the training world ``DataConfig.world``
  (:mod:`facekit.synth.worlds`; the ICT-FaceKit 3D face model when its assets are found, else
  the procedural renderer), at 32 px in the ``"face"`` framing: the face window is 0.55 of the
  head framing's width, so a mouth or an eye spans 1.8 times the pixels across at the same cost
  per training step, while glasses, yaw and weight stay in view (the oracle's readings, and
  why not 48 or 64 px, are in MODEL_CARD.md). ``n_persons`` train persons x ``frames`` frames, like the
  paper's many video frames of one person. A person keeps light, background and clothing
  across frames (one scene, as in a video); the seven attributes change from frame to frame,
  each drawn independently: smile = AU12, mouth open = AU25 + AU26, eyes closed = AU43, age,
  weight (BMI), yaw and glasses. Labels are *levels* in [0, 1] over the trained range
  (:data:`ATTRIBUTES`); the flow's attribute dimensions target ``2 * level - 1``.
* **Flow** (:class:`facekit.models.flows.RealNVP` on zuko): 10 affine couplings with BatchNorm
  between them, as in the official nflows code. Losses, as in the official code:

  - NLL only on the identity dimensions (standard normal prior) plus the log-determinant;
  - a Gaussian NLL on the attribute dimensions around their labels, switched on after
    ``attr_start`` of training (official code: late; here 25 %, since the whole run is a
    few thousand steps) with sigma shrinking geometrically from ``sigma_start`` to
    ``sigma_end`` (1.0 to 0.1), weight ``attr_weight`` = 10 (at 1 the attribute dimensions
    stayed about 0.27 from their targets and edits fell short; chosen on validation persons,
    MODEL_CARD.md);
  - the identity loss (squared distance of each frame's ``u_id`` to its person's mean, per
    dimension), weighted by training progress (the official code multiplies by the epoch):
    ``id_weight * step / steps`` with ``id_weight`` = 10 (chosen on validation persons: it
    moves more of each frame's attributes out of ``u_id``, so an edit of ``u_attr`` goes
    further; MODEL_CARD.md).

  A batch holds ``flow_train.batch_size / frames`` whole persons (all their frames), so the
  person mean exists.
* **Baselines**, same autoencoder, data and codes: (a) PluGeN, the same flow and schedule
  with ``id_weight = 0``; (b) InterFaceGAN-style linear directions: one scikit-learn ridge
  regression per attribute from ``z`` to the level; an edit moves ``z`` along ``w / |w|^2``
  until the regression reads the target. A convex fit on the shared codes, so it is the same
  for every seed (cached under seed 0).
* **Edit strength.** ``edit(images, smile=0.8)`` sets the smile *level* (0 = none, 1 = the
  strongest trained) and leaves the other attributes alone; a level outside [0, 1] is
  clipped with a warning. Every method moves from its own reading of the current level
  (the flow's attribute dimension, the ridge prediction) towards the target, so
  ``amount=0`` is no edit in every method and the comparison curves
  (:mod:`facekit.methods.plugen.evaluate`) scale ``amount`` from 0 to 1.

Files: ``config`` (attributes, profiles as data), ``data`` (face pools), ``model`` (flows,
:class:`PlugenEditor`), ``train`` (losses, :func:`flow_loss`), ``evaluate`` (the scoring oracle,
curves, matched success, :func:`run_seed`), ``viz`` (figures, the editor widget).
"""


from facekit.methods.base import Claim
from facekit.methods.plugen.config import (
    ATTRIBUTE_NAMES,
    ATTRIBUTES,
    EDIT_METHODS,
    GLASSES_RATE,
    METHOD,
    N_ATTR,
    PROFILES,
    TRAIN_HINT,
    DataConfig,
    PlugenConfig,
    levels_to_units,
    profile_config,
    to_target,
)
from facekit.methods.plugen.data import apply_levels, face_pool, test_faces, test_params
from facekit.methods.plugen.evaluate import METRICS, run_seed, run_seed_with_curves
from facekit.methods.plugen.model import LinearDirections, PlugenEditor, PlugenFlow, encode_all
from facekit.methods.plugen.train import (
    PlugenTrainResult,
    ae_loss,
    flow_loss,
    load,
    train_and_load,
    train_parts,
)

Config = PlugenConfig
NOTEBOOK = "notebooks/06_identity_aware_editing.ipynb"
P2_BOUND = 1e-4  # the flow's float64 round trip: max relative error
CLAIMS = (
    Claim("P1/plugen", "identity cosine at matched attribute success: PluGeN4Faces above PluGeN",
          "P1/plugen4faces/id_cos", "P1/plugen/id_cos", "higher"),
    Claim("P1/linear", "identity cosine at matched attribute success: PluGeN4Faces above linear directions",
          "P1/plugen4faces/id_cos", "P1/linear/id_cos", "higher"),
    Claim("P2", f"float64 round trip f^-1(f(z)) of the flow within {P2_BOUND:g} relative error",
          "P2/plugen4faces/f64/max", P2_BOUND, "lower"),
)

__all__ = [
    "METRICS",
    "ATTRIBUTES",
    "ATTRIBUTE_NAMES",
    "CLAIMS",
    "EDIT_METHODS",
    "GLASSES_RATE",
    "METHOD",
    "NOTEBOOK",
    "N_ATTR",
    "P2_BOUND",
    "PROFILES",
    "TRAIN_HINT",
    "Config",
    "DataConfig",
    "LinearDirections",
    "PlugenConfig",
    "PlugenEditor",
    "PlugenFlow",
    "PlugenTrainResult",
    "ae_loss",
    "apply_levels",
    "encode_all",
    "face_pool",
    "flow_loss",
    "levels_to_units",
    "load",
    "profile_config",
    "run_seed",
    "run_seed_with_curves",
    "test_faces",
    "test_params",
    "to_target",
    "train_and_load",
    "train_parts",
]
