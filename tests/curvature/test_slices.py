"""Slices of L_k around x_k and of the training loss around theta (landscape.curvature.slices)."""

import functools
import math

import numpy as np
import pytest
import torch

from landscape.curvature.slices import (
    Slice,
    bytes_per_point,
    chunk_cap,
    grid_coordinates,
    input_directions,
    load_slice,
    parameter_directions,
    parameter_slice,
    top_eigenvectors,
)
from landscape.curvature.slices import input_slice as default_input_slice
from landscape.models import ModelConfig, RegularizerConfig, build_model
from landscape.physics import Deconvolution, Denoising, SingleCoilMRI

# exactness checks evaluate the grid in the model's float64; the float32 default is tested on its own
input_slice = functools.partial(default_input_slice, dtype=None)


def _model(physics, shape, *, arch="gd", kind="cnn", activation="gelu", seed=0, n_iter=4, norm="none"):
    torch.manual_seed(seed)
    reg = RegularizerConfig(
        kind=kind, activation=activation, width=6, depth=2, kernel_size=3, norm=norm, out_scale=1.0
    )
    cfg = ModelConfig(arch=arch, signal_shape=shape, n_iter=n_iter, regularizer=reg)
    return build_model(cfg, physics).double().eval()


def _sample(model, b=1, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, *model.cfg.signal_shape, generator=g, dtype=torch.float64)
    return x, model.physics.measure(x, generator=g)


@pytest.fixture(scope="module")
def toy():
    m = _model(Denoising(0.2), (1, 16))
    x, y = _sample(m)
    return m, x, y


def _loss(model, y, x):
    with torch.no_grad():
        return float((model(y) - x).pow(2).sum())


def test_grid_has_an_exact_origin():
    c = grid_coordinates(101, 0.7)
    assert c[50] == 0.0 and c[0] == -0.7 and c[-1] == 0.7 and len(c) == 101


@pytest.mark.parametrize("k", [0, 2, 4])
def test_origin_equals_loss_at_checkpoint(toy, k):
    m, x, y = toy
    s = input_slice(m, y, x, k, n=7)
    ref = _loss(m, y, x)  # L_k(x_k) = ||Phi_{k->K}(x_k) - x*||^2 = the loss of the full forward pass
    assert abs(s.value_at_origin() - ref) <= 1e-6 * max(1.0, ref)
    assert abs(s.center_value - ref) <= 1e-6 * max(1.0, ref)
    p = parameter_slice(m, y, x, n=5)
    assert abs(p.value_at_origin() - ref) <= 1e-6 * max(1.0, ref)


def test_origin_float32_model():
    m = _model(Denoising(0.2), (1, 16)).float()
    x, y = _sample(m)
    x, y = x.float(), y.float()
    s = input_slice(m, y, x, 1, n=5)
    assert abs(s.value_at_origin() - _loss(m, y, x)) <= 1e-6 * max(1.0, _loss(m, y, x))


def test_quadratic_fit_along_top_eigenvector_recovers_curvature(toy):
    m, x, y = toy
    k = 1
    with torch.no_grad():
        x_k = m(y, return_iterates=True).iterates[k]

    def f(z):
        return (m.tail(z.view_as(x_k), y, k) - x).pow(2).sum()

    H = torch.func.hessian(f)(x_k.reshape(-1))
    evals, evecs = torch.linalg.eigh(H)
    v = evecs[:, -1]
    H = H.detach()
    vhv = float(v @ H @ v)
    # given direction, unit norm
    s = input_slice(m, y, x, k, directions=[v], n=41, span=1e-2)
    c2 = np.polyfit(s.coords[0], s.values, 2)[0]
    assert abs(2 * c2 - vhv) <= 1e-3 * abs(vhv)
    # the module's own eigenvector ('eigen' kind, unit scale)
    s2 = input_slice(m, y, x, k, kinds=("eigen",), scale="unit", n=41, span=1e-2)
    c2 = np.polyfit(s2.coords[0], s2.values, 2)[0]
    assert abs(2 * c2 - float(evals[-1])) <= 1e-3 * abs(float(evals[-1]))
    assert abs(s2.directions[0]["eigenvalue"] - float(evals[-1])) <= 1e-8 * abs(float(evals[-1]))


