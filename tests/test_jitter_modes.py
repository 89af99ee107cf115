"""Jitter modes: 'paper' is the official update exactly; 'relative' still loads; strategy flags are typed."""

import pytest
import torch

from landscape.cli import main
from landscape.jitter import JitterConfig, canonical_mode
from landscape.models import ModelConfig, RegularizerConfig, build_model
from landscape.physics import Deconvolution, Denoising
from landscape.strategies import make_strategy, strategy_from_config, trained_noise

PAPER = JitterConfig(sigma=0.1, mode="paper")


def _model(arch="gd", physics=None, shape=(1, 12), K=4):
    physics = physics or Deconvolution(wavelet_length=5, wavelet_width=1.0, noise_sigma=0.05)
    cfg = ModelConfig(
        arch=arch,
        signal_shape=shape,
        n_iter=K,
        regularizer=RegularizerConfig(kind="cnn", width=6, depth=2, kernel_size=3, out_scale=1.0),
    )
    torch.manual_seed(0)
    return build_model(cfg, physics).double()


def _batch(model, b=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, *model.cfg.signal_shape, generator=g, dtype=torch.float64)
    return x, model.physics.measure(x, generator=g)


def _official(model, y, sigma, gen):
    """The paper's code, transcribed: g = x - eta A^T(Ax - y); n = max(g) sigma randn_like(g); x = g - eta(R(x) + n)."""
    A, At = model.physics.forward, model.physics.adjoint
    x = At(y)
    for k in range(model.n_iter):
        eta = model.step_size(k)
        g = x - eta * At(A(x) - y)
        n = torch.max(g) * sigma * torch.randn(g.shape, generator=gen, dtype=g.dtype)
        x = g - eta * (model.regularizer(k)(x) + n)
    return x


def test_paper_mode_is_the_official_update():
    model = _model().train()
    _, y = _batch(model)
    out = model.set_generator(torch.Generator().manual_seed(11))(y, jitter=PAPER)
    ref = _official(model, y, 0.1, torch.Generator().manual_seed(11))
    assert torch.equal(out, ref)
    assert not torch.allclose(out, model.eval()(y))  # and it did jitter


def test_paper_scale_is_one_signed_max_over_the_batch_and_not_detached():
    model = _model()
    x, y = _batch(model)
    x0 = model.initial(y)
    s = model.noise_scale(x0, y, 0, jitter=PAPER)
    g = x0 - model.step_size(0) * model.data_gradient(x0, y)
    assert s.dim() == 0 and torch.equal(s, 0.1 * g.max())  # signed max of g, not of |g|, one scalar
    assert s.requires_grad  # gradients flow through the scale (the official code does not detach)
    per = model.noise_scale(x0, y, 0, jitter=PAPER, per_sample=True)
    assert per.shape == (5, 1, 1) and torch.allclose(per.flatten(), 0.1 * g.flatten(1).amax(1))
    # the training gradient differs from the one with the scale detached
    model.train()

    def grad_of(detach):
        model.zero_grad()
        gen = torch.Generator().manual_seed(3)
        xk = model.initial(y)
        for k in range(model.n_iter):
            eta = model.step_size(k)
            gk = xk - eta * model.data_gradient(xk, y)
            scale = torch.max(gk) * 0.1
            scale = scale.detach() if detach else scale
            xk = gk - eta * (
                model.regularizer(k)(xk) + scale * torch.randn(gk.shape, generator=gen, dtype=gk.dtype)
            )
        (xk - x).pow(2).mean().backward()
        return model.step_rho.grad.clone()

    model.set_generator(torch.Generator().manual_seed(3))
    model.zero_grad()
    (model(y, jitter=PAPER) - x).pow(2).mean().backward()
    ours = model.step_rho.grad.clone()
    assert torch.allclose(ours, grad_of(False), rtol=1e-12) and not torch.allclose(
        ours, grad_of(True), rtol=1e-6
    )


def test_paper_mode_in_the_proximal_model():
    model = _model(arch="prox").train()
    _, y = _batch(model)
    out = model.set_generator(torch.Generator().manual_seed(5))(y, jitter=PAPER)
    A, At, gen = model.physics.forward, model.physics.adjoint, torch.Generator().manual_seed(5)
    x = At(y)
    for k in range(model.n_iter):
        eta = model.step_size(k)
        g = x - eta * At(A(x) - y)
        n = torch.max(g) * 0.1 * torch.randn(g.shape, generator=gen, dtype=g.dtype)
        z = g - eta * n
        x = z - model.regularizer(k)(z)
    assert torch.equal(out, x)


