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

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.func import grad, jvp, linearize, vjp, vmap

__all__ = [
    "BACKENDS",
    "HVP",
    "make_hvp",
    "select_backend",
    "select_dense_backend",
    "BackendChoice",
    "time_gradient",
    "agreement_rtol",
]

from landscape.curvature.settings import BACKENDS  # noqa: E402 - the one list of names

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
        """:math:`Hv` for one vector ``v`` of shape ``(dim,)``."""
        return self.single(v)

    def batched(self, V: torch.Tensor) -> torch.Tensor:
        """The products :math:`H v_i` for the rows ``v_i`` of ``V`` ``(m, dim)``, shape ``(m, dim)``."""
        return self.block(V)

    @property
    def batched_mode(self) -> str:
        """``'vmap'`` while the batched product is vectorised, ``'loop'`` after it fell back."""
        return getattr(self.block, "mode", "vmap")


class _Batched:
    """Batched product through ``fast`` (vmap); after its first failure (an op without a batching rule,
    a traced graph that cannot be vmapped) a loop over ``single``.  ``mode`` says which is in use."""

    def __init__(
        self, fast: Callable[[torch.Tensor], torch.Tensor], single: Callable[[torch.Tensor], torch.Tensor]
    ):
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


def _time(
    fn: Callable[[], Any],
    budget_s: float,
    min_reps: int = 3,
    max_reps: int = 1000,
    device: torch.device | str | None = None,
) -> float:
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
    """Outcome of :func:`select_backend`: the chosen name and what every candidate measured.

    ``timings[name]`` holds ``single`` (s per product), ``batched`` (s per product within a block of
    ``block_size``), ``setup`` (s, one-off), ``score`` and ``agreement`` (relative difference of its
    product from ``double_backward`` on the probe) — or ``error`` (failed, or disagreed beyond
    ``rtol``) or ``skipped`` (the selection budget was spent).  ``selection_time`` is what choosing
    cost, in seconds.
    """

    backend: str
    timings: dict[str, dict[str, Any]] = field(default_factory=dict)
    gradient_time: float | None = None
    block_size: int = 0
    budget_s: float = 0.0
    rtol: float = 0.0
    selection_time: float = 0.0
    hvp: HVP | None = field(default=None, repr=False, compare=False)  # the winner, built (not serialised)

    def to_dict(self) -> dict[str, Any]:
        """The choice as a plain dict, without the built ``hvp`` (inverse of :meth:`from_dict`)."""
        return {
            "backend": self.backend,
            "timings": self.timings,
            "gradient_time": self.gradient_time,
            "block_size": self.block_size,
            "budget_s": self.budget_s,
            "rtol": self.rtol,
            "selection_time": self.selection_time,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> BackendChoice | None:
        """The choice ``d`` holds (``hvp`` is not rebuilt); None for None."""
        if d is None:
            return None
        return cls(
            backend=d["backend"],
            timings=dict(d.get("timings", {})),
            gradient_time=d.get("gradient_time"),
            block_size=int(d.get("block_size", 0)),
            budget_s=float(d.get("budget_s") or 0.0),
            rtol=float(d.get("rtol") or 0.0),
            selection_time=float(d.get("selection_time") or 0.0),
        )


#: Below this selection budget (seconds) dense Hessians take the forward-over-reverse prior, checked against
#: double backward on one probe vector, instead of timing candidates (probe blocks and torch.func warm-ups
#: cost 1-3 s, more than a small analysis can win back).
DENSE_PRIOR_BELOW_S = 5.0

#: Order in which :func:`select_backend` tries the candidates: the reference first, the one whose
#: build is a whole-function trace (``linearize``) last.
_ORDER = ("double_backward", "vjp_grad", "jvp_grad", "linearize")

#: The first ``torch.func`` build on a new function pays a warm-up that can dwarf the analysis
#: (measured here: 0.5-4 s for ``vjp_grad``/``jvp_grad`` on 10-dimensional models, 1.8 s per
#: ``linearize`` trace, more on a loaded machine).  A candidate other than the reference is tried
#: only while this much selection budget is left, so small analyses keep ``double_backward``.
WARMUP_S = 2.0

#: ``linearize`` is tried only while the remaining selection budget exceeds this many reference
#: products: its build traces the whole function, which costs hundreds to thousands of products.
LINEARIZE_MIN_PRODUCTS = 300


def agreement_rtol(dtype: torch.dtype) -> float:
    """Relative agreement with ``double_backward`` a backend must reach: 1e-8 in float64, 1e-4 otherwise."""
    return 1e-8 if dtype == torch.float64 else 1e-4


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    num = float((a - b).norm())
    den = float(b.norm())
    if not (num == num):  # NaN
        return math.inf
    return num / den if den > 0 else (0.0 if num == 0 else math.inf)


def select_backend(
    f: ScalarFn,
    x0: torch.Tensor,
    *,
    candidates: Sequence[str] = BACKENDS,
    budget_s: float = 1.0,
    block_size: int = 4,
    batched: bool = False,
    expected_products: int | None = 100,
    total_products: int | None = None,
    max_share: float = 0.1,
    rtol: float | None = None,
    generator: torch.Generator | None = None,
) -> BackendChoice:
    """Pick the fastest Hessian-vector product backend whose products are right.

    ``double_backward`` is the reference: every other candidate is used only if its product (and its
    batched product) on a random probe agrees with the reference to ``rtol`` relative (default
    :func:`agreement_rtol`: 1e-8 in float64).  A backend that disagrees — e.g. ``linearize`` through
    circular padding — or raises is recorded with the reason and never chosen.

    The score is seconds per product — single, or within a block of ``block_size`` when
    ``batched=True`` — plus the one-off build time spread over ``expected_products`` products (every
    new point needs a new build; ``linearize`` re-traces the function each time).  Selection stops
    trying candidates once it has spent ``budget_s`` seconds, or ``max_share`` of the analysis it
    serves when ``total_products`` (products of the whole analysis) is given; skipped candidates are
    recorded.  The winner's build is returned in ``choice.hvp``.
    """
    t_start = time.perf_counter()
    cands = _checked_candidates(candidates, expected_products, batched, block_size)
    tol = agreement_rtol(x0.dtype) if rtol is None else float(rtol)
    v = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device="cpu").to(x0.device)
    V = torch.randn((max(block_size, 1), *x0.shape), generator=generator, dtype=x0.dtype, device="cpu").to(
        x0.device
    )
    ref = make_hvp(f, x0, "double_backward")
    t0 = time.perf_counter()
    ref_v = ref(v)
    t_ref = time.perf_counter() - t0  # one product, first call included: an upper bound
    budget = float(budget_s)
    if total_products is not None:
        budget = min(budget, max_share * (total_products * t_ref + ref.setup_time))
    if budget - (time.perf_counter() - t_start) < WARMUP_S or cands == ["double_backward"]:
        # nothing else can be tried within the budget: keep the reference without timing it further
        return BackendChoice(
            "double_backward",
            _reference_only(ref, t_ref, budget, cands),
            None,
            block_size if batched else 0,
            budget,
            tol,
            time.perf_counter() - t_start,
            ref,
        )
    probes = (v, V[:block_size], ref_v, ref.batched(V[:block_size]) if block_size > 0 else None)
    timings, kept = _try_candidates(
        cands, f, x0, ref, probes, budget, t_start, t_ref, tol, batched, expected_products
    )
    ok = {n: t["score"] for n, t in timings.items() if "score" in t and t["score"] is not None}
    if not ok:
        raise RuntimeError(f"select_backend: every backend failed: {timings}")
    best = min(ok, key=ok.__getitem__)
    return BackendChoice(
        best,
        timings,
        None,
        block_size if batched else 0,
        budget,
        tol,
        time.perf_counter() - t_start,
        kept,
    )


