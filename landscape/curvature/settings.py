"""The settings of the curvature pipeline: the one set of defaults every entry point shares.

Importing this module does not import torch (the CLI builds its ``--help`` from these defaults).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from landscape.io import json_safe

__all__ = ["CurvatureSettings", "BACKENDS", "METHODS"]

#: The Hessian-vector product backends (see :mod:`landscape.curvature.backends`).
BACKENDS: tuple[str, ...] = ("double_backward", "vjp_grad", "jvp_grad", "linearize")

_DTYPES = ("float64", "float32")
METHODS = ("auto", "dense", "estimate")

#: The settings with a fixed set of values: (name, the values, what the error message expects).
_CHOICES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("wrt", ("iterate", "params"), "'iterate' or 'params'"),
    ("method", METHODS, f"one of {METHODS}"),
    ("dtype", _DTYPES, f"one of {_DTYPES}"),
    ("backend", ("auto", *BACKENDS), f"'auto' or one of {BACKENDS}"),
    ("eig_method", ("lanczos", "eigsh", "power"), "'lanczos', 'eigsh' or 'power'"),
    ("trace_method", ("hutchpp", "hutchinson"), "'hutchpp' or 'hutchinson'"),
)


@dataclass(frozen=True)
class CurvatureSettings:
    r"""What to compute and how: the one set of defaults every entry point shares.

    Attributes:
        wrt: ``'iterate'`` (:math:`H_k` in the state) or ``'params'`` (θ, with x_k fixed).
        params: regexes selecting parameters for ``wrt='params'`` (all when empty).
        method: ``'auto'``, ``'dense'`` or ``'estimate'`` (see the module docstring).
        top_k / bottom_k: number of largest / smallest eigenvalues (λ_max and λ_min by default).
        eig_method: ``'lanczos'`` (both ends from one Krylov space), ``'eigsh'`` or ``'power'``.
        eig_tol: relative residual tolerance of the eigenpairs; ``eig_max_matvecs`` their budget.
        trace: estimate tr H (Hutch++, or ``trace_method='hutchinson'``) until the relative standard
            error is ``trace_rtol`` or ``trace_max_matvecs`` products are spent.
        trace_sq: estimate :math:`\operatorname{tr}H^2 = \|H\|_F^2` too (a size of H that cannot cancel, unlike the
            trace of an indefinite H): exact when dense, else Hutchinson on :math:`\|Hv\|^2` with the trace's
            ``trace_rtol`` and ``trace_max_matvecs``.  Dense results (and SLQ densities) also give
            :math:`\sum|\lambda|` and the positive and negative parts of the trace.
        diagonal: the Hessian's diagonal :math:`\operatorname{diag}(H_k)`, one value per coordinate of the state
            (shaped like it): exact from the dense Hessian when dense, else the estimate of Bekas, Kokiopoulou &
            Saad (mean of :math:`v\odot Hv` over Rademacher probes, each coordinate with its standard error) until
            the mean standard error is ``trace_rtol`` × the mean :math:`|H_{jj}|` or ``trace_max_matvecs`` products
            are spent (:mod:`landscape.curvature.diagonal`).  It adds ``dim`` numbers (and as many standard errors)
            per (iterate, sample) to the JSON.
        density: spectral density (SLQ with ``density_runs`` × ``density_steps``; exact when dense).
        backend: HVP backend or ``'auto'`` (timed, checked against double backward, chosen once).
        backend_budget_s: most seconds backend selection may take; it also never takes more than 10 % of the
            estimated analysis time, which is the binding limit on small problems.
        dense_max: largest dimension for which dense Hessians are formed.
        chain: dense iterate Hessians at several k from one backward sweep of the second-order chain rule
            (:mod:`landscape.curvature.chain`; ``(K - k_0) n`` one-step products instead of
            :math:`\sum_k (K-k) n`), checked against double backward, else formed per iterate.  Used with
            ``backend`` ``'auto'`` or ``'jvp_grad'`` (it is forward-over-reverse, one step at a time).
        dtype: ``'float64'`` (default) or ``'float32'``.
        seed: root of every estimator seed.
    """

    wrt: str = "iterate"
    params: tuple[str, ...] = ()
    method: str = "auto"
    top_k: int = 5
    bottom_k: int = 1
    eig_method: str = "lanczos"
    eig_tol: float = 1e-6
    eig_max_matvecs: int | None = None
    trace: bool = True
    trace_method: str = "hutchpp"
    trace_rtol: float | None = 0.01
    trace_max_matvecs: int = 300
    trace_sq: bool = True
    diagonal: bool = False
    density: bool = False
    density_runs: int = 8
    density_steps: int = 30
    backend: str = "auto"
    backend_budget_s: float = 30.0
    dense_max: int = 2048
    chain: bool = True
    dtype: str = "float64"
    seed: int = 0

    def __post_init__(self) -> None:
        """Check every choice, count and tolerance (``ValueError`` naming it); ``params`` becomes a tuple."""
        for name, allowed, expected in _CHOICES:
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}={getattr(self, name)!r}: expected {expected}")
        self._check_integers()
        self._check_numbers()
        for name in ("trace_sq", "diagonal", "chain"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}={getattr(self, name)!r}: expected True or False")
        if isinstance(self.params, str):
            object.__setattr__(self, "params", (self.params,))
        object.__setattr__(self, "params", tuple(self.params))

    def _check_integers(self) -> None:
        """The counts: ``top_k``, ``bottom_k`` and ``seed`` >= 0, the budgets and sizes >= 1."""
        for names, low in (
            (("top_k", "bottom_k", "seed"), 0),
            (("trace_max_matvecs", "density_runs", "density_steps", "dense_max"), 1),
        ):
            for name in names:
                v = getattr(self, name)
                if not (isinstance(v, int) and not isinstance(v, bool) and v >= low):
                    raise ValueError(f"{name}={v!r}: expected an integer >= {low}")
        if self.eig_max_matvecs is not None and not (
            isinstance(self.eig_max_matvecs, int) and self.eig_max_matvecs >= 1
        ):
            raise ValueError(f"eig_max_matvecs={self.eig_max_matvecs!r}: expected an integer >= 1 or None")

    def _check_numbers(self) -> None:
        """The tolerances and the selection budget: finite and > 0 (``trace_rtol`` may be None)."""
        if not (math.isfinite(self.eig_tol) and self.eig_tol > 0):
            raise ValueError(f"eig_tol={self.eig_tol!r}: expected a number > 0")
        if self.trace_rtol is not None and not (math.isfinite(self.trace_rtol) and self.trace_rtol > 0):
            raise ValueError(f"trace_rtol={self.trace_rtol!r}: expected a number > 0 or None")
        if not (math.isfinite(self.backend_budget_s) and self.backend_budget_s > 0):
            raise ValueError(f"backend_budget_s={self.backend_budget_s!r}: expected a number of seconds > 0")

    @property
    def torch_dtype(self) -> Any:
        """``dtype`` as a ``torch.dtype``."""
        import torch

        return getattr(torch, self.dtype)

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-safe dict (inverse of :meth:`from_dict`)."""
        return json_safe(asdict(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CurvatureSettings:
        """The settings ``d`` holds (keys that are not fields are ignored)."""
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        if "params" in kw:
            kw["params"] = tuple(kw["params"])
        return cls(**kw)
