"""One place for argument checks: every bad value raises ``ValueError`` naming the value and what was expected."""

from __future__ import annotations

import math

__all__ = ["check", "check_positive_int", "check_nonneg_float", "check_device", "MissingDependency"]


def check(condition: bool, message: str) -> None:
    """Raise ``ValueError(message)`` unless ``condition`` holds."""
    if not condition:
        raise ValueError(message)


def check_positive_int(value: object, name: str, minimum: int = 1) -> int:
    """Return ``value`` as an int, or raise ``ValueError`` unless it is an integer ``>= minimum``."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    check(ok, f"{name}={value!r}: expected an integer >= {minimum}")
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
    import re

    ok = isinstance(value, str) and re.fullmatch(r"cpu|cuda(:\d{1,3})?", value) is not None
    check(ok, f"{name} {value!r}: expected cpu, cuda or cuda:N (N a device number)")
    return value  # type: ignore[return-value]


class MissingDependency(RuntimeError):
    """An optional package or tool a feature needs is missing; the message names it and how to get it.

    The CLI prints it as one line and exits with code 2, like a bad argument.
    """
