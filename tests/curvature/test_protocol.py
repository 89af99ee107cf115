"""The solver protocol: foreign solvers (written here, subclassing nothing from landscape) are analysed
through analyze_iterates and match a dense torch.func.hessian reference at every iterate."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from landscape.curvature import analyze_iterates
from landscape.curvature.backends import select_backend
from landscape.solver import FunctionSolver, as_solver

N = 10


class OwnRegularizerGD(nn.Module):
    """Plain unrolled GD on a random matrix with its own tanh MLP regularizer (per-iteration weights)."""

    def __init__(self, K=4, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.A = nn.Parameter(torch.randn(8, N, generator=g, dtype=torch.float64) / 3, requires_grad=False)
        self.nets = nn.ModuleList(
            nn.Sequential(nn.Linear(N, 12), nn.Tanh(), nn.Linear(12, N)) for _ in range(K)
        )
        self.n_iter = K
        self.double()

    def initial(self, y):
        return y @ self.A

    def step(self, x, y, k):
        return x - 0.3 * ((x @ self.A.T - y) @ self.A + self.nets[k](x))


class MomentumWithReadout(nn.Module):
    """Heavy-ball iterations with a tuple state (x, v) and a readout that is not the state itself."""

    def __init__(self, K=3, seed=1):
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Linear(N, 16), nn.Softplus(), nn.Linear(16, N)).double()
        self.out = nn.Linear(N, N).double()
        self.n_iter = K

    def initial(self, y):
        return (y.clone(), torch.zeros_like(y))

    def step(self, state, y, k):
        x, v = state
        v = 0.5 * v - 0.2 * (x - y + self.net(x))
        return (x + v, v)

    def readout(self, state):
        return self.out(state[0])


class CircularConvGD(nn.Module):
    """A regularizer with circular padding: torch.func.linearize gets its products wrong."""

    def __init__(self, K=3, seed=2):
        super().__init__()
        torch.manual_seed(seed)
        self.conv1 = nn.Conv1d(1, 4, 3, padding=1, padding_mode="circular")
        self.conv2 = nn.Conv1d(4, 1, 3, padding=1, padding_mode="circular")
        self.n_iter = K
        self.double()

    def initial(self, y):
        return y

    def step(self, x, y, k):
        return x - 0.4 * ((x - y) + self.conv2(torch.nn.functional.gelu(self.conv1(x))))


def _batch(shape, b=2, seed=0, A=None):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, *shape, generator=g, dtype=torch.float64)
    clean = x if A is None else x @ A.detach().T
    return x, clean + 0.3 * torch.randn(clean.shape, generator=g, dtype=torch.float64)


def _dense_reference(solver, x, y, k, b):
    """torch.func.hessian of the loss written out by hand from the solver's own members."""
    yb, xb = y[b : b + 1], x[b : b + 1]
    with torch.no_grad():
        s = solver.initial(yb)
        for j in range(k):
            s = solver.step(s, yb, j)
    is_tuple = isinstance(s, tuple)
    parts = s if is_tuple else (s,)
    sizes = [p[0].numel() for p in parts]
    flat0 = torch.cat([p.reshape(-1) for p in parts])

    def loss(flat):
        pieces = [f.reshape(p.shape) for f, p in zip(flat.split(sizes), parts)]
        st = tuple(pieces) if is_tuple else pieces[0]
        for j in range(k, solver.n_iter):
            st = solver.step(st, yb, j)
        out = solver.readout(st) if hasattr(solver, "readout") else st
        return ((out - xb) ** 2).sum()

    H = torch.func.hessian(loss)(flat0)
    return torch.linalg.eigvalsh(0.5 * (H + H.T)).detach().numpy()


SOLVERS = {
    "own-regularizer": (OwnRegularizerGD, (N,)),
    "tuple-state-readout": (MomentumWithReadout, (N,)),
    "circular-padding": (CircularConvGD, (1, N)),
}


