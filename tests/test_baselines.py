"""The least-squares affine baseline against closed forms."""

import json

import numpy as np
import pytest
import torch

from landscape.baselines import AffineEstimator, fit_affine


def test_recovers_a_known_affine_map():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 1, 5, generator=g, dtype=torch.float64)
    a = torch.randn(5, 5, generator=g, dtype=torch.float64) + 3 * torch.eye(5, dtype=torch.float64)
    c = torch.randn(5, generator=g, dtype=torch.float64)
    y = (x[:, 0] @ a.T + c)[:, None]  # y = A x + c, so the inverse map is W = A^-1, b = -A^-1 c
    est = fit_affine(x, y)
    ainv = torch.linalg.inv(a)
    torch.testing.assert_close(est.weight, ainv)
    torch.testing.assert_close(est.bias, -ainv @ c)
    torch.testing.assert_close(est(y), x)


def test_equals_numpy_lstsq_with_intercept():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 4))
    y = x @ rng.normal(size=(4, 6)) + 0.3 * rng.normal(size=(60, 6)) + 1.0
    sol, *_ = np.linalg.lstsq(np.hstack([y, np.ones((60, 1))]), x, rcond=None)
    est = fit_affine(torch.tensor(x), torch.tensor(y))
    np.testing.assert_allclose(est.weight.numpy(), sol[:-1].T, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(est.bias.numpy(), sol[-1], rtol=1e-9, atol=1e-10)
    y_new = rng.normal(size=(3, 6))
    np.testing.assert_allclose(
        est(torch.tensor(y_new)).numpy(), np.hstack([y_new, np.ones((3, 1))]) @ sol, atol=1e-10
    )


def test_minimum_norm_solution_when_fewer_samples_than_dimensions():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(10, 2, 4, 4, generator=g, dtype=torch.float64)  # d = 32 > n = 10
    y = torch.randn(10, 2, 4, 4, generator=g, dtype=torch.float64)
    est = fit_affine(x, y)
    assert est.rank == 9  # centring removes one dimension
    torch.testing.assert_close(est(y), x)  # interpolates the training pairs
    xc, yc = x.flatten(1) - x.flatten(1).mean(0), y.flatten(1) - y.flatten(1).mean(0)
    torch.testing.assert_close(est.weight.T, torch.linalg.pinv(yc) @ xc)


def test_ridge_matches_the_closed_form():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(30, 1, 8, generator=g, dtype=torch.float64)
    y = x + 0.5 * torch.randn(30, 1, 8, generator=g, dtype=torch.float64)
    lam = 2.5
    est = fit_affine(x, y, ridge=lam)
    xc, yc = x.flatten(1) - x.flatten(1).mean(0), y.flatten(1) - y.flatten(1).mean(0)
    wt = torch.linalg.solve(yc.T @ yc + lam * torch.eye(8, dtype=torch.float64), yc.T @ xc)
    torch.testing.assert_close(est.weight.T, wt)
    torch.testing.assert_close(est.bias, x.flatten(1).mean(0) - y.flatten(1).mean(0) @ wt)


def test_large_dimension_stays_factored_and_keeps_dtype():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(16, 2, 64, 64, generator=g)  # d = 8192: W would be 8192 x 8192
    y = x + 0.1 * torch.randn(16, 2, 64, 64, generator=g)
    est = fit_affine(x, y, ridge=1e-3)
    assert isinstance(est, AffineEstimator)
    assert est.v.shape == (8192, 15) and est.c.shape == (15, 8192)
    out = est(y[:3])
    assert out.shape == (3, 2, 64, 64) and out.dtype == torch.float32
    cfg = json.loads(json.dumps(est.config()))
    assert cfg["kind"] == "affine_least_squares" and cfg["ridge"] == 1e-3 and cfg["n_train"] == 16
    assert cfg["x_shape"] == [2, 64, 64]


def test_call_is_differentiable_in_y():
    g = torch.Generator().manual_seed(6)
    x = torch.randn(40, 1, 4, generator=g, dtype=torch.float64)
    y = (x + 0.2 * torch.randn(40, 1, 4, generator=g, dtype=torch.float64)).requires_grad_(False)
    est = fit_affine(x, y)
    yq = y[:1].clone().requires_grad_(True)
    est(yq).sum().backward()
    torch.testing.assert_close(yq.grad.flatten(), est.weight.sum(0))


def test_different_x_and_y_shapes():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(50, 1, 3, generator=g, dtype=torch.float64)
    y = torch.cat([x, x.flip(-1)], dim=-1) + 1.0  # (50, 1, 6)
    est = fit_affine(x, y)
    torch.testing.assert_close(est(y), x)
    assert est.weight.shape == (3, 6)


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: fit_affine(torch.zeros(3, 2), torch.zeros(3, 2), ridge=-1.0), "ridge=-1.0"),
        (lambda: fit_affine(torch.zeros(3, 2), torch.zeros(4, 2)), "same number"),
        (lambda: fit_affine(torch.zeros(3, 2), torch.zeros(3, 2))(torch.zeros(1, 3)), "expected (B, 2)"),
    ],
)
def test_bad_arguments(call, words):
    with pytest.raises(ValueError) as info:
        call()
    assert words in str(info.value)
