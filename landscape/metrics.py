r"""Reconstruction quality: MSE, PSNR and SSIM, with one convention for every task.

The convention (written into every evaluation result as :data:`CONVENTION`):

* Metrics are computed **per sample**, then summarised as mean ± standard error
  (:func:`summarize`, standard error = sample std (ddof = 1) / √n, NaN for one sample: one value has no
  spread, the convention of :func:`landscape.curvature.analysis.summarize` and of :mod:`landscape.stats`,
  which gives no interval below two values).
* ``mse`` — mean of the squared error over all entries of the model-space signal (for MRI the
  2-channel real/imaginary image), the quantity the networks are trained on.
* PSNR and SSIM are computed on the *display* signal: the signal itself for denoising and seismic
  data, the magnitude image :math:`|x| = \sqrt{x_{re}^2 + x_{im}^2}` for MRI (``magnitude=True``).
  Nothing is clamped: signed reflectivities stay signed.
* ``psnr`` — :math:`10\log_{10}(\text{peak}^2/\text{MSE})` with :math:`\text{peak} = \max_i |x^*_i|`
  of the reference sample.
* ``ssim`` — Wang et al. (2004) with a Gaussian window (σ = 1.5, 11 taps, truncated to the signal
  length when shorter), :math:`K_1 = 0.01`, :math:`K_2 = 0.03`, data range
  :math:`L = \max x^* - \min x^*` of the reference sample, population (biased) local statistics and
  no padding ("valid" windows), averaged over the SSIM map and the channels.  1-D signals
  ``(B, C, n)`` use a 1-D window; images and seismic sections ``(B, C, H, W)`` a separable 2-D window
  (the same numbers as ``skimage.metrics.structural_similarity(..., gaussian_weights=True,
  use_sample_covariance=False, data_range=L)``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from landscape.errors import check

__all__ = ["CONVENTION", "mse", "psnr", "ssim", "display", "score", "summarize"]

CONVENTION = (
    "per-sample metrics, mean ± standard error (ddof=1); mse: mean over entries of the model-space "
    "signal; psnr: 10 log10(max|x*|^2 / mse) on the display signal (magnitude for MRI), no clamping; "
    "ssim: Gaussian window sigma=1.5 (11 taps, 1-D for signals, 2-D for images/sections), K1=0.01, "
    "K2=0.03, data range max(x*)-min(x*) per sample, valid windows, on the display signal"
)

_SSIM_SIGMA = 1.5
_SSIM_TAPS = 11
_K1, _K2 = 0.01, 0.03


def _check_pair(x_hat: torch.Tensor, x: torch.Tensor) -> None:
    check(
        tuple(x_hat.shape) == tuple(x.shape),
        f"x_hat has shape {tuple(x_hat.shape)}: expected {tuple(x.shape)}, the shape of the reference",
    )
    check(x.dim() >= 2, f"x has shape {tuple(x.shape)}: expected batch-first (B, ...)")


def display(x: torch.Tensor, magnitude: bool = False) -> torch.Tensor:
    """The signal PSNR and SSIM look at: ``x`` itself, or ``|x|`` of a ``(B, 2, H, W)`` complex image."""
    if not magnitude:
        return x
    check(x.dim() >= 2 and x.shape[1] == 2, f"x has shape {tuple(x.shape)}: magnitude needs (B, 2, ...)")
    return torch.sqrt(x[:, :1] ** 2 + x[:, 1:2] ** 2)


def mse(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-sample mean squared error over all entries, shape ``(B,)``."""
    _check_pair(x_hat, x)
    return (x_hat - x).pow(2).flatten(1).mean(dim=1)


