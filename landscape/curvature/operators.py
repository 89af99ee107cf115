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

Every factory copies the model into eval mode with frozen parameters in the requested dtype (the caller's
model is never changed) and returns a :class:`CurvatureOperator`: ``matvec`` on torch or numpy vectors,
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
from landscape.models import UnrolledGD, clone_model

__all__ = [
    "CurvatureOperator",
    "prepare_model",
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
        return self.hvp.name

    @property
    def sample_dim(self) -> int:
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


# -- model preparation -------------------------------------------------------------------------
def prepare_model(model: UnrolledGD, dtype: torch.dtype | None = torch.float64) -> UnrolledGD:
    """An eval-mode copy of ``model`` with frozen parameters in ``dtype`` (``None`` keeps the dtype).

    Returns ``model`` itself when it already is one (so callers can prepare once and reuse).
    """
    ref = model.step_rho
    want = ref.dtype if dtype is None else dtype
    frozen = not any(p.requires_grad for p in model.parameters())
    if not model.training and frozen and ref.dtype == want and getattr(model, "_curvature_ready", False):
        return model
    m = clone_model(model).to(want).eval().requires_grad_(False)
    m._curvature_ready = True  # type: ignore[attr-defined]
    return m


def _as_batch(t: torch.Tensor, model: UnrolledGD, name: str) -> torch.Tensor:
    shape = tuple(model.cfg.signal_shape)
    if tuple(t.shape) == shape:
        return t.unsqueeze(0)
    return t


def _check_dtype(t: torch.Tensor, model: UnrolledGD, name: str) -> torch.Tensor:
    want = model.step_rho.dtype
    if t.dtype != want:
        if not t.dtype.is_floating_point:
            raise ValueError(f"{name} has dtype {t.dtype}: expected a floating tensor")
        t = t.to(want)
    return t.to(model.step_rho.device)


@torch.no_grad()
def iterates_of(model: UnrolledGD, y: torch.Tensor) -> list[torch.Tensor]:
    """The clean iterates :math:`x_0..x_K` of ``model`` (eval mode) for the batch ``y``."""
    return [x.detach() for x in model(y, return_iterates=True).iterates]


def iterate_loss(model: UnrolledGD, x_k: torch.Tensor, y: torch.Tensor, x_true: torch.Tensor, k: int) -> torch.Tensor:
    """Per-sample loss :math:`L_k = \\|\\Phi_{k\\to K}(x_k) - x^*\\|^2` (sum over entries), shape (B,)."""
    out = model.tail(x_k, y, k)
    return (out - x_true).pow(2).flatten(1).sum(1)


def _resolve(
    model: UnrolledGD,
    y: torch.Tensor,
    x_true: torch.Tensor,
    k: int,
    x_k: torch.Tensor | None,
    dtype: torch.dtype | None,
) -> tuple[UnrolledGD, torch.Tensor, torch.Tensor, torch.Tensor]:
    m = prepare_model(model, dtype)
    y = _check_dtype(_as_batch(y, m, "y") if y.dim() == len(m.cfg.signal_shape) else y, m, "y")
    x_true = _check_dtype(_as_batch(x_true, m, "x_true"), m, "x_true")
    if y.shape[0] != x_true.shape[0]:
        raise ValueError(f"y has {y.shape[0]} samples but x_true has {x_true.shape[0]}: expected the same")
    if not (isinstance(k, int) and 0 <= k <= m.n_iter):
        raise ValueError(f"k={k!r}: expected an iterate index 0..K with K={m.n_iter}")
    if x_k is None:
        x_k = iterates_of(m, y)[k]
    else:
        x_k = _check_dtype(_as_batch(x_k, m, "x_k"), m, "x_k").detach()
    return m, y, x_true, x_k


def _build(
    f: Callable[[torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    backend: str,
    budget_s: float,
    generator: torch.Generator | None,
) -> tuple[HVP, BackendChoice | None]:
    if backend == "auto":
        # scored on single products (Lanczos is sequential); batched timing skipped to keep selection short
        choice = select_backend(f, x0, budget_s=budget_s, block_size=0, generator=generator)
        return (choice.hvp if choice.hvp is not None else make_hvp(f, x0, choice.backend)), choice
    return make_hvp(f, x0, backend), None


def make_iterate_hvp(
    model: UnrolledGD,
    y: torch.Tensor,
    x_true: torch.Tensor,
    k: int,
    *,
    x_k: torch.Tensor | None = None,
    backend: str = "auto",
    dtype: torch.dtype | None = torch.float64,
    budget_s: float = 1.0,
    generator: torch.Generator | None = None,
) -> CurvatureOperator:
    """The loss Hessian at iterate ``k``, :math:`H_k = \\nabla^2_{x_k}\\|\\Phi_{k\\to K}(x_k) - x^*\\|^2`.

    ``y`` and ``x_true`` are one sample (unbatched) or a batch of B; ``x_k`` defaults to the model's
    own clean iterate.  ``backend='auto'`` times every backend for about ``budget_s`` s (see
    :func:`~landscape.curvature.backends.select_backend`) and records the choice.
    """
    m, y, x_true, x_k = _resolve(model, y, x_true, k, x_k, dtype)
    shape = tuple(x_k.shape)

    def f(xf: torch.Tensor) -> torch.Tensor:
        return iterate_loss(m, xf.view(shape), y, x_true, k).sum()

    hvp, choice = _build(f, x_k.reshape(-1), backend, budget_s, generator)
    info = {"k": k, "K": m.n_iter, "wrt": "iterate", "signal_shape": list(shape[1:])}
    return CurvatureOperator(hvp, x_k.numel(), x_k.dtype, x_k.device, "iterate_hessian", shape[0], choice, info)


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
    """``forward(x_k, y) = model.tail(x_k, y, k)`` so that ``functional_call`` can swap θ."""

    def __init__(self, model: UnrolledGD, k: int):
        super().__init__()
        self.model = model
        self.k = k

    def forward(self, x_k: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.model.tail(x_k, y, self.k)


def make_param_hvp(
    model: UnrolledGD,
    y: torch.Tensor,
    x_true: torch.Tensor,
    k: int = 0,
    *,
    include: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
    x_k: torch.Tensor | None = None,
    backend: str = "auto",
    dtype: torch.dtype | None = torch.float64,
    budget_s: float = 1.0,
    generator: torch.Generator | None = None,
) -> CurvatureOperator:
    """Hessian of :math:`\\frac1B\\sum_b\\|\\Phi_{k\\to K}(x_k^{(b)};\\theta) - x^{*(b)}\\|^2` w.r.t. θ.

    ``x_k`` is held fixed (detached); for ``k = 0`` it is :math:`x_0 = A^\\top y`, which does not depend
    on θ, so this is the Hessian of the whole network's loss (the quantity PyHessian computes, with
    criterion ``sum((out - x*)**2) / B``).  ``include``/``exclude`` are regexes on parameter names;
    the flat vector concatenates the selected parameters in ``model.named_parameters()`` order.
    """
    m, y, x_true, x_k = _resolve(model, y, x_true, k, x_k, dtype)
    names = select_params(m, include, exclude)
    wrapper = _Tail(m, k)
    all_params = {f"model.{n}": p.detach() for n, p in m.named_parameters()}
    buffers = {f"model.{n}": b for n, b in m.named_buffers()}
    shapes = [all_params[f"model.{n}"].shape for n in names]
    sizes = [math.prod(s) for s in shapes]
    theta0 = torch.cat([all_params[f"model.{n}"].reshape(-1) for n in names])
    bsz = y.shape[0]

    def f(th: torch.Tensor) -> torch.Tensor:
        params = dict(all_params)
        for n, piece, s in zip(names, th.split(sizes), shapes):
            params[f"model.{n}"] = piece.view(s)
        out = functional_call(wrapper, {**params, **buffers}, (x_k, y))
        return (out - x_true).pow(2).sum() / bsz

    hvp, choice = _build(f, theta0, backend, budget_s, generator)
    info = {"k": k, "K": m.n_iter, "wrt": "params", "params": names, "batch_reduction": "mean over samples"}
    return CurvatureOperator(hvp, theta0.numel(), theta0.dtype, theta0.device, "param_hessian", 1, choice, info)


# -- the regularizer ---------------------------------------------------------------------------
def regularizer_input(model: UnrolledGD, x_k: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
    """The point where step ``k`` evaluates :math:`R_\\theta`: ``x_k`` (GD) or the data step ``z_k`` (prox)."""
    if model.cfg.arch == "prox":
        with torch.no_grad():
            return x_k - model.step_size(k) * model.data_gradient(x_k, y)
    return x_k


def residual_weight(model: UnrolledGD, y: torch.Tensor, x_true: torch.Tensor, k: int) -> torch.Tensor:
    """The back-propagated residual :math:`u = \\nabla_{x_{k+1}} L_{k+1}(x_{k+1})` at the clean iterate.

    It weighs the regularizer's curvature in the one-step expansion of the iterate Hessian,
    :math:`H_k = J_k^\\top H_{k+1} J_k - \\eta_k\\nabla^2\\langle u, R_\\theta\\rangle(x_k)` (GD), and for
    ``k = K-1`` equals :math:`2(x_K - x^*)`.  Requires ``k < K``.
    """
    m = prepare_model(model, None)
    if not (isinstance(k, int) and 0 <= k < m.n_iter):
        raise ValueError(f"k={k!r}: the residual weight needs 0 <= k < K={m.n_iter}")
    y = _as_batch(y, m, "y") if y.dim() == len(m.cfg.signal_shape) else y
    x_true = _as_batch(x_true, m, "x_true")
    x1 = iterates_of(m, y)[k + 1].clone().requires_grad_(True)
    with torch.enable_grad():
        (u,) = torch.autograd.grad(iterate_loss(m, x1, y, x_true, k + 1).sum(), x1)
    return u.detach()


@dataclass
class RegularizerJacobian:
    """Products with :math:`J = \\partial R_k(x)/\\partial x` at a fixed point (a batch: J is block diagonal)."""

    fn: Callable[[torch.Tensor], torch.Tensor]
    x: torch.Tensor
    dim: int
    k: int

    def jvp(self, v: torch.Tensor) -> torch.Tensor:
        """:math:`Jv` (``v`` shaped like ``x`` or flat)."""
        return jvp(self.fn, (self.x,), (v.reshape(self.x.shape).to(self.x.dtype),))[1]

    def vjp(self, u: torch.Tensor) -> torch.Tensor:
        """:math:`J^\\top u`."""
        _, f = vjp(self.fn, self.x)
        return f(u.reshape(self.x.shape).to(self.x.dtype))[0]

    def frobenius_sq(
        self, n_probes: int = 32, *, generator: torch.Generator | None = None, seed: int | None = None
    ) -> Estimate:
        """:math:`\\|J\\|_F^2 = E\\|Jv\\|^2` over Rademacher ``v`` (per batch: the sum over samples)."""
        from landscape.curvature.trace import rademacher

        t0 = time.perf_counter()
        if generator is None:
            generator = torch.Generator().manual_seed(0 if seed is None else seed)
        V = rademacher((n_probes, *self.x.shape), generator, self.x.dtype, self.x.device)
        JV = torch.func.vmap(self.jvp)(V)
        s = JV.pow(2).flatten(1).sum(1).cpu().numpy()
        se = float(s.std(ddof=1) / math.sqrt(n_probes)) if n_probes > 1 else math.inf
        return Estimate(
            float(s.mean()), se, n_probes, True, "fixed budget", "hutchinson_jtj", seed,
            str(self.x.dtype).replace("torch.", ""), time.perf_counter() - t0, s,
            {"quantity": "||J||_F^2", "k": self.k},
        )


def make_regularizer_jacobian(
    model: UnrolledGD, x: torch.Tensor, k: int = 0, *, dtype: torch.dtype | None = torch.float64
) -> RegularizerJacobian:
    """Jacobian products of the regularizer of step ``k`` at the point ``x`` (see :func:`regularizer_input`)."""
    m = prepare_model(model, dtype)
    x = _check_dtype(_as_batch(x, m, "x"), m, "x").detach()
    reg = m.regularizer(k)
    return RegularizerJacobian(reg, x, x.numel(), k)


def make_regularizer_hvp(
    model: UnrolledGD,
    x: torch.Tensor,
    u: torch.Tensor,
    k: int = 0,
    *,
    backend: str = "auto",
    dtype: torch.dtype | None = torch.float64,
    budget_s: float = 0.5,
    generator: torch.Generator | None = None,
) -> CurvatureOperator:
    """Hessian of :math:`x\\mapsto\\langle u, R_k(x)\\rangle` at ``x`` (``u`` shaped like ``x``; see
    :func:`residual_weight` for the residual-weighted choice).  Indefinite in general."""
    m = prepare_model(model, dtype)
    x = _check_dtype(_as_batch(x, m, "x"), m, "x").detach()
    u = _check_dtype(u.reshape(x.shape), m, "u").detach()
    reg = m.regularizer(k)
    shape = tuple(x.shape)

    def f(xf: torch.Tensor) -> torch.Tensor:
        return (u * reg(xf.view(shape))).sum()

    hvp, choice = _build(f, x.reshape(-1), backend, budget_s, generator)
    info = {"k": k, "wrt": "regularizer_input", "quantity": "Hessian of <u, R_k(x)>"}
    return CurvatureOperator(hvp, x.numel(), x.dtype, x.device, "regularizer_hessian", shape[0], choice, info)


def dense_matrix(op: CurvatureOperator | Callable[[torch.Tensor], torch.Tensor], dim: int | None = None,
                 dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The dense matrix of a (small) operator, column by column through its batched matvec."""
    if isinstance(op, CurvatureOperator):
        eye = torch.eye(op.dim, dtype=op.dtype, device=op.device)
        return op.matmat(eye).T.contiguous()
    assert dim is not None
    eye = torch.eye(dim, dtype=dtype)
    return torch.stack([op(e) for e in eye], 1)
