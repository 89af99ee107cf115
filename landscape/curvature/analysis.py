r"""Curvature along the unrolled path: per-sample estimates at chosen iterates, aggregated over samples.

The notebook / CLI / report entry point::

    from landscape.curvature import analyze_iterates
    res = analyze_iterates(model, x_true, y, iterates="all", top_k=3, trace=True, seed=0, progress=True)
    ks, mean, se = res.series("trace")          # tr(H_k): mean and standard error over the samples
    print(res.table()); json.dump(res.to_dict(), f)

For each iterate k and each sample b the loss is
:math:`L_k(x_k) = \|\Phi_{k\to K}(x_k) - x^*_b\|^2` (sum over entries, y and θ fixed, eval mode, clean
solver); ``wrt='iterate'`` analyses :math:`\nabla^2_{x_k}L_k`, ``wrt='params'`` :math:`\nabla^2_\theta L_k`
(with :math:`x_k` held fixed).  Every estimator gets its own seed derived from ``(seed, k, b)``; every
result records the seed, dtype, backend, matvecs, convergence and wall time.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np
import torch

from landscape.curvature.backends import BackendChoice
from landscape.curvature.density import spectral_density
from landscape.curvature.eigen import top_eigenpairs
from landscape.curvature.operators import (
    iterate_loss,
    iterates_of,
    make_iterate_hvp,
    make_param_hvp,
    prepare_model,
)
from landscape.curvature.results import LOSS_CONVENTION, Density, Eigenpairs, Estimate, jsonable
from landscape.curvature.trace import estimate_trace
from landscape.models import UnrolledGD

__all__ = ["CurvatureSettings", "SampleCurvature", "IterateSummary", "IterateCurvature", "analyze_iterates", "parse_iterates",
           "derive_seed", "summarize"]

_DTYPES = {"float64": torch.float64, "float32": torch.float32}


@dataclass(frozen=True)
class CurvatureSettings:
    """What to compute and how (the same object the CLI fills from its flags).

    ``top_k``/``bottom_k``: number of largest / smallest eigenvalues (0 = none) by ``eig_method``
    (``'lanczos'``, ``'eigsh'`` or ``'power'``) to relative residual ``eig_tol``.  ``trace``: Hutch++
    (or ``'hutchinson'``) until the relative standard error is ``trace_rtol`` or ``trace_max_matvecs``
    are spent.  ``density``: SLQ with ``density_runs`` × ``density_steps``.  ``params``: regexes selecting
    parameters for ``wrt='params'`` (all when empty).  ``backend='auto'`` times the HVP backends once
    (about ``backend_budget_s`` s) on the first operator and uses the winner throughout.
    """

    wrt: str = "iterate"
    params: tuple[str, ...] = ()
    top_k: int = 1
    bottom_k: int = 0
    eig_method: str = "lanczos"
    eig_tol: float = 1e-6
    eig_max_matvecs: int | None = None
    trace: bool = True
    trace_method: str = "hutchpp"
    trace_rtol: float | None = 0.01
    trace_max_matvecs: int = 300
    density: bool = False
    density_runs: int = 8
    density_steps: int = 30
    backend: str = "auto"
    backend_budget_s: float = 1.0
    dtype: str = "float64"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.wrt not in ("iterate", "params"):
            raise ValueError(f"wrt={self.wrt!r}: expected 'iterate' or 'params'")
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype={self.dtype!r}: expected one of {sorted(_DTYPES)}")
        for name in ("top_k", "bottom_k"):
            v = getattr(self, name)
            if not (isinstance(v, int) and v >= 0):
                raise ValueError(f"{name}={v!r}: expected an integer >= 0")
        if isinstance(self.params, str):
            object.__setattr__(self, "params", (self.params,))
        object.__setattr__(self, "params", tuple(self.params))

    @property
    def torch_dtype(self) -> torch.dtype:
        return _DTYPES[self.dtype]

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


def derive_seed(seed: int, *keys: int) -> int:
    """A reproducible 31-bit seed for the estimator of ``(seed, *keys)`` (e.g. iterate, sample)."""
    return int(np.random.SeedSequence([int(seed), *map(int, keys)]).generate_state(1)[0] & 0x7FFFFFFF)


@dataclass(frozen=True)
class SampleCurvature:
    """All estimates for one sample at one iterate."""

    k: int
    sample: int
    seed: int
    loss: float
    top: Eigenpairs | None = None
    bottom: Eigenpairs | None = None
    trace: Estimate | None = None
    density: Density | None = None
    wall_time: float = 0.0

    @property
    def converged(self) -> bool:
        return all(r.converged for r in (self.top, self.bottom, self.trace, self.density) if r is not None)

    def scalars(self) -> dict[str, float]:
        """Named scalars for aggregation: ``loss``, ``lambda_max``, ``lambda_i`` (i ≥ 2), ``lambda_min``,
        ``trace``, ``density_mean``."""
        out = {"loss": self.loss}
        if self.top is not None and self.top.k:
            out["lambda_max"] = float(self.top.values[0])
            for i, v in enumerate(self.top.values[1:], start=2):
                out[f"lambda_{i}"] = float(v)
        if self.bottom is not None and self.bottom.k:
            out["lambda_min"] = float(self.bottom.values[0])
        if self.trace is not None:
            out["trace"] = self.trace.estimate
        if self.density is not None:
            out["density_mean"] = self.density.mean
        return out

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: jsonable(getattr(self, f.name)) for f in fields(self)}
        d["converged"] = self.converged
        return d


@dataclass(frozen=True)
class IterateSummary:
    """Mean, standard error (s/√n) and count of one scalar over the samples at one iterate."""

    mean: float
    stderr: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


def summarize(values: list[float]) -> IterateSummary:
    """Mean ± standard error over samples (stderr is NaN with one sample)."""
    a = np.asarray(values, dtype=np.float64)
    se = float(a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else math.nan
    return IterateSummary(float(a.mean()), se, len(a))


@dataclass(frozen=True)
class IterateCurvature:
    """Result of :func:`analyze_iterates`: per-sample estimates and per-iterate aggregates."""

    settings: CurvatureSettings
    iterates: tuple[int, ...]
    samples: tuple[SampleCurvature, ...]
    K: int
    n_samples: int
    dim: int
    backend: str
    backend_choice: BackendChoice | None
    wall_time: float
    loss: str = LOSS_CONVENTION
    info: dict[str, Any] = field(default_factory=dict)

    def at(self, k: int) -> list[SampleCurvature]:
        """The per-sample results at iterate ``k``."""
        return [s for s in self.samples if s.k == k]

    def summary(self, k: int) -> dict[str, IterateSummary]:
        """Aggregates at iterate ``k``: for each scalar name, mean ± stderr over samples."""
        per = [s.scalars() for s in self.at(k)]
        names = sorted({n for p in per for n in p})
        return {n: summarize([p[n] for p in per if n in p]) for n in names}

    def series(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(k, mean, stderr)`` arrays of one scalar across the analysed iterates (for plots)."""
        ks, means, ses = [], [], []
        for k in self.iterates:
            s = self.summary(k)
            if name in s:
                ks.append(k)
                means.append(s[name].mean)
                ses.append(s[name].stderr)
        return np.asarray(ks), np.asarray(means), np.asarray(ses)

    @property
    def converged(self) -> bool:
        return all(s.converged for s in self.samples)

    def table(self) -> str:
        """A plain-text table: one row per iterate, mean ± stderr of each scalar."""
        names: list[str] = []
        for k in self.iterates:
            for n in self.summary(k):
                if n not in names:
                    names.append(n)
        head = ["k"] + names
        rows = [head]
        for k in self.iterates:
            s = self.summary(k)
            rows.append([str(k)] + [f"{s[n].mean:.4g} ± {s[n].stderr:.2g}" if n in s else "-" for n in names])
        w = [max(len(r[i]) for r in rows) for i in range(len(head))]
        return "\n".join("  ".join(c.rjust(w[i]) for i, c in enumerate(r)) for r in rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "IterateCurvature",
            "loss": self.loss,
            "wrt": self.settings.wrt,
            "settings": self.settings.to_dict(),
            "K": self.K,
            "iterates": list(self.iterates),
            "n_samples": self.n_samples,
            "dim": self.dim,
            "dtype": self.settings.dtype,
            "seed": self.settings.seed,
            "backend": self.backend,
            "backend_choice": None if self.backend_choice is None else self.backend_choice.to_dict(),
            "converged": self.converged,
            "wall_time": self.wall_time,
            "aggregate": {str(k): {n: v.to_dict() for n, v in self.summary(k).items()} for k in self.iterates},
            "per_sample": [s.to_dict() for s in self.samples],
            "info": jsonable(self.info),
        }


