"""Flags every command shares: ``--threads`` with a default that fits the cores that are free."""

from __future__ import annotations

import argparse
import os

__all__ = ["add_threads_argument", "default_threads", "apply_threads"]


def default_threads() -> int:
    """Cores not already busy: ``cpu_count - round(1-minute load)``, at least 1 (torch's own default takes
    every core, and on shared, busy cores that made one epoch 2-5x slower than one thread)."""
    n = os.cpu_count() or 1
    try:
        busy = round(os.getloadavg()[0])
    except (OSError, AttributeError):  # no load average on this platform
        busy = 0
    return max(1, min(n, n - busy))


def add_threads_argument(p: argparse.ArgumentParser) -> None:
    from landscape.commands.train import int_min

    p.add_argument("--threads", type=int_min(1), default=None, metavar="T",
                   help="torch CPU threads (default: the cores not busy now, at least 1)")


def apply_threads(args: argparse.Namespace) -> int | None:
    """Set torch's thread count from ``args.threads`` (or :func:`default_threads`); returns it."""
    if not hasattr(args, "threads"):
        return None
    n = args.threads if args.threads is not None else default_threads()
    import torch

    torch.set_num_threads(n)
    return n
