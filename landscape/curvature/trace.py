r"""Stochastic trace estimators with standard errors and a stopping rule on the relative standard error.

* :func:`hutchinson` — :math:`\widehat{\mathrm{tr}}(H) = \frac1m\sum_{i=1}^m v_i^\top H v_i`, Rademacher (or
  Gaussian) probes, :math:`\mathrm{se} = s/\sqrt m` with :math:`s` the sample standard deviation.
* :func:`hutchpp` — Hutch++ (Meyer, Musco, Musco & Woodruff 2021):
  :math:`\mathrm{tr}(Q^\top HQ) + \frac1m\sum_i g_i^\top(I-QQ^\top)H(I-QQ^\top)g_i` with :math:`Q` an
  orthonormal basis of :math:`HS`; the first term is exact given Q, the standard error is that of the
  second (the low-rank part removes the large eigenvalues, so it is much smaller than Hutchinson's).

Stopping rule (both): probes are drawn in blocks of ``block`` (one batched matvec each); after at least
``min_probes`` probes the estimator stops as soon as ``stderr <= rtol * |estimate|``, or when the budget
``max_matvecs`` is spent (then ``converged=False`` with a warning).  Without ``rtol`` the budget is fixed
and the result is reported as converged ("fixed budget").  There is no "two consecutive means agree" rule.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from landscape.curvature.eigen import check_tolerance
from landscape.curvature.results import Estimate

__all__ = ["hutchinson", "hutchpp", "hutchpp_with_square", "frobenius_sq", "rademacher", "estimate_trace"]

Matvec = Callable[[torch.Tensor], torch.Tensor]


def rademacher(
    shape: tuple[int, ...],
    generator: torch.Generator | None,
    dtype: torch.dtype,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Independent ±1 entries with probability 1/2 each (drawn on the generator's device, then moved)."""
    where = generator.device if generator is not None else "cpu"
    v = torch.randint(0, 2, shape, generator=generator, dtype=torch.int8, device=where)
    return (v.to(dtype) * 2 - 1).to(device)


def _probes(
    shape: tuple[int, ...], g: torch.Generator, dtype: torch.dtype, device, dist: str
) -> torch.Tensor:
    if dist == "rademacher":
        return rademacher(shape, g, dtype, device)
    if dist == "gaussian":
        return torch.randn(shape, generator=g, dtype=dtype).to(device)
    raise ValueError(f"distribution={dist!r}: expected 'rademacher' or 'gaussian'")


def _block_matvec(matvec: Matvec, matmat: Callable[[torch.Tensor], torch.Tensor] | None):
    if matmat is not None:
        return matmat
    return lambda V: torch.stack([matvec(v).reshape(-1) for v in V])


def _setup(generator, seed):
    if generator is not None:
        return generator, seed
    seed = 0 if seed is None else int(seed)
    return torch.Generator().manual_seed(seed), seed


def _check(rtol: float | None, max_matvecs: int, min_probes: int, dtype: torch.dtype) -> None:
    if rtol is not None:
        if not (rtol > 0 and math.isfinite(rtol)):
            raise ValueError(f"rtol={rtol!r}: expected a positive number or None")
        check_tolerance(rtol, dtype, "rtol")
    if not (isinstance(max_matvecs, int) and max_matvecs >= 2):
        raise ValueError(f"max_matvecs={max_matvecs!r}: expected an integer >= 2")
    if not (isinstance(min_probes, int) and min_probes >= 2):
        raise ValueError(f"min_probes={min_probes!r}: expected an integer >= 2 (a standard error needs two)")


def _stats(samples: list[float]) -> tuple[float, float]:
    s = np.asarray(samples, dtype=np.float64)
    mean = float(s.mean())
    se = float(s.std(ddof=1) / math.sqrt(len(s))) if len(s) > 1 else math.inf
    return mean, se


