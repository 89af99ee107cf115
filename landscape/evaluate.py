r"""Evaluation of trained models: in-distribution, every OOD shift, random and PGD perturbations.

For every estimator (each checkpoint, plus two reference rows) and every *condition*

* ``id`` — in-distribution test pairs ``task.pairs(n_test, split="id", seed=test_seed)``;
* ``ood:<shift>`` — the same for each OOD shift of the task;
* ``random:<eps>`` — ID pairs with a random measurement perturbation of norm exactly ε (average case);
* ``pgd:<eps>`` — ID pairs under an ℓ2 PGD attack of radius ε on the measurement
  (:func:`landscape.attacks.pgd_attack`, computed against that estimator: worst case); with
  ``attack_restarts`` R > 1 the attack is run from δ = 0 and from R − 1 random starts and each sample keeps
  its worst (:func:`landscape.attacks.pgd_restarts`, Genzel et al.'s protocol);

it reports PSNR, SSIM and MSE per sample and their mean ± standard error under the one convention of
:mod:`landscape.metrics`.  ε is relative to ‖y‖ per sample (``relative=True``) or absolute.  Random
directions are drawn from a generator seeded by ``test_seed`` and ε, so every row sees the same
perturbations; evaluation has no other randomness and is deterministic for a fixed seed.

Reference rows:

* ``measurement`` — :math:`x_0 = A^\top y`, the measurement itself brought to signal space;
* ``affine`` — the least-squares affine estimator :math:`y \mapsto Wy + b`
  (:func:`landscape.baselines.fit_affine`) fitted on the training pairs of the first checkpoint
  (same task, ``train_size`` and ``data_seed``).

:func:`format_table` prints the result in the layout of the paper's tables: rows are estimators,
columns are ID / adversarial / (random) / OOD, cells ``PSNR / SSIM``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from landscape.attacks import PGDConfig, pgd_attack, pgd_restarts, random_perturbation
from landscape.baselines import fit_affine
from landscape.checkpoint import LoadedCheckpoint, load_one_task, versions
from landscape.config import EvaluationSettings, TrainConfig
from landscape.errors import check, check_positive_int
from landscape.metrics import CONVENTION, score, summarize
from landscape.progress import progress_bar
from landscape.seeding import training_seed

__all__ = [
    "EvalConfig",
    "evaluate",
    "evaluate_checkpoints",
    "evaluate_estimator",
    "conditions",
    "format_table",
    "affine_reference",
    "measurement_reference",
    "robustness_curve",
]

Reconstruct = Callable[[torch.Tensor], torch.Tensor]
#: One row of an evaluation: its label, its kind ("reference" or "model"), the reconstruction, what it is.
_Estimator = tuple[str, str, Reconstruct, dict[str, Any]]


#: The defaults of a run config's evaluation block (:class:`~landscape.config.EvaluationSettings`), which are
#: EvalConfig's: one place for both.
_RUN_DEFAULTS = EvaluationSettings()


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate. ``attack_step_size`` is a fraction of ε (see :class:`~landscape.attacks.PGDConfig`).
    The settings a run config's evaluation block may state default to its :class:`~landscape.config.EvaluationSettings`."""

    n_test: int = _RUN_DEFAULTS.n_test
    test_seed: int = 2024
    attack_eps: tuple[float, ...] = _RUN_DEFAULTS.attack_eps
    random_eps: tuple[float, ...] = _RUN_DEFAULTS.random_eps
    relative: bool = _RUN_DEFAULTS.relative
    attack_steps: int = _RUN_DEFAULTS.steps
    attack_step_size: float = _RUN_DEFAULTS.step_size
    attack_restarts: int = _RUN_DEFAULTS.restarts
    splits: tuple[str, ...] | None = None
    references: bool = True
    per_sample: bool = True
    batch_size: int = 128
    device: str = "cpu"

    def __post_init__(self) -> None:
        check_positive_int(self.n_test, "n_test")
        check_positive_int(self.batch_size, "batch_size")
        check_positive_int(self.attack_restarts, "attack_restarts")
        check(
            isinstance(self.test_seed, int) and self.test_seed >= 0,
            f"test_seed={self.test_seed!r}: expected an integer >= 0",
        )
        for name in ("attack_eps", "random_eps"):
            vals = tuple(float(e) for e in getattr(self, name))
            for e in vals:
                check(
                    e == e and e >= 0 and e != float("inf"),
                    f"{name} contains {e!r}: expected finite numbers >= 0",
                )
            object.__setattr__(self, name, vals)
        if self.splits is not None:
            object.__setattr__(self, "splits", tuple(self.splits))
        PGDConfig(eps=0.0, steps=self.attack_steps, step_size=self.attack_step_size)  # validates

    @classmethod
    def from_run_config(cls, run_config: TrainConfig | dict[str, Any], **overrides: Any) -> EvalConfig:
        """Defaults from a training run's ``evaluation`` block and ``test_seed``; ``None`` overrides are ignored.

        ``run_config``: a :class:`~landscape.config.TrainConfig` (a loaded checkpoint's ``config``) or a saved
        run config (without a ``test_seed`` it means TrainConfig's default, as a loaded checkpoint's does).
        """
        if isinstance(run_config, TrainConfig):
            ev, test_seed = run_config.evaluation.to_dict(), run_config.test_seed
        else:
            ev = dict(run_config.get("evaluation") or {})
            test_seed = run_config.get("test_seed", TrainConfig.test_seed)
        base: dict[str, Any] = {"test_seed": int(test_seed)}
        mapping = {
            "n_test": "n_test",
            "attack_eps": "attack_eps",
            "random_eps": "random_eps",
            "relative": "relative",
            "steps": "attack_steps",
            "step_size": "attack_step_size",
            "restarts": "attack_restarts",
        }
        for k, v in ev.items():
            if k in mapping:
                base[mapping[k]] = tuple(v) if isinstance(v, list) else v
        base.update(
            {k: (tuple(v) if isinstance(v, list) else v) for k, v in overrides.items() if v is not None}
        )
        return cls(**base)

    def to_dict(self) -> dict[str, Any]:
        """The config as a JSON-safe dict (tuples as lists)."""
        d = asdict(self)
        d["attack_eps"] = list(self.attack_eps)
        d["random_eps"] = list(self.random_eps)
        d["splits"] = None if self.splits is None else list(self.splits)
        return d


@dataclass(frozen=True)
class Condition:
    key: str
    split: str
    kind: str  # 'clean' | 'random' | 'pgd'
    eps: float = 0.0


def _fmt_eps(e: float) -> str:
    return f"{e:g}"


def conditions(task: Any, cfg: EvalConfig) -> list[Condition]:
    """The evaluation conditions, in table order: ID, PGD at each ε, random at each ε, each OOD shift."""
    splits = cfg.splits if cfg.splits is not None else tuple(task.splits)
    for s in splits:
        task.check_split(s)
    out: list[Condition] = []
    if "id" in splits:
        out.append(Condition("id", "id", "clean"))
        out += [Condition(f"pgd:{_fmt_eps(e)}", "id", "pgd", e) for e in cfg.attack_eps]
        out += [Condition(f"random:{_fmt_eps(e)}", "id", "random", e) for e in cfg.random_eps]
    out += [Condition(f"ood:{s}", s, "clean") for s in splits if s not in ("id", "train")]
    return out


def measurement_reference(physics: Any) -> Reconstruct:
    """:math:`y \\mapsto A^\\top y` (differentiable)."""
    return lambda y: physics.adjoint(y)


def affine_reference(x: torch.Tensor, y: torch.Tensor) -> tuple[Reconstruct, dict[str, Any]]:
    """Fit :func:`landscape.baselines.fit_affine` on ``(x, y)``; return the (differentiable) map and its config."""
    est = fit_affine(x, y)
    return est, est.config()


