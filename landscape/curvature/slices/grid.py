"""Evaluating a function on a grid of slice coordinates in memory-capped, measured chunks.

The chunk size comes from a measurement, not from knowledge of the network: :func:`bytes_per_point`
counts the bytes of every tensor produced while one point is evaluated (an upper bound on what a point
keeps alive under ``no_grad``), and the memory budget divided by it caps the chunk.  Within the cap,
:func:`evaluate_grid` can time a few chunk sizes on real grid points and keep the fastest per point.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from landscape.errors import check, check_positive_int
from landscape.executor import current_executor, sample_chunks

__all__ = ["grid_coordinates", "evaluate_grid", "bytes_per_point", "chunk_cap", "as_pair"]


def grid_coordinates(n: int, span: float) -> np.ndarray:
    """``n`` points evenly spaced on ``[-span, span]``; with ``n`` odd the middle one is exactly 0."""
    check_positive_int(n, "grid size n")
    check(math.isfinite(span) and span > 0, f"span={span!r}: expected a number > 0")
    if n == 1:
        return np.zeros(1)
    half = (n - 1) / 2.0
    return span * (np.arange(n, dtype=np.float64) - half) / half


class _CountBytes(TorchDispatchMode):
    """Adds up the bytes of every tensor an operation returns."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.total += t.numel() * t.element_size()
        return out


def bytes_per_point(fn: Callable[[torch.Tensor], torch.Tensor], n_dirs: int, *, points: int = 2) -> float:
    """Bytes allocated per grid point by ``fn`` on ``points`` points (measured, under ``no_grad``)."""
    c = torch.zeros((points, n_dirs), dtype=torch.float64)
    mode = _CountBytes()
    with torch.no_grad(), mode:
        fn(c)
    return max(mode.total / points, 1.0)


def chunk_cap(
    fn: Callable[[torch.Tensor], torch.Tensor],
    n_dirs: int,
    *,
    memory_mb: float = 256.0,
    max_chunk: int = 4096,
) -> int:
    """The most grid points per call that keep the measured allocations within ``memory_mb``."""
    check(math.isfinite(memory_mb) and memory_mb > 0, f"memory_mb={memory_mb!r}: expected a number > 0")
    per = bytes_per_point(fn, n_dirs)
    return int(max(1, min(max_chunk, (memory_mb * 2**20) // per)))


def evaluate_grid(
    fn: Callable[[torch.Tensor], torch.Tensor],
    coords: Sequence[np.ndarray],
    *,
    chunk_size: int,
    method: str = "batched",
    tune: bool = False,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Evaluate ``fn`` on the tensor grid spanned by ``coords``.

    ``fn`` maps a ``(P, n_dirs)`` tensor of coordinates to ``(P,)`` values.  ``method="batched"`` calls
    it on chunks of at most ``chunk_size`` points (the memory cap), ``"pointwise"`` on one point at a
    time.  With ``tune=True`` the first chunks try sizes 1, 8, 32, 128, ... (up to the cap) on real grid
    points, and the rest of the grid uses the size with the lowest time per point: past the cache
    size a bigger chunk can be slower (e.g. float64 convolutions on a CPU), so the best size is
    measured, not assumed.  Under a distributed executor (:func:`landscape.executor.current_executor`
    with ``world_size > 1``) the points are cut into one contiguous block per rank and gathered, so every
    rank gets the whole grid.  Returns the values (shape ``[len(c) for c in coords]``) and a record of
    the calls (``calls``, ``chunk_size`` used, ``trials`` as ``[size, seconds per point]``).
    """
    check(method in ("batched", "pointwise"), f"method={method!r}: expected 'batched' or 'pointwise'")
    shape = tuple(len(c) for c in coords)
    mesh = np.meshgrid(*coords, indexing="ij")
    pts = torch.from_numpy(np.stack([m.ravel() for m in mesh], axis=1))
    cap = 1 if method == "pointwise" else max(1, int(chunk_size))
    ex = current_executor()
    if ex.world_size > 1 and pts.shape[0] >= ex.world_size:  # grid blocks across the ranks (SPMD)
        blocks = sample_chunks(pts.shape[0], ex.world_size)
        futures = [ex.submit(_evaluate_points, fn, pts[b.start : b.stop], cap, tune) for b in blocks]
        parts = [f.result() for f in futures]
        out = np.concatenate([v for v, _ in parts])
        info = dict(parts[0][1])
        info["calls"] = sum(p[1]["calls"] for p in parts)
        info["blocks"] = [[b.start, b.stop] for b in blocks]
        return out.reshape(shape), info
    out, info = _evaluate_points(fn, pts, cap, tune)
    return out.reshape(shape), info


def _evaluate_points(
    fn: Callable[[torch.Tensor], torch.Tensor], pts: torch.Tensor, cap: int, tune: bool
) -> tuple[np.ndarray, dict[str, Any]]:
    """``fn`` on the rows of ``pts`` in chunks of at most ``cap`` (tuned when asked); values and a record."""
    total = pts.shape[0]
    out = np.empty(total, dtype=np.float64)
    calls = 0
    trials: list[list[float]] = []
    start = 0

    def run(size: int) -> float:
        nonlocal start, calls
        t = time.perf_counter()
        vals = fn(pts[start : start + size])
        out[start : start + size] = vals.detach().to("cpu", torch.float64).numpy()
        calls += 1
        start += size
        return time.perf_counter() - t

    with torch.no_grad():
        step = cap
        if tune and cap > 1:
            sizes = [1] + [s for s in (8, 32, 128, 512, 2048) if s < cap] + [cap]
            for size in sizes:
                size = min(size, total - start)
                if size <= 0:
                    break
                dt = run(size)
                if size > 1 or len(sizes) == 1:
                    trials.append([size, dt / size])
            if trials:
                step = int(min(trials, key=lambda t: t[1])[0])
        while start < total:
            run(min(step, total - start))
    return out, {
        "calls": calls,
        "chunk_size": int(step),
        "chunk_cap": int(cap),
        "trials": trials,
    }


def as_pair(v: int | float | Sequence, ndim: int, name: str) -> tuple:
    """``v`` as one value per direction (``ndim`` of them): a number is repeated, a sequence must have ``ndim`` entries."""
    if isinstance(v, (int, float)):
        return (v,) * ndim
    v = tuple(v)
    check(len(v) == ndim, f"{name}={v!r}: expected one value or {ndim} (one per direction)")
    return v


def grid_settings(
    meta: Sequence[dict[str, Any]],
    ns: Sequence[int],
    spans: Sequence[float],
    option: dict[str, Any],
    memory_mb: float,
    calls: dict[str, Any],
    grid_time: float,
) -> dict[str, Any]:
    """The settings a slice records of its grid: the directions' kinds, ``n`` and ``span`` per direction, the
    slice's own ``option`` (its ``scale`` or ``ignore_bias``), the memory budget, and the chunking of
    :func:`evaluate_grid` (``calls``) with the seconds the grid took."""
    return {
        "kinds": [m["kind"] for m in meta],
        "n": list(ns),
        "span": list(spans),
        **option,
        "memory_mb": memory_mb,
        "calls": calls["calls"],
        "chunk_cap": calls["chunk_cap"],
        "chunk_trials": calls["trials"],
        "grid_time": grid_time,
    }
