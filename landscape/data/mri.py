r"""Single-coil MRI: random ellipse phantoms (Shepp-Logan-like), lesions, real brain slices, fastMRI.

Images are real 2-channel tensors ``(2, H, W)`` = (real, imaginary), ``H = W = 64`` by default (paper
preset 320).  ``phase="none"`` (default) gives real images (imaginary channel zero, like magnitude
reconstructions such as fastMRI's ``reconstruction_esc``); ``phase="smooth"`` multiplies every image by
:math:`e^{i\varphi}` with a random smooth phase :math:`\varphi` (a random quadratic in the pixel
coordinates, at most ``π/2`` in magnitude), the usual model of B0/coil phase.

In distribution (``source="phantom"``): a head ellipse (value 1, the "skull") filled by a brain ellipse
(value 0.2 to 0.4), with 3 to 8 internal ellipses of contrast ±U[0.05, 0.2] and semi-axes at least 0.08
(in units of the half image width), rotated at random; rasterised at twice the resolution and averaged
down (anti-aliased edges); normalised to a maximum of 1.  With ``source="fastmri"`` the in-distribution
images are slices read by :func:`landscape.data.fastmri.load_fastmri` from ``data_dir``: every
``holdout_every``-th slice (in file/slice order) is held out for the ``"id"`` test split, the rest is the
training pool (split ``"train"``).

OOD shifts:

* ``"lesions"`` — an ID image with 1 to 3 small bright lesions (ellipses of semi-axes U[0.03, 0.06],
  contrast +U[0.4, 0.6]) inside the brain;
* ``"real_brain"`` — real MRI slices shipped inside pip packages (:mod:`landscape.data.real`:
  matplotlib's ``s1045.ima.gz`` and nibabel's ``example4d.nii.gz``), cropped, flipped, resized and
  normalised to the phantom range.

Physics: :class:`~landscape.physics.SingleCoilMRI` (centred orthonormal FFT, Cartesian column mask,
acceleration 4, centre fraction 0.08, masked noise of std ``noise_sigma`` = 0.01 by default).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from landscape.data.fastmri import load_fastmri
from landscape.data.real import real_brain_images
from landscape.data.task import Task
from landscape.errors import check, check_positive_int
from landscape.physics import Physics, SingleCoilMRI
from landscape.presets import TASK_PRESETS

__all__ = [
    "MRITask",
    "ellipse_phantoms",
    "rasterize_ellipses",
    "add_lesions",
    "apply_phase",
    "PHASES",
    "SOURCES",
]

PHASES = ("none", "smooth")
SOURCES = ("phantom", "fastmri")


def _u(g: torch.Generator, *shape: int, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    return low + (high - low) * torch.rand(*shape, generator=g, dtype=torch.float64)


def _grid(size: tuple[int, int], supersample: int) -> tuple[torch.Tensor, torch.Tensor]:
    h, w = size[0] * supersample, size[1] * supersample
    # pixel centres in [-1, 1] (rows: y downwards, columns: x)
    yy = (torch.arange(h, dtype=torch.float64) + 0.5) / h * 2 - 1
    xx = (torch.arange(w, dtype=torch.float64) + 0.5) / w * 2 - 1
    return torch.meshgrid(yy, xx, indexing="ij")


def _index_range(lo: float, hi: float, n: int) -> tuple[int, int]:
    """Index range ``[i0, i1)`` of the pixel centres ``(i + 0.5) / n * 2 - 1`` that may lie in [lo, hi]."""
    i0 = max(0, math.floor((lo + 1) / 2 * n - 0.5))
    i1 = min(n, math.ceil((hi + 1) / 2 * n - 0.5) + 1)
    return i0, i1


def rasterize_ellipses(params: torch.Tensor, size: tuple[int, int], supersample: int = 2) -> torch.Tensor:
    """Sum of filled ellipses, anti-aliased by ``supersample``-fold supersampling.

    ``params``: ``(E, 6)`` rows ``(value, a, b, x0, y0, angle)`` in image units ([-1, 1] across the
    image, ``angle`` in radians).  Returns ``(H, W)`` float64.
    """
    h, w = size[0] * supersample, size[1] * supersample
    ys = (torch.arange(h, dtype=torch.float64) + 0.5) / h * 2 - 1
    xs = (torch.arange(w, dtype=torch.float64) + 0.5) / w * 2 - 1
    img = torch.zeros(h, w, dtype=torch.float64)
    for v, a, b, x0, y0, th in params.tolist():
        # only the bounding box of the ellipse (radius max(a, b)) is evaluated
        r = max(a, b)
        r0, r1 = _index_range(y0 - r, y0 + r, h)
        c0, c1 = _index_range(x0 - r, x0 + r, w)
        if r0 >= r1 or c0 >= c1:
            continue
        dy = ys[r0:r1, None] - y0
        dx = xs[None, c0:c1] - x0
        c, s = math.cos(th), math.sin(th)
        u = (c * dx + s * dy) / a
        q = (-s * dx + c * dy) / b
        img[r0:r1, c0:c1] += v * ((u * u + q * q) <= 1).to(torch.float64)
    if supersample > 1:
        img = F.avg_pool2d(img[None, None], supersample)[0, 0]
    return img


def _phantom_params(g: torch.Generator, n_inner: tuple[int, int] = (3, 8)) -> torch.Tensor:
    """Random Shepp-Logan-like ellipse list ``(E, 6)``."""
    rows = []
    a = float(_u(g, 1, low=0.62, high=0.76))
    b = float(_u(g, 1, low=0.80, high=0.94))
    x0, y0 = (float(t) for t in _u(g, 2, low=-0.04, high=0.04))
    th = float(_u(g, 1, low=-0.17, high=0.17))
    skull = float(_u(g, 1, low=0.04, high=0.08))
    brain = float(_u(g, 1, low=0.2, high=0.4))
    rows.append([1.0, a, b, x0, y0, th])
    ai, bi = a * (1 - skull), b * (1 - skull)
    rows.append([brain - 1.0, ai, bi, x0, y0, th])
    k = int(torch.randint(n_inner[0], n_inner[1] + 1, (1,), generator=g, dtype=torch.int64))
    for _ in range(k):
        r = float(_u(g, 1, low=0.0, high=0.6)) ** 0.5
        phi = float(_u(g, 1, low=0, high=2 * math.pi))
        ex, ey = r * ai * math.cos(phi), r * bi * math.sin(phi)
        cx = x0 + math.cos(th) * ex - math.sin(th) * ey
        cy = y0 + math.sin(th) * ex + math.cos(th) * ey
        ea, eb = (float(t) for t in _u(g, 2, low=0.08, high=0.3))
        sign = 1.0 if float(_u(g, 1)) < 0.5 else -1.0
        rows.append(
            [sign * float(_u(g, 1, low=0.05, high=0.2)), ea, eb, cx, cy, float(_u(g, 1, high=math.pi))]
        )
    return torch.tensor(rows, dtype=torch.float64)


def ellipse_phantoms(n: int, size: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """``n`` real phantoms ``(n, H, W)`` in float64, values in [0, 1], maximum 1."""
    out = torch.empty(n, *size, dtype=torch.float64)
    for i in range(n):
        img = rasterize_ellipses(_phantom_params(generator), size).clamp_min(0)
        out[i] = img / img.max().clamp_min(1e-12)
    return out


def add_lesions(
    images: torch.Tensor,
    generator: torch.Generator,
    *,
    count: tuple[int, int] = (1, 3),
    radius: tuple[float, float] = (0.03, 0.06),
    contrast: tuple[float, float] = (0.4, 0.6),
    within: float = 0.45,
) -> torch.Tensor:
    """Copy of magnitude images ``(n, H, W)`` with 1 to 3 small bright elliptic lesions.

    Lesion centres lie within radius ``within`` (image units) of the image centre.
    """
    out = images.clone()
    size = tuple(images.shape[-2:])
    for i in range(images.shape[0]):
        k = int(torch.randint(count[0], count[1] + 1, (1,), generator=generator, dtype=torch.int64))
        r = within * _u(generator, k) ** 0.5
        phi = _u(generator, k, high=2 * math.pi)
        params = torch.stack(
            [
                _u(generator, k, low=contrast[0], high=contrast[1]),
                _u(generator, k, low=radius[0], high=radius[1]),
                _u(generator, k, low=radius[0], high=radius[1]),
                r * torch.cos(phi),
                r * torch.sin(phi),
                _u(generator, k, high=math.pi),
            ],
            dim=1,
        )
        out[i] = out[i] + rasterize_ellipses(params, size)  # type: ignore[arg-type]
    return out


def apply_phase(images: torch.Tensor, phase: str, generator: torch.Generator) -> torch.Tensor:
    """Real images ``(n, H, W)`` -> 2-channel ``(n, 2, H, W)`` with zero or a smooth random phase."""
    check(phase in PHASES, f"phase={phase!r}: expected one of {PHASES}")
    if phase == "none":
        return torch.stack((images, torch.zeros_like(images)), dim=1)
    n = images.shape[0]
    yy, xx = _grid(tuple(images.shape[-2:]), 1)  # type: ignore[arg-type]
    basis = torch.stack([torch.ones_like(xx), xx, yy, xx * xx, xx * yy, yy * yy])  # (6, H, W)
    coef = torch.randn(n, 6, generator=generator, dtype=torch.float64)
    phi = torch.einsum("nk,khw->nhw", coef, basis)
    phi = (
        phi
        / phi.abs().flatten(1).amax(1).clamp_min(1e-12)[:, None, None]
        * (math.pi / 2)
        * _u(generator, n, 1, 1)
    )
    return torch.stack((images * torch.cos(phi), images * torch.sin(phi)), dim=1)


class MRITask(Task):
    """Ellipse phantoms (or fastMRI slices) ``(2, H, W)``, physics :class:`~landscape.physics.SingleCoilMRI`.

    Options: ``shape`` (H, W), ``acceleration`` (4), ``center_fraction`` (0.08), ``mask_seed`` (0),
    ``phase`` (``"none"`` | ``"smooth"``), ``source`` (``"phantom"`` | ``"fastmri"``), ``data_dir``
    (folder of fastMRI ``.h5`` files, for ``source="fastmri"``), ``holdout_every`` (5).
    """

    name = "mri"
    shifts = ("lesions", "real_brain")
    PRESETS = TASK_PRESETS["mri"]  # landscape.presets

    def _validate(self, options: dict[str, Any]) -> dict[str, Any]:
        o = dict(options)
        shape = o["shape"]
        if isinstance(shape, int) and not isinstance(shape, bool):
            shape = (shape, shape)
        ok = (
            isinstance(shape, (tuple, list))
            and len(shape) == 2
            and all(isinstance(s, int) and not isinstance(s, bool) and s >= 8 for s in shape)
        )
        check(ok, f"shape={o['shape']!r}: expected (H, W) with integers >= 8 (or one integer)")
        o["shape"] = [int(shape[0]), int(shape[1])]
        acc = o["acceleration"]
        check(isinstance(acc, (int, float)) and acc >= 1, f"acceleration={acc!r}: expected a number >= 1")
        o["acceleration"] = float(acc)
        cf = o["center_fraction"]
        check(
            isinstance(cf, (int, float)) and 0 <= cf <= 1,
            f"center_fraction={cf!r}: expected a number in [0, 1]",
        )
        o["center_fraction"] = float(cf)
        o["mask_seed"] = check_positive_int(o["mask_seed"], "mask_seed", minimum=0)
        check(o["phase"] in PHASES, f"phase={o['phase']!r}: expected one of {PHASES}")
        check(o["source"] in SOURCES, f"source={o['source']!r}: expected one of {SOURCES}")
        o["holdout_every"] = check_positive_int(o["holdout_every"], "holdout_every", minimum=2)
        if o["source"] == "fastmri":
            check(
                isinstance(o["data_dir"], str) and o["data_dir"] != "",
                f"data_dir={o['data_dir']!r}: expected the folder of fastMRI .h5 files when source='fastmri'",
            )
        elif o["data_dir"] is not None:
            check(
                isinstance(o["data_dir"], str), f"data_dir={o['data_dir']!r}: expected a folder path or None"
            )
        return o

    def _build_physics(self) -> Physics:
        o = self.options
        return SingleCoilMRI(
            shape=tuple(o["shape"]),
            acceleration=o["acceleration"],
            center_fraction=o["center_fraction"],
            mask_seed=o["mask_seed"],
            noise_sigma=self.noise_sigma,
        )

    def _signal_shape(self) -> tuple[int, ...]:
        return (2, *self.options["shape"])

    # -- fastMRI pool (read once, on first use) -----------------------------------------------
    _pool: torch.Tensor | None = None

    def fastmri_pool(self, split: str) -> torch.Tensor:
        """The fastMRI slices ``(m, H, W)`` of the training pool (``"train"``) or the held-out one (else)."""
        if self._pool is None:
            self._pool = load_fastmri(self.options["data_dir"], shape=tuple(self.options["shape"]))
        every = self.options["holdout_every"]
        idx = torch.arange(self._pool.shape[0])
        held = idx % every == every - 1
        pool = self._pool[~held] if split == "train" else self._pool[held]
        check(
            pool.shape[0] > 0,
            f"data_dir={self.options['data_dir']!r} holds {self._pool.shape[0]} slices: expected at least "
            f"holdout_every={every} so that both the training and the held-out pool are non-empty",
        )
        return pool

    def _magnitude_id(self, n: int, split: str, generator: torch.Generator) -> torch.Tensor:
        size = tuple(self.options["shape"])
        if self.options["source"] == "phantom":
            return ellipse_phantoms(n, size, generator)  # type: ignore[arg-type]
        pool = self.fastmri_pool(split)
        pick = torch.randint(0, pool.shape[0], (n,), generator=generator, dtype=torch.int64)
        return pool[pick].clone()

    def _sample(self, n: int, split: str, generator: torch.Generator) -> torch.Tensor:
        size = tuple(self.options["shape"])
        if split == "real_brain":
            mag = real_brain_images(n, size, generator)  # type: ignore[arg-type]
        else:
            mag = self._magnitude_id(n, "train" if split == "train" else "id", generator)
            if split == "lesions":
                mag = add_lesions(mag, generator)
        return apply_phase(mag, self.options["phase"], generator)
