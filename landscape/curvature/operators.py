r"""Matrix-free curvature operators of an unrolled network, as matvecs on flat vectors.

Loss at iterate :math:`k` for one sample (sum over entries; y and θ fixed, model in eval mode):

.. math:: L_k(x_k) = \|\Phi_{k\to K}(x_k; y, \theta) - x^*\|^2, \qquad H_k = \nabla^2_{x_k} L_k

* :func:`make_iterate_hvp` — :math:`v\mapsto H_k v`.  With a batch of B samples the operator is
  vectorised over samples: it acts on (B, n) blocks and returns the per-sample products
  :math:`H_k^{(b)} v_b` (one HVP of the summed loss, whose Hessian is block diagonal);
* :func:`make_param_hvp` — the Hessian of the same loss with respect to the parameters θ (all, or those
  whose names match a filter), averaged over the samples of the batch, :math:`\frac1B\sum_b L_k^{(b)}`;
* :func:`make_regularizer_jacobian` — :math:`J = \partial R_\theta(x)/\partial x`: ``jvp``, ``vjp`` and
  :math:`\|J\|_F^2` by Hutchinson;
* :func:`make_regularizer_hvp` — the Hessian of :math:`x\mapsto\langle u, R_\theta(x)\rangle` for a given
  ``u`` or the back-propagated residual :func:`residual_weight`.

Every factory takes any solver of the protocol (:mod:`landscape.solver`: ``n_iter``, ``initial(y)``,
``step(x, y, k)``), copies it into eval mode with frozen parameters in the requested dtype (the caller's
solver is never changed) and returns a :class:`CurvatureOperator`: ``matvec`` on torch or numpy vectors,
``matmat`` on blocks, ``dim``, ``dtype``, ``backend`` and :meth:`CurvatureOperator.as_linear_operator`.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, jvp, vjp

from landscape.curvature.backends import HVP, BackendChoice, make_hvp, select_backend
from landscape.curvature.results import Estimate
from landscape.curvature.trace import rademacher
from landscape.solver import SolverView, as_solver

__all__ = [
    "CurvatureOperator",
    "prepare_solver",
    "make_iterate_hvp",
    "make_param_hvp",
    "select_params",
    "iterate_loss",
    "iterates_of",
    "regularizer_input",
    "residual_weight",
    "RegularizerJacobian",
    "make_regularizer_jacobian",
    "make_regularizer_hvp",
    "dense_matrix",
]


@dataclass
class CurvatureOperator:
    """A symmetric linear operator given by a matvec on flat vectors of length ``dim``.

    ``batch`` > 1 marks a sample-vectorised operator: ``dim = batch * sample_dim`` and the matrix is
    block diagonal, one block per sample; ``matvec`` then also accepts (batch, sample_dim) blocks.
    ``choice`` holds the backend timings when the backend was picked automatically.
    """

    hvp: HVP
    dim: int
    dtype: torch.dtype
    device: torch.device
    kind: str
    batch: int = 1
    choice: BackendChoice | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def backend(self) -> str:
        """The name of the HVP backend in use."""
        return self.hvp.name

    @property
    def sample_dim(self) -> int:
        """The dimension of one sample's block: ``dim // batch``."""
        return self.dim // self.batch

    def _to_torch(self, v: Any) -> tuple[torch.Tensor, bool]:
        if isinstance(v, torch.Tensor):
            return v.to(self.dtype), False
        return torch.as_tensor(np.asarray(v), dtype=self.dtype, device=self.device), True

    def matvec(self, v: Any) -> Any:
        """:math:`Hv` for ``v`` of shape (dim,) (or (batch, sample_dim)); numpy in, numpy out."""
        t, was_np = self._to_torch(v)
        shape = t.shape
        out = self.hvp(t.reshape(self.dim)).reshape(shape)
        return out.detach().cpu().numpy() if was_np else out

    __call__ = matvec

    def matmat(self, V: Any) -> Any:
        """:math:`HV` for a block of m vectors, shape (m, dim) (vectorised over the block)."""
        t, was_np = self._to_torch(V)
        out = self.hvp.batched(t.reshape(-1, self.dim)).reshape(t.shape)
        return out.detach().cpu().numpy() if was_np else out

    def as_linear_operator(self) -> Any:
        """A ``scipy.sparse.linalg.LinearOperator`` (float64 numpy in and out; symmetric)."""
        from scipy.sparse.linalg import LinearOperator

        def mv(v: np.ndarray) -> np.ndarray:
            return np.asarray(self.matvec(np.asarray(v, dtype=np.float64).reshape(-1)), dtype=np.float64)

        def mm(V: np.ndarray) -> np.ndarray:
            return np.asarray(self.matmat(np.asarray(V, dtype=np.float64).T), dtype=np.float64).T

        return LinearOperator((self.dim, self.dim), matvec=mv, rmatvec=mv, matmat=mm, dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        """A plain-dict description: kind, sizes, dtype, backend (and how it was chosen), and ``info``."""
        return {
            "kind": self.kind,
            "dim": self.dim,
            "batch": self.batch,
            "dtype": str(self.dtype).replace("torch.", ""),
            "backend": self.backend,
            "batched_mode": self.hvp.batched_mode,
            "backend_choice": None if self.choice is None else self.choice.to_dict(),
            **self.info,
        }


# -- solver preparation ------------------------------------------------------------------------
def prepare_solver(solver: Any, dtype: torch.dtype | None = torch.float64, *, loss: Any = None) -> SolverView:
    """A :class:`~landscape.solver.SolverView` of an eval-mode, frozen copy of ``solver`` in ``dtype``.

    ``None`` keeps the solver's dtype.  A view that is already prepared is returned as it is, so callers
    prepare once and reuse.
    """
    return as_solver(solver, loss=loss).prepared(dtype)


def _batch(t: torch.Tensor, view: SolverView, name: str, dtype: torch.dtype) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} is a {type(t).__name__}: expected a batch-first torch.Tensor")
    if not t.dtype.is_floating_point and not t.dtype.is_complex:
        raise ValueError(f"{name} has dtype {t.dtype}: expected a floating tensor")
    if t.dim() < 1:
        raise ValueError(f"{name} is a scalar: expected a batch-first tensor (B, ...)")
    return t.to(dtype=dtype, device=view.device())


