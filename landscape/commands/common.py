"""What every command's ``run`` is wrapped in (:func:`scaled`): the device check and the torchrun job."""

from __future__ import annotations

import argparse

from landscape.distributed import setup, teardown
from landscape.errors import check_device

__all__ = ["scaled"]


def scaled(run):
    """Wrap a command's ``run(args)``: refuse analysis autocast, check ``--device``, join the torchrun job
    with ``--distributed`` (and leave it afterwards)."""
    import functools

    @functools.wraps(run)
    def wrapper(args: argparse.Namespace) -> int:
        if getattr(args, "autocast", None) is not None and args.command != "train":
            raise ValueError(
                f"--autocast {args.autocast}: analysis runs in float32 or float64 only "
                "(autocast is a training option; use --dtype float32 for speed)"
            )
        check_device(getattr(args, "device", "cpu"))
        if getattr(args, "device", "cpu").startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise ValueError(f"--device {args.device}: no CUDA device is available")
        if not getattr(args, "distributed", False):
            return run(args)
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
