"""One place for errors: argument checks (every bad value raises ``ValueError`` naming the value and what was
expected), the error kinds (:class:`UsageError`, :class:`SharedError`, :class:`MissingDependency`), and
:func:`error_line`, the one line the CLI and every rank of a distributed job print for an error."""

from __future__ import annotations

import math
import os
import re
import sys

from landscape.io import format_bytes

__all__ = [
    "check",
    "check_positive_int",
    "COUNT_LIMITS",
    "count_limit",
    "check_count",
    "limit_reason",
    "check_nonneg_float",
    "check_device",
    "check_finite",
    "MissingDependency",
    "UsageError",
    "SharedError",
    "error_line",
    "one_line_warning",
]


def check(condition: bool, message: str) -> None:
    """Raise ``ValueError(message)`` unless ``condition`` holds."""
    if not condition:
        raise ValueError(message)


def check_positive_int(value: object, name: str, minimum: int = 1) -> int:
    """Return ``value`` as an int, or raise ``ValueError`` unless it is an integer ``>= minimum``."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    check(ok, f"{name}={value!r}: expected an integer >= {minimum}")
    return int(value)  # type: ignore[arg-type]


#: The largest value of each count (one place: the CLI's argparse types, ``landscape.commands.args.int_min``,
#: and the API checks, :func:`check_count`, use these).  A count past its bound is a typo, refused before any
#: work: ``--seeds 1000000000`` built a plan until memory ran out, ``-K 1000000`` unrolled for hours,
#: ``--threads 100000`` failed inside torch.  ``threads`` and ``workers`` follow the machine (:func:`count_limit`).
COUNT_LIMITS: dict[str, int] = {
    "seeds": 1000,
    "study_seeds": 1000,
    "n_iter": 1000,
    "epochs": 100_000,
    "batch_size": 1_000_000,
    "patience": 100_000,
    "lr_decays": 100,
    "epoch_passes": 10_000,
    "snapshots": 10_000,
    "attack_steps": 100_000,
    "pgd_steps": 100_000,
    "probes": 1000,
}


def count_limit(name: str) -> int:
    """The bound of count ``name``: :data:`COUNT_LIMITS`, or for ``threads`` and ``workers`` four times this
    machine's cores (at least 64)."""
    if name in ("threads", "workers"):
        return max(64, 4 * (os.cpu_count() or 1))
    return COUNT_LIMITS[name]


def limit_reason(name: str) -> str:
    """Why option ``name`` has the upper limit it has, as a parenthesised clause for its error line ('' if none)."""
    if name in ("threads", "workers"):
        return f" (the larger of 64 and 4 x this machine's {os.cpu_count() or 1} cores)"
    return ""


def check_count(value: object, name: str, minimum: int = 1, *, flag: str | None = None) -> int:
    """Return ``value`` as an int, or raise ``ValueError`` (one line naming it and the bound) unless it is an
    integer ``minimum..count_limit(name)``.  ``flag`` names it as the CLI does (``--seeds``)."""
    hi = count_limit(name)
    ok = isinstance(value, int) and not isinstance(value, bool) and minimum <= value <= hi
    what = f"{flag} {value!r}" if flag else f"{name}={value!r}"
    check(ok, f"{what}: expected an integer {minimum}..{hi}{limit_reason(name)}")
    return int(value)  # type: ignore[arg-type]


def check_nonneg_float(value: object, name: str) -> float:
    """Return ``value`` as a float, or raise ``ValueError`` unless it is a finite number ``>= 0``."""
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r}: expected a finite number >= 0") from None
    check(math.isfinite(v) and v >= 0, f"{name}={value!r}: expected a finite number >= 0")
    return v


def check_device(value: object, name: str = "--device") -> str:
    """Return ``value`` if it names a device landscape runs on: ``cpu``, ``cuda`` or ``cuda:N``."""
    ok = isinstance(value, str) and re.fullmatch(r"cpu|cuda(:\d{1,3})?", value) is not None
    check(ok, f"{name} {value!r}: expected cpu, cuda or cuda:N (N a device number)")
    return value  # type: ignore[return-value]