def _test_pairs(task: Any, cfg: EvalConfig, split: str, dtype: torch.dtype):
    return task.pairs(cfg.n_test, split=split, seed=cfg.test_seed, dtype=dtype)


def evaluate_estimator(
    reconstruct: Reconstruct,
    task: Any,
    cfg: EvalConfig,
    *,
    dtype: torch.dtype = torch.float32,
    data: dict[str, Any] | None = None,
    progress: Any = None,
) -> dict[str, dict[str, Any]]:
    """Metrics of one estimator ``y -> x_hat`` under every condition (see the module docstring).

    ``data`` caches the test pairs per split between estimators (filled on first use).
    """
    data = {} if data is None else data
    device = torch.device(cfg.device)
    project = task.physics.project_measurement
    magnitude = getattr(task.physics, "name", "") == "mri"
    results: dict[str, dict[str, Any]] = {}
    for cond in conditions(task, cfg):
        if cond.split not in data:
            data[cond.split] = _test_pairs(task, cfg, cond.split, dtype)
        pairs = data[cond.split]
        gen = None
        if cond.kind == "random":
            gen = torch.Generator().manual_seed(training_seed(cfg.test_seed, cond.key))
        pgd = PGDConfig(
            eps=cond.eps, steps=cfg.attack_steps, step_size=cfg.attack_step_size, relative=cfg.relative
        )
        per: dict[str, list[torch.Tensor]] = {"psnr": [], "ssim": [], "mse": []}
        norms: list[torch.Tensor] = []
        for i in range(0, len(pairs), cfg.batch_size):
            x = pairs.x[i : i + cfg.batch_size].to(device)
            y = pairs.y[i : i + cfg.batch_size].to(device)
            if cond.kind == "random":
                # drawn on the CPU generator, so identical perturbations whatever the device
                d = random_perturbation(
                    y.cpu(), cond.eps, project=project, relative=cfg.relative, generator=gen
                )
                y = y + d.to(device)
                norms.append(d.flatten(1).norm(dim=1))
            elif cond.kind == "pgd":
                if (
                    cfg.attack_restarts > 1 and gen is None
                ):  # random starts: one CPU stream per condition, any device
                    gen = torch.Generator().manual_seed(training_seed(cfg.test_seed, cond.key + ":restarts"))
                d = pgd_restarts(reconstruct, y, x, pgd, cfg.attack_restarts, project=project, generator=gen)
                y = y + d
                norms.append(d.flatten(1).norm(dim=1).cpu())
            with torch.no_grad():
                x_hat = reconstruct(y)
            s = score(x_hat, x, magnitude=magnitude)
            for k in per:
                per[k].append(s[k])
            if progress is not None:
                progress.update(x.shape[0])
        entry: dict[str, Any] = {"split": cond.split, "kind": cond.kind, "eps": cond.eps}
        for k, vals in per.items():
            v = torch.cat(vals)
            entry[k] = summarize(v)
            if cfg.per_sample:
                entry.setdefault("per_sample", {})[k] = v.tolist()
        if norms:
            entry["perturbation_norm"] = summarize(torch.cat(norms).double())
        results[cond.key] = entry
    return results


def _labels(ckpts: Sequence[LoadedCheckpoint]) -> list[str]:
    names = [c.name for c in ckpts]
    out = []
    for c, n in zip(ckpts, names):
        if names.count(n) > 1:
            n = f"{n} ({c.path.parent.name or c.path.stem})"
        out.append(n)
    # still duplicated (same folder names): number them
    seen: dict[str, int] = {}
    final = []
    for n in out:
        seen[n] = seen.get(n, 0) + 1
        final.append(n if out.count(n) == 1 else f"{n} #{seen[n]}")
    return final


