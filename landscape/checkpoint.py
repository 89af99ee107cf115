"""Checkpoints: written atomically, loaded with ``torch.load(weights_only=True)``.

A checkpoint is a plain dict of tensors, lists, dicts, strings and numbers (never a pickled object):

``format``/``format_version``, ``state_dict`` (model weights and buffers), ``model_config``,
``physics_config``, ``task_config`` and ``config`` (the full run config, JSON-compatible, with the
seed), ``metrics``, ``seed``, ``versions`` (landscape, torch, numpy, python), and for resuming a run:
``epoch``, ``history`` (the per-epoch log rows), ``optimizer`` (its ``state_dict``) and ``rng``
(the byte states of the run's torch generators).

Writes go to a temporary file in the target directory, are flushed and fsynced, then moved over the
target with :func:`os.replace` (:func:`landscape.io.atomic_write`), so a crash never leaves a
half-written file where a good one was.
"""

from __future__ import annotations

import errno
import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from landscape.errors import check
from landscape.io import atomic_write, json_safe

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "LoadedCheckpoint",
    "save_checkpoint",
    "load_checkpoint",
    "read_checkpoint",
    "resolve_checkpoint_path",
    "versions",
]

FORMAT = "landscape-checkpoint"
FORMAT_VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"


# -------------------------------------------------------------------------------------------------
# save / load
# -------------------------------------------------------------------------------------------------
def versions() -> dict[str, str]:
    import numpy

    from landscape import __version__

    return {
        "landscape": str(__version__),
        "torch": str(torch.__version__),  # TorchVersion is a str subclass that weights_only refuses
        "numpy": str(numpy.__version__),
        "python": platform.python_version(),
    }


@dataclass
class LoadedCheckpoint:
    """A checkpoint rebuilt: the model (eval mode), its physics, the task, the run config and metrics.

    ``task.pairs(n, split=..., seed=...)`` regenerates exact test samples; ``config['seed']`` and
    ``config['data_seed']`` are the run's seeds.  ``extra`` holds the resume state (``epoch``,
    ``history``, ``optimizer``, ``rng``) and ``versions``.
    """

    model: Any
    physics: Any
    task: Any
    config: dict[str, Any]
    metrics: dict[str, Any]
    path: Path
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        """A short label: the strategy name."""
        return str(self.config.get("strategy", {}).get("name", self.path.parent.name))


def save_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module,
    task: Any,
    config: dict[str, Any],
    metrics: dict[str, Any] | None = None,
    *,
    epoch: int | None = None,
    history: list[dict[str, Any]] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    rng: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write a checkpoint atomically; ``config`` must be JSON-compatible (it is checked)."""
    try:
        json.dumps(config, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"checkpoint config is not JSON-compatible: {exc}") from None
    payload: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "model_config": json_safe(model.config()),
        "physics_config": json_safe(model.physics.config()),
        "task_config": json_safe(task.config()),
        "config": config,
        "metrics": json_safe(metrics or {}),
        "seed": config.get("seed"),
        "versions": versions(),
        "epoch": epoch,
        "history": json_safe(history or []),
        "optimizer": _to_cpu(optimizer.state_dict()) if optimizer is not None else None,
        "rng": {k: v.detach().cpu() for k, v in (rng or {}).items()},
    }
    return atomic_write(path, lambda f: torch.save(payload, f))


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def resolve_checkpoint_path(path: str | os.PathLike) -> Path:
    """``path`` itself, or ``path/checkpoint.pt`` for a run directory; FileNotFoundError if absent."""
    p = Path(path)
    if p.is_dir():
        p = p / CHECKPOINT_NAME
    if not p.exists():
        raise FileNotFoundError(errno.ENOENT, "checkpoint not found", str(p))
    return p


def _reason(exc: Exception) -> str:
    """The informative line of a ``torch.load`` error (its weights-only message is long and generic)."""
    text = str(exc)
    if "WeightsUnpickler error:" in text:
        tail = text.split("WeightsUnpickler error:", 1)[1]
        tail = tail.split("Check the documentation of torch.load", 1)[0]
        lines = [ln.strip() for ln in tail.splitlines() if ln.strip()]
        if lines:
            return "refused by weights_only: " + lines[0].split(". Please use")[0]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[0].split(". ")[0] if lines else type(exc).__name__


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The raw checkpoint dict, validated (``torch.load(weights_only=True)``)."""
    p = resolve_checkpoint_path(path)
    try:
        payload = torch.load(p, map_location=map_location, weights_only=True)
    except (IsADirectoryError, PermissionError):
        raise
    except Exception as exc:  # truncated, not a zip, a pickle with objects, ...
        first = _reason(exc)
        raise ValueError(f"checkpoint {p} is corrupt or not a landscape checkpoint ({first[:200]})") from None
    check(
        isinstance(payload, dict) and payload.get("format") == FORMAT,
        f"checkpoint {p} is not a landscape checkpoint (no format={FORMAT!r} field)",
    )
    fv = payload.get("format_version")
    check(
        fv == FORMAT_VERSION,
        f"checkpoint {p} has format_version={fv!r}: this landscape reads version {FORMAT_VERSION}",
    )
    missing = [k for k in ("state_dict", "model_config", "task_config", "config") if k not in payload]
    check(not missing, f"checkpoint {p} lacks {missing}")
    return payload


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Rebuild model (eval mode), physics, task and config from a checkpoint file or run directory.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a corrupt or incompatible one.
    """
    from landscape.data import task_from_config
    from landscape.models import ModelConfig, build_model
    from landscape.physics import physics_from_config

    p = resolve_checkpoint_path(path)
    payload = read_checkpoint(p, map_location=map_location)
    try:
        task = task_from_config(payload["task_config"])
        physics = physics_from_config(payload.get("physics_config") or task.physics.config())
        model_cfg = ModelConfig.from_dict(payload["model_config"])
        model = build_model(model_cfg, physics)
        dtype = getattr(torch, str(payload["config"].get("dtype", "float32")))
        model = model.to(dtype=dtype)
        model.load_state_dict(payload["state_dict"], strict=True)
    except (KeyError, TypeError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"checkpoint {p} does not match this version of landscape: {first[:200]}") from None
    model = model.to(map_location)
    model.eval()
    extra = {k: payload.get(k) for k in ("epoch", "history", "optimizer", "rng", "versions", "seed")}
    return LoadedCheckpoint(
        model=model,
        physics=model.physics,
        task=task,
        config=payload["config"],
        metrics=payload.get("metrics") or {},
        path=p,
        extra=extra,
    )
