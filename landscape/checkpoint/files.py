"""Where a checkpoint lives and what it is made of: its format tag, the files of a run folder
(:func:`run_files`), the path a command reads (:func:`resolve_checkpoint_path`) and the library versions
every checkpoint records (:func:`versions`)."""

from __future__ import annotations

import errno
import os
import platform
from pathlib import Path

import numpy
import torch

from landscape import __version__

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "CHECKPOINT_NAME",
    "RUN_FILES",
    "versions",
    "run_files",
    "resolve_checkpoint_path",
]

FORMAT = "landscape-checkpoint"
FORMAT_VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"
RUN_FILES = (CHECKPOINT_NAME, "metrics.json", "log.csv")


def versions() -> dict[str, str]:
    """The releases of landscape, torch, numpy and python, as every checkpoint records them."""
    return {
        "landscape": str(__version__),
        "torch": str(torch.__version__),  # TorchVersion is a str subclass that weights_only refuses
        "numpy": str(numpy.__version__),
        "python": platform.python_version(),
    }


def run_files(path: str | os.PathLike) -> list[Path]:
    """The files an input checkpoint stands for: itself, and the other files of its run folder
    (``metrics.json``, ``log.csv``) when it is a run's ``checkpoint.pt``.  No command may write them."""
    p = Path(path)
    if p.is_dir():
        p = p / CHECKPOINT_NAME
    files = [p]
    real = Path(os.path.realpath(p))  # a symlink stands for its run too
    for q in {p, real}:
        if q.name == CHECKPOINT_NAME:
            files += [q.parent / n for n in RUN_FILES if n != CHECKPOINT_NAME]
    return files


def resolve_checkpoint_path(path: str | os.PathLike) -> Path:
    """``path`` itself, or ``path/checkpoint.pt`` for a run directory; FileNotFoundError if absent."""
    p = Path(path)
    if p.is_dir():
        if not (p / CHECKPOINT_NAME).exists():
            raise FileNotFoundError(
                errno.ENOENT,
                f"directory {p} holds no {CHECKPOINT_NAME} (expected a checkpoint file or a run directory)",
                str(p / CHECKPOINT_NAME),
            )
        p = p / CHECKPOINT_NAME
    if not p.exists():
        raise FileNotFoundError(errno.ENOENT, "checkpoint not found", str(p))
    if not p.is_file():
        raise ValueError(f"checkpoint {p} is not a regular file")
    return p
