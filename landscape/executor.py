r"""Where independent pieces of work run: one interface, in the style of :mod:`concurrent.futures`.

An analysis splits into *items* that do not depend on each other (checkpoint × sample chunk × iterate,
blocks of a slice grid, whole checkpoints of ``claims``).  Code that has such items asks for an executor
and submits them:

.. code-block:: python

    from landscape.executor import current_executor

    ex = current_executor()                 # torch.distributed under torchrun, in-process otherwise
    futures = [ex.submit(work, item) for item in items]
    results = [f.result() for f in futures] # or: results = list(ex.map(work, items))

The :class:`Executor` protocol is ``submit(fn, *args, **kwargs) -> Future``, ``map(fn, *iterables)``,
``shutdown()``, plus three attributes for the results' owner: ``rank``, ``world_size`` and ``is_root``
(rank 0 writes the files), and ``share(obj)`` (rank 0's value of ``obj`` on every rank: a choice made once,
e.g. the HVP backend).  Futures are :class:`concurrent.futures.Future` objects.

Implementations:

* :class:`LocalExecutor` — runs each item at ``submit``, in this process (the default);
* :class:`PoolExecutor` — wraps any :class:`concurrent.futures.Executor`-like object (a thread or process
  pool, or a ``dask.distributed.Client``, whose ``submit``/``map`` return futures with ``result()``):
  this is how Dask or Ray plug in (Ray through ``ray.util`` 's ``concurrent.futures`` adapters, or a small
  class with ``submit`` returning a future).  The driver is the only process, so ``rank`` is 0;
* :class:`TorchDistributedExecutor` — every rank of a torchrun job runs the *same* program (SPMD): every rank
  submits the same items in the same order; item i of a round runs on rank ``i mod world_size`` (or in
  contiguous blocks, ``assign='block'``); asking any future for its result ends the round, a collective in
  which every rank takes part: each rank runs its own items, and ``all_gather_object`` gives every rank every
  result.  An item that raises makes every rank raise the same error (no rank is left waiting).  Inside an
  item, :func:`current_executor` is local, so a nested analysis never starts a collective of its own.

Results equal one process's because the items do: every seed in the analysis derives from what an item
measures (:mod:`landscape.seeding`), never from where it runs.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from typing import Any, Protocol, runtime_checkable

from landscape.errors import SharedError, error_line

__all__ = [
    "Executor",
    "LocalExecutor",
    "PoolExecutor",
    "TorchDistributedExecutor",
    "ItemError",
    "current_executor",
    "use_executor",
    "sample_chunks",
    "process_pool",
    "die_with_parent",
]


def sample_chunks(n: int, parts: int) -> list[range]:
    """``range(n)`` cut into at most ``parts`` contiguous, non-empty chunks whose sizes differ by at most one."""
    parts = max(1, min(int(parts), int(n)))
    return [range(n * i // parts, n * (i + 1) // parts) for i in range(parts)]


@runtime_checkable
class Executor(Protocol):
    """What landscape's analyses need from an executor (see the module docstring)."""

    rank: int
    world_size: int

    @property
    def is_root(self) -> bool:
        """Whether this process is rank 0, the one that writes the results."""
        ...

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """Schedule ``fn(*args, **kwargs)``; a future of its result."""
        ...

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any]) -> Iterator[Any]:
        """``fn`` on each tuple of ``zip(*iterables)``; an iterator over the results, in order."""
        ...

    def share(self, obj: Any) -> Any:
        """Rank 0's value of ``obj``, on every rank."""
        ...

    def shutdown(self, wait: bool = True) -> None:
        """Finish the work still pending and release the executor."""
        ...


class ItemError(RuntimeError):
    """An item failed on another rank with an error that is a bug (not one line); names the rank and item."""


class LocalExecutor:
    """Every item runs in this process, at ``submit`` (the futures are already done)."""

    rank = 0
    world_size = 1

    @property
    def is_root(self) -> bool:
        """True: this process is the only one."""
        return True

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """Run ``fn(*args, **kwargs)`` now; a done future holding its result or its exception."""
        f: Future = Future()
        try:
            f.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - delivered through the future, as concurrent.futures does
            f.set_exception(exc)
        return f

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any]) -> Iterator[Any]:
        """Run ``fn`` on every item now; an iterator over the results (an item's error raises here)."""
        return iter([fn(*args) for args in zip(*iterables)])

    def share(self, obj: Any) -> Any:
        """``obj`` itself (one process)."""
        return obj

    def shutdown(self, wait: bool = True) -> None:  # noqa: ARG002
        """Nothing to do: every item ran at ``submit``."""
        return None

    def __repr__(self) -> str:
        return "LocalExecutor()"


