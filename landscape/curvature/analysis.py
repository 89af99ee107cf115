r"""The one curvature pipeline: every entry point (CLI, analysis, report, claims, notebooks) calls
:func:`analyze_iterates` and gets the same typed :class:`IterateCurvature`, with the same defaults.

For each chosen iterate k and each sample b the loss is
:math:`L_k(x_k) = \ell(\mathrm{readout}(\Phi_{k\to K}(x_k)), x^*_b, y_b)`, by default
:math:`\|\Phi_{k\to K}(x_k) - x^*_b\|^2` (sum over entries, y and θ fixed, clean solver);
``wrt='iterate'`` analyses :math:`H_k = \nabla^2_{x_k}L_k`, ``wrt='params'`` :math:`\nabla^2_\theta L_k`.

``method`` chooses how, by cost:

* ``'dense'`` — the exact Hessian of each sample (``n`` products in one vectorised block) and ``eigh``:
  exact eigenvalues at both ends, exact trace, the exact (broadened) spectrum;
* ``'estimate'`` — Lanczos (both ends from one Krylov space), Hutch++ for the trace, SLQ for the density;
* ``'auto'`` (default) — dense whenever it needs no more products than the estimators would spend
  (so a trace never costs more products than the dimension), and the dense matrices fit ``dense_max``.

Every estimator draws from a seed derived from ``(seed, estimator, k, sample id)`` where the sample id
is the sample's index in its split (``sample_ids``), so numbers do not depend on how samples are
batched or split across workers.  Estimators analyse each sample on its own (batch of one); dense Hessians
are formed for a chunk of samples in one vectorised block (:data:`DENSE_BLOCK_BYTES`), which agrees with a
per-sample analysis to rounding (1e-12 relative, tested).  The backend is
chosen once per call (checked against ``double_backward``, timed, recorded) and reused.

Example:
    >>> import torch
    >>> from landscape.solver import FunctionSolver
    >>> A = torch.tensor([[1.0, 0.5], [0.0, 1.0]], dtype=torch.float64)
    >>> s = FunctionSolver(lambda x, y, k: x - 0.3 * (x @ A.T - y) @ A, n_iter=2)
    >>> x = torch.zeros(1, 2, dtype=torch.float64); y = torch.ones(1, 2, dtype=torch.float64)
    >>> res = analyze_iterates(s, x_true=x, y=y, iterates=[0], top_k=1, bottom_k=1)
    >>> M = torch.eye(2, dtype=torch.float64) - 0.3 * A.T @ A; J = M @ M
    >>> ev = torch.linalg.eigvalsh(2 * J.T @ J)
    >>> res.method, abs(res.summary(0)["lambda_max"].mean - float(ev[-1])) < 1e-12
    ('dense', True)
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np
import torch

from landscape.curvature.backends import (
    BackendChoice,
    agreement_rtol,
    make_hvp,
    select_backend,
    select_dense_backend,
)
from landscape.curvature.chain import chain_hessians
from landscape.curvature.density import exact_density, spectral_density
from landscape.curvature.diagonal import exact_diagonal, hutchinson_diagonal
from landscape.curvature.eigen import lanczos_both_ends, top_eigenpairs
from landscape.curvature.operators import (
    CurvatureOperator,
    iterate_loss_flat,
    param_loss_flat,
    prepare_solver,
)
from landscape.curvature.results import (
    LOSS_CONVENTION,
    Density,
    Diagonal,
    Eigenpairs,
    Estimate,
)
from landscape.curvature.settings import CurvatureSettings
from landscape.curvature.trace import estimate_trace, frobenius_sq, hutchpp_with_square
from landscape.errors import check_finite
from landscape.executor import LocalExecutor, sample_chunks
from landscape.io import from_json_float, json_safe
from landscape.progress import progress_bar
from landscape.seeding import derive_seed

__all__ = [
    "CurvatureSettings",
    "SampleCurvature",
    "IterateSummary",
    "IterateCurvature",
    "analyze_iterates",
    "parse_iterates",
    "derive_seed",
    "summarize",
    "expected_products",
    "SCALARS",
]

#: Memory for one block of dense Hessians (the identity replicated over a chunk of samples and the products):
#: the chunk holds as many samples as fit, so small models form every sample's Hessian in one call.
DENSE_BLOCK_BYTES = 256 * 2**20

#: Scalars a sample can carry, in the order tables print them (``lambda_i`` sort numerically).
SCALARS = (
    "loss",
    "lambda_max",
    "lambda_min",
    "trace",
    "trace_pos",
    "trace_neg",
    "abs_trace",
    "trace_sq",
    "n_eff",
    "density_mean",
)

#: The parts of the spectrum a dense Hessian (exactly) or an SLQ density (approximately) gives:
#: Σλ⁺ and Σλ⁻ (both ≥ 0; tr H = trace_pos − trace_neg) and Σ|λ| = trace_pos + trace_neg.
PARTS = ("trace_pos", "trace_neg", "abs_trace")


def spectrum_parts(
    eigenvalues: np.ndarray, weights: np.ndarray | None = None, dim: int | None = None
) -> dict[str, float]:
    """Σλ⁺, Σλ⁻ and Σ|λ| from exact eigenvalues, or from SLQ nodes and weights ((R, m) each: ``dim`` × the
    mean over runs of Σ w f(θ))."""
    ev = np.asarray(eigenvalues, dtype=np.float64)
    if weights is None:
        pos, neg = float(ev[ev > 0].sum()), float(-ev[ev < 0].sum())
    else:
        w = np.asarray(weights, dtype=np.float64)
        scale = float(dim) / ev.shape[0] if ev.ndim == 2 else float(dim)
        pos = scale * float((w * np.clip(ev, 0, None)).sum())
        neg = scale * float((w * np.clip(-ev, 0, None)).sum())
    return {"trace_pos": pos, "trace_neg": neg, "abs_trace": pos + neg}


def expected_products(settings: CurvatureSettings, dim: int) -> int:
    """Products the estimators would spend on one sample at one iterate (their budgets, roughly).

    Lanczos: about ``2 (top_k + bottom_k) + 40`` (both ends share one Krylov space); the trace the budget
    ``trace_max_matvecs`` (``tr H²`` shares its Hutch++ products, else spends a budget of its own; the diagonal
    spends one of its own); SLQ ``density_runs × density_steps``.  Dense costs exactly ``dim``.
    """
    total = 0
    if settings.top_k or settings.bottom_k:
        k = settings.top_k + settings.bottom_k
        total += settings.eig_max_matvecs or min(dim, 2 * k + 40)
    if settings.trace:
        total += settings.trace_max_matvecs
    if settings.trace_sq and not (settings.trace and settings.trace_method == "hutchpp"):
        total += settings.trace_max_matvecs
    if settings.diagonal:
        total += settings.trace_max_matvecs
    if settings.density:
        total += settings.density_runs * settings.density_steps
    return max(total, 1)


def choose_method(settings: CurvatureSettings, dim: int) -> str:
    """``'dense'`` or ``'estimate'`` for a problem of dimension ``dim`` under ``settings``."""
    if settings.method != "auto":
        return settings.method
    return "dense" if dim <= settings.dense_max and dim <= expected_products(settings, dim) else "estimate"


@dataclass(frozen=True)
class SampleCurvature:
    """All estimates for one sample (``sample`` is its id: its index in the split) at one iterate."""

    k: int
    sample: int
    seed: int
    loss: float
    top: Eigenpairs | None = None
    bottom: Eigenpairs | None = None
    trace: Estimate | None = None
    density: Density | None = None
    n_matvecs: int = 0
    wall_time: float = 0.0
    trace_sq: Estimate | None = None
    parts: dict[str, Any] | None = None  # PARTS and how they were obtained ("exact" or "slq")
    diagonal: Diagonal | None = None  # diag(H_k), shaped like the state

    def _estimates(self) -> tuple[tuple[str, Any], ...]:
        return (
            ("top", self.top),
            ("bottom", self.bottom),
            ("trace", self.trace),
            ("density", self.density),
            ("trace_sq", self.trace_sq),
            ("diagonal", self.diagonal),
        )

    @property
    def converged(self) -> bool:
        """Every estimate converged and the loss is finite (a NaN/Inf loss is never a converged result)."""
        return math.isfinite(self.loss) and all(r.converged for _, r in self._estimates() if r is not None)

    def unconverged(self) -> list[dict[str, Any]]:
        """One entry per estimate that stopped at its budget or came out non-finite (and one for a
        non-finite loss): quantity and reason."""
        bad = [
            {"k": self.k, "sample": self.sample, "quantity": q, "reason": r.reason}
            for q, r in self._estimates()
            if r is not None and not r.converged
        ]
        if not math.isfinite(self.loss):
            bad.insert(
                0,
                {
                    "k": self.k,
                    "sample": self.sample,
                    "quantity": "loss",
                    "reason": f"non-finite loss ({self.loss}): no number of this sample is trusted",
                },
            )
        return bad

    def curved_directions(self) -> dict[str, Any]:
        r"""The effective number of curved directions, the participation ratio of the spectrum's magnitudes:

        .. math:: n_\mathrm{eff} = \frac{(\sum_i|\lambda_i|)^2}{\sum_i\lambda_i^2}
           = \frac{(\sum_i|\lambda_i|)^2}{\operatorname{tr}H^2},\qquad 1\le n_\mathrm{eff}\le n

        (n when every eigenvalue has the same size, 1 when one direction holds all the curvature).  Available
        where :math:`\sum|\lambda|` is: exact from a dense Hessian, or an estimate from an SLQ density with the
        estimated :math:`\operatorname{tr}H^2`.  :math:`\operatorname{tr}(H)^2/\operatorname{tr}H^2` is never
        used instead: for an indefinite H the trace cancels and it undercounts.

        Returns ``{"value", "how", "reason"}``: ``value`` NaN and ``how`` None, with the reason, when not available.
        """
        a = (self.parts or {}).get("abs_trace")
        sq = self.trace_sq.estimate if self.trace_sq is not None else None
        if sq is None or a is None:
            need = (
                "tr(H^2) (trace_sq)"
                if sq is None
                else "sum|lambda| (dense Hessians, or a density: --density); tr(H)^2/tr(H^2) is not a substitute, "
                "the trace of an indefinite H cancels"
            )
            return {"value": math.nan, "how": None, "reason": f"not available: needs {need}"}
        a, sq = float(a), float(sq)
        if not (math.isfinite(a) and math.isfinite(sq) and sq > 0):
            return {
                "value": math.nan,
                "how": None,
                "reason": f"not available: sum|lambda| = {a}, tr(H^2) = {sq}",
            }
        exact = self.parts.get("how") == "exact" and self.trace_sq.stderr == 0
        how = "exact" if exact else f"{self.parts.get('how')} sum|lambda| and {self.trace_sq.method} tr(H^2)"
        return {"value": a * a / sq, "how": how, "reason": "(sum|lambda|)^2 / tr(H^2)"}

    def scalars(self) -> dict[str, float]:
        """Named scalars: ``loss``, ``lambda_max``, ``lambda_i`` (i ≥ 2), ``lambda_min``, ``trace``,
        ``trace_pos``, ``trace_neg``, ``abs_trace`` (when exact or from a density), ``trace_sq``, ``n_eff``
        (:meth:`curved_directions`, where available), ``density_mean``."""
        out = {"loss": self.loss}
        if self.top is not None and self.top.k:
            out["lambda_max"] = float(self.top.values[0])
            for i, v in enumerate(self.top.values[1:], start=2):
                out[f"lambda_{i}"] = float(v)
        if self.bottom is not None and self.bottom.k:
            out["lambda_min"] = float(self.bottom.values[0])
        if self.trace is not None:
            out["trace"] = self.trace.estimate
        if self.parts is not None:
            out.update({n: float(self.parts[n]) for n in PARTS if self.parts.get(n) is not None})
        if self.trace_sq is not None:
            out["trace_sq"] = self.trace_sq.estimate
            eff = self.curved_directions()
            if eff["how"] is not None:
                out["n_eff"] = float(eff["value"])
        if self.density is not None:
            out["density_mean"] = self.density.mean
        return out

    def errors(self) -> dict[str, float]:
        """Each scalar's own Monte-Carlo standard error (0 for exact or deterministic values; NaN for an
        ``n_eff`` from estimates, whose error is not propagated)."""
        out = {n: 0.0 for n in self.scalars()}
        if self.trace is not None:
            out["trace"] = float(self.trace.stderr)
        if self.trace_sq is not None:
            out["trace_sq"] = float(self.trace_sq.stderr)
        if "n_eff" in out and self.curved_directions()["how"] != "exact":
            out["n_eff"] = math.nan
        if self.density is not None:
            out["density_mean"] = float(self.density.mean_stderr)
        return out

    def to_dict(self) -> dict[str, Any]:
        """This sample's results at one iterate as a JSON-safe dict, with ``converged`` and, when ``trace_sq`` is known, the derived ``curved_directions``."""
        d = {f.name: json_safe(getattr(self, f.name)) for f in fields(self)}
        d["converged"] = self.converged
        if self.trace_sq is not None:  # derived (from_dict recomputes it): written for readers of the JSON
            d["curved_directions"] = json_safe(self.curved_directions())
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SampleCurvature:
        """Rebuild from :meth:`to_dict` output (derived entries such as ``curved_directions`` are recomputed, not read)."""

        def opt(kind: type, v: Any) -> Any:
            return None if v is None else kind.from_dict(v)

        return cls(
            k=int(d["k"]),
            sample=int(d["sample"]),
            seed=int(d["seed"]),
            loss=from_json_float(d["loss"]),
            top=opt(Eigenpairs, d.get("top")),
            bottom=opt(Eigenpairs, d.get("bottom")),
            trace=opt(Estimate, d.get("trace")),
            density=opt(Density, d.get("density")),
            n_matvecs=int(d.get("n_matvecs", 0)),
            wall_time=from_json_float(d.get("wall_time", 0.0)),
            trace_sq=opt(Estimate, d.get("trace_sq")),
            parts=d.get("parts"),
            diagonal=opt(Diagonal, d.get("diagonal")),
        )


