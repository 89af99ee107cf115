r"""The jitter's implicit penalty made explicit: a differentiable Hutchinson estimate of
:math:`P = \sum_k \tfrac12\eta_k^2 s_k^2\operatorname{tr}H_{k+1}`.

To second order in σ, SGD jittering adds to the expected loss of a sample (``theory/jitter_expansion.md``)

.. math:: E_w J - L_0 \approx \sum_{k=0}^{K-1} \tfrac12\,\eta_k^2 s_k^2\,\operatorname{tr} H_{k+1},

where :math:`H_{k+1} = \nabla^2_{x_{k+1}}\|\Phi_{k+1\to K}(x_{k+1}) - x^*\|^2` is the Hessian of the clean tail
at the iterate the step-k noise lands in (:math:`-\eta_k s_k\varepsilon_k`), and :math:`s_k` the rule's
per-entry scale.  :func:`noise_penalty` estimates :math:`P` without forming any Hessian: with one Rademacher
probe :math:`v_k` per iterate, put :math:`t\,u_k`, :math:`u_k = s_k v_k`, where the step-k noise enters
(for both architectures the perturbation goes where the jitter goes) and take :math:`\tfrac12\varphi''(0)`
of :math:`\varphi(t) = \|x_K(t) - x^*\|^2` by forward-mode derivatives: for :mod:`landscape.models`'
solvers one second-order Taylor-mode pass (``taylor_step``, :mod:`landscape.taylor`), for any other solver
with ``jittered`` and ``noise_scale`` nested ``torch.func.jvp`` through ``jittered`` under the absolute rule
at σ = 1 (the same numbers, about 4 times the cost).  Since
:math:`E[v_j v_k^\top] = \delta_{jk} I`, the cross terms between iterates have mean zero and

.. math:: E_v\,\tfrac12\varphi''(0) = \sum_k \tfrac12\eta_k^2 s_k^2\operatorname{tr}H_{k+1} = P,

one pass through the unrolled network instead of one Hessian product per iterate.  The result is an
ordinary tensor: its gradient in θ is the gradient of the estimate (unbiased for :math:`\nabla_\theta P`).

The Gauss–Newton part drops the residual-weighted curvature: :math:`\varphi'' = 2\|x_K'\|^2 +
2\langle x_K - x^*, x_K''\rangle`, so ``part='gauss-newton'`` estimates
:math:`\sum_k \eta_k^2 s_k^2\|J_{k+1}\|_F^2` (:math:`J_{k+1} = \partial x_K/\partial x_{k+1}`; the
:math:`2\|J\|_F^2` of the issue with the same ½ in front) from the first derivative alone.

The scale :math:`s_k` is the mirrored rule's on the **clean** path (``model.noise_scale`` at the clean
iterate, over the batch as training takes it; for ``paper`` not detached, as the rule is not), the
expansion's coefficient.  The jitter itself takes it on the jittered path; the difference is of higher order.
"""

from __future__ import annotations

import torch

from landscape.curvature.trace import rademacher
from landscape.errors import check
from landscape.jitter import JitterConfig

__all__ = ["PENALTY_PARTS", "noise_penalty"]

#: ``full``: the expansion's ½ tr H; ``gauss-newton``: its Jacobian part ‖J‖_F² only.
PENALTY_PARTS = ("full", "gauss-newton")

_UNIT = JitterConfig(1.0, "absolute")