@pytest.mark.parametrize("name", sorted(SOLVERS))
@pytest.mark.parametrize("method", ["dense", "estimate"])
def test_foreign_solver_matches_dense_reference_at_every_iterate(name, method):
    cls, shape = SOLVERS[name]
    solver = cls()
    assert not isinstance(solver, tuple(c for c in (as_solver(solver).__class__,)))  # a plain module
    x, y = _batch(shape, A=getattr(solver, "A", None))
    res = analyze_iterates(
        solver,
        x_true=x,
        y=y,
        iterates="all",
        top_k=2,
        bottom_k=1,
        trace=True,
        method=method,
        eig_tol=1e-10,
        trace_max_matvecs=400,
        seed=3,
    )
    assert res.method == method and res.converged
    for k in range(solver.n_iter + 1):
        for b in range(2):
            ev = _dense_reference(solver, x, y, k, b)
            s = res.at(k)[b].scalars()
            scale = max(abs(ev).max(), 1.0)
            assert abs(s["lambda_max"] - ev[-1]) <= 1e-8 * scale, (k, b)
            assert abs(s["lambda_2"] - ev[-2]) <= 1e-8 * scale, (k, b)
            assert abs(s["lambda_min"] - ev[0]) <= 1e-8 * scale, (k, b)
            # Hutch++ with a sketch as large as the dimension is exact
            assert abs(s["trace"] - ev.sum()) <= 1e-8 * scale * len(ev), (k, b)


def test_tuple_state_curvature_is_over_the_whole_state():
    solver = MomentumWithReadout()
    x, y = _batch((N,), b=1)
    res = analyze_iterates(solver, x_true=x, y=y, iterates=[1], top_k=1, bottom_k=0, trace=False)
    assert res.dim == 2 * N


def test_auto_never_picks_a_backend_that_disagrees_with_double_backward():
    solver = CircularConvGD(K=1)
    x, y = _batch((1, N), b=1)
    view = as_solver(solver).prepared()
    from landscape.curvature.operators import iterate_loss_flat

    f, x0, _ = iterate_loss_flat(view, y, x, 0, view.iterates(y)[0])
    choice = select_backend(
        f,
        x0,
        candidates=("double_backward", "linearize"),
        budget_s=60.0,
        batched=True,
        block_size=4,
        total_products=10**7,
        generator=torch.Generator().manual_seed(0),
    )
    lin = choice.timings["linearize"]
    assert "error" in lin and "disagrees with double_backward" in lin["error"], lin
    assert choice.backend != "linearize"
    for name, t in choice.timings.items():
        if "score" in t:
            assert t["agreement"] <= 1e-8, name


def test_backend_selection_is_made_once_and_keeps_to_its_budget():
    solver = OwnRegularizerGD()
    x, y = _batch((N,), b=4, A=solver.A)
    res = analyze_iterates(
        solver,
        x_true=x,
        y=y,
        iterates="all",
        method="estimate",
        top_k=3,
        bottom_k=1,
        trace=True,
        trace_rtol=0.001,
    )
    c = res.backend_choice
    assert c is not None and c.backend == res.backend
    # selection keeps to its own budget (at most backend_budget_s, and a tenth of the analysis as estimated from
    # the reference product), overrunning by at most one candidate's build; the measured share of selection in
    # whole analyses is a benchmark figure (benchmarks/bench_analyze.py), not a timed unit test
    from landscape.curvature.backends import WARMUP_S

    assert c.budget_s <= res.settings.backend_budget_s
    assert c.selection_time <= c.budget_s + WARMUP_S, (c.selection_time, c.budget_s)


def test_function_solver_and_custom_loss():
    A = torch.tensor([[1.0, 0.3, 0.0], [0.0, 1.0, 0.2], [0.1, 0.0, 1.0]], dtype=torch.float64)
    s = FunctionSolver(lambda x, y, k: x - 0.25 * (x @ A.T - y) @ A, n_iter=3, initial=lambda y: y @ A)
    x = torch.zeros(1, 3, dtype=torch.float64)
    y = torch.ones(1, 3, dtype=torch.float64)
    W = torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))

    def weighted(x_hat, x_true, y_):
        return (((x_hat - x_true) @ W) ** 2).sum(1)

    res = analyze_iterates(s, x_true=x, y=y, iterates=[1], top_k=3, bottom_k=0, trace=True, loss=weighted)
    M = torch.eye(3, dtype=torch.float64) - 0.25 * A.T @ A
    J = M @ M  # x_K = J x_1 + c  (row vectors: x_K = x_1 J^T + c)
    H = 2 * J.T @ W @ W.T @ J
    ev = torch.linalg.eigvalsh(H).numpy()[::-1]
    np.testing.assert_allclose(res.at(1)[0].top.values, ev, rtol=1e-10)
    assert res.at(1)[0].trace.estimate == pytest.approx(float(ev.sum()), rel=1e-12)
    assert res.solver["loss"] == "custom"


