r"""The one statistics module: every interval, test and verdict rule of the package lives here.

Three kinds of uncertainty, never mixed up (each :class:`Interval` says which one it is in ``kind``):

* ``paired`` — paired differences on the same test samples, with training held fixed: a t interval over
  the samples (:func:`paired_interval`), or Fieller's interval for a ratio of paired means
  (:func:`ratio_interval`).  It says how sure we are *about these checkpoints*, nothing about the method.
* ``seeds`` — the spread over training seeds: a t interval with ``n − 1`` degrees of freedom over the
  per-seed values (:func:`seed_interval`).  Each per-seed value is an estimate (a mean over test samples,
  with its own Monte-Carlo error), so the seed-to-seed spread already contains the sampling and
  Monte-Carlo error of each seed's value: the interval covers the method's mean without a separate term.
  With one seed there is no interval.
* ``monte-carlo`` — the error of a stochastic estimate at fixed θ and samples (:func:`mc_ratio_interval`,
  delta method with normal quantiles: the Monte-Carlo averages are over hundreds of draws).

Verdict rules (:func:`verdict`) read an interval, never a point estimate.  At ``level = 0.95`` each rule
says "supported" (or "contradicted") wrongly at most 2.5 % of the time at the boundary of its
hypothesis, for normal per-seed values: the t interval is exact there.  ``tests/test_stats.py``
measures these rates in a seeded null simulation at 2, 3, 5 and 10 seeds, and :func:`power` /
:func:`min_detectable_effect` give the power the same rules have (``theory/claims.md`` tabulates it).

The curvature–error link is tested by :func:`seed_permutation_test`: checkpoints that share a seed are
one cluster, so the null distribution permutes whole seeds, never single checkpoints.  It is exact (its
false-verdict rate is at most its level by construction, whatever the dependence between the checkpoints
of one seed); with ``S`` seeds its smallest p-value is ``1/S!``, so 3 seeds can never decide it and the
verdict says "too few seeds".
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from landscape.errors import check
from landscape.io import from_json_array, from_json_float

__all__ = [
    "Interval",
    "LinkTest",
    "VERDICTS",
    "VERDICT_KINDS",
    "TOO_FEW_SEEDS",
    "t_quantile",
    "normal_quantile",
    "paired_interval",
    "seed_interval",
    "ratio_interval",
    "mc_ratio_interval",
    "verdict",
    "seed_permutation_test",
    "link_verdict",
    "power",
    "min_detectable_effect",
    "seeds_needed",
    "simulate_verdicts",
]

TOO_FEW_SEEDS = "too few seeds"
VERDICTS = ("supported", "contradicted", "inconclusive", TOO_FEW_SEEDS)
KINDS = ("paired", "seeds", "monte-carlo")


class _Record:
    """``to_dict`` / ``from_dict`` of the frozen result records below: a dict of the fields, and back, with each
    ``float`` field read through :func:`landscape.io.from_json_float` (a JSON file holds NaN as ``"nan"``)."""

    def to_dict(self) -> dict[str, Any]:
        """The record as a dict of its fields (inverse of :meth:`from_dict`)."""
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Any:
        """The record ``d`` holds (inverse of :meth:`to_dict`, also of its JSON); None for None."""
        if d is None:
            return None
        floats = {f.name for f in fields(cls) if f.type in ("float", "float | None")}  # type: ignore[arg-type]
        return cls(**{k: from_json_float(v) if k in floats and v is not None else v for k, v in d.items()})


@dataclass(frozen=True)
class Interval(_Record):
    """A point estimate and a two-sided interval at ``level``.

    ``kind`` is the kind of uncertainty (``'paired'``, ``'seeds'`` or ``'monte-carlo'``, see the module
    docstring), ``over`` says over what in words, ``n`` how many values, ``method`` how it was formed.
    """

    estimate: float
    low: float
    high: float
    level: float
    over: str
    n: int
    method: str
    kind: str = ""

    @property
    def bounded(self) -> bool:
        """Whether both ends are finite."""
        return math.isfinite(self.low) and math.isfinite(self.high)

    def __str__(self) -> str:
        """``estimate [low, high]``, to four significant digits."""
        return f"{self.estimate:.4g} [{self.low:.4g}, {self.high:.4g}]"


@functools.lru_cache(maxsize=256)
def t_quantile(level: float, df: int) -> float:
    """The two-sided ``level`` quantile of Student's t with ``df`` degrees of freedom."""
    from scipy import stats

    return float(stats.t.ppf(0.5 + level / 2, df))


