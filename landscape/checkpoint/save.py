"""Writing a checkpoint (:func:`save_checkpoint`), and how its model config is stored and read back (it holds
no noise: that belongs to the run's strategy; an older file's ``jitter`` entry must agree with it)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from landscape.checkpoint.files import FORMAT, FORMAT_VERSION, versions
from landscape.errors import check
from landscape.io import atomic_write, json_safe
from landscape.models import JitterConfig, ModelConfig
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


def _model_config_to_store(
    model: torch.nn.Module, config: dict[str, Any], strategy: Any = None
) -> dict[str, Any]:
    """The model config as saved: ``model.config()``.  It holds no noise: σ and the noise rule belong to the
    run's strategy and are stored once, in ``config['strategy']`` (``config`` and ``strategy`` are unused)."""
    return dict(model.config())


def _model_config_loaded(payload: dict[str, Any]) -> Any:
    """The :class:`~landscape.models.ModelConfig` of a checkpoint.

    Checkpoints written before the noise moved to the strategy may hold a ``jitter`` entry in their model
    config.  It must agree with the run's strategy: it is accepted when it is the strategy's noise rule
    (``strategy.noise``, after the alias ``relative`` -> ``per-sample-step``) or inactive (σ = 0: a clean
    network, what a default config wrote), and then left out; an active entry the strategy does not train
    with (or with no strategy in the config) is refused in one line."""
    mc = payload["model_config"]
    if isinstance(mc, dict) and "jitter" in mc:
        legacy = JitterConfig(**(mc["jitter"] or {}))
        strat = (payload.get("config") or {}).get("strategy")
        trained = strategy_from_config(strat).noise if isinstance(strat, dict) and strat.get("name") else None
        check(
            not legacy.active or legacy == trained,
            f"model_config.jitter={legacy.to_dict()} disagrees with the strategy's noise "
            f"{None if trained is None else trained.to_dict()}: the noise belongs to the strategy "
            f"(config.strategy), expected the same rule or sigma 0",
        )
    return ModelConfig.from_dict(mc)


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj
