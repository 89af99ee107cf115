"""Atomic file output: write to a temporary file in the same folder, flush, fsync, then rename.

A crash at any moment leaves either the old file or the new one in place, never half of one.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write", "write_json", "write_text", "json_safe", "check_writable"]


def check_writable(path: str | os.PathLike, *, what: str = "output", create: bool = True) -> Path:
    """Return ``path`` as a Path, creating its parent folder; ``ValueError`` if it cannot be written.

    With ``create=False`` nothing is created: only the nearest existing ancestor is checked (a folder, and
    writable), so a long computation can fail early without leaving an empty folder behind.
    """
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{what} path {str(p)!r} is a directory: expected a file path")
    for parent in p.parents:  # the nearest existing ancestor must be a folder
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{what} path {str(p)!r} cannot be written: {str(parent)!r} is a file, not a folder")
            if not create and not os.access(parent, os.W_OK):
                raise ValueError(f"{what} path {str(p)!r} cannot be written: folder {str(parent)!r} is not writable")
            break
    if not create:
        return p
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{what} path {str(p)!r} cannot be written: {exc.strerror or exc}") from None
    if not os.access(p.parent, os.W_OK):
        raise ValueError(f"{what} path {str(p)!r} cannot be written: folder {str(p.parent)!r} is not writable")
    return p


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(fh)`` on a temporary binary file beside ``path``, then atomically replace ``path``.

    The result has the permissions of the file it replaces, or the usual ``0o666 & ~umask`` for a new
    file (``mkstemp`` alone would leave it readable by its owner only).
    """
    p = check_writable(path)
    mode = (p.stat().st_mode & 0o777) if p.exists() else (0o666 & ~_umask())
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(p.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return p


def json_safe(obj: Any) -> Any:
    """Convert tensors, numpy values, tuples and non-finite floats into plain JSON values.

    NaN and ±Inf become the strings ``"nan"``, ``"inf"``, ``"-inf"`` so the file stays strict JSON.
    """
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        return json_safe(obj.to_dict())
    if hasattr(obj, "tolist") and callable(obj.tolist):  # torch / numpy
        return json_safe(obj.tolist())
    if isinstance(obj, float):
        if math.isnan(obj):
            return "nan"
        if math.isinf(obj):
            return "inf" if obj > 0 else "-inf"
        return obj
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def write_json(path: str | os.PathLike, obj: Any, *, indent: int = 2) -> Path:
    """Atomically write ``obj`` (made JSON-safe) to ``path``."""
    text = json.dumps(json_safe(obj), indent=indent, allow_nan=False) + "\n"
    return atomic_write(path, lambda fh: fh.write(text.encode()))


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write UTF-8 ``text`` to ``path``."""
    return atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))
