"""Unrolled networks: tail = last K-k steps, jitter only when a rule is passed, affine with identity activation."""

import math

import pytest
import torch

from landscape.jitter import JitterConfig, jitter_noise
from landscape.models import (
    ModelConfig,
    RegularizerConfig,
    UnrolledGD,
    UnrolledProxGD,
    build_model,
    clone_model,
)
from landscape.physics import Deconvolution, Denoising, SingleCoilMRI

CASES = {
    "gd-mlp-denoise": (
        Denoising(0.1),
        dict(arch="gd", signal_shape=(1, 16), regularizer=RegularizerConfig(kind="mlp", width=24, depth=2)),
    ),
    "gd-cnn-denoise-unshared": (
        Denoising(0.1),
        dict(
            arch="gd",
            signal_shape=(1, 16),
            shared=False,
            regularizer=RegularizerConfig(kind="cnn", width=8, depth=2),
        ),
    ),
    "prox-cnn-seismic": (
        Deconvolution(noise_sigma=0.01),
        dict(
            arch="prox",
            signal_shape=(1, 24, 4),
            regularizer=RegularizerConfig(kind="cnn", width=8, depth=2, kernel_size=3),
        ),
    ),
    "gd-cnn-mri-group": (
        SingleCoilMRI((8, 8)),
        dict(
            arch="gd",
            signal_shape=(2, 8, 8),
            regularizer=RegularizerConfig(kind="cnn", width=8, depth=2, kernel_size=3, norm="group"),
        ),
    ),
}


def make(name, **over):
    physics, kw = CASES[name]
    torch.manual_seed(0)
    return build_model(ModelConfig(n_iter=5, **{**kw, **over}), physics).double()


def sample(model, b=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, *model.cfg.signal_shape, generator=g, dtype=torch.float64)
    return x, model.physics.measure(x, generator=g)


@pytest.mark.parametrize("name", sorted(CASES))
def test_tail_equals_last_steps_of_forward(name):
    model = make(name).eval()
    _, y = sample(model)
    traj = model(y, return_iterates=True)
    assert len(traj.iterates) == model.n_iter + 1
    assert torch.equal(traj.iterates[0], model.physics.adjoint(y))
    for k in range(model.n_iter + 1):
        assert torch.equal(model.tail(traj.iterates[k], y, k), traj.output)
    assert torch.equal(model(y), traj.output)


