"""The second-order chain rule (landscape.curvature.chain): every H_k from one backward sweep equals
torch.func.hessian of L_k through its own tail, and analyze_iterates uses it, checks it and falls back."""

import pytest
import torch
from test_protocol import SOLVERS, _batch
from tiny_models import CASES, make_batch, make_model
from torch import nn

from landscape.curvature import analyze_iterates
from landscape.curvature.chain import ChainUnavailable, chain_hessians
from landscape.curvature.operators import iterate_loss_flat
from landscape.solver import as_solver


def _reference_blocks(view, y, x, traj, k):
    """(B, n, n): the per-sample blocks of torch.func.hessian of the summed loss through the tail."""
    f, x0, (B, n) = iterate_loss_flat(view, y, x, k, traj[k])
    H = torch.func.hessian(f)(x0)
    return torch.stack([H[b * n : (b + 1) * n, b * n : (b + 1) * n] for b in range(B)])


@pytest.mark.parametrize("name", sorted(CASES))
def test_chain_equals_the_hessian_through_each_tail(name):
    m = make_model(name)
    x, y = make_batch(m, b=3)
    view = as_solver(m).prepared(torch.float64)
    traj = view.iterates(y)
    H, rec = chain_hessians(view, y, x, traj, range(view.n_iter + 1))
    assert sorted(H) == list(range(view.n_iter + 1))
    assert rec["agreement"] < 1e-12
    for k in range(view.n_iter + 1):
        ref = _reference_blocks(view, y, x, traj, k)
        assert torch.allclose(H[k], ref, rtol=0, atol=1e-11 * float(ref.abs().max())), (name, k)


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_chain_on_foreign_solvers_and_a_subset_of_iterates(name):
    cls, shape = SOLVERS[name]
    solver = cls()
    x, y = _batch(shape, A=getattr(solver, "A", None))
    view = as_solver(solver).prepared(torch.float64)
    traj = view.iterates(y)
    H, rec = chain_hessians(view, y, x, traj, [1, view.n_iter - 1])
    assert sorted(H) == [1, view.n_iter - 1]
    n = view.flatten(traj[0])[0].shape[1]
    assert rec["products"] == (view.n_iter - 1 + 1) * n  # steps K-1..1 and the loss at K, n products each
    for k in H:
        ref = _reference_blocks(view, y, x, traj, k)
        assert torch.allclose(H[k], ref, rtol=0, atol=1e-11 * float(ref.abs().max())), (name, k)


def test_analysis_with_and_without_the_chain_agree_and_the_choice_is_recorded():
    m = make_model("cnn-per-iteration")
    x, y = make_batch(m, b=2)
    on = analyze_iterates(m, x_true=x, y=y, method="dense", top_k=3, density=True)
    off = analyze_iterates(m, x_true=x, y=y, method="dense", top_k=3, density=True, chain=False)
    assert on.info["dense_algorithm"]["algorithm"] == "chain"
    assert on.info["dense_algorithm"]["agreement"] < 1e-12
    assert off.info["dense_algorithm"]["algorithm"] == "per-iterate"
    for a, b in zip(on.samples, off.samples):
        for key, v in a.scalars().items():
            assert v == pytest.approx(b.scalars()[key], rel=1e-10, abs=1e-12), key
    # an explicitly chosen reverse-mode backend is honoured: no chain
    rev = analyze_iterates(m, x_true=x, y=y, method="dense", top_k=1, backend="double_backward")
    assert rev.info["dense_algorithm"]["algorithm"] == "per-iterate" and rev.backend == "double_backward"


