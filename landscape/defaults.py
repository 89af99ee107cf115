"""Defaults of ``landscape analyze`` beyond the curvature settings, importable without torch (the CLI's
``--help`` shows them)."""

from __future__ import annotations

from typing import Any

__all__ = [
    "ANALYSIS_DEFAULTS",
    "TASK_NAMES",
    "SIZE_NAMES",
    "STRATEGY_NAMES",
    "JITTER_MODE_NAMES",
    "JITTER_MODE_ALIASES",
    "ACTIVATION_NAMES",
]

# The names the CLI offers, without importing the modules that define them (tests/test_cli_help.py checks
# that they equal landscape.data.TASKS, landscape.train.SIZES, landscape.strategies.STRATEGIES and
# landscape.jitter.JITTER_MODES / MODE_ALIASES).
TASK_NAMES = ("denoise", "seismic", "mri")
SIZE_NAMES = ("small", "paper")
STRATEGY_NAMES = ("mse", "input-jitter", "adversarial", "sgd-jitter", "spgd-jitter", "curvature-penalty")
JITTER_MODE_NAMES = ("paper", "absolute", "normalized", "per-sample-step", "paper-clean-path")
JITTER_MODE_ALIASES = {"relative": "per-sample-step"}
ACTIVATION_NAMES = ("relu", "softplus", "shifted-softplus", "gelu", "elu", "tanh", "identity")

#: Default settings of :func:`analyze_checkpoints` beyond :class:`CurvatureSettings` (each can be
#: overridden by keyword; curvature settings are passed as ``curvature=CurvatureSettings(...)`` or as
#: keywords of its fields).
ANALYSIS_DEFAULTS: dict[str, Any] = {
    "split": "id",
    "density_k": 0,
    "slice_iterate": 0,
    "slice_kinds": ("random", "random"),
    "slice_n": 31,
    "slice_span": "hessian",
    "param_slice_n": 15,
    "param_slice_span": 0.5,
    "eps": (0.0, 0.05, 0.1, 0.2),
    "pgd_steps": 20,
    "pgd_step_size": 0.1,
    "memory_mb": 256.0,
    "map_iterates": None,  # the curvature maps' iterates (with --diagonal): None = k = 1, K/2, K - 1
}