def _try_candidates(
    cands: list[str],
    f: ScalarFn,
    x0: torch.Tensor,
    ref: HVP,
    probes: tuple,
    budget: float,
    t_start: float,
    t_ref: float,
    tol: float,
    batched: bool,
    expected_products: int | None,
) -> tuple[dict[str, dict[str, Any]], HVP | None]:
    """Each candidate of :func:`select_backend` checked against the reference ``ref`` and timed, or skipped
    with the reason once the ``budget`` (seconds since ``t_start``) is spent: the timings per candidate and
    the build of the fastest right one (``None`` when none was right)."""
    per = max(budget / (2 * len(cands)), 1e-3)
    timings: dict[str, dict[str, Any]] = {}
    kept: tuple[float, HVP] | None = None
    for name in cands:
        why = _skip_reason(name, budget, time.perf_counter() - t_start, t_ref)
        if why is not None:
            timings[name] = {"skipped": why}
            continue
        timings[name], h = _try_backend(
            name, f, x0, ref, probes, tol=tol, per=per, batched=batched, expected_products=expected_products
        )
        score = timings[name].get("score")
        if score is not None and (kept is None or score < kept[0]):
            kept = (score, h)
        del h
    return timings, kept[1] if kept is not None else None


def _checked_candidates(
    candidates: Sequence[str], expected_products: int | None, batched: bool, block_size: int
) -> list[str]:
    """:func:`select_backend`'s arguments checked; its candidates in the order they are tried (:data:`_ORDER`)."""
    if expected_products is not None and expected_products < 1:
        raise ValueError(f"expected_products={expected_products!r}: expected an integer >= 1 or None")
    unknown = [c for c in candidates if c not in BACKENDS]
    if unknown:
        raise ValueError(f"candidates {unknown}: expected names from {BACKENDS}")
    cands = [c for c in _ORDER if c in candidates]
    if not cands:
        raise ValueError("select_backend: candidates is empty")
    if batched and block_size <= 0:
        raise ValueError(f"select_backend: batched=True needs block_size > 0 (got {block_size})")
    return cands


