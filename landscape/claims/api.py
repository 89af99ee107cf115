"""``check_claims``: load the checkpoints, measure each one (through the executor), judge the claims."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from landscape.checkpoint import LoadedCheckpoint, load_one_task, versions
from landscape.claims.measure import measure_checkpoint
from landscape.claims.result import ClaimsResult, judged_result
from landscape.claims.settings import ClaimsSettings
from landscape.claims.verdicts import describe
from landscape.executor import current_executor
from landscape.progress import progress_bar


def _load(paths: Sequence[str | Path | Any]) -> tuple[list[LoadedCheckpoint], str]:
    """The checkpoints of one task, in (group, seed, path) order, and that task's config as JSON; refused when
    two tasks differ or two checkpoints are one run."""
    cks = load_one_task(paths, who="check_claims")
    task_cfg = json.dumps(cks[0].task.config(), sort_keys=True)
    cks.sort(key=lambda c: (describe(c.saved_config)[0], c.config.seed, str(c.path)))
    seen: dict[tuple[str, int, int], Any] = {}
    for c in cks:  # a group's checkpoints are its seeds: two epochs of one run (snapshots) are not two seeds
        ident = (describe(c.saved_config)[0], c.config.seed, c.config.resolved_data_seed)
        if ident in seen:
            raise ValueError(
                f"checkpoints {seen[ident].path} and {c.path} are the same run (strategy, config and seed "
                f"{ident[1]}), e.g. two snapshots: claims treats a group's checkpoints as seeds, so pass "
                "one checkpoint per run (the same epoch for each)"
            )
        seen[ident] = c
    return cks, task_cfg


def _reference_rule(cks: Sequence[LoadedCheckpoint]) -> tuple[str, float]:
    """The reference jitter rule of the noise coordinates: the most common one among the jittered runs (one σ
    for all iterations), ``('paper', 0.1)`` when none jitters."""
    rules = []
    for c in cks:
        j = c.config.strategy.noise  # the rule the run trained with (None: no iterate noise)
        if j is not None and j.active and not isinstance(j.sigma, tuple):
            rules.append((j.mode, float(j.sigma)))
    return max(sorted(set(rules)), key=rules.count) if rules else ("paper", 0.1)


def _entry(c: LoadedCheckpoint, measured: dict[str, Any]) -> dict[str, Any]:
    """One checkpoint's entry of ``ClaimsResult.checkpoints``: who it is (group, seed, config) and what it measured."""
    key, label, mkey = describe(c.saved_config)
    return {
        "path": str(c.path),
        "group": label,
        "group_key": key,
        "model_key": mkey,
        "strategy": c.saved_config.get("strategy"),
        "seed": c.config.seed,
        "activation": c.config.model.stated("regularizer.activation"),  # None: the preset left the default
        "learn_step": c.config.model.effective.learn_step,
        "batch_size": c.config.batch_size,
        **measured,
    }


def check_claims(
    paths: Sequence[str | Path | Any],
    settings: ClaimsSettings | None = None,
    *,
    progress: bool = False,
    executor: Any = None,
    device: str = "cpu",
    **overrides: Any,
) -> ClaimsResult:
    """Measure every checkpoint and judge each claim for each jittered group against its MSE group.

    ``paths``: run directories, checkpoint files or loaded checkpoints
    (:class:`~landscape.checkpoint.LoadedCheckpoint`) of one task.  Checkpoints with the same strategy and model config are seeds of one group.  ``overrides``
    replace :class:`~landscape.claims.ClaimsSettings` fields.  ``executor`` (default
    :func:`landscape.executor.current_executor`) measures the checkpoints as independent items (under torchrun:
    checkpoint i on rank i mod W, gathered on every rank); the measurements do not depend on where they run.
    ``device`` is where the models run.  The verdicts come from :func:`~landscape.claims.judge_claims` on the
    measurements.
    """
    ex = current_executor() if executor is None else executor
    t0 = time.perf_counter()
    st = replace(settings or ClaimsSettings(), **overrides)
    cks, task_cfg = _load(paths)
    ref = _reference_rule(cks)
    bar = progress_bar(total=len(cks), desc="claims", unit="checkpoint") if progress else None
    entries = []
    futures = [ex.submit(measure_checkpoint, c, ref[0], ref[1], st, device) for c in cks]
    for c, fut in zip(cks, futures):
        entries.append(_entry(c, fut.result()))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    info = {"seconds": time.perf_counter() - t0, "versions": versions(), "task": json.loads(task_cfg)}
    return judged_result(entries, st, {"mode": ref[0], "sigma": ref[1]}, info)
