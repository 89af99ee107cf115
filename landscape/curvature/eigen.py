r"""Extreme eigenpairs of a symmetric operator given only by its matvec.

* :func:`lanczos` — Lanczos with full reorthogonalisation (twice, "twice is enough"), both ends of the
  spectrum; stops when the wanted Ritz pairs have residuals
  :math:`\|Hv - \theta v\| = |\beta_m s_{mi}| \le \mathrm{tol}\cdot\max_j|\theta_j|`;
  on breakdown (an invariant subspace, e.g. a multiple eigenvalue) it continues from a fresh random vector
  orthogonal to the basis, so repeated eigenvalues are found too.
* :func:`eigsh` — ARPACK's implicitly restarted Lanczos through ``scipy.sparse.linalg.eigsh``.
* :func:`power_iteration` — deflated power iteration, the reference method of the peers (PyHessian);
  it finds eigenvalues of largest *magnitude* and needs many more matvecs.

All return :class:`~landscape.curvature.results.Eigenpairs`; an answer that did not converge within the
budget is returned with ``converged=False``, a reason, and a ``RuntimeWarning`` — never silently.
Eigenvalue error bound: some true eigenvalue lies within ``residuals[i]`` of ``values[i]``.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from landscape.curvature.results import Eigenpairs

__all__ = ["lanczos", "lanczos_both_ends", "eigsh", "power_iteration", "top_eigenpairs", "check_tolerance"]

Matvec = Callable[[torch.Tensor], torch.Tensor]
WHICH = {"LA": "largest algebraic (top-k)", "SA": "smallest algebraic (bottom-k)", "LM": "largest magnitude"}


def check_tolerance(tol: float, dtype: torch.dtype, what: str = "tol") -> None:
    """Warn when ``tol`` asks for more accuracy than ``dtype`` can deliver (~100 machine epsilons)."""
    eps = torch.finfo(dtype).eps
    if tol < 100 * eps:
        warnings.warn(
            f"{what}={tol:g} is below what {dtype} can deliver (~{100 * eps:.1e}); use float64",
            RuntimeWarning,
            stacklevel=3,
        )


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def _generator(generator: torch.Generator | None, seed: int | None) -> tuple[torch.Generator, int | None]:
    if generator is not None:
        return generator, seed
    seed = 0 if seed is None else int(seed)
    return torch.Generator().manual_seed(seed), seed


def _randn(n: int, g: torch.Generator, dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
    return torch.randn(n, generator=g, dtype=dtype).to(device)


def _order(values: np.ndarray, which: str) -> np.ndarray:
    if which == "LA":
        return np.argsort(-values, kind="stable")
    if which == "SA":
        return np.argsort(values, kind="stable")
    return np.argsort(-np.abs(values), kind="stable")


def _check_args(k: int, dim: int, which: str, tol: float, dtype: torch.dtype) -> None:
    if which not in WHICH:
        raise ValueError(f"which={which!r}: expected one of {sorted(WHICH)}")
    if not (isinstance(k, int) and 1 <= k <= dim):
        raise ValueError(f"k={k!r}: expected an integer in 1..dim={dim}")
    if not (tol > 0 and math.isfinite(tol)):
        raise ValueError(f"tol={tol!r}: expected a positive number")
    check_tolerance(tol, dtype)


def _warn_unconverged(method: str, reason: str) -> None:
    warnings.warn(f"{method} did not converge: {reason}", RuntimeWarning, stacklevel=3)


def lanczos(
    matvec: Matvec,
    dim: int,
    k: int = 5,
    *,
    which: str = "LA",
    tol: float = 1e-6,
    max_matvecs: int | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
    seed: int | None = None,
    return_vectors: bool = True,
) -> Eigenpairs:
    r"""``k`` extreme eigenpairs by Lanczos with full reorthogonalisation.

    .. math:: H Q_m = Q_m T_m + \beta_m q_{m+1} e_m^\top,\qquad
       \|H Q_m s_i - \theta_i Q_m s_i\| = |\beta_m\, s_{mi}|

    Args:
        matvec: ``v -> H v`` on flat tensors of length ``dim``.
        k: number of eigenpairs; ``which`` picks ``'LA'`` (top), ``'SA'`` (bottom) or ``'LM'``.
        tol: relative residual tolerance (relative to the largest Ritz value in magnitude).
        max_matvecs: budget (default ``min(dim, max(30 k, 100))``; with ``dim`` steps the answer is exact).
        generator / seed: the random start vector.

    Example:
        >>> import torch
        >>> H = torch.diag(torch.arange(1.0, 21.0, dtype=torch.float64))
        >>> r = lanczos(lambda v: H @ v, 20, k=2, seed=0)
        >>> [round(float(v), 6) for v in r.values], r.converged
        ([20.0, 19.0], True)
    """
    _check_args(k, dim, which, tol, dtype)
    budget = min(dim, max(30 * k, 100)) if max_matvecs is None else int(max_matvecs)
    return _lanczos(
        matvec,
        dim,
        [(which, k)],
        tol=tol,
        budget=budget,
        dtype=dtype,
        device=device,
        generator=generator,
        seed=seed,
        return_vectors=return_vectors,
    )[0]


def lanczos_both_ends(
    matvec: Matvec,
    dim: int,
    top: int,
    bottom: int,
    *,
    tol: float = 1e-6,
    max_matvecs: int | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
    seed: int | None = None,
    return_vectors: bool = True,
) -> tuple[Eigenpairs, Eigenpairs]:
    """The ``top`` largest and ``bottom`` smallest eigenpairs from ONE Krylov space (shared products).

    Both results report the same ``n_matvecs`` (spent once); ``settings['shared_krylov']`` says so.
    The run stops when every requested pair at both ends meets ``tol``.

    Example:
        >>> import torch
        >>> H = torch.diag(torch.linspace(-3.0, 5.0, 30, dtype=torch.float64))
        >>> hi, lo = lanczos_both_ends(lambda v: H @ v, 30, 1, 1, seed=0)
        >>> round(float(hi.values[0]), 8), round(float(lo.values[0]), 8), hi.n_matvecs == lo.n_matvecs
        (5.0, -3.0, True)
    """
    _check_args(top, dim, "LA", tol, dtype)
    _check_args(bottom, dim, "SA", tol, dtype)
    k = top + bottom
    budget = min(dim, max(30 * k, 100)) if max_matvecs is None else int(max_matvecs)
    hi, lo = _lanczos(
        matvec,
        dim,
        [("LA", top), ("SA", bottom)],
        tol=tol,
        budget=budget,
        dtype=dtype,
        device=device,
        generator=generator,
        seed=seed,
        return_vectors=return_vectors,
    )
    return hi, lo


def _lanczos(
    matvec: Matvec,
    dim: int,
    picks: list[tuple[str, int]],
    *,
    tol: float,
    budget: int,
    dtype: torch.dtype,
    device: torch.device | str,
    generator: torch.Generator | None,
    seed: int | None,
    return_vectors: bool,
) -> list[Eigenpairs]:
    t0 = time.perf_counter()
    g, seed = _generator(generator, seed)
    budget = max(1, min(budget, dim))
    kmax = max(k for _, k in picks)
    Q = torch.zeros((budget, dim), dtype=dtype, device=device)
    alphas: list[float] = []
    betas: list[float] = []  # betas[j] couples q_j and q_{j+1}
    q = _randn(dim, g, dtype, device)
    q = q / q.norm()
    converged, reason = False, ""
    sel: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    S = None
    m = 0
    eps = torch.finfo(dtype).eps
    scale = 0.0
    while m < budget:
        a, w, b = _lanczos_step(matvec, Q, m, q)
        alphas.append(a)
        m += 1
        S, sel, scale = _ritz(alphas, betas, b, picks, max(scale, abs(a)))
        broke = b <= 10 * eps * max(scale, 1e-300) * math.sqrt(dim)
        if broke:
            sel = [(order, vals, np.zeros(len(order))) for order, vals, _ in sel]
        if m >= kmax and all(np.all(r <= tol * max(scale, 1e-300)) for _, _, r in sel):
            converged, reason = True, f"residuals <= tol * |theta|_max after {m} matvecs"
            break
        if m == dim:
            converged, reason = True, "Krylov space is the whole space (exact)"
            break
        if m >= budget:
            break
        if broke:  # invariant subspace: restart orthogonally to it (T gets a zero off-diagonal)
            q = _restart_vector(Q[:m], g, device)
            betas.append(0.0)
        else:
            q = w / b
            betas.append(b)
    assert S is not None and sel
    if not converged:
        worst = max(float(np.max(r / max(scale, 1e-300))) if len(r) else math.nan for _, _, r in sel)
        reason = f"budget of {budget} matvecs reached; worst relative residual {worst:.2e} > tol {tol:g}"
        _warn_unconverged("lanczos", reason)
    wall = time.perf_counter() - t0
    return [
        _lanczos_pairs(
            which,
            order,
            vals,
            res,
            picks,
            S,
            Q[:m],
            converged=converged,
            reason=reason,
            budget=budget,
            tol=tol,
            seed=seed,
            dtype=dtype,
            device=device,
            wall=wall,
            return_vectors=return_vectors,
        )
        for (which, _), (order, vals, res) in zip(picks, sel)
    ]


def _lanczos_step(
    matvec: Matvec, Q: torch.Tensor, m: int, q: torch.Tensor
) -> tuple[float, torch.Tensor, float]:
    r"""One Lanczos step: the unit vector ``q`` becomes row ``m`` of the basis ``Q``; returns
    :math:`\alpha = q^\top Hq`, the residual ``w`` of ``Hq`` reorthogonalised against rows 0..m (fully, twice)
    and :math:`\beta = \|w\|`."""
    Q[m] = q
    w = matvec(q).reshape(-1).to(Q.dtype)
    a = float(torch.dot(q, w))
    for _ in range(2):  # full reorthogonalisation, twice
        w = w - Q[: m + 1].T @ (Q[: m + 1] @ w)
    return a, w, float(w.norm())


def _restart_vector(Q: torch.Tensor, g: torch.Generator, device: torch.device | str) -> torch.Tensor:
    """A random unit vector orthogonal (twice) to the rows of ``Q``, the invariant subspace Lanczos found."""
    q = _randn(Q.shape[1], g, Q.dtype, device)
    for _ in range(2):
        q = q - Q.T @ (Q @ q)
    return q / q.norm()


def _ritz(
    alphas: list[float], betas: list[float], b: float, picks: list[tuple[str, int]], scale: float
) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray, np.ndarray]], float]:
    """The Ritz pairs of the tridiagonal ``T`` (``alphas``, ``betas``) for each pick ``(which, k)``: the
    eigenvectors ``S`` of ``T``, per pick ``(order, Ritz values, residuals |b S[-1]|)``, and the largest
    magnitude seen (``scale`` updated)."""
    T = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
    theta, S = np.linalg.eigh(T)
    scale = max(scale, float(np.max(np.abs(theta))))
    sel = []
    for which, k in picks:
        order = _order(theta, which)[:k]
        sel.append((order, theta[order], np.abs(b * S[-1, order])))
    return S, sel, scale


def _lanczos_pairs(
    which: str,
    order: np.ndarray,
    vals: np.ndarray,
    res: np.ndarray,
    picks: list[tuple[str, int]],
    S: np.ndarray,
    Q: torch.Tensor,
    *,
    converged: bool,
    reason: str,
    budget: int,
    tol: float,
    seed: int | None,
    dtype: torch.dtype,
    device: torch.device | str,
    wall: float,
    return_vectors: bool,
) -> Eigenpairs:
    """One pick's :class:`Eigenpairs` (Ritz vectors ``S[:, order]`` mapped by the Krylov basis ``Q`` when
    ``return_vectors``)."""
    m, dim = Q.shape
    vectors = None
    if return_vectors:
        vectors = (torch.as_tensor(S[:, order], dtype=dtype, device=device).T @ Q).cpu().numpy()
    settings: dict[str, Any] = {"max_matvecs": budget, "reorthogonalisation": "full (twice)", "dim": dim}
    if len(picks) > 1:
        settings["shared_krylov"] = [w for w, _ in picks]
    return Eigenpairs(
        values=np.asarray(vals, dtype=np.float64),
        residuals=np.asarray(res, dtype=np.float64),
        n_matvecs=m,
        converged=converged,
        reason=reason,
        method="lanczos",
        which=which,
        tol=tol,
        seed=seed,
        dtype=_dtype_name(dtype),
        wall_time=wall,
        vectors=vectors,
        settings=settings,
    )


def eigsh(
    matvec: Matvec,
    dim: int,
    k: int = 5,
    *,
    which: str = "LA",
    tol: float = 1e-6,
    max_matvecs: int | None = None,
    ncv: int | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
    seed: int | None = None,
    return_vectors: bool = True,
) -> Eigenpairs:
    """``k`` extreme eigenpairs with ARPACK (``scipy.sparse.linalg.eigsh``) on a counting LinearOperator.

    ``tol`` is ARPACK's relative accuracy of the Ritz values; residuals are then computed exactly
    (``k`` extra matvecs, included in ``n_matvecs``).  ``max_matvecs`` caps the matvecs (ARPACK stops with
    ``ArpackNoConvergence``, reported as ``converged=False`` with the pairs that did converge).
    """
    from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, LinearOperator
    from scipy.sparse.linalg import eigsh as _eigsh

    t0 = time.perf_counter()
    _check_args(k, dim, which, tol, dtype)
    if k >= dim:
        raise ValueError(f"eigsh needs k < dim (k={k}, dim={dim}); use lanczos")
    g, seed = _generator(generator, seed)
    count = [0]
    budget = max_matvecs if max_matvecs is not None else max(20 * dim, 1000)

    class _Budget(Exception):
        pass

    def mv(v: np.ndarray) -> np.ndarray:
        if count[0] >= budget:
            raise _Budget
        count[0] += 1
        t = torch.as_tensor(np.asarray(v).reshape(-1), dtype=dtype, device=device)
        return matvec(t).reshape(-1).detach().cpu().numpy().astype(np.float64)

    A = LinearOperator((dim, dim), matvec=mv, rmatvec=mv, dtype=np.float64)
    v0 = torch.randn(dim, generator=g, dtype=torch.float64).numpy()
    converged, reason = True, "ARPACK converged"
    try:
        vals, vecs = _eigsh(A, k=k, which=which, tol=tol, v0=v0, ncv=ncv, maxiter=max(budget, 1))
    except ArpackNoConvergence as exc:
        vals, vecs = exc.eigenvalues, exc.eigenvectors
        converged, reason = False, f"ARPACK: {exc}"
    except _Budget:
        vals, vecs = np.zeros(0), np.zeros((dim, 0))
        converged, reason = False, f"budget of {budget} matvecs reached before ARPACK converged"
    except ArpackError as exc:  # pragma: no cover
        vals, vecs = np.zeros(0), np.zeros((dim, 0))
        converged, reason = False, f"ARPACK error: {exc}"
    order = _order(np.asarray(vals), which)
    vals, vecs = np.asarray(vals)[order], np.asarray(vecs)[:, order]
    res = np.zeros(len(vals))
    for i in range(len(vals)):
        v = torch.as_tensor(vecs[:, i], dtype=dtype, device=device)
        res[i] = float((matvec(v).reshape(-1) - float(vals[i]) * v).norm())
        count[0] += 1
    if not converged:
        _warn_unconverged("eigsh", reason)
    return Eigenpairs(
        values=vals.astype(np.float64),
        residuals=res,
        n_matvecs=count[0],
        converged=converged and len(vals) == k,
        reason=reason,
        method="eigsh",
        which=which,
        tol=tol,
        seed=seed,
        dtype=_dtype_name(dtype),
        wall_time=time.perf_counter() - t0,
        vectors=vecs.T.copy() if return_vectors else None,
        settings={"max_matvecs": budget, "ncv": ncv, "dim": dim},
    )


def power_iteration(
    matvec: Matvec,
    dim: int,
    k: int = 1,
    *,
    tol: float = 1e-3,
    criterion: str = "residual",
    max_iter: int = 1000,
    max_matvecs: int | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
    seed: int | None = None,
    which: str = "LM",
    return_vectors: bool = True,
) -> Eigenpairs:
    r"""Deflated power iteration (largest-magnitude eigenpairs, one at a time; the peers' reference method).

    .. math:: v \leftarrow \frac{(I - V V^\top) H v}{\|(I - V V^\top) H v\|},\qquad \lambda = v^\top H v

    ``criterion='residual'`` stops each pair when :math:`\|Hv - \lambda v\| \le \mathrm{tol}\,|\lambda|`;
    ``'change'`` is PyHessian's rule (relative change of λ between two iterations below ``tol``), which
    can stop far from an eigenvalue when two eigenvalues are close.  ``max_iter`` caps the iterations per
    pair, ``max_matvecs`` the total.
    """
    t0 = time.perf_counter()
    if which != "LM":
        raise ValueError(f"which={which!r}: power iteration finds largest-magnitude eigenvalues only ('LM')")
    if criterion not in ("residual", "change"):
        raise ValueError(f"criterion={criterion!r}: expected 'residual' or 'change'")
    _check_args(k, dim, which, tol, dtype)
    g, seed = _generator(generator, seed)
    budget = max_matvecs if max_matvecs is not None else k * max_iter
    found: list[torch.Tensor] = []
    vals: list[float] = []
    res: list[float] = []
    count = 0
    ok_all = True
    reason = ""

    def deflate(v: torch.Tensor) -> torch.Tensor:
        for u in found:
            v = v - torch.dot(u, v) * u
        return v

    for i in range(k):
        v = deflate(_randn(dim, g, dtype, device))
        v = v / v.norm()
        lam, r, v, ok, used = _power_pair(
            matvec, v, deflate, budget - count, max_iter=max_iter, tol=tol, criterion=criterion, dtype=dtype
        )
        count += used
        vals.append(math.nan if lam is None else lam)
        res.append(r)
        found.append(v)
        if not ok:
            ok_all = False
            reason = (
                f"eigenpair {i + 1} not converged (residual {r:.2e}, budget {budget}, max_iter {max_iter})"
            )
    if ok_all:
        reason = f"every pair met the {criterion} criterion"
    else:
        _warn_unconverged("power_iteration", reason)
    return Eigenpairs(
        values=np.asarray(vals, dtype=np.float64),
        residuals=np.asarray(res, dtype=np.float64),
        n_matvecs=count,
        converged=ok_all,
        reason=reason,
        method=f"power_iteration[{criterion}]",
        which="LM",
        tol=tol,
        seed=seed,
        dtype=_dtype_name(dtype),
        wall_time=time.perf_counter() - t0,
        vectors=torch.stack(found).cpu().numpy() if return_vectors else None,
        settings={"max_iter": max_iter, "max_matvecs": budget, "criterion": criterion, "dim": dim},
    )


def _power_pair(
    matvec: Matvec,
    v: torch.Tensor,
    deflate: Callable[[torch.Tensor], torch.Tensor],
    budget: int,
    *,
    max_iter: int,
    tol: float,
    criterion: str,
    dtype: torch.dtype,
) -> tuple[float | None, float, torch.Tensor, bool, int]:
    """One eigenpair by power iteration from the unit vector ``v``, deflated by the pairs found: at most
    ``max_iter`` iterations and ``budget`` products.  Returns ``(λ or None, residual, v, converged, products)``."""
    lam = None
    ok = False
    r = math.inf
    count = 0
    for _ in range(max_iter):
        if count >= budget:
            break
        hv = deflate(matvec(v).reshape(-1).to(dtype))
        count += 1
        new = float(torch.dot(v, hv))
        r = float((hv - new * v).norm())
        if criterion == "residual":
            ok = r <= tol * max(abs(new), 1e-300)
        else:
            ok = lam is not None and abs(new - lam) <= tol * max(abs(lam), 1e-300)
        lam = new
        if ok:
            break
        nv = hv.norm()
        if nv == 0:
            ok = True
            break
        v = hv / nv
    return lam, r, v, ok, count


METHODS = {"lanczos": lanczos, "eigsh": eigsh, "power": power_iteration}


def top_eigenpairs(op, k: int = 5, *, method: str = "lanczos", which: str = "LA", **kw) -> Eigenpairs:
    """Eigenpairs of a :class:`~landscape.curvature.operators.CurvatureOperator` (``matvec``, ``dim``, ``dtype``)."""
    if method not in METHODS:
        raise ValueError(f"method={method!r}: expected one of {sorted(METHODS)}")
    return METHODS[method](op.matvec, op.dim, k, which=which, dtype=op.dtype, device=op.device, **kw)