def parse_iterates(spec: Any, n_iter: int) -> list[int]:
    """Iterate indices from ``'all'``/``None`` (0..K), ``'last'`` (K), an int, ``"0,3,5"`` or a list.

    Returns them sorted and without repeats; ``ValueError`` names the bad value and the range 0..K.
    """
    if spec is None or (isinstance(spec, str) and spec.strip().lower() == "all"):
        return list(range(n_iter + 1))
    if isinstance(spec, str) and spec.strip().lower() == "last":
        return [n_iter]
    if isinstance(spec, str):
        try:
            ks = [int(s) for s in spec.split(",") if s.strip()]
        except ValueError:
            raise ValueError(
                f"iterates={spec!r}: expected 'all', 'last' or comma-separated integers like 0,3,5"
            ) from None
    elif isinstance(spec, int) and not isinstance(spec, bool):
        ks = [spec]
    else:
        try:
            ks = [int(s) for s in spec]
        except (TypeError, ValueError):
            raise ValueError(f"iterates={spec!r}: expected 'all', an integer or a list of integers") from None
    if not ks:
        raise ValueError(f"iterates={spec!r}: expected at least one iterate")
    bad = [k for k in ks if not 0 <= k <= n_iter]
    if bad:
        raise ValueError(f"iterates={spec!r}: k={bad[0]} is outside 0..K with K={n_iter}")
    return sorted(set(ks))


