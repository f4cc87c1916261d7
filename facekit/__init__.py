"""facekit: synthetic faces with exact ground truth, for learning how models separate
who a face belongs to from how it changes."""

from facekit._version import __version__
from facekit.synth.params import AU_NAMES, EMOTIONS, FaceParams
from facekit.synth.render import render

__all__ = ["AU_NAMES", "EMOTIONS", "Analyzer", "FaceParams", "render", "__version__"]


def __getattr__(name: str) -> object:
    # The Analyzer pulls in pandas and OpenCV; import it only when asked for.
    if name == "Analyzer":
        from facekit.analyze import Analyzer

        return Analyzer
    raise AttributeError(f"module 'facekit' has no attribute {name!r}")
