"""The argument types and flags the commands share: numbers checked by argparse (one line naming the
value and what was expected), ``--out`` folders, ``--threads`` with a default that fits the cores that are
free, ``--export``, the scale-out flags.  Light: building a parser imports neither torch nor plotly."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from landscape.errors import check_count, count_limit, limit_reason
from landscape.export import FORMATS

__all__ = [
    "float_nonneg",
    "float_pos",
    "int_min",
    "sigma_list",
    "check_out_dir",
    "export_formats",
    "default_threads",
    "add_threads_argument",
    "apply_threads",
    "add_scale_arguments",
]


def _finite(text: str, *, positive: bool) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(v) or v < 0 or (positive and v == 0):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a finite number {'>' if positive else '>='} 0")
    return v


def float_nonneg(text: str) -> float:
    """argparse type: a finite number >= 0 (one-line error naming the text otherwise)."""
    return _finite(text, positive=False)


def float_pos(text: str) -> float:
    """argparse type: a finite number > 0 (one-line error naming the text otherwise)."""
    return _finite(text, positive=True)


def int_min(minimum: int, bound: str | None = None):
    """An argparse type: an integer ``>= minimum`` and, with ``bound`` (a name of
    :data:`landscape.errors.COUNT_LIMITS`, or ``threads``/``workers``), ``<= count_limit(bound)``: the same
    bound the Python API checks (:func:`landscape.errors.check_count`)."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"{text!r}: expected an integer >= {minimum}")
        if bound is not None and v > count_limit(bound):
            raise argparse.ArgumentTypeError(
                f"{text!r}: expected an integer {minimum}..{count_limit(bound)}{limit_reason(bound)}"
            )
        return v

    parse.__name__ = f"integer>={minimum}"
    return parse


def sigma_list(text: str) -> float | list[float]:
    """``0.1`` or a per-iteration list ``0.1,0.1,0``."""
    parts = [p for p in text.replace(" ", "").split(",") if p]
    if not parts:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number or a comma-separated list")
    vals = [float_nonneg(p) for p in parts]
    return vals[0] if len(vals) == 1 and "," not in text else vals


def check_out_dir(out: str | Path, *, create: bool = True) -> Path:
    """``out`` as a directory that can be written (created if needed); ValueError naming the problem.

    ``create=False`` only checks (a folder that does not exist yet is created by whoever writes into it).
    """
    if not str(out).strip():
        raise ValueError("--out is empty: expected a folder name")
    p = Path(out)
    if p.exists() and not p.is_dir():
        raise ValueError(f"--out {p}: exists and is not a directory")
    if not create:
        for parent in (p, *p.parents):
            if parent.exists():
                if not parent.is_dir():
                    raise ValueError(f"--out {p}: cannot create the directory ({parent} is a file)")
                if not os.access(parent, os.W_OK):
                    raise ValueError(f"--out {p}: cannot create the directory ({parent} is not writable)")
                break
        return p
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"--out {p}: cannot create the directory ({exc.strerror or exc})") from None
    if not os.access(p, os.W_OK):
        raise ValueError(f"--out {p}: the directory is not writable")
    return p


def export_formats(text: str) -> tuple[str, ...]:
    """``--export``'s value: figure formats, comma-separated (landscape.export.FORMATS)."""
    fmts = tuple(f.strip().lower().lstrip(".") for f in text.split(",") if f.strip())
    bad = [f for f in fmts if f not in FORMATS]
    if not fmts or bad:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected one or more of {', '.join(FORMATS)}, comma-separated"
        )
    return fmts


def default_threads() -> int:
    """Cores not already busy: ``cpu_count - round(1-minute load)``, at least 1 (torch's own default takes
    every core, and on shared, busy cores that made one epoch 2-5x slower than one thread)."""
    n = os.cpu_count() or 1
    try:
        busy = round(os.getloadavg()[0])
    except (OSError, AttributeError):  # no load average on this platform
        busy = 0
    free = max(1, min(n, n - busy))
    try:  # under torchrun the node's free cores are shared by its ranks
        local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        local = 1
    return max(1, free // local)


def add_threads_argument(p: argparse.ArgumentParser) -> None:
    """Add ``--threads T`` (torch CPU threads) to parser ``p``."""
    p.add_argument(
        "--threads",
        type=int_min(1, "threads"),
        default=None,
        metavar="T",
        help="torch CPU threads (default: the cores not busy now, at least 1)",
    )


def apply_threads(args: argparse.Namespace) -> int | None:
    """Set torch's thread count from ``args.threads`` (or :func:`default_threads`); returns it."""
    if not hasattr(args, "threads"):
        return None
    n = args.threads if args.threads is not None else default_threads()
    check_count(n, "threads", flag="--threads")
    import torch

    torch.set_num_threads(n)
    return n


def add_scale_arguments(p: argparse.ArgumentParser, *, device: bool = True, training: bool = False) -> None:
    """``--distributed`` (under torchrun), ``--device`` (unless the command has one) and ``--autocast``.

    Analysis commands take ``--autocast`` only to refuse it in one line: analysis runs in float32 or float64.
    """
    g = p.add_argument_group("scale-out (see docs/DISTRIBUTED.md)")
    g.add_argument(
        "--distributed",
        action="store_true",
        help="run as one rank of a torchrun job: "
        + (
            "DistributedDataParallel, the batch split across the ranks, rank 0 writes"
            if training
            else "the work split into items across the ranks, gathered and written by rank 0"
        ),
    )
    if device:
        g.add_argument(
            "--device",
            default="cpu",
            help="cpu or cuda (default cpu; with --distributed rank r uses cuda:LOCAL_RANK)",
        )
    if training:
        g.add_argument(
            "--autocast",
            choices=("bf16",),
            default=None,
            help="train the forward pass under torch.autocast in bfloat16 (weights stay float32)",
        )
        g.add_argument(
            "--checkpoint-steps",
            action="store_true",
            help="gradient checkpointing per unrolled step: recompute each step in the backward pass "
            "(same gradients, a fraction of the activation memory)",
        )
    else:
        g.add_argument("--autocast", default=None, metavar="DTYPE", help=argparse.SUPPRESS)