@functools.lru_cache(maxsize=16)
def normal_quantile(level: float) -> float:
    """The two-sided ``level`` quantile of the standard normal."""
    from scipy import stats

    return float(stats.norm.ppf(0.5 + level / 2))


def _values(values: Sequence[float]) -> np.ndarray:
    """Per-seed values as floats (a missing or non-finite value as JSON holds it reads as NaN or ±Inf)."""
    return from_json_array(list(values)).ravel()


def _t_mean(a: np.ndarray, level: float, over: str, kind: str, method: str) -> Interval | None:
    """None for fewer than two values, or when any is not finite (a NaN is never averaged away)."""
    if a.size < 2 or not np.all(np.isfinite(a)):
        return None
    m, se = float(a.mean()), float(a.std(ddof=1) / math.sqrt(a.size))
    h = t_quantile(level, a.size - 1) * se
    return Interval(m, m - h, m + h, level, over, int(a.size), method, kind)


def paired_interval(
    diffs: Sequence[float], level: float = 0.95, *, over: str = "test samples"
) -> Interval | None:
    """t interval of the mean of paired per-sample differences (kind ``paired``; None for fewer than 2 or
    with a non-finite value)."""
    return _t_mean(_values(diffs), level, over, "paired", "t")


def seed_interval(values: Sequence[float], level: float = 0.95, *, over: str = "seeds") -> Interval | None:
    """t interval (n − 1 df) of the mean of per-seed values (kind ``seeds``; None for one seed or with a
    non-finite value)."""
    a = _values(values)
    return _t_mean(a, level, over, "seeds", f"t ({a.size - 1} df)")


def ratio_interval(
    num: Sequence[float], den: Sequence[float], level: float = 0.95, *, over: str = "test samples"
) -> Interval | None:
    r"""Fieller's interval for :math:`\bar b/\bar a` from paired values (``num`` = b, ``den`` = a).

    Exact for bivariate-normal pairs: the set of r with :math:`(\bar b - r\bar a)^2 \le t^2\,
    \widehat{\mathrm{Var}}(b - ra)/n`.  When :math:`\bar a` is not clearly away from 0 the set is unbounded
    and the interval is ``[-inf, inf]``: a ratio whose denominator may be 0 has no finite interval (and
    is never drawn on a log axis).  Kind ``paired``.
    """
    b, a = _values(num), _values(den)
    check(a.size == b.size, f"ratio_interval: {b.size} numerators and {a.size} denominators: expected pairs")
    n = a.size
    if n < 2 or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return None
    ma, mb = float(a.mean()), float(b.mean())
    r = mb / ma if ma != 0 else math.nan
    t2 = t_quantile(level, n - 1) ** 2
    vaa, vbb = float(a.var(ddof=1)) / n, float(b.var(ddof=1)) / n
    vab = float(np.cov(a, b, ddof=1)[0, 1]) / n
    qa = ma * ma - t2 * vaa  # (ma^2 - t^2 vaa) r^2 - 2 (ma mb - t^2 vab) r + (mb^2 - t^2 vbb) <= 0
    qb = ma * mb - t2 * vab
    qc = mb * mb - t2 * vbb
    disc = qb * qb - qa * qc
    if qa <= 0 or disc < 0:
        lo, hi = -math.inf, math.inf
    else:
        s = math.sqrt(disc)
        lo, hi = (qb - s) / qa, (qb + s) / qa
    return Interval(float(r), float(lo), float(hi), level, over, int(n), "Fieller (t)", "paired")


