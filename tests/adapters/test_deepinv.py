"""The deepinv adapter against deepinv itself: the iterates reproduce ``model(y, physics)``, and the
Hessian of L_k(x_k) through the adapter equals the one through deepinv's own fixed-point loop.

Skipped where deepinv is not installed (CI); see docs/DEEPINV.md for the install recipe.
"""

import json
import warnings

import pytest
import torch
from torch import nn

dinv = pytest.importorskip("deepinv")

from landscape.adapters.deepinv import DeepinvSolver, from_deepinv  # noqa: E402
from landscape.solver import as_solver  # noqa: E402

K = 4
SHAPE = (1, 1, 8, 8)


class TinyDenoiser(nn.Module):
    """A smooth (tanh) residual CNN, so the Hessians have a genuine second-order part."""

    def __init__(self, seed: int):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.c1 = nn.Conv2d(1, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 1, 3, padding=1)
        for p in self.parameters():
            p.data = 0.4 * torch.randn(p.shape, generator=g)

    def forward(self, x, sigma=None):
        return x - 0.3 * self.c2(torch.tanh(self.c1(x)))


def _model(iteration: str, *, seed: int = 0, **kwargs):
    params = {"stepsize": [0.9, 0.8, 0.7, 0.6], "g_param": 0.1}
    if iteration == "FISTA":
        params["a"] = 3
    prior = dinv.optim.RED(TinyDenoiser(seed)) if iteration == "GD" else dinv.optim.PnP(TinyDenoiser(seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if (
            iteration == "PGD-plain"
        ):  # a non-unfolded BaseOptim: priors in a plain list, params set at forward
            return dinv.optim.optim_builder(
                "PGD",
                params_algo=params,
                data_fidelity=dinv.optim.data_fidelity.L2(),
                prior=prior,
                max_iter=K,
                **kwargs,
            )
        if iteration == "DEQ":
            return dinv.unfolded.DEQ_builder(
                "PGD",
                params_algo={"stepsize": 0.9, "g_param": 0.1},
                data_fidelity=dinv.optim.data_fidelity.L2(),
                prior=prior,
                max_iter=K,
                **kwargs,
            )
        return dinv.unfolded.unfolded_builder(
            iteration,
            params_algo=params,
            data_fidelity=dinv.optim.data_fidelity.L2(),
            prior=prior,
            max_iter=K,
            trainable_params=["stepsize", "g_param"],
            **kwargs,
        )


def _inpainting():
    return dinv.physics.Inpainting(SHAPE[1:], mask=0.7, rng=torch.Generator().manual_seed(1))


def _blur():
    filt = torch.tensor([[0.05, 0.1, 0.05], [0.1, 0.4, 0.1], [0.05, 0.1, 0.05]]).reshape(1, 1, 3, 3)
    return dinv.physics.Blur(filter=filt, padding="circular")


def _data(physics, seed: int = 2):
    g = torch.Generator().manual_seed(seed)
    x_true = torch.rand(SHAPE, generator=g, dtype=torch.float64)
    y = physics.A(x_true) + 0.05 * torch.randn(SHAPE, generator=g, dtype=torch.float64)
    return x_true, y


@pytest.mark.parametrize("iteration", ["PGD", "FISTA", "HQS", "ADMM", "DRS", "GD", "DEQ", "PGD-plain"])
def test_iterates_reproduce_the_model_forward(iteration):
    view = from_deepinv(_model(iteration), _inpainting()).prepared()  # float64, eval, frozen copy
    model, physics = view.solver.model, view.solver.physics
    x_true, y = _data(physics)
    with torch.no_grad():
        ref = model(y, physics)
    out = view.output(y)
    assert out.dtype == torch.float64 and out.shape == ref.shape
    assert {p.dtype for p in view.solver.parameters()} == {torch.float64}
    assert (out - ref).abs().max().item() <= 1e-10
    assert view.n_iter == (K + 1 if iteration == "DEQ" else K)
    n_state = {"FISTA": 2, "ADMM": 2, "DRS": 2}.get(iteration, 1)
    state = view.iterates(y)[2]
    assert (isinstance(state, tuple) and len(state) == n_state) or (n_state == 1 and torch.is_tensor(state))


def _deepinv_tail_loss(model, physics, y, x_true, k, n_state):
    """L_k through deepinv's own ``FixedPoint`` loop: K - k iterations started at X = {"est": x_k}, with
    the iteration-dependent terms shifted by k, then ``get_output`` — no adapter code involved."""
    fp = model.fixed_point
    tail = type(fp)(
        iterator=fp.iterator,
        update_params_fn=lambda it: model.update_params_fn(it + k),
        update_data_fidelity_fn=lambda it: model.update_data_fidelity_fn(it + k),
        update_prior_fn=lambda it: model.update_prior_fn(it + k),
        init_iterate_fn=model.init_iterate_fn,
        max_iter=K - k,
        early_stop=False,
    )

    def loss(flat):
        parts = flat.reshape(n_state, *SHAPE)
        est = tuple(parts) if n_state > 1 else (parts[0], torch.zeros_like(parts[0]))  # PGD ignores est[1]
        X, _ = tail(y, physics, init={"est": est, "it": k})
        return (model.get_output(X) - x_true).pow(2).sum()

    return loss


@pytest.mark.parametrize("iteration", ["PGD", "FISTA"])
def test_iterate_hessian_matches_deepinv_loop(iteration):
    view = from_deepinv(_model(iteration, seed=3), _blur()).prepared()
    model, physics = view.solver.model, view.solver.physics
    x_true, y = _data(physics, seed=4)
    iterates = view.iterates(y)
    n_state = view.solver.n_state
    worst_abs = worst_eig = 0.0
    for k in (0, 2, K - 1):
        flat, unflatten = view.flatten(iterates[k])
        assert flat.shape == (1, n_state * 64)

        def ours(f, k=k, unflatten=unflatten):
            return view.loss(unflatten(f.unsqueeze(0)), y, x_true, k).sum()

        h_ours = torch.func.hessian(ours)(flat[0])
        h_ref = torch.func.hessian(_deepinv_tail_loss(model, physics, y, x_true, k, n_state))(flat[0])
        scale = h_ref.abs().max().item()
        assert scale > 1e-3  # a real curvature, not an empty graph
        assert torch.allclose(h_ours, h_ours.T, atol=1e-12 * scale)
        worst_abs = max(worst_abs, (h_ours - h_ref).abs().max().item() / scale)
        ev_ours, ev_ref = torch.linalg.eigvalsh(h_ours), torch.linalg.eigvalsh(h_ref)
        worst_eig = max(worst_eig, ((ev_ours - ev_ref).abs().max() / ev_ref.abs().max()).item())
        if k < K - 1:
            # the tanh denoiser makes H_k more than Gauss-Newton: it is not 2 J^T J, so it has curvature
            # of its own (it differs from the first-order part).
            jac = torch.func.jacrev(
                lambda f, k=k, unflatten=unflatten: view.readout(
                    view.tail(unflatten(f.unsqueeze(0)), y, k)
                ).flatten()
            )(flat[0])
            assert (h_ours - 2 * jac.T @ jac).abs().max().item() > 1e-6 * scale
    assert worst_abs <= 1e-10, worst_abs
    assert worst_eig <= 1e-10, worst_eig


def test_prepared_copy_casts_and_rebinds_and_leaves_the_model_alone():
    model = _model("PGD")
    solver = DeepinvSolver(model, _blur())
    view = as_solver(solver).prepared()
    copy = view.solver.model
    assert copy is not model
    assert all(p.dtype == torch.float64 and not p.requires_grad for p in view.solver.parameters())
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert copy.fixed_point.update_params_fn.__self__ is copy  # deep copy rebinds deepinv's bound methods
    assert view.solver.physics.filter.dtype == torch.float64
    desc = view.describe()
    json.dumps(desc)
    assert desc["config"]["iterator"] == "PGDIteration" and desc["config"]["n_state"] == 1


@pytest.mark.parametrize(
    "kwargs, match",
    [({"early_stop": True}, "stops early"), ({"anderson_acceleration": True}, "Anderson")],
)
def test_rejects_data_dependent_loops(kwargs, match):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = _model("PGD", **kwargs)
    with pytest.raises(ValueError, match=match):
        DeepinvSolver(model, _blur())


def test_rejects_what_is_not_a_deepinv_optimizer():
    with pytest.raises(ValueError, match="BaseOptim"):
        DeepinvSolver(nn.Linear(2, 2), _blur())


def _hvp_and_difference(view, k, *, seed=6, eps=1e-5):
    """(H v by double backward, H v by a central difference of gradients) at iterate k."""
    x_true, y = _data(view.solver.physics, seed=4)
    flat, unflatten = view.flatten(view.iterates(y)[k])
    v = torch.randn(flat.shape, generator=torch.Generator().manual_seed(seed), dtype=flat.dtype)

    def grad(z, create_graph=False):
        z = z.detach().requires_grad_()
        (g,) = torch.autograd.grad(view.loss(unflatten(z), y, x_true, k).sum(), z, create_graph=create_graph)
        return z, g

    z, g = grad(flat, create_graph=True)
    (hv,) = torch.autograd.grad(g, z, v)
    fd = (grad(flat + eps * v)[1] - grad(flat - eps * v)[1]) / (2 * eps)
    return hv, fd


def test_a_cg_prox_with_implicit_backward_warns_and_is_wrong_and_the_fix_is_right():
    physics = _blur()  # no closed-form prox_l2: deepinv solves it by conjugate gradient
    with pytest.warns(UserWarning, match="implicit_backward_solver"):
        view = from_deepinv(_model("HQS", seed=3), physics).prepared()
    hv, fd = _hvp_and_difference(view, 1)
    assert (hv - fd).norm() > 0.5 * fd.norm()  # the second-order part is lost: why it warns

    physics = _blur()
    physics.implicit_backward_solver, physics.tol = False, 1e-12
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        view = from_deepinv(_model("HQS", seed=3), physics).prepared()
    hv, fd = _hvp_and_difference(view, 1)
    assert (hv - fd).norm() <= 1e-6 * fd.norm()
