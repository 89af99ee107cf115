r"""Running under ``torchrun``: the process group, per-rank streams, and data-parallel training.

``landscape CMD ... --distributed`` is launched by ``torchrun`` (one process per rank; see
``docs/DISTRIBUTED.md`` for the commands).  :func:`setup` reads torchrun's environment (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``), starts the process group (gloo on the CPU,
NCCL with ``--device cuda``: rank r uses ``cuda:LOCAL_RANK``) and returns a :class:`DistContext`.

Training (:class:`DistributedTrainer`) is the ordinary :class:`~landscape.train.Trainer` with four parts
replaced:

* **data** — every rank walks the same global batches (the batch order, and with ``fresh_noise`` the
  batch noise, come from the one ``data`` stream shared by all ranks, exactly as in one process) and takes a
  contiguous share of each batch: rank r of W gets rows ``⌊rB/W⌋ .. ⌊(r+1)B/W⌋`` of a batch of B.  Its loss is
  weighted by ``B_r W / B``, so DistributedDataParallel's gradient average is the gradient of the mean
  loss over the whole batch: a W-rank run of the ``mse`` strategy reaches the weights of a one-process run
  with the same ``--batch-size`` (to rounding; tested).  This is DistributedSampler's split applied per
  batch, so a step sees the same samples whatever W;
* **noise** — the jitter and strategy streams (SGD jitter, input jitter, PGD's random start) are seeded
  per ``(seed, rank, world_size)``, so a jittered run is reproducible for a fixed world size (and W = 1 is
  the one-process run).  The ``paper`` jitter rule's batch max is taken over a rank's share of the batch;
* **writing** — only rank 0 takes the run lock and writes ``checkpoint.pt``, ``log.csv`` and
  ``metrics.json``; the checkpoint also holds every rank's generator states (``rng['jitter@rank1']`` ...), so
  ``--resume`` under the same world size continues every stream exactly.  Rank 0 reads the checkpoint and
  sends it to the others (no shared file system needed).  A resume with another world size is refused;
* **validation** — each rank scores a contiguous share of the validation pairs and the sums are reduced.

Failures: an error that rank 0 finds before the work (a run already in ``--out``, a bad resume state) is
sent to every rank, and every rank exits with it (only rank 0 prints it).  A rank that dies makes its
peers' next collective fail (gloo and NCCL notice the closed connection), and torchrun stops the job.
"""

from __future__ import annotations

import datetime
import os
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from landscape.checkpoint import CHECKPOINT_NAME, read_checkpoint
from landscape.errors import SharedError, check, error_line
from landscape.io import RunLock, write_json
from landscape.seeding import training_seed
from landscape.train import Trainer

__all__ = [
    "TORCHRUN_ENV",
    "DistContext",
    "SharedError",
    "StoppedByLauncher",
    "launched_by_torchrun",
    "setup",
    "teardown",
    "exit_process",
    "current_context",
    "root_first",
    "rank_seed_tag",
    "DistributedTrainer",
    "make_distributed_trainer",
]

#: The variables torchrun sets for every worker; all of them are needed.
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")

_DEFAULT_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in the job."""

    rank: int
    world_size: int
    local_rank: int
    backend: str
    device: str

    @property
    def is_root(self) -> bool:
        """Whether this process is rank 0, the one that writes."""
        return self.rank == 0

    def to_dict(self) -> dict[str, Any]:
        """The context as a JSON-safe dict of its fields."""
        return {
            "rank": self.rank,
            "world_size": self.world_size,
            "local_rank": self.local_rank,
            "backend": self.backend,
            "device": self.device,
        }


def launched_by_torchrun() -> bool:
    """Whether torchrun's worker environment is present (:data:`TORCHRUN_ENV`)."""
    return all(os.environ.get(k, "").strip() for k in TORCHRUN_ENV)


def _timeout_s() -> float:
    text = os.environ.get("LANDSCAPE_DIST_TIMEOUT_S", "").strip()
    if not text:
        return _DEFAULT_TIMEOUT_S
    try:
        v = float(text)
    except ValueError:
        raise ValueError(f"LANDSCAPE_DIST_TIMEOUT_S={text!r}: expected a number of seconds > 0") from None
    check(v > 0, f"LANDSCAPE_DIST_TIMEOUT_S={text!r}: expected a number of seconds > 0")
    return v


_CONTEXT: DistContext | None = None


def current_context() -> DistContext | None:
    """The context :func:`setup` made in this process (None outside a distributed run)."""
    return _CONTEXT


class StoppedByLauncher(RuntimeError):
    """torchrun sent this rank SIGTERM: another rank failed, or the job was cancelled.

    Raised by the SIGTERM handler :func:`setup` installs, so :func:`landscape.cli.main` prints it as the
    command's one error line (``landscape <cmd>: error: ...``) and returns 2.
    """


def _on_sigterm(signum, frame) -> None:  # noqa: ARG001
    raise StoppedByLauncher(_stopped_line())


def _stopped_line() -> str:
    ctx = _CONTEXT
    who = f"rank {ctx.rank} of {ctx.world_size}" if ctx else "this rank"
    return f"{who} stopped by the launcher (another rank failed or the job was cancelled)"


def setup(device: str = "cpu", *, flag: str = "--distributed") -> DistContext:
    """Join the torchrun job: start the process group and return this process's :class:`DistContext`.

    ``device`` ``cpu`` uses gloo; ``cuda`` uses NCCL with ``cuda:LOCAL_RANK``.  Without torchrun's
    environment it raises one line naming what is missing.  Idempotent within a process.
    """
    global _CONTEXT
    import torch.distributed as dist

    if _CONTEXT is not None and dist.is_available() and dist.is_initialized():
        return _CONTEXT
    missing = [k for k in TORCHRUN_ENV if not os.environ.get(k, "").strip()]
    check(
        not missing,
        f"{flag}: no torchrun environment ({', '.join(missing)} unset): launch with "
        "'torchrun --nproc_per_node N -m landscape.cli ...' (see docs/DISTRIBUTED.md), or drop " + flag,
    )
    check(dist.is_available(), f"{flag}: this torch build has no torch.distributed")
    try:
        rank, world, local = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    except ValueError:
        raise ValueError(
            f"{flag}: RANK={os.environ['RANK']!r}, WORLD_SIZE={os.environ['WORLD_SIZE']!r}, "
            f"LOCAL_RANK={os.environ['LOCAL_RANK']!r}: expected integers"
        ) from None
    check(
        world >= 1 and 0 <= rank < world,
        f"{flag}: RANK={rank} WORLD_SIZE={world}: expected 0 <= RANK < WORLD_SIZE",
    )
    check(
        device in ("cpu", "cuda"),
        f"--device {device!r} with {flag}: expected cpu or cuda (rank r uses cuda:LOCAL_RANK, never one fixed GPU)",
    )
    if device == "cuda":
        check(torch.cuda.is_available(), f"--device cuda with {flag}: no CUDA device is available")
        n = torch.cuda.device_count()
        check(
            local < n,
            f"{flag}: LOCAL_RANK={local} but this node has {n} CUDA device(s): expected "
            "--nproc_per_node <= the number of GPUs",
        )
        torch.cuda.set_device(local)
        backend, dev = "nccl", f"cuda:{local}"
    else:
        backend, dev = "gloo", "cpu"
    timeout = datetime.timedelta(seconds=_timeout_s())
    dist.init_process_group(
        backend=backend, timeout=timeout, **({"device_id": torch.device(dev)} if backend == "nccl" else {})
    )
    _CONTEXT = DistContext(rank=rank, world_size=world, local_rank=local, backend=backend, device=dev)
    try:
        signal.signal(
            signal.SIGTERM, _on_sigterm
        )  # torchrun stops the survivors of a failed rank with SIGTERM
    except ValueError:  # not the main thread
        pass
    return _CONTEXT