def test_top_eigenvectors_arpack_path_matches_dense():
    m = _model(Denoising(0.2), (1, 300), kind="mlp", n_iter=2)
    x, y = _sample(m)
    vals, vecs = top_eigenvectors(m, y, x, 0, 2)
    with torch.no_grad():
        x0 = m(y, return_iterates=True).iterates[0]
    H = torch.func.hessian(lambda z: (m.tail(z.view_as(x0), y, 0) - x).pow(2).sum())(x0.reshape(-1))
    ref = torch.linalg.eigvalsh(H.detach()).numpy()[::-1][:2]
    assert np.allclose(vals, ref, rtol=1e-7, atol=1e-9)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0)


@pytest.mark.parametrize("kinds", [("random", "gradient"), ("random_channel", "eigen")])
def test_batched_equals_pointwise_input(toy, kinds):
    m, x, y = toy
    a = input_slice(m, y, x, 2, kinds=kinds, n=9, method="batched", chunk_size=17)
    b = input_slice(m, y, x, 2, kinds=kinds, n=9, method="pointwise")
    assert a.values.shape == (9, 9)
    assert np.max(np.abs(a.values - b.values)) <= 1e-10
    assert a.settings["calls"] == math.ceil(81 / 17) and b.settings["calls"] == 81


def test_batched_equals_pointwise_parameter_and_mri():
    m = _model(SingleCoilMRI((4, 4), acceleration=2, center_fraction=0.25), (2, 4, 4), norm="group")
    x, y = _sample(m, b=2)
    a = parameter_slice(m, y, x, n=5, method="batched")
    b = parameter_slice(m, y, x, n=5, method="pointwise")
    assert a.method == "batched"
    assert np.max(np.abs(a.values - b.values)) <= 1e-10
    c = input_slice(m, y[:1], x[:1], 1, kinds=("range", "null"), n=5, method="batched")
    d = input_slice(m, y[:1], x[:1], 1, kinds=("range", "null"), n=5, method="pointwise")
    assert np.max(np.abs(c.values - d.values)) <= 1e-10


def test_memory_is_measured_not_modelled():
    W = torch.randn(2, 1000, dtype=torch.float64)

    def fn(c):  # allocates c @ W (P x 1000 float64) and its row sums (P): 8008 bytes per point
        return (c.to(torch.float64) @ W).sum(1)

    assert bytes_per_point(fn, 2) == pytest.approx(8008, rel=0.01)
    assert chunk_cap(fn, 2, memory_mb=8008 * 10 / 2**20) == 10
    assert chunk_cap(fn, 2, memory_mb=1024, max_chunk=50) == 50


def test_memory_budget_caps_chunks(toy):
    m, x, y = toy
    assert chunk_cap(lambda c: c.sum(1), 2, memory_mb=1e-9) == 1
    s = input_slice(m, y, x, 0, n=5, memory_mb=1e-6)
    assert s.chunk_size == 1
    t = input_slice(m, y, x, 0, n=5)
    assert np.max(np.abs(s.values - t.values)) <= 1e-10


def test_same_directions_across_checkpoints():
    phys = Denoising(0.2)
    m1, m2 = _model(phys, (1, 16), seed=0), _model(phys, (1, 16), seed=5)
    x, y = _sample(m1)
    d1, meta1, xk1 = input_directions(m1, y, x, 2, ("random", "random"), seed=3)
    d2, meta2, xk2 = input_directions(m2, y, x, 2, ("random", "random"), seed=3)
    for a, b in zip(d1, d2, strict=False):
        cos = float((a * b).sum() / (a.norm() * b.norm()))
        assert cos == pytest.approx(1.0, abs=1e-12)
    assert [m["seed"] for m in meta1] == [m["seed"] for m in meta2]
    assert float(d1[0].norm()) == pytest.approx(float(xk1.norm()))
    assert abs(float((d1[0] * d1[1]).sum())) <= 1e-10 * float(d1[0].norm() * d1[1].norm())
    d3, _, _ = input_directions(m1, y, x, 2, ("random", "random"), seed=4)
    assert not torch.allclose(d1[0], d3[0])
    p1, _ = parameter_directions(m1, seed=3)
    p2, _ = parameter_directions(m2, seed=3)
    for name, t in m1.named_parameters():
        if t.dim() > 1:
            a, b = p1[0][name].flatten(1), p2[0][name].flatten(1)
            r1, r2 = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
            assert torch.allclose(r1, r2)


