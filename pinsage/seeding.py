"""Deriving generator seeds: every random choice flows from the config's seed.

A derived seed is a function of the run seed and the place it is used (a batch step, a
range of nodes), so a piece of random work gives the same result wherever it runs.
"""

from __future__ import annotations

import torch

__all__ = ["derive_seed", "generator_for"]

# splitmix64's constants: consecutive inputs give unrelated outputs.
_GOLDEN = 0x9E3779B97F4A7C15
_MIX1, _MIX2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
_MASK = 2**64 - 1


def derive_seed(*parts: int) -> int:
    """Mix integers into one 63-bit seed (splitmix64 over the parts in order)."""
    x = 0
    for part in parts:
        x = (x + _GOLDEN + part) & _MASK
        x = ((x ^ (x >> 30)) * _MIX1) & _MASK
        x = ((x ^ (x >> 27)) * _MIX2) & _MASK
        x ^= x >> 31
    return x >> 1


def generator_for(*parts: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator seeded with ``derive_seed(*parts)``."""
    return torch.Generator(device=device).manual_seed(derive_seed(*parts))
