"""Parameter-space slices: the training loss around θ along filter-normalised directions (Li et al., 2018)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from landscape.curvature.slices.grid import as_pair, chunk_cap, evaluate_grid, grid_coordinates, grid_settings
from landscape.curvature.slices.input import randn_seeded
from landscape.curvature.slices.result import TRAIN_LOSS_CONVENTION, Slice
from landscape.errors import check
from landscape.seeding import derive_seed
from landscape.solver import as_solver

__all__ = ["PARAMETER_KINDS", "parameter_directions", "parameter_loss_fn", "parameter_slice"]

PARAMETER_KINDS = ("filter", "random")


def parameter_directions(
    model: torch.nn.Module,
    kinds: Sequence[str] = ("filter", "filter"),
    *,
    seed: int = 0,
    ignore_bias: bool = True,
) -> tuple[list[dict[str, torch.Tensor]], list[dict[str, Any]]]:
    r"""Directions in parameter space, one dict ``name -> tensor`` per direction.

    ``"filter"`` (Li et al., 2018): :math:`d_{f} \leftarrow d_f\,\|\theta_f\| / \|d_f\|` for every filter
    ``f`` (slice along dim 0) of every weight with ``dim > 1``; 1-D parameters (biases, step sizes) get
    0 when ``ignore_bias`` (else they are scaled to their own norm).  ``"random"``: each tensor scaled
    to the norm of the parameter tensor.  Draws depend on ``(seed, index, parameter name)`` only.
    """
    check(len(kinds) in (1, 2), f"kinds={tuple(kinds)!r}: expected 1 or 2 directions")
    for kd in kinds:
        check(kd in PARAMETER_KINDS, f"parameter direction kind={kd!r}: expected one of {PARAMETER_KINDS}")
    params = {name: p.detach() for name, p in model.named_parameters()}
    out: list[dict[str, torch.Tensor]] = []
    meta: list[dict[str, Any]] = []
    for i, kd in enumerate(kinds):
        d: dict[str, torch.Tensor] = {}
        for name, p in params.items():
            r = randn_seeded(p.shape, derive_seed(seed, "parameter", f"dir={i}", name), p)
            if p.dim() <= 1:
                if ignore_bias and kd == "filter":
                    d[name] = torch.zeros_like(p)
                else:
                    d[name] = r * (p.norm() / r.norm().clamp_min(1e-300))
            elif kd == "filter":
                pn = p.flatten(1).norm(dim=1)
                rn = r.flatten(1).norm(dim=1).clamp_min(1e-300)
                d[name] = r * (pn / rn).view(-1, *([1] * (p.dim() - 1)))
            else:
                d[name] = r * (p.norm() / r.norm().clamp_min(1e-300))
        norm = math.sqrt(sum(float(v.pow(2).sum()) for v in d.values()))
        out.append(d)
        meta.append(
            {
                "kind": kd,
                "index": i,
                "norm": norm,
                "seed": derive_seed(seed, "parameter", f"dir={i}"),
                "ignore_bias": bool(ignore_bias),
            }
        )
    if len(out) == 2 and meta[0]["norm"] > 0 and meta[1]["norm"] > 0:
        dot = sum(float((out[0][k] * out[1][k]).sum()) for k in out[0])
        for m in meta:
            m["cosine_between"] = dot / (meta[0]["norm"] * meta[1]["norm"])
    return out, meta


def parameter_loss_fn(
    model: torch.nn.Module, y: torch.Tensor, x_true: torch.Tensor
) -> Callable[[dict[str, torch.Tensor]], torch.Tensor]:
    """``f(params) -> scalar``: the training loss (mean over the batch of per-sample sums) at ``params``."""
    from torch.func import functional_call

    view = as_solver(model)

    class _Out(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = view.solver

        def forward(self, y_: torch.Tensor) -> torch.Tensor:
            return view.loss(view.initial(y_), y_, x_true, 0)

    wrapper = _Out()

    def f(params: dict[str, torch.Tensor]) -> torch.Tensor:
        full = {f"model.{n}": p for n, p in params.items()}
        return functional_call(wrapper, full, (y,)).mean()

    return f


def parameter_slice(
    model: torch.nn.Module,
    y: torch.Tensor,
    x_true: torch.Tensor,
    *,
    kinds: Sequence[str] = ("filter", "filter"),
    n: int | Sequence[int] = 21,
    span: float | Sequence[float] = 1.0,
    seed: int = 0,
    ignore_bias: bool = True,
    method: str = "batched",
    memory_mb: float = 256.0,
    chunk_size: int | None = None,
    tune: bool = True,
    keep_vectors: bool = False,
) -> Slice:
    r"""Slice of the training loss around θ along (filter-normalised) directions, over a batch of samples.

    Batched evaluation stacks ``chunk`` parameter sets and maps ``functional_call`` over them with
    ``torch.func.vmap`` (falling back to one point per call if the model cannot be vmapped).
    """
    t0 = time.perf_counter()
    check(y.shape[0] == x_true.shape[0], "y and x_true must hold the same number of samples")
    model = as_solver(model).prepared(None).solver
    dirs, meta = parameter_directions(model, kinds, seed=seed, ignore_bias=ignore_bias)
    base = {name: p.detach() for name, p in model.named_parameters()}
    names = list(base)
    f = parameter_loss_fn(model, y, x_true)
    nd = len(dirs)
    ns = as_pair(n, nd, "n")
    spans = as_pair(span, nd, "span")
    coords = [grid_coordinates(int(ni), float(si)) for ni, si in zip(ns, spans, strict=False)]
    stacked = {name: torch.stack([d[name] for d in dirs]) for name in names}  # (nd, *shape)

    def params_at(c: torch.Tensor) -> dict[str, torch.Tensor]:
        c = c.to(dtype=base[names[0]].dtype, device=base[names[0]].device)
        return {name: base[name] + torch.tensordot(c, stacked[name], dims=1) for name in names}

    n_params = sum(p.numel() for p in base.values())
    values, calls, used, grid_time = _evaluate_parameter_grid(
        f, params_at, nd, coords, method=method, memory_mb=memory_mb, chunk_size=chunk_size, tune=tune
    )
    with torch.no_grad():
        center = float(f(base))
    vectors = None
    if keep_vectors:
        vectors = np.stack(
            [torch.cat([d[name].reshape(-1) for name in names]).cpu().double().numpy() for d in dirs]
        )
    dtype = base[names[0]].dtype
    return Slice(
        space="parameter",
        coords=tuple(coords),
        values=values,
        center_value=center,
        directions=tuple(meta),
        k=None,
        sample=None,
        seed=int(seed),
        loss=TRAIN_LOSS_CONVENTION,
        dtype=str(dtype).replace("torch.", ""),
        method=used,
        chunk_size=int(calls["chunk_size"]),
        n_evals=int(values.size),
        wall_time=time.perf_counter() - t0,
        settings={
            **grid_settings(meta, ns, spans, {"ignore_bias": ignore_bias}, memory_mb, calls, grid_time),
            "n_samples": int(y.shape[0]),
            "n_params": int(n_params),
            "center_norm": math.sqrt(sum(float(p.pow(2).sum()) for p in base.values())),
        },
        vectors=vectors,
    )


def _evaluate_parameter_grid(
    f: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    params_at: Callable[[torch.Tensor], dict[str, torch.Tensor]],
    nd: int,
    coords: Sequence[np.ndarray],
    *,
    method: str,
    memory_mb: float,
    chunk_size: int | None,
    tune: bool,
) -> tuple[np.ndarray, dict[str, Any], str, float]:
    """``f`` at the parameters of every grid point, ``vmap``-ed over a chunk (``method='batched'``) or one point
    per call: the values, the calls record, the method used (``batched`` falls back to pointwise, and says so,
    when ``vmap`` cannot run the model) and the seconds the grid took (sizing excluded)."""

    def batched(c: torch.Tensor) -> torch.Tensor:
        ps = params_at(c)
        return torch.func.vmap(f)(ps)

    def pointwise(c: torch.Tensor) -> torch.Tensor:
        return torch.stack([f(params_at(c[i])) for i in range(c.shape[0])])

    if chunk_size is None:
        try:
            cs = chunk_cap(batched if method == "batched" else pointwise, nd, memory_mb=memory_mb)
        except Exception:  # noqa: BLE001 - vmap cannot run this model: measured per point below
            cs = chunk_cap(pointwise, nd, memory_mb=memory_mb)
    else:
        cs = int(chunk_size)

    fn = batched if method == "batched" else pointwise
    used = method
    tg = time.perf_counter()
    try:
        values, calls = evaluate_grid(
            fn, coords, chunk_size=cs, method=method, tune=tune and chunk_size is None
        )
    except Exception as exc:  # noqa: BLE001 - a model vmap cannot handle: fall back, and say so
        if method != "batched":
            raise
        used = f"pointwise (vmap failed: {type(exc).__name__})"
        values, calls = evaluate_grid(pointwise, coords, chunk_size=cs, method="pointwise")
    return values, calls, used, time.perf_counter() - tg