@dataclass(frozen=True)
class IterateSummary:
    """One scalar over the samples at one iterate.

    Attributes:
        mean: the mean over the samples.
        stderr: the spread over the test samples, :math:`s/\\sqrt{n}` (the sampling error of the mean;
            NaN with one sample).
        mc_stderr: the Monte-Carlo error of the mean from the estimators' own standard errors,
            :math:`\\sqrt{\\sum_b se_b^2}/n` (0 when every value is exact).
        n: number of samples.
    """

    mean: float
    stderr: float
    mc_stderr: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        """The summary as a JSON-safe dict (``mean``, ``stderr``, ``mc_stderr``, ``n``)."""
        return json_safe(asdict(self))


def summarize(values: Sequence[float], errors: Sequence[float] | None = None) -> IterateSummary:
    """Mean, spread over samples (s/√n, NaN for one sample) and Monte-Carlo error of the mean."""
    a = np.asarray(values, dtype=np.float64)
    se = float(a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else math.nan
    e = np.zeros_like(a) if errors is None else np.asarray(errors, dtype=np.float64)
    mc = float(math.sqrt(float(np.sum(e**2))) / len(a)) if len(a) else math.nan
    return IterateSummary(float(a.mean()), se, mc, len(a))


def _scalar_order(name: str) -> tuple[int, int, str]:
    if name.startswith("lambda_") and name[7:].isdigit():
        return (2, int(name[7:]), name)
    base = {
        "loss": 0,
        "lambda_max": 1,
        "lambda_min": 3,
        "trace": 4,
        "trace_pos": 5,
        "trace_neg": 6,
        "abs_trace": 7,
        "trace_sq": 8,
        "n_eff": 9,
        "density_mean": 10,
    }
    return (base.get(name, 11), 0, name)


@dataclass(frozen=True)
class IterateCurvature:
    """The result of :func:`analyze_iterates`: per-sample estimates and per-iterate aggregates.

    It round-trips through JSON (:meth:`to_dict` / :meth:`from_dict`; NaN and ±Inf are ``"nan"``/``"inf"``/``"-inf"``, :func:`landscape.io.json_safe`), every figure is
    drawn from it, and results of disjoint sample sets merge (:meth:`merge`).
    """

    settings: CurvatureSettings
    iterates: tuple[int, ...]
    samples: tuple[SampleCurvature, ...]
    n_iter: int
    dim: int
    method: str
    backend: str
    backend_choice: BackendChoice | None
    wall_time: float
    loss: str = LOSS_CONVENTION
    solver: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def sample_ids(self) -> tuple[int, ...]:
        """The distinct sample ids analysed, ascending."""
        return tuple(sorted({s.sample for s in self.samples}))

    @property
    def n_samples(self) -> int:
        """The number of distinct samples analysed."""
        return len(self.sample_ids)

    def at(self, k: int) -> list[SampleCurvature]:
        """The per-sample results at iterate ``k``, by sample id."""
        return sorted((s for s in self.samples if s.k == k), key=lambda s: s.sample)

    def names(self) -> list[str]:
        """The scalar names present, in table order (``lambda_2`` before ``lambda_10``)."""
        return sorted({n for s in self.samples for n in s.scalars()}, key=_scalar_order)

    def summary(self, k: int) -> dict[str, IterateSummary]:
        """Aggregates at iterate ``k``: for each scalar, mean, spread over samples and MC error."""
        per = [(s.scalars(), s.errors()) for s in self.at(k)]
        out = {}
        for n in self.names():
            vals = [(p[n], e[n]) for p, e in per if n in p]
            if vals:
                out[n] = summarize([v for v, _ in vals], [e for _, e in vals])
        return out

    def series(self, name: str, error: str = "stderr") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(k, mean, error)`` arrays of one scalar along the analysed iterates.

        ``error='stderr'`` is the spread over samples (default), ``'mc_stderr'`` the Monte-Carlo error.
        """
        if error not in ("stderr", "mc_stderr"):
            raise ValueError(f"error={error!r}: expected 'stderr' (spread over samples) or 'mc_stderr'")
        ks, means, ses = [], [], []
        for k in self.iterates:
            s = self.summary(k)
            if name in s:
                ks.append(k)
                means.append(s[name].mean)
                ses.append(getattr(s[name], error))
        return (
            np.asarray(ks, dtype=int),
            np.asarray(means, dtype=np.float64),
            np.asarray(ses, dtype=np.float64),
        )

    @property
    def has_diagonal(self) -> bool:
        """Whether any (iterate, sample) carries its diagonal (``settings.diagonal``)."""
        return any(s.diagonal is not None for s in self.samples)

    def diagonal_map(self, k: int, sample: int | None = None) -> dict[str, Any]:
        """diag(H_k) per coordinate, shaped like the state: one sample's (``sample``, an id), or the mean over
        the samples (default).

        Returns ``{"k", "values", "stderr", "mc_stderr", "n", "samples", "exact"}``: ``stderr`` is the spread
        over samples (s/√n per coordinate, NaN for one sample, as :meth:`summary`), ``mc_stderr`` the
        Monte-Carlo error of the mean from the estimates' own standard errors (0 when exact).  ``ValueError``
        when iterate k (or the sample) has no diagonal.
        """
        diags = [
            (s.sample, s.diagonal)
            for s in self.at(k)
            if s.diagonal is not None and (sample is None or s.sample == int(sample))
        ]
        if not diags:
            who = "" if sample is None else f", sample {sample}"
            raise ValueError(
                f"no diagonal at k={k}{who}: analysed with diagonals at k = "
                f"{sorted({s.k for s in self.samples if s.diagonal is not None}) or 'none'}"
            )
        vals = np.stack([np.asarray(d.values, dtype=np.float64) for _, d in diags])
        ses = np.stack([np.asarray(d.stderr, dtype=np.float64) for _, d in diags])
        n = len(diags)
        spread = vals.std(0, ddof=1) / math.sqrt(n) if n > 1 else np.full(vals.shape[1:], math.nan)
        return {
            "k": int(k),
            "values": vals.mean(0),
            "stderr": spread,
            "mc_stderr": np.sqrt((ses**2).sum(0)) / n,
            "n": n,
            "samples": [i for i, _ in diags],
            "exact": all(d.method == "dense" for _, d in diags),
        }

    def values(self, name: str, k: int) -> np.ndarray:
        """The per-sample values of one scalar at iterate ``k`` (ordered by sample id)."""
        return np.asarray([s.scalars()[name] for s in self.at(k) if name in s.scalars()], dtype=np.float64)

    @property
    def converged(self) -> bool:
        """Whether every estimate of every sample converged and every loss is finite."""
        return all(s.converged for s in self.samples)

    def unconverged(self) -> list[dict[str, Any]]:
        """Each unconverged estimate or non-finite loss, as ``{k, sample, quantity, reason}`` records."""
        return [u for s in self.samples for u in s.unconverged()]

    @property
    def n_matvecs(self) -> int:
        """Hessian-vector products spent over all samples and iterates."""
        return int(sum(s.n_matvecs for s in self.samples))

    def table(self) -> str:
        """A plain-text table: one row per iterate, mean ± spread over samples of each scalar; a ``*`` marks a
        cell whose estimates did not all converge (the note under the table says how many and why)."""
        names = self.names()
        head = ["k"] + names
        rows = [head]
        flagged = {(u["k"], n) for u in self.unconverged() for n in names if _feeds(u["quantity"], n)}
        for k in self.iterates:
            s = self.summary(k)
            rows.append(
                [str(k)]
                + [(_fmt(s[n]) + ("*" if (k, n) in flagged else "")) if n in s else "-" for n in names]
            )
        w = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = ["  ".join(c.rjust(w[i]) for i, c in enumerate(r)) for r in rows]
        note = (
            f"{self.n_samples} samples, method {self.method}, backend {self.backend}, {self.settings.dtype}; "
            "± is the spread over samples (s/sqrt(n))"
        )
        bad = self.unconverged()
        if bad:
            note += f"\n* {_unconverged_summary(bad, len(self.samples))}"
        return "\n".join(lines + [note])

    def to_dict(self) -> dict[str, Any]:
        """The whole result as a JSON-safe dict: settings, per-iterate aggregates and per-sample records (:meth:`from_dict` reads it back)."""
        return {
            "kind": "IterateCurvature",
            "loss": self.loss,
            "wrt": self.settings.wrt,
            "settings": self.settings.to_dict(),
            "n_iter": self.n_iter,
            "iterates": list(self.iterates),
            "sample_ids": list(self.sample_ids),
            "n_samples": self.n_samples,
            "dim": self.dim,
            "method": self.method,
            "dtype": self.settings.dtype,
            "seed": self.settings.seed,
            "backend": self.backend,
            "backend_choice": None
            if self.backend_choice is None
            else json_safe(self.backend_choice.to_dict()),
            "converged": self.converged,
            "unconverged": self.unconverged(),
            "n_matvecs": self.n_matvecs,
            "wall_time": self.wall_time,
            "errors": "stderr: spread over the test samples, s/sqrt(n); mc_stderr: Monte-Carlo error of "
            "the mean from each estimate's own standard error",
            "aggregate": {
                str(k): {n: v.to_dict() for n, v in self.summary(k).items()} for k in self.iterates
            },
            "per_sample": [s.to_dict() for s in self.samples],
            "solver": json_safe(self.solver),
            "info": json_safe(self.info),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IterateCurvature:
        """Rebuild from :meth:`to_dict` output (a ``landscape hessian`` record's ``result`` too)."""
        if "result" in d and isinstance(d["result"], dict) and d.get("kind") != "IterateCurvature":
            d = d["result"]
        if d.get("kind") != "IterateCurvature":
            raise ValueError(f"kind={d.get('kind')!r}: expected an IterateCurvature record")
        return cls(
            settings=CurvatureSettings.from_dict(d["settings"]),
            iterates=tuple(int(k) for k in d["iterates"]),
            samples=tuple(SampleCurvature.from_dict(s) for s in d["per_sample"]),
            n_iter=int(d["n_iter"]),
            dim=int(d["dim"]),
            method=d["method"],
            backend=d["backend"],
            backend_choice=BackendChoice.from_dict(d.get("backend_choice")),
            wall_time=from_json_float(d.get("wall_time", 0.0)),
            loss=d.get("loss", LOSS_CONVENTION),
            solver=dict(d.get("solver") or {}),
            info=dict(d.get("info") or {}),
        )

    @classmethod
    def merge(cls, parts: Sequence[IterateCurvature]) -> IterateCurvature:
        """One result from analyses of disjoint samples (or iterates) with the same settings."""
        if not parts:
            raise ValueError("merge: expected at least one IterateCurvature")
        first = parts[0]
        for p in parts[1:]:
            if p.settings != first.settings or p.n_iter != first.n_iter or p.dim != first.dim:
                what = [
                    f"{n} ({a!r} vs {b!r})"
                    for n, a, b in (("K = n_iter", first.n_iter, p.n_iter), ("dim", first.dim, p.dim))
                    if a != b
                ]
                what += ["settings"] if p.settings != first.settings else []
                who = [
                    str((q.solver or {}).get("name") or (q.solver or {}).get("kind") or f"part {i}")
                    for i, q in ((0, first), (parts.index(p), p))
                ]
                raise ValueError(
                    f"merge: {who[0]} and {who[1]} differ in {', '.join(what)}: expected parts "
                    "of one analysis"
                )
        keys = [(s.k, s.sample) for p in parts for s in p.samples]
        if len(keys) != len(set(keys)):
            raise ValueError("merge: the parts overlap (the same sample at the same iterate twice)")
        samples = tuple(sorted((s for p in parts for s in p.samples), key=lambda s: (s.k, s.sample)))
        iterates = tuple(sorted({k for p in parts for k in p.iterates}))
        return replace(first, iterates=iterates, samples=samples, wall_time=sum(p.wall_time for p in parts))


def _feeds(quantity: str, name: str) -> bool:
    """Whether the estimate ``quantity`` (of :meth:`SampleCurvature.unconverged`) gives the scalar ``name``."""
    if quantity == "top":
        return name == "lambda_max" or (name.startswith("lambda_") and name[7:].isdigit())
    names = {"bottom": "lambda_min", "trace": "trace", "trace_sq": "trace_sq", "density": "density_mean"}
    return name == names.get(quantity)


def _unconverged_summary(bad: Sequence[dict[str, Any]], n_results: int) -> str:
    """One sentence: how many estimates stopped at their budget, of which quantities, and the first reason."""
    counts: dict[str, int] = {}
    for u in bad:
        counts[u["quantity"]] = counts.get(u["quantity"], 0) + 1
    what = ", ".join(f"{q} {c}" for q, c in counts.items())
    return (
        f"{len(bad)} estimate(s) did not converge ({what}) in {n_results} (iterate, sample) results, e.g. "
        f"k={bad[0]['k']} sample {bad[0]['sample']}: {bad[0]['reason']}; listed by .unconverged() and in "
        "the JSON's 'unconverged'"
    )


def _fmt(s: IterateSummary) -> str:
    if not math.isfinite(s.stderr):
        return f"{s.mean:.4g}"
    return f"{s.mean:.4g} ± {s.stderr:.2g}"


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


# -------------------------------------------------------------------------------------------------
# non-finite results are never converged
# -------------------------------------------------------------------------------------------------
def _numbers(r: Any) -> np.ndarray:
    """The numbers a result reports: eigenvalues, a trace estimate, a density's mean."""
    if isinstance(r, Eigenpairs):
        return np.asarray(r.values, dtype=np.float64)
    if isinstance(r, Estimate):
        return np.asarray([r.estimate], dtype=np.float64)
    if isinstance(r, Diagonal):
        return np.asarray(r.values, dtype=np.float64).ravel()
    return np.asarray([r.mean], dtype=np.float64)


def flag_nonfinite(r: Any) -> Any:
    """``r`` itself when all its numbers are finite, else a copy with ``converged=False`` and the reason
    (``non-finite result: …``) before the estimator's own."""
    if r is None:
        return None
    v = _numbers(r)
    n_bad = int((~np.isfinite(v)).sum())
    if n_bad == 0 or (not r.converged and r.reason.startswith("non-finite")):
        return r
    return replace(
        r, converged=False, reason=f"non-finite result: {n_bad} of {v.size} values NaN/Inf; {r.reason}"
    )


def _failed(
    settings: CurvatureSettings,
    n: int,
    reason: str,
    used: int = 0,
    t0: float | None = None,
    method: str = "dense",
) -> tuple[Any, Any, Any, Any, Any, Any, int]:
    """NaN results, ``converged=False`` with ``reason``, for every quantity ``settings`` asks for (a Hessian
    or a product that is not finite: no estimator can run on it)."""
    dt, wall = settings.dtype, (time.perf_counter() - t0) if t0 is not None else 0.0
    nan = math.nan

    def pairs(k: int, which: str) -> Eigenpairs:
        return Eigenpairs(
            values=np.full(k, nan),
            residuals=np.full(k, nan),
            n_matvecs=used,
            converged=False,
            reason=reason,
            method=method,
            which=which,
            tol=nan,
            seed=None,
            dtype=dt,
            wall_time=wall,
            settings={"dim": n},
        )

    def est(**extra: Any) -> Estimate:
        return Estimate(
            estimate=nan,
            stderr=nan,
            n_matvecs=used,
            converged=False,
            reason=reason,
            method=method,
            seed=None,
            dtype=dt,
            wall_time=wall,
            settings={"dim": n, **extra},
        )

    top = pairs(min(settings.top_k, n), "LA") if settings.top_k else None
    bottom = pairs(min(settings.bottom_k, n), "SA") if settings.bottom_k else None
    tr = est() if settings.trace else None
    trsq = est(quantity="tr(H^2) = ||H||_F^2") if settings.trace_sq else None
    dens = None
    if settings.density:
        dens = Density(
            grid=np.zeros(0),
            density=np.zeros(0),
            nodes=np.zeros((0, 0)),
            weights=np.zeros((0, 0)),
            sigma=nan,
            mean=nan,
            mean_stderr=nan,
            n_runs=0,
            lanczos_steps=0,
            n_matvecs=used,
            converged=False,
            reason=reason,
            seed=None,
            dtype=dt,
            wall_time=wall,
            method=method,
        )
    return top, bottom, tr, dens, trsq, None, used


# -------------------------------------------------------------------------------------------------
# the two methods, for one operator of one sample
# -------------------------------------------------------------------------------------------------
def _dense(
    op: CurvatureOperator | None,
    settings: CurvatureSettings,
    t0: float,
    H: torch.Tensor | None = None,
    n: int | None = None,
    how: str = "dense Hessian",
) -> tuple[Any, Any, Any, Any, Any, Any, int]:
    n = op.dim if op is not None else int(n)
    if H is None:
        H = op.matmat(torch.eye(n, dtype=op.dtype, device=op.device))
    H = H.double().cpu().numpy()
    n_bad = int((~np.isfinite(H)).sum())
    if n_bad:  # eigh cannot run on it (LinAlgError); nothing of this sample is a number
        return _failed(settings, n, f"non-finite Hessian: {n_bad} of {n * n} entries NaN/Inf ({how})", n, t0)
    H = 0.5 * (H + H.T)
    ev, vecs = np.linalg.eigh(H)  # ascending
    dt = settings.dtype
    wall = time.perf_counter() - t0
    reason = f"exact: {how} ({n} products) and eigh"

    def pairs(idx: np.ndarray, which: str) -> Eigenpairs:
        V = vecs[:, idx]
        res = np.linalg.norm(H @ V - V * ev[idx], axis=0)
        return Eigenpairs(
            values=ev[idx].copy(),
            residuals=res,
            n_matvecs=n,
            converged=True,
            reason=reason,
            method="dense",
            which=which,
            tol=0.0,
            seed=None,
            dtype=dt,
            wall_time=wall,
            vectors=V.T.copy(),
            settings={"dim": n},
        )

    top = pairs(np.arange(n)[::-1][: min(settings.top_k, n)], "LA") if settings.top_k else None
    bottom = pairs(np.arange(n)[: min(settings.bottom_k, n)], "SA") if settings.bottom_k else None

    def exact(value: float, **extra: str) -> Estimate:
        return Estimate(
            estimate=float(value),
            stderr=0.0,
            n_matvecs=n,
            converged=True,
            reason=reason,
            method="dense",
            seed=None,
            dtype=dt,
            wall_time=wall,
            samples=np.zeros(0),
            settings={"dim": n, **extra},
        )

    tr = exact(ev.sum()) if settings.trace else None
    dens = exact_density(ev, n_matvecs=n, dtype=dt, wall_time=wall) if settings.density else None
    trsq = exact((ev**2).sum(), quantity="tr(H^2) = ||H||_F^2") if settings.trace_sq else None
    parts = None
    if settings.trace or settings.trace_sq:
        parts = {**spectrum_parts(ev), "how": "exact"}
    return top, bottom, tr, dens, trsq, parts, n


def _exact_diagonal(
    settings: CurvatureSettings,
    H: torch.Tensor,
    shape: tuple[int, ...],
    t0: float,
    how: str = "dense Hessian",
) -> Diagonal | None:
    """diag(H) of a formed Hessian when ``settings.diagonal`` (no products beyond the Hessian's)."""
    if not settings.diagonal:
        return None
    return exact_diagonal(
        H,
        shape=shape,
        dtype=settings.dtype,
        wall_time=time.perf_counter() - t0,
        reason=f"exact: the diagonal of the {how}",
    )


def _estimate_diagonal(
    op: CurvatureOperator, settings: CurvatureSettings, shape: tuple[int, ...], seed: int
) -> Diagonal | None:
    """The diagonal estimate (Rademacher probes, the trace's ``rtol`` and budget) when ``settings.diagonal``."""
    if not settings.diagonal:
        return None
    return hutchinson_diagonal(
        op.matvec,
        op.dim,
        shape=shape,
        matmat=op.matmat,
        dtype=op.dtype,
        device=op.device,
        rtol=settings.trace_rtol,
        max_matvecs=settings.trace_max_matvecs,
        seed=seed,
    )


def _failed_diagonal(
    settings: CurvatureSettings, shape: tuple[int, ...], reason: str, used: int, t0: float
) -> Diagonal | None:
    """A NaN diagonal, ``converged=False`` with ``reason`` (products that are not finite)."""
    if not settings.diagonal:
        return None
    nan = np.full(shape, math.nan)
    return Diagonal(
        nan,
        nan.copy(),
        0,
        used,
        False,
        reason,
        "estimate",
        None,
        settings.dtype,
        time.perf_counter() - t0,
        {"dim": int(nan.size)},
    )


def _estimate(
    op: CurvatureOperator, settings: CurvatureSettings, seeds: dict[str, int], keep_vectors: bool = False
) -> tuple[Any, Any, Any, Any, Any, Any, int]:
    top = bottom = tr = dens = trsq = parts = None
    used = 0
    kw: dict[str, Any] = {"tol": settings.eig_tol}
    if settings.eig_max_matvecs is not None:
        kw["max_matvecs"] = settings.eig_max_matvecs
    kt, kb = min(settings.top_k, op.dim), min(settings.bottom_k, op.dim)
    if settings.eig_method == "lanczos" and kt and kb:
        top, bottom = lanczos_both_ends(
            op.matvec,
            op.dim,
            kt,
            kb,
            dtype=op.dtype,
            device=op.device,
            seed=seeds["eigen"],
            return_vectors=keep_vectors,
            **kw,
        )
        used += top.n_matvecs
    else:
        if settings.eig_method == "lanczos":
            kw["return_vectors"] = keep_vectors
        if kt:
            which = "LM" if settings.eig_method == "power" else "LA"
            top = top_eigenpairs(op, kt, method=settings.eig_method, which=which, seed=seeds["eigen"], **kw)
            used += top.n_matvecs
        if kb:
            bottom = top_eigenpairs(
                op, kb, method=settings.eig_method, which="SA", seed=seeds["eigen_bottom"], **kw
            )
            used += bottom.n_matvecs
    shared = settings.trace and settings.trace_sq and settings.trace_method == "hutchpp"
    if shared:  # tr H and ||H||_F^2 from the same Hutch++ products (no extra matvecs)
        tr, trsq = hutchpp_with_square(
            op.matvec,
            op.dim,
            matmat=op.matmat,
            dtype=op.dtype,
            device=op.device,
            rtol=settings.trace_rtol,
            max_matvecs=settings.trace_max_matvecs,
            seed=seeds["trace"],
        )
        used += tr.n_matvecs
    elif settings.trace:
        tr = estimate_trace(
            op,
            method=settings.trace_method,
            rtol=settings.trace_rtol,
            max_matvecs=settings.trace_max_matvecs,
            seed=seeds["trace"],
        )
        used += tr.n_matvecs
    if settings.density:
        dens = spectral_density(
            op, n_runs=settings.density_runs, lanczos_steps=settings.density_steps, seed=seeds["density"]
        )
        used += dens.n_matvecs
        parts = {**spectrum_parts(dens.nodes, dens.weights, op.dim), "how": "slq"}
    if settings.trace_sq and not shared:
        trsq = frobenius_sq(
            op.matvec,
            op.dim,
            matmat=op.matmat,
            dtype=op.dtype,
            device=op.device,
            rtol=settings.trace_rtol,
            max_matvecs=settings.trace_max_matvecs,
            seed=seeds["trace_sq"],
        )
        used += trsq.n_matvecs
    return top, bottom, tr, dens, trsq, parts, used


# -------------------------------------------------------------------------------------------------
# the pipeline
# -------------------------------------------------------------------------------------------------
def analyze_iterates(
    solver: Any,
    *,
    x_true: torch.Tensor,
    y: torch.Tensor,
    iterates: Any = "all",
    settings: CurvatureSettings | None = None,
    sample_ids: Sequence[int] | None = None,
    loss: Callable[..., torch.Tensor] | None = None,
    progress: bool | Callable[[int, int], None] = False,
    keep_vectors: bool = False,
    executor: Any = None,
    chunks: int | None = None,
    **overrides: Any,
) -> IterateCurvature:
    """Curvature of the per-sample loss at the chosen iterates, for every sample of the batch.

    Args:
        solver: any solver of the protocol (``n_iter``, ``initial(y)``, ``step(x, y, k)``; see
            :mod:`landscape.solver`).  It is copied to eval mode, frozen, in ``settings.dtype``; the
            caller's object is unchanged.
        x_true: ground truths, batch-first ``(B, ...)`` (keyword only).
        y: measurements, batch-first ``(B, ...)`` (keyword only).
        iterates: ``'all'``, ``'last'``, an int, a list of ints or a string ``"0,5,10"``.
        settings: a :class:`CurvatureSettings`; keyword ``overrides`` replace its fields
            (e.g. ``top_k=3, trace=True, density=True, seed=1, method='dense'``).
        sample_ids: each sample's index in its split (default ``0..B-1``); seeds derive from it.
        loss: optional ``loss(x_hat, x_true, y) -> (B,)`` replacing the squared error.
        progress: show a progress bar over (iterate, sample), or call ``progress(done, total)``.
        keep_vectors: keep the eigenvectors in the results (in memory only; never in JSON).
        executor: where the work runs (:mod:`landscape.executor`).  ``None`` or a
            :class:`~landscape.executor.LocalExecutor` without ``chunks``: here, in one piece.  Otherwise
            the work is cut into items *(iterate k, chunk of samples)*, run on the executor and merged
            (:meth:`IterateCurvature.merge`); the numbers equal one piece's, since every estimator seed
            derives from ``(seed, k, sample id)`` and the ids travel with their samples.  With
            ``backend='auto'`` the first item runs alone, chooses the backend, and every other item reuses
            it.  ``progress`` and ``keep_vectors`` apply to the one-piece path only.
        chunks: sample chunks per iterate (default: the executor's ``world_size``, so rank r analyses
            chunk r at every iterate).

    Returns:
        An :class:`IterateCurvature` (on every rank, when split).
    """
    if executor is not None and not (isinstance(executor, LocalExecutor) and not chunks):
        return _analyze_split(
            solver,
            x_true=x_true,
            y=y,
            iterates=iterates,
            settings=settings,
            sample_ids=sample_ids,
            loss=loss,
            executor=executor,
            chunks=chunks,
            **overrides,
        )
    t_start = time.perf_counter()
    settings = replace(settings or CurvatureSettings(), **overrides)
    view = prepare_solver(solver, settings.torch_dtype, loss=loss)
    ks = tuple(parse_iterates(iterates, view.n_iter))
    x_true, y, ids = _checked_batch(view, settings, x_true, y, sample_ids)
    traj0 = view.iterates(y[:1])
    if loss is None:  # the squared error compares x_true with the solver's output entry by entry
        _check_output_shape(view, traj0, x_true)
    run = _Pipeline(view, settings, ks, ids, keep_vectors, progress)
    run.plan(traj0)
    run.analyze_all(y, x_true)
    results = _finished(run.results)
    bad = [u for s in results for u in s.unconverged()]
    if bad:
        warnings.warn(
            f"analyze_iterates: {_unconverged_summary(bad, len(results))}; marked * in .table()",
            RuntimeWarning,
            stacklevel=2,
        )
    return run.result(results, time.perf_counter() - t_start)


def _checked_batch(
    view: Any, settings: CurvatureSettings, x_true: Any, y: Any, sample_ids: Sequence[int] | None
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """``x_true`` and ``y`` checked (floating tensors, as many samples, finite before and after the cast)
    and cast to the analysis dtype on the solver's device; the sample ids (default ``0..B-1``), checked."""
    dtype = settings.torch_dtype
    for name, t in (("x_true", x_true), ("y", y)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} is a {type(t).__name__}: expected a batch-first torch.Tensor")
        if not t.dtype.is_floating_point:
            raise ValueError(f"{name} has dtype {t.dtype}: expected a floating tensor")
        if torch.finfo(t.dtype).bits > torch.finfo(dtype).bits:  # upcasting is exact, downcasting is not
            warnings.warn(f"{name} in {t.dtype} is cast down to the analysis dtype {dtype}", stacklevel=3)
    if y.shape[0] != x_true.shape[0]:
        raise ValueError(f"y has {y.shape[0]} samples, x_true {x_true.shape[0]}: expected the same")
    B = x_true.shape[0]
    ids = list(range(B)) if sample_ids is None else [int(i) for i in sample_ids]
    if len(ids) != B or len(set(ids)) != B:
        raise ValueError(
            f"sample_ids has {len(ids)} entries ({len(set(ids))} distinct): expected {B} distinct ids"
        )
    check_finite(y, "y", ids)
    check_finite(x_true, "x_true", ids)
    dev = view.device()
    x_true, y = x_true.to(dtype=dtype, device=dev), y.to(dtype=dtype, device=dev)
    check_finite(y, f"y cast to {settings.dtype}", ids)  # a float64 value beyond float32's range
    check_finite(x_true, f"x_true cast to {settings.dtype}", ids)
    return x_true, y, ids


def _check_output_shape(view: Any, traj0: Sequence[Any], x_true: torch.Tensor) -> None:
    """``ValueError`` unless ``x_true`` has the shape of the solver's output (the squared error's premise)."""
    out_shape = tuple(view.readout(traj0[-1]).shape[1:])
    if tuple(x_true.shape[1:]) != out_shape:
        raise ValueError(
            f"x_true has shape {tuple(x_true.shape)} but the solver's output for y has shape "
            f"{(x_true.shape[0], *out_shape)}: expected x_true of the output's shape"
        )


def _finished(results: list[SampleCurvature]) -> list[SampleCurvature]:
    """The samples with every non-finite result flagged unconverged, sorted by (iterate, sample)."""
    results = [
        replace(
            s,
            **{
                q: flag_nonfinite(getattr(s, q))
                for q in ("top", "bottom", "trace", "density", "trace_sq", "diagonal")
            },
        )
        for s in results
    ]
    results.sort(key=lambda s: (s.k, s.sample))
    return results


def _chain_choice(rec: dict[str, Any], settings: CurvatureSettings) -> BackendChoice:
    """The backend record when the chain rule's check (``rec``) chose ``jvp_grad`` for ``backend='auto'``."""
    return BackendChoice(
        backend="jvp_grad",
        rtol=agreement_rtol(settings.torch_dtype),
        selection_time=rec["check_time"],
        timings={
            "chain": {
                "agreement": rec["agreement"],
                "check_time": rec["check_time"],
                "prior": "dense Hessians by the chain rule, one step at a time forward-over-reverse; "
                "checked against double backward through the tail",
            }
        },
    )


def _guarded_estimate(
    op: CurvatureOperator,
    settings: CurvatureSettings,
    seeds: dict[str, int],
    shape: tuple[int, ...],
    loss_value: float,
    t0: float,
    keep_vectors: bool,
) -> tuple[tuple[Any, Any, Any, Any, Any, Any, int], Diagonal | None]:
    """The estimators on one sample's operator (:func:`_estimate` and the diagonal), their own "did not
    converge" warnings silenced (summarised once, after the loop); NaN results when the products are not
    finite (the loss or a probe product is NaN/Inf), any other linear-algebra failure raised."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"\w+ did not converge: ", category=RuntimeWarning)
        try:
            top, bottom, tr, dens, trsq, parts, used = _estimate(op, settings, seeds, keep_vectors)
            diag = _estimate_diagonal(op, settings, shape, seeds["diagonal"])
            used += diag.n_matvecs if diag is not None else 0
        except (np.linalg.LinAlgError, torch.linalg.LinAlgError) as exc:
            probe = op.matvec(torch.ones(op.dim, dtype=op.dtype, device=op.device))
            if math.isfinite(loss_value) and bool(torch.isfinite(probe).all()):
                raise  # not a non-finite Hessian: a real failure keeps its traceback
            why = f"non-finite Hessian-vector products ({type(exc).__name__}: {str(exc)[:120]})"
            return (
                _failed(settings, op.dim, why, 1, t0, method="estimate"),
                _failed_diagonal(settings, shape, why, 1, t0),
            )
    return (top, bottom, tr, dens, trsq, parts, used), diag


class _Pipeline:
    """One in-one-piece analysis while it runs: the method, the backend (chosen once, on the first operator
    or by the chain rule's check, and reused), the dense algorithm's record, and the samples done so far."""

    def __init__(
        self,
        view: Any,
        settings: CurvatureSettings,
        ks: tuple[int, ...],
        ids: list[int],
        keep_vectors: bool,
        progress: bool | Callable[[int, int], None],
    ) -> None:
        self.view, self.settings, self.ks, self.ids, self.keep_vectors = view, settings, ks, ids, keep_vectors
        self.backend: str = settings.backend
        self.choice: BackendChoice | None = None
        self.method: str | None = None
        self.dim = 0
        self.chunk = 1
        self.total = len(ks) * len(ids)
        self.results: list[SampleCurvature] = []
        self.progress = progress
        self.bar = None
        if progress is True:
            self.bar = progress_bar(total=self.total, desc=f"curvature wrt {settings.wrt}", unit="sample")

    def plan(self, traj0: Sequence[Any]) -> None:
        """The method, the chunk of samples per dense block and whether the chain rule forms the Hessians."""
        st, B = self.settings, len(self.ids)
        if st.wrt == "iterate":  # dense Hessians of a chunk of samples in one vectorised block
            n_state = self.view.flatten(traj0[self.ks[0]])[0].shape[1]
            self.method = choose_method(st, n_state)
            if self.method == "dense":
                self.chunk = max(1, min(B, int(DENSE_BLOCK_BYTES // (4 * 8 * n_state * n_state))))
        self.n_blocks = math.ceil(B / self.chunk) * len(self.ks)
        self.use_chain = (
            st.wrt == "iterate"
            and self.method == "dense"
            and st.chain
            and self.backend in ("auto", "jvp_grad")
        )
        self.chain_record: dict[str, Any] | None = None if self.use_chain else {"algorithm": "per-iterate"}

    def record_sample(
        self, k: int, sid: int, seed: int, loss: float, got: tuple, diag: Any, seconds: float
    ) -> None:
        """Record one sample's curvature at iterate ``k`` from ``got`` = (top, bottom, trace, density, tr H²,
        parts, backend used) and its diagonal."""
        top, bottom, tr, dens, trsq, parts, used = got
        self.record(
            SampleCurvature(k, sid, seed, loss, top, bottom, tr, dens, used, seconds, trsq, parts, diag)
        )

    def record(self, s: SampleCurvature) -> None:
        self.results.append(s)
        if self.bar is not None:
            self.bar.update(1)
        elif callable(self.progress):
            self.progress(len(self.results), self.total)

    def analyze_all(self, y: torch.Tensor, x_true: torch.Tensor) -> None:
        """Every chunk of samples in turn (:meth:`analyze_chunk`); the progress bar is closed after, even on an
        error."""
        try:
            for b0 in range(0, len(self.ids), self.chunk):
                self.analyze_chunk(b0, y[b0 : b0 + self.chunk], x_true[b0 : b0 + self.chunk])
        finally:
            if self.bar is not None:
                self.bar.close()

    def analyze_chunk(self, b0: int, yc: torch.Tensor, xc: torch.Tensor) -> None:
        """Every chosen iterate of the samples ``b0, b0 + 1, …`` (``yc``, ``xc``)."""
        traj = self.view.iterates(yc)
        chained, chain_share = self.chain(yc, xc, traj) if self.use_chain else ({}, 0.0)
        for k in self.ks:
            self.analyze_iterate(k, b0, yc, xc, traj, chained, chain_share)

    def chain(
        self, yc: torch.Tensor, xc: torch.Tensor, traj: Sequence[Any]
    ) -> tuple[dict[int, torch.Tensor], float]:
        """The chunk's dense Hessians at every chosen iterate by the chain rule, and each iterate's share of
        the time; ``({}, 0.0)`` when forward AD is unsupported or disagreed (per iterate from then on)."""
        t0 = time.perf_counter()
        try:
            chained, rec = chain_hessians(
                self.view,
                yc,
                xc,
                traj,
                self.ks,
                check=self.chain_record is None,
                generator=torch.Generator().manual_seed(derive_seed(self.settings.seed, "chain")),
            )
        except Exception as exc:  # noqa: BLE001 - forward AD unsupported, or it disagreed: per iterate
            self.use_chain = False
            self.chain_record = {
                "algorithm": "per-iterate",
                "reason": f"chain unavailable: {type(exc).__name__}: {str(exc)[:200]}",
            }
            return {}, 0.0
        chain_share = (time.perf_counter() - t0) / len(self.ks)
        if self.chain_record is None:
            self.chain_record = rec
            if self.backend == "auto":
                self.backend, self.choice = "jvp_grad", _chain_choice(rec, self.settings)
        return chained, chain_share

    def analyze_iterate(
        self,
        k: int,
        b0: int,
        yc: torch.Tensor,
        xc: torch.Tensor,
        traj: Sequence[Any],
        chained: dict[int, torch.Tensor],
        chain_share: float,
    ) -> None:
        """Iterate ``k`` of the chunk: its Hessians by the chain rule, or its operator (dense or estimated)."""
        st, view = self.settings, self.view
        t0 = time.perf_counter() - chain_share
        with torch.no_grad():
            lvals = view.loss(traj[k], yc, xc, k).tolist()
        if st.wrt == "iterate":
            f, x0, _ = iterate_loss_flat(view, yc, xc, k, traj[k])
        else:
            f, x0, _ = param_loss_flat(view, yc, xc, k, traj[k], include=st.params or None)
        bc = yc.shape[0]
        n = x0.numel() // bc
        self.method = self.method or choose_method(st, n)
        shape = (
            tuple(traj[k].shape[1:]) if st.wrt == "iterate" and isinstance(traj[k], torch.Tensor) else (n,)
        )  # of the diagonal: the state's (a tuple state's, flat)
        if k in chained:
            self.dim = n
            self.record_chained(k, b0, chained[k], lvals, shape, t0)
            return
        cols = None
        if self.method == "dense":  # column j: e_j in every sample's block (the operator is block diagonal)
            cols = torch.eye(n, dtype=x0.dtype, device=x0.device).repeat(1, bc)
        hvp, R = self.hvp(f, x0, n, cols)
        self.dim = n
        blocks = None
        if self.method == "dense":
            R = hvp.batched(cols) if R is None else R
            blocks = R.reshape(n, bc, n).transpose(0, 1)  # blocks[b][j] = H_b e_j
        kind = "iterate_hessian" if st.wrt == "iterate" else "param_hessian"
        for b in range(bc):
            sid = self.ids[b0 + b]
            seeds = {
                name: derive_seed(st.seed, st.wrt, name, k, sid)
                for name in ("eigen", "eigen_bottom", "trace", "density", "trace_sq", "diagonal")
            }
            op = CurvatureOperator(hvp, n, x0.dtype, x0.device, kind, 1)
            if blocks is not None:
                got, diag = _dense(op, st, t0, blocks[b]), _exact_diagonal(st, blocks[b], shape, t0)
            else:
                got, diag = _guarded_estimate(op, st, seeds, shape, lvals[b], t0, self.keep_vectors)
            self.record_sample(
                k, sid, seeds["eigen"], float(lvals[b]), got, diag, (time.perf_counter() - t0) / bc
            )

    def record_chained(
        self, k: int, b0: int, H: torch.Tensor, lvals: list[float], shape: tuple[int, ...], t0: float
    ) -> None:
        """Every sample of the chunk at iterate ``k`` from its Hessian by the chain rule (``H[b]``)."""
        st, bc, n = self.settings, H.shape[0], H.shape[-1]
        how = "dense Hessian by the chain rule"
        for b in range(bc):
            sid = self.ids[b0 + b]
            got = _dense(None, st, t0, H[b], n=n, how=how)
            diag = _exact_diagonal(st, H[b], shape, t0, how)
            seed = derive_seed(st.seed, st.wrt, "eigen", k, sid)
            self.record_sample(k, sid, seed, float(lvals[b]), got, diag, (time.perf_counter() - t0) / bc)

    def hvp(
        self, f: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, n: int, cols: torch.Tensor | None
    ) -> tuple[Any, torch.Tensor | None]:
        """The Hessian-vector product of ``f`` at ``x0``; with ``backend='auto'`` the backend is chosen here,
        once, on the first operator (for dense, the selection's own products ``H cols`` come back too)."""
        if self.backend != "auto":
            return make_hvp(f, x0, self.backend), None
        st, R = self.settings, None
        sel_seed = torch.Generator().manual_seed(derive_seed(st.seed, "backend"))
        if self.method == "dense":
            choice, R = select_dense_backend(
                f, x0, budget_s=st.backend_budget_s, total_blocks=self.n_blocks, columns=cols
            )
        else:
            per = expected_products(st, n)
            choice = select_backend(
                f,
                x0,
                budget_s=st.backend_budget_s,
                expected_products=per,
                total_products=per * self.total,
                generator=sel_seed,
            )
        self.backend, self.choice = choice.backend, replace(choice, hvp=None)
        return (choice.hvp if choice.hvp is not None else make_hvp(f, x0, self.backend)), R

    def result(self, results: list[SampleCurvature], wall_time: float) -> IterateCurvature:
        st = self.settings
        dense_iterate = self.method == "dense" and st.wrt == "iterate"
        return IterateCurvature(
            settings=st,
            iterates=self.ks,
            samples=tuple(results),
            n_iter=self.view.n_iter,
            dim=int(self.dim or 0),
            method=str(self.method),
            backend=self.backend,
            backend_choice=self.choice,
            wall_time=wall_time,
            solver=self.view.describe(),
            info={
                "torch": torch.__version__,
                "device": str(self.view.device()),
                **({"dense_algorithm": self.chain_record} if dense_iterate else {}),
            },
        )


def _split_item(
    solver: Any,
    x: torch.Tensor,
    y: torch.Tensor,
    k: int,
    ids: list[int],
    settings: Any,
    loss: Callable[..., torch.Tensor] | None,
) -> IterateCurvature:
    """One item of a split analysis: iterate ``k`` of a chunk of samples, in one piece, where it runs."""
    return analyze_iterates(solver, x_true=x, y=y, iterates=[k], settings=settings, sample_ids=ids, loss=loss)


def _analyze_split(
    solver: Any,
    *,
    x_true: torch.Tensor,
    y: torch.Tensor,
    iterates: Any,
    settings: Any,
    sample_ids: Sequence[int] | None,
    loss: Callable[..., torch.Tensor] | None,
    executor: Any,
    chunks: int | None,
    **overrides: Any,
) -> IterateCurvature:
    """:func:`analyze_iterates` cut into items *(iterate k, chunk of samples)* on ``executor``, merged."""
    settings = replace(settings or CurvatureSettings(), **overrides)
    B = int(y.shape[0])
    ids = list(range(B)) if sample_ids is None else [int(i) for i in sample_ids]
    if len(ids) != B or len(set(ids)) != B:
        raise ValueError(
            f"sample_ids has {len(ids)} entries ({len(set(ids))} distinct): expected {B} distinct ids"
        )
    ks = parse_iterates(iterates, int(solver.n_iter))
    parts = sample_chunks(B, chunks or executor.world_size)
    items = [(k, c) for k in ks for c in parts]  # item i on rank i mod W: rank r gets chunk r at every k

    def submit(k: int, c: range, st: Any) -> Any:
        return executor.submit(
            _split_item,
            solver,
            x_true[c.start : c.stop],
            y[c.start : c.stop],
            k,
            ids[c.start : c.stop],
            st,
            loss,
        )

    first = submit(*items[0], settings).result()  # the backend is chosen here, once, and reused
    fixed = settings if settings.backend != "auto" else replace(settings, backend=first.backend)
    rest = [submit(k, c, fixed) for k, c in items[1:]]
    results = [first] + [f.result() for f in rest]
    merged = IterateCurvature.merge([replace(r, settings=settings) for r in results])
    info = dict(merged.info)
    info["sharding"] = {
        "items": len(items),
        "chunks": len(parts),
        "world_size": int(executor.world_size),
        "executor": type(executor).__name__,
    }
    return replace(merged, info=info)