def _reference_only(ref: HVP, t_ref: float, budget: float, cands: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The timings when the budget leaves room for no other build: the reference's one product, the rest skipped."""
    why = f"the selection budget ({budget:.3g} s) leaves no room for another build (~{WARMUP_S:g} s with warm-up)"
    timings = {
        "double_backward": {
            "single": t_ref,
            "batched": None,
            "setup": ref.setup_time,
            "batched_mode": ref.batched_mode,
            "agreement": 0.0,
            "score": t_ref,
        }
    }
    timings.update({n: {"skipped": why} for n in cands if n != "double_backward"})
    return timings


def _skip_reason(name: str, budget: float, spent: float, t_ref: float) -> str | None:
    """Why candidate ``name`` is not tried with ``spent`` of the selection ``budget`` seconds gone (None: try it;
    the reference is always tried)."""
    if name == "double_backward":
        return None
    if spent >= budget:
        return f"selection budget of {budget:.3g} s spent"
    if budget - spent < WARMUP_S:
        return (
            f"its build (with torch.func's warm-up, up to ~{WARMUP_S:g} s) does "
            f"not fit the {budget - spent:.3g} s left of the selection budget"
        )
    if name == "linearize" and budget - spent < LINEARIZE_MIN_PRODUCTS * t_ref:
        return (
            f"its trace needs more than the {budget - spent:.3g} s left of "
            f"the selection budget (~{LINEARIZE_MIN_PRODUCTS} products)"
        )
    return None


def _try_backend(
    name: str,
    f: ScalarFn,
    x0: torch.Tensor,
    ref: HVP,
    probes: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None],
    *,
    tol: float,
    per: float,
    batched: bool,
    expected_products: int | None,
) -> tuple[dict[str, Any], HVP | None]:
    """Candidate ``name`` built, checked against the reference on the probes ``(v, V, ref(v), ref.batched(V))``
    and timed for about ``per`` seconds: its timings record (with ``score``, or an ``error``) and its build."""
    v, V, ref_v, ref_V = probes
    try:
        h = ref if name == "double_backward" else make_hvp(f, x0, name)
        agree = 0.0
        if name != "double_backward":
            agree = _rel(h(v), ref_v)
            if ref_V is not None:
                agree = max(agree, _rel(h.batched(V), ref_V))
            if not agree <= tol:
                return {
                    "error": f"disagrees with double_backward: relative difference "
                    f"{agree:.2e} > rtol {tol:g}",
                    "agreement": agree,
                }, None
        single = _time(lambda: h(v), per, device=x0.device)
        blk = _time(lambda: h.batched(V), per, device=x0.device) / V.shape[0] if batched else None
        t = {
            "single": single,
            "batched": blk,
            "setup": h.setup_time,
            "batched_mode": h.batched_mode,
            "agreement": agree,
        }
        mine = t["batched" if batched else "single"]
        t["score"] = (
            None if mine is None else mine + (h.setup_time / expected_products if expected_products else 0.0)
        )
        return t, h
    except Exception as exc:  # noqa: BLE001 - any failure disqualifies that backend only
        return {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}, None


