r"""The diagonal of a Hessian, coordinate by coordinate: exact from a dense matrix, else estimated from products.

* :func:`exact_diagonal` — :math:`H_{jj}` of a formed Hessian (``stderr`` 0).
* :func:`hutchinson_diagonal` — the unbiased estimator of Bekas, Kokiopoulou & Saad (2007), Hutchinson's
  trace estimator kept coordinate-wise:

  .. math:: \hat d = \frac1m\sum_{i=1}^m v_i\odot Hv_i,\qquad E[\hat d] = \operatorname{diag}(H),\qquad
     \mathrm{Var}[(v\odot Hv)_j] = \sum_{l\ne j}H_{jl}^2

  for Rademacher probes (:math:`v_j^2 = 1`), so the error of coordinate j is set by the off-diagonal mass of
  row j.  Each coordinate's standard error is :math:`s_j/\sqrt m` over the probes.

Stopping rule (as :mod:`landscape.curvature.trace`): probes in blocks of ``block`` (one batched matvec each);
after at least ``min_probes`` the estimator stops as soon as the *mean* standard error is at most ``rtol`` ×
the mean :math:`|\hat d_j|`, or when ``max_matvecs`` products are spent (``converged=False`` with the reason).
Without ``rtol`` the budget is fixed and the result is reported converged ("fixed budget").
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch

from landscape.curvature.results import Diagonal, diagonal_rel_stderr
from landscape.curvature.trace import Matvec, _block_matvec, _check, _setup, rademacher

__all__ = ["exact_diagonal", "hutchinson_diagonal", "diagonal_rel_stderr"]


def exact_diagonal(
    H: torch.Tensor | np.ndarray,
    *,
    shape: tuple[int, ...] | None = None,
    dtype: str = "float64",
    wall_time: float = 0.0,
    reason: str = "exact: the diagonal of the dense Hessian",
) -> Diagonal:
    """:math:`\\operatorname{diag}(H)` of a formed ``(n, n)`` Hessian, reshaped to ``shape`` (default ``(n,)``).

    Example:
        >>> import torch
        >>> d = exact_diagonal(torch.tensor([[2.0, 1.0], [1.0, -3.0]], dtype=torch.float64), shape=(1, 2))
        >>> d.values.tolist(), d.stderr.tolist(), d.converged
        ([[2.0, -3.0]], [[0.0, 0.0]], True)
    """
    a = H.detach().double().cpu().numpy() if isinstance(H, torch.Tensor) else np.asarray(H, dtype=np.float64)
    n = a.shape[0]
    shape = tuple(shape) if shape is not None else (n,)
    vals = np.diagonal(a).copy().reshape(shape)
    return Diagonal(
        vals, np.zeros_like(vals), 0, n, True, reason, "dense", None, dtype, wall_time, {"dim": n}
    )


def _merge_block(
    mean: np.ndarray, m2: np.ndarray, m: int, X: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    """The running ``mean`` and sum of squared deviations ``m2`` per coordinate over ``m`` probes, updated with
    a block ``X`` (b, dim) of new ones by Chan et al.'s pairwise update; also the new count ``m + b``."""
    b = X.shape[0]
    bm = X.mean(0)
    bm2 = ((X - bm) ** 2).sum(0)
    delta = bm - mean
    tot = m + b
    return mean + delta * (b / tot), m2 + bm2 + delta**2 * (m * b / tot), tot


def hutchinson_diagonal(
    matvec: Matvec,
    dim: int,
    *,
    shape: tuple[int, ...] | None = None,
    max_matvecs: int = 100,
    rtol: float | None = None,
    min_probes: int = 10,
    block: int = 10,
    matmat: Callable[[torch.Tensor], torch.Tensor] | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
    seed: int | None = None,
) -> Diagonal:
    r""":math:`\operatorname{diag}(H)` as the mean of :math:`v\odot Hv` over Rademacher probes, each coordinate with
    its standard error :math:`s_j/\sqrt m` (see the module docstring for the stopping rule).

    ``matmat`` (m, dim) -> (m, dim), if given, evaluates a block of probes at once (vmap).  Memory is O(dim):
    the running mean and sum of squared deviations per coordinate (Chan et al.'s pairwise update, per block).

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> A = torch.randn(6, 6, generator=g, dtype=torch.float64); H = A + A.T
        >>> d = hutchinson_diagonal(lambda v: H @ v, 6, max_matvecs=2000, seed=0)
        >>> d.n_probes, bool((abs(d.values - H.diagonal().numpy()) <= 4 * d.stderr).all())
        (2000, True)
    """
    t0 = time.perf_counter()
    _check(rtol, max_matvecs, min_probes, dtype)
    g, seed = _setup(generator, seed)
    mm = _block_matvec(matvec, matmat)
    shape = tuple(shape) if shape is not None else (dim,)
    if math.prod(shape) != dim:
        raise ValueError(f"shape={shape}: expected {dim} entries (the dimension)")
    mean = np.zeros(dim)
    m2 = np.zeros(dim)  # sum of squared deviations from the mean, per coordinate
    m = 0

    def stderr() -> np.ndarray:
        return np.sqrt(m2 / (m - 1) / m) if m > 1 else np.full(dim, math.inf)

    ok, reason = False, ""
    while m < max_matvecs:
        b = min(block, max_matvecs - m)
        if rtol is not None and m < min_probes:
            b = min(max(b, min_probes - m), max_matvecs - m)
        V = rademacher((b, dim), g, dtype, device)
        X = (V * mm(V).reshape(V.shape)).double().cpu().numpy()  # (b, dim): v ⊙ Hv per probe
        mean, m2, m = _merge_block(mean, m2, m, X)
        if rtol is not None and m >= min_probes:
            rel = diagonal_rel_stderr(mean, stderr())
            if rel <= rtol:
                ok, reason = True, f"mean stderr <= rtol * mean |diag| after {m} probes"
                break
    if rtol is None:
        ok, reason = True, f"fixed budget of {m} probes"
    elif not ok:
        reason = (
            f"budget reached with mean stderr / mean |diag| {diagonal_rel_stderr(mean, stderr()):.2e} > "
            f"rtol {rtol:g}"
        )
        warnings.warn(f"hutchinson_diagonal did not converge: {reason}", RuntimeWarning, stacklevel=2)
    return Diagonal(
        mean.reshape(shape),
        stderr().reshape(shape),
        m,
        m,
        ok,
        reason,
        "hutchinson_diag[rademacher]",
        seed,
        str(dtype).replace("torch.", ""),
        time.perf_counter() - t0,
        {"rtol": rtol, "max_matvecs": max_matvecs, "min_probes": min_probes, "block": block, "dim": dim},
    )
