"""Peer tier: the parameter Hessian agrees with PyHessian 0.1 on the same model and batch.

PyHessian is a test-only oracle (never imported by the package).  Shim: our unrolled model wrapped in an
``nn.Module`` whose ``forward(y)`` returns x_K, criterion ``sum((x_K - x*)**2) / B`` — the batch loss
``make_param_hvp`` differentiates (per-sample sum over entries, mean over samples).
"""

import math

import numpy as np
import pytest
import torch
from tiny_models import make_batch, make_model

from landscape.curvature.eigen import top_eigenpairs
from landscape.curvature.operators import dense_matrix, make_param_hvp
from landscape.curvature.trace import estimate_trace
from landscape.models import clone_model

pyhessian = pytest.importorskip(
    "pyhessian", reason="pyhessian==0.1 not installed (pip install pyhessian==0.1)"
)


class _Net(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, y):
        return self.model(y)


def _criterion(out, target):
    return (out - target).pow(2).sum() / out.shape[0]


@pytest.fixture(scope="module")
def problem():
    model = make_model("cnn-shared").eval()
    x, y = make_batch(model, b=4, seed=1)
    op = make_param_hvp(model, y, x, 0, backend="double_backward")
    dense = dense_matrix(op)
    torch.manual_seed(0)  # PyHessian draws its vectors from the global generator
    try:
        peer = pyhessian.hessian(_Net(clone_model(model)), _criterion, data=(y, x), cuda=False)
    except Exception as exc:  # pragma: no cover - depends on the installed torch
        pytest.skip(f"pyhessian 0.1 cannot run on torch {torch.__version__}: {exc}")
    return model, op, dense, peer


def test_top_eigenvalue_agrees_with_pyhessian(problem):
    _, op, dense, peer = problem
    truth = float(torch.linalg.eigvalsh(dense)[-1])
    ours = top_eigenpairs(op, 1, tol=1e-8)
    assert ours.converged and abs(ours.values[0] - truth) <= 1e-8 * truth
    torch.manual_seed(0)
    theirs, _ = peer.eigenvalues(maxIter=100, tol=1e-3, top_n=1)
    # PyHessian stops when lambda changes by < tol between iterations: agreement to about its tol
    assert abs(theirs[0] - ours.values[0]) <= 2e-3 * ours.values[0]


def test_trace_agrees_with_pyhessian(problem):
    _, op, dense, peer = problem
    truth = float(torch.trace(dense))
    ours = estimate_trace(op, method="hutchpp", rtol=1e-3, max_matvecs=3000, seed=0)
    assert abs(ours.estimate - truth) <= 3 * ours.stderr
    torch.manual_seed(0)
    samples = np.asarray(peer.trace(maxIter=1000, tol=0.0))  # tol=0: no early stop, 1000 probes
    mean, se = samples.mean(), samples.std(ddof=1) / math.sqrt(len(samples))
    assert len(samples) == 1000
    assert abs(mean - ours.estimate) <= 3 * math.hypot(se, ours.stderr), (mean, se, ours.estimate)
