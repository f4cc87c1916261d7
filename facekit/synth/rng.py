"""Counter-based random numbers: a value is a pure function of (seed, index, salt).

Generators carry state, so the face drawn for item i would depend on which items were
drawn before it and on the device. Hashing the counter instead makes dataset item i the
same image every time, in any batch, on CPU or GPU.
"""

from __future__ import annotations

import math

import torch


def hash_uniform(seed: torch.Tensor | int, index: torch.Tensor, salt: int) -> torch.Tensor:
    """Uniform numbers in [0, 1) from an integer hash of (seed, index, salt)."""
    seed_t = torch.as_tensor(seed, dtype=torch.int64, device=index.device)
    x = (seed_t * 0x9E3779B1 + index.to(torch.int64) * 0x85EBCA77 + salt * 0xC2B2AE3D) & 0xFFFFFFFF
    for _ in range(2):
        x = ((x ^ (x >> 16)) * 0x45D9F3B) & 0xFFFFFFFF
    x = x ^ (x >> 16)
    return (x >> 8).to(torch.float32) / 16777216.0  # 24 bits: exact in float32, never 1.0


def hash_normal(seed: torch.Tensor | int, index: torch.Tensor, salt: int) -> torch.Tensor:
    """Standard normal numbers (Box-Muller on two hashed uniforms)."""
    u1 = hash_uniform(seed, index, 2 * salt + 1).clamp_min(1e-7)
    u2 = hash_uniform(seed, index, 2 * salt + 2)
    return torch.sqrt(-2 * torch.log(u1)) * torch.cos(2 * math.pi * u2)
