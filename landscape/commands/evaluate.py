"""``landscape evaluate``: evaluate checkpoints side by side (see :mod:`landscape.evaluate`)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from landscape.checkpoint import load_checkpoint, resolve_checkpoint_path, run_files
from landscape.commands import COMMANDS
from landscape.commands.args import add_threads_argument, float_nonneg, float_pos, int_min
from landscape.errors import check_device
from landscape.evaluate import EvalConfig, evaluate, format_table
from landscape.io import check_distinct, write_json

HELP = COMMANDS["evaluate"]

EPILOG = """\
conditions (columns of the printed table, keys of the JSON 'results'):
  id            in-distribution test pairs, task.pairs(n_test, split='id', seed=test_seed)
  pgd:EPS       l2 PGD attack of radius EPS on the measurement, against each estimator
  random:EPS    a random measurement perturbation of norm exactly EPS (same directions for every row)
  ood:SHIFT     each OOD shift of the task
EPS is relative to ||y|| per sample unless --eps-absolute.  Metrics: PSNR (peak max|x*| per sample),
SSIM (Gaussian window, data range of x*; magnitude images for MRI) and MSE, per sample, then
mean +- standard error.  Reference rows: 'measurement' (x0 = A^T y) and 'affine' (least-squares
affine estimator fitted on the first checkpoint's training pairs).  Defaults (n_test, eps, PGD steps,
test seed) come from the first checkpoint's run config.
"""


def check_out_file(out: str | Path) -> Path:
    """``out`` as a writable file path (its folder must exist); ValueError naming the problem."""
    if not str(out).strip():
        raise ValueError("--out is empty: expected a file name such as results.json")
    p = Path(out)
    if p.is_dir():
        raise ValueError(f"--out {p}: is a directory, expected a file name such as results.json")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.exists():
        raise ValueError(f"--out {p}: folder {parent} does not exist")
    if not parent.is_dir():
        raise ValueError(f"--out {p}: {parent} is not a folder")
    if not os.access(parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise ValueError(f"--out {p}: cannot be written")
    return p


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``landscape evaluate`` and its flags to the CLI's ``subparsers``."""
    p = subparsers.add_parser(
        "evaluate",
        help=HELP,
        description=HELP
        + "; writes a JSON file and prints a table (rows: estimators, columns: ID / adversarial / OOD).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "checkpoints",
        nargs="+",
        metavar="CKPT",
        help="checkpoint files or run directories (all of the same task)",
    )
    p.add_argument("--out", required=True, metavar="FILE.json", help="where to write the results")
    p.add_argument(
        "--attack-eps",
        type=float_nonneg,
        nargs="+",
        default=None,
        metavar="E",
        help="PGD radii (default: the run's, 0.1 relative for the toy task)",
    )
    p.add_argument(
        "--random-eps",
        type=float_nonneg,
        nargs="*",
        default=None,
        metavar="E",
        help="random-perturbation norms (default: the run's; give none to skip)",
    )
    p.add_argument(
        "--eps-absolute", action="store_true", help="radii are absolute l2 norms, not relative to ||y||"
    )
    p.add_argument(
        "--attack-steps", type=int_min(0), default=None, metavar="T", help="PGD steps (default 20)"
    )
    p.add_argument(
        "--attack-step-size",
        type=float_pos,
        default=None,
        metavar="A",
        help="PGD step as a fraction of eps (default 0.1)",
    )
    p.add_argument("--n-test", type=int_min(1), default=None, metavar="N", help="test samples per condition")
    p.add_argument(
        "--test-seed",
        type=int_min(0),
        default=None,
        metavar="S",
        help="seed of the test data (default: the first run's test_seed)",
    )
    p.add_argument("--no-references", action="store_true", help="skip the measurement and affine rows")
    p.add_argument(
        "--no-per-sample", action="store_true", help="only summaries in the JSON, no per-sample values"
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no table")
    add_threads_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``landscape evaluate`` with the parsed ``args``; the exit code."""

    check_device(args.device)
    out = check_out_file(args.out)
    paths = [resolve_checkpoint_path(c) for c in args.checkpoints]  # every path checked before any work
    check_distinct([out], [f for p in paths for f in run_files(p)])
    ckpts = [load_checkpoint(c) for c in paths]
    cfg = EvalConfig.from_run_config(
        ckpts[0].config,
        n_test=args.n_test,
        test_seed=args.test_seed,
        attack_eps=args.attack_eps,
        random_eps=args.random_eps,
        relative=False if args.eps_absolute else None,
        attack_steps=args.attack_steps,
        attack_step_size=args.attack_step_size,
        references=False if args.no_references else None,
        per_sample=False if args.no_per_sample else None,
        device=args.device,
    )
    report = evaluate(ckpts, cfg, progress=not args.quiet)
    write_json(out, report)
    if not args.quiet:
        print(format_table(report))
        print(f"wrote {out}")
    return 0
