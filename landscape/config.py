"""The typed description of a training run: :class:`TrainConfig`, with the helpers that compare saved
run configs (:func:`config_differences`).  Below :mod:`landscape.train` and :mod:`landscape.checkpoint`,
which both read it."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from landscape.errors import check, check_count, check_device, check_positive_int
from landscape.strategies import MSE, Strategy, strategy_from_config

__all__ = ["AUTOCAST", "OPTIONAL_DEFAULTS", "SIZES", "TrainConfig", "comparable_config", "config_differences"]

SIZES = ("small", "paper")
#: The mixed-precision options of training (analysis always runs in float32 or float64).
AUTOCAST = (None, "bf16")


#: Run-config keys added after the first release, with the default an older config means by leaving them out.
OPTIONAL_DEFAULTS: dict[str, Any] = {
    "patience": None,
    "min_delta": 0.0,
    "snapshots": 0,
    "autocast": None,
    "lr_decays": 0,
    "lr_factor": 0.3,
    "epoch_passes": 1,
}


def comparable_config(d: dict[str, Any]) -> dict[str, Any]:
    """A run config with every optional key filled in, for comparing a saved config with a planned one."""
    return {**OPTIONAL_DEFAULTS, **d}


def config_differences(
    a: dict[str, Any],
    b: dict[str, Any],
    names: tuple[str, str] = ("saved", "new"),
    *,
    ignore: tuple[str, ...] = ("device",),
    limit: int = 4,
) -> list[str]:
    """Where two run configs differ, as ``key.sub (NAME_A: value, NAME_B: value)``, descending into nested
    dicts (so a different K reads ``model.n_iter (the checkpoint: 2, this run: 3)``, not ``model``).  Optional
    keys are filled in first (:func:`comparable_config`); keys in ``ignore`` are skipped; at most ``limit``."""
    out: list[str] = []

    def walk(x: Any, y: Any, key: str) -> None:
        if isinstance(x, dict) and isinstance(y, dict):
            for k in sorted(set(x) | set(y)):
                walk(x.get(k), y.get(k), f"{key}.{k}" if key else str(k))
        elif x != y:
            out.append(f"{key} ({names[0]}: {json.dumps(x)}, {names[1]}: {json.dumps(y)})")

    ca, cb = comparable_config(a), comparable_config(b)
    for k in ignore:
        ca.pop(k, None)
        cb.pop(k, None)
    walk(ca, cb, "")
    return out[:limit] + ([f"and {len(out) - limit} more"] if len(out) > limit else [])


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on (see :mod:`landscape.train` for the seeds).

    ``strategy`` is the typed :class:`~landscape.strategies.Strategy` (it holds σ and the noise rule);
    :meth:`to_dict` / :meth:`from_dict` round-trip a saved config byte for byte (``tests/test_train.py``).
    """

    task: str = "denoise"
    size: str = "small"
    task_options: dict[str, Any] = field(default_factory=dict)
    strategy: Strategy = field(default_factory=MSE)  # typed; a dict (a saved ``to_dict()``) is converted
    # the preset's model overrides (ModelConfig fields), kept as given: a saved config is these keys, in this
    # order, with explicit nulls (``step: null``), so a typed ModelConfig would change the JSON of old runs
    model: dict[str, Any] = field(default_factory=dict)
    epochs: int = 8
    batch_size: int = 32
    lr: float = 1e-4
    train_size: int = 512
    val_size: int = 128
    fresh_noise: bool = False
    grad_clip: float | None = None
    patience: int | None = None
    min_delta: float = 0.0
    lr_decays: int = 0  # on a plateau, lr *= lr_factor this many times before stopping (needs patience)
    lr_factor: float = 0.3
    snapshots: int = 0
    epoch_passes: int = (
        1  # passes over the training set per epoch (validation, stopping, snapshots: per epoch)
    )
    seed: int = 0
    data_seed: int | None = None
    test_seed: int = 2024
    device: str = "cpu"
    dtype: str = "float32"
    evaluation: dict[str, Any] = field(default_factory=dict)
    autocast: str | None = None  # "bf16": the training forward under torch.autocast in bfloat16

    def __post_init__(self) -> None:
        check(self.size in SIZES, f"size={self.size!r}: expected one of {SIZES}")
        check_count(self.epochs, "epochs", minimum=0)
        check_count(self.batch_size, "batch_size")
        check_positive_int(self.train_size, "train_size")
        check_positive_int(self.val_size, "val_size")
        check(math.isfinite(self.lr) and self.lr > 0, f"lr={self.lr!r}: expected a number > 0")
        check(
            isinstance(self.seed, int) and self.seed >= 0,
            f"seed={self.seed!r}: expected an integer >= 0",
        )
        check_device(self.device, "device")
        check(self.dtype in ("float32", "float64"), f"dtype={self.dtype!r}: expected 'float32' or 'float64'")
        check(self.autocast in AUTOCAST, f"autocast={self.autocast!r}: expected one of {AUTOCAST}")
        check(
            self.autocast is None or self.dtype == "float32",
            f"autocast={self.autocast!r} with dtype={self.dtype!r}: bf16 autocast trains float32 weights; drop --float64",
        )
        if self.grad_clip is not None:
            check(self.grad_clip > 0, f"grad_clip={self.grad_clip!r}: expected a number > 0 or None")
        if self.patience is not None:
            check_count(self.patience, "patience")
        check(
            isinstance(self.min_delta, (int, float))
            and math.isfinite(self.min_delta)
            and self.min_delta >= 0,
            f"min_delta={self.min_delta!r}: expected a number of dB >= 0",
        )
        check_count(self.lr_decays, "lr_decays", minimum=0)
        check_count(self.epoch_passes, "epoch_passes")
        check(
            isinstance(self.lr_factor, (int, float)) and 0 < self.lr_factor < 1,
            f"lr_factor={self.lr_factor!r}: expected a number in (0, 1)",
        )
        check(
            self.lr_decays == 0 or self.patience is not None,
            f"lr_decays={self.lr_decays}: a decay happens on a validation plateau, so it needs a patience",
        )
        check_count(self.snapshots, "snapshots", minimum=0)
        if isinstance(self.strategy, dict):  # built once, here: the typed strategy is the one source of σ
            object.__setattr__(self, "strategy", strategy_from_config(self.strategy))

    @property
    def resolved_data_seed(self) -> int:
        return self.seed if self.data_seed is None else int(self.data_seed)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["strategy"] = self.strategy.to_dict()
        d["data_seed"] = self.resolved_data_seed
        for k, v in OPTIONAL_DEFAULTS.items():  # options added later stay out at their default, so a run
            if k in d and d[k] == v:  # without them keeps the config (and checkpoint) it always had
                del d[k]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        check(not unknown, f"unknown training config keys {unknown}")
        return cls(**d)
