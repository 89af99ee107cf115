r"""Seismic reflectivity sections for deconvolution, :math:`y = w * x + z` trace by trace.

A section is ``(1, T, N)``: ``T`` time samples by ``N`` traces (small preset 64 x 16, paper preset
352 x 64; the paper's code uses 352-sample traces).  In distribution it is a sparse layered model:

* ``L`` reflectors, ``L`` uniform in ``[round(0.6 m), round(1.4 m)]`` with ``m = mean_layers``;
* reflector ``l`` follows the horizon :math:`t_l(j) = t_{0,l} + s_l (j - c) + \kappa_l (j - c)^2`,
  ``c = (N - 1)/2``, with a regional dip ``s`` uniform in ``±max_dip`` samples per trace shared by the
  section, a per-layer deviation ``N(0, (0.15 max_dip)^2)`` and a gentle curvature;
* its amplitude is ``±U[min_amplitude, 1]`` (random sign; values are signed), put at the nearest time
  sample of every trace (reflectors that cross add up).

OOD shifts:

* ``"inserted_reflector"`` — the paper's test: an ID section with a short flat reflector of amplitude
  ``reflector_amplitude`` (−0.1) over ``reflector_traces`` (10, at most ``N``) consecutive traces at one
  time sample (it replaces what was there). The ID amplitudes are at least ``min_amplitude`` = 0.2;
* ``"faults"`` — one normal fault: a near-vertical plane across which the layers are thrown down by
  ``U[T/20, T/8]`` samples (ID sections are laterally continuous);
* ``"denser_layers"`` — ``dense_factor`` (3) times as many reflectors.

Physics: :class:`~landscape.physics.Deconvolution` (Ricker wavelet 51 samples, width 4, noise 0.01).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from landscape.data.task import Task
from landscape.errors import check, check_positive_int
from landscape.physics import Deconvolution, Physics
from landscape.presets import TASK_PRESETS

__all__ = ["SeismicTask", "layered_sections", "insert_reflector", "faulted_sections"]


def _uniform(generator: torch.Generator, *shape: int, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    return low + (high - low) * torch.rand(*shape, generator=generator, dtype=torch.float64)


def layered_sections(
    n: int,
    n_time: int,
    n_traces: int,
    generator: torch.Generator,
    *,
    mean_layers: float = 5.0,
    max_dip: float = 0.4,
    min_amplitude: float = 0.2,
    t_range: tuple[float, float] | None = None,
) -> torch.Tensor:
    """``n`` sparse layered reflectivity sections ``(n, 1, n_time, n_traces)`` in float64.

    ``t_range`` is the interval of the horizons' centre times (default ``[0, n_time)``).
    """
    lo_l = max(1, round(0.6 * mean_layers))
    hi_l = max(lo_l, round(1.4 * mean_layers))
    t_lo, t_hi = (0.0, float(n_time)) if t_range is None else t_range
    out = torch.zeros(n, n_time * n_traces, dtype=torch.float64)
    j = torch.arange(n_traces, dtype=torch.float64) - (n_traces - 1) / 2
    counts = torch.randint(lo_l, hi_l + 1, (n,), generator=generator, dtype=torch.int64)
    regional = _uniform(generator, n, low=-max_dip, high=max_dip)
    for i in range(n):
        k = int(counts[i])
        t0 = _uniform(generator, k, 1, low=t_lo, high=t_hi)
        dip = regional[i] + 0.15 * max_dip * torch.randn(k, 1, generator=generator, dtype=torch.float64)
        curv = 0.5 * max_dip / max(n_traces, 1) * torch.randn(k, 1, generator=generator, dtype=torch.float64)
        sign = torch.where(torch.rand(k, 1, generator=generator, dtype=torch.float64) < 0.5, -1.0, 1.0).to(
            torch.float64
        )
        amp = sign * _uniform(generator, k, 1, low=min_amplitude, high=1.0)
        t = torch.round(t0 + dip * j + curv * j**2).long()  # (k, N)
        valid = (t >= 0) & (t < n_time)
        flat = (t * n_traces + torch.arange(n_traces)).masked_select(valid)
        out[i].scatter_add_(0, flat, amp.expand(k, n_traces).masked_select(valid))
    return out.view(n, 1, n_time, n_traces)


def insert_reflector(
    x: torch.Tensor, generator: torch.Generator, *, amplitude: float = -0.1, n_traces: int = 10
) -> torch.Tensor:
    """Copy of ``x`` with a flat reflector of ``amplitude`` over ``n_traces`` traces at one time sample."""
    x = x.clone()
    n, _, t_len, width = x.shape
    k = min(n_traces, width)
    t_star = torch.randint(t_len // 8, t_len - t_len // 8, (n,), generator=generator, dtype=torch.int64)
    j0 = torch.randint(0, width - k + 1, (n,), generator=generator, dtype=torch.int64)
    for i in range(n):
        x[i, 0, int(t_star[i]), int(j0[i]) : int(j0[i]) + k] = amplitude
    return x


def faulted_sections(
    n: int, n_time: int, n_traces: int, generator: torch.Generator, **layer_kw: Any
) -> torch.Tensor:
    """Layered sections cut by one normal fault (throw ``U[T/20, T/8]`` samples, near-vertical plane)."""
    max_throw = max(2, math.ceil(n_time / 8))
    min_throw = max(2, round(n_time / 20))
    # the same layer density as an ID section over the taller window the two blocks are cut from
    layer_kw = {**layer_kw, "mean_layers": layer_kw.get("mean_layers", 5.0) * (n_time + max_throw) / n_time}
    tall = layered_sections(
        n, n_time + max_throw, n_traces, generator, t_range=(0.0, float(n_time + max_throw)), **layer_kw
    )
    throw = torch.randint(min_throw, max_throw + 1, (n,), generator=generator, dtype=torch.int64)
    pos = _uniform(generator, n, low=0.3 * n_traces, high=0.7 * n_traces)
    slant = _uniform(generator, n, low=-0.05, high=0.05) * n_traces / n_time
    t = torch.arange(n_time, dtype=torch.float64)[:, None]
    j = torch.arange(n_traces, dtype=torch.float64)[None, :]
    out = torch.empty(n, 1, n_time, n_traces, dtype=torch.float64)
    for i in range(n):
        s = int(throw[i])
        hanging = j >= pos[i] + slant[i] * (t - n_time / 2)  # right block: thrown down by s samples
        left = tall[i, 0, max_throw : max_throw + n_time]
        right = tall[i, 0, max_throw - s : max_throw - s + n_time]
        out[i, 0] = torch.where(hanging, right, left)
    return out


class SeismicTask(Task):
    """Layered reflectivity sections ``(1, T, N)``, physics :class:`~landscape.physics.Deconvolution`.

    Options: ``n_time`` (T), ``n_traces`` (N), ``mean_layers``, ``max_dip`` (samples per trace),
    ``min_amplitude``, ``reflector_amplitude``, ``reflector_traces``, ``dense_factor``,
    ``wavelet_length``, ``wavelet_width``.
    """

    name = "seismic"
    shifts = ("inserted_reflector", "faults", "denser_layers")
    PRESETS = TASK_PRESETS["seismic"]  # landscape.presets

    def _validate(self, options: dict[str, Any]) -> dict[str, Any]:
        o = dict(options)
        o["n_time"] = check_positive_int(o["n_time"], "n_time", minimum=16)
        o["n_traces"] = check_positive_int(o["n_traces"], "n_traces", minimum=1)
        o["reflector_traces"] = check_positive_int(o["reflector_traces"], "reflector_traces", minimum=1)
        o["wavelet_length"] = check_positive_int(o["wavelet_length"], "wavelet_length", minimum=1)
        for key, lo, hi in (
            ("mean_layers", 1.0, math.inf),
            ("max_dip", 0.0, math.inf),
            ("min_amplitude", 0.0, 1.0),
            ("reflector_amplitude", -math.inf, math.inf),
            ("dense_factor", 1.0, math.inf),
            ("wavelet_width", 1e-12, math.inf),
        ):
            v = o[key]
            ok = (
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and lo <= v <= hi
            )
            check(ok, f"{key}={v!r}: expected a number in [{lo}, {hi}]")
            o[key] = float(v)
        check(o["dense_factor"] > 1, f"dense_factor={o['dense_factor']!r}: expected a number > 1")
        return o

    def _build_physics(self) -> Physics:
        o = self.options
        return Deconvolution(
            wavelet_length=o["wavelet_length"], wavelet_width=o["wavelet_width"], noise_sigma=self.noise_sigma
        )

    def _signal_shape(self) -> tuple[int, ...]:
        return (1, self.options["n_time"], self.options["n_traces"])

    def _sample(self, n: int, split: str, generator: torch.Generator) -> torch.Tensor:
        o = self.options
        kw = dict(max_dip=o["max_dip"], min_amplitude=o["min_amplitude"], mean_layers=o["mean_layers"])
        size = (n, o["n_time"], o["n_traces"])
        if split == "faults":
            return faulted_sections(*size, generator, **kw)
        if split == "denser_layers":
            kw["mean_layers"] = o["mean_layers"] * o["dense_factor"]
        x = layered_sections(*size, generator, **kw)
        if split == "inserted_reflector":
            x = insert_reflector(
                x, generator, amplitude=o["reflector_amplitude"], n_traces=o["reflector_traces"]
            )
        return x
