"""Gaussian broadening of a discrete spectrum: numpy only, so figures can draw densities without torch.

:func:`broaden` turns quadrature nodes and weights (SLQ's Ritz values, or every eigenvalue of a dense
Hessian with weight 1/n) into a smooth density on a grid; :mod:`landscape.curvature.density` estimates the
nodes and :mod:`landscape.viz.figures` draws the result.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["broaden"]


def broaden(
    nodes: np.ndarray,
    weights: np.ndarray,
    *,
    sigma: float | None = None,
    sigma_rel: float = 0.01,
    grid_points: int = 400,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Gaussian-broadened density of quadrature ``nodes``/``weights`` (R, m; NaN nodes are ignored).

    Returns ``(grid, density, sigma)``; the grid spans the nodes ± 6σ, so the density integrates to 1
    when each row of weights sums to 1.
    """
    nodes = np.atleast_2d(np.asarray(nodes, dtype=np.float64))
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    finite = np.isfinite(nodes)
    lo, hi = float(nodes[finite].min()), float(nodes[finite].max())
    spread = hi - lo
    if sigma is None:
        sigma = sigma_rel * spread if spread > 0 else max(abs(hi), 1.0) * sigma_rel
    grid = np.linspace(lo - 6 * sigma, hi + 6 * sigma, grid_points)
    th = np.where(finite, nodes, 0.0)
    w = np.where(finite, weights, 0.0)
    dens = np.zeros_like(grid)
    for r in range(len(nodes)):  # sum of Gaussians, one run at a time to cap memory
        z = (grid[:, None] - th[r][None, :]) / sigma
        dens += (np.exp(-0.5 * z**2) * w[r][None, :]).sum(1)
    dens /= len(nodes) * sigma * math.sqrt(2 * math.pi)
    return grid, dens, float(sigma)