def teardown(*, synchronize: bool = False) -> None:
    """Leave the process group (safe to call when none was started).

    ``synchronize`` (after a command that succeeded on this rank) first waits at a barrier, so no rank
    leaves while another still writes or gathers.  Then the garbage is collected before the group is
    destroyed: a DistributedDataParallel wrapper still alive keeps the gloo group (and its worker threads)
    alive into interpreter finalization, where their clean-up can abort the process ("terminate called
    without an active exception").  :func:`exit_process` is the last step of a torchrun worker.
    """
    global _CONTEXT
    import gc

    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        if synchronize and dist.get_world_size() > 1:
            dist.barrier()
        gc.collect()
        dist.destroy_process_group()
    _CONTEXT = None


def exit_process(code: int) -> None:
    """End a torchrun worker with ``code`` once its output is flushed, skipping interpreter finalization.

    Every file a command writes is complete and closed (atomic writes) before the command returns, so
    nothing is lost; what is skipped is the tear-down of torch's C++ threads at finalization, which is
    where a gloo worker can abort with SIGABRT after a successful run (pytorch/pytorch#179291).
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _error_line(exc: BaseException) -> str | None:
    return error_line(exc)


def broadcast_object(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's ``obj`` on every rank."""
    import torch.distributed as dist

    if ctx.world_size == 1:
        return obj
    box = [obj if ctx.is_root else None]
    dist.broadcast_object_list(box, src=0, device=torch.device(ctx.device) if ctx.backend == "nccl" else None)
    return box[0]


def root_first(fn: Callable[[], Any], ctx: DistContext) -> Any:
    """Run ``fn`` on rank 0 and send its result (or its one-line error) to every rank.

    On rank 0 an error is re-raised as it was; the other ranks raise :class:`SharedError` with the same
    line (the CLI prints it once, on rank 0).  A failure that is not one line (a bug) is sent too, so no
    rank is left waiting.
    """
    out: Any = None
    err: BaseException | None = None
    msg = None
    if ctx.is_root:
        try:
            out = fn()
        except Exception as exc:  # noqa: BLE001 - sent to the peers, then re-raised here
            err = exc
            msg = _error_line(exc) or f"{type(exc).__name__} on rank 0: {exc}"
    box = broadcast_object([msg, None if err is not None else out], ctx)
    if err is not None:
        raise err
    if box[0] is not None:
        raise SharedError(box[0])
    return box[1]


def rank_seed_tag(tag: str, rank: int, world_size: int) -> str:
    """The seed tag of stream ``tag`` on ``rank`` of ``world_size`` (``tag`` itself for one process)."""
    return tag if world_size == 1 else f"{tag}/rank{rank}of{world_size}"


def _kill_hook(rank: int) -> int | None:
    """Test hook ``LANDSCAPE_TEST_KILL_RANK=R:S``: rank R SIGKILLs itself at its training step S."""
    text = os.environ.get("LANDSCAPE_TEST_KILL_RANK", "").strip()
    if not text:
        return None
    r, _, s = text.partition(":")
    try:
        return int(s) if int(r) == rank else None
    except ValueError:
        raise ValueError(f"LANDSCAPE_TEST_KILL_RANK={text!r}: expected RANK:STEP (integers)") from None


class _DDPView:
    """The DDP wrapper as a strategy sees it: calls go through DDP, attributes come from the network."""

    def __init__(self, ddp: Any):
        self._ddp = ddp
        self.module = ddp.module

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._ddp(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.module, name)


def _split(n: int, rank: int, world: int) -> tuple[int, int]:
    return n * rank // world, n * (rank + 1) // world


def _check_batches(config: Any, world: int) -> None:
    n, b = int(config.train_size), int(config.batch_size)
    check(
        b >= world,
        f"--batch-size {b} with {world} ranks: expected a batch size >= the world size "
        "(the batch is split across the ranks)",
    )
    last = n % b
    check(
        last == 0 or last >= world,
        f"--train-size {n} with --batch-size {b} leaves a last batch of {last} for {world} ranks: expected a "
        f"train size whose last batch has at least {world} samples (or a multiple of {b})",
    )