def _sequential(
    quad: Callable[[torch.Tensor], torch.Tensor],
    draw: Callable[[int], torch.Tensor],
    offset: float | tuple[float, ...],
    budget: int,
    rtol: float | None,
    min_probes: int,
    block: int,
) -> tuple[list, bool, str]:
    """Draw probe blocks and accumulate quadratic forms until the relative stderr of offset+mean is small.

    ``quad`` returns one value per probe, or (with a tuple ``offset``) one row of values per probe, one column
    per quantity; the rule then stops when every column meets it.  Samples come back as a list per column.
    """
    offsets = offset if isinstance(offset, tuple) else (offset,)
    cols: list[list[float]] = [[] for _ in offsets]

    def rel() -> list[float]:
        out = []
        for off, c in zip(offsets, cols):
            mean, se = _stats(c)
            out.append(0.0 if se == 0 else se / abs(off + mean) if off + mean != 0 else math.inf)
        return out

    while len(cols[0]) < budget:
        n = len(cols[0])
        b = min(block, budget - n)
        if rtol is not None and n < min_probes:
            b = min(max(b, min_probes - n), budget - n)
        vals = quad(draw(b)).reshape(b, len(offsets))
        for j, c in enumerate(cols):
            c.extend(vals[:, j].tolist())
        if rtol is not None and len(cols[0]) >= min_probes and all(r <= rtol for r in rel()):
            done = f"stderr <= rtol * |estimate| after {len(cols[0])} probes"
            return (cols if isinstance(offset, tuple) else cols[0]), True, done
    out = cols if isinstance(offset, tuple) else cols[0]
    if rtol is None:
        return out, True, f"fixed budget of {len(cols[0])} probes"
    worst = max(rel())
    return out, False, f"budget reached with relative stderr {worst:.2e} > rtol {rtol:g}"


def hutchinson(
    matvec: Matvec,
    dim: int,
    *,
    max_matvecs: int = 100,
    rtol: float | None = None,
    min_probes: int = 10,
    block: int = 10,
    distribution: str = "rademacher",
    matmat: Callable[[torch.Tensor], torch.Tensor] | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
    seed: int | None = None,
) -> Estimate:
    r"""Hutchinson's trace estimate :math:`\frac1m\sum_i v_i^\top Hv_i` with standard error :math:`s/\sqrt m`.

    ``matmat`` (m, dim) -> (m, dim), if given, evaluates a block of probes at once (vmap).
    """
    t0 = time.perf_counter()
    _check(rtol, max_matvecs, min_probes, dtype)
    g, seed = _setup(generator, seed)
    mm = _block_matvec(matvec, matmat)

    def quad(V: torch.Tensor) -> torch.Tensor:
        return (V * mm(V).reshape(V.shape)).sum(1).cpu()

    return _probe_estimate(
        "hutchinson",
        f"hutchinson[{distribution}]",
        quad,
        dim,
        distribution,
        g,
        seed,
        dtype,
        device,
        t0,
        dict(rtol=rtol, max_matvecs=max_matvecs, min_probes=min_probes, block=block),
    )