def check_finite(t: object, name: str, sample_ids: object = None) -> None:
    """Raise ``ValueError`` unless the batch-first tensor ``t`` holds only finite values.

    The one line names ``name``, how many entries are NaN and how many ±Inf, and the samples (the index along
    the first dimension, or ``sample_ids[i]`` when given) that hold them, e.g. ``y has 2 non-finite entries
    (1 NaN, 1 Inf) in sample 3 (of 8): expected finite values``.  Duck-typed on torch's tensor methods, so this
    module imports no torch.
    """
    check(
        hasattr(t, "isfinite") and hasattr(t, "isnan"),
        f"{name} is a {type(t).__name__}: expected a torch.Tensor",
    )
    bad = ~t.isfinite()  # type: ignore[attr-defined]
    n_bad = int(bad.sum())
    if n_bad == 0:
        return
    n_nan = int(t.isnan().sum())  # type: ignore[attr-defined]
    rows = bad.reshape(bad.shape[0], -1).any(1) if bad.dim() else bad.reshape(1)
    where = [int(i) for i in rows.nonzero().flatten().tolist()]
    if sample_ids is not None:
        where = [int(sample_ids[i]) for i in where]  # type: ignore[index]
    shown = ", ".join(map(str, where[:8])) + (f", … ({len(where)} samples)" if len(where) > 8 else "")
    raise ValueError(
        f"{name} has {n_bad} non-finite entries ({n_nan} NaN, {n_bad - n_nan} Inf) in "
        f"sample{'s' if len(where) > 1 else ''} {shown} (of {rows.shape[0]}): expected finite values"
    )


class MissingDependency(RuntimeError):
    """An optional package or tool a feature needs is missing; the message names it and how to get it.

    The CLI prints it as one line and exits with code 2, like a bad argument.
    """


class UsageError(Exception):
    """Bad command-line input; printed as one line, exit code 2."""


class SharedError(ValueError):
    """An error every rank of the job raises (found by one rank, sent to the others).

    :func:`landscape.cli.main` prints it on rank 0 only, so a failed job says it once.
    """

    shared = True


#: torch.distributed's errors (a closed connection to a dead rank, a timeout): one line, not a traceback
_DIST_ERRORS = ("DistError", "DistBackendError", "DistNetworkError", "DistStoreError")

_ALLOCATOR_TEXT = (
    "not enough memory",
    "defaultcpuallocator",
    "out of memory",
    "can't allocate memory",
    "cannot allocate memory",
)


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    return lines[0] if lines else ""


def error_line(exc: BaseException) -> str | None:
    """The one line ``main`` prints for ``exc``, or None for an exception that is a bug (re-raised)."""
    if isinstance(exc, (UsageError, ValueError)):
        return _first_line(str(exc)) or type(exc).__name__
    if isinstance(
        exc, MissingDependency
    ):  # an optional extra or tool is missing: the message says how to get it
        return _first_line(str(exc)) or type(exc).__name__
    if isinstance(exc, re.error):
        where = f" in {exc.pattern!r}" if getattr(exc, "pattern", None) is not None else ""
        return f"bad regular expression{where}: {exc.msg if hasattr(exc, 'msg') else exc}"
    if isinstance(exc, MemoryError) or _is_allocator_error(exc):
        m = re.search(r"allocate (\d+) bytes", str(exc))
        size = ""
        if m:
            size = f" ({format_bytes(int(m.group(1)))} requested)"
        return (
            f"out of memory{size}: {_first_line(str(exc))[:160] or type(exc).__name__} "
            "(use fewer samples, a smaller grid or --memory-mb)"
        )
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
    return (
        isinstance(exc, RuntimeError)
        and ("gloo" in text or "nccl" in text)
        and any(t in text for t in ("connection", "timed out", "timeout", "peer"))
    )


def _is_allocator_error(exc: BaseException) -> bool:
    oom = getattr(__import__("torch"), "OutOfMemoryError", None) if "torch" in sys.modules else None
    if oom is not None and isinstance(exc, oom):
        return True
    return isinstance(exc, RuntimeError) and any(t in str(exc).lower() for t in _ALLOCATOR_TEXT)


def one_line_warning(prog: str):
    """A ``warnings.formatwarning`` that prints ``PROG: warning: TEXT (Category)``, one line (the CLI's, and a
    worker process's of ``landscape experiment --workers``)."""

    def format_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ARG001
        text = " ".join(str(message).split())
        return f"{prog}: warning: {text} ({category.__name__})\n"

    return format_warning
