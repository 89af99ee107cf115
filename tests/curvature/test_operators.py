"""Dense tier: every HVP backend against torch.func.hessian (float64, rtol 1e-10)."""

import math

import numpy as np
import pytest
import torch
from tiny_models import CASES, K, make_batch, make_model
from torch.func import functional_call, hessian, jacrev

from landscape.curvature.backends import BACKENDS, make_hvp, select_backend
from landscape.curvature.operators import (
    dense_matrix,
    make_iterate_hvp,
    make_param_hvp,
    make_regularizer_hvp,
    make_regularizer_jacobian,
    regularizer_input,
    residual_weight,
    select_params,
)

RTOL = 1e-10


def reference_iterate_hessian(model, y, x_true, k):
    """Dense H_k from the model's own forward trajectory and tail (independent of the operator code)."""
    m = model.eval()
    with torch.no_grad():
        xk = m(y, return_iterates=True).iterates[k]
    shape = xk.shape

    def loss(z):
        return (m.tail(z.view(shape), y, k) - x_true).pow(2).sum()

    return hessian(loss)(xk.reshape(-1).detach()).detach(), xk


def close(a, b, rtol=RTOL):
    return float((a - b).norm()) <= rtol * max(float(b.norm()), 1e-300)


ITERATE_CASES = [
    (c, k) for c in ("mlp-shared", "cnn-shared", "cnn-per-iteration") for k in (0, K // 2, K)
] + [
    ("prox-cnn-seismic", 1),
    ("cnn-group-mri", K // 2),
]


@pytest.mark.parametrize("case,k", ITERATE_CASES)
def test_iterate_hvp_every_backend_matches_dense_hessian(case, k):
    model = make_model(case)
    x, y = make_batch(model, b=1)
    H, _ = reference_iterate_hessian(model, y, x, k)
    v = torch.randn(H.shape[0], generator=torch.Generator().manual_seed(k), dtype=torch.float64)
    V = torch.randn(3, H.shape[0], generator=torch.Generator().manual_seed(k + 1), dtype=torch.float64)
    for backend in BACKENDS:
        if backend == "linearize" and CASES[case][1]["regularizer"].norm == "group":
            continue  # torch.func.linearize cannot replay GroupNorm graphs: see the test below
        op = make_iterate_hvp(model, y, x, k, backend=backend)
        assert op.backend == backend and op.dim == H.shape[0] and op.dtype == torch.float64
        assert close(op.matvec(v), H @ v), backend
        assert close(op.matmat(V), V @ H), backend  # batched (vmap) form
        assert np.allclose(op.matvec(v.numpy()), (H @ v).numpy(), rtol=RTOL, atol=RTOL * float(H.norm()))


def test_linearize_is_reported_unsupported_with_groupnorm_and_auto_skips_it():
    model = make_model("cnn-group-mri", n_iter=1).eval()
    x, y = make_batch(model, b=1)
    x0 = model(y, return_iterates=True).iterates[0].reshape(-1).detach()

    def f(z):
        return (model.tail(z.view(x.shape), y, 0) - x).pow(2).sum()

    with pytest.raises(ValueError, match="'linearize' is not supported"):
        make_hvp(f, x0, "linearize")


def test_select_backend_records_failures_and_skips_them():
    A = torch.tensor([[2.0, 1.0], [1.0, 3.0]], dtype=torch.float64)

    def f(z):  # a function that refuses torch.func transforms (as some custom ops do)
        if torch._C._functorch.is_functorch_wrapped_tensor(z):
            raise RuntimeError("this op has no functorch rule")
        return z @ A @ z / 2

    choice = select_backend(
        f,
        torch.zeros(2, dtype=torch.float64),
        candidates=("double_backward", "vjp_grad"),
        budget_s=10.0,
        block_size=2,
    )
    assert "error" in choice.timings["vjp_grad"] and choice.backend == "double_backward"
    with pytest.raises(ValueError, match="candidates"):
        select_backend(f, torch.zeros(2, dtype=torch.float64), candidates=("nope",))
    with pytest.raises(ValueError, match="block_size"):
        select_backend(lambda z: z @ A @ z, torch.zeros(2, dtype=torch.float64), batched=True, block_size=0)


def test_auto_backend_is_recorded_with_timings():
    model = make_model("cnn-shared")
    x, y = make_batch(model, b=1)
    op = make_iterate_hvp(model, y, x, 1, backend="auto", budget_s=60.0)
    d = op.to_dict()
    assert d["backend"] in BACKENDS and d["backend_choice"]["backend"] == d["backend"]
    timed = [n for n, t in d["backend_choice"]["timings"].items() if "single" in t]
    assert set(timed) == set(BACKENDS)  # every backend is right on this model, and the budget lets all run
    assert all(d["backend_choice"]["timings"][n]["single"] > 0 for n in timed)
    assert all(d["backend_choice"]["timings"][n]["agreement"] <= 1e-8 for n in timed)
    best = min(timed, key=lambda n: d["backend_choice"]["timings"][n]["score"])
    assert best == d["backend"]
    assert op.hvp is op.choice.hvp  # the winning build is reused, not built twice


def test_sample_vectorised_operator_is_block_diagonal():
    model = make_model("cnn-per-iteration")
    x, y = make_batch(model, b=3)
    op = make_iterate_hvp(model, y, x, 1, backend="jvp_grad")
    n = op.sample_dim
    assert op.batch == 3 and op.dim == 3 * n
    V = torch.randn(3, n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    HV = op.matvec(V)
    for b in range(3):
        H, _ = reference_iterate_hessian(model, y[b : b + 1], x[b : b + 1], 1)
        assert close(HV[b], H @ V[b])


def test_linear_operator_and_dense_matrix():
    model = make_model("mlp-shared")
    x, y = make_batch(model, b=1)
    H, _ = reference_iterate_hessian(model, y, x, 0)
    op = make_iterate_hvp(model, y, x, 0, backend="double_backward")
    L = op.as_linear_operator()
    assert L.shape == (op.dim, op.dim)
    v = np.random.default_rng(0).standard_normal(op.dim)
    assert np.allclose(L @ v, H.numpy() @ v, rtol=1e-10, atol=1e-12)
    assert np.allclose(L.matmat(np.eye(op.dim)[:, :3]), H.numpy()[:, :3], rtol=1e-10, atol=1e-12)
    assert close(dense_matrix(op), H)


def test_model_is_not_changed():
    model = make_model("cnn-shared").float().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = make_batch(model.double(), b=1)
    model.float().train()
    make_iterate_hvp(model, y, x, 0, backend="jvp_grad").matvec(torch.ones(12, dtype=torch.float64))
    assert model.training and model.step_rho.dtype == torch.float32 and model.step_rho.requires_grad
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def flat_param_loss(model, y, x_true, names):
    """Reference parameter loss through model.forward (not through the operator's tail wrapper)."""
    params = dict(model.named_parameters())
    shapes = [params[n].shape for n in names]
    sizes = [math.prod(s) for s in shapes]
    theta = torch.cat([params[n].detach().reshape(-1) for n in names])

    def loss(th):
        p = {n: q.detach() for n, q in params.items()}
        p.update({n: t.view(s) for n, t, s in zip(names, th.split(sizes), shapes)})
        out = functional_call(model, p, (y,))
        return (out - x_true).pow(2).sum() / y.shape[0]

    return loss, theta


@pytest.mark.parametrize(
    "name,include,backends",
    [
        ("cnn-shared", None, BACKENDS),
        ("cnn-per-iteration", None, BACKENDS),
        ("cnn-per-iteration", (r"regularizers\.1\.", "step_rho"), ("vjp_grad",)),
    ],
)
def test_param_hvp_every_backend_matches_dense_hessian(name, include, backends):
    model = make_model(name).eval()
    x, y = make_batch(model, b=2)
    names = select_params(model, include)
    loss, theta = flat_param_loss(model, y, x, names)
    H = hessian(loss)(theta).detach()
    v = torch.randn(theta.numel(), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    for backend in backends:
        op = make_param_hvp(model, y, x, 0, include=include, backend=backend)
        assert op.info["params"] == names and op.dim == theta.numel()
        assert close(op.matvec(v), H @ v), backend


def test_param_hvp_at_middle_iterate_holds_x_k_fixed():
    model = make_model("cnn-per-iteration").eval()
    x, y = make_batch(model, b=1)
    k = K // 2
    with torch.no_grad():
        xk = model(y, return_iterates=True).iterates[k]
    names = [n for n, _ in model.named_parameters()]
    params = dict(model.named_parameters())
    shapes = [params[n].shape for n in names]
    theta = torch.cat([params[n].detach().reshape(-1) for n in names])

    def loss(th):
        p = {n: t.view(s) for n, t, s in zip(names, th.split([math.prod(s) for s in shapes]), shapes)}
        with torch.nn.utils.stateless._reparametrize_module(model, p):
            return (model.tail(xk, y, k) - x).pow(2).sum()

    H = hessian(loss)(theta).detach()
    op = make_param_hvp(model, y, x, k, backend="vjp_grad")
    v = torch.randn(theta.numel(), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert close(op.matvec(v), H @ v)
    # the steps and weights of iterations before k do not enter: their rows are zero
    unused, used, start = [], [], 0
    for n, p in model.named_parameters():
        idx = torch.arange(start, start + p.numel())
        start += p.numel()
        if n == "step_rho":
            unused.append(idx[:k]), used.append(idx[k:])
        elif int(n.split(".")[1]) < k:
            unused.append(idx)
        else:
            used.append(idx)
    assert float(H[torch.cat(unused)].abs().max()) == 0.0
    assert float(H[torch.cat(used)].abs().max()) > 0.0


@pytest.mark.parametrize("name", ["mlp-shared", "cnn-group-mri"])
def test_regularizer_jacobian_products(name):
    model = make_model(name).eval()
    x, y = make_batch(model, b=1)
    k = 1
    with torch.no_grad():
        xk = model(y, return_iterates=True).iterates[k]
    point = regularizer_input(model, xk, y, k)
    J = jacrev(lambda z: model.regularizer(k)(z.view(point.shape)).reshape(-1))(point.reshape(-1)).detach()
    jac = make_regularizer_jacobian(model, point, k)
    g = torch.Generator().manual_seed(1)
    v = torch.randn(J.shape[1], generator=g, dtype=torch.float64)
    u = torch.randn(J.shape[0], generator=g, dtype=torch.float64)
    assert close(jac.jvp(v).reshape(-1), J @ v)
    assert close(jac.vjp(u).reshape(-1), J.T @ u)
    est = jac.frobenius_sq(200, seed=0)
    truth = float(J.pow(2).sum())
    assert abs(est.estimate - truth) <= 3 * est.stderr, (est.estimate, truth, est.stderr)
    assert est.n_matvecs == 200


def test_regularizer_input_hessian_and_residual_weight():
    model = make_model("cnn-shared").eval()
    x, y = make_batch(model, b=1)
    with torch.no_grad():
        it = model(y, return_iterates=True).iterates
    # residual weight at K-1 is the output residual 2 (x_K - x*)
    assert close(residual_weight(model, y, x, K - 1), 2 * (it[K] - x))
    k = 1
    u = residual_weight(model, y, x, k)
    H = hessian(lambda z: (u * model.regularizer(k)(z.view(it[k].shape))).sum())(it[k].reshape(-1)).detach()
    v = torch.randn(H.shape[0], generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    for backend in BACKENDS:
        op = make_regularizer_hvp(model, it[k], u, k, backend=backend)
        assert close(op.matvec(v), H @ v), backend
    with pytest.raises(ValueError, match=r"k=4: expected an iterate index 0..3"):
        residual_weight(model, y, x, K)


def test_bad_inputs_raise_value_error():
    model = make_model("cnn-shared")
    x, y = make_batch(model, b=2)
    with pytest.raises(ValueError, match="iterate index"):
        make_iterate_hvp(model, y, x, K + 1, backend="jvp_grad")
    with pytest.raises(ValueError, match="samples"):
        make_iterate_hvp(model, y, x[:1], 0, backend="jvp_grad")
    with pytest.raises(ValueError, match="backend"):
        make_hvp(lambda z: z.sum(), torch.zeros(3), "nope")
    with pytest.raises(ValueError, match="no parameter"):
        select_params(model, "does-not-exist")
