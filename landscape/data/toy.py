r"""Toy denoising: piecewise-constant signals in low dimension, :math:`y = x + z`.

In distribution (``"id"``, ``"train"``): signals of length ``length`` (default 64), shape ``(1, n)``, made
of ``J + 1`` constant segments, ``J`` uniform in ``[min_jumps, max_jumps]``, every segment at least
``min_segment`` samples long, each level uniform in ``[-1, 1]``.  The noise is Gaussian with std
``noise_sigma`` (default 0.25, large compared with the smallest steps).  Linear estimators can only
trade noise for blurred edges, while an edge-preserving (nonlinear) denoiser keeps both: the least-squares
affine map is several dB behind a small learned unrolled network (``benchmarks/toy_margin.py``).

OOD shifts, each a distribution the training set never contains:

* ``"spikes"``  — the ID signal plus 2 to 5 isolated one-sample spikes of height ±U[0.6, 1.2]
  (ID segments are never shorter than ``min_segment``);
* ``"amplitude"`` — levels uniform in ``[-a, a]``, ``a = ood_amplitude`` (default 2, twice the ID range);
* ``"smooth"`` — smooth random signals (a few low-frequency sinusoids, peak U[0.5, 1]) instead of
  piecewise-constant ones: no flat runs, no edges.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from landscape.data.task import Task
from landscape.errors import check, check_positive_int
from landscape.physics import Denoising, Physics
from landscape.presets import TASK_PRESETS

__all__ = ["DenoiseTask", "piecewise_constant", "add_spikes", "smooth_signals"]


def piecewise_constant(
    n: int,
    length: int,
    generator: torch.Generator,
    *,
    min_jumps: int = 2,
    max_jumps: int = 6,
    min_segment: int = 4,
    amplitude: float = 1.0,
) -> torch.Tensor:
    """``n`` piecewise-constant signals ``(n, 1, length)`` in float64 (levels uniform in ±``amplitude``)."""
    out = torch.empty(n, 1, length, dtype=torch.float64)
    jumps = torch.randint(min_jumps, max_jumps + 1, (n,), generator=generator, dtype=torch.int64)
    for i in range(n):
        j = int(jumps[i])
        slack = length - (j + 1) * min_segment
        cuts = torch.randint(0, slack + 1, (j,), generator=generator, dtype=torch.int64).sort().values
        extras = torch.diff(torch.cat([torch.zeros(1, dtype=torch.long), cuts, torch.tensor([slack])]))
        lengths = extras + min_segment
        levels = (2 * torch.rand(j + 1, generator=generator, dtype=torch.float64) - 1) * amplitude
        out[i, 0] = torch.repeat_interleave(levels, lengths)
    return out


def add_spikes(
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    min_spikes: int = 2,
    max_spikes: int = 5,
    low: float = 0.6,
    high: float = 1.2,
) -> torch.Tensor:
    """``x`` plus isolated one-sample spikes of height ±U[low, high], at least 3 apart, not at the ends."""
    x = x.clone()
    length = x.shape[-1]
    counts = torch.randint(min_spikes, max_spikes + 1, (x.shape[0],), generator=generator, dtype=torch.int64)
    for i in range(x.shape[0]):
        k = min(int(counts[i]), (length - 3) // 3 + 1)
        # k positions in 1..length-2, pairwise at least 3 apart (stars and bars on the gaps)
        slack = (length - 2) - 1 - 3 * (k - 1)
        cuts = torch.randint(0, slack + 1, (k,), generator=generator, dtype=torch.int64).sort().values
        pos = 1 + cuts + 3 * torch.arange(k)
        sign = torch.where(torch.rand(k, generator=generator, dtype=torch.float64) < 0.5, -1.0, 1.0).to(
            torch.float64
        )
        height = low + (high - low) * torch.rand(k, generator=generator, dtype=torch.float64)
        x[i, 0, pos] += sign * height
    return x


def smooth_signals(
    n: int, length: int, generator: torch.Generator, *, n_waves: int = 3, max_cycles: float = 3.0
) -> torch.Tensor:
    """Smooth signals ``(n, 1, length)``: ``n_waves`` sinusoids of <= ``max_cycles`` cycles, peak U[.5, 1]."""
    t = torch.arange(length, dtype=torch.float64) / length
    freq = 0.5 + (max_cycles - 0.5) * torch.rand(n, n_waves, 1, generator=generator, dtype=torch.float64)
    phase = 2 * math.pi * torch.rand(n, n_waves, 1, generator=generator, dtype=torch.float64)
    amp = torch.randn(n, n_waves, 1, generator=generator, dtype=torch.float64)
    s = (amp * torch.sin(2 * math.pi * freq * t + phase)).sum(1, keepdim=True)
    peak = 0.5 + 0.5 * torch.rand(n, 1, 1, generator=generator, dtype=torch.float64)
    return s / s.abs().amax(-1, keepdim=True).clamp_min(1e-12) * peak


class DenoiseTask(Task):
    """Piecewise-constant toy signals, physics :class:`~landscape.physics.Denoising`.

    Options: ``length`` (n, default 64), ``min_jumps`` (2), ``max_jumps`` (6), ``min_segment`` (4),
    ``ood_amplitude`` (2.0).  Both sizes share the same defaults (the toy task is small by design).
    """

    name = "denoise"
    shifts = ("spikes", "amplitude", "smooth")
    PRESETS = TASK_PRESETS["denoise"]  # landscape.presets

    def _validate(self, options: dict[str, Any]) -> dict[str, Any]:
        o = dict(options)
        o["length"] = check_positive_int(o["length"], "length", minimum=8)
        o["min_jumps"] = check_positive_int(o["min_jumps"], "min_jumps", minimum=0)
        o["max_jumps"] = check_positive_int(o["max_jumps"], "max_jumps", minimum=o["min_jumps"])
        o["min_segment"] = check_positive_int(o["min_segment"], "min_segment", minimum=2)
        check(
            (o["max_jumps"] + 1) * o["min_segment"] <= o["length"],
            f"max_jumps={o['max_jumps']}, min_segment={o['min_segment']}: expected "
            f"(max_jumps + 1) * min_segment <= length={o['length']}",
        )
        a = o["ood_amplitude"]
        check(
            isinstance(a, (int, float)) and math.isfinite(a) and a > 1,
            f"ood_amplitude={a!r}: expected a number > 1 (the ID levels lie in [-1, 1])",
        )
        o["ood_amplitude"] = float(a)
        return o

    def _build_physics(self) -> Physics:
        return Denoising(noise_sigma=self.noise_sigma)

    def _signal_shape(self) -> tuple[int, ...]:
        return (1, self.options["length"])

    def _sample(self, n: int, split: str, generator: torch.Generator) -> torch.Tensor:
        o = self.options
        kw = dict(min_jumps=o["min_jumps"], max_jumps=o["max_jumps"], min_segment=o["min_segment"])
        if split == "smooth":
            return smooth_signals(n, o["length"], generator)
        if split == "amplitude":
            return piecewise_constant(n, o["length"], generator, amplitude=o["ood_amplitude"], **kw)
        x = piecewise_constant(n, o["length"], generator, **kw)
        if split == "spikes":
            x = add_spikes(x, generator)
        return x
