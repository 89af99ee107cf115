r"""The jitter rule: Gaussian noise :math:`w_k` injected into every unrolled gradient step, training only.

.. math:: x_{k+1} = x_k - \eta\,(A^\top(Ax_k - y) + R_\theta(x_k) + w_k),\qquad w_k \sim N(0, s_k^2 I)

with the per-entry scale :math:`s_k` set by the mode:

* ``absolute``   — :math:`s_k = \sigma_k`;
* ``normalized`` — :math:`s_k = \sigma_k / \sqrt{n}` (``n`` entries per sample), so
  :math:`E\|w_k\|^2 = \sigma_k^2` whatever the signal size;
* ``relative``   — :math:`s_k = \sigma_k \cdot \max_i |g_i|` per sample, ``g`` the (detached) gradient
  step, the rule of the paper's code (which took the max over the whole batch and did not detach).

``sigma`` is one number or one per iteration (length K), e.g. ``[0.1]*8 + [0, 0]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from landscape.errors import check

__all__ = ["JitterConfig", "JITTER_MODES", "jitter_noise"]

JITTER_MODES = ("absolute", "normalized", "relative")


@dataclass(frozen=True)
class JitterConfig:
    """Strength and rule of the iterate noise. ``sigma`` = 0 everywhere switches jitter off."""

    sigma: float | tuple[float, ...] = 0.0
    mode: str = "normalized"

    def __post_init__(self) -> None:
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
        check(self.mode in JITTER_MODES, f"jitter mode={self.mode!r}: expected one of {JITTER_MODES}")

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
        s = self.sigma
        return {"sigma": list(s) if isinstance(s, tuple) else s, "mode": self.mode}


def jitter_noise(
    grad_step: torch.Tensor,
    sigma: float,
    mode: str,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw :math:`w_k` shaped like ``grad_step`` (batch-first) for one iteration's ``sigma``."""
    if generator is not None and generator.device != grad_step.device:
        eps = torch.randn(
            grad_step.shape, generator=generator, dtype=grad_step.dtype, device=generator.device
        ).to(grad_step.device)
    else:
        eps = torch.randn(grad_step.shape, generator=generator, dtype=grad_step.dtype, device=grad_step.device)
    if mode == "absolute":
        return sigma * eps
    if mode == "normalized":
        n = grad_step[0].numel()
        return (sigma / math.sqrt(n)) * eps
    if mode == "relative":
        scale = grad_step.detach().flatten(1).abs().amax(dim=1)
        return sigma * scale.view(-1, *([1] * (grad_step.dim() - 1))) * eps
    raise ValueError(f"jitter mode={mode!r}: expected one of {JITTER_MODES}")
