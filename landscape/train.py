r"""One Trainer for every strategy, with presets per task and size.

A run is fully described by a :class:`TrainConfig` (JSON-compatible through :meth:`TrainConfig.to_dict`):
task and size, the strategy config, the model config, optimiser settings, data sizes and seeds.
:func:`make_train_config` builds one from a preset (:data:`PRESETS`: ``small`` for CPU runs,
``paper`` for the paper's sizes on a GPU) plus explicit overrides — what the CLI does.

:class:`Trainer` then

* builds the task, the model (weights initialised from ``seed``) and Adam;
* trains for ``epochs`` passes over a fixed training set (``fresh_noise=True`` re-measures ``y`` with
  new noise every batch), with the strategy's ``train_step`` giving the loss of each batch;
* validates every epoch on held-out in-distribution pairs with the model in eval mode, i.e. with
  the clean solver, no jitter (epoch 0 is the untrained model);
* shows a tqdm bar with the running loss, writes ``log.csv`` (one row per epoch) and ``checkpoint.pt``
  (weights, full config, metrics, versions, seed, optimizer and generator states, history) atomically
  after every epoch, and ``metrics.json`` at the end;
* stops with ``ValueError`` naming the epoch and step when the loss or any weight stops being finite
  (NaN/Inf); the checkpoint on disk is then the last good epoch;
* with ``patience`` P, stops once validation PSNR has not risen by more than ``min_delta`` dB over its best
  for P epochs in a row (``epochs`` is then the budget); ``metrics['stopping']`` says whether the run
  stopped on that plateau or ran out of epochs while still improving (the checkpoint is the last epoch's);
  with ``lr_decays`` D as well, a plateau first multiplies the learning rate by ``lr_factor`` (up to D
  times, counting patience afresh against the same best) and only the plateau after the last decay stops
  the run: a schedule derived from the history alone, so a resumed run follows it exactly;
* with ``snapshots`` N, keeps N checkpoints evenly spread over the epochs in ``snapshots/epoch-EEEE.pt``
  (complete checkpoints: ``analyze`` and ``claims`` read them, for curvature over training);
* resumes an interrupted run from its checkpoint with ``fit(resume=True)``, continuing the same random
  streams, so a resumed run ends with the same weights as an uninterrupted one.

Test hook: the environment variable ``LANDSCAPE_TEST_STEP_DELAY`` (seconds, default unset) makes every
optimiser step sleep that long, so that the SIGKILL-and-resume test can interrupt a run mid-epoch; it
changes no computed number.

Randomness: ``seed`` drives the weight initialisation, the batch order, the jitter and the
strategy's noise (input jitter, PGD random start) through separate torch generators derived from it;
``data_seed`` (default: ``seed``) draws the training and validation data; ``test_seed`` is the seed
evaluation uses for the test data, shared by every run so strategies meet the same test samples.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from landscape.checkpoint import (
    CHECKPOINT_NAME,
    RUN_FILES,
    check_consistent,
    check_resume_state,
    read_checkpoint,
    save_checkpoint,
    versions,
)
from landscape.config import (
    SIZES,
    TrainConfig,
    config_differences,
)
from landscape.data import make_task
from landscape.errors import check, check_count
from landscape.io import RunLock, check_no_owner_above, json_safe, write_json, write_text
from landscape.metrics import score
from landscape.models import UnrolledGD, build_model
from landscape.presets import TRAIN_PRESETS as PRESETS
from landscape.presets import train_preset
from landscape.progress import progress_bar
from landscape.seeding import training_seed
from landscape.strategies import STRATEGIES, Strategy, make_strategy, option_keywords, strategy_options

__all__ = [
    "PRESETS",
    "SIZES",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "make_train_config",
    "LOG_COLUMNS",
]

LOG_COLUMNS = ("epoch", "steps", "train_loss", "val_loss", "val_psnr", "val_ssim", "step_size", "seconds")


def _test_step_delay() -> float:
    """Seconds to sleep after every optimiser step, from ``LANDSCAPE_TEST_STEP_DELAY`` (default 0).

    A test-only hook: the resume test sets it so that it can kill a training process with SIGKILL in the
    middle of an epoch at a predictable moment.  It changes no number the run computes.
    """
    text = os.environ.get("LANDSCAPE_TEST_STEP_DELAY", "").strip()
    if not text:
        return 0.0
    try:
        v = float(text)
    except ValueError:
        raise ValueError(f"LANDSCAPE_TEST_STEP_DELAY={text!r}: expected a number of seconds >= 0") from None
    check(
        math.isfinite(v) and v >= 0, f"LANDSCAPE_TEST_STEP_DELAY={text!r}: expected a number of seconds >= 0"
    )
    return v


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


# long: one keyword per run setting a user (or a CLI flag) may override; the body is 40 lines
def make_train_config(
    task: str = "denoise",
    strategy: str = "mse",
    *,
    size: str = "small",
    n_iter: int | None = None,
    activation: str | None = None,
    arch: str | None = None,
    regularizer: dict[str, Any] | None = None,
    fixed_step: bool = False,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    train_size: int | None = None,
    val_size: int | None = None,
    fresh_noise: bool = False,
    patience: int | None = None,
    min_delta: float = 0.0,
    lr_decays: int = 0,
    lr_factor: float = 0.3,
    snapshots: int = 0,
    epoch_passes: int = 1,
    seed: int = 0,
    data_seed: int | None = None,
    test_seed: int | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    noise_sigma: float | None = None,
    task_options: dict[str, Any] | None = None,
    autocast: str | None = None,
    options: dict[str, Any] | None = None,
    **strategy_keywords: Any,
) -> TrainConfig:
    """A :class:`TrainConfig` from the preset ``PRESETS[task][size]`` with explicit overrides.

    ``None`` keeps the preset's value.  The strategy's options come as the keywords its flags declare
    (:data:`landscape.strategies.OPTION_FLAGS`: ``sigma`` (input-jitter σ_w, sgd/spgd-jitter σ, one number or
    one per iteration), ``jitter_mode``, ``eps``, ``eps_relative`` or ``eps_absolute=True``, ``attack_steps``,
    ``attack_step_size``, ``penalty_weight``, ``penalty_probes``, ``penalty_part``) or in ``options`` by field
    name (:func:`landscape.strategies.strategy_options`); an option the strategy lacks is refused.  ``fixed_step``
    freezes η; ``epoch_passes`` P makes one epoch P passes over the training set (a set 1/P the size takes as
    many steps per epoch); ``task_options`` are the task's own (:func:`landscape.data.make_task`).
    """
    check(task in PRESETS, f"task={task!r}: expected one of {sorted(PRESETS)}")
    check(size in SIZES, f"size={size!r}: expected one of {SIZES}")
    check(strategy in STRATEGIES, f"strategy={strategy!r}: expected one of {sorted(STRATEGIES)}")
    preset = train_preset(task, size).to_dict()  # a fresh plain copy (landscape.presets.TrainPreset)
    strat = _preset_strategy(strategy, preset, _given_options(strategy_keywords, options))
    model = _model_overrides(
        preset["model"],
        n_iter=n_iter,
        activation=activation,
        arch=arch,
        regularizer=regularizer,
        fixed_step=fixed_step,
    )
    task_options = dict(task_options or {})
    if noise_sigma is not None:
        task_options["noise_sigma"] = float(noise_sigma)
    return TrainConfig(
        task=task,
        size=size,
        task_options=task_options,
        strategy=strat,
        model=model,
        epochs=preset["epochs"] if epochs is None else epochs,
        batch_size=preset["batch_size"] if batch_size is None else batch_size,
        lr=preset["lr"] if lr is None else lr,
        train_size=preset["train_size"] if train_size is None else train_size,
        val_size=preset["val_size"] if val_size is None else val_size,
        fresh_noise=bool(fresh_noise),
        patience=patience,
        min_delta=min_delta,
        lr_decays=lr_decays,
        lr_factor=lr_factor,
        snapshots=snapshots,
        epoch_passes=epoch_passes,
        seed=seed,
        data_seed=data_seed,
        test_seed=2024 if test_seed is None else test_seed,
        device=device,
        dtype=dtype,
        evaluation=preset["evaluation"],  # the typed block keeps its own copy
        autocast=autocast,
    )


def _given_options(keywords: dict[str, Any], options: dict[str, Any] | None) -> dict[str, Any]:
    """The strategy options given to :func:`make_train_config` by field name: its strategy keywords (translated
    through the flags' declarations, in their order), then ``options``; ``None`` (and an unset switch) is not
    given.  A keyword no strategy flag declares is a TypeError, as for any unknown keyword."""
    by_keyword = option_keywords()
    unknown = sorted(set(keywords) - set(by_keyword))
    if unknown:
        raise TypeError(f"make_train_config() got an unexpected keyword argument {unknown[0]!r}")
    given: dict[str, Any] = {}
    for keyword, flag in by_keyword.items():
        value = keywords.get(keyword)
        if flag.kind == "switch":
            value = flag.value if value else None
        if value is not None:
            given[flag.option] = value
    given.update({k: v for k, v in (options or {}).items() if v is not None})
    return given


def _preset_strategy(name: str, preset: dict[str, Any], given: dict[str, Any]) -> Strategy:
    """Strategy ``name`` with the preset's options, ``given`` on top (an option it does not declare is refused)."""
    declared = strategy_options(name)
    unknown = [k for k in given if k not in declared]
    if unknown:
        raise ValueError(
            f"strategy {name!r} has no option {unknown[0]!r} (its options: {', '.join(declared) or 'none'})"
        )
    return make_strategy(name, **{**preset["strategy"].get(name, {}), **given})


def _model_overrides(
    base: dict[str, Any],
    *,
    n_iter: int | None,
    activation: str | None,
    arch: str | None,
    regularizer: dict[str, Any] | None,
    fixed_step: bool,
) -> dict[str, Any]:
    """The preset's model overrides with the explicit ones on top (``regularizer`` merged key by key)."""
    model = copy.deepcopy(base)
    if regularizer:
        model["regularizer"] = _merge(model.get("regularizer", {}), regularizer)
    if n_iter is not None:
        model["n_iter"] = check_count(n_iter, "n_iter")
    if activation is not None:
        model.setdefault("regularizer", {})["activation"] = activation
    if arch is not None:
        model["arch"] = arch
    if fixed_step:
        model["learn_step"] = False
    return model


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns."""

    model: UnrolledGD
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    checkpoint: Path | None


class Trainer:
    """Train one model with one strategy; see the module docstring.

    Args:
        config: the run.
        out_dir: where ``checkpoint.pt``, ``log.csv`` and ``metrics.json`` go (None: nothing is written).
        task: a prebuilt task (default: ``make_task(config.task, size=config.size, **config.task_options.to_dict())``).
        checkpoint_steps: recompute every unrolled step in the backward pass instead of keeping its
            activations (:attr:`landscape.models.UnrolledGD.checkpoint_steps`): the same gradients, the
            activation memory of one step instead of K.
        progress: show progress (default on): a tqdm bar on a terminal, else one status line with an
            ETA every 10 s (:func:`landscape.progress.progress_bar`); ``False`` prints nothing.
        threads: torch CPU threads while training (restored afterwards).  ``None``: a new run keeps torch's
            current count, a resumed run the count it trained with, so that it ends bitwise equal to an
            uninterrupted run (the reductions depend on it).  The count is recorded in the checkpoint and
            ``metrics.json`` (``threads``); resuming with another explicit count warns.
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        out_dir: str | Path | None = None,
        task: Any = None,
        progress: bool | None = None,
        checkpoint_steps: bool = False,
        threads: int | None = None,
    ):
        self.config = config
        self.threads = None if threads is None else check_count(threads, "threads")
        self.threads_used: int | None = None
        self.out_dir = Path(out_dir) if out_dir is not None else None
        if task is None:
            task = make_task(config.task, size=config.size, **config.task_options.to_dict())
        self.task = task
        self.progress = True if progress is None else bool(progress)
        self.device = torch.device(config.device)
        if self.device.type == "cuda":
            check(torch.cuda.is_available(), "device='cuda' but no CUDA device is available")
        self.dtype = getattr(torch, config.dtype)
        self.strategy: Strategy = config.strategy  # the config's own typed strategy, not a rebuilt copy
        model_cfg = config.model.model_config(task.signal_shape)
        self.model_config = self.strategy.configure_model(model_cfg)
        seed = config.seed
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(training_seed(seed, "init"))
            model = build_model(self.model_config, task.physics)
        self.model = model.to(device=self.device, dtype=self.dtype)
        self.model.checkpoint_steps = bool(checkpoint_steps)
        gdev = self.device if self.device.type == "cuda" else torch.device("cpu")
        self.generators: dict[str, torch.Generator] = {
            "data": torch.Generator().manual_seed(training_seed(seed, "batches")),
            "jitter": torch.Generator(device=gdev).manual_seed(training_seed(seed, "jitter")),
            "strategy": torch.Generator(device=gdev).manual_seed(training_seed(seed, "strategy")),
        }
        self._seed_generators()
        self.model.set_generator(self.generators["jitter"])
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.history: list[dict[str, Any]] = []
        self._train_set = None
        self._val = None

    # -- data ------------------------------------------------------------------------------------
    @property
    def train_set(self):
        """The training set, drawn once on first use from the data seed (with ``fresh_noise`` its batches are re-measured with new noise)."""
        if self._train_set is None:
            c = self.config
            self._train_set = self.task.training_set(
                c.train_size, seed=c.resolved_data_seed, fresh_noise=c.fresh_noise, dtype=self.dtype
            )
        return self._train_set

    @property
    def val_pairs(self):
        """The validation pairs (in-distribution), drawn once on first use from a seed derived from the data seed."""
        if self._val is None:
            c = self.config
            self._val = self.task.pairs(
                c.val_size, split="id", seed=training_seed(c.resolved_data_seed, "val"), dtype=self.dtype
            )
        return self._val

    # -- one epoch -------------------------------------------------------------------------------
    def validate(self) -> dict[str, float]:
        """Validation loss (the training MSE), PSNR and SSIM with the model in eval mode (no jitter)."""
        losses, psnrs, ssims = self._validation_values(self.val_pairs.x, self.val_pairs.y)
        return {
            "val_loss": float(losses.mean()),
            "val_psnr": float(psnrs.mean()),
            "val_ssim": float(ssims.mean()),
        }

    @torch.no_grad()
    def _validation_values(self, x_all: torch.Tensor, y_all: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Per-sample validation loss, PSNR and SSIM (float64, CPU) of the pairs given, in eval mode."""
        was_training = self.model.training
        self.model.eval()
        chunk = max(self.config.batch_size, 64)
        losses, psnrs, ssims = [], [], []
        magnitude = getattr(self.task.physics, "name", "") == "mri"
        for i in range(0, x_all.shape[0], chunk):
            x = x_all[i : i + chunk].to(self.device, self.dtype)
            y = y_all[i : i + chunk].to(self.device, self.dtype)
            x_hat = self.model(y)
            losses.append((x_hat - x).pow(2).flatten(1).mean(1).double().cpu())
            s = score(x_hat, x, magnitude=magnitude)
            psnrs.append(s["psnr"])
            ssims.append(s["ssim"])
        self.model.train(was_training)
        return torch.cat(losses), torch.cat(psnrs).double(), torch.cat(ssims).double()

    # -- what a distributed trainer replaces (landscape.distributed.DistributedTrainer) ------------
    def _seed_generators(self) -> None:
        """Hook: re-seed the generators per process (one process: the seeds above, unchanged)."""

    @property
    def _train_model(self) -> Any:
        """The model the strategy's ``train_step`` calls (a distributed trainer's gradient-averaging wrapper)."""
        return self.model

    def _epoch_batches(self) -> Any:
        """This process's part of one epoch: ``(x, y, weight)`` per step, the batch loss backpropagated
        times ``weight`` (one process: every batch, weight 1)."""
        for xb, yb in self.train_set.batches(self.config.batch_size, generator=self.generators["data"]):
            yield xb, yb, 1.0

    def _reduce_loss(self, value: float, n: int) -> tuple[float, int]:
        """Hook: the mean loss of the whole step and its number of samples (one process: unchanged)."""
        return value, n

    def _autocast(self) -> Any:
        """The context the training forward runs in: ``torch.autocast`` in bf16 with ``autocast='bf16'``."""
        import contextlib

        if self.config.autocast == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _step_size(self) -> float:
        m = self.model
        n = len(m.step_rho)
        with torch.no_grad():
            return float(sum(float(m.step_size(k)) for k in range(n)) / n)

    def _rng_states(self) -> dict[str, torch.Tensor]:
        return {k: g.get_state() for k, g in self.generators.items()}

    def _run_config(self) -> dict[str, Any]:
        d = self.config.to_dict()
        # the whole model config; the noise is not in it: the strategy (d['strategy']) is the one place σ and
        # the noise rule are stored
        d["model"] = self.model_config.to_dict()
        d["task_config"] = self.task.config()
        return json.loads(json.dumps(json_safe(d)))

    @property
    def snapshot_epochs(self) -> tuple[int, ...]:
        """The epochs whose checkpoint is kept in ``snapshots/``: ``config.snapshots`` of them, evenly spread
        over ``1..epochs`` (the last one is the final epoch; an early stop keeps those reached)."""
        n, E = self.config.snapshots, self.config.epochs
        return tuple(sorted({max(1, round(i * E / n)) for i in range(1, n + 1)})) if n and E else ()

    def stopping(self) -> dict[str, Any]:
        """Why training stops or would stop now: ``{"reason": "plateau" | "budget" | "running", "best_epoch",
        "best_val_psnr", "patience", "min_delta", "epochs_run", "lr_decays", "lr"}``.  A plateau is
        ``patience`` epochs in a row without a validation-PSNR gain of more than ``min_delta`` dB over the best
        so far; with ``lr_decays`` D, each of the first D plateaus multiplies the learning rate by
        ``lr_factor`` instead (``lr_decays`` here: how many happened, at which epochs in ``decayed_at``; ``lr``:
        the rate for the next epoch) and only the next one stops.  ``budget`` means the epochs ran out first,
        i.e. the model may still be improving.  ``diverged``: the last epoch's validation PSNR is below the
        initial model's (epoch 0), whatever the reason: a plateau there is a failed run, not a converged one."""
        c = self.config
        best_epoch, best = 0, -math.inf
        since, decays, decayed_at, stopped = 0, 0, [], False
        for row in self.history:
            v = row["val_psnr"]
            if v > best + c.min_delta:
                best_epoch, best, since = row["epoch"], v, 0
            elif row["epoch"] > 0:
                since += 1
            if c.patience is not None and since >= c.patience:
                if decays < c.lr_decays:
                    decays, since = decays + 1, 0
                    decayed_at.append(row["epoch"])
                else:
                    stopped = True
                    break
        last = self.history[-1]["epoch"] if self.history else 0
        if stopped:
            reason = "plateau"
        elif last >= c.epochs:
            reason = "budget"
        else:
            reason = "running"
        diverged = bool(self.history) and self.history[-1]["val_psnr"] < self.history[0]["val_psnr"]
        out = {
            "reason": reason,
            "best_epoch": best_epoch,
            "best_val_psnr": best,
            "patience": c.patience,
            "min_delta": c.min_delta,
            "epochs_run": last,
            "diverged": diverged,
        }
        if c.lr_decays:
            out.update(lr_decays=decays, decayed_at=decayed_at, lr=c.lr * c.lr_factor**decays)
        return out

    def _save(self, epoch: int, metrics: dict[str, Any], *, snapshot: bool = False) -> Path | None:
        if self.out_dir is None:
            return None
        path = self.out_dir / CHECKPOINT_NAME
        if snapshot:
            (self.out_dir / "snapshots").mkdir(exist_ok=True)
            path = self.out_dir / "snapshots" / f"epoch-{epoch:04d}.pt"
        save_checkpoint(
            path,
            self.model,
            self.task,
            self._run_config(),
            metrics,
            epoch=epoch,
            history=self.history,
            optimizer=self.optimizer,
            rng=self._rng_states(),
            strategy=self.strategy,
            threads=self.threads_used,
        )
        if not snapshot:
            write_text(self.out_dir / "log.csv", self.log_csv())
        return path

    def log_csv(self) -> str:
        """The training history as CSV text, one row per epoch with the columns of :data:`LOG_COLUMNS`."""
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=LOG_COLUMNS, lineterminator="\n", extrasaction="ignore")
        w.writeheader()
        for row in self.history:
            w.writerow({k: (f"{v:.8g}" if isinstance(v, float) else v) for k, v in row.items()})
        return buf.getvalue()

    def _resume(self) -> int:
        path = self.out_dir / CHECKPOINT_NAME if self.out_dir is not None else None
        check(path is not None and path.exists(), f"cannot resume: no checkpoint in {self.out_dir}")
        payload = read_checkpoint(path, map_location="cpu")
        check_consistent(payload, f"cannot resume {path}")
        diff = config_differences(
            payload["config"], self._run_config(), ("the checkpoint", "this run"), ignore=("epochs", "device")
        )
        if diff:
            raise ValueError(f"cannot resume {path}: its config differs in {'; '.join(diff)}")
        check_resume_state(
            payload,
            self.model,
            self.optimizer,
            self.generators,
            columns=LOG_COLUMNS,
            where=f"cannot resume {path}",
        )
        self.model.load_state_dict(payload["state_dict"])
        if payload.get("optimizer") is not None:
            self.optimizer.load_state_dict(payload["optimizer"])
        for k, state in (payload.get("rng") or {}).items():
            if k in self.generators:
                self.generators[k].set_state(state)
        self.history = [dict(r) for r in payload.get("history") or []]
        return int(payload.get("epoch") or 0)

    def _remove_stale_temporaries(self) -> None:
        """Delete temporary files an interrupted atomic write left in ``out_dir`` (never a real output).

        Called with the folder's lock held: no other landscape process writes these names now, so every
        temporary file of a run file is a leftover of a killed writer.
        """
        if self.out_dir is None or not self.out_dir.is_dir():
            return
        for name in RUN_FILES:
            for tmp in self.out_dir.glob(f".{name}.*.tmp"):
                if f".p{os.getpid()}." in tmp.name:
                    continue
                try:
                    tmp.unlink()
                except OSError:
                    pass

    def _non_finite_weight(self) -> str | None:
        """The name of the first parameter holding NaN or Inf, or None (one device sync for all of them)."""
        named = [(n, p) for n, p in self.model.named_parameters()]
        if not named:
            return None
        ok = torch.stack([torch.isfinite(p.detach()).all() for _, p in named])
        if bool(ok.all()):
            return None
        return named[int((~ok).nonzero()[0])][0]

    # -- the loop --------------------------------------------------------------------------------
    def fit(
        self, *, resume: bool = False, overwrite: bool = False, inside: str | Path | None = None
    ) -> TrainResult:
        """Train for ``config.epochs`` epochs (continuing a saved run with ``resume=True``).

        With an ``out_dir``, the folder is claimed exclusively for the whole run (:class:`RunLock`: a
        second training into the same folder is refused), and a run already saved there is never
        replaced unless ``overwrite=True``.  Overwriting first removes the old run's ``metrics.json``
        and ``log.csv``, so an interrupted overwrite never leaves the new checkpoint beside the old
        run's results.  A folder this call created is removed again when it fails before writing.

        A folder inside one that a live landscape process holds (an experiment's ``runs/NAME`` while the
        experiment runs) is refused naming that process (:func:`landscape.io.check_no_owner_above`);
        ``inside``: the folder above whose lock the caller holds itself (the experiment's own trainings).
        """
        check(
            not (resume and overwrite),
            "resume and overwrite exclude each other: continue the run or replace it",
        )
        if self.out_dir is None:
            return self._fit(resume=resume)
        check(
            str(self.out_dir).strip() not in ("", "."),
            f"out_dir={str(self.out_dir)!r}: expected a run folder",
        )
        check(
            not self.out_dir.exists() or self.out_dir.is_dir(),
            f"--out {self.out_dir}: exists and is not a directory",
        )
        if resume:
            check(
                (self.out_dir / CHECKPOINT_NAME).exists(), f"cannot resume: no checkpoint in {self.out_dir}"
            )
        created = not self.out_dir.exists()
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(
                f"--out {self.out_dir}: cannot create the directory ({exc.strerror or exc})"
            ) from None
        try:
            with RunLock(self.out_dir):
                check_no_owner_above(self.out_dir, allowed=inside)  # with the folder's own lock held
                self._remove_stale_temporaries()
                if not resume and (self.out_dir / CHECKPOINT_NAME).exists():
                    check(
                        overwrite,
                        f"--out {self.out_dir} already holds a run (checkpoint.pt): use --resume to continue it "
                        "or --overwrite to replace it",
                    )
                    for name in ("metrics.json", "log.csv"):
                        try:
                            os.unlink(self.out_dir / name)
                        except FileNotFoundError:
                            pass
                return self._fit(resume=resume)
        except BaseException:
            if created:
                try:
                    self.out_dir.rmdir()  # only when nothing was written
                except OSError:
                    pass
            raise

    def _fit(self, *, resume: bool) -> TrainResult:
        """:meth:`_fit_epochs` with torch's thread count set for the run (see ``threads``), then restored."""
        recorded, path = None, None
        if resume and self.out_dir is not None and (self.out_dir / CHECKPOINT_NAME).exists():
            path = self.out_dir / CHECKPOINT_NAME
            recorded = read_checkpoint(path, map_location="cpu").get("threads")
        n = (
            self.threads
            if self.threads is not None
            else (int(recorded) if recorded else torch.get_num_threads())
        )
        if self.threads is not None and recorded and int(recorded) != self.threads:
            warnings.warn(
                f"resuming {path} with {self.threads} torch threads, but the run trained with {recorded}: "
                "its weights may differ in the last bits from an uninterrupted run (leave --threads out "
                "to reuse the recorded count)",
                UserWarning,
                stacklevel=3,
            )
        previous = torch.get_num_threads()
        torch.set_num_threads(n)
        self.threads_used = n
        try:
            return self._fit_epochs(resume=resume)
        finally:
            torch.set_num_threads(previous)

    def _fit_epochs(self, *, resume: bool) -> TrainResult:
        c = self.config
        self.train_set  # noqa: B018 - the data first (its size is checked against memory), before anything is written
        start = self._resume() if resume else 0
        if not self.history:
            t0 = time.perf_counter()
            row = {"epoch": 0, "steps": 0, "train_loss": None, **self.validate()}
            row.update(step_size=self._step_size(), seconds=time.perf_counter() - t0)
            self.history.append(row)
            self._save(0, {})
        train_seconds = sum(r["seconds"] for r in self.history[1:])
        steps = self.history[-1]["steps"]
        step_delay = _test_step_delay()
        for epoch in range(start + 1, c.epochs + 1):
            state = self.stopping()
            if state["reason"] == "plateau":  # validation stopped improving (also on resume)
                break
            if c.lr_decays:  # the schedule follows from the history, so a resumed run continues it
                for group in self.optimizer.param_groups:
                    group["lr"] = state["lr"]
            t0 = time.perf_counter()
            mean_loss, steps = self._train_epoch(epoch, steps, step_delay)
            seconds = time.perf_counter() - t0
            train_seconds += seconds
            val = self.validate()
            if not math.isfinite(val["val_loss"]):
                raise ValueError(
                    f"validation loss is {val['val_loss']} after epoch {epoch} ({self.strategy.name}); "
                    f"the last good checkpoint is epoch {epoch - 1}"
                )
            row = {"epoch": epoch, "steps": steps, "train_loss": mean_loss, **val}
            row.update(step_size=self._step_size(), seconds=seconds)
            self.history.append(row)
            self._save(epoch, self._metrics(train_seconds, steps))
            if epoch in self.snapshot_epochs:
                self._save(epoch, self._metrics(train_seconds, steps), snapshot=True)
        metrics = self._metrics(train_seconds, steps)
        path = self._finish(metrics)
        self.model.eval()
        return TrainResult(model=self.model, metrics=metrics, history=self.history, checkpoint=path)

    def _train_epoch(self, epoch: int, steps: int, step_delay: float) -> tuple[float, int]:
        """One epoch of optimiser steps (``epoch_passes`` passes) in training mode: ``(mean training loss, steps
        so far)``; a non-finite loss or weight stops it with a ValueError naming the epoch and step."""
        c = self.config
        self.model.train()
        n_batches = math.ceil(c.train_size / c.batch_size) * c.epoch_passes
        bar = (
            progress_bar(
                total=n_batches,
                desc=f"{self.strategy.name} epoch {epoch}/{c.epochs}",
                unit="batch",
                file=sys.stderr,
            )
            if self.progress
            else None
        )
        total, count = 0.0, 0
        passes = (b for _ in range(c.epoch_passes) for b in self._epoch_batches())
        for step, (xb, yb, weight) in enumerate(passes):
            value, n = self._optimiser_step(xb, yb, weight, epoch, step)
            if step_delay:
                time.sleep(step_delay)
            total += value * n
            count += n
            steps += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{total / count:.4g}")
        if bar is not None:
            bar.close()
        return total / max(count, 1), steps

    def _optimiser_step(
        self, xb: torch.Tensor, yb: torch.Tensor, weight: float, epoch: int, step: int
    ) -> tuple[float, int]:
        """The strategy's loss of one batch, backpropagated (times ``weight``) and stepped: ``(the step's mean
        loss, its samples)`` over every process."""
        c = self.config
        xb = xb.to(self.device, self.dtype)
        yb = yb.to(self.device, self.dtype)
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            loss = self.strategy.train_step(self._train_model, xb, yb, generator=self.generators["strategy"])
        value, n = self._reduce_loss(float(loss.detach()), xb.shape[0])
        if not math.isfinite(value):
            self._stop(f"training loss is {value}", epoch, step)
        (loss if weight == 1.0 else loss * weight).backward()
        if c.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.grad_clip)
        try:
            self.optimizer.step()
        except RuntimeError as exc:  # Adam's step size itself overflows at an absurd learning rate
            if "overflow" not in str(exc):
                raise
            self._stop("the optimiser step overflowed", epoch, step)
        bad = self._non_finite_weight()
        if bad is not None:
            self._stop(f"weights became non-finite (NaN/Inf in {bad!r})", epoch, step)
        return value, n

    def _stop(self, what: str, epoch: int, step: int) -> None:
        """The ValueError of a run that stopped being finite at ``epoch``, ``step`` (0-based)."""
        where = f" in {self.out_dir / CHECKPOINT_NAME}" if self.out_dir else ""
        raise ValueError(
            f"{what} at epoch {epoch}, step {step + 1} ({self.strategy.name}); "
            f"the last good checkpoint is epoch {epoch - 1}{where} (try a smaller --lr)"
        )

    def _finish(self, metrics: dict[str, Any]) -> Path | None:
        """The last checkpoint and ``metrics.json`` (nothing without an ``out_dir``)."""
        if self.out_dir is None:
            return None
        path = self._save(self.history[-1]["epoch"], metrics)
        write_json(self.out_dir / "metrics.json", metrics)
        return path

    def _metrics(self, train_seconds: float, steps: int) -> dict[str, Any]:
        first, last = self.history[0], self.history[-1]
        return {
            "strategy": self.strategy.name,  # its options (σ...) are in the run config, stored once
            "task": self.config.task,
            "size": self.config.size,
            "seed": self.config.seed,
            "data_seed": self.config.resolved_data_seed,
            "test_seed": self.config.test_seed,
            "epochs": last["epoch"],
            "steps": steps,
            "train_seconds": train_seconds,
            "seconds_per_step": train_seconds / steps if steps else None,
            "threads": self.threads_used,
            "initial": {k: first[k] for k in ("val_loss", "val_psnr", "val_ssim")},
            "final": {k: last[k] for k in ("train_loss", "val_loss", "val_psnr", "val_ssim", "step_size")},
            "stopping": self.stopping(),
            "snapshots": [f"snapshots/epoch-{e:04d}.pt" for e in self.snapshot_epochs if e <= last["epoch"]],
            "loss": "mean squared error per entry (validation: eval mode, jitter off)",
            "versions": versions(),
        }
