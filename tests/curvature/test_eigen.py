"""Eigen solvers against torch.linalg.eigvalsh: clustered spectra, both ends, budgets and flags."""

import json
import warnings

import numpy as np
import pytest
import torch
from tiny_models import make_batch, make_model, spd_with_spectrum

from landscape.curvature.eigen import eigsh, lanczos, power_iteration, top_eigenpairs
from landscape.curvature.operators import dense_matrix, make_iterate_hvp

N = 200
# clustered top eigenvalues (relative gaps 1e-3) above an indefinite bulk
SPECTRUM = np.concatenate(
    [[10.0, 9.99, 9.98, 9.97, 9.96, 9.0], np.random.default_rng(0).uniform(-3.0, 7.0, N - 6)]
)
A = spd_with_spectrum(SPECTRUM, seed=1)
TRUE = torch.linalg.eigvalsh(A).numpy()


def matvec(v):
    return A @ v


@pytest.mark.parametrize("method", [lanczos, eigsh])
def test_top5_clustered_within_80_matvecs(method):
    res = method(matvec, N, 5, which="LA", tol=1e-8, max_matvecs=80, seed=0)
    top = TRUE[::-1][:5]
    assert res.converged, res.reason
    assert res.n_matvecs <= 80
    assert np.all(np.diff(res.values) <= 0), "top-k must be in descending order"
    np.testing.assert_allclose(res.values, top, rtol=1e-6)
    # residuals are honest: ||A v - lambda v||
    for lam, v, r in zip(res.values, res.vectors, res.residuals):
        v = torch.as_tensor(v)
        assert float((A @ v - lam * v).norm()) <= max(10 * r, 1e-10)
    json.dumps(res.to_dict(), allow_nan=False)


def test_bottom_k_of_indefinite_operator():
    res = lanczos(matvec, N, 3, which="SA", tol=1e-8, max_matvecs=N, seed=0)
    assert res.converged
    np.testing.assert_allclose(res.values, TRUE[:3], rtol=1e-6, atol=1e-8)
    assert np.all(np.diff(res.values) >= 0) and res.values[0] < 0
    res = eigsh(matvec, N, 3, which="SA", tol=1e-10, seed=0)
    np.testing.assert_allclose(res.values, TRUE[:3], rtol=1e-6)


def test_unconverged_is_flagged_and_warned():
    with pytest.warns(RuntimeWarning, match="did not converge"):
        res = lanczos(matvec, N, 5, which="SA", tol=1e-10, max_matvecs=15, seed=0)
    assert not res.converged and "budget" in res.reason and res.n_matvecs == 15
    assert res.to_dict()["converged"] is False
    with pytest.warns(RuntimeWarning, match="did not converge"):
        res = eigsh(matvec, N, 5, which="LA", tol=1e-10, max_matvecs=12, seed=0)
    assert not res.converged
    with pytest.warns(RuntimeWarning, match="did not converge"):
        res = power_iteration(matvec, N, 2, tol=1e-8, max_iter=20, seed=0)
    assert not res.converged


def test_power_iteration_reference_and_its_change_rule():
    big = spd_with_spectrum([5.0, 3.0, 1.0] + [0.5] * 47, seed=3)
    res = power_iteration(lambda v: big @ v, 50, 2, tol=1e-8, seed=0)
    assert res.converged
    np.testing.assert_allclose(res.values, [5.0, 3.0], rtol=1e-7)
    # on the clustered problem PyHessian's "relative change" rule stops early, off by more than its tol
    loose = power_iteration(matvec, N, 1, tol=1e-3, criterion="change", seed=0)
    assert loose.converged and abs(loose.values[0] - 10.0) / 10.0 > 1e-3
    with pytest.raises(ValueError, match="largest-magnitude"):
        power_iteration(matvec, N, 1, which="LA")


def test_repeated_eigenvalues_found_after_breakdown():
    res = lanczos(lambda v: 2.0 * v, 30, 4, seed=0)
    assert res.converged
    np.testing.assert_allclose(res.values, [2.0] * 4, rtol=1e-12)


def test_float32_tolerance_warning():
    A32 = A.float()
    with pytest.warns(RuntimeWarning, match="below what torch.float32"):
        lanczos(lambda v: A32 @ v, N, 1, tol=1e-9, dtype=torch.float32, max_matvecs=60)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        lanczos(lambda v: A @ v, N, 1, tol=1e-9, max_matvecs=N)


def test_on_an_iterate_hessian():
    model = make_model("cnn-shared", regularizer={"width": 8})
    x, y = make_batch(model, b=1)
    op = make_iterate_hvp(model, y, x, 1, backend="vjp_grad")
    true = torch.linalg.eigvalsh(dense_matrix(op)).numpy()
    res = top_eigenpairs(op, 3, which="LA", tol=1e-10)
    np.testing.assert_allclose(res.values, true[::-1][:3], rtol=1e-8)
    res = top_eigenpairs(op, 2, which="SA", tol=1e-10)
    np.testing.assert_allclose(res.values, true[:2], rtol=1e-8, atol=1e-12)
