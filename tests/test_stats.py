"""The verdict rules' calibration, measured: seeded null simulations at 2, 3, 5 and 10 seeds.

Each rule must say "supported" (or "contradicted") wrongly at most at its nominal rate, (1 − level)/2 =
2.5 % per side, plus three simulation standard errors.  The percentile bootstrap over seeds that the claims
used before fails these tests (about 25 % false rejections at 3 seeds); the t interval passes them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from landscape import stats
from landscape.stats import TOO_FEW_SEEDS, Interval

LEVEL = 0.95
NOMINAL = (1 - LEVEL) / 2
DRAWS = 4000


def _bound(p: float, n: int) -> float:
    return p + 3 * math.sqrt(p * (1 - p) / n)


def _rates(mean, n_seeds: int, rule: dict, n: int = DRAWS, law: str = "normal") -> dict[str, float]:
    return stats.simulate_verdicts(mean, n_seeds, **rule, law=law, draws=n, level=LEVEL, seed=1000)


# (rule, the mean at the boundary where "supported" is false, the verdict that would be false there)
MARGIN = 0.3
CASES = [
    ({"kind": "lower"}, 0.0, "supported"),
    ({"kind": "lower"}, 0.0, "contradicted"),
    ({"kind": "higher"}, 0.0, "supported"),
    ({"kind": "noninferior", "margin": MARGIN}, -MARGIN, "supported"),
    ({"kind": "noninferior", "margin": MARGIN}, -MARGIN, "contradicted"),
    ({"kind": "equal", "margin": MARGIN, "target": 1.0}, 1 - MARGIN, "supported"),  # just outside the band
    ({"kind": "equal", "margin": MARGIN, "target": 1.0}, 1 + MARGIN, "supported"),
    ({"kind": "equal", "margin": MARGIN, "target": 1.0}, 1 - MARGIN, "contradicted"),  # just inside the band
    ({"kind": "equivalent", "margin": MARGIN}, -MARGIN, "supported"),  # |Δ| ≤ m: just outside, either side
    ({"kind": "equivalent", "margin": MARGIN}, MARGIN, "supported"),
    ({"kind": "equivalent", "margin": MARGIN}, MARGIN, "contradicted"),  # just inside
]


@pytest.mark.parametrize("n_seeds", [2, 3, 5, 10])
@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("law", ["normal", "laplace"])
def test_false_verdict_rate_at_the_boundary_is_at_most_nominal(n_seeds, case, law):
    rule, mean, wrong = CASES[case]
    r = _rates(mean, n_seeds, rule, law=law)
    assert r[wrong] <= _bound(NOMINAL, DRAWS), (rule, n_seeds, law, r)


def test_the_old_percentile_bootstrap_over_three_seeds_fails_the_same_simulation():
    """The reference point: the rule the claims used before over-rejects (so the test above can fail)."""
    rng = np.random.default_rng(7)
    bad = 0
    for _ in range(2000):
        a = rng.normal(0, 1, 3)
        boots = a[rng.integers(0, 3, size=(400, 3))].mean(1)
        lo, hi = np.quantile(boots, [0.025, 0.975])
        bad += hi < 0 or lo > 0
    assert bad / 2000 > 0.15


def test_power_matches_the_simulated_rate_of_correct_verdicts():
    """`power` (noncentral t) predicts how often the rule says 'supported' for a real effect."""
    for n, effect in ((3, 2.0), (5, 1.2), (10, 0.8)):
        r = _rates(-effect, n, {"kind": "lower"}, n=3000)
        p = stats.power(effect, 1.0, n, LEVEL)
        assert abs(r["supported"] - p) <= 3 * math.sqrt(p * (1 - p) / 3000) + 0.005, (n, effect, r, p)
        assert abs(stats.power(stats.min_detectable_effect(1.0, n), 1.0, n) - 0.8) < 1e-6


def test_one_seed_gives_no_verdict_on_the_method():
    iv = stats.paired_interval(np.random.default_rng(0).normal(-5, 0.1, 64))
    assert iv.high < 0  # the paired interval alone would say "supported"
    assert stats.verdict(iv, kind="lower", n_seeds=1) == TOO_FEW_SEEDS
    assert stats.seed_interval([1.0]) is None
    assert stats.verdict(None, kind="lower") == "inconclusive"


def test_intervals_say_which_kind_of_uncertainty_they_are():
    assert stats.paired_interval([1.0, 2.0, 3.0]).kind == "paired"
    assert stats.seed_interval([1.0, 2.0]).kind == "seeds"
    assert stats.mc_ratio_interval(1.0, 0.1, 1.0, 0.1).kind == "monte-carlo"
    assert stats.seed_interval([1.0, math.nan, 2.0]) is None  # a NaN is never averaged away
    iv = stats.seed_interval([1.0, 2.0, 3.0])
    assert iv == Interval.from_dict(iv.to_dict())
    t = 4.3026527297  # t_{0.975, 2} (tables)
    assert iv.high - iv.estimate == pytest.approx(t * 1.0 / math.sqrt(3), rel=1e-10)


def test_fieller_interval_covers_the_true_ratio():
    rng = np.random.default_rng(3)
    cover, n = 0, 2000
    for _ in range(n):
        a = rng.normal(4.0, 1.0, 6)
        b = 0.5 * a + rng.normal(0.0, 0.5, 6)  # true ratio of means: 0.5
        iv = stats.ratio_interval(b, a)
        cover += iv.low <= 0.5 <= iv.high
    assert cover / n >= LEVEL - 3 * math.sqrt(LEVEL * (1 - LEVEL) / n)
    # a denominator that may be 0 has no finite interval
    iv = stats.ratio_interval([1.0, 2.0, 1.5], [0.1, -0.2, 0.05])
    assert not iv.bounded


def _link_null(rng, G, S, shared=True):
    """Independent x and y, both with group effects (e.g. jitter lowers both) and seed effects."""
    ge = np.linspace(-3, 3, G)[:, None]
    sx = rng.normal(0, 2, (1, S)) if shared else 0
    sy = rng.normal(0, 2, (1, S)) if shared else 0
    return ge + sx + rng.normal(0, 1, (G, S)), 2 * ge + sy + rng.normal(0, 1, (G, S))


@pytest.mark.parametrize("S,draws,n_perm", [(5, 600, 9999), (10, 300, 199)])
def test_link_test_false_rate_under_the_null_is_at_most_nominal(S, draws, n_perm):
    rng = np.random.default_rng(11 + S)
    wrong = {"supported": 0, "contradicted": 0}
    naive = 0
    from scipy import stats as sps

    for i in range(draws):
        x, y = _link_null(rng, 4, S)
        v = stats.link_verdict(stats.seed_permutation_test(x, y, n_perm=n_perm, seed=i))
        if v in wrong:
            wrong[v] += 1
        naive += sps.spearmanr(x.ravel(), y.ravel()).pvalue < 0.05  # checkpoints as independent
    for v, c in wrong.items():
        assert c / draws <= _bound(NOMINAL, draws), (S, v, c)
    assert naive / draws > 0.5  # the group effect reads as a "link" when checkpoints are pooled


@pytest.mark.parametrize("S", [2, 3])
def test_link_test_with_too_few_seeds_says_so(S):
    x, y = _link_null(np.random.default_rng(0), 4, S)
    t = stats.seed_permutation_test(x, x + 0.01 * y)  # even a perfect link cannot be decided
    assert t.exact and t.min_p > NOMINAL
    assert stats.link_verdict(t) == TOO_FEW_SEEDS


def test_link_test_detects_a_real_within_group_link():
    rng = np.random.default_rng(5)
    hits = 0
    for i in range(100):
        x = rng.normal(0, 1, (4, 8))
        y = x + 0.5 * rng.normal(0, 1, (4, 8)) + np.linspace(0, 5, 4)[:, None]
        hits += stats.link_verdict(stats.seed_permutation_test(x, y, n_perm=999, seed=i)) == "supported"
    assert hits >= 90