class DistributedTrainer(Trainer):
    """A :class:`~landscape.train.Trainer` for one rank of a torchrun job (see the module docstring).

    Use like a Trainer: ``make_distributed_trainer(config, ctx, out_dir=...).fit()`` (or
    ``DistributedTrainer(config, ctx, ...)``).  It replaces the Trainer's hooks: per-rank noise streams, this
    rank's share of every batch through the gradient-averaging DDP wrapper, all-reduced losses and validation,
    every rank's generator states in the checkpoint (written by rank 0 only), and resuming from rank 0's file.
    """

    def __init__(self, config: Any, ctx: DistContext, **kw: Any):
        """Check that each batch splits over the ranks, build the Trainer and wrap its model in DDP."""
        _check_batches(config, ctx.world_size)
        self.ctx = ctx
        if not ctx.is_root:
            kw["progress"] = False
        super().__init__(config, **kw)
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [self.device.index] if self.device.type == "cuda" else None
        self._ddp = DDP(self.model, device_ids=ids)
        self._view = _DDPView(self._ddp)
        self._kill_at = _kill_hook(ctx.rank)
        self._steps_seen = 0

    # -- streams ------------------------------------------------------------------------------
    def _seed_generators(self) -> None:
        for tag in ("jitter", "strategy"):  # the data stream (batch order, fresh noise) is shared
            self.generators[tag].manual_seed(
                training_seed(self.config.seed, rank_seed_tag(tag, self.ctx.rank, self.ctx.world_size))
            )

    # -- one step -----------------------------------------------------------------------------
    @property
    def _train_model(self) -> Any:
        return self._view

    def _epoch_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, float]]:
        W, r = self.ctx.world_size, self.ctx.rank
        for xb, yb in self.train_set.batches(self.config.batch_size, generator=self.generators["data"]):
            n = xb.shape[0]
            lo, hi = _split(n, r, W)
            self._steps_seen += 1
            if self._kill_at is not None and self._steps_seen >= self._kill_at:
                stamp = os.environ.get("LANDSCAPE_TEST_KILL_STAMP")
                if stamp:  # when the kill happened, for the test that times the job's failure
                    import time

                    with open(stamp, "w") as fh:
                        fh.write(repr(time.time()))
                os.kill(os.getpid(), signal.SIGKILL)
            yield xb[lo:hi], yb[lo:hi], (hi - lo) * W / n

    def _reduce_loss(self, value: float, n: int) -> tuple[float, int]:
        import torch.distributed as dist

        t = torch.tensor([value * n, float(n)], dtype=torch.float64, device=self._comm_device)
        dist.all_reduce(t)
        total, count = (float(v) for v in t.cpu())
        return total / count, int(round(count))

    @property
    def _comm_device(self) -> torch.device:
        return torch.device(self.ctx.device) if self.ctx.backend == "nccl" else torch.device("cpu")

    # -- validation ---------------------------------------------------------------------------
    def validate(self) -> dict[str, float]:
        """Validation loss, PSNR and SSIM over all ranks: each scores its share, the sums are all-reduced."""
        import torch.distributed as dist

        x, y = self.val_pairs.x, self.val_pairs.y
        lo, hi = _split(x.shape[0], self.ctx.rank, self.ctx.world_size)
        sums = torch.zeros(4, dtype=torch.float64)
        if hi > lo:
            parts = self._validation_values(x[lo:hi], y[lo:hi])
            sums[:3] = torch.stack([p.sum() for p in parts])
            sums[3] = hi - lo
        sums = sums.to(self._comm_device)
        dist.all_reduce(sums)
        s = sums.cpu()
        return {
            "val_loss": float(s[0] / s[3]),
            "val_psnr": float(s[1] / s[3]),
            "val_ssim": float(s[2] / s[3]),
        }

    # -- writing and resuming -----------------------------------------------------------------
    def _rng_states(self) -> dict[str, torch.Tensor]:
        import torch.distributed as dist

        mine = {k: g.get_state() for k, g in self.generators.items() if k != "data"}
        every: list[Any] = [None] * self.ctx.world_size
        dist.all_gather_object(every, mine)
        states = {k: g.get_state() for k, g in self.generators.items()}  # rank 0's under the plain names
        for r, st in enumerate(every):
            for k, v in st.items():
                states[f"{k}@rank{r}"] = v
        return states

    def _run_config(self) -> dict[str, Any]:
        d = super()._run_config()
        d["distributed"] = {"world_size": self.ctx.world_size}
        return d

    def _save(self, epoch: int, metrics: dict[str, Any], *, snapshot: bool = False) -> Any:
        states = self._rng_states()  # every rank takes part in the gather
        if not self.ctx.is_root:
            return None
        keep = self._rng_states
        self._rng_states = lambda: states  # type: ignore[method-assign]
        try:
            return super()._save(epoch, metrics, snapshot=snapshot)
        finally:
            self._rng_states = keep  # type: ignore[method-assign]

    def _resume(self) -> int:
        ctx = self.ctx

        def read() -> dict[str, Any]:
            epoch = Trainer._resume(self)

            payload = read_checkpoint(self.out_dir / CHECKPOINT_NAME, map_location="cpu")
            rng = payload.get("rng") or {}
            need = [f"{k}@rank{r}" for r in range(ctx.world_size) for k in ("jitter", "strategy")]
            lacking = [k for k in need if k not in rng]
            check(
                not lacking,
                f"cannot resume {self.out_dir / CHECKPOINT_NAME}: its rng lacks {lacking[:2]} "
                f"(saved by another world size than {ctx.world_size}?)",
            )
            return {
                "epoch": epoch,
                "state_dict": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "history": self.history,
                "rng": {k: rng[k] for k in need},
                "data": self.generators["data"].get_state(),
            }

        got = root_first(read, ctx)
        if not ctx.is_root:
            self.model.load_state_dict(got["state_dict"])
            self.optimizer.load_state_dict(got["optimizer"])
            self.history = [dict(r) for r in got["history"]]
            self.generators["data"].set_state(got["data"])
        for k in ("jitter", "strategy"):
            self.generators[k].set_state(got["rng"][f"{k}@rank{ctx.rank}"])
        return int(got["epoch"])

    def fit(self, *, resume: bool = False, overwrite: bool = False, inside: Any = None) -> Any:
        """Train on every rank, as :meth:`~landscape.train.Trainer.fit` does; only rank 0 locks the folder and
        writes, and an error its checks find is raised on every rank."""

        def checks() -> None:  # Trainer.fit's folder checks, answered to every rank before any work
            check(
                not (resume and overwrite),
                "resume and overwrite exclude each other: continue the run or replace it",
            )
            if self.out_dir is None:
                return
            if resume:
                check(
                    (self.out_dir / CHECKPOINT_NAME).exists(),
                    f"cannot resume: no checkpoint in {self.out_dir}",
                )
            elif (self.out_dir / CHECKPOINT_NAME).exists():
                check(
                    overwrite,
                    f"--out {self.out_dir} already holds a run (checkpoint.pt): use --resume to "
                    "continue it or --overwrite to replace it",
                )
            if self.out_dir.is_dir():
                with RunLock(self.out_dir):  # a folder in use is refused on every rank, now
                    pass

        root_first(checks, self.ctx)
        if self.ctx.is_root:
            return Trainer.fit(
                self, resume=resume, overwrite=overwrite, inside=inside
            )  # the lock, then Trainer._fit
        return Trainer._fit(
            self, resume=resume
        )  # writes nothing here (_save, _finish); resume state from rank 0

    def _finish(self, metrics: dict[str, Any]) -> Any:
        if self.out_dir is None:
            return None
        path = self._save(self.history[-1]["epoch"], metrics)  # every rank takes part in its gather
        if self.ctx.is_root:
            write_json(self.out_dir / "metrics.json", metrics)
        return path


def make_distributed_trainer(config: Any, ctx: DistContext, **kwargs: Any) -> DistributedTrainer:
    """A Trainer for rank ``ctx.rank`` of ``ctx.world_size`` (kwargs as :class:`~landscape.train.Trainer`)."""
    return DistributedTrainer(config, ctx, **kwargs)
