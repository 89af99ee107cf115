"""Every preset in one place, as frozen dataclasses and read-only tables.

* :data:`TRAIN_PRESETS` — per task and size, a :class:`TrainPreset` (data sizes, optimiser, model, the default
  options of each strategy, the evaluation), read by :func:`landscape.train.make_train_config` through
  :func:`train_preset`;
* :data:`EXPERIMENT_PRESETS` — per experiment preset and task, an :class:`ExperimentPreset` (the training size
  preset, seeds, epoch budget and early stopping, evaluation, curvature and claims budgets), read by
  :mod:`landscape.experiment` through :func:`experiment_preset`;
* :data:`TASK_PRESETS` — per task and size, the task's options and their defaults (including
  ``noise_sigma``), read by :class:`landscape.data.task.Task` (each task's ``PRESETS``) and
  :func:`task_options`.

A preset is immutable: its nested tables are read-only mappings and tuples (:func:`thaw` and each preset's
``to_dict`` return plain, fresh copies a caller may change).  The tables themselves are plain dicts of
presets, so a test may swap one preset for another (``dataclasses.replace``).  This module imports nothing
of the package but :mod:`landscape.errors` (it sits in the lowest layer).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

from landscape.errors import check

__all__ = [
    "TrainPreset",
    "ExperimentPreset",
    "TRAIN_PRESETS",
    "EXPERIMENT_PRESETS",
    "TASK_PRESETS",
    "train_preset",
    "experiment_preset",
    "task_options",
    "thaw",
]


class _FrozenList(tuple):
    """A list of a preset, frozen (:func:`thaw` makes it a list again; a tuple stays a tuple)."""

    __slots__ = ()


def _freeze(value: Any) -> Any:
    """``value`` with every dict made a read-only mapping and every list a tuple, recursively."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return _FrozenList(_freeze(v) for v in value)
    if isinstance(value, tuple) and not isinstance(value, _FrozenList):
        return tuple(_freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """A plain, fresh copy of a preset's value: read-only mappings become dicts, frozen lists lists again."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, _FrozenList):
        return [thaw(v) for v in value]
    if isinstance(value, tuple):
        return tuple(thaw(v) for v in value)
    return value


@dataclass(frozen=True)
class TrainPreset:
    """The training preset of one task and size: what :func:`landscape.train.make_train_config` starts from.

    ``model`` is the :class:`~landscape.models.ModelConfig` table (``n_iter``, ``regularizer``), ``strategy``
    the default options of each strategy by name, ``evaluation`` the :class:`~landscape.evaluate.EvalConfig`
    defaults of its runs.  The tables are read-only (:meth:`to_dict` gives plain copies).
    """

    epochs: int
    batch_size: int
    lr: float
    train_size: int
    val_size: int
    model: Mapping[str, Any]
    strategy: Mapping[str, Mapping[str, Any]]
    evaluation: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Freeze ``model``, ``strategy`` and ``evaluation`` (read-only mappings, frozen lists)."""
        for name in ("model", "strategy", "evaluation"):
            object.__setattr__(self, name, _freeze(getattr(self, name)))

    def strategy_options(self, name: str) -> dict[str, Any]:
        """The preset's default options of strategy ``name`` (a fresh dict; empty for a strategy it leaves at
        its own defaults)."""
        return thaw(self.strategy.get(name, {}))

    def to_dict(self) -> dict[str, Any]:
        """The preset as a plain, fresh dict (``epochs``, ..., ``model``, ``strategy``, ``evaluation``)."""
        return {f.name: thaw(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True)
class ExperimentPreset:
    """The settings of one experiment preset for one task (:mod:`landscape.experiment`).

    ``size`` names the :class:`TrainPreset` its runs start from; ``epochs`` ... ``regularizer`` and
    ``task_options`` override that preset's values where set (``None``: the training preset's).  ``seeds``
    is the default seed count; ``snapshots`` the checkpoints the main GD mse and sgd-jitter runs keep along
    training.  The evaluation: ``n_test`` samples (``None``: the training preset's), PGD at each of
    ``attack_eps`` (``None``: the training preset's) with ``restarts`` and ``attack_steps``, and the random
    noise at the middle ε; adversarial training takes ``adversarial_steps`` PGD steps (``None``: the
    training preset's).  Curvature on ``curvature_samples`` ID test samples per run (and per snapshot unless
    ``snapshot_curvature`` is false), on the :class:`~landscape.curvature.CurvatureSettings` budget
    ``curvature`` (``None``: its defaults); ``claims`` are :class:`~landscape.claims.ClaimsSettings` keywords.

    ``stated`` lists the settings the preset states, in its order: :meth:`to_dict` (the ``preset_settings`` of
    ``results.json``) gives those and any other that differs from its default.
    """

    size: str
    attack_steps: int
    restarts: int
    curvature_samples: int
    seeds: int = 3
    epochs: int | None = None
    patience: int | None = None
    min_delta: float | None = None
    lr_decays: int | None = None
    lr_factor: float | None = None
    lr: float | None = None
    train_size: int | None = None
    val_size: int | None = None
    batch_size: int | None = None
    n_iter: int | None = None
    regularizer: Mapping[str, Any] | None = None
    task_options: Mapping[str, Any] | None = None
    snapshots: int = 0
    n_test: int | None = None
    attack_eps: tuple[float, ...] | None = None
    adversarial_steps: int | None = None
    snapshot_curvature: bool = True
    curvature: Mapping[str, Any] | None = None
    claims: Mapping[str, Any] = field(default_factory=dict)
    stated: tuple[str, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        """Freeze every field (read-only mappings, frozen lists)."""
        for f in fields(self):
            object.__setattr__(self, f.name, _freeze(getattr(self, f.name)))

    @classmethod
    def of(cls, **settings: Any) -> ExperimentPreset:
        """The preset with ``settings``, which it records as stated (:meth:`to_dict` keeps them, in order)."""
        return cls(**settings, stated=tuple(settings))

    def train_overrides(self) -> dict[str, Any]:
        """The training preset's values this preset overrides (those it sets), as plain values."""
        keys = (
            "epochs",
            "patience",
            "min_delta",
            "lr",
            "lr_decays",
            "lr_factor",
            "train_size",
            "val_size",
            "batch_size",
            "n_iter",
            "regularizer",
            "task_options",
        )
        return {k: thaw(getattr(self, k)) for k in keys if getattr(self, k) is not None}

    def to_dict(self) -> dict[str, Any]:
        """The settings the preset states, then any other that differs from its default, as plain values."""
        other = [
            f.name
            for f in fields(self)
            if f.name != "stated" and f.name not in self.stated and getattr(self, f.name) != _default(f)
        ]
        return {k: thaw(getattr(self, k)) for k in (*self.stated, *other)}


def _default(f: Any) -> Any:
    return _freeze(f.default_factory()) if callable(f.default_factory) else f.default


# Per task and size: data sizes, optimiser, model, and the default strength of each strategy.
# 'paper' follows the paper (Adam, lr 1e-4, K = 10, its data sizes); 'small' is sized for a CPU: the toy
# preset trains in about 10-20 s per model on one core, with lr 2e-3 (the paper's 1e-4 leaves the MSE model
# far from converged in 256 steps).  The sizes were chosen on the MSE model's validation loss and time only.
# Strategy defaults (see _strategies): sgd/spgd-jitter use the 'paper' jitter mode, the official code's rule
# exactly (noise std sigma * max(x_k - eta A^T(A x_k - y)), one signed max over the batch, not detached; see
# landscape.jitter), with the paper code's sigma: 0.1 for the toy and seismic tasks, 0.01 for MRI.  Until
# issue 15 the presets used the per-sample step rule (then called 'relative'), whose noise decays along k
# (0.157 -> 0.030 on a trained toy model, against about 0.13 for the paper's rule).  input-jitter sigma 0.05
# per entry (the paper's code); adversarial eps relative to ||y|| per sample on the small presets.


def _strategies(*, jitter_sigma: float, adversarial: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Default options of each strategy in a preset."""
    return {
        "input-jitter": {"sigma": 0.05},
        "adversarial": adversarial,
        "sgd-jitter": {"sigma": jitter_sigma, "mode": "paper"},
        "spgd-jitter": {"sigma": jitter_sigma, "mode": "paper"},
        "curvature-penalty": {"sigma": jitter_sigma, "mode": "paper"},  # the penalty of the sgd-jitter above
    }


def _evaluation(*, n_test: int, eps: float, relative: bool) -> dict[str, Any]:
    """The evaluation a preset runs: ``n_test`` test samples, PGD (20 steps of 0.1) and random noise at ``eps``
    (relative to ‖y‖ per sample when ``relative``)."""
    return {
        "n_test": n_test,
        "attack_eps": [eps],
        "relative": relative,
        "random_eps": [eps],
        "steps": 20,
        "step_size": 0.1,
    }


TRAIN_PRESETS: dict[str, dict[str, TrainPreset]] = {
    "denoise": {
        "small": TrainPreset(
            epochs=8,
            batch_size=64,
            lr=2e-3,
            train_size=2048,
            val_size=256,
            model={"n_iter": 10, "regularizer": {"kind": "cnn", "width": 32, "depth": 4, "kernel_size": 5}},
            strategy=_strategies(
                jitter_sigma=0.1, adversarial={"eps": 0.1, "relative": True, "steps": 5, "step_size": 0.5}
            ),
            evaluation=_evaluation(n_test=256, eps=0.1, relative=True),
        ),
        "paper": TrainPreset(
            epochs=100,
            batch_size=32,
            lr=1e-4,
            train_size=4096,
            val_size=512,
            model={"n_iter": 10, "regularizer": {"kind": "cnn", "width": 64, "depth": 5, "kernel_size": 5}},
            strategy=_strategies(
                jitter_sigma=0.1, adversarial={"eps": 0.1, "relative": True, "steps": 20, "step_size": 0.1}
            ),
            evaluation=_evaluation(n_test=1024, eps=0.1, relative=True),
        ),
    },
    "seismic": {
        "small": TrainPreset(
            epochs=5,
            batch_size=16,
            lr=1e-3,
            train_size=256,
            val_size=64,
            model={"n_iter": 10, "regularizer": {"kind": "cnn", "width": 16, "depth": 3, "kernel_size": 5}},
            strategy=_strategies(
                jitter_sigma=0.1, adversarial={"eps": 0.1, "relative": True, "steps": 5, "step_size": 0.5}
            ),
            evaluation=_evaluation(n_test=128, eps=0.1, relative=True),
        ),
        "paper": TrainPreset(
            epochs=100,
            batch_size=16,
            lr=1e-4,
            train_size=2048,
            val_size=256,
            model={"n_iter": 10, "regularizer": {"kind": "cnn", "width": 64, "depth": 5, "kernel_size": 5}},
            strategy=_strategies(
                jitter_sigma=0.1, adversarial={"eps": 1.0, "relative": False, "steps": 20, "step_size": 0.1}
            ),
            evaluation=_evaluation(n_test=256, eps=1.0, relative=False),
        ),
    },
    "mri": {
        "small": TrainPreset(
            epochs=3,
            batch_size=8,
            lr=1e-3,
            train_size=128,
            val_size=32,
            model={
                "n_iter": 5,
                "regularizer": {"kind": "cnn", "width": 16, "depth": 3, "kernel_size": 3, "norm": "group"},
            },
            strategy=_strategies(
                jitter_sigma=0.01, adversarial={"eps": 0.1, "relative": True, "steps": 5, "step_size": 0.5}
            ),
            evaluation=_evaluation(n_test=64, eps=0.1, relative=True),
        ),
        "paper": TrainPreset(
            epochs=50,
            batch_size=4,
            lr=1e-4,
            train_size=1024,
            val_size=64,
            model={
                "n_iter": 10,
                "regularizer": {"kind": "cnn", "width": 64, "depth": 8, "kernel_size": 3, "norm": "group"},
            },
            strategy=_strategies(
                jitter_sigma=0.01, adversarial={"eps": 1.0, "relative": False, "steps": 20, "step_size": 0.1}
            ),
            evaluation=_evaluation(n_test=64, eps=1.0, relative=False),
        ),
    },
}

#: Per preset: the training size preset, the epoch budget and early stopping, the evaluation and the
#: curvature samples, per task.  ``fast`` is sized for 2 CPU cores, for the targets denoise ≤ 15 min and
#: seismic, mri ≤ 30 min each with 3 seeds and ``workers=2`` (docs/results.md has the measured times): every
#: task runs K = 5 iterations (the paper: 10), MRI at 32 × 32.  Runs train until validation PSNR stops
#: improving: a plateau (``patience`` epochs without a gain above ``min_delta`` dB) first divides the learning
#: rate (twice, by 1/0.3) and only the third stops the run (with plain early stopping a noisy validation
#: curve stopped the input-jitter run at epoch 14-16, 0.65 dB below MSE, which would have compared a stopped
#: model with a converged one).  The epoch budget is a safety net ("stopping" in results.json says which
#: runs hit it).  The learning rates were chosen on the validation PSNR of the GD MSE model of seed 0 alone
#: (strategy-neutral), as the rate whose run reached its plateau soonest: denoise 5e-3 (epoch 34; at K = 10,
#: 5e-3 took 26 epochs and 2e-3 38), mri 1e-3 (48; 3e-3: 68), seismic 3e-3 (45): 1e-2 reached the GD
#: plateau sooner (37) but the proximal MSE run of seed 0 diverged at it (8 → -13 dB validation PSNR by
#: epoch 10), so the rate is the soonest at which both architectures train.  Seismic's claims analyse one
#: ID sample per checkpoint, as MRI's do: with two, the experiment took 31.8 min, 9.9 of them claims.
#: ``paper`` uses the paper's sizes (K = 10, 352-sample traces, 320 × 320 MRI) and is meant for a GPU;
#: ``tiny`` is a smoke test (seconds).
_FAST: dict[str, Any] = {
    "size": "small",
    "n_iter": 5,
    "epochs": 80,
    "patience": 3,
    "min_delta": 0.02,
    "lr_decays": 2,
    "lr_factor": 0.3,
    "attack_eps": [0.05, 0.1, 0.2],
    "restarts": 2,
}
_SMALL_BUDGET: dict[str, Any] = {
    "top_k": 1,
    "eig_max_matvecs": 20,
    "trace_max_matvecs": 20,
    "trace_rtol": None,
}
EXPERIMENT_PRESETS: dict[str, dict[str, ExperimentPreset]] = {
    "fast": {
        "denoise": ExperimentPreset.of(
            **_FAST,
            seeds=8,
            lr=5e-3,
            train_size=1024,
            adversarial_steps=3,
            snapshots=8,
            n_test=128,
            attack_steps=10,
            curvature_samples=8,
            claims={"n_eval": 64, "n_curvature": 4, "n_ood_curvature": 2, "mc_pairs": 256},
        ),
        "seismic": ExperimentPreset.of(
            **_FAST,
            lr=3e-3,
            train_size=128,
            adversarial_steps=2,
            snapshots=3,
            n_test=32,
            attack_steps=5,
            curvature_samples=1,
            snapshot_curvature=False,
            curvature=_SMALL_BUDGET,
            claims={
                "n_eval": 32,
                "n_curvature": 1,
                "n_ood_curvature": 1,
                "mc_pairs": 64,
                "n_directions": 4,
                "sigmas": (0.05, 0.1),
            },
        ),
        "mri": ExperimentPreset.of(
            **_FAST,
            seeds=5,
            lr=1e-3,
            train_size=64,
            task_options={"shape": 32},
            adversarial_steps=2,
            snapshots=3,
            n_test=16,
            attack_steps=5,
            curvature_samples=1,
            snapshot_curvature=False,
            curvature=_SMALL_BUDGET,
            claims={
                "n_eval": 16,
                "n_curvature": 1,
                "n_ood_curvature": 1,
                "mc_pairs": 32,
                "n_directions": 4,
                "sigmas": (0.005, 0.01),
            },
        ),
    },
    "paper": {
        task: ExperimentPreset.of(
            size="paper",
            epochs=None,
            patience=5,
            min_delta=0.01,
            snapshots=5,
            n_test=None,
            attack_eps=None,
            restarts=5,
            attack_steps=20,
            curvature_samples=16,
            claims={},
        )
        for task in ("denoise", "seismic", "mri")
    },
    "tiny": {
        task: ExperimentPreset.of(
            size="small",
            epochs=2,
            patience=1,
            min_delta=0.0,
            train_size=16,
            val_size=8,
            batch_size=8,
            n_iter=2,
            snapshots=2 if task == "denoise" else 0,
            n_test=4,
            attack_eps=[0.1, 0.2],
            restarts=2,
            attack_steps=1,
            curvature_samples=2 if task == "denoise" else 1,
            adversarial_steps=1,
            curvature={
                "top_k": 1,
                "bottom_k": 1,
                "eig_max_matvecs": 12,
                "trace_max_matvecs": 12,
                "trace_rtol": None,
            },
            claims={
                "n_eval": 8,
                "n_curvature": 1,
                "n_ood_curvature": 1,
                "mc_pairs": 16,
                "n_directions": 2,
                "regularizer_probes": 2,
                "sigmas": (0.1,),
            },
        )
        for task in ("denoise", "seismic", "mri")
    },
}

#: Per task and size: every option of the task and its default, ``noise_sigma`` included (the options are
#: documented on each task class, :mod:`landscape.data`).  The toy task is small by design: both its sizes
#: are the same.
_DENOISE: dict[str, Any] = {
    "noise_sigma": 0.25,
    "length": 64,
    "min_jumps": 2,
    "max_jumps": 6,
    "min_segment": 4,
    "ood_amplitude": 2.0,
}
_SEISMIC: dict[str, Any] = {
    "noise_sigma": 0.01,
    "max_dip": 0.4,
    "min_amplitude": 0.2,
    "reflector_amplitude": -0.1,
    "reflector_traces": 10,
    "dense_factor": 3.0,
    "wavelet_length": 51,
    "wavelet_width": 4.0,
}
_MRI: dict[str, Any] = {
    "noise_sigma": 0.01,
    "acceleration": 4.0,
    "center_fraction": 0.08,
    "mask_seed": 0,
    "phase": "none",
    "source": "phantom",
    "data_dir": None,
    "holdout_every": 5,
}
TASK_PRESETS: Mapping[str, Mapping[str, Mapping[str, Any]]] = _freeze(
    {
        "denoise": {"small": _DENOISE, "paper": _DENOISE},
        "seismic": {
            "small": {**_SEISMIC, "n_time": 64, "n_traces": 16, "mean_layers": 5.0},
            "paper": {**_SEISMIC, "n_time": 352, "n_traces": 64, "mean_layers": 24.0},
        },
        "mri": {"small": {**_MRI, "shape": (64, 64)}, "paper": {**_MRI, "shape": (320, 320)}},
    }
)


def _lookup(table: Mapping[str, Any], key: str, what: str) -> Any:
    check(key in table, f"{what}={key!r}: expected one of {tuple(table)}")
    return table[key]


def train_preset(task: str, size: str = "small") -> TrainPreset:
    """The training preset of ``task`` at ``size`` (:data:`TRAIN_PRESETS`); ``ValueError`` naming an unknown
    task or size."""
    return _lookup(_lookup(TRAIN_PRESETS, task, "task"), size, "size")


def experiment_preset(preset: str, task: str) -> ExperimentPreset:
    """The experiment preset ``preset`` for ``task`` (:data:`EXPERIMENT_PRESETS`); ``ValueError`` naming an
    unknown preset or task."""
    return _lookup(_lookup(EXPERIMENT_PRESETS, preset, "preset"), task, "task")


def task_options(task: str, size: str = "small") -> dict[str, Any]:
    """The options of ``task`` at ``size`` with their defaults (:data:`TASK_PRESETS`), as a fresh dict;
    ``ValueError`` naming an unknown task or size."""
    return thaw(_lookup(_lookup(TASK_PRESETS, task, "task"), size, "size"))