def analyze_iterates(
    model: UnrolledGD,
    x_true: torch.Tensor,
    y: torch.Tensor,
    *,
    iterates: Any = "all",
    settings: CurvatureSettings | None = None,
    progress: bool = False,
    **overrides: Any,
) -> IterateCurvature:
    """Curvature of the per-sample loss at the chosen iterates for every sample of the batch.

    Args:
        model: an unrolled network (copied to eval mode, frozen, in ``settings.dtype``; unchanged).
        x_true, y: batches (B, *signal_shape) of ground truths and measurements.
        iterates: ``'all'``, ``'last'``, an int, a list of ints or a string ``"0,5,10"``.
        settings: a :class:`CurvatureSettings`; keyword ``overrides`` replace its fields
            (e.g. ``top_k=3, trace=True, density=True, seed=1``).
        progress: show a tqdm bar over (iterate, sample).
    """
    t_start = time.perf_counter()
    settings = replace(settings or CurvatureSettings(), **overrides)
    dtype = settings.torch_dtype
    m = prepare_model(model, dtype)
    K = m.n_iter
    ks = tuple(parse_iterates(iterates, K))
    shape = tuple(m.cfg.signal_shape)
    if tuple(x_true.shape) == shape:
        x_true = x_true.unsqueeze(0)
    if tuple(x_true.shape[1:]) != shape:
        raise ValueError(f"x_true has shape {tuple(x_true.shape)}: expected (B, *{shape})")
    if y.dim() == len(shape):
        y = y.unsqueeze(0)
    if y.shape[0] != x_true.shape[0]:
        raise ValueError(f"y has {y.shape[0]} samples, x_true {x_true.shape[0]}: expected the same")
    for name, t in (("x_true", x_true), ("y", y)):
        if not t.dtype.is_floating_point:
            raise ValueError(f"{name} has dtype {t.dtype}: expected a floating tensor")
        if torch.finfo(t.dtype).bits > torch.finfo(dtype).bits:  # upcasting is exact, downcasting is not
            warnings.warn(f"{name} in {t.dtype} is cast down to the analysis dtype {dtype}", stacklevel=2)
    dev = m.step_rho.device
    x_true, y = x_true.to(dtype=dtype, device=dev), y.to(dtype=dtype, device=dev)
    B = x_true.shape[0]
    traj = iterates_of(m, y)
    backend = settings.backend
    choice: BackendChoice | None = None
    results: list[SampleCurvature] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(ks) * B, desc=f"hessian wrt {settings.wrt}", unit="sample")
    dim = 0
    try:
        for k in ks:
            for b in range(B):
                t0 = time.perf_counter()
                seed = derive_seed(settings.seed, k, b)
                gen = torch.Generator().manual_seed(seed)
                xk, yb, xb = traj[k][b : b + 1], y[b : b + 1], x_true[b : b + 1]
                common = dict(x_k=xk, backend=backend, dtype=dtype, budget_s=settings.backend_budget_s,
                              generator=torch.Generator().manual_seed(seed))
                if settings.wrt == "iterate":
                    op = make_iterate_hvp(m, yb, xb, k, **common)
                else:
                    op = make_param_hvp(m, yb, xb, k, include=settings.params or None, **common)
                if op.choice is not None:  # measured once, reused for every other operator
                    choice, backend = replace(op.choice, hvp=None), op.backend
                dim = op.dim
                with torch.no_grad():
                    loss = float(iterate_loss(m, xk, yb, xb, k).sum())
                kw_eig = dict(method=settings.eig_method, tol=settings.eig_tol, generator=gen, seed=seed)
                if settings.eig_max_matvecs is not None:
                    kw_eig["max_matvecs"] = settings.eig_max_matvecs
                top = bottom = tr = dens = None
                if settings.top_k:
                    which = "LM" if settings.eig_method == "power" else "LA"
                    top = top_eigenpairs(op, min(settings.top_k, op.dim), which=which, **kw_eig)
                if settings.bottom_k:
                    bottom = top_eigenpairs(op, min(settings.bottom_k, op.dim), which="SA", **kw_eig)
                if settings.trace:
                    tr = estimate_trace(op, method=settings.trace_method, rtol=settings.trace_rtol,
                                        max_matvecs=settings.trace_max_matvecs, generator=gen, seed=seed)
                if settings.density:
                    dens = spectral_density(op, n_runs=settings.density_runs,
                                            lanczos_steps=settings.density_steps, generator=gen, seed=seed)
                results.append(SampleCurvature(k, b, seed, loss, top, bottom, tr, dens, time.perf_counter() - t0))
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return IterateCurvature(
        settings=settings,
        iterates=ks,
        samples=tuple(results),
        K=K,
        n_samples=B,
        dim=dim,
        backend=backend,
        backend_choice=choice,
        wall_time=time.perf_counter() - t_start,
        info={"model": m.config(), "torch": torch.__version__},
    )
