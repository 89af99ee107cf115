"""The small-noise expansion of theory/jitter_expansion.md, checked by Monte Carlo.

E_w[J] = L_0 + sum_j (eta_j^2 s_j^2 / 2) tr Hess L_{j+1}(x_{j+1}) + O(sigma^4), exact for an affine model.
"""

import math

import torch

from landscape.jitter import JitterConfig
from landscape.models import ModelConfig, RegularizerConfig, build_model
from landscape.physics import Deconvolution


def _setup(activation, sigma):
    physics = Deconvolution(wavelet_length=7, wavelet_width=1.5, noise_sigma=0.05)
    cfg = ModelConfig(
        signal_shape=(1, 10),
        n_iter=4,
        regularizer=RegularizerConfig(
            kind="cnn", activation=activation, width=6, depth=2, kernel_size=3, out_scale=1.0
        ),
    )
    torch.manual_seed(0)
    model = build_model(cfg, physics).double()
    g = torch.Generator().manual_seed(1)
    x_true = torch.randn(1, 1, 10, generator=g, dtype=torch.float64)
    y = physics.measure(x_true, generator=g)
    return model, x_true, y


def _prediction(model, x_true, y, sigma):
    model.eval()
    traj = model(y, return_iterates=True)
    clean = float((traj.output - x_true).pow(2).sum().detach())
    penalty = 0.0
    for j in range(model.n_iter):
        k = j + 1

        def loss(x, k=k):
            return (model.tail(x.reshape(1, 1, 10), y, k) - x_true).pow(2).sum()

        h = torch.func.hessian(loss)(traj.iterates[k].reshape(-1).detach())
        penalty += float(model.step_size(j).detach()) ** 2 * sigma**2 / 2 * float(torch.trace(h))
    return clean, penalty


def _monte_carlo(model, x_true, y, sigma, n=40000):
    model.train().set_generator(torch.Generator().manual_seed(2))
    with torch.no_grad():
        out = model(y.expand(n, -1, -1).contiguous(), jitter=JitterConfig(sigma=sigma, mode="absolute"))
    losses = (out - x_true).pow(2).sum(dim=(1, 2))
    return float(losses.mean()), float(losses.std()) / math.sqrt(n)


def test_expansion_is_exact_for_the_affine_model():
    sigma = 3.0  # eta ~ 0.01 for this wavelet, so eta*sigma ~ 0.03
    model, x_true, y = _setup("identity", sigma)
    clean, penalty = _prediction(model, x_true, y, sigma)
    mean, se = _monte_carlo(model, x_true, y, sigma)
    assert penalty > 0.05 * clean  # the penalty is not negligible here, so the test has teeth
    assert abs(mean - (clean + penalty)) < 4 * se
    assert abs(mean - clean) > 10 * se  # and the clean loss alone is rejected


def test_expansion_matches_monte_carlo_for_a_smooth_model():
    model, x_true, y = _setup("tanh", 0.0)
    errs = []
    for sigma in (4.0, 2.0):
        clean, penalty = _prediction(model, x_true, y, sigma)
        mean, se = _monte_carlo(model, x_true, y, sigma, n=200000)
        errs.append((abs(mean - clean - penalty), se, penalty))
    for err, se, penalty in errs:  # the second-order prediction holds to a few per cent of the penalty
        assert err < max(0.05 * penalty, 4 * se)
        assert penalty > 50 * se  # and the penalty itself is resolved by the Monte Carlo
