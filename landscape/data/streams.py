"""Seeded random streams: one independent ``torch.Generator`` per (seed, split) pair.

Every generator in :mod:`landscape.data` draws on the CPU in float64 and casts at the very end, so a
sample depends only on its seed and split, never on the device, dtype or thread count.  Splits get
independent streams by hashing the split name into the seed
(:func:`landscape.seeding.derive_seed`: ``blake2b``, 63 bits): the training set
(split ``"train"``), the in-distribution test set (``"id"``) and every OOD shift never share draws.
"""

from __future__ import annotations

import torch

from landscape.seeding import check_seed, derive_seed

__all__ = ["stream", "check_seed"]


def stream(seed: int, *names: str) -> torch.Generator:
    """A fresh CPU generator on the stream ``(seed, *names)``: seeded by
    :func:`landscape.seeding.derive_seed` of that path."""
    return torch.Generator().manual_seed(derive_seed(seed, *names))
