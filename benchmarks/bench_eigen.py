"""Matvecs and wall time to the top-5 eigenpairs at 1e-3: Lanczos vs deflated power iteration (and eigsh).

On the iterate Hessian H_0 of the toy and seismic models (``bench_hvp.build_case``, float64, the
auto-selected HVP backend), every method is asked for the top 5 eigenvalues at relative tolerance
1e-3; the reference is Lanczos at 1e-10.  Power iteration is run with the residual criterion
(``||Hv - λv|| ≤ tol |λ|``, comparable with Lanczos's) and with PyHessian's relative-change rule; it finds
the largest *magnitude* eigenvalues, so its error is measured against those (H_k can be indefinite).

    python benchmarks/bench_eigen.py [--models toy seismic] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_hvp import RESULTS, build_case  # noqa: E402

from landscape.curvature.eigen import eigsh, lanczos, power_iteration  # noqa: E402
from landscape.curvature.operators import make_iterate_hvp  # noqa: E402


def run_case(name: str, k: int, tol: float, max_matvecs: int) -> dict:
    model, x, y = build_case(name)
    op = make_iterate_hvp(model, y, x, k, backend="auto", budget_s=1.0)
    ref = lanczos(op.matvec, op.dim, 5, tol=1e-10, max_matvecs=op.dim)
    ref_lm = lanczos(op.matvec, op.dim, 5, which="LM", tol=1e-10, max_matvecs=op.dim)  # power's target
    rows = {}
    methods = {
        "lanczos": lambda: lanczos(op.matvec, op.dim, 5, tol=tol, max_matvecs=max_matvecs, seed=0),
        "eigsh": lambda: eigsh(op.matvec, op.dim, 5, tol=tol, max_matvecs=max_matvecs, seed=0),
        "power[residual]": lambda: power_iteration(
            op.matvec, op.dim, 5, tol=tol, max_matvecs=max_matvecs, seed=0
        ),
        "power[change]": lambda: power_iteration(
            op.matvec, op.dim, 5, tol=tol, criterion="change", max_matvecs=max_matvecs, seed=0
        ),
    }
    for mname, fn in methods.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            r = fn()
        target = ref_lm.values if r.which == "LM" else ref.values
        vals = r.values[np.argsort(-np.abs(r.values))] if r.which == "LM" else np.sort(r.values)[::-1]
        n = min(len(vals), 5)
        err = float(np.max(np.abs(vals[:n] - target[:n]) / np.abs(target[:n]))) if n else float("nan")
        rows[mname] = {
            "which": r.which,
            "n_matvecs": r.n_matvecs,
            "wall_s": r.wall_time,
            "converged": r.converged,
            "max_rel_error_vs_ref": err,
            "values": r.values.tolist(),
        }
    return {
        "model": name,
        "k": k,
        "dim": op.dim,
        "backend": op.backend,
        "tol": tol,
        "reference_top5": ref.values.tolist(),
        "reference_top5_magnitude": ref_lm.values.tolist(),
        "methods": rows,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["toy", "seismic"])
    p.add_argument("--k", type=int, default=0, help="iterate index")
    p.add_argument("--tol", type=float, default=1e-3)
    p.add_argument("--max-matvecs", type=int, default=3000)
    p.add_argument("--out", default=str(RESULTS / "bench_eigen.json"))
    args = p.parse_args(argv)
    out = [run_case(m, args.k, args.tol, args.max_matvecs) for m in args.models]
    print(f"{'model':8} {'method':16} {'matvecs':>8} {'wall s':>8} {'conv':>5} {'max rel err':>12}")
    for r in out:
        for mname, m in r["methods"].items():
            print(
                f"{r['model']:8} {mname:16} {m['n_matvecs']:>8} {m['wall_s']:>8.3f} {str(m['converged']):>5} "
                f"{m['max_rel_error_vs_ref']:>12.2e}"
            )
        print(
            f"{'':8} reference top-5: {np.round(r['reference_top5'], 6).tolist()}; by magnitude "
            f"(power's target): {np.round(r['reference_top5_magnitude'], 6).tolist()} (backend {r['backend']})"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps(
            {
                "benchmark": "top5_eigen",
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "rows": out,
            },
            indent=2,
        )
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