@pytest.mark.parametrize("mode", ["paper", "absolute", "normalized", "per-sample-step", "relative"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_jitter_only_when_a_rule_is_passed(name, mode):
    jc = JitterConfig(sigma=0.5, mode=mode)
    model = make(name)
    _, y = sample(model)
    clean = make(name).eval()(y)
    model.eval()
    assert torch.equal(model(y), clean)  # no rule: never jittered, in eval ...
    model.train()
    assert torch.equal(model(y), clean)  # ... or training mode: the model holds no noise
    a, b = model(y, jitter=jc), model(y, jitter=jc)
    assert not torch.allclose(a, clean) and not torch.allclose(a, b)  # fresh noise each call
    assert not torch.allclose(model.eval()(y, jitter=jc), clean)  # a rule passed jitters in eval mode too
    assert torch.equal(model(y), clean)


@pytest.mark.parametrize("name", sorted(CASES))
def test_sigma_zero_is_the_clean_solver(name):
    model = make(name).train()
    _, y = sample(model)
    assert torch.equal(model(y, jitter=JitterConfig(sigma=0.0)), make(name).eval()(y))
    assert torch.equal(model(y, jitter=JitterConfig(sigma=[0.0] * 5)), model(y))


def test_seeded_jitter_is_reproducible():
    model, jc = make("gd-mlp-denoise").train(), JitterConfig(sigma=0.3)
    _, y = sample(model)
    a = model.set_generator(torch.Generator().manual_seed(7))(y, jitter=jc)
    b = model.set_generator(torch.Generator().manual_seed(7))(y, jitter=jc)
    c = model.set_generator(torch.Generator().manual_seed(8))(y, jitter=jc)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_per_iteration_sigma_list_enters_only_where_nonzero():
    base = make("gd-mlp-denoise").eval()
    _, y = sample(base)
    model = make("gd-mlp-denoise").train()
    traj_clean = base(y, return_iterates=True)
    traj = model(y, return_iterates=True, jitter=JitterConfig(sigma=[0, 0, 0.4, 0, 0]))
    for k in range(3):  # x_0..x_2 are untouched, x_3 on is perturbed
        assert torch.equal(traj.iterates[k], traj_clean.iterates[k])
    assert not torch.allclose(traj.iterates[3], traj_clean.iterates[3])
    with pytest.raises(ValueError, match="one per iteration"):
        model(y, jitter=JitterConfig(sigma=[0.1, 0.2]))


def test_noise_is_injected_as_eta_times_w():
    """x_1(jittered) - x_1(clean) = -eta * w_0 exactly, w_0 re-drawn from the same seed."""
    model = make("gd-mlp-denoise").train()
    _, y = sample(model)
    x0 = model.physics.adjoint(y)
    model.set_generator(torch.Generator().manual_seed(3))
    x1 = model.step(x0, y, 0, jitter=JitterConfig(sigma=0.2, mode="absolute"))
    clean = model.step(x0, y, 0)
    w = jitter_noise(x0, 0.2, "absolute", torch.Generator().manual_seed(3))
    assert torch.allclose(x1 - clean, -model.step_size(0) * w, atol=1e-14)


def test_jitter_mode_scales():
    g = torch.Generator().manual_seed(0)
    grad = torch.randn(4000, 1, 100, generator=g, dtype=torch.float64)
    grad[:2000] *= 10
    w = jitter_noise(grad, 0.5, "normalized", g)
    assert (w.pow(2).sum(dim=(1, 2)).mean().item()) == pytest.approx(0.25, rel=0.02)  # E||w||^2 = sigma^2
    w = jitter_noise(grad, 0.5, "absolute", g)
    assert w.pow(2).mean().item() == pytest.approx(0.25, rel=0.02)
    w = jitter_noise(grad, 0.5, "relative", g)
    scale = grad.abs().amax(dim=(1, 2))  # per sample, not per batch
    ratio = w.pow(2).mean(dim=(1, 2)) / scale.pow(2)
    assert ratio.mean().item() == pytest.approx(0.25, rel=0.02)
    assert w[:2000].std().item() > 5 * w[2000:].std().item()
    assert not grad.requires_grad and math.isfinite(float(w.sum()))


@pytest.mark.parametrize("arch, shared", [("gd", True), ("gd", False), ("prox", True)])
def test_identity_activation_gives_an_affine_map(arch, shared):
    physics = Deconvolution(wavelet_length=7, wavelet_width=1.5, noise_sigma=0.01)
    cfg = ModelConfig(
        arch=arch,
        shared=shared,
        signal_shape=(1, 12),
        n_iter=4,
        regularizer=RegularizerConfig(
            kind="cnn", activation="identity", width=6, depth=2, kernel_size=3, out_scale=1.0
        ),
    )
    torch.manual_seed(1)
    model = build_model(cfg, physics).double().eval()
    g = torch.Generator().manual_seed(2)
    y = torch.randn(1, 1, 12, generator=g, dtype=torch.float64)
    for k in (0, 2, 4):
        f = lambda x, k=k: model.tail(x.reshape(1, 1, 12), y, k).reshape(-1)  # noqa: E731
        x_a = torch.randn(12, generator=g, dtype=torch.float64)
        M = torch.func.jacrev(f)(x_a)
        c = f(torch.zeros(12, dtype=torch.float64))
        for _ in range(3):  # x_K = M x_k + c everywhere, with the Jacobian at one point
            x = 3 * torch.randn(12, generator=g, dtype=torch.float64)
            assert torch.allclose(f(x), M @ x + c, atol=1e-12)
        assert torch.allclose(torch.func.jacrev(f)(x), M, atol=1e-12)
    # a nonlinear activation is not affine
    cfg2 = ModelConfig(
        arch=arch,
        shared=shared,
        signal_shape=(1, 12),
        n_iter=4,
        regularizer=RegularizerConfig(
            kind="cnn", activation="tanh", width=6, depth=2, kernel_size=3, out_scale=1.0
        ),
    )
    torch.manual_seed(1)
    nl = build_model(cfg2, physics).double().eval()
    f2 = lambda x: nl.tail(x.reshape(1, 1, 12), y, 0).reshape(-1)  # noqa: E731
    xa, xb = (torch.randn(12, generator=g, dtype=torch.float64) for _ in range(2))
    assert not torch.allclose(torch.func.jacrev(f2)(xa), torch.func.jacrev(f2)(xb), atol=1e-6)


def test_unshared_weights_and_fixed_step():
    m = make("gd-cnn-denoise-unshared")
    assert len(m.regularizers) == 5 and m.step_rho.shape == (5,)
    fixed = make("gd-mlp-denoise", learn_step=False, step=0.3)
    assert "step_rho" not in dict(fixed.named_parameters())
    assert fixed.step_size(0).item() == pytest.approx(0.3)
    learned = make("gd-mlp-denoise")
    assert learned.step_size(0).item() == pytest.approx(0.5)  # 0.5 / ||I||^2
    assert isinstance(make("prox-cnn-seismic"), UnrolledProxGD) and isinstance(learned, UnrolledGD)


def test_config_round_trip_and_clone():
    m = make("gd-cnn-denoise-unshared")
    cfg = ModelConfig.from_dict(m.config())
    assert cfg == m.cfg and "jitter" not in m.config()  # the noise is the strategy's, not the model's
    legacy = {**m.config(), "jitter": {"sigma": [0.1] * 5, "mode": "relative"}}  # as older versions wrote it
    assert ModelConfig.from_dict(legacy) == m.cfg
    again = build_model(cfg, m.physics).double()
    again.load_state_dict(m.state_dict())
    _, y = sample(m)
    assert torch.equal(again.eval()(y), m.eval()(y))
    c = clone_model(m)
    assert torch.equal(c(y), m(y)) and c is not m


@pytest.mark.parametrize(
    "build, fragment",
    [
        (lambda: ModelConfig(n_iter=0), "n_iter"),
        (lambda: ModelConfig(arch="admm"), "arch"),
        (lambda: ModelConfig(step=-1.0), "step"),
        (lambda: ModelConfig(x0="random"), "x0"),
        (lambda: RegularizerConfig(activation="swish"), "activation"),
        (lambda: RegularizerConfig(kind="transformer"), "kind"),
        (lambda: RegularizerConfig(kernel_size=4), "kernel_size"),
        (lambda: RegularizerConfig(width=0), "width"),
        (lambda: JitterConfig(sigma=-0.1), "sigma"),
        (lambda: JitterConfig(sigma=[0.1, -1]), "sigma"),
        (lambda: JitterConfig(sigma=0.1, mode="uniform"), "mode"),
    ],
)
def test_bad_configs(build, fragment):
    with pytest.raises(ValueError, match=fragment):
        build()


def test_bad_inputs_name_the_argument():
    m = make("gd-mlp-denoise").eval()
    _, y = sample(m)
    with pytest.raises(ValueError, match="dtype"):
        m(y.float())
    with pytest.raises(ValueError, match="y has shape"):
        m(torch.zeros(2, 1, 17, dtype=torch.float64))
    with pytest.raises(ValueError, match="k=11"):
        m.tail(y, y, 11)
    with pytest.raises(ValueError, match="k=-1"):
        m.tail(y, y, -1)
    with pytest.raises(ValueError, match="x has shape"):
        m.tail(y[:2], y, 1)
    with pytest.raises(ValueError, match="device"):
        m(y.to("meta"))


def test_shifted_softplus_passes_through_zero_with_softplus_derivatives():
    """softplus(x) − log 2: 0 at 0, and its first and second derivatives are the closed forms of softplus's,
    sigmoid(x) and sigmoid(x)(1 − sigmoid(x)) (so its network's Hessians are a smooth softplus network's)."""
    from landscape.models import ACTIVATIONS, ShiftedSoftplus

    f = ACTIVATIONS["shifted-softplus"]()
    assert isinstance(f, ShiftedSoftplus) and float(f(torch.zeros(1, dtype=torch.float64))) == 0.0
    x = torch.linspace(-6, 6, 25, dtype=torch.float64)
    d1 = torch.func.vmap(torch.func.grad(lambda v: f(v)))(x)
    d2 = torch.func.vmap(torch.func.grad(torch.func.grad(lambda v: f(v))))(x)
    s = torch.sigmoid(x)
    torch.testing.assert_close(d1, s, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(d2, s * (1 - s), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(f(x), torch.nn.functional.softplus(x) - math.log(2.0))