def noise_penalty(
    model,
    x_true: torch.Tensor,
    y: torch.Tensor,
    jitter: JitterConfig,
    *,
    probes: int = 1,
    part: str = "full",
    generator: torch.Generator | None = None,
    directions: list[list[torch.Tensor | None]] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``(x_K, P̂)``: the clean output and the per-sample penalty estimate, shape ``(B,)``.

    :math:`E\,\hat P_b = \sum_k \tfrac12\eta_k^2 s_k^2\operatorname{tr}H_{k+1,b}` (``part='full'``) or
    :math:`\sum_k \eta_k^2 s_k^2\|J_{k+1,b}\|_F^2` (``'gauss-newton'``), averaged over ``probes``
    Rademacher probes (one per iterate each).  ``x_K`` is the clean forward pass (the primal of the same
    computation), so a training step needs no second forward.  Both carry autograd history in θ.

    ``directions`` replaces the random probes: one list of K tensors (``None``: no perturbation at that step)
    per probe; the estimate is then the exact :math:`\sum_{j,k}\tfrac12 u_j^\top M_{jk} u_k` of those
    directions (used by the tests against dense Hessians).
    """
    check(part in PENALTY_PARTS, f"part={part!r}: expected one of {PENALTY_PARTS}")
    check(isinstance(probes, int) and probes >= 1, f"probes={probes!r}: expected an integer >= 1")
    # landscape's models jitter only when a rule is passed; a foreign solver that jitters by itself says so
    check(
        not getattr(model, "jittering", False),
        "noise_penalty needs the clean path, but the solver jitters "
        "by itself now (jittering=True): switch its noise off",
    )
    K = model.n_iter
    second = part == "full"
    fast = hasattr(model, "taylor_step")
    x0 = model.initial(y)
    if directions is None:
        directions = [
            [
                None if jitter.sigma_at(k, K) == 0 else rademacher(x0.shape, generator, x0.dtype, x0.device)
                for k in range(K)
            ]
            for _ in range(probes)
        ]
    for dirs in directions:
        check(len(dirs) == K, f"a probe has {len(dirs)} directions: expected one per iteration (K={K})")
    scales = None if fast else _clean_scales(model, y, jitter)
    total, out = None, None
    for dirs in directions:
        if fast:  # one Taylor-mode pass: the value is the clean path, where the scales are taken
            jet = (x0, torch.zeros_like(x0), torch.zeros_like(x0) if second else None)
            for k in range(K):
                u = None
                if dirs[k] is not None and jitter.sigma_at(k, K) > 0:
                    u = model.noise_scale(jet[0], y, k, jitter=jitter) * dirs[k]
                jet = model.taylor_step(jet, y, k, u)
            out, d1, d2 = jet
        else:
            out, d1, d2 = _nested_jvp(model, y, scales, dirs, second)
        est = d1.pow(2).flatten(1).sum(1)
        if second:
            est = est + ((out - x_true) * d2).flatten(1).sum(1)
        total = est if total is None else total + est
    return out, total / len(directions)


def _clean_scales(model, y: torch.Tensor, jitter: JitterConfig) -> list:
    """s_k of ``jitter`` on the clean path (graph kept), None where σ_k = 0."""
    K = model.n_iter
    scales, x = [], model.initial(y)
    for k in range(K):
        scales.append(model.noise_scale(x, y, k, jitter=jitter) if jitter.sigma_at(k, K) > 0 else None)
        x = model.step(x, y, k)
    return scales


def _nested_jvp(model, y: torch.Tensor, scales: list, dirs: list, second: bool):
    """(x_K, x_K', x_K'') along t ↦ the solver with t·s_k v_k where its jitter enters, by nested
    ``torch.func.jvp`` through ``model.jittered`` (any solver with ``jittered`` and ``noise_scale``)."""
    x0 = model.initial(y)
    u = [torch.zeros_like(x0) if s is None or v is None else s * v for s, v in zip(scales, dirs)]

    def run(t: torch.Tensor) -> torch.Tensor:
        return model.jittered(y, [t * uk for uk in u], jitter=_UNIT)

    t0 = torch.zeros((), dtype=x0.dtype, device=x0.device)
    one = torch.ones((), dtype=x0.dtype, device=x0.device)
    if not second:
        out, d1 = torch.func.jvp(run, (t0,), (one,))
        return out, d1, None
    (out, d1), (_, d2) = torch.func.jvp(lambda t: torch.func.jvp(run, (t,), (one,)), (t0,), (one,))
    return out, d1, d2
