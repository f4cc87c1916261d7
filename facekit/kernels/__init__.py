"""Fused GPU kernels (Triton), each beside its plain-torch reference.

- ``contrastive``: tiled InfoNCE and supervised-contrastive losses (``info_nce``, ``supcon``).
- ``render``: the procedural face renderer as one kernel (``facekit.synth.render`` uses it on CUDA).
- ``dispatch``: which implementation runs (``FACEKIT_KERNELS=torch|triton``, ``use_backend``).

Nothing here imports Triton until a kernel module is imported, so ``dispatch`` stays cheap.
"""
