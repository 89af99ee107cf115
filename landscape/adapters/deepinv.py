r"""deepinv's unfolded models as landscape solvers.

deepinv runs an unfolded network (``deepinv.unfolded.unfolded_builder`` / ``BaseUnfold``, or
``deepinv.optim.BaseOptim`` with ``unfold=True``) as ``K = max_iter`` applications of one fixed-point
iterator to a dict state, with the data fidelity, prior and parameters of iteration ``k``:

.. code-block:: python

    X = model.init_iterate_fn(y, physics)                   # {"est": (x_0, z_0), "cost": ...}
    for k in range(K):
        X = iterator(X, f_k, g_k, params_k, y, physics)     # f_k, g_k, params_k: iteration k's
    x_hat = model.get_output(X)                             # X["est"][0] by default

:class:`DeepinvSolver` is that loop cut at the solver protocol's seams:

.. math:: x_0 = \mathrm{est}_0[:n],\qquad x_{k+1} = T_k(x_k) = \mathrm{iterator}
   \big(\{\mathrm{est}: x_k,\ \mathrm{it}: k\}, f_k, g_k, \theta_k, y, A\big)[\mathrm{est}][:n]

where ``n`` is the number of leading ``est`` components the iterator *reads* (one for GD / PGD / HQS,
two for FISTA / ADMM / DRS, three for Chambolle–Pock): components the next iteration overwrites without
reading (PGD's ``z``, the gradient step before the prox) are outputs, not state, and would only add exact
zero rows to the Hessian.  The state is one tensor when ``n = 1``, else a tuple of batch-first tensors.

A deep-equilibrium model (``DEQ_builder`` / ``BaseDEQ``, or ``DEQ=True``) runs ``max_iter`` iterations
without a graph and then one more with iteration ``max_iter - 1``'s parameters; its forward map is those
``max_iter + 1`` applications, so here ``n_iter = max_iter + 1``.  The curvature is that of this
unrolled forward map (deepinv's implicit backward pass is a training device and is not used).

deepinv is imported only when an adapter is built, so ``import landscape`` never needs it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from landscape.solver import as_solver

__all__ = ["DeepinvSolver", "from_deepinv", "STATE_COMPONENTS", "INSTALL_HINT"]

INSTALL_HINT = (
    "install a CPU torch first, then the extra under a constraint that keeps it: "
    "pip install torch==2.13.0 && echo torch==2.13.0 > c.txt && pip install -c c.txt 'landscape[deepinv]' "
    "(details and the torchvision caveat: docs/DEEPINV.md)"
)

# How many leading components of X["est"] each deepinv iterator reads (read from deepinv 0.5's
# optim_iterators/*.py); the remaining components are outputs that the next iteration overwrites.
STATE_COMPONENTS: dict[str, int] = {
    "GDIteration": 1,
    "MDIteration": 1,
    "PGDIteration": 1,
    "PMDIteration": 1,
    "HQSIteration": 1,
    "SIRTIteration": 1,
    "MLEMIteration": 1,
    "OSEMIteration": 1,
    "BSREMIteration": 1,
    "FISTAIteration": 2,
    "ADMMIteration": 2,
    "DRSIteration": 2,
    "BlindRLIteration": 2,
    "CPIteration": 3,
}


# Iterators whose data-fidelity step is a prox, i.e. physics.prox_l2 for the L2 fidelity.
PROX_FIDELITY_ITERATORS = frozenset({"HQSIteration", "ADMMIteration", "DRSIteration"})


def _require_deepinv() -> Any:
    try:
        import deepinv
    except ImportError as err:
        raise ImportError(
            f"landscape.adapters.deepinv needs deepinv, which is not installed: {INSTALL_HINT}"
        ) from err
    except RuntimeError as err:
        # e.g. "operator torchvision::nms does not exist": a torchvision built for another torch
        raise ImportError(
            f"deepinv is installed but could not be imported ({err}); its torchvision must be built for the "
            "installed torch (a CUDA torchvision beside a CPU torch fails so): see docs/DEEPINV.md"
        ) from err
    return deepinv


def _known_forwards() -> tuple[Callable[..., Any], ...]:
    from deepinv.optim import BaseOptim
    from deepinv.unfolded import BaseDEQ, BaseUnfold

    return (BaseOptim.forward, BaseUnfold.forward, BaseDEQ.forward)


def _is_deq(model: Any) -> bool:
    from deepinv.unfolded import BaseDEQ

    return isinstance(model, BaseDEQ) or bool(getattr(model, "DEQ", False))


def _state_components(iterator: Any) -> int | None:
    for cls in type(iterator).__mro__:
        if cls.__name__ in STATE_COMPONENTS:
            return STATE_COMPONENTS[cls.__name__]
    return None


def _plain_modules(container: Any) -> list[nn.Module]:
    """Modules held in a plain list (a non-unfolded ``BaseOptim``'s priors), which ``.to()`` would miss."""
    if container is None or isinstance(container, nn.Module):
        return []
    return [m for m in container if isinstance(m, nn.Module)]


def _as_tuple(state: Any) -> tuple[torch.Tensor, ...]:
    if isinstance(state, torch.Tensor):
        return (state,)
    if isinstance(state, (tuple, list)) and state and all(isinstance(t, torch.Tensor) for t in state):
        return tuple(state)
    raise ValueError(f"state is a {type(state).__name__}: expected a tensor or a tuple of tensors")


def _pack(parts: tuple[torch.Tensor, ...]) -> Any:
    return parts[0] if len(parts) == 1 else parts


class DeepinvSolver(nn.Module):
    r"""A deepinv unfolded (or DEQ) model, with its physics, as a landscape solver.

    Holds ``model`` and ``physics`` as submodules, so landscape can deep-copy it, cast it with
    ``.to(torch.float64)``, freeze it and put it in eval mode (``as_solver(s).prepared()``).

    Args:
        model: a ``deepinv.optim.BaseOptim`` — ``unfolded_builder(...)``, ``BaseUnfold``,
            ``BaseOptim(..., unfold=True)``, ``DEQ_builder(...)`` / ``BaseDEQ`` — whose forward is
            deepinv's fixed-point loop, without early stopping, backtracking or Anderson acceleration.
        physics: the ``deepinv.physics.Physics`` the model is run with (``model(y, physics)``).
        n_state: how many leading ``X["est"]`` components form the state; default: the iterator's entry
            in :data:`STATE_COMPONENTS`, or every tensor component for an iterator not listed.
        init: optional ``init`` passed to ``model.init_iterate_fn`` (as ``model(y, physics, init=...)``).

    The protocol members:

    * ``n_iter`` — ``model.max_iter`` (``+ 1`` for a DEQ model);
    * ``initial(y)`` — ``model.init_iterate_fn(y, physics)["est"][:n]`` (``A^T y`` unless a custom init);
    * ``step(x, y, k)`` — one call of ``model.fixed_point.iterator`` with iteration ``k``'s data fidelity,
      prior and parameters (as ``FixedPoint`` selects them), on ``X = {"est": x, "it": k}``;
    * ``readout(state)`` — ``model.get_output({"est": state})`` (``state[0]`` for a DEQ model).

    Example:
        .. code-block:: python

            import deepinv as dinv
            from landscape.adapters.deepinv import from_deepinv

            physics = dinv.physics.Inpainting((1, 8, 8), mask=0.7)
            model = dinv.unfolded.unfolded_builder(
                "PGD", params_algo={"stepsize": [1.0] * 4, "g_param": 0.1},
                data_fidelity=dinv.optim.data_fidelity.L2(), prior=dinv.optim.PnP(denoiser), max_iter=4)
            view = from_deepinv(model, physics).prepared()    # float64, eval, frozen copy
            x_k = view.iterates(y)[2]                          # the state at iterate k = 2
    """

    def __init__(self, model: Any, physics: Any, *, n_state: int | None = None, init: Any = None):
        """Wrap ``model`` and ``physics``; ``ValueError`` for an unsupported model or a bad ``n_state``."""
        super().__init__()
        _require_deepinv()
        from deepinv.optim import BaseOptim

        if not isinstance(model, BaseOptim):
            raise ValueError(
                f"model is a {type(model).__name__}: expected a deepinv.optim.BaseOptim "
                "(unfolded_builder, BaseUnfold, DEQ_builder, or an optimizer with unfold=True)"
            )
        _check_supported(model)
        if n_state is not None and not (
            isinstance(n_state, int) and not isinstance(n_state, bool) and n_state >= 1
        ):
            raise ValueError(f"n_state={n_state!r}: expected an integer >= 1")
        if not hasattr(model, "params_algo") and hasattr(model, "init_params_algo"):
            # a non-unfolded BaseOptim creates params_algo at its first forward; do as that forward does,
            # so step() works on a model (or a copy of one) that has not run yet
            model.params_algo = model.init_params_algo.copy()
        self.model = model
        self.physics = physics
        # priors / fidelities in plain lists (a non-unfolded BaseOptim) would escape .to() and deepcopy's view
        self.unregistered = nn.ModuleList(_plain_modules(model.prior) + _plain_modules(model.data_fidelity))
        self.deq = _is_deq(model)
        self.max_iter = int(model.max_iter)
        self.n_iter = self.max_iter + 1 if self.deq else self.max_iter
        self.n_state = n_state if n_state is not None else _state_components(model.fixed_point.iterator)
        self.init = init
        _warn_if_prox_loses_curvature(model, physics)

    # -- the protocol ----------------------------------------------------------------------------
    def initial(self, y: torch.Tensor) -> Any:
        """The state :math:`x_0`: the first ``n`` components of deepinv's initial ``X["est"]``."""
        m = self.model  # older deepinv has init_iterate_fn(y, physics, F_fn=None): pass init by name
        X = (
            m.init_iterate_fn(y, self.physics)
            if self.init is None
            else m.init_iterate_fn(y, self.physics, init=self.init)
        )
        est = tuple(X["est"])
        n = self.n_state
        if n is None:
            n = next((i for i, t in enumerate(est) if not isinstance(t, torch.Tensor)), len(est))
        if n == 0 or n > len(est) or not all(isinstance(t, torch.Tensor) for t in est[:n]):
            raise ValueError(
                f"{type(self.model.fixed_point.iterator).__name__}: the initial X['est'] has "
                f"{[type(t).__name__ for t in est]}, which gives no state of {n} tensors (set n_state=)"
            )
        return _pack(est[:n])

    def step(self, x: Any, y: torch.Tensor, k: int) -> Any:
        r""":math:`x_{k+1}`: one iteration of the model's own iterator with iteration ``k``'s terms."""
        est = _as_tuple(x)
        fp = self.model.fixed_point
        j = min(k, self.max_iter - 1)  # a DEQ's extra step reuses the last iteration's terms
        params, fidelity, prior = (
            fn(j) if callable(fn := getattr(fp, name, None)) else None
            for name in ("update_params_fn", "update_data_fidelity_fn", "update_prior_fn")
        )
        try:
            out = fp.iterator({"est": est, "it": k}, fidelity, prior, params, y, self.physics)
        except (IndexError, ValueError) as err:
            raise ValueError(
                f"{type(fp.iterator).__name__} failed on a state of {len(est)} component(s) ({err}); "
                "if it reads more of X['est'], pass n_state="
            ) from err
        return _pack(tuple(out["est"])[: len(est)])

    def readout(self, state: Any) -> torch.Tensor:
        """The estimate deepinv returns from the final state (``get_output``; ``est[0]`` for DEQ)."""
        est = _as_tuple(state)
        if self.deq:
            return est[0]
        return self.model.get_output({"est": est})

    # -- description -----------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """JSON-safe description (``SolverView.describe`` records it)."""
        import deepinv

        return {
            "adapter": "deepinv",
            "deepinv": getattr(deepinv, "__version__", "unknown"),
            "model": type(self.model).__name__,
            "iterator": type(self.model.fixed_point.iterator).__name__,
            "physics": type(self.physics).__name__,
            "max_iter": self.max_iter,
            "deq": self.deq,
            "n_state": self.n_state,
        }


def _check_supported(model: Any) -> None:
    name = type(model).__name__
    if type(model).forward not in _known_forwards():
        raise ValueError(
            f"{name} overrides forward(): the adapter reproduces only deepinv's fixed-point loop "
            "(BaseOptim / BaseUnfold / BaseDEQ forward)"
        )
    fp = model.fixed_point
    if getattr(model, "early_stop", False) or getattr(fp, "early_stop", False):
        raise ValueError(
            f"{name} stops early: the number of iterations would depend on y (build it with early_stop=False)"
        )
    if getattr(model, "backtracking", False):
        raise ValueError(
            f"{name} backtracks: its step size changes during a forward pass (build it without backtracking)"
        )
    anderson = getattr(fp, "anderson_acceleration_config", None) is not None  # deepinv >= 0.3.6
    if anderson or getattr(fp, "anderson_acceleration", False) is True:  # older deepinv: a bool
        raise ValueError(
            f"{name} uses Anderson acceleration: its iterate mixes a history, which is not a state of X['est']"
        )


def _warn_if_prox_loses_curvature(model: Any, physics: Any) -> None:
    """deepinv's generic prox_l2 (conjugate gradient) differentiates implicitly by default: its first
    derivative is approximate and its second derivative is dropped, so Hessians through it come out wrong
    (zero along the prox) — measured, not assumed (tests/adapters/test_deepinv.py)."""
    names = {c.__name__ for c in type(model.fixed_point.iterator).__mro__}
    if not names & PROX_FIDELITY_ITERATORS or not getattr(physics, "implicit_backward_solver", False):
        return
    from deepinv.physics import LinearPhysics

    if getattr(type(physics), "prox_l2", None) is LinearPhysics.prox_l2:  # not a closed-form override
        warnings.warn(
            f"{type(physics).__name__}.prox_l2 runs conjugate gradient with implicit_backward_solver=True: "
            "Hessians through it lose their second-order part; set physics.implicit_backward_solver = False "
            "(and a tight physics.tol) before analysing",
            UserWarning,
            stacklevel=3,
        )


def from_deepinv(model: Any, physics: Any, *, loss: Callable[..., torch.Tensor] | None = None, **kwargs: Any):
    """``as_solver(DeepinvSolver(model, physics, **kwargs), loss=loss)``: the view every analysis takes."""
    return as_solver(DeepinvSolver(model, physics, **kwargs), loss=loss)