def mc_ratio_interval(
    num: float,
    num_se: float,
    den: float,
    den_se: float,
    level: float = 0.95,
    *,
    over: str = "Monte-Carlo draws",
    n: int = 1,
) -> Interval:
    """Delta-method interval of ``num / den`` from two independent Monte-Carlo estimates (kind ``monte-carlo``).

    Unbounded (``[-inf, inf]``) when the denominator is not clearly positive or the numerator is 0.
    """
    if not (den > 0 and math.isfinite(num) and math.isfinite(den)):
        return Interval(math.nan, -math.inf, math.inf, level, over, n, "delta method", "monte-carlo")
    r = num / den
    rel = math.sqrt((num_se / num) ** 2 + (den_se / den) ** 2) if num != 0 else math.inf
    h = normal_quantile(level) * abs(r) * rel
    lo, hi = (r - h, r + h) if math.isfinite(h) else (-math.inf, math.inf)
    return Interval(float(r), float(lo), float(hi), level, over, n, "delta method", "monte-carlo")


#: The hypotheses a verdict can judge (see :func:`verdict`).
VERDICT_KINDS = ("lower", "higher", "noninferior", "equal", "equivalent")


def verdict(
    iv: Interval | None,
    *,
    kind: str = "lower",
    margin: float = 0.0,
    target: float = 1.0,
    n_seeds: int | None = None,
) -> str:
    """``supported`` / ``contradicted`` / ``inconclusive`` from an interval, never from its point estimate.

    ``kind='lower'``: the hypothesis "Δ < 0" (supported if the interval lies below 0, contradicted if above);
    ``'higher'``: "Δ > 0"; ``'noninferior'``: "Δ > −margin" (supported if the interval lies above −margin,
    contradicted if below it); ``'equal'``: ``|Δ − target| ≤ margin·target`` (supported if the interval lies
    inside the band, contradicted if its ``1 − (1 − level)/2`` widening lies outside it, so that the two ways
    of being wrongly "outside" add up to ``(1 − level)/2``); ``'equivalent'``: ``|Δ| ≤ margin``, the same rule
    with the band [−margin, margin] (two one-sided tests at (1 − level)/2 each).  An interval that overlaps the boundary is
    inconclusive, and so is a missing or unbounded one.  ``n_seeds`` < 2 (a claim about a training method
    judged with one seed) gives ``'too few seeds'`` whatever the interval.
    """
    if kind not in VERDICT_KINDS:
        raise ValueError(f"kind={kind!r}: expected one of {VERDICT_KINDS}")
    if n_seeds is not None and n_seeds < 2:
        return TOO_FEW_SEEDS
    if iv is None or not iv.bounded:
        return "inconclusive"
    lo, hi = iv.low, iv.high
    if kind == "lower":
        return "supported" if hi < 0 else "contradicted" if lo > 0 else "inconclusive"
    if kind == "higher":
        return "supported" if lo > 0 else "contradicted" if hi < 0 else "inconclusive"
    if kind == "noninferior":
        return "supported" if lo > -margin else "contradicted" if hi < -margin else "inconclusive"
    a, b = (-margin, margin) if kind == "equivalent" else (target * (1 - margin), target * (1 + margin))
    if lo >= a and hi <= b:
        return "supported"
    # "outside the band" can be wrong on either side: each side at half the rate, so both together stay at
    # (1 - level) / 2 (the interval widened to level 1 - (1 - level) / 2)
    w = _widened(iv, 1 - (1 - iv.level) / 2)
    return "contradicted" if (w.high < a or w.low > b) else "inconclusive"


