"""What the install looks like: versions, device, cache dir and assets (``facekit info``)."""

from __future__ import annotations

import importlib.metadata
import platform

import torch

from facekit.config import asset_dirs, cache_dir, get_device, get_profile, offline


def _version(pkg: str) -> str:
    try:
        return importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def info() -> dict[str, str]:
    """A dict of facts a bug report needs; ``facekit info`` prints it."""
    from facekit._version import __version__

    try:
        from facekit.synth.assets import find_ict_dir

        ict = str(find_ict_dir())
    except (ImportError, FileNotFoundError) as e:
        ict = f"not found ({e.__class__.__name__}); run `facekit assets fetch ict` or set FACEKIT_ASSETS"
    dev = get_device()
    return {
        "facekit": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": f"{dev}" + (f" ({torch.cuda.get_device_name()})" if dev.type == "cuda" else f" ({torch.get_num_threads()} threads)"),
        "profile": get_profile(),
        "cache dir": str(cache_dir()),
        "asset dirs": ", ".join(str(p) for p in asset_dirs()),
        "ICT assets": ict,
        "offline": str(offline()),
        **{pkg: _version(pkg) for pkg in ("accelerate", "diffusers", "transformers", "zuko", "papermill", "ipywidgets",
                                           "opencv-python-headless", "triton")},
    }
