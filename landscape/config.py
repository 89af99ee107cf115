"""The typed description of a training run: :class:`TrainConfig` (with its :class:`ModelOverrides`), and the
helpers that compare saved run configs (:func:`config_differences`).  Below :mod:`landscape.train` and
:mod:`landscape.checkpoint`, which both read it."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from landscape.errors import check, check_count, check_device, check_positive_int
from landscape.models import LEGACY_KEYS, ModelConfig, RegularizerConfig
from landscape.strategies import MSE, Strategy, strategy_from_config

__all__ = [
    "AUTOCAST",
    "OPTIONAL_DEFAULTS",
    "SIZES",
    "ModelOverrides",
    "TrainConfig",
    "comparable_config",
    "config_differences",
]

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


#: The keys a run config's ``model`` block may hold (besides a legacy one, :data:`landscape.models.LEGACY_KEYS`,
#: that an older checkpoint may carry): the :class:`~landscape.models.ModelConfig` fields.
MODEL_KEYS = tuple(f.name for f in fields(ModelConfig))
#: The keys of its ``regularizer`` block: the :class:`~landscape.models.RegularizerConfig` fields.
REGULARIZER_KEYS = tuple(f.name for f in fields(RegularizerConfig))


def _plain(value: Any) -> Any:
    """A fresh copy of ``value`` with every mapping (a preset's read-only one too) a plain dict."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return copy.deepcopy(value)


class ModelOverrides:
    """The model block of a run config: the :class:`~landscape.models.ModelConfig` fields a preset (or a saved
    config) sets, kept as given, in their order, with their explicit nulls (``step: null``).

    :meth:`to_dict` is that block again (what a checkpoint stores, byte for byte), :meth:`model_config` the
    ModelConfig it describes for a task's signal shape, :attr:`effective` that ModelConfig at the block's own
    (or the default) signal shape, for reading a field with its default, and :meth:`stated` one field as the
    block states it (None where it leaves the default).  Checked when built: an unknown key (or an unknown
    ``regularizer`` key) is refused in one line, and a bad value by the ModelConfig it describes.  A legacy
    ``jitter`` entry (:data:`landscape.models.LEGACY_KEYS`) is kept as written and left out of the ModelConfig
    (:func:`landscape.checkpoint.load_checkpoint` checks it against the run's strategy).
    Immutable; equal (and hashed) by content.
    """

    __slots__ = ("_items", "_effective")

    def __init__(self, overrides: Mapping[str, Any] | ModelOverrides | None = None) -> None:
        if isinstance(overrides, ModelOverrides):
            overrides = overrides._items
        overrides = {} if overrides is None else overrides
        check(
            isinstance(overrides, Mapping),
            f"model={overrides!r}: expected a mapping of ModelConfig fields {list(MODEL_KEYS)}",
        )
        items = _plain(overrides)
        unknown = [k for k in items if k not in MODEL_KEYS and k not in LEGACY_KEYS]
        check(not unknown, f"model keys {unknown}: expected ModelConfig fields {list(MODEL_KEYS)}")
        reg = items.get("regularizer", {})
        check(
            isinstance(reg, dict),
            f"model.regularizer={reg!r}: expected a mapping of RegularizerConfig fields {list(REGULARIZER_KEYS)}",
        )
        unknown = [k for k in reg if k not in REGULARIZER_KEYS]
        check(
            not unknown,
            f"model.regularizer keys {unknown}: expected RegularizerConfig fields {list(REGULARIZER_KEYS)}",
        )
        object.__setattr__(self, "_items", items)
        object.__setattr__(self, "_effective", ModelConfig.from_dict(self.to_dict()))  # checks the values

    def to_dict(self) -> dict[str, Any]:
        """The block as given (a fresh plain dict: same keys, order and nulls; ``regularizer`` a dict)."""
        return copy.deepcopy(self._items)

    def model_config(self, signal_shape: Sequence[int]) -> ModelConfig:
        """The :class:`~landscape.models.ModelConfig` of a task whose signals have shape ``signal_shape``
        (the block's fields over ModelConfig's defaults; a legacy entry left out)."""
        return ModelConfig.from_dict({**self.to_dict(), "signal_shape": list(signal_shape)})

    @property
    def effective(self) -> ModelConfig:
        """The ModelConfig the block describes, at its own ``signal_shape`` or ModelConfig's default one (use
        :meth:`model_config` for a task's): each field as stated, or its default."""
        return self._effective

    def stated(self, name: str) -> Any:
        """The value the block states for ModelConfig field ``name`` (``regularizer.NAME`` for a
        RegularizerConfig field), or None where it leaves the default."""
        head, _, sub = name.partition(".")
        known = head in MODEL_KEYS and (not sub or head == "regularizer" and sub in REGULARIZER_KEYS)
        check(
            known,
            f"model field {name!r}: expected one of {list(MODEL_KEYS)} or regularizer.NAME with NAME in "
            f"{list(REGULARIZER_KEYS)}",
        )
        value = self._items.get(head)
        return (value or {}).get(sub) if sub else copy.deepcopy(value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"ModelOverrides is immutable: cannot set {name!r}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ModelOverrides) and self._items == other._items

    def __hash__(self) -> int:
        return hash(json.dumps(self._items, sort_keys=True, default=repr))

    def __repr__(self) -> str:
        return f"ModelOverrides({self._items!r})"

    def __reduce__(self) -> tuple[type[ModelOverrides], tuple[dict[str, Any]]]:
        return (ModelOverrides, (self._items,))

    def __copy__(self) -> ModelOverrides:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> ModelOverrides:
        return self


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on (see :mod:`landscape.train` for the seeds).

    ``strategy`` is the typed :class:`~landscape.strategies.Strategy` (it holds σ and the noise rule) and
    ``model`` the typed :class:`ModelOverrides` (the preset's ModelConfig fields, kept as given); each may be
    given as a dict (a saved ``to_dict()``), converted and checked here.  ``task_options`` (the task's own,
    checked by :func:`landscape.data.make_task`) and ``evaluation`` (read by
    :meth:`landscape.evaluate.EvalConfig.from_run_config`) stay dicts.  :meth:`to_dict` / :meth:`from_dict`
    round-trip a saved config byte for byte (``tests/test_config.py``).
    """

    task: str = "denoise"
    size: str = "small"
    task_options: dict[str, Any] = field(default_factory=dict)
    strategy: Strategy = field(default_factory=MSE)  # typed; a dict (a saved ``to_dict()``) is converted
    # the preset's ModelConfig fields, typed but kept as given (order, explicit nulls): a dict is converted
    model: ModelOverrides = field(default_factory=ModelOverrides)
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
        if not isinstance(self.model, ModelOverrides):  # checked here, so a bad model fails at config time
            object.__setattr__(self, "model", ModelOverrides(self.model))

    @property
    def resolved_data_seed(self) -> int:
        """The seed of the data sets: ``data_seed`` when given, else the run's ``seed``."""
        return self.seed if self.data_seed is None else int(self.data_seed)

    def to_dict(self) -> dict[str, Any]:
        """The config as saved in a checkpoint: plain JSON values; options added later are left out at their default (:data:`OPTIONAL_DEFAULTS`), so older runs keep their bytes."""
        d = asdict(self)
        d["strategy"] = self.strategy.to_dict()
        d["model"] = self.model.to_dict()
        d["data_seed"] = self.resolved_data_seed
        for k, v in OPTIONAL_DEFAULTS.items():  # options added later stay out at their default, so a run
            if k in d and d[k] == v:  # without them keeps the config (and checkpoint) it always had
                del d[k]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """The config of a saved :meth:`to_dict` (missing optional keys take their defaults); an unknown key is one line naming it."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        check(not unknown, f"unknown training config keys {unknown}")
        return cls(**d)
