"""Physics operators: relative adjointness, norms against dense matrices, the MRI mask rule."""

import math

import pytest
import torch

from landscape.physics import (
    Deconvolution,
    Denoising,
    SingleCoilMRI,
    adjointness_gap,
    cartesian_mask,
    physics_from_config,
    ricker,
)

OPS = {
    "denoise": (lambda: Denoising(0.1), (1, 32)),
    "seismic-trace": (lambda: Deconvolution(noise_sigma=0.01), (1, 80)),
    "seismic-section": (lambda: Deconvolution(noise_sigma=0.01), (1, 60, 7)),
    "seismic-even-wavelet": (lambda: Deconvolution(wavelet_length=10, wavelet_width=2.0), (1, 40)),
    "mri": (lambda: SingleCoilMRI((16, 12), noise_sigma=0.05), (2, 16, 12)),
}


def dense_matrix(op, shape):
    n = math.prod(shape)
    eye = torch.eye(n, dtype=torch.float64).reshape(n, *shape)
    cols = op.forward(eye).reshape(n, -1)  # row i = A e_i
    return cols.T


@pytest.mark.parametrize("name", sorted(OPS))
def test_relative_adjointness_float64(name, gen):
    make, shape = OPS[name]
    op = make()
    for _ in range(5):
        x = torch.randn(3, *shape, generator=gen, dtype=torch.float64)
        assert adjointness_gap(op, x, generator=gen) <= 1e-12  # float64; the contract asks <= 1e-6


@pytest.mark.parametrize("name", sorted(OPS))
def test_adjoint_is_dense_transpose_and_norm(name, gen):
    make, shape = OPS[name]
    op = make()
    a = dense_matrix(op, shape)
    n = math.prod(shape)
    y = torch.randn(
        2,
        *op.forward(torch.zeros(1, *shape, dtype=torch.float64)).shape[1:],
        generator=gen,
        dtype=torch.float64,
    )
    at_dense = (a.T @ y.reshape(2, -1).T).T
    assert torch.allclose(op.adjoint(y).reshape(2, -1), at_dense, atol=1e-12)
    # operator norm estimate against the dense spectral norm
    true = torch.linalg.matrix_norm(a, ord=2).item()
    est = op.op_norm(torch.zeros(1, *shape, dtype=torch.float64), n_iter=2000, tol=1e-12, generator=gen)
    assert est == pytest.approx(true, rel=1e-4)
    # normal = adjoint(forward)
    x = torch.randn(1, *shape, generator=gen, dtype=torch.float64)
    assert torch.allclose(op.normal(x).reshape(-1), a.T @ a @ x.reshape(-1), atol=1e-12)
    assert n == a.shape[1]


def test_float32_adjointness(gen):
    op = Deconvolution()
    x = torch.randn(4, 1, 64, 8, generator=gen)
    assert adjointness_gap(op, x, generator=gen) < 1e-5


def test_ricker_matches_formula_and_is_peak_normalised():
    w = ricker(51, 4.0)
    assert w.shape == (51,)
    assert w.max().item() == pytest.approx(1.0)
    assert w.argmax().item() == 25
    t = torch.arange(51, dtype=torch.float64) - 25
    ref = (1 - t**2 / 16) * torch.exp(-(t**2) / 32)  # scipy.signal.ricker up to its constant factor
    assert torch.allclose(w, ref / ref.max(), atol=1e-15)
    assert torch.allclose(w, w.flip(0))


def test_deconvolution_matches_numpy_same_convolution(gen):
    import numpy as np

    op = Deconvolution(wavelet_length=9, wavelet_width=1.5)
    x = torch.randn(1, 1, 30, generator=gen, dtype=torch.float64)
    ref = np.convolve(x.numpy().ravel(), ricker(9, 1.5).numpy(), mode="same")
    assert np.allclose(op.forward(x).numpy().ravel(), ref, atol=1e-12)
    # sections are convolved column by column
    sec = torch.randn(2, 1, 30, 5, generator=gen, dtype=torch.float64)
    out = op.forward(sec)
    for j in range(5):
        assert torch.allclose(out[:, :, :, j], op.forward(sec[:, :, :, j]))


def test_mri_mask_rule(gen):
    op = SingleCoilMRI((32, 32), acceleration=4, center_fraction=0.08, mask_seed=3, noise_sigma=0.1)
    mask = op.mask
    assert mask.dtype == torch.bool and mask.shape == (32,)
    assert int(mask.sum()) == 8  # 32 / 4 columns
    n_center = round(32 * 0.08)
    start = (32 - n_center + 1) // 2
    assert mask[start : start + n_center].all()
    x = torch.randn(5, 2, 32, 32, generator=gen, dtype=torch.float64)
    y = op.measure(x, generator=gen)
    unsampled = ~mask
    assert (y[..., unsampled] == 0).all()  # nothing, noise included, on unsampled lines
    assert (y[..., mask] - op.forward(x)[..., mask]).abs().max() > 0  # noise on sampled lines
    # adjoint of anything lands where the mask allows: A A^H is the mask projection
    e = torch.randn(2, 2, 32, 32, generator=gen, dtype=torch.float64)
    assert torch.allclose(op.forward(op.adjoint(e)), e * mask, atol=1e-12)
    # seeded and reproducible
    assert torch.equal(cartesian_mask(32, 4, 0.08, 3), mask)


def test_mri_masks_differ_by_seed():
    masks = {tuple(cartesian_mask(64, 4, 0.08, s).tolist()) for s in range(5)}
    assert len(masks) == 5


def test_measure_reproducible_and_noise_level(gen):
    op = Denoising(0.3)
    x = torch.zeros(2000, 1, 50, dtype=torch.float64)
    y1 = op.measure(x, generator=torch.Generator().manual_seed(5))
    y2 = op.measure(x, generator=torch.Generator().manual_seed(5))
    assert torch.equal(y1, y2)
    # sample std of 100k N(0, 0.3^2) draws: within 5 standard errors (se ~ 0.3/sqrt(2*1e5))
    assert abs(y1.std().item() - 0.3) < 5 * 0.3 / math.sqrt(2 * y1.numel())


def test_config_round_trip():
    for op in (Denoising(0.2), Deconvolution(31, 3.0, 0.01), SingleCoilMRI((20, 24), 6, 0.1, 7, 0.02)):
        again = physics_from_config(op.config())
        assert again.config() == op.config()
        for name, buf in op.named_buffers():
            assert torch.equal(buf, dict(again.named_buffers())[name])


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda: Denoising(-1.0), "noise_sigma"),
        (lambda: Denoising(float("nan")), "noise_sigma"),
        (lambda: Deconvolution(wavelet_length=0), "length"),
        (lambda: Deconvolution(wavelet_width=-2), "width"),
        (lambda: SingleCoilMRI((16, 16), acceleration=0.5), "acceleration"),
        (lambda: SingleCoilMRI((16, 16), center_fraction=1.5), "center_fraction"),
        (lambda: SingleCoilMRI((1, 16)), "shape"),
        (lambda: physics_from_config({"name": "ct"}), "physics name"),
        (lambda: Deconvolution().forward(torch.zeros(2, 3, 10)), "expected (B, 1, T)"),
        (lambda: SingleCoilMRI((8, 8)).forward(torch.zeros(1, 2, 8, 9)), "expected (B, 2, 8, 8)"),
    ],
)
def test_bad_arguments(make, fragment):
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        make()
