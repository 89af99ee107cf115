r"""Second-order Taylor mode through a network: :math:`(f(a), f'(a)[a_1], f''(a)[a_1,a_1] + f'(a)[a_2])`.

For a curve :math:`a(t) = a + t a_1 + \tfrac12 t^2 a_2`, :func:`taylor2` returns the value, first and second
derivative at ``t = 0`` of :math:`f(a(t))`.  Linear layers (convolutions, ``nn.Linear``) are applied to the
three components stacked along the batch, in one call, with the bias on the value only; elementwise
activations take their derivatives from ``torch.func.jvp``; ``nn.Sequential`` composes them, and a module
with a ``taylor2(a, a1, a2)`` method (the regularizers of :mod:`landscape.models`) composes its own.  Any other module falls back to nested
``torch.func.jvp`` of :math:`t \mapsto f(a(t))` (exact, slower: every layer runs once per dual component).
Everything stays differentiable in the module's parameters, so a loss built from the derivatives can be
backpropagated.

Nested ``torch.func.jvp`` through the whole unrolled network costs about 15 forward passes on the toy CNN
(each convolution runs 7 times); the stacked Taylor mode costs about 3 (``benchmarks/bench_strategies.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["taylor2", "Jet", "ELEMENTWISE"]

Jet = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]

#: Activation modules that act entry by entry (their Taylor coefficients come from elementwise jvps).
ELEMENTWISE: tuple[type, ...] = (
    nn.ReLU,
    nn.GELU,
    nn.Softplus,
    nn.ELU,
    nn.Tanh,
    nn.Sigmoid,
    nn.Identity,
    nn.LeakyReLU,
    nn.SiLU,
)


def _stacked_linear(m: nn.Module, comps: list[torch.Tensor]) -> list[torch.Tensor]:
    """A linear-plus-bias layer on each component: one call on the stacked batch, the bias on the value only."""
    B = comps[0].shape[0]
    z = torch.cat(comps, 0)
    if isinstance(m, nn.Linear):
        out = F.linear(z, m.weight)
    else:  # a convolution: the module's own forward without its bias
        out = m._conv_forward(z, m.weight, None)
    parts = list(out.split(B, 0))
    if m.bias is not None:
        shape = (1, -1) + (1,) * (parts[0].dim() - 2)
        parts[0] = parts[0] + m.bias.view(shape)
    return parts


def _derivatives(m: nn.Module, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """(σ(a), σ'(a), σ''(a)) in closed form for the common activations (as autograd differentiates them:
    softplus linear above its threshold, relu and elu with the derivative of their ``a ≤ 0`` branch at 0),
    None for others (their derivatives then come from ``torch.func.jvp``)."""
    if isinstance(m, nn.Softplus):
        b = a * m.beta
        s = torch.sigmoid(b)
        lin = b > m.threshold
        return (
            m(a),
            torch.where(lin, torch.ones_like(s), s),
            torch.where(lin, torch.zeros_like(s), m.beta * s * (1 - s)),
        )
    if isinstance(m, nn.GELU) and m.approximate == "none":
        phi = torch.exp(-0.5 * a * a) / (2 * torch.pi) ** 0.5
        cdf = 0.5 * (1 + torch.erf(a / 2**0.5))
        return a * cdf, cdf + a * phi, phi * (2 - a * a)
    if isinstance(m, nn.Tanh):
        t = torch.tanh(a)
        d = 1 - t * t
        return t, d, -2 * t * d
    if isinstance(m, nn.ReLU):
        pos = (a > 0).to(a.dtype)
        return a * pos, pos, torch.zeros_like(a)
    if isinstance(m, nn.ELU):
        e = m.alpha * torch.exp(torch.clamp(a, max=0))
        pos = a > 0
        return m(a), torch.where(pos, torch.ones_like(a), e), torch.where(pos, torch.zeros_like(a), e)
    return None


def _elementwise(m: nn.Module, a: torch.Tensor, a1: torch.Tensor, a2: torch.Tensor | None) -> Jet:
    if isinstance(m, nn.Identity):
        return a, a1, a2
    closed = _derivatives(m, a)
    if closed is not None:
        y, d1, d2 = closed
        return y, d1 * a1, None if a2 is None else d2 * a1 * a1 + d1 * a2
    if a2 is None:
        y, y1 = torch.func.jvp(m, (a,), (a1,))
        return y, y1, None

    def first(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.func.jvp(m, (u,), (a1,))

    (y, y1), (_, curv) = torch.func.jvp(first, (a,), (a1,))  # curv = m''(a) a1²
    _, lin = torch.func.jvp(m, (a,), (a2,))  # m'(a) a2
    return y, y1, curv + lin


def _generic(m, a: torch.Tensor, a1: torch.Tensor, a2: torch.Tensor | None) -> Jet:
    """Nested ``torch.func.jvp`` of t ↦ m(a + t a1 + ½ t² a2): exact for any module, one pass per component."""
    zero = torch.zeros((), dtype=a.dtype, device=a.device)
    one = torch.ones((), dtype=a.dtype, device=a.device)

    def curve(t: torch.Tensor) -> torch.Tensor:
        return m(a + t * a1 + (0.5 * t * t * a2 if a2 is not None else 0))

    if a2 is None:
        y, y1 = torch.func.jvp(curve, (zero,), (one,))
        return y, y1, None
    (y, y1), (_, y2) = torch.func.jvp(lambda t: torch.func.jvp(curve, (t,), (one,)), (zero,), (one,))
    return y, y1, y2


def taylor2(m, a: torch.Tensor, a1: torch.Tensor, a2: torch.Tensor | None = None) -> Jet:
    """``(m(a), m'(a) a1, m''(a)[a1, a1] + m'(a) a2)``; with ``a2=None`` the first order only (third entry None)."""
    if hasattr(m, "taylor2"):  # a module that composes its own (landscape.models' regularizers)
        return m.taylor2(a, a1, a2)
    if isinstance(m, nn.Sequential):
        jet: Jet = (a, a1, a2)
        for layer in m:
            jet = taylor2(layer, *jet)
        return jet
    if isinstance(m, nn.Linear) or (
        isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) and m.padding_mode == "zeros"
    ):
        comps = [a, a1] + ([a2] if a2 is not None else [])
        parts = _stacked_linear(m, comps)
        return parts[0], parts[1], parts[2] if a2 is not None else None
    if isinstance(m, ELEMENTWISE):
        return _elementwise(m, a, a1, a2)
    return _generic(m, a, a1, a2)
