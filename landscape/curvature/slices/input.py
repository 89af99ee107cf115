"""Input-space slices: :math:`s(\\alpha,\\beta) = L_k(x_k + \\alpha d_1 + \\beta d_2)` for one sample,
through the solver protocol (``tail``) with the engine's operators for eigenvector and gradient
directions."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from landscape.curvature.analysis import analyze_iterates
from landscape.curvature.slices.grid import as_pair, chunk_cap, evaluate_grid, grid_coordinates, grid_settings
from landscape.curvature.slices.result import LOSS_CONVENTION, Slice
from landscape.errors import check
from landscape.seeding import derive_seed
from landscape.solver import as_solver

__all__ = [
    "INPUT_KINDS",
    "iterate_loss_fn",
    "iterate_points",
    "top_eigenvectors",
    "input_directions",
    "input_slice",
    "randn_seeded",
]

INPUT_KINDS = ("random", "random_channel", "eigen", "gradient", "range", "null")


def randn_seeded(shape: Sequence[int], seed: int, like: torch.Tensor) -> torch.Tensor:
    """A Gaussian draw made on the CPU in float64 from ``seed``, cast like ``like`` (device-independent)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(tuple(shape), generator=g, dtype=torch.float64).to(
        dtype=like.dtype, device=like.device
    )


def _check_single(y: torch.Tensor, x_true: torch.Tensor) -> None:
    check(
        y.shape[0] == 1 and x_true.shape[0] == 1,
        f"y has batch {y.shape[0]} and x_true batch {x_true.shape[0]}: an input-space slice takes one "
        "sample (batch 1; use y[i:i+1])",
    )


def iterate_loss_fn(
    solver: Any, y: torch.Tensor, x_true: torch.Tensor, k: int
) -> Callable[[torch.Tensor], torch.Tensor]:
    r"""``f(X) -> (P,)``: :math:`L_k` at each of the ``P`` iterates stacked in ``X`` ``(P, ...)``.

    The points go through the solver's ``tail`` as one batch with ``y`` expanded (not copied).
    """
    _check_single(y, x_true)
    view = as_solver(solver)
    meas = tuple(y.shape[1:])
    truth = tuple(x_true.shape[1:])

    def f(xs: torch.Tensor) -> torch.Tensor:
        p = xs.shape[0]
        return view.loss(xs, y.expand(p, *meas), x_true.expand(p, *truth), k)

    return f


