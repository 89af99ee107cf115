r"""Forward models of linear inverse problems, :math:`y = A x + z`.

Every operator is batch-first, works in float32 and float64 on any device, and never mutates its
stored state after construction (a different mask or wavelet makes a new operator).  Each has

* ``forward(x)`` — :math:`A x`,
* ``adjoint(y)`` — :math:`A^\top y` (:math:`A^H y` for MRI, with real/imaginary channels),
* ``normal(x)`` — :math:`A^\top A x`,
* ``measure(x, generator=...)`` — :math:`A x + z` with Gaussian noise of std ``noise_sigma``
  (for MRI the noise is masked, so nothing lands on unsampled k-space lines),
* ``op_norm(like)`` — a power-iteration estimate of :math:`\|A\|_2`.

``adjointness_gap(op, x, y)`` returns the *relative* gap
:math:`|\langle Ax, y\rangle - \langle x, A^\top y\rangle| / (\|Ax\|\|y\|)`, used by the tests.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from landscape.errors import check

__all__ = [
    "Physics",
    "Denoising",
    "Deconvolution",
    "SingleCoilMRI",
    "ricker",
    "cartesian_mask",
    "adjointness_gap",
    "physics_from_config",
]


class Physics(nn.Module):
    """Base class of the linear forward models.

    Subclasses implement :meth:`forward` and :meth:`adjoint`; buffers (masks, wavelets) follow
    ``.to(device)``.  ``noise_sigma`` is the standard deviation of the Gaussian measurement noise.
    """

    name: str = "physics"

    def __init__(self, noise_sigma: float = 0.0):
        """Check ``noise_sigma`` (a finite number >= 0) and store it."""
        super().__init__()
        noise_sigma = float(noise_sigma)
        check(
            math.isfinite(noise_sigma) and noise_sigma >= 0,
            f"noise_sigma={noise_sigma!r}: expected a finite number >= 0",
        )
        self.noise_sigma = noise_sigma

    # -- the operator -----------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """:math:`A x` for a batch ``x``, without noise (each subclass implements it)."""
        raise NotImplementedError

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        r""":math:`A^\top y` for a batch ``y`` (:math:`A^H y` for MRI; each subclass implements it)."""
        raise NotImplementedError

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`A^\top A x`."""
        return self.adjoint(self.forward(x))

    def noise_like(self, y: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Measurement-space Gaussian noise of std ``noise_sigma`` shaped like ``y``."""
        return self.noise_sigma * _randn_like(y, generator)

    def project_measurement(self, e: torch.Tensor) -> torch.Tensor:
        """Restrict a measurement-space perturbation to what the instrument can record.

        Identity except for MRI, where unsampled k-space lines are zeroed (used by attacks and noise).
        """
        return e

    def measure(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Noisy measurement :math:`y = A x + z`, :math:`z \\sim N(0, \\sigma^2 I)` (masked for MRI)."""
        y = self.forward(x)
        if self.noise_sigma > 0:
            y = y + self.project_measurement(self.noise_like(y, generator))
        return y

    def check_signal(self, x: torch.Tensor, argname: str = "x") -> None:
        """Raise ``ValueError`` unless ``x`` has a shape this operator accepts."""

    # -- analysis ---------------------------------------------------------------------------
    @torch.no_grad()
    def op_norm(
        self,
        like: torch.Tensor,
        n_iter: int = 100,
        tol: float = 1e-7,
        generator: torch.Generator | None = None,
    ) -> float:
        r"""Estimate :math:`\|A\|_2` by power iteration on :math:`A^\top A`.

        ``like`` is a tensor with the shape (one sample is enough), dtype and device to work in.
        """
        v = _randn_like(like, generator)
        v = v / v.norm()
        lam = 0.0
        for _ in range(n_iter):
            w = self.normal(v)
            new = float((w * v).sum())
            nw = w.norm()
            if nw == 0:
                return 0.0
            v = w / nw
            if abs(new - lam) <= tol * max(abs(new), 1e-30):
                lam = new
                break
            lam = new
        return math.sqrt(max(lam, 0.0))

    def config(self) -> dict[str, Any]:
        """JSON-serialisable description; :func:`physics_from_config` rebuilds the operator."""
        return {"name": self.name, "noise_sigma": self.noise_sigma}

    def extra_repr(self) -> str:
        """The :meth:`config` entries other than ``name``, for the module's ``repr``."""
        return ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "name")


