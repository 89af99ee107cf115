r"""The jitter rule: Gaussian noise injected into every unrolled gradient step, training only.

.. math:: x_{k+1} = x_k - \eta_k\,(A^\top(Ax_k - y) + R_\theta(x_k) + n_k),\qquad n_k = s_k\,\varepsilon_k,
          \quad \varepsilon_k \sim N(0, I)

(``UnrolledProxGD``: the noise enters the argument of the learned map instead).  The per-entry scale
:math:`s_k` is set by the mode; :math:`g_k = x_k - \eta_k A^\top(Ax_k - y)` is the iterate after the
data step and :math:`d_k` the full gradient step of the model (GD: :math:`A^\top(Ax_k-y) + R_\theta(x_k)`;
prox: :math:`A^\top(Ax_k-y)`), both at the *jittered* iterate :math:`x_k` of the current forward pass:

* ``paper`` — the rule of the paper's official code, exactly: :math:`s_k = \sigma_k\cdot\max(g_k)`,
  the **signed** maximum (``torch.max(g)``, not of ``|g|``) over the **whole batch tensor** (one
  scalar per batch), **not detached** (gradients flow through the scale), and the update written as
  :math:`x_{k+1} = g_k - \eta_k (R_\theta(x_k) + n_k)`.  The scale follows the signal's amplitude, so it
  stays roughly constant along k.  (A signed max can be negative for an all-negative batch; the noise is
  symmetric, so only :math:`s_k^2` matters for the penalty, but the rule is kept as written.)
* ``absolute``   — :math:`s_k = \sigma_k`;
* ``normalized`` — :math:`s_k = \sigma_k / \sqrt{n}` (``n`` entries per sample), so
  :math:`E\|n_k\|^2 = \sigma_k^2` whatever the signal size;
* ``per-sample-step`` — :math:`s_k = \sigma_k \cdot \max_i |d_{k,i}|` per sample, detached: the size of the
  *step*, which shrinks as the solver converges (on a trained toy model 0.157 → 0.030 along k, while the
  ``paper`` scale stays about 0.13).  This was called ``relative`` before; ``relative`` still loads as a
  deprecated alias of it (old checkpoints keep their exact behaviour).
* ``paper-clean-path`` — the ``paper`` rule with its scale frozen on the **un-jittered** trajectory:
  :math:`s_k = \sigma_k\max(\bar g_k)`, :math:`\bar g_k = \bar x_k - \eta_k A^\top(A\bar x_k - y)` on the clean
  iterates of the same forward pass (one extra clean pass, no gradient through the scale).  The scale no
  longer depends on the earlier noise, so the constant-scale expansion of ``theory/jitter_expansion.md``
  applies (exactly for an affine network).  Not the paper's rule; a control for it.

``sigma`` is one number or one per iteration (length K), e.g. ``[0.1]*8 + [0, 0]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from landscape.errors import check

__all__ = [
    "JitterConfig",
    "JITTER_MODES",
    "MODE_ALIASES",
    "canonical_mode",
    "jitter_noise",
    "jitter_scale",
    "standard_normal",
]

JITTER_MODES = ("paper", "absolute", "normalized", "per-sample-step", "paper-clean-path")
# deprecated names that still load: old checkpoints wrote mode='relative' for the per-sample step rule
MODE_ALIASES = {"relative": "per-sample-step"}


def canonical_mode(mode: str) -> str:
    """The current name of a jitter mode (``'relative'`` -> ``'per-sample-step'``); ValueError if unknown."""
    mode = MODE_ALIASES.get(mode, mode)
    check(mode in JITTER_MODES, f"jitter mode={mode!r}: expected one of {JITTER_MODES}")
    return mode


@dataclass(frozen=True)
class JitterConfig:
    """Strength and rule of the iterate noise. ``sigma`` = 0 everywhere switches jitter off."""

    sigma: float | tuple[float, ...] = 0.0
    mode: str = "normalized"

    def __post_init__(self) -> None:
        """Store ``sigma`` as a float or tuple of floats (finite, >= 0) and ``mode`` by its current name."""
        s = self.sigma
        if isinstance(s, Sequence) and not isinstance(s, str):
            vals = tuple(float(v) for v in s)
            check(len(vals) >= 1, "sigma=[]: expected a number or a non-empty list of numbers >= 0")
            object.__setattr__(self, "sigma", vals)
        else:
            try:
                vals = (float(s),)
            except (TypeError, ValueError):
                raise ValueError(f"sigma={s!r}: expected a number >= 0 or a list of them") from None
            object.__setattr__(self, "sigma", vals[0])
        for v in vals:
            check(math.isfinite(v) and v >= 0, f"sigma={self.sigma!r}: expected finite values >= 0")
        object.__setattr__(self, "mode", canonical_mode(self.mode))

    @property
    def active(self) -> bool:
        """True when some iteration has σ > 0."""
        s = self.sigma
        return any(v > 0 for v in s) if isinstance(s, tuple) else s > 0

    def sigma_at(self, k: int, n_iter: int) -> float:
        """σ for iteration ``k`` (0-based) of ``n_iter``."""
        s = self.sigma
        if isinstance(s, tuple):
            check(len(s) == n_iter, f"sigma has {len(s)} entries: expected one per iteration (K={n_iter})")
            return s[k]
        return float(s)

    def to_dict(self) -> dict:
        """The config as a JSON-safe dict (``sigma`` a list when it is per iteration)."""
        s = self.sigma
        return {"sigma": list(s) if isinstance(s, tuple) else s, "mode": self.mode}


def standard_normal(like: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """:math:`\\varepsilon \\sim N(0, I)` shaped like ``like``, drawn on the generator's device."""
    if generator is not None and generator.device != like.device:
        return torch.randn(like.shape, generator=generator, dtype=like.dtype, device=generator.device).to(
            like.device
        )
    return torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)


