"""Every seed the package derives, in one place: three algorithms, three names.

A number never depends on how the work was split, so seeds derive from the *identity* of what they
seed (a run's stream, a sample's index in its split, an iterate), never from a position in a batch:

* :func:`derive_seed` (blake2b of a path of keys): the curvature analysis (Lanczos starts, trace probes,
  SLQ runs, slice directions) and the data streams (:mod:`landscape.data.streams`: sample i of a split is
  drawn from ``derive_seed(seed, split, "clean" | "noise", ...)``).
* :func:`training_seed` (numpy ``SeedSequence`` over the seed and the CRC-32 of a tag): a training run's
  streams (``init``, ``batches``, ``jitter``, ``strategy``, ``val``, per-rank tags) and the evaluation's
  perturbation conditions.
* :func:`monte_carlo_seed` (``SeedSequence`` over integer keys, 31 bits): the claims' Monte-Carlo draws
  (penalty check, regularizer probes, training-batch picks).

The three stay distinct because stored results depend on each (the shipped toy checkpoints were trained
with :func:`training_seed`'s streams; the claims results of record with :func:`monte_carlo_seed`'s).
"""

from __future__ import annotations

import hashlib
import zlib

import numpy as np

__all__ = ["derive_seed", "training_seed", "monte_carlo_seed", "check_seed"]


def check_seed(seed: object, name: str = "seed") -> int:
    """Return ``seed`` as an int, or raise ``ValueError`` unless it is an integer ``>= 0``."""
    if not (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0):
        raise ValueError(f"{name}={seed!r}: expected an integer >= 0")
    return int(seed)


def derive_seed(seed: int, *keys: object) -> int:
    """A 63-bit seed from ``seed`` and a path of keys (ints or strings), by blake2b.

    Example:
        >>> derive_seed(0, "trace", 3, 17) == derive_seed(0, "trace", 3, 17)
        True
        >>> derive_seed(0, 3, 17) != derive_seed(0, 17, 3)
        True
    """
    seed = check_seed(seed)
    key = ":".join([str(seed), *(str(k) for k in keys)]).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") >> 1


def training_seed(seed: int, tag: str) -> int:
    """A 63-bit seed for the stream ``tag`` of run ``seed`` (independent streams per tag).

    Example:
        >>> training_seed(0, "init") != training_seed(0, "batches")
        True
    """
    seed = int(seed)
    ss = np.random.SeedSequence([seed & 0xFFFFFFFF, seed >> 32, zlib.crc32(tag.encode())])
    lo, hi = (int(v) for v in ss.generate_state(2, dtype=np.uint32))
    return ((hi << 32) | lo) & ((1 << 63) - 1)


def monte_carlo_seed(seed: int, *keys: int) -> int:
    """A 31-bit seed for a Monte-Carlo stream keyed by integers (a sample id, a rule's index, a purpose).

    Example:
        >>> 0 <= monte_carlo_seed(0, 3, 7) < 2**31
        True
    """
    return int(np.random.SeedSequence([int(seed), *map(int, keys)]).generate_state(1)[0] & 0x7FFFFFFF)
