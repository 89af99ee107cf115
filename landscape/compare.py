r"""Paired comparisons of curvature between two analyses of the same test samples.

Two checkpoints analysed on the same samples (the same sample ids of the same split) give paired values
of every curvature scalar.  :func:`paired` compares them at one iterate: the ratio of means
:math:`\bar b / \bar a` (Fieller's interval) and the mean difference :math:`\overline{b - a}` (t interval),
both over the **test samples**, pairs kept together (:mod:`landscape.stats`, kind ``paired``).  This is the
uncertainty of the comparison *on these samples for these two checkpoints*; it says nothing about the
spread over training seeds (that is what ``landscape claims`` measures with several checkpoints per
strategy).  :func:`finding` turns the comparisons into a paragraph generated from the numbers alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from landscape.io import json_safe
from landscape.stats import paired_interval, ratio_interval

__all__ = ["PairedComparison", "paired", "compare_along_path", "finding", "INTERVAL"]

INTERVAL = (
    "95% paired intervals over the test samples (same sample ids): t for the difference, Fieller for "
    "the ratio (unbounded when the reference mean may be 0)"
)


@dataclass(frozen=True)
class PairedComparison:
    """``b`` against ``a`` for one scalar at one iterate, over ``n`` paired samples."""

    name: str
    k: int
    n: int
    mean_a: float
    mean_b: float
    ratio: float
    ratio_lo: float
    ratio_hi: float
    diff: float
    diff_lo: float
    diff_hi: float
    interval: str = INTERVAL

    def to_dict(self) -> dict[str, Any]:
        """The comparison as a JSON-safe dict (non-finite numbers as :func:`landscape.io.json_safe` writes them)."""
        return json_safe(asdict(self))


def paired(a: Any, b: Any, name: str, k: int) -> PairedComparison:
    """Compare scalar ``name`` at iterate ``k`` of two :class:`~landscape.curvature.IterateCurvature`.

    Only samples present in both are used (matched by sample id).  The ratio is reported only when
    both means are positive (NaN otherwise, e.g. for λ_min); the difference always.
    """
    va = {s.sample: s.scalars().get(name) for s in a.at(k)}
    vb = {s.sample: s.scalars().get(name) for s in b.at(k)}
    ids = sorted(i for i in va if i in vb and va[i] is not None and vb[i] is not None)
    if not ids:
        raise ValueError(f"no sample with {name!r} at k={k} in both results: expected the same sample ids")
    xa = np.asarray([va[i] for i in ids], dtype=np.float64)
    xb = np.asarray([vb[i] for i in ids], dtype=np.float64)
    n = len(ids)
    pos = xa.mean() > 0 and xb.mean() > 0
    ratio = float(xb.mean() / xa.mean()) if pos else math.nan
    riv = ratio_interval(xb, xa) if pos else None
    rlo, rhi = (riv.low, riv.high) if riv is not None else (math.nan, math.nan)
    div = paired_interval(xb - xa)
    dlo, dhi = (div.low, div.high) if div is not None else (math.nan, math.nan)
    return PairedComparison(
        name,
        int(k),
        n,
        float(xa.mean()),
        float(xb.mean()),
        ratio,
        rlo,
        rhi,
        float((xb - xa).mean()),
        dlo,
        dhi,
    )


def compare_along_path(a: Any, b: Any, name: str, **kw: Any) -> list[PairedComparison]:
    """:func:`paired` at every iterate both results have."""
    ks = [k for k in a.iterates if k in b.iterates]
    out = []
    for k in ks:
        try:
            out.append(paired(a, b, name, k, **kw))
        except ValueError:
            continue
    return out


_NAMES = {
    "trace": "tr H_k",
    "lambda_max": "λ_max(H_k)",
    "lambda_min": "λ_min(H_k)",
    "trace_sq": "‖H_k‖_F²",
    "abs_trace": "Σ|λ|(H_k)",
}


def _ci(lo: float, hi: float) -> str:
    return f"{lo:.3g}–{hi:.3g}" if math.isfinite(lo) and math.isfinite(hi) else "no interval"


def _verdict(c: PairedComparison) -> str:
    if not (math.isfinite(c.diff_lo) and math.isfinite(c.diff_hi)):
        return "undetermined (one sample)"
    if c.diff_hi < 0:
        return "lower"
    if c.diff_lo > 0:
        return "higher"
    return "not distinguishable"


def finding(
    labelled: Sequence[tuple[str, Any]],
    *,
    names: Sequence[str] = ("trace", "trace_sq", "abs_trace", "lambda_max", "lambda_min"),
) -> str:
    """A paragraph stating, from the numbers alone, how each result's curvature compares with the first's.

    For each quantity it reports the comparison at the first analysed iterate, where along the path the
    largest and the smallest ratio occur, and how many iterates have an interval that excludes no change.
    ``trace_sq`` (‖H_k‖_F²) and ``abs_trace`` (Σ|λ|) cannot cancel, unlike the trace of an indefinite H_k,
    so a small trace ratio that is mostly cancellation shows as a much larger ratio in them.
    """
    if len(labelled) < 2:
        if not labelled:
            return "No curvature was analysed."
        lab, res = labelled[0]
        k0 = res.iterates[0]
        s = res.summary(k0)
        parts = [f"{_NAMES.get(n, n)} = {s[n].mean:.3g}" for n in names if n in s]
        return (
            f"{lab} alone: at k = {k0}, " + ", ".join(parts) + f" (mean over {res.n_samples} samples). "
            "Give a second checkpoint for a paired comparison."
        )
    ref_lab, ref = labelled[0]
    out = []
    for lab, res in labelled[1:]:
        sent = []
        n_pairs = 0
        for name in names:
            comps = compare_along_path(ref, res, name)
            if not comps:
                continue
            first = comps[0]
            n_pairs = n_pairs or first.n
            lo_side = sum(1 for c in comps if _verdict(c) == "lower")
            hi_side = sum(1 for c in comps if _verdict(c) == "higher")
            txt = f"{_NAMES.get(name, name)} at k = {first.k} is {_verdict(first)}"
            if math.isfinite(first.ratio):
                txt += f": {first.ratio:.2f}× ({_ci(first.ratio_lo, first.ratio_hi)})"
            else:
                txt += (
                    f": {first.mean_b:.3g} vs {first.mean_a:.3g}, difference {first.diff:+.3g} "
                    f"({_ci(first.diff_lo, first.diff_hi)})"
                )
            finite = [c for c in comps if math.isfinite(c.ratio)]
            if len(finite) > 1:
                lo = min(finite, key=lambda c: c.ratio)
                hi = max(finite, key=lambda c: c.ratio)
                txt += f"; along the path the ratio runs from {lo.ratio:.2f}× (k = {lo.k}) to {hi.ratio:.2f}× (k = {hi.k})"
            txt += f"; lower at {lo_side} and higher at {hi_side} of {len(comps)} iterates"
            sent.append(txt)
        if sent:
            out.append(f"{lab} against {ref_lab} ({n_pairs} paired test samples): " + "; ".join(sent) + ".")
        else:
            out.append(f"{lab} and {ref_lab} share no analysed sample: no paired comparison.")
    out.append(f"Intervals: {INTERVAL}; they cover the test samples, not training seeds.")
    return " ".join(out)
