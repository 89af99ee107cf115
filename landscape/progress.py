"""Progress for long work: a tqdm bar on a terminal, periodic one-line status with an ETA otherwise.

Off a terminal (a log file, CI, ``nohup``) tqdm would print nothing useful, so :func:`progress_bar`
returns a small reporter that writes ``desc: done/total (pct) elapsed, ETA`` to stderr at most every
``interval`` seconds and once at the end.  Both have ``update(n)`` and ``close()``.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

__all__ = ["progress_bar", "StatusLines"]


class StatusLines:
    """Periodic one-line progress with an ETA, for streams that are not a terminal."""

    def __init__(
        self, total: int, desc: str = "", unit: str = "it", interval: float = 10.0, file: TextIO | None = None
    ):
        """Start the clock; lines go to ``file`` (default stderr) at most every ``interval`` seconds."""
        self.total, self.desc, self.unit, self.interval = int(total), desc, unit, float(interval)
        self.file = file if file is not None else sys.stderr
        self.n = 0
        self.postfix = ""
        self.start = self._last = time.monotonic()
        self._closed = False

    def _line(self) -> str:
        el = time.monotonic() - self.start
        pct = 100.0 * self.n / self.total if self.total else 100.0
        eta = el / self.n * (self.total - self.n) if self.n else float("nan")
        eta_s = f"ETA {eta:.0f} s" if eta == eta else "ETA ?"
        extra = f", {self.postfix}" if self.postfix else ""
        return (
            f"{self.desc}: {self.n}/{self.total} {self.unit} ({pct:.0f}%), {el:.0f} s elapsed, {eta_s}{extra}"
        )

    def set_postfix(self, **values: Any) -> None:
        """Extra ``key=value`` fields on the next status line (tqdm's method of the same name)."""
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def update(self, n: int = 1) -> None:
        """Count ``n`` more units done; print a line when ``interval`` seconds have passed since the last."""
        self.n += n
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            print(self._line(), file=self.file, flush=True)

    def close(self) -> None:
        """Print the final line (the first call only)."""
        if not self._closed:
            self._closed = True
            print(self._line(), file=self.file, flush=True)

    def __enter__(self) -> StatusLines:
        """``self``: the reporter is its own context manager."""
        return self

    def __exit__(self, *exc: Any) -> None:
        """:meth:`close` on leaving the block."""
        self.close()


def progress_bar(
    total: int, desc: str = "", unit: str = "it", *, interval: float = 10.0, file: TextIO | None = None
) -> Any:
    """A tqdm bar when ``file`` (default stderr) is a terminal, else :class:`StatusLines`."""
    stream = file if file is not None else sys.stderr
    if getattr(stream, "isatty", lambda: False)():
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit=unit, file=stream)
    return StatusLines(total, desc, unit, interval, stream)
