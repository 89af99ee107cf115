"""``landscape hessian``: curvature of a checkpoint's loss at its unrolled iterates (or its parameters).

A thin layer over :func:`landscape.curvature.analyze_iterates`: it rebuilds the test samples of the
run (``task.pairs(n, split=, seed=test_seed)``), computes per-sample eigenvalues / trace / density of
:math:`H_k` at the chosen iterates, prints mean ± standard error per iterate and writes one JSON record.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from typing import Any

import torch

from landscape.checkpoint import (
    LoadedCheckpoint,
    load_checkpoint,
    resolve_checkpoint_path,
    run_files,
    versions,
)
from landscape.commands import COMMANDS
from landscape.commands.args import add_scale_arguments, add_threads_argument, int_min
from landscape.commands.common import scaled
from landscape.commands.curvature_args import add_curvature_arguments, curvature_settings
from landscape.commands.evaluate import check_out_file
from landscape.curvature import analyze_iterates
from landscape.curvature.operators import select_params
from landscape.executor import current_executor
from landscape.io import check_outputs, check_suffix, write_json

HELP = COMMANDS["hessian"]

EPILOG = """\
loss at iterate k, one sample: L_k(x_k) = ||Phi_{k->K}(x_k) - x*||^2 (sum over entries; y and theta
fixed, clean solver).  --wrt params differentiates the same loss with respect to the parameters
theta (x_k held fixed).  Results per sample and mean +- standard error over samples, per iterate.
Test samples: task.pairs(N, split=SPLIT, seed=test_seed) with the run's test_seed (default 2024),
exactly those of `landscape evaluate` (its first N); sample ids 0..N-1 seed the estimators.  Analysis runs in float64 unless --dtype float32.  The JSON
record's "result" is an IterateCurvature (landscape.curvature.IterateCurvature.from_dict reads it;
`landscape report` can draw it).  +- in the table is the spread over samples (s/sqrt(n)).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``landscape hessian`` and its flags to the CLI's ``subparsers``."""
    p = subparsers.add_parser(
        "hessian",
        help=HELP,
        description=HELP + ".",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("checkpoint", metavar="CKPT", help="checkpoint file or run directory")
    p.add_argument(
        "--iterates",
        default="all",
        metavar="SPEC",
        help="iterates k in 0..K: 'all' (default), 'last', one k or a comma list '0,5,10'",
    )
    p.add_argument(
        "--wrt",
        choices=("iterate", "params"),
        default="iterate",
        help="differentiate with respect to the iterate x_k (default) or the parameters",
    )
    p.add_argument(
        "--params",
        action="append",
        default=None,
        metavar="REGEX",
        help="with --wrt params: only parameters whose name matches (repeatable)",
    )
    p.add_argument("--samples", type=int_min(1), default=16, metavar="N", help="test samples (default 16)")
    p.add_argument("--split", default="id", metavar="id|<ood-shift>", help="data split (default id)")
    p.add_argument(
        "--data-seed",
        type=int_min(0),
        default=None,
        metavar="S",
        help="seed of the test data (default: the run's test_seed)",
    )
    add_curvature_arguments(p)
    p.add_argument(
        "--out", metavar="FILE.json", default=None, help="write the JSON record here (a name ending in .json)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_scale_arguments(p)
    add_threads_argument(p)
    p.set_defaults(func=scaled(run))


def settings_from_args(args: argparse.Namespace):
    """The :class:`~landscape.curvature.analysis.CurvatureSettings` the flags describe."""
    if args.params and args.wrt != "params":
        raise ValueError("--params selects parameters: use it with --wrt params")
    for pattern in args.params or ():  # checked here, before any work
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"--params {pattern!r}: not a regular expression ({exc})") from None
    if not (args.top_k or args.bottom_k or args.trace or args.density):
        raise ValueError(
            "nothing to compute: --top-k 0, --bottom-k 0 and --no-trace leave nothing; add one or --density"
        )
    return curvature_settings(args, wrt=args.wrt, params=tuple(args.params or ()))


def hessian_record(
    loaded: LoadedCheckpoint,
    settings: Any,
    *,
    iterates: Any = "all",
    samples: int = 8,
    split: str = "id",
    data_seed: int | None = None,
    progress: bool = False,
    executor: Any = None,
) -> tuple[dict[str, Any], Any]:
    """Run the analysis on a loaded checkpoint, on its test samples (``data_seed``: another seed than the run's
    :attr:`~landscape.checkpoint.LoadedCheckpoint.test_seed`).

    ``executor`` (default :func:`landscape.executor.current_executor`) runs the items (iterate × sample
    chunk) of :func:`landscape.curvature.analyze_iterates`; the numbers do not depend on it.
    Returns the JSON record and the :class:`~landscape.curvature.analysis.IterateCurvature`.
    """
    task = loaded.task
    splits = tuple(getattr(task, "splits", ("id", *getattr(task, "shifts", ()))))
    if split not in splits:
        raise ValueError(f"--split {split!r}: expected one of {', '.join(splits)}")
    saved = loaded.saved_config  # the record names the strategy and seed the file holds
    seed = loaded.test_seed if data_seed is None else int(data_seed)
    pairs = task.pairs(samples, split=split, seed=seed, dtype=torch.float64)
    res = analyze_iterates(
        loaded.model,
        x_true=pairs.x,
        y=pairs.y,
        iterates=iterates,
        settings=settings,
        sample_ids=range(samples),
        progress=progress,
        executor=current_executor() if executor is None else executor,
    )
    try:
        vers = versions()
    except ImportError:  # pragma: no cover
        vers = {"torch": torch.__version__}
    record = {
        "command": "hessian",
        "checkpoint": str(getattr(loaded, "path", "")),
        "strategy": (saved.get("strategy") or {}).get("name")
        if isinstance(saved.get("strategy"), dict)
        else None,
        "run_seed": saved.get("seed"),
        "task": task.config() if hasattr(task, "config") else None,
        "split": split,
        "n_samples": samples,
        "sample_ids": list(range(samples)),
        "data_seed": seed,
        "device": str(res.info.get("device", "cpu")),
        "versions": vers,
        "result": res.to_dict(),
    }
    return record, res


def check_eigen_counts(settings: Any, loaded: LoadedCheckpoint) -> None:
    """``--top-k`` and ``--bottom-k`` within 0..dim, the dimension of what is differentiated (x_k, or the
    selected parameters), before any work: a larger count was silently cut to dim.  0 means none (no
    lambda_max, or no lambda_min, in the table and the record)."""
    if settings.wrt == "params":
        names = set(select_params(loaded.model, list(settings.params) or None))
        dim, of = (
            sum(p.numel() for n, p in loaded.model.named_parameters() if n in names),
            "the selected parameters",
        )
    else:
        dim, of = math.prod(loaded.task.signal_shape), "the iterate x_k"
    for flag, k in (("--top-k", settings.top_k), ("--bottom-k", settings.bottom_k)):
        if k > dim:
            raise ValueError(f"{flag} {k}: expected at most {dim}, the dimension of {of} (0 = none)")


def run(args: argparse.Namespace) -> int:
    """Run ``landscape hessian`` with the parsed ``args``; the exit code."""
    settings = settings_from_args(args)
    out = None
    inputs = run_files(resolve_checkpoint_path(args.checkpoint))
    if args.out is not None:
        out = check_out_file(args.out)
        check_outputs([out], inputs)  # first: an --out that is an input is said so, whatever its suffix
        check_suffix(out, (".json",), writes="a JSON record")
    ex = current_executor()
    loaded = load_checkpoint(args.checkpoint)
    check_eigen_counts(settings, loaded)
    loaded.model.to(args.device)
    record, res = hessian_record(
        loaded,
        settings,
        iterates=args.iterates,
        samples=args.samples,
        split=args.split,
        data_seed=args.data_seed,
        progress=not args.no_progress and ex.world_size == 1,
        executor=ex,
    )
    if not ex.is_root:  # rank 0 prints and writes
        return 0
    print(
        f"{loaded.path}: wrt {settings.wrt}, split {args.split}, {args.samples} samples, "
        f"backend {res.backend}, {res.settings.dtype}, {res.wall_time:.1f} s"
    )
    print(res.table())
    if not res.converged:
        print(
            "warning: some estimates did not converge (see 'converged' and 'reason' in the JSON)",
            file=sys.stderr,
        )
    if out is not None:
        write_json(out, record)
        print(f"wrote {out}")
    return 0
