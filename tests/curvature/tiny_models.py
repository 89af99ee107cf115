"""Tiny unrolled models for the curvature tests (float64, a few dozen inputs, K = 4): plain helpers."""

import torch

from landscape.models import ModelConfig, RegularizerConfig, build_model
from landscape.physics import Deconvolution, Denoising, SingleCoilMRI

K = 4

CASES = {
    "mlp-shared": (
        lambda: Denoising(0.1),
        dict(
            arch="gd",
            signal_shape=(1, 12),
            regularizer=RegularizerConfig(kind="mlp", activation="gelu", width=16, depth=2),
        ),
    ),
    "cnn-shared": (
        lambda: Denoising(0.1),
        dict(
            arch="gd",
            signal_shape=(1, 12),
            regularizer=RegularizerConfig(kind="cnn", activation="softplus", width=6, depth=2, kernel_size=3),
        ),
    ),
    "cnn-per-iteration": (
        lambda: Denoising(0.1),
        dict(
            arch="gd",
            signal_shape=(1, 12),
            shared=False,
            regularizer=RegularizerConfig(kind="cnn", activation="tanh", width=6, depth=2, kernel_size=3),
        ),
    ),
    "prox-cnn-seismic": (
        lambda: Deconvolution(wavelet_length=5, noise_sigma=0.01),
        dict(
            arch="prox",
            signal_shape=(1, 8, 2),
            regularizer=RegularizerConfig(kind="cnn", activation="elu", width=4, depth=2, kernel_size=3),
        ),
    ),
    "cnn-group-mri": (
        lambda: SingleCoilMRI((4, 4), acceleration=2, center_fraction=0.25),
        dict(
            arch="gd",
            signal_shape=(2, 4, 4),
            regularizer=RegularizerConfig(
                kind="cnn", activation="gelu", width=8, depth=2, kernel_size=3, norm="group"
            ),
        ),
    ),
}


def make_model(name, *, n_iter=K, seed=0, out_scale=1.0, **over):
    physics, kw = CASES[name]
    kw = dict(kw)
    kw["regularizer"] = RegularizerConfig(
        **{**kw["regularizer"].__dict__, "out_scale": out_scale, **over.pop("regularizer", {})}
    )
    torch.manual_seed(seed)
    return build_model(ModelConfig(n_iter=n_iter, **{**kw, **over}), physics()).double()


def make_batch(model, b=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, *model.cfg.signal_shape, generator=g, dtype=torch.float64)
    return x, model.physics.measure(x, generator=g)


def spd_with_spectrum(eigs, seed=0):
    """A dense symmetric matrix Q diag(eigs) Q^T with a random orthogonal Q (deliberately non-diagonal)."""
    eigs = torch.as_tensor(eigs, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(len(eigs), len(eigs), generator=g, dtype=torch.float64))
    return (q * eigs) @ q.T
