r"""Hessian-vector products of a scalar function of a flat vector, several ways, and a timer that picks one.

For :math:`f:\mathbb R^n\to\mathbb R` at :math:`x_0` every backend computes :math:`v\mapsto\nabla^2f(x_0)v`:

* ``double_backward`` — reverse-over-reverse with ``torch.autograd``: the gradient graph
  :math:`g=\nabla f(x_0)` is built once (``create_graph=True``) and each product is one more backward
  pass :math:`\nabla_x\langle g, v\rangle` through it (the graph is kept between products);
* ``vjp_grad`` — the same in ``torch.func``: ``vjp(grad(f), x0)`` once, then ``vjp_fn(v)`` per product
  (the Hessian is symmetric, so a vector-Jacobian product of the gradient is a Hessian-vector product);
* ``jvp_grad`` — forward-over-reverse, ``jvp(grad(f), (x0,), (v,))``, recomputed for every product;
* ``linearize`` — ``torch.func.linearize(grad(f), x0)``: forward-over-reverse with the primal
  computation traced once and replayed for every tangent.

Each backend also has a batched form for a block of vectors ``V`` of shape (m, n): ``torch.func.vmap``
over the product (``is_grads_batched`` for ``double_backward``), falling back to a loop where vmap is not
supported.  There is no single fastest backend (Pearlmutter's bound is one HVP ≈ 2 gradients); use
:func:`select_backend` to time them on the actual function.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.func import grad, jvp, linearize, vjp, vmap

__all__ = ["BACKENDS", "HVP", "make_hvp", "select_backend", "BackendChoice", "time_gradient"]

BACKENDS: tuple[str, ...] = ("double_backward", "vjp_grad", "jvp_grad", "linearize")

ScalarFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class HVP:
    """A Hessian-vector product at a fixed point: ``hvp(v)`` for (n,) and ``hvp.batched(V)`` for (m, n).

    ``setup_time`` is the one-off cost of building it (graph, trace) in seconds.
    """

    name: str
    single: Callable[[torch.Tensor], torch.Tensor]
    block: Callable[[torch.Tensor], torch.Tensor]
    dim: int
    setup_time: float = 0.0

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        return self.single(v)

    def batched(self, V: torch.Tensor) -> torch.Tensor:
        return self.block(V)

    @property
    def batched_mode(self) -> str:
        """``'vmap'`` while the batched product is vectorised, ``'loop'`` after it fell back."""
        return getattr(self.block, "mode", "vmap")


class _Batched:
    """Batched product through ``fast`` (vmap); after its first failure (an op without a batching rule,
    a traced graph that cannot be vmapped) a loop over ``single``.  ``mode`` says which is in use."""

    def __init__(self, fast: Callable[[torch.Tensor], torch.Tensor], single: Callable[[torch.Tensor], torch.Tensor]):
        self.fast, self.single, self.mode, self.error = fast, single, "vmap", ""

    def __call__(self, V: torch.Tensor) -> torch.Tensor:
        if self.mode == "vmap":
            try:
                return self.fast(V)
            except (RuntimeError, NotImplementedError) as exc:  # model dependent
                self.mode, self.error = "loop", f"{type(exc).__name__}: {str(exc)[:120]}"
        return torch.stack([self.single(v) for v in V])


def make_hvp(f: ScalarFn, x0: torch.Tensor, backend: str = "jvp_grad") -> HVP:
    """Build the HVP of ``f`` at the flat point ``x0`` (shape (n,)) with ``backend`` (one of :data:`BACKENDS`)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r}: expected one of {BACKENDS} (or 'auto')")
    if x0.dim() != 1:
        raise ValueError(f"x0 has shape {tuple(x0.shape)}: expected a flat vector (n,)")
    x0 = x0.detach()
    n = x0.numel()
    t0 = time.perf_counter()
    if backend == "double_backward":
        x = x0.clone().requires_grad_(True)
        with torch.enable_grad():
            (g,) = torch.autograd.grad(f(x), x, create_graph=True)
        if not g.requires_grad:  # f is (at most) linear in x: the Hessian is zero

            def single(v: torch.Tensor) -> torch.Tensor:
                return torch.zeros_like(v)

            block: Callable[[torch.Tensor], torch.Tensor] = torch.zeros_like
        else:

            def single(v: torch.Tensor) -> torch.Tensor:
                (hv,) = torch.autograd.grad(g, x, v, retain_graph=True)
                return hv.detach()

            def fast(V: torch.Tensor) -> torch.Tensor:
                (hv,) = torch.autograd.grad(g, x, V, retain_graph=True, is_grads_batched=True)
                return hv.detach()

            block = _Batched(fast, single)
    elif backend == "vjp_grad":
        _, vjp_fn = vjp(grad(f), x0)

        def single(v: torch.Tensor) -> torch.Tensor:
            return vjp_fn(v)[0]

        block = _Batched(vmap(single), single)
    elif backend == "jvp_grad":
        gf = grad(f)

        def single(v: torch.Tensor) -> torch.Tensor:
            return jvp(gf, (x0,), (v,))[1]

        block = _Batched(vmap(single), single)
    else:  # linearize
        try:  # tracing, or replaying the traced graph, fails on some models (e.g. GroupNorm): fail here
            with warnings.catch_warnings():  # torch.fx const folding warns about get_attr nodes; harmless
                warnings.simplefilter("ignore", UserWarning)
                _, jvp_fn = linearize(grad(f), x0)
            jvp_fn(torch.zeros_like(x0))
            jvp_fn(torch.ones_like(x0))  # a zero tangent can replay where a real one fails
        except Exception as exc:  # noqa: BLE001 - a ValueError: the CLI prints one line naming the backend
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
            raise ValueError(
                f"backend 'linearize' is not supported on this model ({first[:160]}): use --backend auto "
                "or double_backward"
            ) from exc
        single = jvp_fn
        block = _Batched(vmap(jvp_fn), jvp_fn)
    return HVP(backend, single, block, n, setup_time=time.perf_counter() - t0)


