"""The curvature flags shared by ``landscape hessian`` and ``landscape analyze``: one name per idea, and
the defaults of :class:`~landscape.curvature.analysis.CurvatureSettings` (the Python API's), never a
second copy."""

from __future__ import annotations

import argparse
from typing import Any

from landscape.commands.args import float_pos, int_min
from landscape.curvature.settings import BACKENDS, CurvatureSettings

__all__ = ["add_curvature_arguments", "curvature_settings"]


def add_curvature_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``--method --top-k --bottom-k --no-trace --diagonal --density --eig-* --trace-* --density-* --backend
    --no-chain --dtype --seed --dense-max`` with the shared defaults."""
    d = CurvatureSettings()
    g = p.add_argument_group("curvature (the defaults of landscape.curvature.CurvatureSettings)")
    _add_quantity_flags(g, d)
    _add_estimator_flags(g, d)
    _add_computation_flags(g, d)


def _add_quantity_flags(g: argparse._ArgumentGroup, d: CurvatureSettings) -> None:
    """What is computed at each iterate (eigenvalues, trace, diagonal, density), dense or estimated."""
    g.add_argument(
        "--method",
        choices=("auto", "dense", "estimate"),
        default=d.method,
        help="dense exact Hessians, estimators (Lanczos, Hutch++, SLQ), or auto: dense whenever it "
        f"costs no more products than the estimators (default {d.method})",
    )
    g.add_argument(
        "--top-k",
        type=int_min(0),
        default=d.top_k,
        metavar="N",
        help=f"largest eigenvalues per iterate, at most the dimension (default {d.top_k}; 0 = none: no "
        "lambda_max in the table or the record, for a trace-only run)",
    )
    g.add_argument(
        "--bottom-k",
        type=int_min(0),
        default=d.bottom_k,
        metavar="N",
        help=f"smallest eigenvalues per iterate, lambda_min first, at most the dimension (default {d.bottom_k}; "
        "0 = none)",
    )
    g.add_argument(
        "--no-trace",
        dest="trace",
        action="store_false",
        default=d.trace,
        help="skip tr(H_k) (computed by default: exact when dense, Hutch++ otherwise)",
    )
    g.add_argument(
        "--diagonal",
        action="store_true",
        default=d.diagonal,
        help="diag(H_k), one value per coordinate of x_k (the report draws it as a map): exact when "
        "dense, else the mean of v*Hv over Rademacher probes with each coordinate's standard error, "
        "with --trace-rtol (on the mean standard error) and --trace-max-matvecs; adds dim numbers "
        "per iterate and sample to the JSON",
    )
    g.add_argument(
        "--density",
        action="store_true",
        default=d.density,
        help="spectral density at every analysed iterate (exact when dense, SLQ otherwise)",
    )


def _add_estimator_flags(g: argparse._ArgumentGroup, d: CurvatureSettings) -> None:
    """The estimators' settings: the eigensolver and its tolerance, the trace's budget, SLQ's runs and steps."""
    g.add_argument("--eig-method", choices=("lanczos", "eigsh", "power"), default=d.eig_method)
    g.add_argument(
        "--eig-tol",
        type=float_pos,
        default=d.eig_tol,
        metavar="TOL",
        help=f"relative residual tolerance of the eigenpairs (default {d.eig_tol:g})",
    )
    g.add_argument(
        "--trace-rtol",
        type=float_pos,
        default=d.trace_rtol,
        metavar="R",
        help=f"stop the trace estimate at this relative standard error (default {d.trace_rtol:g})",
    )
    g.add_argument(
        "--trace-max-matvecs",
        type=int_min(1),
        default=d.trace_max_matvecs,
        metavar="M",
        help=f"budget of the trace estimate (default {d.trace_max_matvecs})",
    )
    g.add_argument("--density-runs", type=int_min(1), default=d.density_runs, metavar="R")
    g.add_argument("--density-steps", type=int_min(1), default=d.density_steps, metavar="M")


def _add_computation_flags(g: argparse._ArgumentGroup, d: CurvatureSettings) -> None:
    """How the Hessians are formed: the dense limit, the product backend, the chain rule, dtype and seed."""
    g.add_argument(
        "--dense-max",
        type=int_min(1),
        default=d.dense_max,
        metavar="N",
        help=f"largest dimension for dense Hessians (default {d.dense_max})",
    )
    g.add_argument(
        "--backend",
        choices=("auto", *BACKENDS),
        default=d.backend,
        help="Hessian-vector product backend (default auto: checked against double backward, timed, "
        "chosen once)",
    )
    g.add_argument(
        "--no-chain",
        dest="chain",
        action="store_false",
        default=d.chain,
        help="form each dense H_k through its own tail instead of one backward sweep of the "
        "second-order chain rule (the chain is exact, checked, and (K-k0+1)/2 times cheaper)",
    )
    g.add_argument("--dtype", choices=("float64", "float32"), default=d.dtype)
    g.add_argument(
        "--seed",
        type=int_min(0),
        default=d.seed,
        metavar="S",
        help="root seed of the estimators and slice directions; each sample's seed derives from its "
        f"index in the split (default {d.seed})",
    )


def curvature_settings(args: argparse.Namespace, **extra: Any):
    """The :class:`~landscape.curvature.analysis.CurvatureSettings` the flags describe."""
    return CurvatureSettings(
        method=args.method,
        top_k=args.top_k,
        bottom_k=args.bottom_k,
        trace=args.trace,
        diagonal=args.diagonal,
        density=args.density,
        eig_method=args.eig_method,
        eig_tol=args.eig_tol,
        trace_rtol=args.trace_rtol,
        trace_max_matvecs=args.trace_max_matvecs,
        density_runs=args.density_runs,
        density_steps=args.density_steps,
        dense_max=args.dense_max,
        backend=args.backend,
        chain=args.chain,
        dtype=args.dtype,
        seed=args.seed,
        **extra,
    )
