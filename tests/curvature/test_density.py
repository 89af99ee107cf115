"""SLQ: the density integrates to one, its mean is tr/n, its nodes lie in the spectrum."""

import json

import numpy as np
import torch
from tiny_models import spd_with_spectrum

from landscape.curvature.density import slq

N = 200
EIGS = 1.0 + np.random.default_rng(3).uniform(0, 1, N)
A = spd_with_spectrum(EIGS, seed=4)


def test_slq_integrates_to_one_and_mean_is_trace_over_n():
    d = slq(lambda v: A @ v, N, n_runs=40, lanczos_steps=25, matmat=lambda V: V @ A, seed=0)
    assert abs(d.integral - 1.0) <= 0.01
    truth = float(torch.trace(A)) / N
    assert abs(d.mean - truth) <= 0.01 * truth
    assert abs(d.mean - truth) <= 4 * d.mean_stderr  # and consistent with its own standard error
    grid_mean = float(np.trapezoid(d.grid * d.density, d.grid))
    assert abs(grid_mean - truth) <= 0.01 * truth
    assert d.n_matvecs == 40 * 25
    fin = d.nodes[np.isfinite(d.nodes)]
    assert fin.min() >= EIGS.min() - 1e-9 and fin.max() <= EIGS.max() + 1e-9
    np.testing.assert_allclose(d.weights.sum(1), 1.0, rtol=1e-12)
    json.dumps(d.to_dict(), allow_nan=False)


def test_slq_on_a_few_distinct_eigenvalues_is_exact_quadrature():
    B = spd_with_spectrum([1.0] * 30 + [3.0] * 30, seed=5)
    d = slq(lambda v: B @ v, 60, n_runs=4, lanczos_steps=20, matmat=lambda V: V @ B, seed=1, sigma=0.05)
    assert "ended early" in d.reason  # Krylov space of dimension 2
    fin = d.nodes[np.isfinite(d.nodes)]
    assert np.allclose(np.sort(np.unique(np.round(fin, 8))), [1.0, 3.0])
    assert abs(d.integral - 1.0) <= 1e-6
    # mass near 1 and 3 is about one half each
    left = np.trapezoid(d.density[d.grid < 2], d.grid[d.grid < 2])
    assert abs(left - 0.5) < 0.25
