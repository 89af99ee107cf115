"""Reading a checkpoint: the raw dict, validated (:func:`read_checkpoint`), and the run rebuilt from it
(:func:`load_checkpoint`, a :class:`LoadedCheckpoint`: model, physics, task, typed run config, metrics)."""

from __future__ import annotations

import json
import os
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from landscape.checkpoint.files import FORMAT, FORMAT_VERSION, resolve_checkpoint_path
from landscape.checkpoint.save import _model_config_loaded
from landscape.checkpoint.validate import (
    _pickle_globals,
    _state_dict_diff,
    _unknown_config_keys,
    _written_by,
    check_archive,
    check_consistent,
    check_finite_weights,
    check_provenance,
    check_versions,
)
from landscape.config import TrainConfig
from landscape.data import Pairs, Task, task_from_config
from landscape.errors import check
from landscape.models import build_model
from landscape.physics import Physics, physics_from_config
from landscape.solver import Solver

__all__ = ["LoadedCheckpoint", "read_checkpoint", "load_checkpoint"]

_TRAIN_CONFIG_KEYS = frozenset(f.name for f in fields(TrainConfig))


@dataclass
class LoadedCheckpoint:
    """A checkpoint rebuilt: the model (eval mode), its physics, the task, the run config and metrics.

    ``config`` is the run's :class:`~landscape.config.TrainConfig` (``config.seed``,
    ``config.resolved_data_seed``, ``config.test_seed``...), built from the saved run config: a key the saved
    config leaves out takes TrainConfig's default, a saved key TrainConfig does not have (``task_config``,
    ``distributed``) is kept in ``saved_config`` only.  ``saved_config`` is the run config exactly as the file
    holds it (for records that copy it).  :attr:`test_seed` and :meth:`test_pairs` regenerate the run's exact
    test samples.  ``extra`` holds the resume state (``epoch``, ``history``, ``optimizer``, ``rng``),
    ``versions``, ``seed`` and ``threads``.
    """

    model: Solver
    physics: Physics
    task: Task
    config: TrainConfig
    metrics: dict[str, Any]
    path: Path
    extra: dict[str, Any] = field(default_factory=dict, repr=False)
    saved_config: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        """A short label: the strategy name (the run folder's name when the saved config names none)."""
        return self.config.strategy.name if "strategy" in self.saved_config else self.path.parent.name

    @property
    def test_seed(self) -> int:
        """The seed of the run's test samples: the saved ``test_seed`` (every run landscape trains records
        one; a hand-written config without it means TrainConfig's default, 2024)."""
        return int(self.config.test_seed)

    def test_pairs(
        self, n: int, split: str = "id", *, dtype: torch.dtype = torch.float64, start: int = 0
    ) -> Pairs:
        """Test samples ``start..start+n-1`` of ``split``: ``task.pairs(n, split=, seed=test_seed)``, the
        samples every command (evaluate, analyze, hessian, slice, claims) draws for this run."""
        return self.task.pairs(n, split=split, seed=self.test_seed, dtype=dtype, start=start)


def _reason(exc: Exception) -> str:
    """The informative line of a ``torch.load`` error (its weights-only message is long and generic)."""
    text = str(exc)
    m = re.search(r"GLOBAL ([\w.]+)", text)
    if m:
        return (
            f"unsafe content: it holds the Python object {m.group(1)}, which loading with weights_only=True "
            "refuses to import (it could run code)"
        )
    if "WeightsUnpickler error:" in text:
        tail = text.split("WeightsUnpickler error:", 1)[1]
        tail = tail.split("Check the documentation of torch.load", 1)[0]
        lines = [ln.strip() for ln in tail.splitlines() if ln.strip()]
        if lines:
            return "refused by weights_only: " + lines[0].split(". Please use")[0]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[0].split(". ")[0] if lines else type(exc).__name__


def _refuse_non_zip(p: Path, head: bytes) -> None:
    """Say why a file that is not a torch zip archive is refused (a bare pickle is never unpickled)."""
    if head.startswith(b"PK"):
        raise ValueError(f"checkpoint {p} is corrupt (a truncated or damaged zip archive)")
    names = _pickle_globals(p) if head[:1] == b"\x80" else None
    if names:
        shown = ", ".join(dict.fromkeys(names))
        raise ValueError(
            f"checkpoint {p} refused: unsafe content, a pickle that would import and run {shown[:120]} "
            "when loaded (landscape loads checkpoints with weights_only=True and never unpickles objects)"
        )
    if names is not None:
        raise ValueError(
            f"checkpoint {p} is not a landscape checkpoint (a plain pickle, not a torch zip file)"
        )
    raise ValueError(f"checkpoint {p} is corrupt or not a landscape checkpoint (not a torch zip file)")


