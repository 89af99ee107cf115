r"""Spectral density by stochastic Lanczos quadrature (SLQ), with Gaussian broadening.

For R random unit vectors :math:`v_r` (normalised Rademacher), m Lanczos steps give a tridiagonal
:math:`T^{(r)} = S\,\mathrm{diag}(\theta)\,S^\top`; the quadrature nodes are the Ritz values
:math:`\theta^{(r)}_i` and the weights :math:`w^{(r)}_i = S_{1i}^2` (they sum to 1).  Then

.. math:: \phi(t) = \frac1R\sum_r\sum_i w^{(r)}_i\,\mathcal N(t;\theta^{(r)}_i,\sigma^2),
   \qquad \int t\,\phi(t)\,dt = \frac1R\sum_r v_r^\top Hv_r \approx \mathrm{tr}(H)/n.

The R runs advance together, one batched matvec per Lanczos step (``matmat``), each with full
reorthogonalisation against its own basis.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch

from landscape.curvature.broadening import broaden
from landscape.curvature.results import Density
from landscape.curvature.trace import rademacher

__all__ = ["slq", "lanczos_tridiagonals", "spectral_density", "broaden", "exact_density"]


def lanczos_tridiagonals(
    matmat: Callable[[torch.Tensor], torch.Tensor],
    V0: torch.Tensor,
    steps: int,
) -> tuple[list[np.ndarray], list[np.ndarray], int]:
    """Run ``len(V0)`` Lanczos processes side by side from the rows of ``V0`` (unit vectors).

    Returns per run the diagonal ``alpha`` and off-diagonal ``beta`` of its tridiagonal matrix (a run
    stops early at breakdown, i.e. when its Krylov space is invariant) and the number of matvecs spent.
    """
    R, n = V0.shape
    steps = max(1, min(steps, n))
    dtype = V0.dtype
    eps = torch.finfo(dtype).eps
    Q = torch.zeros((steps, R, n), dtype=dtype, device=V0.device)
    q = V0
    alive = np.ones(R, dtype=bool)
    length = np.zeros(R, dtype=int)
    A = np.zeros((R, steps))
    B = np.zeros((R, steps))
    used = 0
    scale = 0.0
    for j in range(steps):
        Q[j] = q
        W = matmat(q).reshape(R, n).to(dtype)
        used += int(alive.sum())
        a = (q * W).sum(1)
        for _ in range(2):
            W = W - torch.einsum("jr,jrn->rn", torch.einsum("jrn,rn->jr", Q[: j + 1], W), Q[: j + 1])
        b = W.norm(dim=1)
        a_np, b_np = a.cpu().numpy(), b.cpu().numpy()
        scale = max(scale, float(np.max(np.abs(a_np[alive]))) if alive.any() else 0.0)
        A[alive, j] = a_np[alive]
        length[alive] += 1
        broke = b_np <= 10 * eps * max(scale, 1e-300) * math.sqrt(n)
        B[alive, j] = np.where(broke[alive], 0.0, b_np[alive])
        alive &= ~broke
        if not alive.any():
            break
        safe = torch.as_tensor(np.where(alive, b_np, 1.0), dtype=dtype, device=V0.device)
        q = W / safe[:, None]
        q[torch.as_tensor(~alive, device=V0.device)] = 0.0
    alphas = [A[r, : length[r]] for r in range(R)]
    betas = [B[r, : max(length[r] - 1, 0)] for r in range(R)]
    return alphas, betas, used


def slq(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    dim: int,
    *,
    n_runs: int = 10,
    lanczos_steps: int = 30,
    sigma: float | None = None,
    sigma_rel: float = 0.01,
    grid_points: int = 400,
    matmat: Callable[[torch.Tensor], torch.Tensor] | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
    seed: int | None = None,
) -> Density:
    r"""Spectral density of a symmetric operator by SLQ (``n_runs`` runs of ``lanczos_steps`` steps).

    ``sigma`` is the Gaussian broadening (default ``sigma_rel`` times the spread of the Ritz values);
    the grid spans the Ritz values ± 6σ, so the density integrates to 1 up to quadrature error.
    """
    t0 = time.perf_counter()
    if not (isinstance(n_runs, int) and n_runs >= 1):
        raise ValueError(f"n_runs={n_runs!r}: expected an integer >= 1")
    if not (isinstance(lanczos_steps, int) and lanczos_steps >= 1):
        raise ValueError(f"lanczos_steps={lanczos_steps!r}: expected an integer >= 1")
    if sigma is not None and not (sigma > 0 and math.isfinite(sigma)):
        raise ValueError(f"sigma={sigma!r}: expected a positive number or None")
    if generator is None:
        seed = 0 if seed is None else int(seed)
        generator = torch.Generator().manual_seed(seed)
    mm = matmat if matmat is not None else (lambda V: torch.stack([matvec(v).reshape(-1) for v in V]))
    V0 = rademacher((n_runs, dim), generator, dtype, device) / math.sqrt(dim)
    alphas, betas, used = lanczos_tridiagonals(mm, V0, lanczos_steps)
    nodes = np.full((n_runs, max(len(a) for a in alphas)), np.nan)
    weights = np.zeros_like(nodes)
    for r, (a, b) in enumerate(zip(alphas, betas)):
        T = np.diag(a) + np.diag(b, 1) + np.diag(b, -1)
        th, S = np.linalg.eigh(T)
        nodes[r, : len(a)] = th
        weights[r, : len(a)] = S[0] ** 2
    grid, dens, sigma = broaden(nodes, weights, sigma=sigma, sigma_rel=sigma_rel, grid_points=grid_points)
    finite = np.isfinite(nodes)
    run_means = (np.where(finite, nodes, 0.0) * weights).sum(1)
    mean = float(run_means.mean())
    mean_se = float(run_means.std(ddof=1) / math.sqrt(n_runs)) if n_runs > 1 else math.inf
    short = [len(a) for a in alphas if len(a) < min(lanczos_steps, dim)]
    reason = f"{n_runs} runs x {lanczos_steps} Lanczos steps"
    if short:
        reason += f"; {len(short)} run(s) ended early at an invariant subspace (exact quadrature)"
    return Density(
        grid=grid,
        density=dens,
        nodes=nodes,
        weights=weights,
        sigma=float(sigma),
        mean=mean,
        mean_stderr=mean_se,
        n_runs=n_runs,
        lanczos_steps=lanczos_steps,
        n_matvecs=used,
        converged=True,
        reason=reason,
        seed=seed,
        dtype=str(dtype).replace("torch.", ""),
        wall_time=time.perf_counter() - t0,
        settings={"sigma_rel": sigma_rel, "grid_points": grid_points, "dim": dim},
    )


def spectral_density(op, **kw) -> Density:
    """SLQ density of a :class:`~landscape.curvature.operators.CurvatureOperator` (batched matvec)."""
    return slq(op.matvec, op.dim, matmat=op.matmat, dtype=op.dtype, device=op.device, **kw)


def exact_density(
    eigenvalues: np.ndarray,
    *,
    sigma_rel: float = 0.01,
    grid_points: int = 400,
    n_matvecs: int = 0,
    dtype: str = "float64",
    wall_time: float = 0.0,
) -> Density:
    """The broadened density of a known spectrum (every eigenvalue, weight 1/n): what SLQ estimates."""
    ev = np.asarray(eigenvalues, dtype=np.float64).reshape(1, -1)
    n = ev.shape[1]
    w = np.full_like(ev, 1.0 / n)
    grid, dens, sigma = broaden(ev, w, sigma_rel=sigma_rel, grid_points=grid_points)
    return Density(
        grid=grid,
        density=dens,
        nodes=ev,
        weights=w,
        sigma=sigma,
        mean=float(ev.mean()),
        mean_stderr=0.0,
        n_runs=1,
        lanczos_steps=n,
        n_matvecs=n_matvecs,
        converged=True,
        reason="exact: every eigenvalue of the dense Hessian",
        seed=None,
        dtype=dtype,
        wall_time=wall_time,
        method="dense",
    )
