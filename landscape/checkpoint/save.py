"""Writing a checkpoint (:func:`save_checkpoint`), and how its model config is stored and read back: the
jitter is left out when the run's strategy derives it, and re-derived on loading."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from landscape.checkpoint.files import FORMAT, FORMAT_VERSION, versions
from landscape.io import atomic_write, json_safe
from landscape.models import ModelConfig
from landscape.strategies import strategy_from_config

__all__ = ["save_checkpoint"]


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
    strategy: Any = None,
    threads: int | None = None,
) -> Path:
    """Write a checkpoint atomically; ``config`` must be JSON-compatible (it is checked).

    ``threads``: torch's CPU thread count the run trained with (a resume reuses it: the reductions, and so
    the last bits of the weights, depend on it).

    ``strategy`` (the run's typed strategy; rebuilt from ``config['strategy']`` when not given) decides whether
    the model's jitter is left out of ``model_config``: it is when the strategy derives exactly that jitter,
    so σ and the noise rule are stored once, in ``config['strategy']``.
    """
    try:
        json.dumps(config, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"checkpoint config is not JSON-compatible: {exc}") from None
    payload: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "model_config": json_safe(_model_config_to_store(model, config, strategy)),
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
    if threads is not None:
        payload["threads"] = int(threads)
    return atomic_write(path, lambda f: torch.save(payload, f))


def _model_config_to_store(model: torch.nn.Module, config: dict[str, Any], strategy: Any = None) -> dict[str, Any]:
    """The model config without its jitter when the run's strategy derives exactly that jitter.

    The strategy (``config['strategy']``) is then the only place σ and the noise rule are stored;
    :func:`load_checkpoint` re-applies ``strategy.configure_model``.  Otherwise (a model saved without a
    strategy, or with a jitter the strategy would not give) the jitter stays in the model config.
    """
    mc = dict(model.config())
    strat = (config or {}).get("strategy")
    if "jitter" in mc and (strategy is not None or (isinstance(strat, dict) and strat.get("name"))):
        try:
            bare = {k: v for k, v in mc.items() if k != "jitter"}
            s = strategy if strategy is not None else strategy_from_config(strat)
            derived = s.configure_model(ModelConfig.from_dict(bare))
        except (TypeError, ValueError):
            return mc
        if derived.jitter.to_dict() == mc["jitter"]:
            return bare
    return mc


def _model_config_loaded(payload: dict[str, Any]) -> Any:
    """The :class:`~landscape.models.ModelConfig` of a checkpoint: its jitter from the run's strategy when
    the model config does not hold one (checkpoints store σ once, in the strategy)."""
    mc = payload["model_config"]
    cfg = ModelConfig.from_dict(mc)
    strat = (payload.get("config") or {}).get("strategy")
    if "jitter" not in mc and isinstance(strat, dict) and strat.get("name"):
        cfg = strategy_from_config(strat).configure_model(cfg)
    return cfg


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj
