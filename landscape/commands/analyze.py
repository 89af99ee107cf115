"""``landscape analyze``: curvature, slices and robustness of checkpoints, as JSON and an offline HTML report.

For every checkpoint: the top eigenvalues, lambda_min, trace and spectral density of the Hessian of
L_k(x_k) = ||Phi_{k->K}(x_k) - x*||^2 with respect to the iterate x_k at each requested k, a 2-D slice of
L_k around x_k (random directions drawn from --seed, identical for every checkpoint), a 2-D slice of the
training loss around theta (filter-normalised), PSNR under l2 PGD against the radius, and one reconstruction.
Writes DIR/analysis.json (all numbers, settings and seeds) and DIR/report.html (opens offline); with
--export pdf (or svg, png, html; comma-separated), every figure of the report as DIR/NAME.FMT too, NAME
carrying the settings, written together with analysis.json or not at all.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from landscape.commands import COMMANDS
from landscape.commands.args import (
    add_scale_arguments,
    default_threads,
    export_formats,
    float_nonneg,
    float_pos,
    int_min,
)
from landscape.commands.common import scaled
from landscape.commands.curvature_args import add_curvature_arguments, curvature_settings
from landscape.curvature.slices import INPUT_KINDS
from landscape.defaults import ANALYSIS_DEFAULTS as DEFAULTS
from landscape.errors import UsageError
from landscape.executor import current_executor
from landscape.records import curvature_of
from landscape.survey import analyze_checkpoints


def _span(text: str) -> float | str:
    return "hessian" if text == "hessian" else float_pos(text)


HELP = COMMANDS["analyze"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``landscape analyze`` and its flags to the CLI's ``subparsers``."""
    p = subparsers.add_parser("analyze", help=HELP, description=(__doc__ or "").split("\n\n", 1)[1].strip())
    p.add_argument("checkpoints", nargs="+", metavar="CKPT", help="checkpoint files or run directories")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (created)")
    p.add_argument("--samples", type=int_min(1), default=16, metavar="N", help="test samples (default 16)")
    p.add_argument(
        "--iterates",
        default="all",
        metavar="all|k,...",
        help="iterates k to analyse: 'all' (0..K, default) or a comma list such as 0,5,9",
    )
    p.add_argument(
        "--split", default=DEFAULTS["split"], help="test split: id (default) or an OOD shift of the task"
    )
    add_curvature_arguments(p)
    _add_slice_arguments(p)
    _add_robustness_arguments(p)
    _add_run_arguments(p)
    add_scale_arguments(p)
    p.set_defaults(func=scaled(run))


def _add_slice_arguments(p: argparse.ArgumentParser) -> None:
    """The spectral density's iterate, the curvature maps' iterates, and the input- and parameter-space slices."""
    p.add_argument(
        "--density-k",
        type=int_min(0),
        default=DEFAULTS["density_k"],
        metavar="K",
        help="iterate whose spectral density is plotted (default 0)",
    )
    p.add_argument(
        "--map-iterates",
        default=DEFAULTS["map_iterates"],
        metavar="k,...",
        help="iterates of the report's curvature maps, with --diagonal (default: 1, K/2 and K-1, the nearest "
        "analysed ones)",
    )
    p.add_argument(
        "--slice-iterate",
        type=int_min(0),
        default=DEFAULTS["slice_iterate"],
        metavar="K",
        help="iterate of the input-space slice (default 0)",
    )
    p.add_argument(
        "--slice-dirs",
        default=",".join(DEFAULTS["slice_kinds"]),
        metavar="D1,D2",
        help="input-space slice directions (random, random_channel, eigen, gradient, range, null)",
    )
    p.add_argument(
        "--grid",
        type=int_min(1),
        default=DEFAULTS["slice_n"],
        metavar="N",
        help=f"points per axis of the input-space slice (default {DEFAULTS['slice_n']}, at most 101)",
    )
    p.add_argument(
        "--span",
        type=_span,
        default=DEFAULTS["slice_span"],
        metavar="S|hessian",
        help="half-width of the input-space slice: 'hessian' (default: unit directions over +-alpha*, "
        "alpha* = sqrt(2 L_k / lambda_max) of the first checkpoint) or a number in units of ||x_k||",
    )
    p.add_argument(
        "--param-grid",
        type=int_min(0),
        default=DEFAULTS["param_slice_n"],
        metavar="N",
        help=f"points per axis of the parameter-space slice, 0 to skip (default {DEFAULTS['param_slice_n']})",
    )
    p.add_argument("--param-span", type=float_pos, default=DEFAULTS["param_slice_span"], metavar="S")


