r"""Perturbations of the measurement: ℓ2 PGD attacks (worst case) and random directions (average case).

PGD maximises the per-sample reconstruction loss :math:`\ell(\delta) = \|f(y + \delta) - x^*\|^2` over
the ℓ2 ball :math:`\|\delta\| \le \varepsilon` by normalised-gradient ascent with projection
(the rule of the paper's code: ε = 1, 20 steps, step 0.1):

.. math::
   \delta \leftarrow \Pi_{\varepsilon}\Big(P\big(\delta + \alpha\,\frac{P g}{\|P g\|}\big)\Big),
   \qquad g = \nabla_\delta \ell(\delta),\quad \Pi_\varepsilon(d) = d\,\min(1, \varepsilon/\|d\|)

where ``P = physics.project_measurement`` (for MRI it zeroes unsampled k-space lines, so the attack
stays on what the scanner records; identity otherwise) and the network recomputes
:math:`x_0 = A^\top(y + \delta)` itself.  ε is absolute, or relative to :math:`\|y\|` per sample
(``relative=True``: :math:`\varepsilon_i = \varepsilon\,\|y_i\|`); the step is
:math:`\alpha = \text{step\_size}\cdot\varepsilon_i`.  The attack starts at δ = 0 (or a random point
of the sphere with ``random_start=True``) and returns, per sample, the iterate with the largest loss
seen, δ = 0 included, so it never lowers the loss.  Only δ receives gradients; the model's
parameters are untouched.

A loss that overflows (Inf or NaN: the network's output blew up inside the ball) counts as the largest
loss of all: that sample's attack stops there and returns the δ that broke the network, with a
``RuntimeWarning`` naming how many samples broke.  The clean δ = 0 is never reported for a sample whose
attack found an overflow, so the robustness curve cannot rise with ε because of overflow.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from landscape.errors import check, check_finite, check_positive_int

__all__ = ["PGDConfig", "pgd_attack", "pgd_restarts", "random_perturbation", "ball_radius", "per_sample_norm"]

Reconstruct = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class PGDConfig:
    """ℓ2 PGD on the measurement. ``step_size`` is a fraction of ε (α = step_size · ε)."""

    eps: float = 1.0
    steps: int = 20
    step_size: float = 0.1
    relative: bool = False
    random_start: bool = False

    def __post_init__(self) -> None:
        """Check ``eps`` (finite, >= 0), ``steps`` (>= 0) and ``step_size`` (> 0)."""
        check(
            isinstance(self.eps, (int, float)) and math.isfinite(self.eps) and self.eps >= 0,
            f"eps={self.eps!r}: expected a finite number >= 0",
        )
        check_positive_int(self.steps, "steps", minimum=0)
        check(
            math.isfinite(self.step_size) and self.step_size > 0,
            f"step_size={self.step_size!r}: expected a number > 0 (a fraction of eps)",
        )

    def to_dict(self) -> dict:
        """The config as a dict of its fields (``PGDConfig(**d)`` rebuilds it)."""
        return asdict(self)


def per_sample_norm(t: torch.Tensor) -> torch.Tensor:
    """ℓ2 norm of each sample, shape ``(B,)``, without overflow: each sample is divided by its largest
    entry before squaring, so a vector of huge but finite entries (a PGD step of radius 1e300 in float64)
    gets its true finite norm, not Inf (an Inf norm made the ball projection scale the step to zero, and
    the attack silently returned the clean δ = 0).  Inf or NaN entries still give Inf or NaN."""
    flat = t.flatten(1)
    peak = flat.abs().amax(dim=1)
    scale = torch.where(torch.isfinite(peak) & (peak > 0), peak, torch.ones_like(peak))
    return (flat / scale[:, None]).norm(dim=1) * scale


def _bview(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.dim() - 1)))


def _check_finite(t: torch.Tensor, name: str) -> None:
    check(isinstance(t, torch.Tensor), f"{name} is a {type(t).__name__}: expected a torch.Tensor")
    check_finite(t, name)


def ball_radius(y: torch.Tensor, eps: float, relative: bool) -> torch.Tensor:
    """Per-sample radius: ``eps`` or ``eps · ‖y_i‖``, shape ``(B,)`` (dtype/device of ``y``)."""
    check(math.isfinite(eps) and eps >= 0, f"eps={eps!r}: expected a finite number >= 0")
    if relative:
        return eps * per_sample_norm(y.detach())
    return torch.full((y.shape[0],), float(eps), dtype=y.dtype, device=y.device)


def _project_ball(d: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    norm = per_sample_norm(d)
    scale = torch.where(
        norm > radius, radius / norm.clamp_min(torch.finfo(d.dtype).tiny), torch.ones_like(norm)
    )
    return d * _bview(scale, d)


def _randn(shape, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    dev = generator.device if generator is not None else like.device
    return torch.randn(shape, generator=generator, dtype=like.dtype, device=dev).to(like.device)


def random_perturbation(
    y: torch.Tensor,
    eps: float,
    *,
    project: Callable[[torch.Tensor], torch.Tensor] | None = None,
    relative: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A uniformly random direction (after ``project``) scaled to norm exactly ε (or ε‖y_i‖) per sample."""
    _check_finite(y, "y")
    project = project or (lambda e: e)
    d = project(_randn(y.shape, y, generator))
    radius = ball_radius(y, eps, relative)
    norm = per_sample_norm(d).clamp_min(torch.finfo(y.dtype).tiny)
    return d * _bview(radius / norm, d)


