"""``landscape slice``: one 1-D or 2-D slice of the loss of a checkpoint, as JSON or NPZ plus an HTML figure.

Input space (default): L_k(x_k + a d1 + b d2) for one test sample at iterate k, with d1, d2 drawn as
--dirs says (random, random_channel, eigen, gradient, range, null), scaled to ||x_k||.  Parameter space
(--space parameter): the training loss on --samples test samples at theta + a d1 + b d2 with
filter-normalised random directions (filter, random).  One direction gives a 1-D slice.
The grid points go through the network in batches (memory-capped chunks).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from landscape.checkpoint import LoadedCheckpoint, load_checkpoint, resolve_checkpoint_path, run_files
from landscape.commands import COMMANDS
from landscape.commands.args import add_threads_argument, float_pos, int_min
from landscape.curvature.slices import INPUT_KINDS, PARAMETER_KINDS, input_slice, parameter_slice
from landscape.errors import UsageError
from landscape.io import check_outputs, check_suffix, json_safe, write_group
from landscape.viz.page import render_page
from landscape.viz.report import slice_sections

HELP = COMMANDS["slice"]

#: ``--sample I`` must be below this: the test samples of a run are numbered 0..MAX_TEST_SAMPLES - 1.
MAX_TEST_SAMPLES = 1_000_000


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``landscape slice`` and its flags to the CLI's ``subparsers``."""
    p = subparsers.add_parser("slice", help=HELP, description=(__doc__ or "").split("\n\n", 1)[1].strip())
    p.add_argument("checkpoint", metavar="CKPT", help="checkpoint file or run directory")
    p.add_argument(
        "--out",
        required=True,
        metavar="FILE.json|FILE.npz",
        help="result file (.npz keeps the direction vectors); an HTML figure is written beside it",
    )
    p.add_argument("--space", choices=("input", "parameter"), default="input")
    p.add_argument(
        "--iterate", type=int_min(0), default=0, metavar="K", help="iterate k (input space; default 0)"
    )
    p.add_argument(
        "--sample",
        type=int_min(0),
        default=0,
        metavar="I",
        help="test sample index (input space; 0..999999, the same sample I as landscape evaluate's)",
    )
    p.add_argument(
        "--samples",
        type=int_min(1),
        default=4,
        metavar="N",
        help="test samples drawn (the batch of the parameter-space loss; default 4)",
    )
    p.add_argument("--split", default="id", help="test split: id (default) or an OOD shift")
    p.add_argument(
        "--dirs",
        default=None,
        metavar="D1[,D2]",
        help="directions (default random,random in input space, filter,filter in parameter space)",
    )
    p.add_argument(
        "--grid", type=int_min(1), default=31, metavar="N", help="points per axis (default 31, max 101)"
    )
    p.add_argument(
        "--span",
        type=float_pos,
        default=1.0,
        metavar="S",
        help="half-width of the grid in units of the direction norms (default 1)",
    )
    p.add_argument(
        "--scale",
        choices=("norm", "unit"),
        default="norm",
        help="input space: directions scaled to ||x_k|| (default) or unit vectors",
    )
    p.add_argument("--seed", type=int_min(0), default=0, help="seed of the directions (default 0)")
    p.add_argument("--memory-mb", type=float_pos, default=256.0, metavar="MB")
    p.add_argument("--pointwise", action="store_true", help="evaluate one point per call (reference; slow)")
    p.add_argument("--log", action="store_true", help="plot log10 of the loss")
    p.add_argument("--no-html", action="store_true", help="write the result file only")
    add_threads_argument(p)
    p.set_defaults(func=run)


def _kinds(args: argparse.Namespace) -> tuple[str, ...]:
    """The one or two directions ``--dirs`` names (the space's default pair without it)."""
    allowed = INPUT_KINDS if args.space == "input" else PARAMETER_KINDS
    default = "random,random" if args.space == "input" else "filter,filter"
    kinds = tuple(s.strip() for s in (args.dirs or default).split(",") if s.strip())
    if len(kinds) not in (1, 2) or any(k not in allowed for k in kinds):
        raise UsageError(
            f"--dirs {args.dirs!r}: expected one or two of {', '.join(allowed)} for {args.space} space"
        )
    return kinds


