"""Flags every command shares: ``--threads`` with a default that fits the cores that are free, ``--export``."""

from __future__ import annotations

import argparse
import os

__all__ = ["add_threads_argument", "default_threads", "apply_threads", "add_scale_arguments", "scaled", "export_formats"]


def export_formats(text: str) -> tuple[str, ...]:
    """``--export``'s value: figure formats, comma-separated (landscape.export.FORMATS)."""
    from landscape.export import FORMATS

    fmts = tuple(f.strip().lower().lstrip(".") for f in text.split(",") if f.strip())
    bad = [f for f in fmts if f not in FORMATS]
    if not fmts or bad:
        raise argparse.ArgumentTypeError(f"{text!r}: expected one or more of {', '.join(FORMATS)}, comma-separated")
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


def add_scale_arguments(p: argparse.ArgumentParser, *, device: bool = True, training: bool = False) -> None:
    """``--distributed`` (under torchrun), ``--device`` (unless the command has one) and ``--autocast``.

    Analysis commands take ``--autocast`` only to refuse it in one line: analysis runs in float32 or float64.
    """
    g = p.add_argument_group("scale-out (see docs/DISTRIBUTED.md)")
    g.add_argument("--distributed", action="store_true",
                   help="run as one rank of a torchrun job: " + (
                       "DistributedDataParallel, the batch split across the ranks, rank 0 writes" if training else
                       "the work split into items across the ranks, gathered and written by rank 0"))
    if device:
        g.add_argument("--device", default="cpu", help="cpu or cuda (default cpu; with --distributed rank r uses "
                       "cuda:LOCAL_RANK)")
    if training:
        g.add_argument("--autocast", choices=("bf16",), default=None,
                       help="train the forward pass under torch.autocast in bfloat16 (weights stay float32)")
        g.add_argument("--checkpoint-steps", action="store_true",
                       help="gradient checkpointing per unrolled step: recompute each step in the backward pass "
                            "(same gradients, a fraction of the activation memory)")
    else:
        g.add_argument("--autocast", default=None, metavar="DTYPE", help=argparse.SUPPRESS)


def scaled(run):
    """Wrap a command's ``run(args)``: refuse analysis autocast, check ``--device``, join the torchrun job
    with ``--distributed`` (and leave it afterwards)."""
    import functools

    @functools.wraps(run)
    def wrapper(args: argparse.Namespace) -> int:
        from landscape.errors import check_device

        if getattr(args, "autocast", None) is not None and args.command != "train":
            raise ValueError(f"--autocast {args.autocast}: analysis runs in float32 or float64 only "
                             "(autocast is a training option; use --dtype float32 for speed)")
        check_device(getattr(args, "device", "cpu"))
        if getattr(args, "device", "cpu").startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise ValueError(f"--device {args.device}: no CUDA device is available")
        if not getattr(args, "distributed", False):
            return run(args)
        from landscape.distributed import setup, teardown

        ctx = setup(args.device)
        args.device = ctx.device
        ok = False
        try:
            code = run(args)
            ok = True
            return code
        finally:
            teardown(synchronize=ok)

    return wrapper