def _references(first: LoadedCheckpoint, device: torch.device, dtype: torch.dtype) -> list[_Estimator]:
    """The reference rows: the measurement itself (x0 = Aᵀy) and the affine estimator fitted on ``first``'s
    training pairs."""
    task, rc = first.task, first.config
    physics = task.physics.to(device)
    rows: list[_Estimator] = [
        ("measurement", "reference", measurement_reference(physics), {"estimator": "x0 = A^T y"})
    ]
    train = task.training_set(rc.train_size, seed=rc.resolved_data_seed, dtype=dtype)
    fn, info = affine_reference(train.x, train.y)
    info = {
        **info,
        "fitted_on": f"training pairs of {first.path} (train_size={rc.train_size}, "
        f"data_seed={rc.resolved_data_seed})",
    }
    rows.append(("affine", "reference", fn, info))
    return rows


def _models(ckpts: Sequence[LoadedCheckpoint], device: torch.device) -> list[_Estimator]:
    """One row per checkpoint, labelled, with its run config as the file holds it."""
    rows: list[_Estimator] = []
    for label, c in zip(_labels(ckpts), ckpts):
        saved = c.saved_config  # the row records the run config as the file holds it
        info = {
            "checkpoint": str(c.path),
            "strategy": saved.get("strategy"),
            "seed": saved.get("seed"),
            "data_seed": saved.get("data_seed", saved.get("seed")),
            "epochs": saved.get("epochs"),
            "model": saved.get("model"),
        }
        rows.append((label, "model", c.model.to(device).eval(), info))
    return rows


def evaluate(
    checkpoints: Sequence[str | Path | LoadedCheckpoint],
    cfg: EvalConfig | None = None,
    *,
    progress: bool = False,
) -> dict[str, Any]:
    """Evaluate checkpoints of one task side by side, with the reference rows; returns a JSON-ready dict.

    ``cfg`` defaults to :meth:`EvalConfig.from_run_config` of the first checkpoint.
    """
    t0 = time.perf_counter()
    ckpts = load_one_task(checkpoints, who="evaluate")
    first = ckpts[0]
    if cfg is None:
        cfg = EvalConfig.from_run_config(first.config)
    task = first.task
    dtype = getattr(torch, first.config.dtype)
    device = torch.device(cfg.device)
    if device.type == "cuda":
        check(torch.cuda.is_available(), "device='cuda' but no CUDA device is available")
    conds = conditions(task, cfg)
    estimators = (_references(first, device, dtype) if cfg.references else []) + _models(ckpts, device)
    bar = None
    if progress:
        bar = progress_bar(total=len(estimators) * len(conds) * cfg.n_test, desc="evaluate", unit="sample")
    data: dict[str, Any] = {}
    rows = []
    for label, kind, fn, info in estimators:
        t1 = time.perf_counter()
        res = evaluate_estimator(fn, task, cfg, dtype=dtype, data=data, progress=bar)
        rows.append(
            {"name": label, "kind": kind, **info, "seconds": time.perf_counter() - t1, "results": res}
        )
    if bar is not None:
        bar.close()
    return {
        "task": task.config(),
        "eval_config": cfg.to_dict(),
        "seeds": {
            "test_seed": cfg.test_seed,
            "perturbations": "training_seed(test_seed, condition key) for every random / PGD condition",
            "runs": "each model row's seed and data_seed (its training run's)",
        },
        "conditions": [asdict(c) for c in conds],
        "metric_convention": CONVENTION,
        "eps_convention": ("relative: eps * ||y_i|| per sample" if cfg.relative else "absolute ℓ2 norm"),
        "rows": rows,
        "versions": versions(),
        "seconds": time.perf_counter() - t0,
    }


#: :func:`evaluate` under the name the front door offers (``landscape.evaluate`` is this module).
evaluate_checkpoints = evaluate


def _cell(entry: dict[str, Any], stderr: bool) -> str:
    p, s = entry["psnr"], entry["ssim"]
    return f"{_mean_se(p, 2, stderr)} / {_mean_se(s, 3, stderr)}"


