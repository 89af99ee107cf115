r"""The solver protocol: the one seam between an unrolled network and every analysis of it.

Anything with three members can be analysed — our own :class:`~landscape.models.UnrolledGD`, a
``torch.nn.Module`` written elsewhere, a deepinv unfolded model (through
:mod:`landscape.adapters.deepinv`) or a plain step function (:class:`FunctionSolver`):

.. code-block:: python

    n_iter: int                          # K
    initial(y) -> x_0                    # e.g. A^T y
    step(x, y, k) -> x_{k+1}             # the clean step (eval mode), differentiable in x

From these the package derives the iterates :math:`x_0, \dots, x_K`, the tail map
:math:`\Phi_{k\to K}` and every curvature quantity at iterate ``k``:

.. math:: L_k(x_k) = \ell\big(\mathrm{readout}(\Phi_{k\to K}(x_k)), x^*, y\big),\qquad
   \ell = \|\hat x - x^*\|^2 \ \text{(default)}

The state may be one batch-first tensor ``(B, ...)`` or a tuple of them (e.g. an iterate and a
momentum); curvature is then taken with respect to the whole state, flattened per sample.  Optional
capabilities are discovered, never assumed:

* ``readout(state) -> x_hat`` — the estimate read from the final state (default: the state itself, or
  its first component for a tuple state);
* ``regularizer(k) -> callable`` and ``regularizer_input(x_k, y, k)`` — the learned regularizer of step
  ``k`` and the point where that step evaluates it (Jacobian and residual-weighted Hessian analyses);
* ``step_size(k)``, and ``jittered(y, eps, jitter=)`` with ``noise_scale(x, y, k, jitter=)`` (capability
  ``jitter``) — the step and the solver under a given noise rule (theory checks of jittered training).

No analysis code reads anything else of a model.  :func:`as_solver` checks the protocol and returns a
:class:`SolverView`, which the curvature pipeline, the slices and the claims use.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

__all__ = [
    "Solver",
    "SolverView",
    "FunctionSolver",
    "as_solver",
    "squared_error",
    "State",
]

State = Any  # a batch-first tensor or a tuple of them


@runtime_checkable
class Solver(Protocol):
    """The three members every analysed solver has."""

    n_iter: int

    def initial(self, y: torch.Tensor) -> State:
        r"""The initial state :math:`x_0` for the measurements ``y`` (e.g. :math:`A^\top y`)."""
        ...

    def step(self, x: State, y: torch.Tensor, k: int) -> State:
        """The clean step :math:`x_{k+1}` from state ``x`` at iteration ``k`` (differentiable in ``x``)."""
        ...


def squared_error(x_hat: torch.Tensor, x_true: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    r"""The default per-sample loss :math:`\|\hat x - x^*\|^2` (sum over entries), shape ``(B,)``."""
    return (x_hat - x_true).pow(2).flatten(1).sum(1)


@dataclass
class FunctionSolver:
    r"""A solver made of plain functions, for a user who has only a step function.

    Args:
        step: ``step(x, y, k) -> x_{k+1}``.
        n_iter: the number of steps K.
        initial: ``initial(y) -> x_0`` (default: ``y`` itself, as for denoising).
        readout: optional ``readout(state) -> x_hat``.

    Example:
        >>> import torch
        >>> A = torch.eye(3, dtype=torch.float64) * 2
        >>> s = FunctionSolver(lambda x, y, k: x - 0.1 * (x @ A.T - y) @ A, n_iter=4)
        >>> as_solver(s).iterates(torch.ones(1, 3, dtype=torch.float64))[-1].shape
        torch.Size([1, 3])
    """

    step: Callable[[State, torch.Tensor, int], State]
    n_iter: int
    initial: Callable[[torch.Tensor], State] | None = None
    readout: Callable[[State], torch.Tensor] | None = None

    def __post_init__(self) -> None:
        """Check ``n_iter`` and ``step``; without ``initial`` the state starts at ``y``."""
        if not (isinstance(self.n_iter, int) and not isinstance(self.n_iter, bool) and self.n_iter >= 1):
            raise ValueError(f"n_iter={self.n_iter!r}: expected an integer >= 1")
        if not callable(self.step):
            raise ValueError(f"step={self.step!r}: expected a callable step(x, y, k)")
        if self.initial is None:
            self.initial = _identity_initial


def _identity_initial(y: torch.Tensor) -> torch.Tensor:
    return y


def _tensors(state: State) -> tuple[torch.Tensor, ...]:
    if isinstance(state, torch.Tensor):
        return (state,)
    if isinstance(state, (tuple, list)) and state and all(isinstance(t, torch.Tensor) for t in state):
        return tuple(state)
    raise ValueError(
        f"solver state is a {type(state).__name__}: expected a batch-first tensor or a tuple of tensors"
    )


class SolverView:
    """What the analysis sees of a solver: the protocol members plus derived maps.

    ``as_solver(obj)`` builds one.  It never changes ``obj``; :meth:`prepared` returns a view of an
    eval-mode, frozen copy in a given dtype (for ``nn.Module`` solvers).
    """

    def __init__(self, solver: Any, *, loss: Callable[..., torch.Tensor] | None = None):
        """Check that ``solver`` has the protocol's members (``ValueError`` naming a missing one)."""
        for name in ("n_iter", "initial", "step"):
            if not hasattr(solver, name):
                raise ValueError(
                    f"{type(solver).__name__} is not a solver: it has no {name!r} "
                    "(expected n_iter, initial(y) and step(x, y, k))"
                )
        n = solver.n_iter
        if not (isinstance(n, int) and not isinstance(n, bool) and n >= 1):
            raise ValueError(f"{type(solver).__name__}.n_iter={n!r}: expected an integer >= 1")
        if not (callable(solver.initial) and callable(solver.step)):
            raise ValueError(f"{type(solver).__name__}: initial and step must be callable")
        self.solver = solver
        self.n_iter: int = int(n)
        self.loss_fn = squared_error if loss is None else loss
        self.custom_loss = loss is not None

    # -- identity --------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The solver's class name."""
        return type(self.solver).__name__

    def has(self, capability: str) -> bool:
        """Whether the solver offers an optional capability (``readout``, ``regularizer``, ...)."""
        if capability == "regularizer":
            return callable(getattr(self.solver, "regularizer", None))
        if capability == "jitter":  # the solver runs with a given noise rule (jittered, noise_scale)
            return all(callable(getattr(self.solver, c, None)) for c in ("jittered", "noise_scale"))
        return callable(getattr(self.solver, capability, None))

    def describe(self) -> dict[str, Any]:
        """A JSON-safe description: class, K, capabilities and the solver's own config if it has one."""
        caps = [
            c for c in ("readout", "regularizer", "regularizer_input", "step_size", "jitter") if self.has(c)
        ]
        d: dict[str, Any] = {
            "class": f"{type(self.solver).__module__}.{self.name}",
            "n_iter": self.n_iter,
            "capabilities": caps,
            "loss": "custom" if self.custom_loss else "squared_error",
        }
        cfg = getattr(self.solver, "config", None)
        if callable(cfg):
            try:
                d["config"] = cfg()
            except Exception:  # noqa: BLE001 - a foreign config() is informative only
                pass
        return d

    # -- dtype / device --------------------------------------------------------------------------
    def _reference(self) -> torch.Tensor | None:
        if isinstance(self.solver, nn.Module):
            for t in self.solver.parameters():
                return t
            for t in self.solver.buffers():
                return t
        return None

    def dtype(self, default: torch.dtype = torch.float64) -> torch.dtype:
        """The dtype of the solver's first parameter (or buffer); ``default`` when it has none."""
        ref = self._reference()
        return default if ref is None else ref.dtype

    def device(self, default: torch.device | str = "cpu") -> torch.device:
        """The device of the solver's first parameter (or buffer); ``default`` when it has none."""
        ref = self._reference()
        return torch.device(default) if ref is None else ref.device

    def prepared(self, dtype: torch.dtype | None = torch.float64) -> SolverView:
        """A view of an eval-mode copy with frozen parameters in ``dtype`` (``None`` keeps the dtype).

        Plain-object solvers (no ``nn.Module``) are used as they are: their dtype is the caller's.
        Returns ``self`` when the solver already is such a copy.
        """
        s = self.solver
        if not isinstance(s, nn.Module):
            return self
        want = self.dtype() if dtype is None else dtype
        frozen = not any(p.requires_grad for p in s.parameters())
        if not s.training and frozen and self.dtype() == want and getattr(s, "_landscape_prepared", False):
            return self
        gen = getattr(s, "generator", None)
        if gen is not None:
            s.generator = None  # generators do not deep-copy; the copy runs the clean solver anyway
        try:
            m = copy.deepcopy(s)
        finally:
            if gen is not None:
                s.generator = gen
        m = m.to(want).eval().requires_grad_(False)
        m._landscape_prepared = True  # type: ignore[attr-defined]
        view = SolverView(m, loss=self.loss_fn if self.custom_loss else None)
        return view

    # -- the maps --------------------------------------------------------------------------------
    def initial(self, y: torch.Tensor) -> State:
        """The solver's ``initial(y)``: the state :math:`x_0`."""
        return self.solver.initial(y)

    def step(self, x: State, y: torch.Tensor, k: int) -> State:
        """The solver's ``step(x, y, k)``: the state :math:`x_{k+1}`."""
        return self.solver.step(x, y, k)

    def readout(self, state: State) -> torch.Tensor:
        """The estimate in ``state``: the solver's ``readout``, else the state (a tuple's first tensor)."""
        fn = getattr(self.solver, "readout", None)
        if callable(fn):
            return fn(state)
        return _tensors(state)[0]

    def check_k(self, k: Any, *, last: bool = True) -> int:
        """``k`` if it is an iterate index ``0..K`` (``0..K-1`` with ``last=False``), else ``ValueError``."""
        hi = self.n_iter if last else self.n_iter - 1
        if not (isinstance(k, int) and not isinstance(k, bool) and 0 <= k <= hi):
            raise ValueError(f"k={k!r}: expected an iterate index 0..{hi} (K={self.n_iter})")
        return k

    def tail(self, x_k: State, y: torch.Tensor, k: int) -> State:
        r""":math:`\Phi_{k\to K}(x_k)`: the remaining ``K - k`` steps (``k = K``: the identity)."""
        self.check_k(k)
        x = x_k
        for j in range(k, self.n_iter):
            x = self.step(x, y, j)
        return x

    def iterates(self, y: torch.Tensor) -> list[State]:
        """The clean states :math:`x_0..x_K` for the batch ``y`` (detached, no graph)."""
        with torch.no_grad():
            x = self.initial(y)
            out = [_detach(x)]
            for k in range(self.n_iter):
                x = self.step(x, y, k)
                out.append(_detach(x))
        return out

    def output(self, y: torch.Tensor) -> torch.Tensor:
        """The estimate :math:`\\hat x = \\mathrm{readout}(x_K)` (no graph)."""
        return self.readout(self.iterates(y)[-1])

    def loss(self, x_k: State, y: torch.Tensor, x_true: torch.Tensor, k: int) -> torch.Tensor:
        """Per-sample loss :math:`L_k(x_k)`, shape ``(B,)``."""
        out = self.loss_fn(self.readout(self.tail(x_k, y, k)), x_true, y)
        B = x_true.shape[0]
        if out.dim() == 0 and B == 1:
            out = out.reshape(1)
        if tuple(out.shape) != (B,):
            raise ValueError(f"loss returned shape {tuple(out.shape)}: expected one value per sample, ({B},)")
        return out

    # -- flat per-sample state -------------------------------------------------------------------
    @staticmethod
    def flatten(state: State) -> tuple[torch.Tensor, Callable[[torch.Tensor], State]]:
        """``(flat (B, n), unflatten)`` for a state of one tensor or a tuple of batch-first tensors."""
        ts = _tensors(state)
        B = ts[0].shape[0]
        shapes = [tuple(t.shape[1:]) for t in ts]
        sizes = [math.prod(s) for s in shapes]
        flat = torch.cat([t.reshape(B, -1) for t in ts], dim=1)
        single = isinstance(state, torch.Tensor)

        def unflatten(f: torch.Tensor) -> State:
            b = f.shape[0]
            parts = [p.reshape(b, *s) for p, s in zip(f.split(sizes, dim=1), shapes)]
            return parts[0] if single else tuple(parts)

        return flat, unflatten

    # -- optional capabilities ---------------------------------------------------------------------
    def regularizer(self, k: int) -> Callable[[torch.Tensor], torch.Tensor]:
        """The solver's learned regularizer of step ``k``; ``ValueError`` when it offers none."""
        if not self.has("regularizer"):
            raise ValueError(f"{self.name} offers no regularizer(k): the regularizer analyses need it")
        return self.solver.regularizer(k)

    def regularizer_input(self, x_k: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
        """Where step ``k`` evaluates its regularizer (the solver's own ``regularizer_input``, else ``x_k``)."""
        fn = getattr(self.solver, "regularizer_input", None)
        if callable(fn):
            with torch.no_grad():
                return fn(x_k, y, k)
        return x_k


def _detach(state: State) -> State:
    if isinstance(state, torch.Tensor):
        return state.detach()
    return tuple(t.detach() for t in _tensors(state))


def as_solver(solver: Any, *, loss: Callable[..., torch.Tensor] | None = None) -> SolverView:
    """Check the protocol and return the :class:`SolverView` the analysis uses.

    Args:
        solver: anything with ``n_iter``, ``initial(y)`` and ``step(x, y, k)``, or a view already.
        loss: optional ``loss(x_hat, x_true, y) -> (B,)`` replacing :func:`squared_error`.
    """
    if isinstance(solver, SolverView):
        if loss is None:
            return solver
        solver = solver.solver
    return SolverView(solver, loss=loss)