def _widened(iv: Interval, level: float) -> Interval:
    """The same symmetric t (or normal) interval at another level."""
    if iv.n >= 2 and iv.kind in ("seeds", "paired") and iv.method.startswith("t"):
        f = t_quantile(level, iv.n - 1) / t_quantile(iv.level, iv.n - 1)
    else:
        f = normal_quantile(level) / normal_quantile(iv.level)
    c = iv.estimate
    return Interval(c, c - f * (c - iv.low), c + f * (iv.high - c), level, iv.over, iv.n, iv.method, iv.kind)


# -- the clustered link test ---------------------------------------------------------------------
@dataclass(frozen=True)
class LinkTest(_Record):
    """A seed-permutation test of the association between two quantities across checkpoints.

    ``statistic`` is the correlation of the two-way centred within-group ranks (see
    :func:`seed_permutation_test`); ``p_greater`` / ``p_less`` are the one-sided p-values (the identity
    permutation counted); ``exact`` whether all ``S!`` seed permutations were enumerated.
    """

    statistic: float | None  # None where undefined (a side without variation)
    p_greater: float
    p_less: float
    n_perm: int
    exact: bool
    n_seeds: int
    n_groups: int
    min_p: float
    level: float
    method: str = "seed-permutation test of the within-group, within-seed rank correlation"


def _ranks(v: np.ndarray) -> np.ndarray:
    from scipy import stats

    return stats.rankdata(v, axis=1)


def _centred_ranks(m: np.ndarray) -> np.ndarray:
    r = _ranks(m)  # (G, S): ranks within each group, across seeds
    return r - r.mean(axis=0, keepdims=True) - r.mean(axis=1, keepdims=True) + r.mean()


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel(), b.ravel()
    da, db = math.sqrt(float(a @ a)), math.sqrt(float(b @ b))
    return float(a @ b) / (da * db) if da > 0 and db > 0 else math.nan


