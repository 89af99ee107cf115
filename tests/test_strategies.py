"""Strategies: registry and configs, what each one perturbs, and that they leave evaluation clean."""

import pytest
import torch

from landscape.attacks import per_sample_norm
from landscape.jitter import JitterConfig
from landscape.models import ModelConfig, RegularizerConfig, build_model
from landscape.physics import Denoising, SingleCoilMRI
from landscape.strategies import (
    STRATEGIES,
    Adversarial,
    InputJitter,
    SGDJitter,
    SPGDJitter,
    Strategy,
    make_strategy,
    mse_loss,
    strategy_from_config,
)


def test_registry_names_and_round_trip():
    assert set(STRATEGIES) == {
        "mse",
        "input-jitter",
        "adversarial",
        "sgd-jitter",
        "spgd-jitter",
        "curvature-penalty",
    }
    for name in STRATEGIES:
        s = make_strategy(name)
        assert isinstance(s, Strategy)
        assert s.name == name
        assert strategy_from_config(s.to_dict()) == s


def test_options_and_errors():
    assert make_strategy("sgd-jitter", sigma=[0.1, 0.2, 0.0]).sigma == (0.1, 0.2, 0.0)
    adv = make_strategy("adversarial", eps=0.3, steps=4, relative=True)
    assert isinstance(adv, Adversarial) and adv.attack.eps == 0.3 and adv.attack.steps == 4
    with pytest.raises(ValueError, match="strategy"):
        make_strategy("dropout")
    with pytest.raises(ValueError, match="sigma"):
        make_strategy("sgd-jitter", sigma=-0.1)
    with pytest.raises(ValueError, match="sigma"):
        make_strategy("input-jitter", sigma=-1.0)
    with pytest.raises(ValueError, match="eps"):
        make_strategy("adversarial", eps=-1.0)
    with pytest.raises(ValueError, match="no option"):
        make_strategy("mse", sigma=0.1)


def test_configure_model_sets_the_arch_and_the_strategy_holds_the_noise():
    base = ModelConfig(signal_shape=(1, 16), n_iter=4)
    st = SGDJitter(sigma=0.2, mode="absolute")
    assert st.configure_model(base).arch == "gd" and st.jitter == st.noise == JitterConfig(0.2, "absolute")
    spgd = SPGDJitter(sigma=[0.1, 0.1, 0.0, 0.0])
    assert spgd.configure_model(base).arch == "prox" and spgd.noise.sigma == (0.1, 0.1, 0.0, 0.0)
    assert "jitter" not in spgd.configure_model(base).to_dict()  # the model config holds no noise
    for name in ("mse", "input-jitter", "adversarial", "curvature-penalty"):
        assert make_strategy(name).configure_model(base) == base and make_strategy(name).noise is None
    assert make_strategy("curvature-penalty").jitter == JitterConfig(0.1, "paper")  # the rule it mirrors
    with pytest.raises(ValueError, match="one per iteration"):
        SGDJitter(sigma=[0.1, 0.1]).configure_model(base)


class Spy(torch.nn.Module):
    """Records the measurement it is called with; output = A^T y."""

    def __init__(self, physics):
        super().__init__()
        self.physics = physics
        self.w = torch.nn.Parameter(torch.ones(()))
        self.seen = []

    def forward(self, y):
        self.seen.append(y.detach().clone())
        return self.w * self.physics.adjoint(y)


def test_input_jitter_adds_seeded_noise_of_std_sigma(gen):
    physics = Denoising(0.0)
    spy = Spy(physics)
    y = torch.zeros(64, 1, 100, dtype=torch.float64)
    InputJitter(sigma=0.3).train_step(spy, y, y, generator=torch.Generator().manual_seed(5))
    w = spy.seen[-1] - y
    assert w.std().item() == pytest.approx(0.3, rel=0.03)
    InputJitter(sigma=0.3).train_step(spy, y, y, generator=torch.Generator().manual_seed(5))
    assert torch.equal(spy.seen[-1] - y, w)


def test_input_jitter_on_mri_stays_on_sampled_lines(gen):
    physics = SingleCoilMRI((8, 8), acceleration=2).double()
    spy = Spy(physics)
    x = torch.randn(3, 2, 8, 8, dtype=torch.float64, generator=gen)
    y = physics.forward(x)
    InputJitter(sigma=0.5).train_step(spy, x, y, generator=gen)
    w = spy.seen[-1] - y
    assert w[..., ~physics.mask].abs().max() == 0 and w[..., physics.mask].abs().max() > 0


def test_adversarial_step_trains_on_attacked_measurements(gen):
    physics = Denoising(0.1)
    cfg = ModelConfig(signal_shape=(1, 24), n_iter=3, regularizer=RegularizerConfig(width=8, depth=2))
    torch.manual_seed(0)
    model = build_model(cfg, physics).double()
    x = torch.randn(5, 1, 24, dtype=torch.float64, generator=gen)
    y = physics.measure(x, generator=gen)
    strat = Adversarial(attack={"eps": 0.5, "steps": 3, "step_size": 0.5})
    spy_inputs = []
    handle = model.register_forward_pre_hook(lambda m, a: spy_inputs.append(a[0].detach().clone()))
    loss = strat.train_step(model, x, y, generator=gen)
    handle.remove()
    last = spy_inputs[-1] - y  # the training forward pass sees y + delta
    assert torch.allclose(per_sample_norm(last), torch.full((5,), 0.5, dtype=torch.float64), rtol=1e-9)
    with torch.no_grad():
        clean = torch.nn.functional.mse_loss(model(y), x)
    assert loss.item() > clean.item()
    assert all(p.grad is None for p in model.parameters())  # the attack did not touch parameter grads
    loss.backward()
    assert model.step_rho.grad is not None


def test_sgd_jitter_jitters_its_training_step_only(gen):
    physics = Denoising(0.1)
    st = SGDJitter(sigma=0.5)
    model = build_model(st.configure_model(ModelConfig(signal_shape=(1, 16), n_iter=3)), physics).double()
    model.set_generator(torch.Generator().manual_seed(0))
    x = torch.randn(2, 1, 16, dtype=torch.float64, generator=gen)
    y = physics.measure(x, generator=gen)
    model.train()
    a, b = st.train_step(model, x, y), st.train_step(model, x, y)
    assert float(a) != float(b) and float(a) != float(mse_loss(model(y), x))  # fresh noise in every step
    assert torch.equal(model(y), model(y))  # the model itself runs clean, in training mode too
    model.eval()
    assert torch.equal(model(y), model(y))