class PoolExecutor:
    """Items on any ``concurrent.futures``-style pool (thread/process pool, Dask client...), driven from here.

    ``pool.submit(fn, *args, **kwargs)`` must return an object with ``result()``; for a process pool or a
    cluster the functions and their arguments must pickle.
    """

    rank = 0
    world_size = 1

    def __init__(self, pool: Any):
        """Drive ``pool``; ``ValueError`` unless it has a callable ``submit``."""
        if not callable(getattr(pool, "submit", None)):
            raise ValueError(f"pool={pool!r}: expected an object with submit(fn, *args) returning a future")
        self.pool = pool

    @property
    def is_root(self) -> bool:
        """True: the driver is the only process that sees the results."""
        return True

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """``pool.submit(fn, *args, **kwargs)``: the pool's own future."""
        return self.pool.submit(fn, *args, **kwargs)

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any]) -> Iterator[Any]:
        """Submit every item to the pool, then wait for all; an iterator over the results, in order."""
        futures = [self.pool.submit(fn, *args) for args in zip(*iterables)]
        return iter([f.result() for f in futures])

    def share(self, obj: Any) -> Any:
        """``obj`` itself (the driver is the only process)."""
        return obj

    def shutdown(self, wait: bool = True) -> None:
        """Call the pool's ``shutdown(wait=wait)``, when it has one."""
        stop = getattr(self.pool, "shutdown", None)
        if callable(stop):
            stop(wait=wait)

    def __repr__(self) -> str:
        return f"PoolExecutor({self.pool!r})"


