r"""Exact dense iterate Hessians at every k from one backward sweep: the second-order chain rule.

With the tail map :math:`\Phi_{k\to K} = \Phi_{K-1}\circ\cdots\circ\Phi_k` (one solver step per factor) and
:math:`L_k = \ell\circ\Phi_{k\to K}`, the gradient and the Hessian obey

.. math::
    g_k = J_k^\top g_{k+1}, \qquad
    H_k = J_k^\top H_{k+1} J_k + \nabla^2_x \langle g_{k+1}, \Phi_k(x)\rangle \big|_{x_k},

where :math:`J_k` is the Jacobian of one step at :math:`x_k`, and :math:`g_K, H_K` are the gradient and
Hessian of the loss :math:`\ell` at the last state.  One forward-over-reverse pass through *one* step, with
the ``n`` basis vectors as tangents, gives :math:`J_k`, the second term and :math:`g_k` at once.  So every
:math:`H_k`, ``k = k_0..K``, costs ``n`` one-step products per step, ``(K - k_0) n`` in all, where forming
each :math:`H_k` on its own through its tail (what ``torch.func.hessian`` of :math:`L_k` does) costs
:math:`\sum_k (K-k)\,n`: about ``(K - k_0 + 1)/2`` times more.  The result is exact up to rounding, and it
is checked against double backward through the whole tail before it is used
(:func:`chain_hessians` returns the relative difference; ``analyze_iterates`` falls back to the per-iterate
route when the check fails or the solver does not support forward-mode AD).

The operator is block diagonal over the samples of a batch: a tangent holds ``e_j`` in every sample's block,
so one pass serves every sample, as in the per-iterate dense route.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from landscape.curvature.backends import _rel, agreement_rtol, make_hvp
from landscape.curvature.operators import iterate_loss_flat
from landscape.solver import SolverView


class ChainUnavailable(RuntimeError):
    """The chain cannot serve this solver (state shape changes between steps, or it disagrees)."""


def chain_hessians(
    view: SolverView,
    y: torch.Tensor,
    x_true: torch.Tensor,
    traj: Sequence[Any],
    ks: Sequence[int],
    *,
    check: bool = True,
    generator: torch.Generator | None = None,
) -> tuple[dict[int, torch.Tensor], dict[str, Any]]:
    r"""Every sample's dense Hessian :math:`H_k` for each ``k`` in ``ks``: ``{k: (B, n, n)}`` and a record.

    Args:
        view: a prepared solver view (eval mode, frozen, analysis dtype).
        y, x_true: the batch (B samples).
        traj: the clean states ``x_0..x_K`` of the batch (``view.iterates(y)``).
        ks: the iterates wanted (any subset of ``0..K``); the sweep runs from ``K`` down to ``min(ks)``.
        check: compare ``H_{min(ks)} v`` with double backward through the whole tail for a random ``v``
            (relative difference at most :func:`~landscape.curvature.backends.agreement_rtol`); raise
            :class:`ChainUnavailable` if it disagrees.
        generator: for the check's probe vector.

    The record holds ``agreement`` (the check's relative difference), ``products`` (one-step products
    per sample: ``n`` per step swept), ``check_time`` and ``wall_time`` in seconds.

    Example:
        >>> import torch
        >>> from landscape.solver import FunctionSolver, as_solver
        >>> A = torch.tensor([[2.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
        >>> s = as_solver(FunctionSolver(lambda x, y, k: x - 0.2 * (torch.tanh(x) @ A.T - y) @ A, n_iter=3))
        >>> y, xt = torch.tensor([[1.0, 0.5]], dtype=torch.float64), torch.zeros(1, 2, dtype=torch.float64)
        >>> H, rec = chain_hessians(s, y, xt, s.iterates(y), [0, 2])
        >>> f = lambda x: s.loss(x[None], y, xt, 0)[0]
        >>> bool(torch.allclose(H[0][0], torch.func.hessian(f)(s.iterates(y)[0][0]), atol=1e-12))
        True
    """
    t_start = time.perf_counter()
    K = view.n_iter
    ks = sorted({int(k) for k in ks})
    k0 = ks[0]
    flat_K, unflatten = view.flatten(traj[K])
    shape = tuple(flat_K.shape)
    B, n = shape
    for k in range(k0, K):
        got = tuple(view.flatten(traj[k])[0].shape)
        if got != shape:
            raise ChainUnavailable(
                f"the state at k={k} has flat shape {got}, at K={K} {shape}: the chain needs one shape"
            )
    dt, dev = flat_K.dtype, flat_K.device
    eye = torch.eye(n, dtype=dt, device=dev).repeat(1, B)  # tangent j: e_j in every sample's block

    def loss_K(xf: torch.Tensor) -> torch.Tensor:
        return view.loss(unflatten(xf.view(shape)), y, x_true, K).sum()

    x = flat_K.reshape(-1)
    grad_K = torch.func.grad(loss_K)
    g = grad_K(x)
    H = _blocks(torch.func.vmap(lambda v: torch.func.jvp(grad_K, (x,), (v,))[1])(eye), B, n)
    out: dict[int, torch.Tensor] = {}
    if K in ks:
        out[K] = H
    for k in range(K - 1, k0 - 1, -1):
        g, H = _chain_step(view, y, k, traj[k], unflatten, g, H, eye)
        if k in ks:
            out[k] = H
    rec: dict[str, Any] = {
        "algorithm": "chain",
        "products": (K - k0 + 1) * n,
        "agreement": None,
        "check_time": 0.0,
    }
    if check:
        t0 = time.perf_counter()
        rec["agreement"] = _check_chain(view, y, x_true, traj[k0], k0, out[k0], generator)
        rec["check_time"] = time.perf_counter() - t0
    rec["wall_time"] = time.perf_counter() - t_start
    return out, rec


def _blocks(out: torch.Tensor, B: int, n: int) -> torch.Tensor:
    """(n, B*n) rows j = M_b e_j  ->  (B, n, n) with [b][:, j]."""
    return out.reshape(n, B, n).permute(1, 2, 0)


def _chain_step(
    view: SolverView,
    y: torch.Tensor,
    k: int,
    x_k: Any,
    unflatten: Callable[[torch.Tensor], Any],
    g: torch.Tensor,
    H: torch.Tensor,
    eye: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""One step back: from the gradient ``g`` and Hessians ``H`` (B, n, n) at :math:`x_{k+1}` to those at
    :math:`x_k`, :math:`H_k = J^\top H_{k+1} J + \operatorname{sym}(S)` with the step's Jacobian ``J`` and
    ``S`` the derivative of :math:`J^\top g` (``eye``: the tangents, ``e_j`` in every sample's block)."""
    B, n = H.shape[0], H.shape[-1]
    shape = (B, n)
    xk = view.flatten(x_k)[0].reshape(-1)

    def step_flat(xf: torch.Tensor) -> torch.Tensor:
        return view.flatten(view.step(unflatten(xf.view(shape)), y, k))[0].reshape(-1)

    def pair(xf: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        o, pull = torch.func.vjp(step_flat, xf)
        return o, pull(g)[0]

    def tangents(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.func.jvp(pair, (xk,), (v,))[1]

    (_, g_k) = pair(xk)
    Jr, Sr = torch.func.vmap(tangents)(eye)
    J, S = _blocks(Jr, B, n), _blocks(Sr, B, n)
    return g_k, J.transpose(1, 2) @ H @ J + 0.5 * (S + S.transpose(1, 2))


def _check_chain(
    view: SolverView,
    y: torch.Tensor,
    x_true: torch.Tensor,
    x_k0: Any,
    k0: int,
    H: torch.Tensor,
    generator: torch.Generator | None,
) -> float:
    """The relative difference of ``H v`` (``H`` (B, n, n) from the chain at ``k0``) from double backward
    through the whole tail, for a random ``v``; :class:`ChainUnavailable` above
    :func:`~landscape.curvature.backends.agreement_rtol`."""
    B, n = H.shape[0], H.shape[-1]
    f, x0, _ = iterate_loss_flat(view, y, x_true, k0, x_k0)
    v = torch.randn(x0.shape, dtype=H.dtype, generator=generator).to(H.device)
    ref = make_hvp(f, x0, "double_backward")(v)
    mine = (H @ v.view(B, n, 1)).reshape(-1)
    rel = _rel(mine, ref)
    tol = agreement_rtol(H.dtype)
    if not rel <= tol:
        raise ChainUnavailable(
            f"H_{k0} v from the chain differs from double backward by {rel:.3g} (relative), above {tol:g}"
        )
    return rel
