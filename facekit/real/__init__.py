"""Real photos: load anything, find the face, crop it like facekit's synthetic faces.

Loading needs only Pillow; detection and alignment need OpenCV, and the identity embedding
needs dlib (both in the ``real`` extra: ``pip install -e ".[real]"``).
"""

from facekit.real.align import MARGIN, FaceRecord, align_faces, crop_face
from facekit.real.detect import FaceBox, detect_faces, find_eyes
from facekit.real.identity import identity_embedding
from facekit.real.load import (
    STATUSES,
    LoadedImage,
    image_files,
    iter_images,
    load_array,
    load_file,
    load_images,
)
from facekit.real.orl import ORL_BOX, load_orl, orl_dir

__all__ = [
    "MARGIN", "ORL_BOX", "STATUSES", "FaceBox", "FaceRecord", "LoadedImage", "align_faces", "crop_face",
    "detect_faces", "find_eyes", "identity_embedding", "image_files", "iter_images", "load_array",
    "load_file", "load_images", "load_orl", "orl_dir",
]
