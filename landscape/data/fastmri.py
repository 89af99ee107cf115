r"""fastMRI single-coil HDF5 loader (``h5py``).

fastMRI single-coil files hold ``kspace`` (slices x 640 x 368, complex) and, in the training and
validation sets, ``reconstruction_esc`` (slices x 320 x 320, the magnitude of the centred inverse FFT
cropped to 320 x 320).  :func:`load_fastmri` reads every ``*.h5`` / ``*.hdf5`` file of a folder in sorted
order and, per slice,

1. takes ``reconstruction_esc`` when present (``key="auto"``), otherwise the magnitude of the centred
   orthonormal inverse 2-D FFT of ``kspace``, :math:`|F^{-1} k|`;
2. centre-crops to a square (``crop`` pixels if given, default the smaller side; fastMRI's own
   convention is ``crop=320`` for k-space reconstructions);
3. resizes to ``shape`` (bilinear, antialiased; skipped when the size already matches);
4. normalises to a maximum of 1.

Returns a float64 tensor ``(m, H, W)`` of magnitudes; :class:`~landscape.data.mri.MRITask` adds the
(zero or smooth) phase.  Slices whose maximum is 0 are skipped.
"""

from __future__ import annotations

import glob
import os

import numpy as np
import torch
import torch.nn.functional as F

from landscape.errors import check

__all__ = ["load_fastmri", "fastmri_files", "kspace_to_image", "KEYS"]

KEYS = ("auto", "reconstruction_esc", "kspace")


def _h5py():
    try:
        import h5py
    except ImportError as exc:
        raise ValueError(
            "the fastMRI loader needs the package h5py, which is not installed (pip install h5py)"
        ) from exc
    return h5py


def fastmri_files(folder: str) -> list[str]:
    """Sorted ``*.h5`` / ``*.hdf5`` files of ``folder``; ``FileNotFoundError`` if none."""
    check(isinstance(folder, (str, os.PathLike)), f"data_dir={folder!r}: expected a folder path")
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"fastMRI data_dir={folder!r}: no such folder")
    files = sorted(glob.glob(os.path.join(folder, "*.h5")) + glob.glob(os.path.join(folder, "*.hdf5")))
    if not files:
        raise FileNotFoundError(f"fastMRI data_dir={folder!r}: expected .h5 files, found none")
    return files


def kspace_to_image(kspace: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Magnitude of the centred orthonormal inverse 2-D FFT over the last two axes."""
    k = torch.as_tensor(np.asarray(kspace)).to(torch.complex128)
    z = torch.fft.fftshift(torch.fft.ifft2(torch.fft.ifftshift(k, dim=(-2, -1)), norm="ortho"), dim=(-2, -1))
    return z.abs()


def _center_crop(img: torch.Tensor, side: int) -> torch.Tensor:
    h, w = img.shape[-2:]
    side = min(side, h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return img[..., top : top + side, left : left + side]


def load_fastmri(
    folder: str,
    *,
    shape: tuple[int, int] = (64, 64),
    key: str = "auto",
    crop: int | None = None,
    max_slices: int | None = None,
) -> torch.Tensor:
    """Read, crop, resize and normalise the slices of the fastMRI files in ``folder`` -> (m, H, W)."""
    check(key in KEYS, f"key={key!r}: expected one of {KEYS}")
    check(
        isinstance(shape, (tuple, list)) and len(shape) == 2 and all(int(s) >= 1 for s in shape),
        f"shape={shape!r}: expected (H, W)",
    )
    check(
        crop is None or (isinstance(crop, int) and crop >= 1),
        f"crop={crop!r}: expected None or an integer >= 1",
    )
    check(
        max_slices is None or (isinstance(max_slices, int) and max_slices >= 1),
        f"max_slices={max_slices!r}: expected None or an integer >= 1",
    )
    h5py = _h5py()
    size = (int(shape[0]), int(shape[1]))
    out: list[torch.Tensor] = []
    for path in fastmri_files(folder):
        try:
            fh = h5py.File(path, "r")
        except OSError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(f"fastMRI file {path}: cannot be read as HDF5 ({first[:160]})") from None
        with fh as f:
            use = key
            if key == "auto":
                use = "reconstruction_esc" if "reconstruction_esc" in f else "kspace"
            if use not in f:
                raise ValueError(f"fastMRI file {path}: has datasets {sorted(f.keys())}, expected {use!r}")
            data = f[use][()]
        n_bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
        check(n_bad == 0, f"fastMRI file {path}: {use!r} holds {n_bad} NaN/Inf value(s)")
        if use == "kspace":
            check(
                np.iscomplexobj(data),
                f"fastMRI file {path}: 'kspace' is {data.dtype}, expected complex values",
            )
            imgs = kspace_to_image(data)
        else:
            imgs = torch.as_tensor(np.abs(np.asarray(data)), dtype=torch.float64)
        if imgs.dim() == 2:
            imgs = imgs[None]
        check(
            imgs.dim() == 3,
            f"fastMRI file {path}: {use!r} has shape {tuple(imgs.shape)}, expected (slices, H, W)",
        )
        side = crop if crop is not None else min(imgs.shape[-2:])
        imgs = _center_crop(imgs, side)
        if tuple(imgs.shape[-2:]) != size:
            imgs = F.interpolate(
                imgs[:, None], size=size, mode="bilinear", align_corners=False, antialias=True
            )[:, 0]
        for img in imgs:
            peak = img.max()
            if peak > 0:
                out.append((img / peak).clamp_min(0))
            if max_slices is not None and len(out) >= max_slices:
                return torch.stack(out)
    check(len(out) > 0, f"fastMRI data_dir={folder!r}: every slice is zero")
    return torch.stack(out)
