"""The ``landscape`` command line: a thin layer over the Python API.

Each sub-command lives in its own module under :mod:`landscape.commands` and exposes
``register(subparsers)`` (adds its parser, with ``func`` set to a callable taking the parsed args and
returning an exit code).  Bad input of any kind (``ValueError``, a :class:`UsageError`, a bad regular
expression) and every failure of the machine (any ``OSError``: a missing file, a full disk, a read-only
folder; a :class:`~landscape.errors.MissingDependency`: an optional extra such as kaleido not installed;
``MemoryError`` and allocator errors: ``torch.OutOfMemoryError``, ``RuntimeError`` "not enough
memory" / "DefaultCPUAllocator") prints one line ``landscape <cmd>: error: ...`` on stderr that names the
path or the size, and exits with code 2, never a traceback.  Warnings print one line each as well,
``landscape <cmd>: warning: ... (Category)``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Sequence

from landscape import __version__
from landscape.commands import COMMANDS
from landscape.commands.args import apply_threads
from landscape.errors import UsageError, error_line, one_line_warning

__all__ = ["main", "build_parser", "UsageError", "COMMANDS", "error_line"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage too: keep it short)
        self.exit(2, f"{self.prog}: error: {message}\n")


def command_of(argv: Sequence[str]) -> str | None:
    """The sub-command ``argv`` names (its first word that is not an option), or None."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(command: str | None = "*") -> argparse.ArgumentParser:
    """The ``landscape`` parser.  ``command`` names the one sub-command whose module is imported and whose
    full parser is built (``"*"``: all of them); every other sub-command is listed with its one-line help
    only, so ``landscape --help`` imports no command module (and no torch)."""
    parser = _Parser(
        prog="landscape",
        description=(
            "Train loop-unrolled networks for inverse problems with SGD jittering, evaluate them, and "
            "measure the curvature of their loss with respect to the intermediate iterates x_k."
        ),
    )
    parser.add_argument("--version", action="version", version=f"landscape {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, help_text in COMMANDS.items():
        if command in ("*", name):
            importlib.import_module(f"landscape.commands.{name}").register(sub)
        else:
            sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The ``landscape`` command line: parse ``argv`` and run the chosen command; the exit code (2 on bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(command_of(argv) if command_of(argv) in COMMANDS else None)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    prog = f"landscape {args.command}"
    previous_format = warnings.formatwarning
    warnings.formatwarning = _one_line_warning(prog)  # a warning is one line too, naming what it is about
    restore_threads = None
    try:
        if (
            getattr(args, "threads", "absent") != "absent" and args.command != "analyze"
        ):  # analyze restores its own
            import torch

            restore_threads = torch.get_num_threads()
            apply_threads(args)
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BaseException as exc:  # noqa: BLE001 - only the kinds error_line knows; the rest re-raised
        msg = error_line(exc)
        if msg is None:
            raise
        if not (getattr(exc, "shared", False) and _rank() != 0):  # an error every rank has: printed by rank 0
            print(f"{prog}: error: {msg}", file=sys.stderr)
        return 2
    finally:
        warnings.formatwarning = previous_format
        if restore_threads is not None:
            import torch

            torch.set_num_threads(restore_threads)


def _rank() -> int:
    """This process's rank in a torchrun job (0 outside one)."""
    import os

    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


_one_line_warning = one_line_warning  # one place: landscape.errors


def entry() -> None:
    """The ``landscape`` console script and ``python -m landscape.cli``: :func:`main`, then exit.

    A torchrun worker ends through :func:`landscape.distributed.exit_process` (flush, then ``os._exit``), so
    torch's C++ threads cannot abort a finished job at interpreter finalization.
    """
    code = main()
    dist = sys.modules.get(
        "landscape.distributed"
    )  # imported by every distributed run; never imported just to exit
    if dist is not None and dist.launched_by_torchrun():
        dist.exit_process(code)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    entry()