def jitter_scale(
    mode: str,
    sigma: float,
    *,
    after_data_step: torch.Tensor | None = None,
    grad_step: torch.Tensor | None = None,
    per_sample: bool = False,
) -> torch.Tensor | float:
    """The per-entry scale :math:`s_k` of one iteration (a float, or a tensor broadcastable to the batch).

    ``after_data_step`` is :math:`g_k` (needed by ``paper``), ``grad_step`` is :math:`d_k` (needed by
    ``per-sample-step``).  ``per_sample=True`` takes the ``paper`` max per sample instead of over the
    batch (what the rule gives for a batch of one; used by the analysis, never by training).
    """
    mode = canonical_mode(mode)
    if mode == "absolute":
        return float(sigma)
    if mode == "normalized":
        ref = after_data_step if after_data_step is not None else grad_step
        check(ref is not None, "normalized jitter needs the signal shape")
        return float(sigma) / math.sqrt(ref[0].numel())
    if mode == "per-sample-step":
        check(grad_step is not None, "per-sample-step jitter needs the gradient step")
        scale = grad_step.detach().flatten(1).abs().amax(dim=1)
        return sigma * scale.view(-1, *([1] * (grad_step.dim() - 1)))
    check(after_data_step is not None, f"{mode} jitter needs the iterate after the data step")
    g = after_data_step if mode == "paper" else after_data_step.detach()  # clean-path: frozen
    if per_sample:
        return sigma * g.flatten(1).amax(dim=1).view(-1, *([1] * (g.dim() - 1)))
    return torch.max(g) * sigma  # one signed scalar over the whole batch


def jitter_noise(
    grad_step: torch.Tensor,
    sigma: float,
    mode: str,
    generator: torch.Generator | None = None,
    *,
    after_data_step: torch.Tensor | None = None,
) -> torch.Tensor:
    """Draw :math:`n_k = s_k\\varepsilon_k` shaped like ``grad_step`` (batch-first) for one iteration's ``sigma``."""
    eps = standard_normal(grad_step, generator)
    return jitter_scale(mode, sigma, after_data_step=after_data_step, grad_step=grad_step) * eps
