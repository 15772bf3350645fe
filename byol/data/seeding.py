"""Seeds as functions of (seed, keys): the order of an epoch and every random draw can be replayed."""

from __future__ import annotations

import torch


def seeded_generator(*keys: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator whose seed is a function of ``keys`` (e.g. seed, rank, step): reproducible streams."""
    seed = 0
    for k in keys:
        seed = (seed * 1_000_003 + int(k)) % (2**63 - 1)
    return torch.Generator(device=device).manual_seed(seed)


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(n, generator=seeded_generator(seed, epoch, 17))