def _probe_estimate(
    name: str,
    method: str,
    quad: Callable[[torch.Tensor], torch.Tensor],
    dim: int,
    distribution: str,
    g: torch.Generator,
    seed: int | None,
    dtype: torch.dtype,
    device: torch.device | str,
    t0: float,
    budget: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> Estimate:
    """The mean of ``quad`` over probes drawn by blocks until the stopping rule of :func:`_sequential` holds
    (``budget``: ``rtol``, ``max_matvecs``, ``min_probes``, ``block``), as an :class:`Estimate` with the
    standard error s/√m; warns, naming ``name``, when the budget ran out first."""
    samples, ok, reason = _sequential(
        quad,
        lambda b: _probes((b, dim), g, dtype, device, distribution),
        0.0,
        budget["max_matvecs"],
        budget["rtol"],
        budget["min_probes"],
        budget["block"],
    )
    mean, se = _stats(samples)
    if not ok:
        warnings.warn(f"{name} did not converge: {reason}", RuntimeWarning, stacklevel=3)
    return Estimate(
        mean,
        se,
        len(samples),
        ok,
        reason,
        method,
        seed,
        str(dtype).replace("torch.", ""),
        time.perf_counter() - t0,
        np.asarray(samples),
        {**budget, "dim": dim, **(extra or {})},
    )


def hutchpp_with_square(
    matvec: Matvec,
    dim: int,
    *,
    max_matvecs: int = 100,
    sketch: int | None = None,
    rtol: float | None = None,
    min_probes: int = 10,
    block: int = 10,
    distribution: str = "rademacher",
    matmat: Callable[[torch.Tensor], torch.Tensor] | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
    seed: int | None = None,
    square: bool = True,
) -> tuple[Estimate, Estimate | None]:
    r"""Hutch++ for tr H and, from the same products, :math:`\|H\|_F^2 = \operatorname{tr}H^2`.

    .. math:: \widehat{\mathrm{tr}} = \mathrm{tr}(Q^\top HQ)
       + \frac1m\sum_{i=1}^m g_i^\top (I-QQ^\top)\,H\,(I-QQ^\top) g_i,\quad Q = \mathrm{orth}(HS)

    .. math:: \widehat{\|H\|_F^2} = \|HQ\|_F^2 + \frac1m\sum_{i=1}^m \|H(I-QQ^\top)g_i\|^2

    (:math:`\|H\|_F^2 = \|HQ\|_F^2 + \|HQ_\perp\|_F^2` for orthonormal :math:`[Q, Q_\perp]`, and
    :math:`E\|HP_\perp g\|^2 = \operatorname{tr}(P_\perp H^2 P_\perp) = \|HQ_\perp\|_F^2`).  With
    ``square`` the stopping rule waits for both relative standard errors; the second estimate's
    ``n_matvecs`` is 0 (its products are the trace's).

    ``sketch`` (default ``max_matvecs // 3``, or at most 32 with ``rtol``; never more than ``dim``) is the number of columns of S; the sketch
    costs ``2 * sketch`` matvecs and the rest of the budget goes to the residual probes.  When
    ``sketch == dim`` the answer is exact (stderr 0).

    The budget is never exceeded: ``matvecs`` (what was spent) is at most ``max_matvecs``.  A budget
    that cannot hold the sketch and a standard error (``2 * sketch + 2`` products) is refused with a
    ``ValueError``; one that leaves fewer than ``min_probes`` residual probes with ``rtol`` is reported
    ``converged=False`` with that reason.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> Q, _ = torch.linalg.qr(torch.randn(30, 30, generator=g, dtype=torch.float64))
        >>> H = (Q * torch.linspace(0.1, 5.0, 30, dtype=torch.float64)) @ Q.T   # non-diagonal, tr = 76.5
        >>> est, sq = hutchpp_with_square(lambda v: H @ v, 30, max_matvecs=90, seed=0)
        >>> abs(est.estimate - float(torch.trace(H))) < 1e-9, est.stderr     # sketch = dim: exact
        (True, 0.0)
        >>> abs(sq.estimate - float((H * H).sum())) < 1e-9
        True
    """
    t0 = time.perf_counter()
    _check(rtol, max_matvecs, min_probes, dtype)
    g, seed = _setup(generator, seed)
    mm = _block_matvec(matvec, matmat)
    s = _sketch_size(dim, max_matvecs, sketch, rtol)
    Q, exact, exact_sq = _hutchpp_sketch(mm, _probes((s, dim), g, dtype, device, distribution))
    samples, sq_samples, ok, reason = _hutchpp_residuals(
        mm,
        Q,
        (exact, exact_sq),
        max_matvecs,
        rtol=rtol,
        min_probes=min_probes,
        block=block,
        square=square,
        probes=lambda b: _probes((b, dim), g, dtype, device, distribution),
    )
    common = dict(rtol=rtol, max_matvecs=max_matvecs, sketch=s, min_probes=min_probes, block=block, dim=dim)
    return _hutchpp_results(
        (exact, samples),
        (exact_sq, sq_samples) if square else None,
        2 * s,
        ok,
        reason,
        distribution,
        seed,
        dtype,
        t0,
        common,
    )


def _sketch_size(dim: int, max_matvecs: int, sketch: int | None, rtol: float | None) -> int:
    """The number of Hutch++ sketch columns (see :func:`hutchpp_with_square`) that ``max_matvecs`` can afford
    with a standard error (two residual probes); ``ValueError`` when it cannot afford any."""
    if sketch is None:  # fixed budget: a third of it (the Hutch++ split); adaptive: a modest sketch
        sketch = max_matvecs // 3 if rtol is None else min(max_matvecs // 3, 32)
    s = max(1, min(dim, int(sketch)))
    if s < dim and max_matvecs < 2 * s + 2:
        raise ValueError(
            f"max_matvecs={max_matvecs} is too small for Hutch++ on dimension {dim}: a sketch of {s} costs "
            f"{2 * s} products and a standard error needs 2 more probes (at least {2 * s + 2})"
        )
    if s >= dim and max_matvecs < 2 * s:
        s = max(1, max_matvecs // 2 - 1)
        if max_matvecs < 2 * s + 2:
            raise ValueError(
                f"max_matvecs={max_matvecs} is too small for Hutch++: it needs at least 4 products"
            )
    return s


def _hutchpp_sketch(
    mm: Callable[[torch.Tensor], torch.Tensor], S: torch.Tensor
) -> tuple[torch.Tensor, float, float]:
    r"""The sketch of Hutch++ from the probes ``S`` (s, dim), in ``2 * s`` products: :math:`Q = \mathrm{orth}(HS)`
    (dim, s), :math:`\mathrm{tr}(Q^\top HQ)` and :math:`\|HQ\|_F^2` (the sketched part of :math:`\|H\|_F^2`)."""
    s, dim = S.shape
    Y = mm(S).reshape(s, dim)
    Q, _ = torch.linalg.qr(Y.T)  # (dim, s)
    HQ = mm(Q.T.contiguous()).reshape(s, dim)
    return Q, float((Q.T * HQ).sum()), float(HQ.pow(2).sum())


def _hutchpp_residuals(
    mm: Callable[[torch.Tensor], torch.Tensor],
    Q: torch.Tensor,
    exact: tuple[float, float],
    max_matvecs: int,
    *,
    rtol: float | None,
    min_probes: int,
    block: int,
    square: bool,
    probes: Callable[[int], torch.Tensor],
) -> tuple[list[float], list[float], bool, str]:
    r"""Residual samples :math:`g^\top P_\perp H P_\perp g` (and :math:`\|HP_\perp g\|^2` with ``square``) of
    probes deflated by the sketch ``Q`` (dim, s), drawn in blocks until the standard errors reach ``rtol``
    relative to the totals (``exact`` + mean) or the ``max_matvecs - 2 * s`` products the sketch left are
    spent; none when ``Q`` spans the space (exact).  Fewer than ``min_probes`` samples with ``rtol`` are not
    converged.  Returns ``(samples, square samples, converged, reason)``."""
    dim, s = Q.shape
    if s >= dim:
        return [], [], True, "sketch spans the whole space (exact)"
    budget = max_matvecs - 2 * s

    def draw(b: int) -> torch.Tensor:
        G = probes(b)
        return G - (G @ Q) @ Q.T

    def quad(V: torch.Tensor) -> torch.Tensor:
        HV = mm(V).reshape(V.shape)
        if not square:
            return (V * HV).sum(1).cpu()
        return torch.stack([(V * HV).sum(1), HV.pow(2).sum(1)], 1).cpu()

    if square:
        (samples, sq_samples), ok, reason = _sequential(quad, draw, exact, budget, rtol, min_probes, block)
    else:
        samples, ok, reason = _sequential(quad, draw, exact[0], budget, rtol, min_probes, block)
        sq_samples = []
    if rtol is not None and len(samples) < min_probes:
        ok = False
        reason = (
            f"budget of {max_matvecs} products leaves {len(samples)} residual probes after a sketch of "
            f"{s}, fewer than min_probes={min_probes}"
        )
    return samples, sq_samples, ok, reason


def _hutchpp_results(
    trace: tuple[float, list[float]],
    square: tuple[float, list[float]] | None,
    used: int,
    ok: bool,
    reason: str,
    distribution: str,
    seed: int,
    dtype: torch.dtype,
    t0: float,
    common: dict[str, Any],
) -> tuple[Estimate, Estimate | None]:
    r"""The trace estimate (sketched part + mean residual sample) and, when ``square`` is given, the
    :math:`\|H\|_F^2` estimate from the same products (``n_matvecs`` 0: counted on the trace); warns when
    the stopping rule did not hold (``ok`` false)."""
    if not ok:
        warnings.warn(f"hutchpp did not converge: {reason}", RuntimeWarning, stacklevel=3)
    dt, wall = str(dtype).replace("torch.", ""), time.perf_counter() - t0
    exact, samples = trace
    mean, se = _stats(samples) if samples else (0.0, 0.0)
    tr = Estimate(
        exact + mean,
        se,
        used + len(samples),
        ok,
        reason,
        f"hutchpp[{distribution}]",
        seed,
        dt,
        wall,
        np.asarray(samples),
        {**common, "sketch_trace": exact},
    )
    if square is None:
        return tr, None
    exact_sq, sq_samples = square
    mean_sq, se_sq = _stats(sq_samples) if sq_samples else (0.0, 0.0)
    sq = Estimate(
        exact_sq + mean_sq,
        se_sq,
        0,
        ok,
        reason,
        f"hutchpp_hth[{distribution}]",
        seed,
        dt,
        wall,
        np.asarray(sq_samples),
        {
            **common,
            "sketch_value": exact_sq,
            "quantity": "tr(H^2) = ||H||_F^2",
            "shared": "the trace's products (||HQ||_F^2 + mean ||H(I-QQ^T)g||^2): n_matvecs counted there",
        },
    )
    return tr, sq


def hutchpp(matvec: Matvec, dim: int, **kw) -> Estimate:
    r"""Hutch++: exact trace on a sketched dominant subspace plus Hutchinson on the deflated rest.

    .. math:: \widehat{\mathrm{tr}} = \mathrm{tr}(Q^\top HQ)
       + \frac1m\sum_{i=1}^m g_i^\top (I-QQ^\top)\,H\,(I-QQ^\top) g_i,\quad Q = \mathrm{orth}(HS)

    Keywords as :func:`hutchpp_with_square`, which also returns :math:`\|H\|_F^2` from the same products.
    """
    return hutchpp_with_square(matvec, dim, square=False, **kw)[0]


def frobenius_sq(
    matvec: Matvec,
    dim: int,
    *,
    max_matvecs: int = 100,
    rtol: float | None = None,
    min_probes: int = 10,
    block: int = 10,
    matmat: Callable[[torch.Tensor], torch.Tensor] | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
    seed: int | None = None,
) -> Estimate:
    r""":math:`\operatorname{tr}(H^2) = \|H\|_F^2 = \sum_i\lambda_i^2` of a symmetric H, as :math:`E\|Hv\|^2` over
    Rademacher probes v, with standard error :math:`s/\sqrt m` and the same stopping rule as :func:`hutchinson`.

    Unlike the trace it cannot cancel: an indefinite H with a small trace still has a large
    :math:`\|H\|_F`.  :math:`\operatorname{tr}(H)^2/\operatorname{tr}(H^2)` is the effective number of
    curved directions of a semi-definite H.
    """
    t0 = time.perf_counter()
    _check(rtol, max_matvecs, min_probes, dtype)
    g, seed = _setup(generator, seed)
    mm = _block_matvec(matvec, matmat)

    def quad(V: torch.Tensor) -> torch.Tensor:
        return mm(V).reshape(V.shape).pow(2).sum(1).cpu()

    return _probe_estimate(
        "frobenius_sq",
        "hutchinson_hth[rademacher]",
        quad,
        dim,
        "rademacher",
        g,
        seed,
        dtype,
        device,
        t0,
        dict(rtol=rtol, max_matvecs=max_matvecs, min_probes=min_probes, block=block),
        {"quantity": "tr(H^2) = ||H||_F^2"},
    )


def estimate_trace(op, *, method: str = "hutchpp", **kw) -> Estimate:
    """Trace of a :class:`~landscape.curvature.operators.CurvatureOperator` (its batched matvec is used)."""
    fns = {"hutchinson": hutchinson, "hutchpp": hutchpp}
    if method not in fns:
        raise ValueError(f"method={method!r}: expected one of {sorted(fns)}")
    return fns[method](op.matvec, op.dim, matmat=op.matmat, dtype=op.dtype, device=op.device, **kw)