def _mean_se(m: dict[str, Any], digits: int, stderr: bool) -> str:
    """``mean±stderr``; the mean alone without ``stderr`` or when the spread is not a number (one test sample:
    NaN, written ``"nan"`` in the JSON)."""
    se = float(m["stderr"]) if stderr else math.nan
    return f"{float(m['mean']):.{digits}f}" + (f"±{se:.{digits}f}" if math.isfinite(se) else "")


def _header(cond: dict[str, Any]) -> str:
    if cond["kind"] == "pgd":
        return f"PGD ε={_fmt_eps(cond['eps'])}"
    if cond["kind"] == "random":
        return f"random ε={_fmt_eps(cond['eps'])}"
    if cond["split"] == "id":
        return "ID"
    return f"OOD {cond['split']}"


def format_table(report: dict[str, Any], *, stderr: bool = True) -> str:
    """The report as a text table: rows = estimators, columns = ID / PGD / random / OOD; cells PSNR / SSIM."""
    conds = report["conditions"]
    head = ["estimator"] + [_header(c) for c in conds]
    body = [[r["name"]] + [_cell(r["results"][c["key"]], stderr) for c in conds] for r in report["rows"]]
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    ev = report.get("eval_config", {})
    title = (
        f"task {report['task'].get('name')} ({report['task'].get('size')}): PSNR (dB) / SSIM, mean ± stderr over "
        f"{ev.get('n_test')} test samples (seed {ev.get('test_seed')}); ε "
        f"{'relative to ||y||' if ev.get('relative') else 'absolute'}"
    )
    return "\n".join([title, line(head), sep, *(line(b) for b in body)])


def with_overrides(cfg: EvalConfig, **overrides: Any) -> EvalConfig:
    """``cfg`` with the non-None ``overrides`` replaced."""
    return replace(cfg, **{k: v for k, v in overrides.items() if v is not None})


def robustness_curve(
    model: Any,
    physics: Any,
    y: torch.Tensor,
    x: torch.Tensor,
    eps: Sequence[float],
    *,
    steps: int = 20,
    step_size: float = 0.1,
    relative: bool = True,
    magnitude: bool = False,
) -> dict[str, Any]:
    """PSNR under ℓ2 PGD on the measurement against the radius ε, mean ± standard error over samples.

    ε is relative to ‖y_i‖ per sample by default (the convention of :func:`evaluate` and of training),
    absolute with ``relative=False``; the attack is projected onto what the physics can measure.  The attack
    is :func:`~landscape.attacks.pgd_attack`, as in :func:`evaluate`: a radius at which the network overflows
    (``--eps 1e300``) is flagged the same way, a ``RuntimeWarning`` naming the samples that broke and a
    PSNR of -inf or NaN at that ε, never the clean PSNR.
    """
    mean, se = [], []
    for e in eps:
        if e == 0:
            with torch.no_grad():
                xh = model(y)
        else:
            cfg = PGDConfig(eps=float(e), steps=steps, step_size=step_size, relative=relative)
            delta = pgd_attack(model, y, x, cfg, project=physics.project_measurement)
            with torch.no_grad():
                xh = model(y + delta)
        p = score(xh, x, magnitude=magnitude)["psnr"].double().cpu().numpy()
        with np.errstate(
            invalid="ignore"
        ):  # an overflowed attack (-inf / NaN PSNR) was flagged by pgd_attack
            mean.append(float(p.mean()))
            se.append(float(p.std(ddof=1) / math.sqrt(len(p))) if len(p) > 1 else math.nan)
    return {
        "eps": [float(e) for e in eps],
        "psnr": {"mean": mean, "stderr": se, "error": "standard error over the test samples"},
        "attack": {
            "kind": "l2 pgd on the measurement",
            "steps": steps,
            "step_size": step_size,
            "relative": relative,
            "projection": "physics.project_measurement",
        },
        "eps_convention": "relative: eps * ||y_i|| per sample" if relative else "absolute l2 norm",
    }