def select_dense_backend(
    f: ScalarFn,
    x0: torch.Tensor,
    *,
    candidates: Sequence[str] = BACKENDS,
    budget_s: float = 2.0,
    total_blocks: int = 1,
    max_share: float = 0.1,
    probe_columns: int = 16,
    rtol: float | None = None,
    columns: torch.Tensor | None = None,
) -> tuple[BackendChoice, torch.Tensor]:
    """Pick the backend for dense Hessians, then form the first Hessian ``H = hvp.batched(I)`` with it.

    When the selection budget (``max_share`` of the analysis, estimated from one product) is below
    :data:`DENSE_PRIOR_BELOW_S`, nothing is timed: the prior ``jvp_grad`` is used once its product agrees with
    ``double_backward``'s on a probe vector (else ``double_backward``).  Otherwise:
    Each candidate multiplies a probe block of ``probe_columns`` columns of the identity twice: the
    first call pays its warm-up and is checked against ``double_backward``'s block (relative Frobenius
    difference ≤ ``rtol``, 1e-8 in float64), the second is timed.  The score is that time scaled to all
    ``n`` columns plus the build time.  Candidates are tried forward-over-reverse first (``jvp_grad``, as
    ``torch.func.hessian`` does) while the time spent leaves room, within ``budget_s`` and ``max_share`` of
    ``total_blocks`` full blocks at the best score found so far, for two more probe blocks.  Returns
    ``(choice, H)``.  ``columns`` (m, n) replaces the identity: e.g. an identity replicated over the samples
    of a block-diagonal operator, so one call forms every sample's Hessian; ``H`` is then ``hvp.batched(columns)``.
    """
    t_start = time.perf_counter()
    unknown = [c for c in candidates if c not in BACKENDS]
    if unknown:
        raise ValueError(f"candidates {unknown}: expected names from {BACKENDS}")
    cands = [c for c in ("jvp_grad", "vjp_grad", "linearize") if c in candidates]
    tol = agreement_rtol(x0.dtype) if rtol is None else float(rtol)
    eye = torch.eye(x0.numel(), dtype=x0.dtype, device=x0.device) if columns is None else columns
    ref = make_hvp(f, x0, "double_backward")
    v = eye[0] + 0.5 * eye[-1]  # a probe vector for the agreement check of the prior
    ref(v)
    t0 = time.perf_counter()
    ref_v = ref(v)
    t_single = time.perf_counter() - t0
    estimate = (
        total_blocks * eye.shape[0] * t_single
    )  # n single products per Hessian: an upper bound for the analysis
    if min(float(budget_s), max_share * estimate) < DENSE_PRIOR_BELOW_S and "jvp_grad" in cands:
        timings = {"double_backward": {"single": t_single, "setup": ref.setup_time, "score": None}}
        why = (
            f"not timed: the analysis is estimated at {estimate:.3g} s, and {max_share:.0%} of it is below "
            f"{DENSE_PRIOR_BELOW_S:g} s, less than timing candidates costs"
        )
        spent = time.perf_counter() - t_start
        name, h, H = _dense_prior(f, x0, ref, ref_v, eye, tol, timings, why)
        for c in cands:
            timings.setdefault(c, {"skipped": why})
        return BackendChoice(name, timings, None, 1, max_share * estimate, tol, spent, h), H
    m = max(1, min(eye.shape[0], int(probe_columns)))
    (name, h), timings, budget = _dense_timed(
        f,
        x0,
        ref,
        eye,
        m,
        cands,
        tol=tol,
        budget_s=float(budget_s),
        share=max_share * total_blocks,
        t_start=t_start,
    )
    spent = time.perf_counter() - t_start
    H = h.batched(eye)
    return BackendChoice(name, timings, None, m, budget, tol, spent, h), H


