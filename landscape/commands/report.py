"""``landscape report``: re-render or merge saved results into one offline HTML page, computing nothing.

Inputs are ``analysis.json`` files (or the folders holding them) written by ``landscape analyze`` or
``landscape demo``, ``landscape hessian --out`` records, and a ``landscape claims`` result (``claims.json`` or
its folder), whose verdicts become the page's claims section; checkpoints are drawn side by side, the first
one as the reference of the paired comparisons.
"""

from __future__ import annotations

import argparse

from landscape.commands import COMMANDS
from landscape.commands.args import add_threads_argument
from landscape.records import merge_results
from landscape.viz.report import check_map_iterates, check_report_out, write_report

HELP = COMMANDS["report"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``landscape report`` and its flags to the CLI's ``subparsers``."""
    p = subparsers.add_parser("report", help=HELP, description=(__doc__ or "").split("\n\n", 1)[1].strip())
    p.add_argument(
        "results",
        nargs="+",
        metavar="RESULT",
        help="analysis.json (or its folder), a hessian JSON, or claims.json (or its folder)",
    )
    p.add_argument(
        "--out",
        required=True,
        metavar="FILE.html",
        help="the page to write (a name ending in .html, none of the RESULT files nor the report.html "
        "beside an analysis.json)",
    )
    p.add_argument("--title", default="landscape report")
    p.add_argument(
        "--map-iterates",
        default=None,
        metavar="k,...",
        help="iterates of the curvature maps, for results analysed with --diagonal (default: the "
        "analysis's own choice, else 1, K/2 and K-1)",
    )
    add_threads_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``landscape report`` with the parsed ``args``; the exit code."""
    check_report_out(args.out, args.results)  # .html, writable, none of the files it reads: before any work
    record = merge_results(args.results)
    check_map_iterates(record, args.map_iterates)
    path = write_report(record, args.out, title=args.title, map_iterates=args.map_iterates)
    print(f"wrote {path} ({len(record['checkpoints'])} checkpoint(s) from {len(args.results)} file(s))")
    return 0