def _add_robustness_arguments(p: argparse.ArgumentParser) -> None:
    """The PGD radii and steps of the robustness curve."""
    p.add_argument(
        "--eps",
        type=float_nonneg,
        nargs="*",
        default=list(DEFAULTS["eps"]),
        metavar="E",
        help="l2 PGD radii for the robustness curve, relative to ||y|| per sample as in `landscape evaluate` "
        "(none to skip; default " + " ".join(f"{e:g}" for e in DEFAULTS["eps"]) + ")",
    )
    p.add_argument("--pgd-steps", type=int_min(1, "pgd_steps"), default=DEFAULTS["pgd_steps"], metavar="T")


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    """Memory, threads, which files are written, and progress lines."""
    p.add_argument(
        "--memory-mb",
        type=float_pos,
        default=DEFAULTS["memory_mb"],
        metavar="MB",
        help="memory budget of one chunk of slice points (default 256)",
    )
    p.add_argument(
        "--threads",
        type=int_min(1, "threads"),
        default=None,
        metavar="T",
        help="torch CPU threads (default: the cores not busy now, at least 1)",
    )
    p.add_argument("--no-html", action="store_true", help="write analysis.json only")
    p.add_argument(
        "--export",
        type=export_formats,
        default=(),
        metavar="FMT[,FMT]",
        help="also write every figure as DIR/NAME.FMT, NAME carrying the settings: pdf, svg (vector, through "
        "kaleido: pip install 'landscape[export]' and a Chrome/Chromium), png or html",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines")


def run(args: argparse.Namespace) -> int:
    """Run ``landscape analyze`` with the parsed ``args``; the exit code."""
    out = args.out  # checked (not created) by analyze_checkpoints, which creates it only to write results
    kinds = tuple(s.strip() for s in args.slice_dirs.split(",") if s.strip())
    if len(kinds) != 2 or any(k not in INPUT_KINDS for k in kinds):
        raise UsageError(f"--slice-dirs {args.slice_dirs!r}: expected two of {', '.join(INPUT_KINDS)}")
    if args.grid > 101 or args.param_grid > 101:
        raise UsageError("--grid/--param-grid: at most 101 points per axis")
    ex = current_executor()
    rec = analyze_checkpoints(
        args.checkpoints,
        out,
        samples=args.samples,
        iterates=args.iterates,
        curvature=curvature_settings(args),
        progress=not args.quiet and ex.is_root,
        write_html=not args.no_html,
        threads=args.threads if args.threads is not None else default_threads(),
        split=args.split,
        density_k=args.density_k,
        map_iterates=args.map_iterates,
        slice_iterate=args.slice_iterate,
        slice_kinds=kinds,
        slice_n=args.grid,
        slice_span=args.span,
        param_slice_n=args.param_grid,
        param_slice_span=args.param_span,
        eps=tuple(args.eps),
        pgd_steps=args.pgd_steps,
        memory_mb=args.memory_mb,
        executor=ex,
        device=args.device,
        export=args.export,
    )
    if not args.quiet and ex.is_root:
        for e in rec["checkpoints"]:
            c = curvature_of(e)
            ks, lam, _ = c.series("lambda_max")
            vals = ", ".join(f"{v:.3g}" for v in lam)
            print(f"{e['label']}: lambda_max(H_k) for k = {ks[0]}..{ks[-1]}: {vals}")
        for key, path in rec["files"].items():
            if key == "figures":
                print(f"wrote {len(path)} figure files: {Path(path[0]).parent}/" if path else "no figures")
            else:
                print(f"wrote {key}: {path}")
        print(f"({rec['wall_time']:.1f} s)")
    return 0
