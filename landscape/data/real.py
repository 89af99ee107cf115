"""Real MRI slices that pip packages ship inside their wheels (no download, no data set to fetch).

* matplotlib: ``mpl-data/sample_data/s1045.ima.gz`` — one 256 x 256 brain MRI slice (big-endian 16-bit);
* nibabel: ``nibabel/tests/data/example4d.nii.gz`` — an EPI volume 128 x 96 x 24 x 2; the axial slices
  4 to 19 of both volumes (32 slices with brain in them), zero-padded to square.

:func:`real_brain_images` turns them into ``n`` images of any size, deterministically from a generator:
pick a package (each with probability 1/2, or only those available), a slice of it, a random square crop of
80 to 100 % of its side, a random left-right flip, a bilinear (antialiased) resize, and a normalisation to
a maximum of 1 (the phantom range).  A missing package raises ``ValueError`` naming it.
"""

from __future__ import annotations

import functools
import gzip
import os

import numpy as np
import torch
import torch.nn.functional as F

from landscape.errors import check

__all__ = ["REAL_SOURCES", "matplotlib_brain", "nibabel_epi_slices", "real_slices", "real_brain_images"]

REAL_SOURCES = ("matplotlib", "nibabel")


def _normalise(img: torch.Tensor) -> torch.Tensor:
    img = img.clamp_min(0)
    return img / img.max().clamp_min(1e-12)


def _square(img: torch.Tensor) -> torch.Tensor:
    """Zero-pad a 2-D image to a square, centred."""
    h, w = img.shape
    s = max(h, w)
    top, left = (s - h) // 2, (s - w) // 2
    return F.pad(img, (left, s - w - left, top, s - h - top))


@functools.cache
def matplotlib_brain() -> torch.Tensor:
    """matplotlib's sample brain slice ``s1045.ima.gz``, ``(256, 256)`` float64 normalised to max 1."""
    try:
        from matplotlib import cbook
    except ImportError as exc:
        raise ValueError(
            "real MRI source 'matplotlib': the package matplotlib is not installed (pip install matplotlib)"
        ) from exc
    path = cbook.get_sample_data("s1045.ima.gz", asfileobj=False)
    with gzip.open(path, "rb") as fh:
        raw = np.frombuffer(fh.read(), dtype=">u2")
    check(raw.size == 256 * 256, f"{path}: expected 256*256 16-bit values, found {raw.size}")
    return _normalise(torch.from_numpy(raw.astype(np.float64).reshape(256, 256)))


@functools.cache
def nibabel_epi_slices() -> torch.Tensor:
    """nibabel's test EPI volume ``example4d.nii.gz``: axial slices 4..19 of both volumes, (32, 128, 128)."""
    try:
        import nibabel
    except ImportError as exc:
        raise ValueError(
            "real MRI source 'nibabel': the package nibabel is not installed (pip install nibabel)"
        ) from exc
    path = os.path.join(os.path.dirname(nibabel.__file__), "tests", "data", "example4d.nii.gz")
    if not os.path.exists(path):
        raise ValueError(f"real MRI source 'nibabel': {path} is missing from this nibabel installation")
    vol = np.asarray(nibabel.load(path).get_fdata(), dtype=np.float64)  # (128, 96, 24, 2)
    out = []
    for t in range(vol.shape[3]):
        for z in range(4, 20):
            sl = torch.from_numpy(np.ascontiguousarray(np.rot90(vol[:, :, z, t])))
            out.append(_normalise(_square(sl)))
    return torch.stack(out)


def real_slices(source: str) -> torch.Tensor:
    """All slices ``(m, S, S)`` of one package source (see :data:`REAL_SOURCES`)."""
    check(source in REAL_SOURCES, f"real MRI source={source!r}: expected one of {REAL_SOURCES}")
    if source == "matplotlib":
        return matplotlib_brain()[None]
    return nibabel_epi_slices()


def real_brain_images(
    n: int,
    size: tuple[int, int],
    generator: torch.Generator,
    *,
    sources: tuple[str, ...] = REAL_SOURCES,
    crop: tuple[float, float] = (0.8, 1.0),
) -> torch.Tensor:
    """``n`` real brain images ``(n, H, W)`` float64 in [0, 1] (max 1), reproducible from ``generator``."""
    check(len(sources) >= 1, "sources=(): expected at least one of " + repr(REAL_SOURCES))
    pools = [real_slices(s) for s in sources]
    out = torch.empty(n, *size, dtype=torch.float64)
    which = torch.randint(0, len(pools), (n,), generator=generator, dtype=torch.int64)
    for i in range(n):
        pool = pools[int(which[i])]
        img = pool[int(torch.randint(0, pool.shape[0], (1,), generator=generator, dtype=torch.int64))]
        side = img.shape[-1]
        frac = crop[0] + (crop[1] - crop[0]) * float(torch.rand(1, generator=generator, dtype=torch.float64))
        c = max(2, int(round(frac * side)))
        top = int(torch.randint(0, side - c + 1, (1,), generator=generator, dtype=torch.int64))
        left = int(torch.randint(0, side - c + 1, (1,), generator=generator, dtype=torch.int64))
        patch = img[top : top + c, left : left + c]
        if float(torch.rand(1, generator=generator, dtype=torch.float64)) < 0.5:
            patch = patch.flip(-1)
        resized = F.interpolate(
            patch[None, None], size=tuple(size), mode="bilinear", align_corners=False, antialias=True
        )
        out[i] = _normalise(resized[0, 0])
    return out