class _NoForwardAD(torch.autograd.Function):
    """tanh with a backward only: torch.func transforms (jvp) cannot run through it."""

    @staticmethod
    def forward(ctx, x):
        out = torch.tanh(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g * (1 - out * out)


class ReverseOnlyGD(nn.Module):
    def __init__(self, K=3):
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(6, 6).double()
        self.n_iter = K

    def initial(self, y):
        return y

    def step(self, x, y, k):
        return x - 0.3 * ((x - y) + self.lin(_NoForwardAD.apply(x)))


def test_a_solver_without_forward_ad_falls_back_and_stays_exact():
    solver = ReverseOnlyGD()
    g = torch.Generator().manual_seed(0)
    x, y = (
        torch.randn(2, 6, generator=g, dtype=torch.float64),
        torch.randn(2, 6, generator=g, dtype=torch.float64),
    )
    res = analyze_iterates(solver, x_true=x, y=y, method="dense", top_k=2)
    rec = res.info["dense_algorithm"]
    assert rec["algorithm"] == "per-iterate" and "chain unavailable" in rec["reason"]
    view = as_solver(solver).prepared(torch.float64)
    traj = view.iterates(y)
    for k in range(solver.n_iter + 1):
        for b in range(2):
            f, x0, (B, n) = iterate_loss_flat(view, y[b : b + 1], x[b : b + 1], k, traj[k][b : b + 1])
            xx = x0.clone().requires_grad_(True)
            (gr,) = torch.autograd.grad(f(xx), xx, create_graph=True)
            H = torch.stack([torch.autograd.grad(gr[i], xx, retain_graph=True)[0] for i in range(n)])
            ev = torch.linalg.eigvalsh(0.5 * (H + H.T))
            assert res.at(k)[b].scalars()["lambda_max"] == pytest.approx(float(ev[-1]), rel=1e-10, abs=1e-12)


class _WrongForwardTanh(torch.autograd.Function):
    """tanh whose backward is right and whose forward-mode rule is 10 % off: only the check can tell."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x):
        return torch.tanh(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output)
        ctx.save_for_forward(output)

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return g * (1 - out * out)

    @staticmethod
    def jvp(ctx, t):
        (out,) = ctx.saved_tensors
        return 1.1 * t * (1 - out * out)


class WrongForwardGD(ReverseOnlyGD):
    def step(self, x, y, k):
        return x - 0.3 * ((x - y) + self.lin(_WrongForwardTanh.apply(x)))


def test_a_disagreeing_chain_is_rejected_and_the_analysis_stays_exact():
    solver = WrongForwardGD()
    g = torch.Generator().manual_seed(1)
    x, y = (
        torch.randn(2, 6, generator=g, dtype=torch.float64),
        torch.randn(2, 6, generator=g, dtype=torch.float64),
    )
    view = as_solver(solver).prepared(torch.float64)
    traj = view.iterates(y)
    with pytest.raises(ChainUnavailable, match="differs from double backward"):
        chain_hessians(view, y, x, traj, [0])
    res = analyze_iterates(solver, x_true=x, y=y, method="dense", top_k=1, iterates=[0])
    assert res.info["dense_algorithm"]["algorithm"] == "per-iterate"
    assert res.backend == "double_backward"  # jvp_grad disagrees too, per iterate
    f, x0, _ = iterate_loss_flat(view, y[:1], x[:1], 0, traj[0][:1])
    xx = x0.clone().requires_grad_(True)
    (gr,) = torch.autograd.grad(f(xx), xx, create_graph=True)
    H = torch.stack([torch.autograd.grad(gr[i], xx, retain_graph=True)[0] for i in range(6)])
    ev = torch.linalg.eigvalsh(0.5 * (H + H.T))
    assert res.at(0)[0].scalars()["lambda_max"] == pytest.approx(float(ev[-1]), rel=1e-10)


def test_a_state_whose_shape_changes_is_refused():
    class Growing:
        n_iter = 2

        def initial(self, y):
            return y

        def step(self, x, y, k):
            return torch.cat([x, x[:, :1]], dim=1) if k == 0 else x

    view = as_solver(Growing())
    y = torch.randn(1, 3, dtype=torch.float64)
    with pytest.raises(ChainUnavailable, match="one shape"):
        chain_hessians(view, y, torch.zeros(1, 4, dtype=torch.float64), view.iterates(y), [0])