def _randn_like(t: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    if generator is None:
        return torch.randn_like(t)
    if generator.device != t.device:
        # draw on the generator's device, then move: reproducible whatever the tensor's device
        return torch.randn(t.shape, generator=generator, dtype=t.dtype, device=generator.device).to(t.device)
    return torch.randn(t.shape, generator=generator, dtype=t.dtype, device=t.device)


class Denoising(Physics):
    """:math:`A = I`: the measurement is the signal plus Gaussian noise."""

    name = "denoise"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` itself (:math:`A = I`)."""
        return x

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        r"""``y`` itself (:math:`A^\top = I`)."""
        return y

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        r"""``x`` itself (:math:`A^\top A = I`)."""
        return x

    @torch.no_grad()
    def op_norm(self, like: torch.Tensor, **kwargs: Any) -> float:
        """Exactly 1, the norm of the identity (no power iteration)."""
        return 1.0


# -------------------------------------------------------------------------------------------------
# Seismic deconvolution
# -------------------------------------------------------------------------------------------------
def ricker(length: int = 51, width: float = 4.0, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    r"""Ricker ("Mexican hat") wavelet, peak-normalised to 1.

    .. math:: \psi(t) = (1 - t^2/a^2)\, e^{-t^2 / (2a^2)},\quad t = -(L-1)/2, \dots, (L-1)/2

    ``scipy.signal.ricker`` (removed from SciPy) scaled this by
    :math:`2/(\sqrt{3a}\pi^{1/4})`; peak normalisation divides that constant out again.
    """
    check(isinstance(length, int) and length >= 1, f"length={length!r}: expected an integer >= 1")
    check(width > 0, f"width={width!r}: expected a number > 0")
    t = torch.arange(length, dtype=torch.float64) - (length - 1) / 2.0
    a2 = float(width) ** 2
    w = (1 - t**2 / a2) * torch.exp(-(t**2) / (2 * a2))
    return (w / w.abs().max()).to(dtype)


class Deconvolution(Physics):
    r"""Convolution of each trace with a wavelet along the time axis, 'same' length.

    Accepts single traces ``(B, 1, T)`` and sections ``(B, 1, T, N_traces)`` (convolved column by
    column).  The 'same' convention is NumPy's: output sample ``t`` is
    :math:`\sum_j w_j x_{t - j + c}`, :math:`c = \lfloor (L-1)/2 \rfloor`, zero padding.
    """

    name = "seismic"

    def __init__(self, wavelet_length: int = 51, wavelet_width: float = 4.0, noise_sigma: float = 0.0):
        """Build the :func:`ricker` wavelet of ``wavelet_length`` samples and width ``wavelet_width``."""
        super().__init__(noise_sigma)
        self.wavelet_length = int(wavelet_length)
        self.wavelet_width = float(wavelet_width)
        w = ricker(self.wavelet_length, self.wavelet_width)
        # conv1d is a cross-correlation, so a true convolution uses the flipped wavelet.  The wavelet is kept
        # in float64 (not a buffer, so .float() cannot round it) and cast to the input's dtype at each call.
        self._kernel64 = w.flip(0).reshape(1, 1, -1)
        self._left = (self.wavelet_length - 1) // 2
        self._right = self.wavelet_length - 1 - self._left

    def check_signal(self, x: torch.Tensor, argname: str = "x") -> None:
        """Raise ``ValueError`` unless ``x`` is ``(B, 1, T)`` or ``(B, 1, T, N_traces)``."""
        check(
            x.dim() in (3, 4) and x.shape[1] == 1,
            f"{argname} has shape {tuple(x.shape)}: expected (B, 1, T) or (B, 1, T, N_traces)",
        )

    def _as_traces(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...] | None]:
        self.check_signal(x)
        if x.dim() == 3:
            return x, None
        b, _, t, n = x.shape
        return x.permute(0, 3, 1, 2).reshape(b * n, 1, t), (b, n)

    @staticmethod
    def _from_traces(x: torch.Tensor, bn: tuple[int, ...] | None) -> torch.Tensor:
        if bn is None:
            return x
        b, n = bn
        t = x.shape[-1]
        return x.reshape(b, n, 1, t).permute(0, 2, 3, 1)

    def _kernel(self, like: torch.Tensor) -> torch.Tensor:
        k = self._kernel64
        if k.device != like.device:
            k = self._kernel64 = k.to(like.device)
        return k.to(like.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Every trace of ``x`` convolved with the wavelet, 'same' length: shaped like ``x``."""
        tr, bn = self._as_traces(x)
        k = self._kernel(tr)
        out = F.conv1d(F.pad(tr, (self._left, self._right)), k)
        return self._from_traces(out, bn)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """Every trace of ``y`` cross-correlated with the wavelet (the transpose of :meth:`forward`)."""
        tr, bn = self._as_traces(y)
        k = self._kernel(tr)
        full = F.conv_transpose1d(tr, k)
        out = full[..., self._left : self._left + tr.shape[-1]]
        return self._from_traces(out, bn)

    def config(self) -> dict[str, Any]:
        """JSON-serialisable description (wavelet included); :func:`physics_from_config` rebuilds it."""
        return {
            "name": self.name,
            "noise_sigma": self.noise_sigma,
            "wavelet_length": self.wavelet_length,
            "wavelet_width": self.wavelet_width,
        }


# -------------------------------------------------------------------------------------------------
# Single-coil MRI
# -------------------------------------------------------------------------------------------------
def cartesian_mask(
    width: int, acceleration: float = 4.0, center_fraction: float = 0.08, seed: int = 0
) -> torch.Tensor:
    """Random Cartesian column mask (fastMRI style), boolean of shape ``(width,)``.

    The central ``round(width * center_fraction)`` columns are always sampled; the others are sampled
    at random so that about ``width / acceleration`` columns are kept in all.
    """
    check(isinstance(width, int) and width >= 2, f"width={width!r}: expected an integer >= 2")
    check(acceleration >= 1, f"acceleration={acceleration!r}: expected a number >= 1")
    check(0 <= center_fraction <= 1, f"center_fraction={center_fraction!r}: expected a number in [0, 1]")
    g = torch.Generator().manual_seed(int(seed))
    n_center = int(round(width * center_fraction))
    mask = torch.zeros(width, dtype=torch.bool)
    start = (width - n_center + 1) // 2
    mask[start : start + n_center] = True
    n_target = int(round(width / acceleration))
    n_extra = max(n_target - n_center, 0)
    rest = torch.nonzero(~mask).flatten()
    if n_extra > 0 and len(rest) > 0:
        pick = rest[torch.randperm(len(rest), generator=g, dtype=torch.int64)[:n_extra]]
        mask[pick] = True
    return mask


class SingleCoilMRI(Physics):
    r"""Single-coil Cartesian MRI: :math:`A = M F`, centred orthonormal 2-D FFT then a column mask.

    Images and k-space are real tensors ``(B, 2, H, W)`` holding (real, imaginary).  The adjoint
    re-applies the mask, :math:`A^H = F^{-1} M`, so it is exact off the range of ``A`` as well, and
    measurement noise is masked too.  ``F`` is unitary, hence :math:`\|A\|_2 = 1` whenever a line is sampled.
    """

    name = "mri"

    def __init__(
        self,
        shape: tuple[int, int] = (64, 64),
        acceleration: float = 4.0,
        center_fraction: float = 0.08,
        mask_seed: int = 0,
        noise_sigma: float = 0.0,
    ):
        """Draw the column mask for ``(H, W)`` = ``shape`` (:func:`cartesian_mask`, seed ``mask_seed``)."""
        super().__init__(noise_sigma)
        h, w = (int(s) for s in shape)
        check(h >= 2 and w >= 2, f"shape={shape!r}: expected (H, W) with H, W >= 2")
        self.shape = (h, w)
        self.acceleration = float(acceleration)
        self.center_fraction = float(center_fraction)
        self.mask_seed = int(mask_seed)
        self.register_buffer("mask", cartesian_mask(w, acceleration, center_fraction, mask_seed))

    def check_signal(self, x: torch.Tensor, argname: str = "x") -> None:
        """Raise ``ValueError`` unless ``x`` is ``(B, 2, H, W)`` with this operator's ``(H, W)``."""
        check(
            x.dim() == 4 and x.shape[1] == 2 and tuple(x.shape[-2:]) == self.shape,
            f"{argname} has shape {tuple(x.shape)}: expected (B, 2, {self.shape[0]}, {self.shape[1]})",
        )

    @staticmethod
    def _to_complex(x: torch.Tensor) -> torch.Tensor:
        return torch.complex(x[:, 0], x[:, 1])

    @staticmethod
    def _to_real(z: torch.Tensor) -> torch.Tensor:
        return torch.stack((z.real, z.imag), dim=1)

    def _masked(self, k: torch.Tensor) -> torch.Tensor:
        return k * self.mask.to(device=k.device, dtype=k.dtype)

    def project_measurement(self, e: torch.Tensor) -> torch.Tensor:
        """``e`` with the unsampled k-space columns zeroed (the mask applied)."""
        return self._masked(e)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`M F x`: the masked, centred, orthonormal 2-D FFT of ``x``, k-space ``(B, 2, H, W)``."""
        self.check_signal(x)
        z = self._to_complex(x)
        k = torch.fft.fftshift(
            torch.fft.fft2(torch.fft.ifftshift(z, dim=(-2, -1)), norm="ortho"), dim=(-2, -1)
        )
        return self._masked(self._to_real(k))

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """:math:`F^{-1} M y`, the inverse centred FFT of the masked ``y``: an image ``(B, 2, H, W)``."""
        self.check_signal(y, "y")
        k = self._to_complex(self._masked(y))
        z = torch.fft.fftshift(
            torch.fft.ifft2(torch.fft.ifftshift(k, dim=(-2, -1)), norm="ortho"), dim=(-2, -1)
        )
        return self._to_real(z)

    @torch.no_grad()
    def op_norm(self, like: torch.Tensor | None = None, **kwargs: Any) -> float:
        """Exactly 1 when any column is sampled, else 0 (``F`` is unitary; no power iteration)."""
        # unitary FFT followed by a 0/1 mask: the norm is 1 if any line is sampled
        return 1.0 if bool(self.mask.any()) else 0.0

    def config(self) -> dict[str, Any]:
        """JSON-serialisable description (mask included); :func:`physics_from_config` rebuilds it."""
        return {
            "name": self.name,
            "noise_sigma": self.noise_sigma,
            "shape": list(self.shape),
            "acceleration": self.acceleration,
            "center_fraction": self.center_fraction,
            "mask_seed": self.mask_seed,
        }


_PHYSICS = {"denoise": Denoising, "seismic": Deconvolution, "mri": SingleCoilMRI}


def physics_from_config(cfg: dict[str, Any]) -> Physics:
    """Rebuild an operator from :meth:`Physics.config`."""
    cfg = dict(cfg)
    name = cfg.pop("name", None)
    check(name in _PHYSICS, f"physics name={name!r}: expected one of {sorted(_PHYSICS)}")
    if "shape" in cfg:
        cfg["shape"] = tuple(cfg["shape"])
    return _PHYSICS[name](**cfg)


def adjointness_gap(
    op: Physics, x: torch.Tensor, y: torch.Tensor | None = None, *, generator: torch.Generator | None = None
) -> float:
    r"""Relative adjointness gap :math:`|\langle Ax,y\rangle-\langle x,A^\top y\rangle| / (\|Ax\|\,\|y\|)`.

    ``y`` defaults to a random measurement-space tensor (off the range of ``A``).
    """
    ax = op.forward(x)
    if y is None:
        y = _randn_like(ax, generator)
    lhs = (ax * y).sum()
    rhs = (x * op.adjoint(y)).sum()
    denom = (ax.norm() * y.norm()).clamp_min(torch.finfo(x.dtype).tiny)
    return float((lhs - rhs).abs() / denom)