def _check_sample(args: argparse.Namespace, ck: LoadedCheckpoint) -> None:
    if args.space == "input" and args.iterate > ck.model.n_iter:
        raise UsageError(f"--iterate {args.iterate}: expected 0..K with K={ck.model.n_iter}")
    if args.space == "input" and args.sample >= MAX_TEST_SAMPLES:
        raise UsageError(
            f"--sample {args.sample}: expected a test sample index in 0..{MAX_TEST_SAMPLES - 1} "
            f"(landscape numbers a run's test samples below {MAX_TEST_SAMPLES})"
        )


def _slice(args: argparse.Namespace, ck: LoadedCheckpoint, kinds: tuple[str, ...], keep_vectors: bool) -> Any:
    """The slice the flags describe, on the run's test samples (:meth:`LoadedCheckpoint.test_pairs`)."""
    model = ck.model.to(torch.float64).eval()
    model.requires_grad_(False)
    method = "pointwise" if args.pointwise else "batched"
    if args.space == "input":  # pairs are prefix-stable: sample I alone is pairs(n)[I] for any n > I
        pairs = ck.test_pairs(1, split=args.split, dtype=torch.float64, start=args.sample)
        return input_slice(
            model,
            pairs.y,
            pairs.x,
            args.iterate,
            kinds=kinds,
            n=args.grid,
            span=args.span,
            seed=args.seed,
            sample=args.sample,
            scale=args.scale,
            memory_mb=args.memory_mb,
            method=method,
        )
    pairs = ck.test_pairs(args.samples, split=args.split, dtype=torch.float64)
    return parameter_slice(
        model,
        pairs.y[: args.samples],
        pairs.x[: args.samples],
        kinds=kinds,
        n=args.grid,
        span=args.span,
        seed=args.seed,
        memory_mb=args.memory_mb,
        method=method,
        keep_vectors=keep_vectors,
    )


def run(args: argparse.Namespace) -> int:
    """Run ``landscape slice`` with the parsed ``args``; the exit code."""
    out = check_suffix(
        args.out, (".json", ".npz"), writes="the slice as JSON, or NPZ arrays with the directions"
    )
    if args.grid > 101:
        raise UsageError("--grid: at most 101 points per axis")
    kinds = _kinds(args)
    # every output (the result and the page beside it), before any work: writable (nothing created: a refusal
    # leaves no folder), none an input, none another write's group member; written below as one group
    html_path = out.with_suffix(".html")
    check_outputs(
        [out] + ([] if args.no_html else [html_path]), run_files(resolve_checkpoint_path(args.checkpoint))
    )
    ck = load_checkpoint(args.checkpoint)
    _check_sample(args, ck)
    s = _slice(args, ck, kinds, keep_vectors=out.suffix == ".npz")
    record = s.to_dict()
    record["checkpoint"] = {
        "path": str(ck.path),
        "label": ck.name,
        "test_seed": ck.test_seed,
        "split": args.split,
    }
    files: dict[Path, bytes | str] = {
        out: s.npz_bytes()
        if out.suffix.lower() == ".npz"
        else json.dumps(json_safe(record), indent=2, allow_nan=False) + "\n"
    }
    if not args.no_html:  # rendered before anything is written: the two files appear together or not at all
        title = f"landscape slice: {ck.name} ({args.space} space)"
        files[html_path] = render_page(title, slice_sections(record, log=args.log))
    write_group(files)
    print(f"wrote {out} ({s.n_evals} points, {s.wall_time:.2f} s; loss at the centre {s.center_value:.6g})")
    if not args.no_html:
        print(f"wrote {html_path}")
    return 0