def test_jittered_with_given_draws_matches_training_forward():
    for mode in ("paper", "absolute", "normalized", "per-sample-step", "paper-clean-path"):
        model, jc = _model(physics=Denoising(0.1)).train(), JitterConfig(0.1, mode)
        _, y = _batch(model)
        out = model.set_generator(torch.Generator().manual_seed(2))(y, jitter=jc)
        gen = torch.Generator().manual_seed(2)
        eps = [torch.randn(y.shape, generator=gen, dtype=y.dtype) for _ in range(model.n_iter)]
        assert torch.allclose(model.eval().jittered(y, eps, jitter=jc), out, atol=1e-13)


def test_relative_is_a_deprecated_alias_that_still_loads():
    assert canonical_mode("relative") == "per-sample-step"
    assert JitterConfig(0.1, "relative").mode == "per-sample-step"
    old = {"name": "sgd-jitter", "sigma": 0.1, "mode": "relative"}  # as written by older checkpoints
    assert strategy_from_config(old).mode == "per-sample-step"
    cfg = ModelConfig.from_dict(
        {**ModelConfig(signal_shape=(1, 8)).to_dict(), "jitter": {"sigma": 0.1, "mode": "relative"}}
    )
    assert cfg == ModelConfig(signal_shape=(1, 8))  # an old model config's jitter is left out: the strategy's
    assert make_strategy("sgd-jitter").mode == "paper"
    with pytest.raises(ValueError, match="jitter mode"):
        JitterConfig(0.1, "max")


@pytest.mark.parametrize(
    "strategy, flag",
    [
        ("mse", ["--sigma", "0.1"]),
        ("sgd-jitter", ["--eps", "0.1"]),
        ("input-jitter", ["--jitter-mode", "paper"]),
        ("mse", ["--attack-steps", "3"]),
        ("sgd-jitter", ["--eps-absolute"]),
    ],
)
def test_cli_refuses_options_the_strategy_does_not_have(tmp_path, capsys, strategy, flag):
    out = tmp_path / "run"
    code = main(["train", "--strategy", strategy, *flag, "--epochs", "0", "--quiet", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert flag[0] in err[0] and strategy in err[0]
    assert not (out / "checkpoint.pt").exists()


def test_a_checkpoint_written_with_relative_still_loads_with_the_same_rule(tmp_path):
    from landscape.checkpoint import load_checkpoint

    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--task",
                "denoise",
                "--train-size",
                "16",
                "--batch-size",
                "8",
                "--epochs",
                "1",
                "-K",
                "2",
                "--strategy",
                "sgd-jitter",
                "--jitter-mode",
                "per-sample-step",
                "--quiet",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    path = out / "checkpoint.pt"
    payload = torch.load(path, weights_only=False)
    payload["config"]["strategy"]["mode"] = "relative"  # what older versions wrote, the jitter stored thrice
    payload["config"]["model"]["jitter"] = {"sigma": 0.1, "mode": "relative"}
    payload["model_config"]["jitter"] = {"sigma": 0.1, "mode": "relative"}
    torch.save(payload, path)
    ck = load_checkpoint(out)
    assert trained_noise(ck.saved_config) == ck.config.strategy.noise == JitterConfig(0.1, "per-sample-step")
    assert "jitter" not in ck.model.config()
    # an old model config whose jitter disagrees with the strategy's is refused in one line
    payload["model_config"]["jitter"] = {"sigma": 0.3, "mode": "paper"}
    torch.save(payload, path)
    with pytest.raises(ValueError, match="disagrees with the strategy") as err:
        load_checkpoint(out)
    assert "\n" not in str(err.value)
    for where in (payload["model_config"], payload["config"]["model"]):  # sigma 0: a clean network, accepted
        where["jitter"] = {"sigma": 0.0, "mode": "normalized"}
    torch.save(payload, path)
    assert "jitter" not in load_checkpoint(out).model.config()


def test_clean_path_rule_takes_its_scale_from_the_unjittered_trajectory():
    model = _model().train()
    _, y = _batch(model)
    out = model.set_generator(torch.Generator().manual_seed(4))(
        y, jitter=JitterConfig(0.1, "paper-clean-path")
    )
    gen = torch.Generator().manual_seed(4)
    A, At = model.physics.forward, model.physics.adjoint
    x, xc = At(y), At(y)
    for k in range(model.n_iter):
        eta = model.step_size(k)
        gc = xc - eta * At(A(xc) - y)  # the clean trajectory's post-data-step iterate
        n = torch.max(gc) * 0.1 * torch.randn(x.shape, generator=gen, dtype=x.dtype)
        g = x - eta * At(A(x) - y)
        x = g - eta * (model.regularizer(k)(x) + n)
        xc = gc - eta * model.regularizer(k)(xc)
    assert torch.allclose(out, x, rtol=0, atol=1e-12)
