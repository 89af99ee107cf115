"""Adapters from other libraries' unrolled models to landscape's solver protocol.

Each adapter lives in its own module and imports its library lazily, so ``import landscape`` (and
``import landscape.adapters``) never needs the optional dependency:

* :mod:`landscape.adapters.deepinv` — deepinv's unfolded / DEQ models
  (``pip install 'landscape[deepinv]'``; see ``docs/DEEPINV.md``).
"""

from __future__ import annotations

from landscape.adapters import deepinv as _deepinv

__all__ = ["DeepinvSolver", "from_deepinv"]


def __getattr__(name: str):
    if name in __all__:
        return getattr(_deepinv, name)
    raise AttributeError(f"module 'landscape.adapters' has no attribute {name!r}")