def psnr(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    r"""Per-sample PSNR in dB, :math:`10\log_{10}(\max_i|x_i|^2 / \text{MSE})`, shape ``(B,)``.

    A perfect reconstruction gives ``inf``.
    """
    _check_pair(x_hat, x)
    peak = x.flatten(1).abs().amax(dim=1)
    err = mse(x_hat, x)
    return 10.0 * torch.log10(peak**2 / err)


def _gaussian_window(taps: int, sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    t = torch.arange(taps, dtype=torch.float64) - (taps - 1) / 2
    w = torch.exp(-(t**2) / (2 * sigma**2))
    return (w / w.sum()).to(dtype=dtype, device=device)


def _taps_for(length: int) -> int:
    taps = min(_SSIM_TAPS, length)
    return taps if taps % 2 == 1 else taps - 1


def _filter(z: torch.Tensor, windows: list[torch.Tensor]) -> torch.Tensor:
    """Valid separable filtering of ``z`` (N, 1, *spatial) along each spatial axis."""
    if len(windows) == 1:
        return F.conv1d(z, windows[0].view(1, 1, -1))
    wh, ww = windows
    z = F.conv2d(z, wh.view(1, 1, -1, 1))
    return F.conv2d(z, ww.view(1, 1, 1, -1))


def ssim(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-sample SSIM (Gaussian window, data range of the reference), shape ``(B,)``.

    ``x`` is ``(B, C, n)`` (1-D window) or ``(B, C, H, W)`` (2-D window); see the module docstring.
    """
    _check_pair(x_hat, x)
    check(
        x.dim() in (3, 4),
        f"x has shape {tuple(x.shape)}: SSIM expects (B, C, n) signals or (B, C, H, W) images",
    )
    b, c = x.shape[:2]
    spatial = x.shape[2:]
    windows = [_gaussian_window(_taps_for(s), _SSIM_SIGMA, x.dtype, x.device) for s in spatial]
    flat = x.flatten(1)
    data_range = (flat.amax(dim=1) - flat.amin(dim=1)).clamp_min(torch.finfo(x.dtype).tiny)
    c1 = (_K1 * data_range) ** 2
    c2 = (_K2 * data_range) ** 2
    shape1 = (b * c, 1, *spatial)
    u, v = x_hat.reshape(shape1), x.reshape(shape1)
    mu_u, mu_v = _filter(u, windows), _filter(v, windows)
    s_uu = _filter(u * u, windows) - mu_u**2
    s_vv = _filter(v * v, windows) - mu_v**2
    s_uv = _filter(u * v, windows) - mu_u * mu_v
    bshape = (b * c, *([1] * (x.dim() - 1)))
    c1 = c1.repeat_interleave(c).view(bshape)
    c2 = c2.repeat_interleave(c).view(bshape)
    smap = ((2 * mu_u * mu_v + c1) * (2 * s_uv + c2)) / ((mu_u**2 + mu_v**2 + c1) * (s_uu + s_vv + c2))
    return smap.reshape(b, -1).mean(dim=1)


def score(x_hat: torch.Tensor, x: torch.Tensor, *, magnitude: bool = False) -> dict[str, torch.Tensor]:
    """All three per-sample metrics (float64, CPU) under :data:`CONVENTION`: ``{'psnr', 'ssim', 'mse'}``."""
    x_hat = x_hat.detach().to("cpu", torch.float64)
    x = x.detach().to("cpu", torch.float64)
    dh, dx = display(x_hat, magnitude), display(x, magnitude)
    return {"psnr": psnr(dh, dx), "ssim": ssim(dh, dx), "mse": mse(x_hat, x)}


def summarize(values: torch.Tensor | list[float]) -> dict[str, float]:
    """``{'mean', 'stderr', 'n'}`` of per-sample values; stderr = std(ddof=1)/√n, NaN for n = 1 (one value
    has no spread; JSON writes it as a non-finite value, not as a precise 0)."""
    v = torch.as_tensor(values, dtype=torch.float64).flatten()
    n = v.numel()
    check(n >= 1, "summarize: expected at least one value")
    mean = float(v.mean())
    stderr = float(v.std(unbiased=True) / math.sqrt(n)) if n > 1 else math.nan
    return {"mean": mean, "stderr": stderr, "n": int(n)}