def _unit(g: torch.Tensor, tiny: float) -> torch.Tensor:
    """``g / ||g||`` per sample without overflow: a huge gradient (its squared norm beyond the dtype's
    range) is scaled by its largest entry first, so the step keeps its direction instead of vanishing."""
    big = torch.finfo(g.dtype).max
    g = torch.nan_to_num(g, nan=0.0, posinf=big, neginf=-big)
    peak = g.flatten(1).abs().amax(dim=1).clamp_min(tiny)
    g = g / _bview(peak, g)
    return g / _bview(per_sample_norm(g).clamp_min(tiny), g)


def _loss(reconstruct: Reconstruct, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return (reconstruct(y) - x).pow(2).flatten(1).sum(dim=1)


def pgd_attack(
    reconstruct: Reconstruct,
    y: torch.Tensor,
    x: torch.Tensor,
    config: PGDConfig,
    *,
    project: Callable[[torch.Tensor], torch.Tensor] | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """ℓ2 PGD perturbation δ of ``y`` against ``reconstruct`` (a model or any differentiable y ↦ x̂).

    Args:
        reconstruct: ``y -> x_hat``; a network should be in eval mode (clean solver).
        y, x: measurements and the clean signals they came from (batch-first).
        config: :class:`PGDConfig`.
        project: measurement-space projection (``physics.project_measurement``); identity if None.
        generator: only used with ``config.random_start``.

    Returns:
        δ (detached, shaped like ``y``) with ``‖δ_i‖ <= ε_i`` and ``project(δ) = δ``.
    """
    _check_finite(y, "y")
    _check_finite(x, "x")
    project = project or (lambda e: e)
    y = y.detach()
    x = x.detach()
    radius = ball_radius(y, config.eps, config.relative)
    alpha = config.step_size * radius
    if config.random_start:
        delta = random_perturbation(y, 1.0, project=project, generator=generator) * _bview(radius, y)
    else:
        delta = torch.zeros_like(y)
    best_delta = delta.clone()
    best_loss = torch.full((y.shape[0],), -math.inf, dtype=y.dtype, device=y.device)
    broken = torch.zeros(y.shape[0], dtype=torch.bool, device=y.device)  # the loss overflowed: stop there
    tiny = torch.finfo(y.dtype).tiny

    def keep_best(d: torch.Tensor, loss: torch.Tensor) -> None:
        nonlocal best_delta, best_loss, broken
        bad = ~torch.isfinite(loss) & ~broken
        loss = torch.where(torch.isfinite(loss), loss, torch.full_like(loss, math.inf))
        better = ((loss > best_loss) & ~broken) | bad
        best_loss = torch.where(better, loss, best_loss)
        best_delta = torch.where(_bview(better, d), d, best_delta)
        broken = broken | bad

    for _ in range(config.steps):
        d = delta.clone().requires_grad_(True)
        with torch.enable_grad():
            loss = _loss(reconstruct, y + d, x)
            (g,) = torch.autograd.grad(loss.sum(), d)
        with torch.no_grad():
            keep_best(delta, loss.detach())  # the loss at the current delta comes with its gradient
            if bool(broken.all()):
                break
            g = project(torch.nan_to_num(g, nan=0.0))
            step = project(delta + _unit(g, tiny) * _bview(alpha, g))
            delta = torch.where(_bview(broken, delta), delta, _project_ball(step, radius))
    else:
        with torch.no_grad():
            keep_best(delta, _loss(reconstruct, y + delta, x))
    n_broken = int(broken.sum())
    if n_broken:
        warnings.warn(
            f"PGD: the loss overflowed (Inf/NaN) for {n_broken} of {y.shape[0]} samples within eps={config.eps:g}"
            f"{' (relative)' if config.relative else ''}; their perturbation is the one that broke the network",
            RuntimeWarning,
            stacklevel=2,
        )
    return best_delta.detach()


def pgd_restarts(
    reconstruct: Reconstruct,
    y: torch.Tensor,
    x: torch.Tensor,
    config: PGDConfig,
    restarts: int,
    *,
    project: Callable[[torch.Tensor], torch.Tensor] | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The worst of ``restarts`` PGD runs per sample (Genzel et al.'s protocol): the first from
    ``config`` as given, the others from random points of the sphere (``generator``); each sample keeps
    the δ with the largest reconstruction loss.  ``restarts=1`` is :func:`pgd_attack`."""
    check_positive_int(restarts, "restarts")
    best = pgd_attack(reconstruct, y, x, config, project=project, generator=generator)
    if restarts == 1:
        return best
    with torch.no_grad():
        best_loss = _loss(reconstruct, y + best, x)
    rand = PGDConfig(**{**config.to_dict(), "random_start": True})
    for _ in range(restarts - 1):
        d = pgd_attack(reconstruct, y, x, rand, project=project, generator=generator)
        with torch.no_grad():
            loss = _loss(reconstruct, y + d, x)
        loss = torch.where(torch.isfinite(loss), loss, torch.full_like(loss, math.inf))
        worse = loss > best_loss
        best = torch.where(_bview(worse, d), d, best)
        best_loss = torch.where(worse, loss, best_loss)
    return best