def seed_permutation_test(
    x: np.ndarray, y: np.ndarray, *, level: float = 0.95, n_perm: int = 9999, seed: int = 0
) -> LinkTest:
    r"""Association of ``x`` and ``y`` (arrays ``(G, S)``: group × seed) with seeds as clusters.

    The statistic ranks each group's values across seeds (removing every group's level and scale),
    centres the ranks by seed too (removing what a seed does to all groups alike, e.g. its training data),
    and correlates the two.  Its null distribution permutes the seeds of ``y`` jointly across the groups,
    so the checkpoints of one seed move together: under "x and y independent" (seeds exchangeable) the
    test is exact at any number of seeds.  All ``S!`` permutations are used when ``S! <= n_perm + 1``,
    else ``n_perm`` random ones (seeded) plus the identity.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    check(
        x.shape == y.shape and x.ndim == 2,
        f"x {x.shape} and y {y.shape}: expected two (groups, seeds) arrays",
    )
    check(bool(np.all(np.isfinite(x)) and np.all(np.isfinite(y))), "seed_permutation_test: non-finite values")
    G, S = x.shape
    cx, cy = _centred_ranks(x), _centred_ranks(y)
    ry = _ranks(y)
    obs = _corr(cx, cy)
    exact = math.factorial(S) <= n_perm + 1
    if exact:
        perms = np.array(list(itertools.permutations(range(S))))
    else:
        rng = np.random.default_rng(seed)
        perms = np.vstack([np.arange(S)[None], np.array([rng.permutation(S) for _ in range(n_perm)])])
    # permuting the seeds of y permutes the columns of its within-group ranks; re-centre each
    stats_ = np.empty(len(perms))
    for i, p in enumerate(perms):
        r = ry[:, p]
        c = r - r.mean(axis=0, keepdims=True) - r.mean(axis=1, keepdims=True) + r.mean()
        stats_[i] = _corr(cx, c)
    if not math.isfinite(obs):
        p_g = p_l = 1.0
    else:
        tol = 1e-12
        p_g = float(np.mean(stats_ >= obs - tol))
        p_l = float(np.mean(stats_ <= obs + tol))
    return LinkTest(
        float(obs) if math.isfinite(obs) else None,
        p_g,
        p_l,
        int(len(perms)),
        bool(exact),
        int(S),
        int(G),
        1.0 / len(perms) if exact else 1.0 / (n_perm + 1),
        float(level),
    )


def link_verdict(test: LinkTest | None, *, kind: str = "higher") -> str:
    """The verdict of a one-sided link hypothesis (``'higher'``: positive association) at ``(1 − level)/2``
    per side, so it matches the two-sided intervals' error rates; ``'too few seeds'`` when even the most
    extreme permutation could not reach that level."""
    if test is None:
        return TOO_FEW_SEEDS
    alpha = (1 - test.level) / 2
    if test.n_groups < 1 or test.min_p > alpha:
        return TOO_FEW_SEEDS
    p_for, p_against = (test.p_greater, test.p_less) if kind == "higher" else (test.p_less, test.p_greater)
    return "supported" if p_for <= alpha else "contradicted" if p_against <= alpha else "inconclusive"


# -- power ----------------------------------------------------------------------------------------
def power(effect: float, sd: float, n: int, level: float = 0.95) -> float:
    r"""Probability that a seed-level t interval at ``level`` over ``n`` seeds excludes 0 on the side of
    ``effect`` (a one-directional verdict), when the per-seed values are normal with mean ``effect`` and
    standard deviation ``sd``: :math:`P(T_{n-1,\delta\sqrt n/s} > t_{n-1})`, noncentral t."""
    from scipy import stats

    if n < 2 or sd <= 0:
        return math.nan
    return float(stats.nct.sf(t_quantile(level, n - 1), n - 1, abs(effect) * math.sqrt(n) / sd))


def min_detectable_effect(sd: float, n: int, level: float = 0.95, target_power: float = 0.8) -> float:
    """The smallest ``|mean|`` that ``n`` seeds detect with probability ``target_power`` (same units as ``sd``)."""
    from scipy.optimize import brentq

    if n < 2 or not (sd > 0 and math.isfinite(sd)):
        return math.nan
    return float(brentq(lambda d: power(d, sd, n, level) - target_power, 1e-12 * sd, 100 * sd))


def seeds_needed(
    effect: float, sd: float, level: float = 0.95, target_power: float = 0.8, n_max: int = 1000
) -> int | None:
    """The fewest seeds whose t interval detects ``effect`` with probability ``target_power`` (None above ``n_max``)."""
    if not (sd > 0 and math.isfinite(sd)) or effect == 0 or not math.isfinite(effect):
        return None
    for n in range(2, n_max + 1):
        if power(effect, sd, n, level) >= target_power:
            return n
    return None


def simulate_verdicts(
    mean: float,
    n_seeds: int,
    *,
    kind: str,
    margin: float = 0.0,
    target: float = 1.0,
    sd: float = 1.0,
    law: str = "normal",
    draws: int = 4000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """How often each verdict comes out of :func:`seed_interval` + :func:`verdict` when the per-seed values are
    drawn from ``law`` (``'normal'`` or the heavier-tailed ``'laplace'``) with ``mean`` and ``sd``: a seeded
    simulation of the rule's error rate (``mean`` on a boundary of the hypothesis) or power (inside it)."""
    check(law in ("normal", "laplace"), f"law={law!r}: expected 'normal' or 'laplace'")
    rng = np.random.default_rng([int(seed), int(n_seeds)])
    counts = dict.fromkeys(VERDICTS, 0)
    for _ in range(draws):
        v = (
            rng.normal(mean, sd, n_seeds)
            if law == "normal"
            else rng.laplace(mean, sd / math.sqrt(2), n_seeds)
        )
        counts[
            verdict(seed_interval(v, level), kind=kind, margin=margin, target=target, n_seeds=n_seeds)
        ] += 1
    return {k: c / draws for k, c in counts.items()}
