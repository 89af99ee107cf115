"""The per-sample quantities a claim compares, read from one checkpoint's measurements.

:func:`quantities` names each quantity as its claim is named and carries the claim's
:class:`~landscape.claims.registry.ClaimSpec`, so the verdicts never parse a name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from landscape.claims.registry import ClaimSpec, spec
from landscape.io import from_json_array, from_json_float


@dataclass(frozen=True)
class Quantity:
    """One per-sample quantity of one checkpoint, and the claim (``spec``) that compares it."""

    spec: ClaimSpec
    values: list[float]


def mean(v) -> float:
    """The mean of the values that are not ``None`` (NaN when there is none); a value as JSON holds it
    (``"nan"``) reads as a number (:func:`landscape.io.from_json_float`)."""
    a = np.asarray([from_json_float(x) for x in v if x is not None], dtype=np.float64)
    return float(a.mean()) if a.size else math.nan


def _sum_over_k(entry: dict[str, Any], K: int, name: str = "trace", f=None) -> list[float]:
    """Per sample: Σ over the analysed iterates 1 ≤ k ≤ K−1 (the θ-dependent ones) of ``f(name)``; NaN where
    one of them is missing (``None``: not computed)."""
    c = entry["curvature"]
    idx = [i for i, k in enumerate(c["iterates"]) if 1 <= k <= K - 1]
    if name not in c:
        return []
    rows = c[name]
    return [
        math.nan
        if any(row[i] is None for i in idx)
        else float(sum((f or float)(from_json_float(row[i])) for i in idx))
        for row in rows
    ]


def _floats(v: list[Any]) -> list[float]:
    """Per-sample numbers as the measurements hold them, in memory or read from JSON (``"nan"`` is NaN)."""
    return [from_json_float(x) for x in v]


def sum_trace(entry: dict[str, Any], K: int) -> list[float]:
    """Per sample: Σ tr H_k over the analysed iterates 1 ≤ k ≤ K−1 (the θ-dependent ones)."""
    return _sum_over_k(entry, K, "trace")


def _mean_over_k(entry, name, K) -> list[float]:
    c = entry["curvature"]
    idx = [i for i, k in enumerate(c["iterates"]) if 1 <= k <= K - 1]
    return [float(np.mean([from_json_float(row[i]) for i in idx])) for row in c[name]]


def _finite(v: list[float]) -> bool:
    return bool(v) and all(math.isfinite(x) for x in v)


def _flatness(q: dict[str, Quantity], split: str, e: dict[str, Any], K: int) -> None:
    """The curvature sums of one split into ``q`` (the sizes that cannot cancel only where all are finite)."""

    def add(key: str, values: list[float]) -> None:
        s = spec(key)
        q[s.name(split)] = Quantity(s, values)

    add("flatness.trace", sum_trace(e, K))
    fro = _sum_over_k(e, K, "trace_sq", lambda v: math.sqrt(max(float(v), 0.0)))
    if _finite(fro):  # sizes of H_k that cannot cancel
        add("flatness.frobenius", fro)
    ab = _sum_over_k(e, K, "abs_trace")
    if _finite(ab):
        add("flatness.abs_eigenvalues", ab)
    add("flatness.lambda_max", _mean_over_k(e, "lambda_max", K))


def quantities(m: dict[str, Any]) -> dict[str, Quantity]:
    """Per-sample quantities a claim compares, keyed by claim name (in the order the claims are listed)."""
    K = m["K"]
    q: dict[str, Quantity] = {}
    for split, e in m["splits"].items():
        if "curvature" in e:
            _flatness(q, split, e, K)
        s = spec("accuracy.id" if split == "id" else "accuracy.ood")
        q[s.name("id" if split == "id" else f"ood:{split}")] = Quantity(s, _floats(e["psnr"]))
    for split, e in m["splits"].items():  # ID, and every OOD split whose curvature covers 1..K
        if "noise_coordinates" in e:
            for key, field in (
                ("flatness.noise_coordinates", "noise_coordinates"),
                ("flatness.regularizer_jacobian", "regularizer_jacobian_fro2"),
            ):
                s = spec(key)
                q[s.name(split)] = Quantity(s, [float(from_json_array(r).sum()) for r in e[field]])
    idm = m["splits"]["id"]
    s = spec("robustness")
    q[s.name("id")] = Quantity(s, _floats(idm["robustness"]["sq_error"]))
    if "attack" in idm:
        s = spec("attack")
        q[s.name("id")] = Quantity(s, _floats(idm["attack"]["psnr"]))
    return q
