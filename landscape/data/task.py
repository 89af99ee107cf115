r"""The :class:`Task` API: a signal distribution, its OOD shifts and the physics that measures it.

.. code-block:: python

    task = make_task("denoise")                       # or "seismic", "mri"; size="small" | "paper"
    train = task.training_set(512, seed=0)            # fixed noise (drawn once); fresh_noise=True redraws
    for x, y in train.batches(32, generator=torch.Generator().manual_seed(1)):
        ...
    test = task.pairs(256, split="id", seed=0)        # Pairs(x, y); split in task.splits
    ood = task.pairs(256, split=task.shifts[0], seed=0)

Randomness (see :mod:`landscape.data.streams`): ``pairs(n, split=s, seed=k)`` draws the clean signal of
sample ``i`` on the stream ``(k, s, "clean", i)`` and its noise on ``(k, s, "noise", i)``, so the first ``m``
samples of ``pairs(n)`` are exactly ``pairs(m)`` (test sets of different sizes share their prefix, and
``landscape hessian --samples 8`` sees the first 8 samples of ``landscape evaluate``); the training set uses the split
name ``"train"``, so it never shares draws with a test split of the same seed.  Everything is generated
on the CPU in float64 and cast to ``dtype`` at the end.

The split ``"train"`` is also accepted by :meth:`Task.clean` and :meth:`Task.pairs`: it is the
in-distribution law (identical to ``"id"`` for the synthetic generators; for a file-backed source such as
fastMRI it selects the training pool of slices rather than the held-out one).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

import torch

from landscape.data.streams import check_seed, stream
from landscape.errors import check, check_nonneg_float
from landscape.io import check_memory, json_safe
from landscape.physics import Physics

__all__ = ["TASKS", "SIZES", "Task", "Pairs", "TrainingSet", "make_task", "task_from_config"]

TASKS = ("denoise", "seismic", "mri")
SIZES = ("small", "paper")

_DTYPES = (torch.float32, torch.float64)


def _check_n(n: object, name: str = "n") -> int:
    ok = isinstance(n, int) and not isinstance(n, bool) and n >= 1
    check(ok, f"{name}={n!r}: expected an integer >= 1")
    return int(n)  # type: ignore[arg-type]


def _check_dtype(dtype: object) -> torch.dtype:
    check(dtype in _DTYPES, f"dtype={dtype!r}: expected torch.float32 or torch.float64")
    return dtype  # type: ignore[return-value]


@dataclass(frozen=True, eq=False)
class Pairs:
    """Clean signals ``x`` (n, \\*signal_shape) and their measurements ``y`` (noise drawn once).

    Unpacks as ``x, y = pairs``.  ``split`` and ``seed`` say how to rebuild it.
    """

    x: torch.Tensor
    y: torch.Tensor
    split: str = "id"
    seed: int | None = None

    def __iter__(self) -> Iterator[torch.Tensor]:
        """``x``, then ``y``: so ``x, y = pairs`` unpacks."""
        return iter((self.x, self.y))

    def __len__(self) -> int:
        """The number of samples."""
        return int(self.x.shape[0])

    def to(self, device: Any = None, dtype: torch.dtype | None = None) -> Pairs:
        """A copy on another device / dtype (``None`` keeps the current one)."""
        return Pairs(
            self.x.to(device=device, dtype=dtype),
            self.y.to(device=device, dtype=dtype),
            self.split,
            self.seed,
        )


class TrainingSet:
    """A fixed set of clean training signals with measurements drawn once.

    ``fresh_noise=False``: :meth:`batches` yields the stored ``(x, y)`` pairs (noise fixed for good).
    ``fresh_noise=True``: every batch is re-measured, :math:`y = A x + z` with new noise ``z`` from the
    ``generator`` passed to :meth:`batches` (``.y`` still holds the first draw, e.g. for validation).
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        physics: Physics,
        *,
        fresh_noise: bool = False,
        seed: int | None = None,
    ):
        """Store the pairs; ``ValueError`` unless ``x`` and ``y`` have as many samples."""
        check(
            x.shape[0] == y.shape[0],
            f"x has {x.shape[0]} samples and y {y.shape[0]}: expected the same number",
        )
        check(isinstance(fresh_noise, bool), f"fresh_noise={fresh_noise!r}: expected True or False")
        self.x = x
        self.y = y
        self.physics = physics
        self.fresh_noise = fresh_noise
        self.seed = seed

    def __len__(self) -> int:
        """The number of training samples."""
        return int(self.x.shape[0])

    def __repr__(self) -> str:
        return (
            f"TrainingSet(n={len(self)}, signal_shape={tuple(self.x.shape[1:])}, dtype={self.x.dtype}, "
            f"fresh_noise={self.fresh_noise}, seed={self.seed})"
        )

    def to(self, device: Any = None, dtype: torch.dtype | None = None) -> TrainingSet:
        """A copy on another device / dtype (the physics is shared, it adapts to its input)."""
        return TrainingSet(
            self.x.to(device=device, dtype=dtype),
            self.y.to(device=device, dtype=dtype),
            self.physics,
            fresh_noise=self.fresh_noise,
            seed=self.seed,
        )

    def batches(
        self, batch_size: int, *, generator: torch.Generator, drop_last: bool = False
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of shuffled ``(x, y)`` mini-batches.

        The order is a new permutation drawn from ``generator`` on every call; with ``fresh_noise`` the
        measurement noise of each batch is drawn from ``generator`` as well, so a seeded generator makes
        the whole epoch reproducible.  ``drop_last`` skips a final incomplete batch.
        """
        batch_size = _check_n(batch_size, "batch_size")
        check(
            isinstance(generator, torch.Generator),
            f"generator={generator!r}: expected a torch.Generator (explicit randomness)",
        )
        n = len(self)
        perm = torch.randperm(n, generator=generator, device=generator.device, dtype=torch.int64).to(
            self.x.device
        )
        for start in range(0, n, batch_size):
            idx = perm[start : start + batch_size]
            if drop_last and len(idx) < batch_size:
                break
            xb = self.x[idx]
            if self.fresh_noise:
                with torch.no_grad():
                    yb = self.physics.measure(xb, generator=generator)
            else:
                yb = self.y[idx]
            yield xb, yb

    def n_batches(self, batch_size: int, drop_last: bool = False) -> int:
        """How many batches :meth:`batches` yields per epoch at ``batch_size``."""
        batch_size = _check_n(batch_size, "batch_size")
        return len(self) // batch_size if drop_last else math.ceil(len(self) / batch_size)


class Task:
    """A signal distribution with named OOD shifts and the physics that measures it.

    Subclasses set ``name``, ``shifts``, ``PRESETS`` (per size: every option and its default, including
    ``noise_sigma``; the tasks' own are :data:`landscape.presets.TASK_PRESETS`), and implement
    :meth:`_build_physics`, :meth:`_signal_shape` and :meth:`_sample`.
    """

    name: ClassVar[str] = "task"
    shifts: tuple[str, ...] = ()
    PRESETS: ClassVar[Mapping[str, Mapping[str, Any]]] = MappingProxyType({})

    def __init__(self, *, size: str = "small", noise_sigma: float | None = None, **options: Any):
        """Merge the ``size`` preset with ``options`` (unknown names refused) and build the physics."""
        check(size in self.PRESETS, f"size={size!r}: expected one of {tuple(self.PRESETS)}")
        preset = dict(self.PRESETS[size])
        default_noise = preset.pop("noise_sigma")
        unknown = sorted(set(options) - set(preset))
        check(
            not unknown,
            f"unknown option(s) {unknown} for task {self.name!r}: expected some of {sorted(preset)}",
        )
        self.size = size
        self.noise_sigma = check_nonneg_float(
            default_noise if noise_sigma is None else noise_sigma, "noise_sigma"
        )
        self.options: dict[str, Any] = self._validate({**preset, **options})
        self.physics: Physics = self._build_physics()
        self.signal_shape: tuple[int, ...] = tuple(int(s) for s in self._signal_shape())

    # -- to implement ------------------------------------------------------------------------
    def _validate(self, options: dict[str, Any]) -> dict[str, Any]:
        """Check and normalise the options (JSON-friendly values); raise ``ValueError`` naming a bad one."""
        return options

    def _build_physics(self) -> Physics:  # pragma: no cover - abstract
        raise NotImplementedError

    def _signal_shape(self) -> tuple[int, ...]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _sample(self, n: int, split: str, generator: torch.Generator) -> torch.Tensor:  # pragma: no cover
        """``n`` clean float64 CPU signals of ``split`` (already validated)."""
        raise NotImplementedError

    # -- public API --------------------------------------------------------------------------
    @property
    def splits(self) -> tuple[str, ...]:
        """``("id", *shifts)``; ``"train"`` is accepted as well (the training law)."""
        return ("id", *self.shifts)

    def check_split(self, split: object) -> str:
        """``split`` if it is one of :attr:`splits` or ``'train'``, else ``ValueError``."""
        ok = isinstance(split, str) and (split in self.splits or split == "train")
        check(ok, f"split={split!r}: expected one of {self.splits} (or 'train') for task {self.name!r}")
        return split  # type: ignore[return-value]

    def clean(self, n: int, *, split: str = "id", generator: torch.Generator) -> torch.Tensor:
        """``n`` clean signals of ``split``, shape ``(n, *signal_shape)``, float64 on the CPU."""
        n = _check_n(n)
        split = self.check_split(split)
        check(
            isinstance(generator, torch.Generator) and generator.device.type == "cpu",
            f"generator={generator!r}: expected a CPU torch.Generator",
        )
        x = self._sample(n, split, generator)
        assert x.dtype == torch.float64 and tuple(x.shape) == (n, *self.signal_shape), (x.dtype, x.shape)
        return x

    def measure(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """:math:`y = A x + z` with this task's physics (noise from ``generator``)."""
        with torch.no_grad():
            return self.physics.measure(x, generator=generator)

    def pairs(
        self, n: int, *, split: str = "id", seed: int, dtype: torch.dtype = torch.float32, start: int = 0
    ) -> Pairs:
        """``n`` pairs ``(x, y)`` of ``split``, noise drawn once; reproducible from ``(split, seed)``.

        Sample ``i`` is drawn from its own streams ``(seed, split, "clean", i)`` and
        ``(seed, split, "noise", i)``, so it depends on ``(seed, split, i)`` only: the first ``m``
        samples of ``pairs(n)`` are ``pairs(m)`` (prefix-stable), and ``start=i`` gives samples
        ``i..i+n-1`` without drawing the ones before.  The memory the pairs need is checked first
        (:func:`landscape.io.check_memory`).
        """
        n = _check_n(n)
        split = self.check_split(split)
        seed = check_seed(seed)
        dtype = _check_dtype(dtype)
        check(
            isinstance(start, int) and not isinstance(start, bool) and start >= 0,
            f"start={start!r}: expected an integer >= 0",
        )
        entries = n * math.prod(self.signal_shape)
        # x and y in float64 (y is the size of x for every physics here), then both cast to dtype
        itemsize = torch.empty(0, dtype=dtype).element_size()
        check_memory(1.25 * entries * (2 * 8 + 2 * itemsize), f"{n} samples of task {self.name!r} (n={n})")
        x = y = None
        for j, i in enumerate(range(start, start + n)):
            xi = self.clean(1, split=split, generator=stream(seed, split, "clean", str(i)))
            yi = self.measure(xi, stream(seed, split, "noise", str(i)))
            if x is None:  # filled in place: no list of n samples to concatenate
                x = torch.empty((n, *xi.shape[1:]), dtype=xi.dtype)
                y = torch.empty((n, *yi.shape[1:]), dtype=yi.dtype)
            x[j] = xi[0]
            y[j] = yi[0]
        return Pairs(x.to(dtype), y.to(dtype), split, seed)

    def training_set(
        self, n: int, *, seed: int, fresh_noise: bool = False, dtype: torch.dtype = torch.float32
    ) -> TrainingSet:
        """``n`` training signals (split ``"train"``) with measurements drawn once from ``seed``."""
        check(isinstance(fresh_noise, bool), f"fresh_noise={fresh_noise!r}: expected True or False")
        p = self.pairs(n, split="train", seed=seed, dtype=dtype)
        return TrainingSet(p.x, p.y, self.physics, fresh_noise=fresh_noise, seed=seed)

    def config(self) -> dict[str, Any]:
        """JSON-serialisable description; :func:`task_from_config` rebuilds the task."""
        return {
            "name": self.name,
            "size": self.size,
            "noise_sigma": self.noise_sigma,
            "options": json_safe(self.options),
            "signal_shape": list(self.signal_shape),
            "shifts": list(self.shifts),
            "physics": self.physics.config(),
        }

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(size={self.size!r}, noise_sigma={self.noise_sigma}, "
            f"signal_shape={self.signal_shape}, shifts={self.shifts})"
        )


_CLASSES = {
    "denoise": ("landscape.data.toy", "DenoiseTask"),
    "seismic": ("landscape.data.seismic", "SeismicTask"),
    "mri": ("landscape.data.mri", "MRITask"),
}


def task_class(name: str) -> type[Task]:
    """The :class:`Task` subclass behind a task name."""
    import importlib

    check(name in TASKS, f"task name={name!r}: expected one of {TASKS}")
    module, cls = _CLASSES[name]
    return getattr(importlib.import_module(module), cls)


def make_task(name: str, *, size: str = "small", noise_sigma: float | None = None, **options: Any) -> Task:
    """Build a task by name (one of :data:`TASKS`); ``options`` are task-specific (see each class)."""
    check(name in TASKS, f"task name={name!r}: expected one of {TASKS}")
    check(size in SIZES, f"size={size!r}: expected one of {SIZES}")
    return task_class(name)(size=size, noise_sigma=noise_sigma, **options)


def task_from_config(cfg: dict[str, Any]) -> Task:
    """Rebuild a task from :meth:`Task.config` (extra keys such as ``physics`` are informative only)."""
    check(isinstance(cfg, dict), f"task config={cfg!r}: expected a dict from Task.config()")
    check(
        "name" in cfg, f"task config has keys {sorted(cfg)}: expected 'name' (and size, noise_sigma, options)"
    )
    options = dict(cfg.get("options") or {})
    return make_task(
        cfg["name"], size=cfg.get("size", "small"), noise_sigma=cfg.get("noise_sigma"), **options
    )