def iterate_points(
    center: torch.Tensor, dirs: Sequence[torch.Tensor]
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``g(C) -> (P, *shape)``: the points ``center + Σ_i C[:, i] d_i`` for coordinates ``C`` (P, n_dirs)."""
    stacked = torch.stack([d.reshape(center.shape[1:]) for d in dirs])  # (n_dirs, *shape)

    def g(c: torch.Tensor) -> torch.Tensor:
        c = c.to(dtype=center.dtype, device=center.device)
        return center + torch.tensordot(c, stacked, dims=1)

    return g


def top_eigenvectors(
    solver: Any,
    y: torch.Tensor,
    x_true: torch.Tensor,
    k: int,
    n_vectors: int,
    *,
    x_k: torch.Tensor | None = None,
    seed: int = 0,
    tol: float = 1e-10,
) -> tuple[np.ndarray, np.ndarray]:
    r"""The ``n_vectors`` largest eigenpairs of :math:`\nabla^2 L_k(x_k)` for one sample, from the engine.

    Dense and exact when the dimension is small (:func:`~landscape.curvature.analysis.choose_method`),
    Lanczos otherwise; the HVP backend is the engine's.  Returns ``(values, vectors (n_vectors, n))``,
    descending, unit vectors, sign fixed so that the entry of largest magnitude is positive.
    """
    _check_single(y, x_true)
    view = as_solver(solver)
    dt = view.dtype(y.dtype)
    res = analyze_iterates(
        view,
        x_true=x_true.to(dt),
        y=y.to(dt),
        iterates=[k],
        top_k=n_vectors,
        bottom_k=0,
        trace=False,
        eig_tol=tol,
        seed=seed,
        dtype=str(dt).replace("torch.", ""),
        keep_vectors=True,
    )
    top = res.at(k)[0].top
    vals, vecs = np.asarray(top.values), np.asarray(top.vectors, dtype=np.float64).copy()
    for i in range(len(vecs)):
        j = int(np.argmax(np.abs(vecs[i])))
        if vecs[i, j] < 0:
            vecs[i] = -vecs[i]
        vecs[i] /= np.linalg.norm(vecs[i])
    return vals, vecs


def _is_projection(normal: Callable[[torch.Tensor], torch.Tensor], like: torch.Tensor, seed: int) -> bool:
    g = randn_seeded(like.shape, derive_seed(seed, "projection-check"), like)
    p = normal(g)
    pp = normal(p)
    return float((pp - p).norm()) <= 1e-6 * max(float(p.norm()), 1e-30)


def input_directions(
    solver: Any,
    y: torch.Tensor,
    x_true: torch.Tensor,
    k: int,
    kinds: Sequence[str] = ("random", "random"),
    *,
    seed: int = 0,
    sample: int | None = None,
    scale: str = "norm",
    x_k: torch.Tensor | None = None,
    eigvecs: np.ndarray | torch.Tensor | None = None,
) -> tuple[list[torch.Tensor], list[dict[str, Any]], torch.Tensor]:
    """Build the directions of an input-space slice around :math:`x_k` (see the module docstring).

    Returns ``(directions, metadata, x_k)``: each direction shaped like ``x_k`` ``(1, *signal_shape)``.
    ``eigvecs`` ``(m, n)`` (unit, descending eigenvalue) are used for ``"eigen"`` directions when
    given; otherwise :func:`top_eigenvectors` computes them.
    """
    _check_single(y, x_true)
    view = as_solver(solver)
    check(len(kinds) in (1, 2), f"kinds={tuple(kinds)!r}: expected 1 or 2 directions")
    for kd in kinds:
        check(kd in INPUT_KINDS, f"direction kind={kd!r}: expected one of {INPUT_KINDS}")
    check(scale in ("norm", "unit"), f"scale={scale!r}: expected 'norm' (||x_k||) or 'unit'")
    view.check_k(k)
    if x_k is None:
        x_k = view.iterates(y)[k]
    x_k = x_k.detach()
    xnorm = float(x_k.norm())
    target = xnorm if (scale == "norm" and xnorm > 0) else 1.0
    n_eigen = sum(1 for kd in kinds if kd == "eigen")
    eig_vals = None
    if n_eigen:
        if eigvecs is None:
            eig_vals, eigvecs = top_eigenvectors(view, y, x_true, k, n_eigen, x_k=x_k, seed=seed)
        eigvecs = np.asarray(torch.as_tensor(eigvecs).detach().cpu().numpy(), dtype=np.float64)
        check(eigvecs.shape[0] >= n_eigen, f"eigvecs has {eigvecs.shape[0]} rows: {n_eigen} needed")
    split = (
        _range_null_split(view, x_k, k, sample, seed)
        if any(kd in ("range", "null") for kd in kinds)
        else None
    )

    dirs: list[torch.Tensor] = []
    meta: list[dict[str, Any]] = []
    i_eigen = 0
    for i, kd in enumerate(kinds):
        info: dict[str, Any] = {"kind": kd, "index": i}
        dir_seed = derive_seed(seed, "input", f"k={k}", f"sample={sample}", f"dir={i}")
        if kd in ("random", "random_channel"):
            d = _random_direction(kd, dir_seed, x_k, dirs, target, channelwise=scale == "norm" and xnorm > 0)
            info["seed"] = dir_seed
        elif kd == "eigen":
            v = torch.as_tensor(eigvecs[i_eigen], dtype=x_k.dtype, device=x_k.device).reshape(x_k.shape)
            info["eigen_index"] = i_eigen
            if eig_vals is not None:
                info["eigenvalue"] = float(eig_vals[i_eigen])
            i_eigen += 1
            d = v * (target / v.norm())
        elif kd == "gradient":
            d = _gradient_direction(view, y, x_true, k, x_k, dir_seed, target, info)
        else:  # range / null
            d = split[kd]
            dn = float(d.norm())
            if dn == 0:
                info["note"] = f"empty {kd} part: zero direction"
            else:
                d = d * (target / dn)
        info["norm"] = float(d.norm())
        dirs.append(d.detach())
        meta.append(info)
    if len(dirs) == 2:
        n0, n1 = float(dirs[0].norm()), float(dirs[1].norm())
        if n0 > 0 and n1 > 0:
            cos = float((dirs[0] * dirs[1]).sum()) / (n0 * n1)
            for m in meta:
                m["cosine_between"] = cos
    return dirs, meta, x_k


def _range_null_split(
    view: Any, x_k: torch.Tensor, k: int, sample: int | None, seed: int
) -> dict[str, torch.Tensor]:
    """A seeded Gaussian draw split into its range part :math:`A^H A g` and its null part :math:`g - A^H A g`
    (the solver's ``physics.normal`` must be a projection, as for MRI)."""
    physics = getattr(view.solver, "physics", None)
    normal = getattr(physics, "normal", None)
    check(
        callable(normal) and _is_projection(normal, x_k, seed),
        f"direction kinds range/null need a solver whose physics.normal (A^H A) is a projection (MRI); "
        f"{getattr(physics, 'name', type(physics).__name__)!r} is not",
    )
    g = randn_seeded(x_k.shape, derive_seed(seed, "input", f"k={k}", f"sample={sample}", "split"), x_k)
    rng = normal(g)
    return {"range": rng, "null": g - rng}


def _random_direction(
    kd: str,
    seed: int,
    x_k: torch.Tensor,
    earlier: Sequence[torch.Tensor],
    target: float,
    *,
    channelwise: bool,
) -> torch.Tensor:
    """A seeded Gaussian direction orthogonal to the ``earlier`` ones, scaled to ``target`` — or, for
    ``'random_channel'`` with ``channelwise`` (scale ``'norm'``, ``x_k ≠ 0``), each channel to that channel's
    norm of ``x_k`` (an all-zero channel to ``||x_k|| / sqrt(C)``)."""
    d = randn_seeded(x_k.shape, seed, x_k)
    for prev in earlier:  # orthogonalise against the earlier directions, then scale
        d = d - (d * prev).sum() / (prev * prev).sum() * prev
    if kd == "random_channel" and channelwise:
        xnorm = float(x_k.norm())
        cn = x_k.flatten(2).norm(dim=2)  # (1, C)
        dn = d.flatten(2).norm(dim=2)
        fac = torch.where(cn > 0, cn, torch.full_like(cn, xnorm / math.sqrt(cn.numel())))
        return d * (fac / dn).view(1, -1, *([1] * (x_k.dim() - 2)))
    return d * (target / d.norm())


def _gradient_direction(
    view: Any,
    y: torch.Tensor,
    x_true: torch.Tensor,
    k: int,
    x_k: torch.Tensor,
    seed: int,
    target: float,
    info: dict[str, Any],
) -> torch.Tensor:
    """:math:`\\nabla L_k(x_k)` scaled to ``target`` (a seeded Gaussian draw when it is zero, noted in ``info``,
    which also gets ``grad_norm``)."""
    xg = x_k.clone().requires_grad_(True)
    with torch.enable_grad():
        loss = iterate_loss_fn(view, y, x_true, k)(xg).sum()
        (grad,) = torch.autograd.grad(loss, xg)
    gn = float(grad.norm())
    info["grad_norm"] = gn
    if gn == 0:
        grad = randn_seeded(x_k.shape, seed, x_k)
        info["note"] = "zero gradient: a random direction instead"
    return grad * (target / grad.norm())


def input_slice(
    solver: Any,
    y: torch.Tensor,
    x_true: torch.Tensor,
    k: int,
    *,
    kinds: Sequence[str] = ("random", "random"),
    n: int | Sequence[int] = 31,
    span: float | Sequence[float] = 1.0,
    seed: int = 0,
    sample: int | None = None,
    scale: str = "norm",
    method: str = "batched",
    memory_mb: float = 256.0,
    chunk_size: int | None = None,
    tune: bool = True,
    dtype: torch.dtype | None = torch.float32,
    eigvecs: np.ndarray | torch.Tensor | None = None,
    directions: Sequence[torch.Tensor] | None = None,
    keep_vectors: bool = True,
) -> Slice:
    r"""Slice of :math:`L_k` around :math:`x_k` for one sample (``y``, ``x_true`` of batch 1).

    ``n`` grid points per direction on ``[-span, span]`` (odd ``n`` puts the origin on the grid).
    ``directions`` overrides ``kinds`` with given tensors (shaped like one sample).  ``dtype`` is the
    dtype of the grid evaluation: float32 by default (a figure needs ~1e-6 relative, see
    ``tests/curvature/test_slices.py``), ``None`` keeps the solver's; directions and the centre are
    computed in the solver's dtype first (eigenvectors in float64 for a float64 solver).
    """
    t0 = time.perf_counter()
    _check_single(y, x_true)
    view = as_solver(solver).prepared(None)
    if directions is None:
        dirs, meta, x_k = input_directions(
            view, y, x_true, k, kinds, seed=seed, sample=sample, scale=scale, eigvecs=eigvecs
        )
    else:
        dirs, meta, x_k = _given_directions(view, y, k, directions)
    ns, spans = as_pair(n, len(dirs), "n"), as_pair(span, len(dirs), "span")
    coords = [grid_coordinates(int(ni), float(si)) for ni, si in zip(ns, spans, strict=False)]
    ev = view if dtype is None else view.prepared(dtype)
    edt = ev.dtype(x_k.dtype)
    f = iterate_loss_fn(ev, y.to(edt), x_true.to(edt), k)
    values, calls, grid_time = _evaluate_input_grid(
        f,
        x_k.to(edt),
        [d.to(edt) for d in dirs],
        coords,
        method=method,
        memory_mb=memory_mb,
        chunk_size=chunk_size,
        tune=tune,
    )
    with torch.no_grad():
        center = float(f(x_k.to(edt))[0])
    vectors = np.stack([d.detach().cpu().double().numpy().ravel() for d in dirs]) if keep_vectors else None
    return Slice(
        space="input",
        coords=tuple(coords),
        values=values,
        center_value=center,
        directions=tuple(meta),
        k=int(k),
        sample=sample,
        seed=int(seed),
        loss=LOSS_CONVENTION,
        dtype=str(edt).replace("torch.", ""),
        method=method,
        chunk_size=int(calls["chunk_size"]),
        n_evals=int(values.size),
        wall_time=time.perf_counter() - t0,
        settings={
            **grid_settings(meta, ns, spans, {"scale": scale}, memory_mb, calls, grid_time),
            "center_norm": float(x_k.norm()),
            "signal_shape": list(x_k.shape[1:]),
        },
        vectors=vectors,
    )


def _evaluate_input_grid(
    f: Callable[[torch.Tensor], torch.Tensor],
    center: torch.Tensor,
    dirs: Sequence[torch.Tensor],
    coords: Sequence[np.ndarray],
    *,
    method: str,
    memory_mb: float,
    chunk_size: int | None,
    tune: bool,
) -> tuple[np.ndarray, dict[str, Any], float]:
    """``f`` at every grid point ``center + Σ c_i d_i`` in chunks (the chunk size measured against ``memory_mb``
    unless given, then tuned when ``tune``): the values, the calls record of
    :func:`~landscape.curvature.slices.grid.evaluate_grid` and the seconds the grid took (sizing excluded)."""
    pts = iterate_points(center, dirs)
    cs = (
        chunk_size
        if chunk_size is not None
        else chunk_cap(lambda c: f(pts(c)), len(dirs), memory_mb=memory_mb)
    )
    tg = time.perf_counter()
    values, calls = evaluate_grid(
        lambda c: f(pts(c)), coords, chunk_size=cs, method=method, tune=tune and chunk_size is None
    )
    return values, calls, time.perf_counter() - tg


def _given_directions(
    view: Any, y: torch.Tensor, k: int, directions: Sequence[torch.Tensor]
) -> tuple[list[torch.Tensor], list[dict[str, Any]], torch.Tensor]:
    """Given directions shaped like :math:`x_k` (in its dtype and device), their metadata, and :math:`x_k`."""
    x_k = view.iterates(y)[k]
    dirs = [d.reshape(x_k.shape).to(dtype=x_k.dtype, device=x_k.device) for d in directions]
    meta = [{"kind": "given", "index": i, "norm": float(d.norm())} for i, d in enumerate(dirs)]
    return dirs, meta, x_k
