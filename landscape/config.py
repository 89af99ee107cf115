"""The typed description of a training run: :class:`TrainConfig` (with its blocks, :class:`ConfigBlock` s:
:class:`ModelOverrides`, :class:`EvaluationBlock` and :class:`TaskOptions`), and the helpers that compare saved run
configs (:func:`config_differences`).  Below :mod:`landscape.train`, :mod:`landscape.checkpoint` and
:mod:`landscape.evaluate`, which read it; above :mod:`landscape.data`, whose tasks declare their options."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from landscape.data.task import task_class
from landscape.errors import check, check_count, check_device, check_positive_int
from landscape.models import LEGACY_KEYS, ModelConfig, RegularizerConfig
from landscape.presets import thaw
from landscape.strategies import MSE, Strategy, strategy_from_config

__all__ = [
    "AUTOCAST",
    "OPTIONAL_DEFAULTS",
    "SIZES",
    "ConfigBlock",
    "EvaluationBlock",
    "EvaluationSettings",
    "ModelOverrides",
    "TaskOptions",
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
    """A fresh copy of ``value`` with every mapping (a preset's read-only one too) a plain dict and a preset's
    frozen list a list again."""
    return copy.deepcopy(thaw(value))


class ConfigBlock:
    """A block of a run config (a JSON object of it), kept as given: its keys in their order, with their
    explicit nulls, so :meth:`to_dict` (what a checkpoint stores) is the block again, byte for byte.

    A subclass sets :attr:`NAME` (the block's key in the run config, which its error lines name), lists the keys
    it knows (:meth:`_keys`; :meth:`_accepted` may allow more) and what they are (:meth:`_described`), and checks
    its values in :meth:`_validate`.  Checked when built: anything but a mapping, and an unknown key, are refused
    in one line.  Immutable; equal (and hashed) by type and content; pickles and copies as itself.
    """

    __slots__ = ("_items",)
    #: The block's key in the run config.
    NAME = "block"

    def __init__(self, items: Mapping[str, Any] | ConfigBlock | None = None) -> None:
        """Keep a plain copy of ``items`` (a mapping, or a block of the same type; None: empty), checked."""
        if isinstance(items, type(self)):
            items = items._items
        items = {} if items is None else items
        check(isinstance(items, Mapping), f"{self.NAME}={items!r}: expected a mapping of {self._described()}")
        plain = _plain(items)
        accepted = self._accepted()
        unknown = [k for k in plain if k not in accepted]
        check(not unknown, f"{self.NAME} keys {unknown}: expected {self._described()}")
        object.__setattr__(self, "_items", plain)
        self._validate()

    # -- for subclasses ------------------------------------------------------------------------
    def _keys(self) -> tuple[str, ...]:  # pragma: no cover - abstract
        """The keys the block knows."""
        raise NotImplementedError

    def _accepted(self) -> tuple[str, ...]:
        """The keys the block may hold (:meth:`_keys`, unless a subclass allows more)."""
        return self._keys()

    def _described(self) -> str:
        """What the keys are, for an error line."""
        return f"{self.NAME} keys {list(self._keys())}"

    def _validate(self) -> None:
        """Check the values (a subclass raises ``ValueError`` in one line naming a bad one)."""

    def _args(self) -> tuple[Any, ...]:
        """What rebuilds the block (``type(self)(*args)``), and what it is equal by."""
        return (self._items,)

    # -- the block -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The block as given (a fresh plain dict: same keys, order and nulls)."""
        return copy.deepcopy(self._items)

    def stated(self, name: str) -> Any:
        """The value the block states for key ``name`` (a fresh copy), or None where it leaves it out."""
        keys = self._keys()
        check(name in keys, f"{self.NAME} field {name!r}: expected one of {list(keys)}")
        return copy.deepcopy(self._items.get(name))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: cannot set {name!r}")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._args() == other._args()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, json.dumps(self._args(), sort_keys=True, default=repr)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(map(repr, self._args()))})"

    def __reduce__(self) -> tuple[type[ConfigBlock], tuple[Any, ...]]:
        return (type(self), self._args())

    def __copy__(self) -> ConfigBlock:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> ConfigBlock:
        return self


class ModelOverrides(ConfigBlock):
    """The model block of a run config: the :class:`~landscape.models.ModelConfig` fields a preset (or a saved
    config) sets, kept as given, in their order, with their explicit nulls (``step: null``)
    (a :class:`ConfigBlock`).

    :meth:`to_dict` is that block again (what a checkpoint stores, byte for byte), :meth:`model_config` the
    ModelConfig it describes for a task's signal shape, :attr:`effective` that ModelConfig at the block's own
    (or the default) signal shape, for reading a field with its default, and :meth:`stated` one field as the
    block states it (None where it leaves the default).  Checked when built: an unknown key (or an unknown
    ``regularizer`` key) is refused in one line, and a bad value by the ModelConfig it describes.  A legacy
    ``jitter`` entry (:data:`landscape.models.LEGACY_KEYS`) is kept as written and left out of the ModelConfig
    (:func:`landscape.checkpoint.load_checkpoint` checks it against the run's strategy).
    Immutable; equal (and hashed) by content.
    """

    __slots__ = ("_effective",)
    NAME = "model"

    def _keys(self) -> tuple[str, ...]:
        return MODEL_KEYS

    def _accepted(self) -> tuple[str, ...]:
        return MODEL_KEYS + tuple(LEGACY_KEYS)

    def _described(self) -> str:
        return f"ModelConfig fields {list(MODEL_KEYS)}"

    def _validate(self) -> None:
        """Check the ``regularizer`` keys here and every value through the ModelConfig the block describes."""
        reg = self._items.get("regularizer", {})
        check(
            isinstance(reg, dict),
            f"model.regularizer={reg!r}: expected a mapping of RegularizerConfig fields {list(REGULARIZER_KEYS)}",
        )
        unknown = [k for k in reg if k not in REGULARIZER_KEYS]
        check(
            not unknown,
            f"model.regularizer keys {unknown}: expected RegularizerConfig fields {list(REGULARIZER_KEYS)}",
        )
        object.__setattr__(self, "_effective", ModelConfig.from_dict(self.to_dict()))  # checks the values

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


def _check_eps_list(value: Any, name: str) -> tuple[float, ...]:
    """``value`` (a list of finite numbers >= 0: the ε of an evaluation) as floats, or one ``ValueError`` line."""
    ok = isinstance(value, (list, tuple)) and all(
        isinstance(e, (int, float)) and not isinstance(e, bool) and math.isfinite(e) and e >= 0 for e in value
    )
    check(ok, f"{name}={value!r}: expected a list of finite numbers >= 0")
    return tuple(float(e) for e in value)


@dataclass(frozen=True)
class EvaluationSettings:
    """The evaluation a run config's ``evaluation`` block describes (:attr:`EvaluationBlock.effective`): each
    setting as stated, or its default, the default of the :class:`~landscape.evaluate.EvalConfig` field it sets
    (``steps`` sets ``attack_steps``, ``step_size`` ``attack_step_size``, ``restarts`` ``attack_restarts``;
    ``tests/test_config.py`` checks the defaults agree).

    Checked when built, in one line naming the value: ``n_test`` and ``restarts`` integers >= 1, ``steps`` an
    integer >= 0 (as :class:`~landscape.attacks.PGDConfig` takes it), ``step_size`` a number > 0, the ε lists
    finite numbers >= 0 (kept as tuples of floats, ``step_size`` as a float), ``relative`` a bool.
    """

    n_test: int = 256
    attack_eps: tuple[float, ...] = (0.1,)
    random_eps: tuple[float, ...] = (0.1,)
    relative: bool = True
    steps: int = 20
    step_size: float = 0.1
    restarts: int = 1

    def __post_init__(self) -> None:
        """Check every setting; the ε lists become tuples of floats."""
        check_positive_int(self.n_test, "evaluation.n_test")
        check_positive_int(self.restarts, "evaluation.restarts")
        check_positive_int(self.steps, "evaluation.steps", minimum=0)
        for name in ("attack_eps", "random_eps"):
            object.__setattr__(self, name, _check_eps_list(getattr(self, name), f"evaluation.{name}"))
        step = self.step_size
        check(
            isinstance(step, (int, float))
            and not isinstance(step, bool)
            and math.isfinite(step)
            and step > 0,
            f"evaluation.step_size={step!r}: expected a number > 0 (a fraction of eps)",
        )
        check(
            isinstance(self.relative, bool), f"evaluation.relative={self.relative!r}: expected true or false"
        )
        object.__setattr__(self, "step_size", float(step))


#: The keys a run config's ``evaluation`` block may hold: the :class:`EvaluationSettings` fields.
EVALUATION_KEYS = tuple(f.name for f in fields(EvaluationSettings))


class EvaluationBlock(ConfigBlock):
    """The evaluation block of a run config: the :class:`EvaluationSettings` (``n_test``, ``attack_eps``,
    ``random_eps``, ``relative``, ``steps``, ``step_size``, ``restarts``) a preset sets for its runs, kept as
    given (a :class:`ConfigBlock`).

    :attr:`effective` reads the settings typed, each as stated or its default (``block.effective.attack_eps``);
    :meth:`stated` gives one as stated (None where the block leaves it out).  Checked when built: an unknown key
    is refused in one line, and a bad value by the EvaluationSettings it describes.
    """

    __slots__ = ("_effective",)
    NAME = "evaluation"

    def _keys(self) -> tuple[str, ...]:
        return EVALUATION_KEYS

    def _validate(self) -> None:
        """Check the values through the EvaluationSettings the block describes."""
        object.__setattr__(self, "_effective", EvaluationSettings(**self._items))

    @property
    def effective(self) -> EvaluationSettings:
        """The settings, each as stated or its default."""
        return self._effective


class TaskOptions(ConfigBlock):
    """The task options of a run config: the options of task ``task`` at ``size`` that the run sets (those
    :func:`landscape.data.make_task` takes, ``noise_sigma`` included), kept as given (a :class:`ConfigBlock`).

    Checked when built: an unknown task, and an option the task does not declare (its class's ``PRESETS``, the
    tables of :data:`landscape.presets.TASK_PRESETS`), are refused in one line; the values are the task's to
    check when it is built.  ``to_dict()`` is what ``make_task(task, size=size, **options)`` takes.
    """

    __slots__ = ("_task", "_size")
    NAME = "task_options"

    def __init__(
        self,
        options: Mapping[str, Any] | TaskOptions | None = None,
        task: str = "denoise",
        size: str = "small",
    ) -> None:
        """Keep ``options`` of task ``task`` at ``size``, checked against the options the task declares."""
        object.__setattr__(self, "_task", task)
        object.__setattr__(self, "_size", size)
        super().__init__(options)

    def _keys(self) -> tuple[str, ...]:
        presets = task_class(self._task).PRESETS  # names an unknown task
        check(self._size in presets, f"size={self._size!r}: expected one of {tuple(presets)}")
        return tuple(presets[self._size])

    def _described(self) -> str:
        return f"options of task {self._task!r} {list(self._keys())}"

    def _args(self) -> tuple[Any, ...]:
        return (self._items, self._task, self._size)

    @property
    def task(self) -> str:
        """The task the options belong to."""
        return self._task

    @property
    def size(self) -> str:
        """The task's size preset."""
        return self._size


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on (see :mod:`landscape.train` for the seeds).

    ``strategy`` is the typed :class:`~landscape.strategies.Strategy` (it holds σ and the noise rule); the
    run config's blocks are typed :class:`ConfigBlock` s that keep the keys as given (order, explicit nulls):
    ``model`` a :class:`ModelOverrides` (the preset's ModelConfig fields), ``evaluation`` an
    :class:`EvaluationBlock` (the :class:`~landscape.evaluate.EvalConfig` settings of its runs, read typed:
    ``config.evaluation.effective.attack_eps``) and ``task_options`` a :class:`TaskOptions` (the task's own options,
    their names checked against those task ``task`` declares at ``size``; their values when the task is built
    by :func:`landscape.data.make_task`).  Each may be given as a dict (a saved ``to_dict()``), converted and
    checked here.  :meth:`to_dict` / :meth:`from_dict` round-trip a saved config byte for byte
    (``tests/test_config.py``).
    """

    task: str = "denoise"
    size: str = "small"
    task_options: TaskOptions = field(
        default_factory=TaskOptions
    )  # typed; a dict is converted (for ``task``)
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
    evaluation: EvaluationBlock = field(default_factory=EvaluationBlock)  # typed; a dict is converted
    autocast: str | None = None  # "bf16": the training forward under torch.autocast in bfloat16

    def __post_init__(self) -> None:
        """Check every field (one ``ValueError`` line naming a bad value) and build the typed ones from dicts."""
        check(self.size in SIZES, f"size={self.size!r}: expected one of {SIZES}")
        self._check_training()
        self._check_schedule()
        if isinstance(self.strategy, dict):  # built once, here: the typed strategy is the one source of σ
            object.__setattr__(self, "strategy", strategy_from_config(self.strategy))
        self._typed_blocks()

    def _check_training(self) -> None:
        """Check the sizes, rate, seed, device and precision of the run."""
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

    def _check_schedule(self) -> None:
        """Check gradient clipping, early stopping, the learning-rate decays, epoch passes and snapshots."""
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

    def _typed_blocks(self) -> None:
        """Build the typed blocks from dicts (checked here, so a bad block fails at config time); task options
        given for another task or size are checked again for this run's."""
        if not isinstance(self.model, ModelOverrides):
            object.__setattr__(self, "model", ModelOverrides(self.model))
        if not isinstance(self.evaluation, EvaluationBlock):
            object.__setattr__(self, "evaluation", EvaluationBlock(self.evaluation))
        opts = self.task_options
        if not (isinstance(opts, TaskOptions) and (opts.task, opts.size) == (self.task, self.size)):
            items = opts.to_dict() if isinstance(opts, TaskOptions) else opts
            object.__setattr__(self, "task_options", TaskOptions(items, self.task, self.size))

    @property
    def resolved_data_seed(self) -> int:
        """The seed of the data sets: ``data_seed`` when given, else the run's ``seed``."""
        return self.seed if self.data_seed is None else int(self.data_seed)

    def to_dict(self) -> dict[str, Any]:
        """The config as saved in a checkpoint: plain JSON values; options added later are left out at their default (:data:`OPTIONAL_DEFAULTS`), so older runs keep their bytes."""
        d = asdict(self)
        d["strategy"] = self.strategy.to_dict()
        for name in ("task_options", "model", "evaluation"):
            d[name] = getattr(self, name).to_dict()
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
