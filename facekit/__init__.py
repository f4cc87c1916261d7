"""facekit: synthetic faces with exact ground truth, for learning how models separate
who a face belongs to from how it changes."""

from facekit.synth.params import AU_NAMES, EMOTIONS, FaceParams
from facekit.synth.render import render

__version__ = "0.1.0"

__all__ = ["AU_NAMES", "EMOTIONS", "FaceParams", "render", "__version__"]
