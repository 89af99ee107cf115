"""Seeded random streams: one independent ``torch.Generator`` per (seed, split) pair.

Every generator in :mod:`landscape.data` draws on the CPU in float64 and casts at the very end, so a
sample depends only on its seed and split, never on the device, dtype or thread count.  Splits get
independent streams by hashing the split name into the seed (``blake2b``, 63 bits): the training set
(split ``"train"``), the in-distribution test set (``"id"``) and every OOD shift never share draws.
"""

from __future__ import annotations

import hashlib

import torch

from landscape.errors import check

__all__ = ["stream_seed", "stream", "check_seed"]


def check_seed(seed: object, name: str = "seed") -> int:
    """Return ``seed`` as an int, or raise ``ValueError`` unless it is an integer ``>= 0``."""
    ok = isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0
    check(ok, f"{name}={seed!r}: expected an integer >= 0")
    return int(seed)  # type: ignore[arg-type]


def stream_seed(seed: int, *names: str) -> int:
    """A 63-bit seed derived from ``seed`` and a path of names, e.g. ``stream_seed(0, "id", "noise")``."""
    seed = check_seed(seed)
    key = ":".join([str(seed), *names]).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") >> 1


def stream(seed: int, *names: str) -> torch.Generator:
    """A fresh CPU generator on the stream ``(seed, *names)``."""
    return torch.Generator().manual_seed(stream_seed(seed, *names))