def test_channel_scaling_and_mri_split():
    phys = SingleCoilMRI((4, 4), acceleration=2, center_fraction=0.25)
    m = _model(phys, (2, 4, 4), norm="group")
    x, y = _sample(m)
    d, meta, x_k = input_directions(m, y, x, 1, ("random_channel", "random"), seed=0)
    assert torch.allclose(d[0].flatten(2).norm(dim=2), x_k.flatten(2).norm(dim=2))
    (r, nl), meta, x_k = input_directions(m, y, x, 1, ("range", "null"), seed=0)
    assert abs(float((r * nl).sum())) <= 1e-10 * float(r.norm() * nl.norm())
    assert float(phys.normal(nl).norm()) <= 1e-10 * float(nl.norm())  # null part: unsampled k-space only
    assert torch.allclose(phys.normal(r), r)
    mc = _model(Deconvolution(wavelet_length=5), (1, 8))
    xc, yc = _sample(mc)
    with pytest.raises(ValueError, match="projection"):
        input_directions(mc, yc, xc, 0, ("range", "null"))


def test_filter_normalisation():
    m = _model(Denoising(0.2), (1, 16))
    dirs, meta = parameter_directions(m, ("filter", "filter"), seed=0)
    for name, p in m.named_parameters():
        d = dirs[0][name]
        if p.dim() <= 1:
            assert torch.count_nonzero(d) == 0
        else:
            assert torch.allclose(d.flatten(1).norm(dim=1), p.detach().flatten(1).norm(dim=1))
    assert meta[0]["norm"] > 0 and "cosine_between" in meta[0]


def test_bad_input(toy):
    m, x, y = toy
    xb, yb = _sample(m, b=2)
    with pytest.raises(ValueError, match="one sample"):
        input_slice(m, yb, xb, 0)
    with pytest.raises(ValueError, match="direction kind"):
        input_slice(m, y, x, 0, kinds=("nope", "random"))
    with pytest.raises(ValueError, match="k="):
        input_slice(m, y, x, 9)


def test_roundtrip_json_and_npz(toy, tmp_path):
    import json

    m, x, y = toy
    s = input_slice(m, y, x, 1, kinds=("random", "gradient"), n=(5, 7), span=(0.5, 2.0))
    assert s.values.shape == (5, 7)
    d = json.loads(json.dumps(s.to_dict()))
    t = Slice.from_dict(d)
    assert np.array_equal(t.values, s.values) and t.directions == s.directions and t.k == 1
    assert [list(c) for c in t.coords] == [list(c) for c in s.coords]
    p = tmp_path / "s.npz"
    s.save_npz(p)
    u = load_slice(p)
    assert np.array_equal(u.values, s.values) and np.array_equal(u.vectors, s.vectors)
    assert u.settings == json.loads(json.dumps(s.settings))
    (tmp_path / "s.json").write_text(json.dumps(s.to_dict()))
    assert np.array_equal(load_slice(tmp_path / "s.json").values, s.values)


def test_model_mode_restored(toy):
    m, x, y = toy
    m.train()
    try:
        input_slice(m, y, x, 0, n=3)
        assert m.training
    finally:
        m.eval()


def test_float32_slices_are_good_enough_for_figures(toy):
    """The default grid dtype is float32: against float64 the values agree to 1e-5 of their range."""
    m, x, y = toy
    a = default_input_slice(m, y, x, 2, n=11)
    b = default_input_slice(m, y, x, 2, n=11, dtype=None)
    assert a.dtype == "float32" and b.dtype == "float64"
    rng = float(b.values.max() - b.values.min())
    err = float(np.max(np.abs(a.values - b.values)))
    assert 0 < err <= 1e-5 * rng, (err, rng)
