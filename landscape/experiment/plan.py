"""The plan of an experiment: which runs it trains (:func:`plan_experiment`, :class:`RunSpec`) and the
training config of each (:func:`train_config`), from the experiment preset
(:func:`landscape.presets.experiment_preset`); and the matched σ of the ``matched-absolute`` ablation
(:func:`matched_absolute_sigma`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from landscape.checkpoint import load_checkpoint
from landscape.config import ModelOverrides, TrainConfig
from landscape.data import TASKS
from landscape.defaults import ACTIVATION_NAMES
from landscape.errors import check, check_count
from landscape.presets import EXPERIMENT_PRESETS as PRESETS
from landscape.presets import ExperimentPreset, experiment_preset, train_preset
from landscape.train import make_train_config

__all__ = [
    "PRESETS",
    "ABLATIONS",
    "MAIN",
    "RunSpec",
    "plan_experiment",
    "preset_seeds",
    "main_activation",
    "main_sigma",
    "train_config",
    "matched_absolute_sigma",
]

#: The ablations :func:`plan_experiment` knows.
ABLATIONS = ("fixed-step", "no-jitter-last", "small-data", "matched-absolute", "explicit-penalty")

MAIN = (
    ("gd", "mse"),
    ("gd", "input-jitter"),
    ("gd", "adversarial"),
    ("gd", "sgd-jitter"),
    ("prox", "mse"),
    ("prox", "spgd-jitter"),
)


@dataclass(frozen=True)
class RunSpec:
    """One training run of the plan: ``name`` (its folder), the study and variant it belongs to, and its
    :func:`~landscape.train.make_train_config` keywords."""

    name: str
    study: str
    variant: str
    arch: str
    strategy: str
    seed: int
    options: dict[str, Any] = field(default_factory=dict)
    after: str | None = None  # a run whose model this one's config depends on (matched-absolute)

    def to_dict(self) -> dict[str, Any]:
        """The run as a plain dict: name, study, variant, architecture, strategy, seed, options and the run it waits for (``after``)."""
        return {
            "name": self.name,
            "study": self.study,
            "variant": self.variant,
            "arch": self.arch,
            "strategy": self.strategy,
            "seed": self.seed,
            "options": self.options,
            "after": self.after,
        }


def _fmt_sigma(s: float) -> str:
    return f"{s:g}"


def preset_seeds(task: str, preset: str = "fast") -> int:
    """The preset's seed count: enough for its claims to reach a verdict on the effects the power table of
    theory/claims.md says it can detect (``fast`` denoise 8: its ID and OOD seed-level sd of 0.26 and 0.18 dB
    give minimum detectable effects of 0.30 and 0.21 dB at 8 seeds, 0.85 and 0.59 at 3; mri 5: the paper's
    OOD gain of 0.44 dB needs 4 at its measured sd; seismic 3 already detects the paper's effect sizes)."""
    return int(experiment_preset(preset, task).seeds)


def plan_experiment(
    task: str,
    preset: str = "fast",
    *,
    seeds: int | None = None,
    sigmas: Sequence[float] = (),
    activations: Sequence[str] = (),
    ablations: Sequence[str] = (),
    study_seeds: int | None = None,
) -> list[RunSpec]:
    """The runs of an experiment, in training order: the main comparison for every seed first, then the
    studies, each for seeds ``0..study_seeds-1`` (default: ``seeds``; see :mod:`landscape.experiment`).
    ``seeds`` defaults to the preset's (:func:`preset_seeds`)."""
    check(task in TASKS, f"task={task!r}: expected one of {TASKS}")
    p = experiment_preset(preset, task)  # names an unknown preset
    seeds = preset_seeds(task, preset) if seeds is None else seeds
    check_count(seeds, "seeds")
    _check_studies(sigmas, activations, ablations)
    ss = seeds if study_seeds is None else study_seeds
    check_count(ss, "study_seeds")
    a0 = main_activation(task, preset)
    runs = [
        spec for seed in range(seeds) for spec in _main_runs(seed, p)
    ]  # every seed: the studies come after
    runs += [spec for seed in range(ss) for spec in _sigma_runs(seed, sigmas)]
    runs += [spec for seed in range(ss) for spec in _activation_runs(seed, activations, a0)]
    runs += [spec for seed in range(ss) for a in ablations for spec in _ABLATION_RUNS[a](seed)]
    return runs


def _check_studies(sigmas: Sequence[float], activations: Sequence[str], ablations: Sequence[str]) -> None:
    for s in sigmas:
        check(
            isinstance(s, (int, float)) and math.isfinite(s) and s > 0,
            f"sigmas contains {s!r}: expected numbers > 0",
        )
    for a in activations:
        check(a in ACTIVATION_NAMES, f"activation {a!r}: expected one of {ACTIVATION_NAMES}")
    for a in ablations:
        check(a in ABLATIONS, f"ablation {a!r}: expected one of {ABLATIONS}")


def _main_runs(seed: int, p: ExperimentPreset) -> list[RunSpec]:
    """The main comparison for one seed; the GD mse and sgd-jitter runs keep the preset's snapshots."""
    runs = []
    for arch, strat in MAIN:
        opts: dict[str, Any] = {}
        if arch == "gd" and strat in ("mse", "sgd-jitter") and p.snapshots:
            opts["snapshots"] = int(p.snapshots)
        runs.append(RunSpec(f"{arch}-{strat}-s{seed}", "main", strat, arch, strat, seed, opts))
    return runs


def _sigma_runs(seed: int, sigmas: Sequence[float]) -> list[RunSpec]:
    return [
        RunSpec(
            f"sigma{_fmt_sigma(s)}-s{seed}",
            "sigma",
            _fmt_sigma(s),
            "gd",
            "sgd-jitter",
            seed,
            {"sigma": float(s)},
        )
        for s in sigmas
    ]


def _activation_runs(seed: int, activations: Sequence[str], a0: str) -> list[RunSpec]:
    """mse and sgd-jitter with each activation but the main runs' own (``a0``: its row is the main runs')."""
    return [
        RunSpec(f"act-{a}-{strat}-s{seed}", "activation", a, "gd", strat, seed, {"activation": a})
        for a in dict.fromkeys(activations)
        if a != a0
        for strat in ("mse", "sgd-jitter")
    ]


def _fixed_step_runs(seed: int) -> list[RunSpec]:
    return [
        RunSpec(
            f"fixed-step-{strat}-s{seed}", "ablation", "fixed-step", "gd", strat, seed, {"fixed_step": True}
        )
        for strat in ("mse", "sgd-jitter")
    ]


def _no_jitter_last_runs(seed: int) -> list[RunSpec]:
    return [
        RunSpec(
            f"no-jitter-last{j}-s{seed}",
            "ablation",
            f"no-jitter-last{j}",
            "gd",
            "sgd-jitter",
            seed,
            {"zero_last": j},
        )
        for j in (1, 2)
    ]


def _small_data_runs(seed: int) -> list[RunSpec]:
    return [
        RunSpec(f"{variant}-{strat}-s{seed}", "ablation", variant, "gd", strat, seed, opts)
        for variant, opts in (
            ("small-fixed", {"train_fraction": 0.125}),
            ("fresh-noise", {"fresh_noise": True}),
        )
        for strat in ("mse", "sgd-jitter")
    ]


def _matched_absolute_runs(seed: int) -> list[RunSpec]:
    return [
        RunSpec(
            f"matched-absolute-s{seed}",
            "ablation",
            "matched-absolute",
            "gd",
            "sgd-jitter",
            seed,
            {"jitter_mode": "absolute", "matched_to": f"gd-sgd-jitter-s{seed}"},
            after=f"gd-sgd-jitter-s{seed}",
        )
    ]


def _explicit_penalty_runs(seed: int) -> list[RunSpec]:
    """Beside the main runs of the same seed (study ``main``): its claims pair with them."""
    return [
        RunSpec(f"gd-curvature-penalty-s{seed}", "main", "curvature-penalty", "gd", "curvature-penalty", seed)
    ]


#: each ablation's runs for one seed
_ABLATION_RUNS: dict[str, Callable[[int], list[RunSpec]]] = {
    "fixed-step": _fixed_step_runs,
    "no-jitter-last": _no_jitter_last_runs,
    "small-data": _small_data_runs,
    "matched-absolute": _matched_absolute_runs,
    "explicit-penalty": _explicit_penalty_runs,
}


def _main_config(task: str, preset: str) -> TrainConfig:
    """The training config of the main sgd-jitter run of seed 0."""
    spec = RunSpec("gd-sgd-jitter-s0", "main", "sgd-jitter", "gd", "sgd-jitter", 0)
    return train_config(task, preset, spec)


def main_activation(task: str, preset: str) -> str:
    """The regularizer activation of the main runs (their own training config's: the training preset's,
    unless the experiment preset's ``regularizer`` names another)."""
    return _main_config(task, preset).model.effective.regularizer.activation


def main_sigma(task: str, preset: str) -> float:
    """The σ the main sgd-jitter runs train at (their own training config's): the σ sweep's figure and table
    show it as a point of the sweep."""
    return float(_main_config(task, preset).strategy.sigma)


def train_config(
    task: str, preset: str, spec: RunSpec, *, extra: dict[str, Any] | None = None, device: str = "cpu"
) -> TrainConfig:
    """The :class:`~landscape.config.TrainConfig` of one run of the plan: the training preset, with the
    experiment preset's overrides and the run's options (``extra``: the matched σ of a ``matched-absolute``
    run, :func:`matched_absolute_sigma`)."""
    p = experiment_preset(preset, task)
    base = train_preset(task, p.size)
    o = dict(spec.options)
    kw: dict[str, Any] = {
        "arch": spec.arch,
        "seed": spec.seed,
        "size": p.size,
        "device": device,
        **p.train_overrides(),
    }
    kw["snapshots"] = int(o.pop("snapshots", 0))
    frac = o.pop("train_fraction", None)
    if frac is not None:  # a small fixed set, passed over 1/frac times per epoch: the steps of a full epoch
        kw["train_size"] = max(
            kw.get("batch_size", base.batch_size), int(round(kw.get("train_size", base.train_size) * frac))
        )
        kw["epoch_passes"] = max(1, int(round(1 / frac)))
    zero_last = o.pop("zero_last", None)
    matched = o.pop("matched_to", None)
    if spec.strategy == "adversarial" and p.adversarial_steps:
        kw["attack_steps"] = p.adversarial_steps
    kw.update(o)
    if zero_last is not None:
        K = int(kw.get("n_iter") or ModelOverrides(base.model).effective.n_iter)
        s = float(base.strategy[spec.strategy]["sigma"])
        kw["sigma"] = [s] * (K - zero_last) + [0.0] * zero_last
    if matched is not None:
        kw["sigma"] = float((extra or {})["matched_sigma"])
    return make_train_config(task, spec.strategy, **kw)


def matched_absolute_sigma(run_dir: str | Path, *, batches: int = 4) -> dict[str, Any]:
    r"""The absolute per-entry σ whose total noise variance over the K steps matches the ``paper`` rule's.

    On the trained sgd-jitter model in ``run_dir`` and its training batches, the paper rule's scale is
    :math:`s_k = \sigma\max(g_k)` (one signed max per batch) along the clean iterates; the matched σ is
    :math:`\sqrt{\operatorname{mean}_{k,\text{batch}} s_k^2}`, so :math:`\sum_k E\|n_k\|^2` is equal.
    """
    import torch

    ck = load_checkpoint(run_dir)
    m = ck.model.eval()
    rc = ck.config
    train = ck.task.training_set(rc.train_size, seed=rc.resolved_data_seed, dtype=torch.float32)
    bs = rc.batch_size
    rule = rc.strategy.noise  # the rule the run trained with
    check(
        rule is not None and rule.active,
        f"matched_absolute_sigma: {run_dir} trained without iterate noise: expected an sgd-jitter run",
    )
    sq = []
    with torch.no_grad():
        for b in range(min(batches, max(1, len(train.x) // bs))):
            x0, y = train.x[b * bs : (b + 1) * bs], train.y[b * bs : (b + 1) * bs]
            del x0
            x = m.initial(y)
            for k in range(m.n_iter):
                s = m.noise_scale(x, y, k, jitter=rule)
                sq.append(float(torch.as_tensor(s).double().pow(2).mean()))
                x = m.step(x, y, k)
    sigma = math.sqrt(float(np.mean(sq)))
    return {
        "matched_sigma": sigma,
        "from": str(run_dir),
        "rule": ck.saved_config["strategy"],
        "how": "sqrt(mean over k and training batches of s_k^2), s_k the paper rule's scale on clean iterates",
    }
