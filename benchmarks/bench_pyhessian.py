"""Parameter-Hessian top eigenvalue and trace: ours vs PyHessian 0.1, same model and batch, one run.

Shim: the unrolled model wrapped so that ``forward(y)`` returns x_K, criterion
``sum((x_K - x*)**2) / B`` — exactly the loss ``make_param_hvp`` differentiates.  Reference values:
our Lanczos at tol 1e-10 (top eigenvalue) and Hutch++ at 0.4 % relative standard error (trace).
PyHessian runs with its defaults (power iteration, relative-change tol 1e-3; Hutchinson with its
"two consecutive means agree within 1e-3" stop) and, for the trace, with 1000 probes and no early stop.

    python benchmarks/bench_pyhessian.py [--model toy] [--batch 8] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_hvp import RESULTS, build_case  # noqa: E402

from landscape.curvature.eigen import lanczos  # noqa: E402
from landscape.curvature.operators import make_param_hvp  # noqa: E402
from landscape.curvature.trace import hutchpp  # noqa: E402
from landscape.models import clone_model  # noqa: E402


class _Net(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, y):
        return self.model(y)


def _criterion(out, target):
    return (out - target).pow(2).sum() / out.shape[0]


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="toy")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--n-iter", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(RESULTS / "bench_pyhessian.json"))
    args = p.parse_args(argv)
    try:
        from pyhessian import hessian as PyHessian
    except ImportError:
        print("pyhessian is not installed: pip install pyhessian==0.1", file=sys.stderr)
        return 1
    model, x, y = build_case(args.model, batch=args.batch, n_iter=args.n_iter)
    # ours
    op, t_build = timed(lambda: make_param_hvp(model, y, x, 0, backend="auto", budget_s=1.0))
    ours_eig, t_eig = timed(lambda: lanczos(op.matvec, op.dim, 1, tol=1e-6, seed=args.seed))
    ours_tr, t_tr = timed(
        lambda: hutchpp(op.matvec, op.dim, matmat=op.matmat, rtol=1e-2, max_matvecs=2000, seed=args.seed)
    )
    print(f"ours: eig {t_eig:.1f} s, trace {t_tr:.1f} s ({ours_tr.n_matvecs} matvecs)", file=sys.stderr)
    ref_eig = lanczos(op.matvec, op.dim, 1, tol=1e-10, max_matvecs=400, seed=args.seed + 1)
    ref_tr = hutchpp(
        op.matvec, op.dim, matmat=op.matmat, rtol=4e-3, max_matvecs=4000, sketch=64, seed=args.seed + 1
    )
    print(f"reference: trace {ref_tr.n_matvecs} matvecs", file=sys.stderr)
    # PyHessian (its vectors come from the global generator)
    torch.manual_seed(args.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peer, t_pbuild = timed(
            lambda: PyHessian(
                _Net(clone_model(model).requires_grad_(True)), _criterion, data=(y, x), cuda=False
            )
        )
        (p_eig, _), t_peig = timed(lambda: peer.eigenvalues(maxIter=100, tol=1e-3, top_n=1))
        p_tr_default, t_ptr = timed(lambda: peer.trace(maxIter=100, tol=1e-3))
        p_tr_long, t_ptr_long = timed(lambda: peer.trace(maxIter=1000, tol=0.0))
    p_tr_default, p_tr_long = np.asarray(p_tr_default), np.asarray(p_tr_long)

    def se(a):
        return float(a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else float("nan")

    lam = float(ref_eig.values[0])
    tr = ref_tr.estimate
    rec = {
        "benchmark": "param_hessian_vs_pyhessian",
        "model": args.model,
        "batch": args.batch,
        "K": args.n_iter,
        "n_params": op.dim,
        "dtype": "float64",
        "backend": op.backend,
        "torch": torch.__version__,
        "reference": {
            "lambda_max": lam,
            "lambda_residual": float(ref_eig.residuals[0]),
            "trace": tr,
            "trace_stderr": ref_tr.stderr,
        },
        "ours": {
            "build_s": t_build,
            "lambda_max": float(ours_eig.values[0]),
            "eig_matvecs": ours_eig.n_matvecs,
            "eig_s": t_eig,
            "eig_rel_error": abs(float(ours_eig.values[0]) - lam) / abs(lam),
            "trace": ours_tr.estimate,
            "trace_stderr": ours_tr.stderr,
            "trace_matvecs": ours_tr.n_matvecs,
            "trace_s": t_tr,
        },
        "pyhessian": {
            "build_s": t_pbuild,
            "lambda_max": float(p_eig[0]),
            "eig_s": t_peig,
            "eig_rel_error": abs(float(p_eig[0]) - lam) / abs(lam),
            "trace_default": float(p_tr_default.mean()),
            "trace_default_probes": len(p_tr_default),
            "trace_default_stderr": se(p_tr_default),
            "trace_default_s": t_ptr,
            "trace_default_rel_error": abs(float(p_tr_default.mean()) - tr) / abs(tr),
            "trace_1000": float(p_tr_long.mean()),
            "trace_1000_stderr": se(p_tr_long),
            "trace_1000_s": t_ptr_long,
        },
    }
    o, q = rec["ours"], rec["pyhessian"]
    print(f"{args.model} model, batch {args.batch}, {op.dim} parameters, float64, our backend {op.backend}")
    print(f"reference: lambda_max {lam:.8g}, trace {tr:.6g} ± {ref_tr.stderr:.2g}")
    print(
        f"{'':12} {'lambda_max':>14} {'rel err':>9} {'s':>7}   {'trace':>12} {'± se':>9} {'probes':>7} {'s':>7}"
    )
    print(
        f"{'ours':12} {o['lambda_max']:>14.8g} {o['eig_rel_error']:>9.1e} {o['eig_s']:>7.2f}   "
        f"{o['trace']:>12.6g} {o['trace_stderr']:>9.2g} {o['trace_matvecs']:>7} {o['trace_s']:>7.2f}"
    )
    print(
        f"{'pyhessian':12} {q['lambda_max']:>14.8g} {q['eig_rel_error']:>9.1e} {q['eig_s']:>7.2f}   "
        f"{q['trace_default']:>12.6g} {q['trace_default_stderr']:>9.2g} {q['trace_default_probes']:>7} "
        f"{q['trace_default_s']:>7.2f}"
    )
    print(
        f"{'pyh 1000':12} {'':>14} {'':>9} {'':>7}   {q['trace_1000']:>12.6g} {q['trace_1000_stderr']:>9.2g} "
        f"{1000:>7} {q['trace_1000_s']:>7.2f}"
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rec, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
