"""PGD and random perturbations: the ε ball is respected exactly, the loss goes up, MRI stays on sampled lines."""

import pytest
import torch

from landscape.attacks import PGDConfig, per_sample_norm, pgd_attack, random_perturbation
from landscape.models import ModelConfig, RegularizerConfig, build_model
from landscape.physics import Denoising, SingleCoilMRI


def small_model(physics, shape, seed=0):
    torch.manual_seed(seed)
    cfg = ModelConfig(
        signal_shape=shape,
        n_iter=3,
        regularizer=RegularizerConfig(kind="cnn", width=8, depth=2, out_scale=1.0),
    )
    return build_model(cfg, physics).double().eval()


def loss(fn, y, x):
    with torch.no_grad():
        return (fn(y) - x).pow(2).flatten(1).sum(1)


@pytest.mark.parametrize("relative", [False, True])
def test_pgd_respects_eps_and_raises_loss(relative, gen):
    physics = Denoising(0.1)
    model = small_model(physics, (1, 32))
    x = torch.randn(6, 1, 32, generator=gen, dtype=torch.float64)
    y = physics.measure(x, generator=gen)
    eps = 0.2 if relative else 0.7
    cfg = PGDConfig(eps=eps, steps=10, step_size=0.25, relative=relative)
    delta = pgd_attack(model, y, x, cfg, project=physics.project_measurement)
    radius = eps * per_sample_norm(y) if relative else torch.full((6,), eps, dtype=torch.float64)
    norms = per_sample_norm(delta)
    assert (norms <= radius * (1 + 1e-12)).all()
    assert torch.allclose(norms, radius, rtol=1e-9)  # normalised steps reach the sphere
    clean, attacked = loss(model, y, x), loss(model, y + delta, x)
    assert (attacked > clean).all()
    rand = random_perturbation(y, eps, relative=relative, generator=gen)
    assert (attacked > loss(model, y + rand, x)).all()
    assert all(p.grad is None for p in model.parameters())  # only delta was differentiated


def test_pgd_finds_the_top_singular_direction_of_a_linear_map(gen):
    # reconstruct(y) = W y with x = W y: the loss is ||W delta||^2, whose maximum on the ball is eps^2 s_max^2
    w = torch.randn(10, 10, generator=gen, dtype=torch.float64)
    x_y = torch.randn(3, 10, generator=gen, dtype=torch.float64)

    def fn(y):
        return y @ w.T

    x = fn(x_y)
    cfg = PGDConfig(eps=0.5, steps=60, step_size=0.5, random_start=True)
    delta = pgd_attack(fn, x_y, x, cfg, generator=torch.Generator().manual_seed(0))
    smax = torch.linalg.matrix_norm(w, ord=2)
    got = loss(fn, x_y + delta, x)
    assert torch.allclose(got, (0.5 * smax) ** 2 * torch.ones(3, dtype=torch.float64), rtol=1e-3)


def test_zero_eps_and_zero_steps_leave_y_alone(gen):
    physics = Denoising(0.1)
    model = small_model(physics, (1, 16))
    x = torch.randn(2, 1, 16, generator=gen, dtype=torch.float64)
    y = physics.measure(x, generator=gen)
    assert pgd_attack(model, y, x, PGDConfig(eps=0.0, steps=3)).abs().max() == 0
    assert pgd_attack(model, y, x, PGDConfig(eps=1.0, steps=0)).abs().max() == 0


def test_mri_attack_and_random_perturbation_stay_on_sampled_lines(gen):
    physics = SingleCoilMRI((12, 12), acceleration=3, noise_sigma=0.01).double()
    model = small_model(physics, (2, 12, 12))
    x = torch.randn(2, 2, 12, 12, generator=gen, dtype=torch.float64)
    y = physics.measure(x, generator=gen)
    delta = pgd_attack(
        model, y, x, PGDConfig(eps=0.3, steps=5, step_size=0.5), project=physics.project_measurement
    )
    unsampled = ~physics.mask
    assert delta[..., unsampled].abs().max() == 0
    assert torch.allclose(per_sample_norm(delta), torch.full((2,), 0.3, dtype=torch.float64), rtol=1e-9)
    rand = random_perturbation(y, 0.3, project=physics.project_measurement, generator=gen)
    assert rand[..., unsampled].abs().max() == 0
    assert torch.allclose(per_sample_norm(rand), torch.full((2,), 0.3, dtype=torch.float64), rtol=1e-12)


def test_random_perturbation_is_seeded_and_relative(gen):
    y = torch.randn(4, 1, 20, dtype=torch.float64, generator=gen)
    a = random_perturbation(y, 0.1, relative=True, generator=torch.Generator().manual_seed(3))
    b = random_perturbation(y, 0.1, relative=True, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert torch.allclose(per_sample_norm(a), 0.1 * per_sample_norm(y), rtol=1e-12)


@pytest.mark.parametrize("bad", [dict(eps=-1.0), dict(eps=float("nan")), dict(steps=-1), dict(step_size=0.0)])
def test_bad_config_is_a_value_error(bad):
    with pytest.raises(ValueError):
        PGDConfig(**bad)