class TorchDistributedExecutor:
    """Items split across the ranks of a ``torch.distributed`` job (SPMD; see the module docstring).

    Args:
        assign: ``'round-robin'`` (item i of a round on rank ``i mod W``) or ``'block'`` (contiguous
            blocks of ``ceil(n / W)`` items).
        group: a process group (default: the whole job).
    """

    def __init__(self, *, assign: str = "round-robin", group: Any = None):
        """Join the running process group; ``ValueError`` without one or for an unknown ``assign``."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            raise ValueError(
                "TorchDistributedExecutor: no torch.distributed process group: launch with torchrun "
                "and --distributed (landscape.distributed.setup)"
            )
        if assign not in ("round-robin", "block"):
            raise ValueError(f"assign={assign!r}: expected 'round-robin' or 'block'")
        self.assign = assign
        self.group = group
        self.rank = dist.get_rank(group)
        self.world_size = dist.get_world_size(group)
        self._pending: list[tuple[Future, Callable[..., Any], tuple, dict]] = []
        self.rounds = 0
        self.items_run = 0

    @property
    def is_root(self) -> bool:
        """Whether this is rank 0 of the group."""
        return self.rank == 0

    def owner(self, i: int, n: int) -> int:
        """The rank that runs item ``i`` of a round of ``n`` items."""
        if self.assign == "block":
            per = -(-n // self.world_size)
            return i // per
        return i % self.world_size

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """Add ``fn(*args, **kwargs)`` to the round; the future's ``result()`` ends the round."""
        f = _RoundFuture(self)
        self._pending.append((f, fn, args, kwargs))
        return f

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any]) -> Iterator[Any]:
        """Run every item as one round (a collective); an iterator over all the results, in order."""
        futures = [self.submit(fn, *args) for args in zip(*iterables)]
        self.flush()
        return iter([f.result() for f in futures])

    def share(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (a broadcast, so a collective)."""
        import torch.distributed as dist

        box = [obj if self.is_root else None]
        dist.broadcast_object_list(box, src=0, group=self.group, device=_object_device())
        return box[0]

    def flush(self) -> None:
        """End the round: run this rank's items, then exchange every result (a collective)."""
        import torch.distributed as dist

        pending, self._pending = self._pending, []
        if not pending:
            return
        n = len(pending)
        mine: dict[int, tuple[str, Any]] = {}
        for i, (_, fn, args, kwargs) in enumerate(pending):
            if self.owner(i, n) != self.rank:
                continue
            try:
                with use_executor(LocalExecutor()):  # nested work stays on this rank
                    mine[i] = ("ok", fn(*args, **kwargs))
            except Exception as exc:  # noqa: BLE001 - sent to every rank, raised there
                mine[i] = ("error", _portable_error(exc, self.rank, i))
            self.items_run += 1
        every: list[Any] = [None] * self.world_size
        dist.all_gather_object(every, mine, group=self.group)
        self.rounds += 1
        got: dict[int, tuple[str, Any]] = {}
        for part in every:
            got.update(part)
        for i, (f, *_rest) in enumerate(pending):
            status, value = got[i]
            if status == "ok":
                f.set_result(value)
            else:
                f.set_exception(value)

    def shutdown(self, wait: bool = True) -> None:  # noqa: ARG002
        """End a round still pending (:meth:`flush`), so no rank is left waiting in it."""
        if self._pending:
            self.flush()

    def __repr__(self) -> str:
        return f"TorchDistributedExecutor(rank={self.rank}, world_size={self.world_size}, assign={self.assign!r})"


class _RoundFuture(Future):
    """A future of a :class:`TorchDistributedExecutor` round: ``result()`` ends the round (a collective)."""

    def __init__(self, executor: TorchDistributedExecutor):
        super().__init__()
        self._executor = executor

    def result(self, timeout: float | None = None) -> Any:
        if not self.done():
            self._executor.flush()
        return super().result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        if not self.done():
            self._executor.flush()
        return super().exception(timeout)


def _object_device() -> Any:
    import torch
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return None


def _portable_error(exc: Exception, rank: int, item: int) -> Exception:
    """``exc`` as every rank can raise it: a one-line error stays itself (quiet away from its rank)."""
    import pickle

    line = error_line(exc)
    if line is not None and isinstance(exc, ValueError):
        return _shared(line, rank)
    try:
        pickle.dumps(exc)
        if line is not None:
            return exc
    except Exception:  # noqa: BLE001 - an unpicklable exception travels as text
        pass
    return ItemError(f"item {item} failed on rank {rank}: {type(exc).__name__}: {exc}")


def _shared(line: str, rank: int) -> Exception:
    err = SharedError(line)
    err.origin_rank = rank  # type: ignore[attr-defined]
    return err


_CURRENT: contextvars.ContextVar[Any] = contextvars.ContextVar("landscape_executor", default=None)


@contextlib.contextmanager
def use_executor(executor: Any) -> Iterator[Any]:
    """Make ``executor`` what :func:`current_executor` returns inside the block."""
    token = _CURRENT.set(executor)
    try:
        yield executor
    finally:
        _CURRENT.reset(token)


_DIST_EXECUTOR: TorchDistributedExecutor | None = None


def current_executor() -> Any:
    """The executor for work submitted here: the one set by :func:`use_executor`; else a
    :class:`TorchDistributedExecutor` when a ``torch.distributed`` process group is running (torchrun with
    ``--distributed``); else a :class:`LocalExecutor`."""
    global _DIST_EXECUTOR
    ex = _CURRENT.get()
    if ex is not None:
        return ex
    try:
        import torch.distributed as dist

        running = dist.is_available() and dist.is_initialized()
    except ImportError:  # pragma: no cover
        running = False
    if running:
        if _DIST_EXECUTOR is None or _DIST_EXECUTOR.world_size != dist.get_world_size():
            _DIST_EXECUTOR = TorchDistributedExecutor()
        return _DIST_EXECUTOR
    _DIST_EXECUTOR = None
    return LocalExecutor()


# -------------------------------------------------------------------------------------------------
# local worker processes that never outlive their parent
# -------------------------------------------------------------------------------------------------
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent: int) -> None:
    """Make this process (a pool worker) end when its parent ``parent`` dies, however it dies (SIGKILL too).

    On Linux the kernel does it: ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` through ctypes.  Everywhere, and as a
    fallback, a daemon thread checks ``os.getppid()`` every 0.5 s and ends the process (``os._exit``) once
    it is no longer ``parent`` (the orphan was adopted by init or a subreaper).  A parent that died before
    this call is noticed at once.
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no libc prctl: the watchdog alone
            pass
    if os.getppid() != parent:  # the parent died before the request above took effect
        os._exit(1)
    threading.Thread(
        target=_watch_parent, args=(parent,), name="landscape-parent-watchdog", daemon=True
    ).start()


def _watch_parent(parent: int, interval: float = 0.5) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(1)
        time.sleep(interval)


def _start_worker(parent: int, initializer: Callable[..., Any] | None, initargs: tuple) -> None:
    die_with_parent(parent)
    if initializer is not None:
        initializer(*initargs)


def process_pool(workers: int, *, initializer: Callable[..., Any] | None = None, initargs: tuple = ()) -> Any:
    """A ``concurrent.futures.ProcessPoolExecutor`` of ``workers`` spawned processes that die with this one
    (:func:`die_with_parent`: a SIGKILLed ``landscape experiment --workers W`` leaves no worker holding its
    caller's pipes), each running ``initializer(*initargs)`` first.  Wrap it in :class:`PoolExecutor`."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(os.getpid(), initializer, tuple(initargs)),
    )
