"""Statistical tier: Hutchinson and Hutch++ cover the true trace within ±3 standard errors."""

import json

import numpy as np
import pytest
import torch
from tiny_models import make_batch, make_model, spd_with_spectrum

from landscape.curvature.operators import dense_matrix, make_iterate_hvp
from landscape.curvature.trace import estimate_trace, hutchinson, hutchpp, hutchpp_with_square

N = 100
# deliberately non-diagonal, a few dominant eigenvalues, an indefinite bulk
A = spd_with_spectrum(
    np.concatenate([np.linspace(20, 5, 8), np.random.default_rng(1).uniform(-0.5, 1.5, N - 8)]), seed=2
)
TRUE = float(torch.trace(A))


def mm(V):
    return V @ A


@pytest.mark.parametrize(
    "estimator,kw",
    [
        (hutchinson, dict(max_matvecs=30)),
        (hutchpp, dict(max_matvecs=60)),
        (hutchinson, dict(max_matvecs=3000, rtol=0.03)),
        (hutchpp, dict(max_matvecs=3000, rtol=0.005, sketch=12)),
    ],
)
def test_coverage_of_three_standard_errors(estimator, kw):
    hits = 0
    for seed in range(100):
        e = estimator(lambda v: A @ v, N, matmat=mm, seed=seed, **kw)
        assert e.converged and e.stderr > 0
        hits += abs(e.estimate - TRUE) <= 3 * e.stderr
        if "rtol" in kw:
            assert e.rel_stderr <= kw["rtol"]
    assert hits >= 95, hits


def test_hutchpp_beats_hutchinson_on_a_low_rank_dominated_matrix():
    se_h = np.mean(
        [hutchinson(lambda v: A @ v, N, matmat=mm, max_matvecs=60, seed=s).stderr for s in range(20)]
    )
    se_pp = np.mean(
        [hutchpp(lambda v: A @ v, N, matmat=mm, max_matvecs=60, seed=s).stderr for s in range(20)]
    )
    assert se_pp < 0.5 * se_h


def test_budget_and_flags():
    with pytest.warns(RuntimeWarning, match="did not converge"):
        e = hutchinson(lambda v: A @ v, N, matmat=mm, max_matvecs=20, rtol=1e-4, seed=0)
    assert not e.converged and e.n_matvecs == 20 and "budget" in e.reason
    e = hutchpp(lambda v: A @ v, N, matmat=mm, max_matvecs=400, seed=0)  # sketch = dim: exact
    assert e.stderr == 0 and abs(e.estimate - TRUE) <= 1e-9 * abs(TRUE) and e.n_matvecs == 2 * N
    d = e.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["seed"] == 0 and d["dtype"] == "float64" and d["n_matvecs"] == 200
    with pytest.raises(ValueError, match="min_probes"):
        hutchinson(lambda v: A @ v, N, min_probes=1)
    with pytest.warns(RuntimeWarning, match="below what torch.float32"):
        hutchinson(lambda v: A.float() @ v, N, rtol=1e-7, max_matvecs=10, dtype=torch.float32)


def test_seeded_runs_are_reproducible_and_gaussian_probes_work():
    a = hutchinson(lambda v: A @ v, N, matmat=mm, max_matvecs=20, seed=5)
    b = hutchinson(lambda v: A @ v, N, max_matvecs=20, seed=5)  # matvec loop gives the same numbers
    assert a.estimate == pytest.approx(b.estimate, rel=1e-12)
    g = hutchinson(lambda v: A @ v, N, matmat=mm, max_matvecs=400, distribution="gaussian", seed=0)
    assert abs(g.estimate - TRUE) <= 4 * g.stderr


def test_trace_of_an_iterate_hessian():
    model = make_model("mlp-shared")
    x, y = make_batch(model, b=1)
    op = make_iterate_hvp(model, y, x, 1, backend="double_backward")
    true = float(torch.trace(dense_matrix(op)))
    e = estimate_trace(op, method="hutchpp", max_matvecs=24, sketch=12, seed=0)  # sketch = dim: exact
    assert abs(e.estimate - true) <= 1e-10 * abs(true)
    e = estimate_trace(op, method="hutchinson", max_matvecs=200, seed=0)
    assert abs(e.estimate - true) <= 3 * e.stderr


def test_hutchpp_square_from_the_traces_products_is_unbiased_for_the_frobenius_norm():
    """||H||_F^2 = ||HQ||_F^2 + E||H(I-QQ^T)g||^2 (sketch smaller than dim): the mean over 200 seeds lies within
    4 of its standard errors of the dense value, and each run's own stderr matches the spread over seeds."""
    g = torch.Generator().manual_seed(1)
    n = 40
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    H = (Q * torch.linspace(-3.0, 5.0, n, dtype=torch.float64)) @ Q.T  # indefinite
    exact = float((H * H).sum())
    runs = [hutchpp_with_square(lambda v: H @ v, n, max_matvecs=30, seed=s) for s in range(200)]
    est = np.array([sq.estimate for _, sq in runs])
    assert all(sq.n_matvecs == 0 and tr.n_matvecs == 30 for tr, sq in runs)
    assert abs(est.mean() - exact) < 4 * est.std(ddof=1) / np.sqrt(len(est))
    assert 0.7 < np.mean([sq.stderr for _, sq in runs]) / est.std(ddof=1) < 1.4
    tr, sq = hutchpp_with_square(lambda v: H @ v, n, max_matvecs=120, seed=0)  # sketch = dim: both exact
    assert sq.stderr == 0 and abs(sq.estimate - exact) < 1e-9 * exact
    assert (
        hutchpp(lambda v: H @ v, n, max_matvecs=30, seed=3).estimate
        == hutchpp_with_square(lambda v: H @ v, n, max_matvecs=30, seed=3, square=False)[0].estimate
    )
