r"""Classical baselines: the least-squares affine estimator :math:`\hat x = W y + b`.

Fitted on training pairs :math:`(x_i, y_i)`, flattened to rows of :math:`X \in \mathbb{R}^{n\times d_x}`
and :math:`Y \in \mathbb{R}^{n\times d_y}`, with centred data :math:`X_c, Y_c`:

.. math::
   W^\top = \arg\min_M \|X_c - Y_c M\|_F^2 + \lambda\|M\|_F^2
          = V\,\mathrm{diag}\!\Big(\frac{s_i}{s_i^2 + \lambda}\Big)\,U^\top X_c,
   \qquad b = \bar x - W \bar y,

from the thin SVD :math:`Y_c = U\,\mathrm{diag}(s)\,V^\top` of the ``n x d`` data matrix (never a
``d x d`` matrix).  Singular values below ``rcond * s_max`` are dropped (NumPy's ``lstsq`` convention,
``rcond = eps * max(n, d)``); with ``ridge = 0`` this gives the minimum-norm least-squares solution, so
it also works with fewer samples than dimensions.  :math:`W` is stored factored,
:math:`W^\top = V C` with :math:`C = \mathrm{diag}(f) U^\top X_c` (rank ``r <= min(n, d)``), so MRI-sized
problems (``d = 2*64*64``) stay small.  The intercept is never penalised.

This is the best *linear* (affine) estimator on the training distribution: a learned nonlinear solver
should beat it in-distribution, and the toy task is designed so it does by a clear margin.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from landscape.errors import check, check_nonneg_float

__all__ = ["AffineEstimator", "fit_affine"]


class AffineEstimator:
    """:math:`y \\mapsto W y + b` with :math:`W^\\top = V C` (factored); call it on a batch of ``y``."""

    def __init__(
        self,
        x_mean: torch.Tensor,
        y_mean: torch.Tensor,
        v: torch.Tensor,
        c: torch.Tensor,
        *,
        x_shape: tuple[int, ...],
        y_shape: tuple[int, ...],
        ridge: float,
        rcond: float | None,
        n_train: int,
    ):
        """Hold the fitted means and factors; :func:`fit_affine` builds the estimator."""
        self.x_mean = x_mean  # (d_x,)
        self.y_mean = y_mean  # (d_y,)
        self.v = v  # (d_y, r)
        self.c = c  # (r, d_x)
        self.x_shape = tuple(x_shape)
        self.y_shape = tuple(y_shape)
        self.ridge = ridge
        self.rcond = rcond
        self.n_train = n_train

    @property
    def rank(self) -> int:
        r"""The rank of the factorisation :math:`W^\top = V C` (the number of columns of ``V``)."""
        return int(self.v.shape[1])

    @property
    def weight(self) -> torch.Tensor:
        """The dense matrix :math:`W` ``(d_x, d_y)`` (float64; large for images, built on demand)."""
        return (self.v @ self.c).T

    @property
    def bias(self) -> torch.Tensor:
        """:math:`b = \\bar x - W \\bar y`, shape ``(d_x,)``."""
        return self.x_mean - (self.y_mean @ self.v) @ self.c

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        """Apply to a batch ``y`` ``(B, *y_shape)``; returns ``(B, *x_shape)`` in ``y``'s dtype and device."""
        check(isinstance(y, torch.Tensor), f"y is a {type(y).__name__}: expected a torch.Tensor")
        check(
            tuple(y.shape[1:]) == self.y_shape,
            f"y has shape {tuple(y.shape)}: expected (B, {', '.join(map(str, self.y_shape))})",
        )
        dev = y.device
        yf = y.reshape(y.shape[0], -1).to(torch.float64)  # differentiable in y (attacks need it)
        ym, v, c, xm = (t.to(dev) for t in (self.y_mean, self.v, self.c, self.x_mean))
        out = ((yf - ym) @ v) @ c + xm
        return out.reshape(y.shape[0], *self.x_shape).to(y.dtype)

    def config(self) -> dict[str, Any]:
        """JSON description of the estimator (not the weights)."""
        return {
            "kind": "affine_least_squares",
            "ridge": self.ridge,
            "rcond": self.rcond,
            "rank": self.rank,
            "n_train": self.n_train,
            "x_shape": list(self.x_shape),
            "y_shape": list(self.y_shape),
        }

    def __repr__(self) -> str:
        return (
            f"AffineEstimator(rank={self.rank}, ridge={self.ridge}, n_train={self.n_train}, "
            f"x_shape={self.x_shape})"
        )


def fit_affine(
    x: torch.Tensor, y: torch.Tensor, ridge: float = 0.0, *, rcond: float | None = None
) -> AffineEstimator:
    r"""Fit the least-squares affine map :math:`y \mapsto W y + b` on training pairs (see module docstring).

    Args:
        x: clean signals ``(n, *x_shape)``.
        y: measurements ``(n, *y_shape)``.
        ridge: :math:`\lambda \ge 0` on :math:`\|W\|_F^2` (the intercept is free).
        rcond: relative cut-off for small singular values (default ``eps * max(n, d_y)``, as
            ``numpy.linalg.lstsq``).
    """
    check(isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor), "x and y: expected torch.Tensors")
    check(
        x.dim() >= 2 and y.dim() >= 2,
        f"x {tuple(x.shape)}, y {tuple(y.shape)}: expected batch-first (n, ...)",
    )
    check(
        x.shape[0] == y.shape[0],
        f"x has {x.shape[0]} samples and y {y.shape[0]}: expected the same number of training pairs",
    )
    n = int(x.shape[0])
    check(n >= 1, "x, y: expected at least one training pair")
    for name, t in (("x", x), ("y", y)):
        check(bool(torch.isfinite(t).all()), f"{name} holds NaN/Inf values: expected finite training pairs")
    ridge = check_nonneg_float(ridge, "ridge")
    xf = x.detach().reshape(n, -1).to("cpu", torch.float64)
    yf = y.detach().reshape(n, -1).to("cpu", torch.float64)
    x_mean = xf.mean(0)
    y_mean = yf.mean(0)
    xc = xf - x_mean
    yc = yf - y_mean
    u, s, vh = torch.linalg.svd(yc, full_matrices=False)  # yc = u diag(s) vh; min(n, d_y) values
    used_rcond = float(torch.finfo(torch.float64).eps * max(yc.shape)) if rcond is None else float(rcond)
    check(math.isfinite(used_rcond) and used_rcond >= 0, f"rcond={rcond!r}: expected a number >= 0")
    smax = float(s.max()) if s.numel() else 0.0
    keep = s > used_rcond * smax  # numerically zero directions (e.g. the one centring removes) carry nothing
    f = s[keep] / (s[keep] ** 2 + ridge)
    v = vh[keep].T.contiguous()  # (d_y, r)
    c = f[:, None] * (u[:, keep].T @ xc)  # (r, d_x)
    return AffineEstimator(
        x_mean,
        y_mean,
        v,
        c,
        x_shape=tuple(x.shape[1:]),
        y_shape=tuple(y.shape[1:]),
        ridge=ridge,
        rcond=used_rcond,
        n_train=n,
    )
