"""fastMRI single-coil HDF5 loader, on tiny files written here with h5py."""

import numpy as np
import pytest
import torch

from landscape.data import make_task
from landscape.data.fastmri import kspace_to_image, load_fastmri

h5py = pytest.importorskip("h5py")


def _images(n, h, w, seed):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    out = []
    for _ in range(n):
        cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
        out.append(np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (0.1 * h * w)) + 0.1 * rng.random((h, w)))
    return np.stack(out)


@pytest.fixture
def folder(tmp_path):
    recon = _images(3, 40, 40, 0).astype(np.float32)
    with h5py.File(tmp_path / "file_a.h5", "w") as f:
        f["reconstruction_esc"] = recon
        f["kspace"] = np.zeros((3, 4, 4), np.complex64)  # ignored: the reconstruction wins
    img = _images(2, 48, 40, 1) * np.exp(1j * 0.3)
    ksp = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(img, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    with h5py.File(tmp_path / "file_b.h5", "w") as f:
        f["kspace"] = ksp.astype(np.complex64)
    return tmp_path, recon, img


def test_loader_reads_reconstructions_and_kspace(folder):
    path, recon, img = folder
    x = load_fastmri(str(path), shape=(40, 40))
    assert x.shape == (5, 40, 40) and x.dtype == torch.float64
    torch.testing.assert_close(x.flatten(1).amax(1), torch.ones(5, dtype=torch.float64))
    ref = torch.tensor(recon[0], dtype=torch.float64)
    torch.testing.assert_close(x[0], ref / ref.max())
    # kspace file: |centred IFFT|, centre-cropped from 48 x 40 to 40 x 40
    mag = np.abs(img[0])[4:44, :]
    torch.testing.assert_close(x[3], torch.tensor(mag / mag.max()), atol=1e-5, rtol=1e-5)


def test_loader_resizes_and_limits(folder):
    path, _, _ = folder
    x = load_fastmri(str(path), shape=(16, 16), max_slices=4)
    assert x.shape == (4, 16, 16)
    assert float(x.min()) >= 0 and float(x.max()) == 1.0


def test_kspace_to_image_inverts_the_centred_fft():
    img = torch.rand(2, 8, 6, dtype=torch.float64)
    k = torch.fft.fftshift(torch.fft.fft2(torch.fft.ifftshift(img, dim=(-2, -1)), norm="ortho"), dim=(-2, -1))
    torch.testing.assert_close(kspace_to_image(k), img)


def test_loader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_fastmri(str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="expected .h5 files"):
        load_fastmri(str(tmp_path))
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f["something"] = np.zeros(3)
    with pytest.raises(ValueError, match="expected 'kspace'"):
        load_fastmri(str(tmp_path))
    with pytest.raises(ValueError, match="key='x'"):
        load_fastmri(str(tmp_path), key="x")


def test_mri_task_on_fastmri_holds_out_slices(folder):
    path, _, _ = folder
    task = make_task("mri", shape=16, source="fastmri", data_dir=str(path), holdout_every=5)
    pool = load_fastmri(str(path), shape=(16, 16))
    held = pool[4]  # every 5th slice (index 4) is the held-out test pool
    x_id = task.clean(6, split="id", generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(x[0], held) for x in x_id)
    x_tr = task.training_set(12, seed=0, dtype=torch.float64).x
    assert all(any(torch.equal(x[0], pool[i]) for i in range(4)) for x in x_tr)
    assert not any(torch.equal(x[0], held) for x in x_tr)
    les = task.clean(2, split="lesions", generator=torch.Generator().manual_seed(0))
    assert les.shape == (2, 2, 16, 16)
    assert task.pairs(2, split="real_brain", seed=0).x.shape == (2, 2, 16, 16)


def test_missing_h5py_raises_value_error(folder, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ValueError, match="h5py.*not installed"):
        load_fastmri(str(folder[0]))
