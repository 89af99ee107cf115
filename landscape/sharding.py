r"""The curvature pipeline split into independent items on an executor (:mod:`landscape.executor`).

:func:`analyze_iterates_sharded` is :func:`landscape.curvature.analyze_iterates` with the work cut into
items *(iterate k, chunk of samples)*, run on ``executor`` (default :func:`~landscape.executor.current_executor`)
and merged with :meth:`~landscape.curvature.analysis.IterateCurvature.merge`.  The numbers equal one call's:
every estimator seed derives from ``(seed, k, sample id)`` and the sample ids travel with their samples.

The HVP backend is chosen once: with ``backend='auto'`` the first item (the first iterate of the first
chunk) runs alone, on rank 0, with the timed selection, and every other item reuses its choice.  Its
selection budget is that item's share of the analysis (10 % of the item's estimated time, as for a call of
that size); fix ``backend=`` to skip it.  With a :class:`~landscape.executor.LocalExecutor` the call is
exactly ``analyze_iterates`` (one item, nothing split).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import torch

from landscape.curvature.analysis import CurvatureSettings, IterateCurvature, analyze_iterates, parse_iterates
from landscape.executor import LocalExecutor, current_executor, sample_chunks

__all__ = ["analyze_iterates_sharded"]


def _item(solver: Any, x: torch.Tensor, y: torch.Tensor, k: int, ids: list[int], settings: Any,
          loss: Callable[..., torch.Tensor] | None) -> Any:
    return analyze_iterates(solver, x_true=x, y=y, iterates=[k], settings=settings, sample_ids=ids, loss=loss)


def analyze_iterates_sharded(
    solver: Any,
    *,
    x_true: torch.Tensor,
    y: torch.Tensor,
    iterates: Any = "all",
    settings: Any = None,
    sample_ids: Sequence[int] | None = None,
    loss: Callable[..., torch.Tensor] | None = None,
    progress: bool | Callable[[int, int], None] = False,
    executor: Any = None,
    chunks: int | None = None,
    **overrides: Any,
) -> Any:
    """:func:`~landscape.curvature.analyze_iterates` on ``executor``, split by iterate and sample chunk.

    Args:
        solver, x_true, y, iterates, settings, sample_ids, loss, overrides: as ``analyze_iterates``.
        progress: passed through when nothing is split (items report nothing).
        executor: where the items run (default: :func:`landscape.executor.current_executor`).
        chunks: sample chunks per iterate (default: the executor's ``world_size``, so rank r analyses chunk
            r at every iterate).

    Returns:
        The merged :class:`~landscape.curvature.analysis.IterateCurvature`, on every rank.
    """
    ex = current_executor() if executor is None else executor
    settings = replace(settings or CurvatureSettings(), **overrides)
    if isinstance(ex, LocalExecutor) and not chunks:
        return analyze_iterates(solver, x_true=x_true, y=y, iterates=iterates, settings=settings,
                                sample_ids=sample_ids, loss=loss, progress=progress)
    B = int(y.shape[0])
    ids = list(range(B)) if sample_ids is None else [int(i) for i in sample_ids]
    if len(ids) != B or len(set(ids)) != B:
        raise ValueError(f"sample_ids has {len(ids)} entries ({len(set(ids))} distinct): expected {B} distinct ids")
    ks = parse_iterates(iterates, int(solver.n_iter))
    parts = sample_chunks(B, chunks or ex.world_size)
    items = [(k, c) for k in ks for c in parts]  # item i on rank i mod W: rank r gets chunk r at every k

    def submit(k: int, c: range, st: Any) -> Any:
        return ex.submit(_item, solver, x_true[c.start:c.stop], y[c.start:c.stop], k, ids[c.start:c.stop], st, loss)

    first = submit(*items[0], settings).result()  # the backend is chosen here, once, and reused
    fixed = settings if settings.backend != "auto" else replace(settings, backend=first.backend)
    rest = [submit(k, c, fixed) for k, c in items[1:]]
    results = [first] + [f.result() for f in rest]
    merged = IterateCurvature.merge([replace(r, settings=settings) for r in results])
    info = dict(merged.info)
    info["sharding"] = {"items": len(items), "chunks": len(parts), "world_size": int(ex.world_size),
                        "executor": type(ex).__name__}
    return replace(merged, info=info)