def iterates_of(solver: Any, y: torch.Tensor) -> list[Any]:
    """The clean iterates :math:`x_0..x_K` of ``solver`` for the batch ``y`` (no graph)."""
    return as_solver(solver).iterates(y)


def iterate_loss(solver: Any, x_k: Any, y: torch.Tensor, x_true: torch.Tensor, k: int) -> torch.Tensor:
    r"""Per-sample loss :math:`L_k(x_k)` (default :math:`\|\Phi_{k\to K}(x_k) - x^*\|^2`), shape (B,)."""
    return as_solver(solver).loss(x_k, y, x_true, k)


def _resolve(
    solver: Any,
    y: torch.Tensor,
    x_true: torch.Tensor,
    k: int,
    x_k: Any,
    dtype: torch.dtype | None,
    loss: Any = None,
) -> tuple[SolverView, torch.Tensor, torch.Tensor, Any]:
    view = prepare_solver(solver, dtype, loss=loss)
    dt = view.dtype(dtype or torch.float64)
    y = _batch(y, view, "y", dt)
    x_true = _batch(x_true, view, "x_true", dt)
    if y.shape[0] != x_true.shape[0]:
        raise ValueError(f"y has {y.shape[0]} samples but x_true has {x_true.shape[0]}: expected the same")
    view.check_k(k)
    if x_k is None:
        x_k = view.iterates(y)[k]
    return view, y, x_true, x_k


