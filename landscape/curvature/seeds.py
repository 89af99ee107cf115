"""Seeds derived from identities, so a number never depends on how the work was split.

Every stochastic piece of the curvature analysis (Lanczos start vectors, trace probes, SLQ runs, slice
directions) draws from a generator seeded by :func:`derive_seed` with the run's seed and the identity
of what it measures — the iterate ``k`` and the sample's index *in its split*, never its position in a
batch.  Analysing samples 0..7 in one batch, in two, or on two workers gives the same numbers.
"""

from __future__ import annotations

import hashlib

__all__ = ["derive_seed"]


def derive_seed(seed: int, *keys: object) -> int:
    """A 63-bit seed from ``seed`` and a path of keys (ints or strings), by blake2b.

    Example:
        >>> derive_seed(0, "trace", 3, 17) == derive_seed(0, "trace", 3, 17)
        True
        >>> derive_seed(0, 3, 17) != derive_seed(0, 17, 3)
        True
    """
    if not (isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0):
        raise ValueError(f"seed={seed!r}: expected an integer >= 0")
    key = ":".join([str(seed), *(str(k) for k in keys)]).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") >> 1
