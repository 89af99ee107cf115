r"""Result objects of the curvature estimators: small frozen dataclasses, JSON-safe through ``to_dict()``.

Every result records how it was obtained (method, settings, seed, dtype, backend when known), what it
cost (``n_matvecs``, ``wall_time``) and whether it can be trusted (``converged`` and ``reason``).  An
estimator never returns an unconverged answer silently: ``converged=False`` comes with a reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from landscape.io import from_json_array, from_json_float, json_safe

__all__ = [
    "Eigenpairs",
    "Estimate",
    "Density",
    "Diagonal",
    "diagonal_rel_stderr",
    "LOSS_CONVENTION",
]

#: The loss every curvature quantity at iterate k differentiates (recorded in every analysis result).
LOSS_CONVENTION = "L_k(x_k) = ||Phi_{k->K}(x_k; y, theta) - x*||^2, sum over entries, one sample"


_ARRAYS = ("values", "residuals", "vectors", "samples", "grid", "density", "nodes", "weights")
_FLOATS = ("estimate", "stderr", "tol", "wall_time", "sigma", "mean", "mean_stderr")


class _Result:
    """Shared ``to_dict``/``from_dict`` for the frozen result dataclasses (JSON round trip: NaN and ±Inf are
    ``"nan"``/``"inf"``/``"-inf"`` in JSON (:func:`landscape.io.json_safe`) and numbers again after ``from_dict``,
    which also reads the ``null`` older files wrote; fields in ``_exclude`` are left out unless asked)."""

    _exclude: tuple[str, ...] = ()
    _arrays: tuple[str, ...] = ()  # a class's own array fields (read back as arrays whatever their name)

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        """Rebuild a result from :meth:`to_dict` output (extra keys such as ``kind`` are ignored)."""
        if d.get("kind", cls.__name__) != cls.__name__:
            raise ValueError(f"kind={d.get('kind')!r}: expected a {cls.__name__} record")
        kw: dict[str, Any] = {}
        for f in fields(cls):  # type: ignore[arg-type]
            if f.name not in d:
                continue
            v = d[f.name]
            if (f.name in _ARRAYS or f.name in cls._arrays) and v is not None:
                v = from_json_array(v)
            elif f.name in _FLOATS:
                v = from_json_float(v)
            kw[f.name] = v
        return cls(**kw)

    def to_dict(self, *, include_vectors: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": type(self).__name__}
        for f in fields(self):  # type: ignore[arg-type]
            if f.name in self._exclude and not include_vectors:
                continue
            out[f.name] = json_safe(getattr(self, f.name))
        return out


@dataclass(frozen=True)
class Eigenpairs(_Result):
    r"""Extreme eigenpairs of a symmetric operator.

    ``values`` are ordered as requested: ``which='LA'`` descending (top-k), ``'SA'`` ascending
    (bottom-k), ``'LM'`` by decreasing magnitude.  ``residuals[i]`` is :math:`\|Hv_i - \lambda_i v_i\|`
    for the unit vector :math:`v_i` (exact for power iteration and eigsh, the Lanczos estimate
    :math:`|\beta_m s_{mi}|` for Lanczos; ``|λ_i − λ_true| ≤ residuals[i]`` for some true eigenvalue).
    ``vectors`` (k, n) are kept in memory but left out of ``to_dict()`` unless asked for.
    """

    values: np.ndarray
    residuals: np.ndarray
    n_matvecs: int
    converged: bool
    reason: str
    method: str
    which: str
    tol: float
    seed: int | None
    dtype: str
    wall_time: float
    vectors: np.ndarray | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    _exclude = ("vectors",)

    @property
    def k(self) -> int:
        """The number of eigenpairs."""
        return int(len(self.values))


@dataclass(frozen=True)
class Estimate(_Result):
    r"""A scalar Monte-Carlo estimate (a trace) with its standard error.

    ``samples`` are the per-probe values whose mean is the stochastic part of the estimate; ``stderr``
    is :math:`s/\sqrt{m}` over them (0 for an exact answer).  ``rel_stderr = stderr / |estimate|``.
    """

    estimate: float
    stderr: float
    n_matvecs: int
    converged: bool
    reason: str
    method: str
    seed: int | None
    dtype: str
    wall_time: float
    samples: np.ndarray = field(default_factory=lambda: np.zeros(0))
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def rel_stderr(self) -> float:
        """The standard error relative to ``|estimate|`` (``inf`` for an estimate of 0)."""
        return self.stderr / abs(self.estimate) if self.estimate != 0 else math.inf

    def to_dict(self, *, include_vectors: bool = False) -> dict[str, Any]:
        """The JSON-safe dict of the fields, with the derived ``rel_stderr``."""
        d = super().to_dict(include_vectors=include_vectors)
        d["rel_stderr"] = json_safe(self.rel_stderr)
        return d


@dataclass(frozen=True)
class Density(_Result):
    r"""Spectral density by stochastic Lanczos quadrature with Gaussian broadening.

    .. math:: \phi(t) = \frac1R\sum_{r=1}^R\sum_{i=1}^m w^{(r)}_i\,
       \frac{1}{\sqrt{2\pi}\sigma}e^{-(t-\theta^{(r)}_i)^2/2\sigma^2}

    ``nodes``/``weights`` (R, m) are the Ritz values and squared first components of each run; the
    weights of a run sum to 1, so :math:`\int\phi = 1`.  ``mean`` is :math:`\int t\,\phi(t)\,dt`
    (an estimate of tr(H)/n, with ``mean_stderr`` over the runs).
    """

    grid: np.ndarray
    density: np.ndarray
    nodes: np.ndarray
    weights: np.ndarray
    sigma: float
    mean: float
    mean_stderr: float
    n_runs: int
    lanczos_steps: int
    n_matvecs: int
    converged: bool
    reason: str
    seed: int | None
    dtype: str
    wall_time: float
    method: str = "slq"
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def integral(self) -> float:
        """The trapezoid integral of the density over the grid (1 up to the broadening's tails)."""
        return float(np.trapezoid(self.density, self.grid))

    def to_dict(self, *, include_vectors: bool = False) -> dict[str, Any]:
        """The JSON-safe dict of the fields, with the derived ``integral``."""
        d = super().to_dict(include_vectors=include_vectors)
        d["integral"] = json_safe(self.integral)
        return d


def diagonal_rel_stderr(values: np.ndarray, stderr: np.ndarray) -> float:
    """A diagonal estimate's error in one number: the mean standard error over the mean :math:`|d_j|` (0 when
    exact, inf when the diagonal is 0 and the error is not)."""
    se = float(np.mean(stderr)) if np.size(stderr) else 0.0
    scale = float(np.mean(np.abs(values))) if np.size(values) else 0.0
    return 0.0 if se == 0 else se / scale if scale > 0 else math.inf


@dataclass(frozen=True)
class Diagonal(_Result):
    r"""The diagonal of a Hessian, one value per coordinate, shaped like the state (``(1, n)``, ``(2, H, W)``...).

    Exact (``method='dense'``, ``stderr`` all 0) or the unbiased estimate of Bekas, Kokiopoulou & Saad (2007)
    over Rademacher probes :math:`v_i`,

    .. math:: \hat d = \frac1m\sum_{i=1}^m v_i \odot Hv_i,\qquad
       \mathrm{Var}[(v\odot Hv)_j] = \sum_{l\ne j} H_{jl}^2,

    with each coordinate's standard error :math:`s_j/\sqrt m` from the probes' spread.  ``rel_stderr`` is the
    mean standard error over the mean :math:`|\hat d_j|` (what the stopping rule compares with its
    ``rtol``; a per-coordinate relative error is undefined where a diagonal entry is 0).
    """

    values: np.ndarray
    stderr: np.ndarray
    n_probes: int
    n_matvecs: int
    converged: bool
    reason: str
    method: str
    seed: int | None
    dtype: str
    wall_time: float
    settings: dict[str, Any] = field(default_factory=dict)

    _arrays = ("values", "stderr")

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the diagonal, that of one sample's state (``(1, n)``, ``(2, H, W)``...)."""
        return tuple(np.shape(self.values))

    @property
    def rel_stderr(self) -> float:
        """The mean standard error over the mean ``|d_j|`` (:func:`diagonal_rel_stderr`; what ``rtol`` is compared with)."""
        return diagonal_rel_stderr(self.values, self.stderr)

    def to_dict(self, *, include_vectors: bool = False) -> dict[str, Any]:
        """The JSON-safe dict of the fields, with the derived ``rel_stderr``."""
        d = super().to_dict(include_vectors=include_vectors)
        d["rel_stderr"] = json_safe(self.rel_stderr)
        return d