def _build(
    f: Callable[[torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    backend: str,
    budget_s: float,
    generator: torch.Generator | None,
    total_products: int | None = None,
) -> tuple[HVP, BackendChoice | None]:
    if backend == "auto":
        # scored on single products (Lanczos is sequential); batched timing skipped to keep selection short
        choice = select_backend(
            f, x0, budget_s=budget_s, block_size=0, generator=generator, total_products=total_products
        )
        return (choice.hvp if choice.hvp is not None else make_hvp(f, x0, choice.backend)), choice
    return make_hvp(f, x0, backend), None


def iterate_loss_flat(view: SolverView, y: torch.Tensor, x_true: torch.Tensor, k: int, x_k: Any):
    """``(f, x0_flat, (B, n))``: the summed per-sample loss as a function of the flat state at iterate k."""
    flat, unflatten = view.flatten(x_k)
    shape = tuple(flat.shape)

    def f(xf: torch.Tensor) -> torch.Tensor:
        return view.loss(unflatten(xf.view(shape)), y, x_true, k).sum()

    return f, flat.detach().reshape(-1), shape


def make_iterate_hvp(
    solver: Any,
    y: torch.Tensor,
    x_true: torch.Tensor,
    k: int,
    *,
    x_k: Any = None,
    loss: Any = None,
    backend: str = "auto",
    dtype: torch.dtype | None = torch.float64,
    budget_s: float = 1.0,
    generator: torch.Generator | None = None,
) -> CurvatureOperator:
    r"""The loss Hessian at iterate ``k``, :math:`H_k = \nabla^2_{x_k} L_k(x_k)`.

    Args:
        solver: any solver of the protocol (:mod:`landscape.solver`).
        y, x_true: batch-first measurements and ground truths of B samples.  With B > 1 the operator is
            block diagonal (one block per sample), acting on (B, n) blocks.
        k: the iterate, 0..K.
        x_k: the state at iterate k (default: the solver's own clean iterate).
        loss: optional ``loss(x_hat, x_true, y) -> (B,)`` (default squared error, sum over entries).
        backend: one of :data:`~landscape.curvature.backends.BACKENDS` or ``'auto'`` (timed, checked
            against ``double_backward``; the choice is recorded in ``op.choice``).

    Example:
        >>> import torch
        >>> from landscape.solver import FunctionSolver
        >>> A = torch.tensor([[2.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
        >>> s = FunctionSolver(lambda x, y, k: x - 0.2 * (x @ A.T - y) @ A, n_iter=3)
        >>> y = torch.ones(1, 2, dtype=torch.float64)
        >>> op = make_iterate_hvp(s, y, torch.zeros(1, 2, dtype=torch.float64), 1, backend="jvp_grad")
        >>> M = torch.eye(2, dtype=torch.float64) - 0.2 * A.T @ A      # affine: x_K = M^2 x_1 + c
        >>> J = torch.linalg.matrix_power(M, 2)
        >>> torch.allclose(dense_matrix(op), 2 * J.T @ J)
        True
    """
    view, y, x_true, x_k = _resolve(solver, y, x_true, k, x_k, dtype, loss)
    f, x0, shape = iterate_loss_flat(view, y, x_true, k, x_k)
    hvp, choice = _build(f, x0, backend, budget_s, generator)
    info = {"k": k, "n_iter": view.n_iter, "wrt": "iterate", "state_dim": shape[1]}
    return CurvatureOperator(hvp, x0.numel(), x0.dtype, x0.device, "iterate_hessian", shape[0], choice, info)


# -- parameters --------------------------------------------------------------------------------
def select_params(
    model: nn.Module, include: str | Sequence[str] | None = None, exclude: str | Sequence[str] | None = None
) -> list[str]:
    """Names of the parameters matching any ``include`` regex (all if ``None``) and no ``exclude`` regex."""
    inc = [include] if isinstance(include, str) else list(include or [])
    exc = [exclude] if isinstance(exclude, str) else list(exclude or [])
    names = [
        n
        for n, _ in model.named_parameters()
        if (not inc or any(re.search(p, n) for p in inc)) and not any(re.search(p, n) for p in exc)
    ]
    if not names:
        raise ValueError(f"no parameter matches include={include!r} exclude={exclude!r}")
    return names


class _Tail(nn.Module):
    """``forward(x_k, y) = loss of the tail from k`` so that ``functional_call`` can swap θ."""

    def __init__(self, view: SolverView, k: int):
        super().__init__()
        if not isinstance(view.solver, nn.Module):
            raise ValueError(f"{view.name} is not a torch.nn.Module: wrt='params' needs named parameters")
        self.model = view.solver
        self.view = view
        self.k = k

    def forward(self, x_k: Any, y: torch.Tensor, x_true: torch.Tensor) -> torch.Tensor:
        return self.view.loss(x_k, y, x_true, self.k)


def param_loss_flat(
    view: SolverView,
    y: torch.Tensor,
    x_true: torch.Tensor,
    k: int,
    x_k: Any,
    *,
    include: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
) -> tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor, list[str]]:
    """``(f, theta0, names)``: the batch-mean loss at iterate k as a function of the flat selected θ."""
    wrapper = _Tail(view, k)
    names = select_params(view.solver, include, exclude)
    all_params = {f"model.{n}": p.detach() for n, p in view.solver.named_parameters()}
    buffers = {f"model.{n}": b for n, b in view.solver.named_buffers()}
    shapes = [all_params[f"model.{n}"].shape for n in names]
    sizes = [math.prod(s) for s in shapes]
    theta0 = torch.cat([all_params[f"model.{n}"].reshape(-1) for n in names])
    bsz = y.shape[0]

    def f(th: torch.Tensor) -> torch.Tensor:
        params = dict(all_params)
        for n, piece, s in zip(names, th.split(sizes), shapes):
            params[f"model.{n}"] = piece.view(s)
        return functional_call(wrapper, {**params, **buffers}, (x_k, y, x_true)).sum() / bsz

    return f, theta0, names


def make_param_hvp(
    solver: Any,
    y: torch.Tensor,
    x_true: torch.Tensor,
    k: int = 0,
    *,
    include: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
    x_k: Any = None,
    loss: Any = None,
    backend: str = "auto",
    dtype: torch.dtype | None = torch.float64,
    budget_s: float = 1.0,
    generator: torch.Generator | None = None,
) -> CurvatureOperator:
    r"""Hessian of :math:`\frac1B\sum_b L_k^{(b)}(x_k^{(b)};\theta)` with respect to θ.

    ``x_k`` is held fixed (detached); for ``k = 0`` it is :math:`x_0`, which for our models does not
    depend on θ, so this is the Hessian of the whole network's loss (the quantity PyHessian computes,
    with criterion ``sum((out - x*)**2) / B``).  ``include``/``exclude`` are regexes on parameter
    names; the flat vector concatenates the selected parameters in ``named_parameters()`` order.  The
    solver must be an ``nn.Module``.
    """
    view, y, x_true, x_k = _resolve(solver, y, x_true, k, x_k, dtype, loss)
    f, theta0, names = param_loss_flat(view, y, x_true, k, x_k, include=include, exclude=exclude)
    hvp, choice = _build(f, theta0, backend, budget_s, generator)
    info = {
        "k": k,
        "n_iter": view.n_iter,
        "wrt": "params",
        "params": names,
        "batch_reduction": "mean over samples",
    }
    return CurvatureOperator(
        hvp, theta0.numel(), theta0.dtype, theta0.device, "param_hessian", 1, choice, info
    )


# -- the regularizer (an optional capability of a solver) ------------------------------------------
def regularizer_input(solver: Any, x_k: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
    """The point where step ``k`` evaluates its regularizer: the solver's ``regularizer_input`` (the data
    step ``z_k`` for a proximal model), else ``x_k``."""
    return as_solver(solver).regularizer_input(x_k, y, k)


def residual_weight(solver: Any, y: torch.Tensor, x_true: torch.Tensor, k: int) -> torch.Tensor:
    r"""The back-propagated residual :math:`u = \nabla_{x_{k+1}} L_{k+1}(x_{k+1})` at the clean iterate.

    It weighs the regularizer's curvature in the one-step expansion of the iterate Hessian,
    :math:`H_k = J_k^\top H_{k+1} J_k - \eta_k\nabla^2\langle u, R_\theta\rangle(x_k)` (GD), and for
    ``k = K-1`` equals :math:`2(x_K - x^*)`.  Requires ``k < K``.
    """
    view = prepare_solver(solver, None)
    view.check_k(k, last=False)
    dt = view.dtype()
    y, x_true = _batch(y, view, "y", dt), _batch(x_true, view, "x_true", dt)
    x1 = view.iterates(y)[k + 1].clone().requires_grad_(True)
    with torch.enable_grad():
        (u,) = torch.autograd.grad(view.loss(x1, y, x_true, k + 1).sum(), x1)
    return u.detach()


@dataclass
class RegularizerJacobian:
    r"""Products with :math:`J = \partial R_k(x)/\partial x` at a fixed point (a batch: J is block diagonal)."""

    fn: Callable[[torch.Tensor], torch.Tensor]
    x: torch.Tensor
    dim: int
    k: int

    def jvp(self, v: torch.Tensor) -> torch.Tensor:
        """:math:`Jv` (``v`` shaped like ``x`` or flat)."""
        return jvp(self.fn, (self.x,), (v.reshape(self.x.shape).to(self.x.dtype),))[1]

    def vjp(self, u: torch.Tensor) -> torch.Tensor:
        r""":math:`J^\top u`."""
        _, f = vjp(self.fn, self.x)
        return f(u.reshape(self.x.shape).to(self.x.dtype))[0]

    def frobenius_sq(
        self, n_probes: int = 32, *, generator: torch.Generator | None = None, seed: int | None = None
    ) -> Estimate:
        r""":math:`\|J\|_F^2 = E\|Jv\|^2` over Rademacher ``v`` (per batch: the sum over samples)."""
        t0 = time.perf_counter()
        if generator is None:
            generator = torch.Generator().manual_seed(0 if seed is None else seed)
        V = rademacher((n_probes, *self.x.shape), generator, self.x.dtype, self.x.device)
        JV = torch.func.vmap(self.jvp)(V)
        s = JV.pow(2).flatten(1).sum(1).cpu().numpy()
        se = float(s.std(ddof=1) / math.sqrt(n_probes)) if n_probes > 1 else math.inf
        return Estimate(
            float(s.mean()),
            se,
            n_probes,
            True,
            "fixed budget",
            "hutchinson_jtj",
            seed,
            str(self.x.dtype).replace("torch.", ""),
            time.perf_counter() - t0,
            s,
            {"quantity": "||J||_F^2", "k": self.k},
        )


def make_regularizer_jacobian(
    solver: Any, x: torch.Tensor, k: int = 0, *, dtype: torch.dtype | None = torch.float64
) -> RegularizerJacobian:
    """Jacobian products of the regularizer of step ``k`` at the point ``x`` (see :func:`regularizer_input`).

    Needs the solver's optional ``regularizer(k)`` capability.
    """
    view = prepare_solver(solver, dtype)
    x = _batch(x, view, "x", view.dtype()).detach()
    return RegularizerJacobian(view.regularizer(k), x, x.numel(), k)


def make_regularizer_hvp(
    solver: Any,
    x: torch.Tensor,
    u: torch.Tensor,
    k: int = 0,
    *,
    backend: str = "auto",
    dtype: torch.dtype | None = torch.float64,
    budget_s: float = 0.5,
    generator: torch.Generator | None = None,
) -> CurvatureOperator:
    """Hessian of :math:`x\\mapsto\\langle u, R_k(x)\rangle` at ``x`` (``u`` shaped like ``x``; see
    :func:`residual_weight` for the residual-weighted choice).  Indefinite in general.  Needs the
    solver's optional ``regularizer(k)`` capability."""
    view = prepare_solver(solver, dtype)
    x = _batch(x, view, "x", view.dtype()).detach()
    u = _batch(u.reshape(x.shape), view, "u", view.dtype()).detach()
    reg = view.regularizer(k)
    shape = tuple(x.shape)

    def f(xf: torch.Tensor) -> torch.Tensor:
        return (u * reg(xf.view(shape))).sum()

    hvp, choice = _build(f, x.reshape(-1), backend, budget_s, generator)
    info = {"k": k, "wrt": "regularizer_input", "quantity": "Hessian of <u, R_k(x)>"}
    return CurvatureOperator(hvp, x.numel(), x.dtype, x.device, "regularizer_hessian", shape[0], choice, info)


def dense_matrix(
    op: CurvatureOperator | Callable[[torch.Tensor], torch.Tensor],
    dim: int | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """The dense matrix of a (small) operator, column by column through its batched matvec."""
    if isinstance(op, CurvatureOperator):
        eye = torch.eye(op.dim, dtype=op.dtype, device=op.device)
        return op.matmat(eye).T.contiguous()
    assert dim is not None
    eye = torch.eye(dim, dtype=dtype)
    return torch.stack([op(e) for e in eye], 1)