def _load_payload(p: Path, map_location: str | torch.device) -> Any:
    """``torch.load(weights_only=True)`` of a zip-format checkpoint; a bare pickle is refused unread."""
    with open(p, "rb") as fh:
        head = fh.read(4)
    if not zipfile.is_zipfile(p):
        _refuse_non_zip(p, head)
    check_archive(p)
    try:
        return torch.load(p, map_location=map_location, weights_only=True)
    except OSError:
        raise
    except Exception as exc:  # truncated, a pickle with objects, ...
        first = _reason(exc)
        if first.startswith("unsafe"):
            raise ValueError(f"checkpoint {p} refused: {first}") from None
        raise ValueError(f"checkpoint {p} is corrupt or not a landscape checkpoint ({first[:200]})") from None


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The raw checkpoint dict, validated (``torch.load(weights_only=True)``).

    Refuses (``ValueError``) anything that is not a plain landscape checkpoint: a pickle holding objects
    (it is never unpickled, so it cannot run code), a truncated, damaged (a member failing its CRC-32) or
    foreign file, a shipped checkpoint that differs from its ``PROVENANCE.json`` (:func:`check_provenance`),
    another ``format_version``, a file written by an incompatible landscape release, or NaN/Inf weights.
    """
    p = resolve_checkpoint_path(path)
    check_provenance(p)
    payload = _load_payload(p, map_location)
    check(
        isinstance(payload, dict) and payload.get("format") == FORMAT,
        f"checkpoint {p} is not a landscape checkpoint (no format={FORMAT!r} field)",
    )
    fv = payload.get("format_version")
    check(
        fv == FORMAT_VERSION,
        f"checkpoint {p} has format_version={fv!r} (written by {_written_by(payload)}): "
        f"this landscape reads version {FORMAT_VERSION}",
    )
    check_versions(payload, f"checkpoint {p}")
    missing = [k for k in ("state_dict", "model_config", "task_config", "config") if k not in payload]
    check(not missing, f"checkpoint {p} lacks {missing}")
    check(isinstance(payload["state_dict"], dict), f"checkpoint {p}: state_dict is not a dict of tensors")
    check_finite_weights(payload["state_dict"], f"checkpoint {p}")
    return payload


def _train_config(saved: Any) -> TrainConfig:
    """The typed run config of a saved one: its keys that :class:`TrainConfig` has (the others, such as
    ``task_config``, are derived records), the rest at TrainConfig's defaults."""
    check(isinstance(saved, dict), f"config is a {type(saved).__name__}: expected a dict")
    return TrainConfig.from_dict({k: v for k, v in saved.items() if k in _TRAIN_CONFIG_KEYS})


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _rebuild(payload: dict[str, Any], p: Path) -> tuple[Task, TrainConfig, torch.nn.Module]:
    """The task, the typed run config and the model (its weights not loaded yet) a payload describes."""
    try:
        task = task_from_config(payload["task_config"])
        physics = physics_from_config(payload.get("physics_config") or task.physics.config())
        config = _train_config(payload["config"])
        model_cfg = _model_config_loaded(payload)
        model = build_model(model_cfg, physics).to(dtype=getattr(torch, config.dtype))
    except (KeyError, TypeError, RuntimeError, ValueError, AttributeError) as exc:
        raise ValueError(
            f"checkpoint {p} (written by {_written_by(payload)}) does not match this version of landscape: "
            f"{_first_line(exc)[:200]}"
        ) from None
    diff = _state_dict_diff(model, payload["state_dict"])
    if diff:
        raise ValueError(
            f"checkpoint {p} (written by {_written_by(payload)}) does not match this version of landscape's "
            f"{model_cfg.arch} model: {diff}"
        )
    return task, config, model


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Rebuild model (eval mode), physics, task and typed run config from a checkpoint file or run directory.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a corrupt or incompatible one.
    """
    p = resolve_checkpoint_path(path)
    payload = read_checkpoint(p, map_location=map_location)
    unknown = _unknown_config_keys(payload)
    if unknown:
        raise ValueError(
            f"checkpoint {p} (written by {_written_by(payload)}) has config keys this version of landscape "
            f"does not know: {', '.join(unknown)}"
        )
    task, config, model = _rebuild(payload, p)
    check_consistent(payload, f"checkpoint {p}")
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"checkpoint {p} does not match this version of landscape: {_first_line(exc)[:200]}"
        ) from None
    model = model.to(map_location)
    model.eval()
    extra = {
        k: payload.get(k) for k in ("epoch", "history", "optimizer", "rng", "versions", "seed", "threads")
    }
    return LoadedCheckpoint(
        model=model,
        physics=model.physics,
        task=task,
        config=config,
        metrics=payload.get("metrics") or {},
        path=p,
        extra=extra,
        saved_config=payload["config"],
    )


def load_one_task(
    paths: Sequence[str | os.PathLike | LoadedCheckpoint], *, who: str
) -> list[LoadedCheckpoint]:
    """The checkpoints ``paths`` (files, run folders or checkpoints already loaded), all of one task: none, or
    two of different tasks (compared by their task configs), is refused in one line naming ``who`` (the caller,
    which compares models on one task's data) and both checkpoints."""
    check(len(paths) >= 1, f"{who}: expected at least one checkpoint")
    cks = [p if isinstance(p, LoadedCheckpoint) else load_checkpoint(p) for p in paths]
    task_cfg = json.dumps(cks[0].task.config(), sort_keys=True)
    for c in cks[1:]:
        check(
            json.dumps(c.task.config(), sort_keys=True) == task_cfg,
            f"checkpoint {c.path} is for a different task than {cks[0].path}: {who} compares one task at a time",
        )
    return cks
