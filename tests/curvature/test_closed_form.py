"""Analytic tier: with the identity activation the unrolled map is affine, x_K = M x_k + c, H_k = 2 MᵀM."""

import numpy as np
import pytest
import torch
from tiny_models import K, make_batch, make_model

from landscape.curvature.density import spectral_density
from landscape.curvature.eigen import top_eigenpairs
from landscape.curvature.operators import dense_matrix, make_iterate_hvp
from landscape.curvature.trace import estimate_trace


@torch.no_grad()
def affine_part(model, y, k):
    """M = M_{K-1} ... M_k with M_j e_i = step(e_i) - step(0): built from forward steps only, no autodiff."""
    shape = (1, *model.cfg.signal_shape)
    n = int(np.prod(shape))
    M = torch.eye(n, dtype=torch.float64)
    for j in range(k, model.n_iter):
        zero = model.step(torch.zeros(shape, dtype=torch.float64), y, j).reshape(-1)
        cols = [model.step(e.view(shape), y, j).reshape(-1) - zero for e in torch.eye(n, dtype=torch.float64)]
        M = torch.stack(cols, 1) @ M
    return M


@pytest.mark.parametrize("name", ["mlp-shared", "cnn-per-iteration", "prox-cnn-seismic"])
@pytest.mark.parametrize("k", [0, 2])
def test_affine_map_hessian_is_two_mtm(name, k):
    model = make_model(name, regularizer={"activation": "identity"}, out_scale=0.5).eval()
    x, y = make_batch(model, b=1)
    M = affine_part(model, y, k)
    H = 2 * M.T @ M
    eig = torch.linalg.eigvalsh(H).numpy()
    scale = float(eig.max())
    op = make_iterate_hvp(model, y, x, k, backend="double_backward" if k else "vjp_grad")
    assert torch.allclose(dense_matrix(op), H, rtol=1e-10, atol=1e-12 * scale)
    top = top_eigenpairs(op, 5, which="LA", tol=1e-10)
    assert top.converged
    np.testing.assert_allclose(top.values, eig[::-1][:5], rtol=0, atol=1e-8 * scale)
    bottom = top_eigenpairs(op, 2, which="SA", tol=1e-10, max_matvecs=op.dim)
    np.testing.assert_allclose(bottom.values, eig[:2], rtol=0, atol=1e-8 * scale)
    ark = top_eigenpairs(op, 3, method="eigsh", which="LA", tol=1e-12)
    np.testing.assert_allclose(ark.values, eig[::-1][:3], rtol=0, atol=1e-8 * scale)
    tr = estimate_trace(op, method="hutchpp", max_matvecs=2 * op.dim, sketch=op.dim, seed=0)
    assert abs(tr.estimate - float(eig.sum())) <= 1e-8 * float(eig.sum())
    d = spectral_density(op, n_runs=6, lanczos_steps=op.dim, seed=0)
    assert abs(d.integral - 1) < 1e-3 and float(eig.min()) - 1e-9 <= np.nanmin(d.nodes)


def test_last_iterate_hessian_is_two_identity():
    model = make_model("cnn-shared")
    x, y = make_batch(model, b=1)
    op = make_iterate_hvp(model, y, x, K, backend="jvp_grad")
    assert torch.allclose(dense_matrix(op), 2 * torch.eye(op.dim, dtype=torch.float64), atol=1e-14)