def _dense_prior(
    f: ScalarFn,
    x0: torch.Tensor,
    ref: HVP,
    ref_v: torch.Tensor,
    eye: torch.Tensor,
    tol: float,
    timings: dict[str, dict[str, Any]],
    why: str,
) -> tuple[str, HVP, torch.Tensor]:
    """The prior, untimed (``why``): forward-over-reverse (what ``torch.func.hessian`` does) once its Hessian's
    product with the probe ``eye[0] + 0.5 eye[-1]`` agrees with double backward's (``ref_v``), else the
    reference.  Records ``jvp_grad`` in ``timings``; returns the name, its build and the first Hessian."""
    try:  # the prior's first Hessian is the analysis' own work; its agreement check, H v, is free
        h = make_hvp(f, x0, "jvp_grad")
        H = h.batched(eye)
        agree = _rel(H[0] + 0.5 * H[-1], ref_v)  # H v by linearity: v = eye[0] + 0.5 eye[-1]
    except Exception as exc:  # noqa: BLE001 - the prior cannot run here: keep the reference
        h, agree = None, math.inf
        timings["jvp_grad"] = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    if h is not None and agree <= tol:
        timings["jvp_grad"] = {"agreement": agree, "setup": h.setup_time, "prior": why}
        return "jvp_grad", h, H
    timings.setdefault(
        "jvp_grad",
        {
            "error": f"disagrees with double_backward: relative difference {agree:.2e} > rtol {tol:g}",
            "agreement": agree,
        },
    )
    return "double_backward", ref, ref.batched(eye)


def _probe_block(h: HVP, eye: torch.Tensor, m: int) -> tuple[torch.Tensor, float]:
    """``h`` on the first ``m`` columns twice: the first call's block (warm-up, checked) and the second's seconds."""
    out = h.batched(eye[:m])  # warm-up (and the block that is checked)
    t0 = time.perf_counter()
    h.batched(eye[:m])
    return out, time.perf_counter() - t0


def _dense_timed(
    f: ScalarFn,
    x0: torch.Tensor,
    ref: HVP,
    eye: torch.Tensor,
    m: int,
    cands: Sequence[str],
    *,
    tol: float,
    budget_s: float,
    share: float,
    t_start: float,
) -> tuple[tuple[str, HVP], dict[str, dict[str, Any]], float]:
    """Candidates timed on probe blocks of ``m`` columns (see :func:`select_dense_backend`), within ``budget_s``
    and ``share`` (``max_share`` × blocks) of the analysis at the best score so far: the winner ``(name, build)``,
    the timings and the budget in force at the end."""
    n = eye.shape[0]  # products per Hessian block
    P_ref, t_ref = _probe_block(ref, eye, m)
    full_ref = t_ref * n / m + ref.setup_time
    budget = min(budget_s, share * full_ref)
    timings: dict[str, dict[str, Any]] = {
        "double_backward": {
            "probe": t_ref,
            "setup": ref.setup_time,
            "batched_mode": ref.batched_mode,
            "agreement": 0.0,
            "score": full_ref,
        }
    }
    best = ("double_backward", full_ref, ref)
    for name in cands:
        # the analysis shrinks as faster backends turn up: its predicted time uses the best score so far
        budget = min(budget_s, share * best[1])
        left = budget - (time.perf_counter() - t_start)
        if name == "linearize" and n < LINEARIZE_MIN_PRODUCTS:
            timings[name] = {
                "skipped": f"a block has {n} products, fewer than its trace costs "
                f"(~{LINEARIZE_MIN_PRODUCTS}; it re-traces for every new point)"
            }
            continue
        if left < 2 * t_ref:
            timings[name] = {
                "skipped": f"{left:.3g} s of the selection budget left, less than two probe blocks"
            }
            continue
        try:
            h = make_hvp(f, x0, name)
            P, tp = _probe_block(h, eye, m)
            agree = _rel(P, P_ref)
            if not agree <= tol:
                timings[name] = {
                    "error": f"disagrees with double_backward: relative difference {agree:.2e} > "
                    f"rtol {tol:g}",
                    "agreement": agree,
                }
                continue
            score = tp * n / m + h.setup_time
            timings[name] = {
                "probe": tp,
                "setup": h.setup_time,
                "batched_mode": h.batched_mode,
                "agreement": agree,
                "score": score,
            }
            if score < best[1]:
                best = (name, score, h)
        except Exception as exc:  # noqa: BLE001 - any failure disqualifies that backend only
            timings[name] = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    return (best[0], best[2]), timings, budget