def _time(fn: Callable[[], Any], budget_s: float, min_reps: int = 3, max_reps: int = 1000,
          device: torch.device | str | None = None) -> float:
    """Seconds per call: the minimum over repeated calls for about ``budget_s`` s, after one warm-up call.

    The minimum is the estimate least disturbed by first-call allocation and by other load on the
    machine (which only ever adds time).  On a CUDA ``device`` every call is followed by a
    synchronisation, so kernels are timed, not launches.
    """
    if device is not None and torch.device(device).type == "cuda":
        inner = fn

        def fn() -> Any:
            out = inner()
            torch.cuda.synchronize(device)
            return out

    fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_reps or (time.perf_counter() - start < budget_s and len(times) < max_reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(min(times))


def time_gradient(f: ScalarFn, x0: torch.Tensor, budget_s: float = 0.3) -> float:
    """Seconds per gradient :math:`\\nabla f(x_0)` (one forward + one backward pass with ``torch.autograd``)."""
    x = x0.detach().clone().requires_grad_(True)

    def g() -> torch.Tensor:
        with torch.enable_grad():
            return torch.autograd.grad(f(x), x)[0]

    return _time(g, budget_s, device=x0.device)


@dataclass(frozen=True)
class BackendChoice:
    """Outcome of :func:`select_backend`: the chosen name and seconds per HVP for every candidate.

    ``timings[name]`` holds ``single`` (s per product), ``batched`` (s per product within a block of
    ``block_size``), ``setup`` (s, one-off) — or ``error`` when a backend failed on this function.
    """

    backend: str
    timings: dict[str, dict[str, Any]] = field(default_factory=dict)
    gradient_time: float | None = None
    block_size: int = 0
    budget_s: float = 0.0
    hvp: HVP | None = field(default=None, repr=False, compare=False)  # the winner, built (not serialised)

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "timings": self.timings,
            "gradient_time": self.gradient_time,
            "block_size": self.block_size,
            "budget_s": self.budget_s,
        }


def select_backend(
    f: ScalarFn,
    x0: torch.Tensor,
    *,
    candidates: Sequence[str] = BACKENDS,
    budget_s: float = 1.0,
    block_size: int = 4,
    batched: bool = False,
    expected_products: int | None = 100,
    generator: torch.Generator | None = None,
) -> BackendChoice:
    """Time each candidate backend for about ``budget_s`` seconds in all and return the fastest.

    The score is seconds per product — single, or within a block of ``block_size`` when
    ``batched=True`` (``block_size=0`` skips the batched timing) — plus the one-off build time spread
    over ``expected_products`` products (``None``: build time not scored).  The build matters because
    every new point (sample, iterate) needs a new build: ``linearize`` traces the function once per
    build, which costs hundreds of products on small models.  Times are minima over repeats (the least
    disturbed by other load); each backend gets ``budget_s / (2 * len(candidates))`` s per timing but at
    least 3 repeats, so on a slow model the selection takes longer than ``budget_s``.  The winner's build
    is returned in ``choice.hvp``.  A backend that raises on this function is recorded with its error
    and skipped.
    """
    if expected_products is not None and expected_products < 1:
        raise ValueError(f"expected_products={expected_products!r}: expected an integer >= 1 or None")
    cands = list(candidates)
    if not cands:
        raise ValueError("select_backend: candidates is empty")
    if batched and block_size <= 0:
        raise ValueError(f"select_backend: batched=True needs block_size > 0 (got {block_size})")
    per = max(budget_s / (2 * len(cands)), 1e-3)
    v = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device="cpu").to(x0.device)
    V = torch.randn((block_size, *x0.shape), generator=generator, dtype=x0.dtype, device="cpu").to(x0.device)
    timings: dict[str, dict[str, Any]] = {}
    key = "batched" if batched else "single"
    kept: tuple[float, HVP] | None = None  # the best so far stays built; the others are dropped
    for name in cands:
        try:
            h = make_hvp(f, x0, name)
            single = _time(lambda h=h: h(v), per, device=x0.device)
            blk = _time(lambda h=h: h.batched(V), per, device=x0.device) / block_size if block_size > 0 else None
            t = timings[name] = {"single": single, "batched": blk, "setup": h.setup_time, "batched_mode": h.batched_mode}
            score = None if t[key] is None else t[key] + (h.setup_time / expected_products if expected_products else 0.0)
            t["score"] = score
            if score is not None and (kept is None or score < kept[0]):
                kept = (score, h)
            del h
        except Exception as exc:  # noqa: BLE001 - any failure disqualifies that backend only
            timings[name] = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    ok = {n: t["score"] for n, t in timings.items() if "error" not in t and t.get("score") is not None}
    if not ok:
        raise RuntimeError(f"select_backend: every backend failed: {timings}")
    best = min(ok, key=ok.__getitem__)
    return BackendChoice(best, timings, None, block_size, budget_s, kept[1] if kept is not None else None)
