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
import re
import sys
import warnings
from collections.abc import Sequence

__all__ = ["main", "build_parser", "UsageError", "COMMANDS", "error_line"]

# sub-command name -> module in landscape.commands; order is the order of `landscape --help`
COMMANDS = ("demo", "train", "evaluate", "hessian", "slice", "analyze", "claims", "report", "experiment")


class UsageError(Exception):
    """Bad command-line input; printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage too: keep it short)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="landscape",
        description=(
            "Train loop-unrolled networks for inverse problems with SGD jittering, evaluate them, and "
            "measure the curvature of their loss with respect to the intermediate iterates x_k."
        ),
    )
    from landscape import __version__

    parser.add_argument("--version", action="version", version=f"landscape {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        try:
            mod = importlib.import_module(f"landscape.commands.{name}")
        except ModuleNotFoundError as exc:  # a command not written yet is simply absent
            if exc.name == f"landscape.commands.{name}":
                continue
            raise
        mod.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    prog = f"landscape {args.command}"
    previous_format = warnings.formatwarning
    warnings.formatwarning = _one_line_warning(prog)  # a warning is one line too, naming what it is about
    restore_threads = None
    try:
        if getattr(args, "threads", "absent") != "absent" and args.command != "analyze":  # analyze restores its own
            import torch

            from landscape.commands.common import apply_threads

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


def _one_line_warning(prog: str):
    def format_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ARG001
        text = " ".join(str(message).split())
        return f"{prog}: warning: {text} ({category.__name__})\n"

    return format_warning


#: torch.distributed's errors (a closed connection to a dead rank, a timeout): one line, not a traceback
_DIST_ERRORS = ("DistError", "DistBackendError", "DistNetworkError", "DistStoreError")

_ALLOCATOR_TEXT = ("not enough memory", "defaultcpuallocator", "out of memory", "can't allocate memory",
                   "cannot allocate memory")


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    return lines[0] if lines else ""


def error_line(exc: BaseException) -> str | None:
    """The one line ``main`` prints for ``exc``, or None for an exception that is a bug (re-raised)."""
    if isinstance(exc, (UsageError, ValueError)):
        return _first_line(str(exc)) or type(exc).__name__
    from landscape.errors import MissingDependency

    if isinstance(exc, MissingDependency):  # an optional extra or tool is missing: the message says how to get it
        return _first_line(str(exc)) or type(exc).__name__
    if isinstance(exc, re.error):
        where = f" in {exc.pattern!r}" if getattr(exc, "pattern", None) is not None else ""
        return f"bad regular expression{where}: {exc.msg if hasattr(exc, 'msg') else exc}"
    if isinstance(exc, MemoryError) or _is_allocator_error(exc):
        m = re.search(r"allocate (\d+) bytes", str(exc))
        size = ""
        if m:
            from landscape.io import format_bytes

            size = f" ({format_bytes(int(m.group(1)))} requested)"
        return (f"out of memory{size}: {_first_line(str(exc))[:160] or type(exc).__name__} "
                "(use fewer samples, a smaller grid or --memory-mb)")
    if type(exc).__name__ == "StoppedByLauncher":  # landscape.distributed's SIGTERM handler: already one line
        return str(exc)
    if _is_dist_error(exc):  # a peer died or the job timed out: say so, in one line
        text = re.sub(r"^\[[^\]]*\]\s*", "", _first_line(str(exc)))  # no [file.cc:line] prefix
        return f"distributed job failed ({type(exc).__name__}): {text[:200]}"
    if isinstance(exc, OSError):
        if exc.strerror:  # no "[Errno 2]" prefix: say what and where
            where = exc.filename if exc.filename is not None else None
            if getattr(exc, "filename2", None):
                where = f"{exc.filename} -> {exc.filename2}"
            return exc.strerror if where is None else f"{exc.strerror}: {where}"
        return _first_line(str(exc)) or type(exc).__name__
    return None


def _is_dist_error(exc: BaseException) -> bool:
    if any(c.__name__ in _DIST_ERRORS for c in type(exc).__mro__):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("gloo" in text or "nccl" in text) and any(
        t in text for t in ("connection", "timed out", "timeout", "peer"))


def _is_allocator_error(exc: BaseException) -> bool:
    oom = getattr(__import__("torch"), "OutOfMemoryError", None) if "torch" in sys.modules else None
    if oom is not None and isinstance(exc, oom):
        return True
    return isinstance(exc, RuntimeError) and any(t in str(exc).lower() for t in _ALLOCATOR_TEXT)


def entry() -> None:
    """The ``landscape`` console script and ``python -m landscape.cli``: :func:`main`, then exit.

    A torchrun worker ends through :func:`landscape.distributed.exit_process` (flush, then ``os._exit``), so
    torch's C++ threads cannot abort a finished job at interpreter finalization.
    """
    code = main()
    dist = sys.modules.get("landscape.distributed")  # imported by every distributed run; never imported just to exit
    if dist is not None and dist.launched_by_torchrun():
        dist.exit_process(code)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    entry()