def test_one_batch_or_two_gives_identical_numbers():
    solver = OwnRegularizerGD()
    x, y = _batch((N,), b=8, seed=5, A=solver.A)
    kw = dict(
        iterates=[0, 2, 4],
        top_k=2,
        bottom_k=1,
        trace=True,
        method="estimate",
        trace_rtol=0.05,
        backend="double_backward",
        seed=11,
    )
    whole = analyze_iterates(solver, x_true=x, y=y, **kw)
    a = analyze_iterates(solver, x_true=x[:3], y=y[:3], sample_ids=range(0, 3), **kw)
    b = analyze_iterates(solver, x_true=x[3:], y=y[3:], sample_ids=range(3, 8), **kw)
    merged = type(whole).merge([a, b])
    for s, t in zip(whole.samples, merged.samples):
        assert (s.k, s.sample) == (t.k, t.sample)
        for name, v in s.scalars().items():
            assert t.scalars()[name] == pytest.approx(v, rel=1e-12, abs=1e-12), (name, s.k, s.sample)
        assert s.trace.n_matvecs == t.trace.n_matvecs
    assert whole.summary(2)["trace"].mean == pytest.approx(merged.summary(2)["trace"].mean, rel=1e-12)


def test_dense_chunks_agree_with_one_sample_at_a_time():
    """Dense Hessians are formed for a chunk of samples at once; splitting the batch changes only rounding."""
    solver = OwnRegularizerGD()
    x, y = _batch((N,), b=6, seed=7, A=solver.A)
    kw = dict(iterates="all", top_k=3, bottom_k=1, method="dense", backend="jvp_grad", seed=2)
    whole = analyze_iterates(solver, x_true=x, y=y, **kw)
    parts = [
        analyze_iterates(solver, x_true=x[i : i + 1], y=y[i : i + 1], sample_ids=[i], **kw) for i in range(6)
    ]
    merged = type(whole).merge(parts)
    for s, t in zip(whole.samples, merged.samples):
        assert (s.k, s.sample) == (t.k, t.sample)
        for name, v in s.scalars().items():
            assert t.scalars()[name] == pytest.approx(v, rel=1e-12, abs=1e-12), (name, s.k, s.sample)


def test_result_round_trips_through_json():
    import json

    solver = MomentumWithReadout()
    x, y = _batch((N,), b=2)
    res = analyze_iterates(
        solver,
        x_true=x,
        y=y,
        iterates=[0, 3],
        top_k=2,
        bottom_k=1,
        density=True,
        method="estimate",
        trace_rtol=0.05,
        density_runs=2,
        density_steps=6,
    )
    text = json.dumps(res.to_dict(), allow_nan=False)
    back = type(res).from_dict(json.loads(text))
    assert back.iterates == res.iterates and back.method == res.method and back.settings == res.settings
    for name in ("lambda_max", "lambda_min", "trace"):
        for a, b in zip(res.series(name), back.series(name)):
            np.testing.assert_array_equal(a, b)
    assert back.at(3)[1].density.integral == pytest.approx(res.at(3)[1].density.integral)
    assert back.table() == res.table()


def test_not_a_solver_gets_a_clear_error():
    with pytest.raises(ValueError, match="is not a solver: it has no 'n_iter'"):
        analyze_iterates(object(), x_true=torch.zeros(1, 2), y=torch.zeros(1, 2))
    with pytest.raises(TypeError):
        analyze_iterates(OwnRegularizerGD(), torch.zeros(1, N), torch.zeros(1, 8))  # tensors are keyword-only


def test_auto_is_dense_when_the_estimators_would_spend_more_products():
    solver = OwnRegularizerGD()
    x, y = _batch((N,), b=1, A=solver.A)
    res = analyze_iterates(solver, x_true=x, y=y, iterates=[0], top_k=1, bottom_k=1, trace=True)
    assert res.method == "dense" and res.n_matvecs == N
    assert math.isclose(res.at(0)[0].trace.stderr, 0.0)
