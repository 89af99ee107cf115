"""The ``landscape`` command line: a thin layer over the Python API.

Each sub-command lives in its own module under :mod:`landscape.commands` and exposes
``register(subparsers)`` (adds its parser, with ``func`` set to a callable taking the parsed args and
returning an exit code).  Bad input of any kind (``ValueError``, ``FileNotFoundError``,
``PermissionError``, ``IsADirectoryError``, a :class:`UsageError`) prints one line
``landscape <cmd>: error: ...`` on stderr and exits with code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["main", "build_parser", "UsageError", "COMMANDS"]

# sub-command name -> module in landscape.commands; order is the order of `landscape --help`
COMMANDS = ("demo", "train", "evaluate", "hessian", "slice", "analyze", "claims")


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
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except (UsageError, ValueError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        if isinstance(exc, OSError) and exc.strerror:  # no "[Errno 2]" prefix: say what and where
            msg = exc.strerror if exc.filename is None else f"{exc.strerror}: {exc.filename}"
        else:
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"{prog}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
