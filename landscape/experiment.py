r"""``landscape experiment``: the paper's comparison for one task end to end, and the studies beyond it.

One call trains every run of a *plan*, evaluates each, measures curvature and judges the claims, then writes
``DIR/results.json``, ``DIR/results.md`` and ``DIR/report.html`` together (:func:`landscape.io.write_group`).

The plan (:func:`plan_experiment`), for seeds ``0..S-1``:

* ``main`` — ``UnrolledGD`` with mse, input-jitter, adversarial and sgd-jitter (the paper's rule, its σ),
  and ``UnrolledProxGD`` with mse and spgd-jitter;
* ``sigma`` (``sigmas=``) — sgd-jitter at each σ (σ = 0 is the main MSE run);
* ``activation`` (``activations=``) — mse and sgd-jitter with each regularizer activation;
* ``ablation`` (``ablations=``, any of :data:`ABLATIONS`) — a fixed step η; no jitter on the last one or
  two steps; a small fixed training set (1/8 of the pairs, passed over 8 times per epoch, so an epoch has the
  steps of a full one) and fresh measurement noise every batch; absolute noise whose
  variance matches the paper rule's, measured on the main sgd-jitter model of the same seed; and
  ``explicit-penalty``, the causal control: ``UnrolledGD`` trained with the jitter's penalty made explicit
  (``curvature-penalty`` at the main sgd-jitter's σ and rule, :mod:`landscape.penalty`), which joins the main
  comparison (tables, and the claims' "explicit penalty ≈ jitter" equivalence claims).

Every run trains until validation PSNR stops improving (``patience`` epochs without a gain above
``min_delta`` dB) within the preset's epoch budget; ``results.json`` records for each run whether it
stopped on that plateau or ran out of budget.  The main GD runs keep ``snapshots`` checkpoints along
training, whose curvature gives tr H_k and λ_max against epoch.

Runs live in ``DIR/runs/<name>``.  A finished run is reused (its config must equal the plan's, else the
experiment stops with one line naming the run), an interrupted one resumes from its last epoch, and each
run's evaluation and curvature are cached beside it (``evaluation.json``, ``curvature.json``), so an
interrupted experiment continues where it stopped.  One progress bar covers the whole plan.

Statistics (each table says which):

* cells ``mean ± h`` over seeds: the mean over seeds of each run's mean over the test samples, ``h`` the
  half-width of the 95 % t-interval over seeds (the seed-to-seed spread; none with one seed);
* paired differences to MSE: per seed, the mean over the *same* test samples of (strategy − MSE of the same
  architecture and seed); then mean and 95 % t-interval over seeds.  Verdicts follow these seed-level
  intervals;
* curvature: Σ_{k=1}^{K-1} tr H_k per sample (exact dense Hessians on the toy task), averaged over samples,
  then over seeds as above.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from landscape import figures
from landscape.checkpoint import CHECKPOINT_NAME, load_checkpoint, read_checkpoint
from landscape.claims import ClaimsResult, ClaimsSettings, check_claims
from landscape.claims_report import claims_sections
from landscape.curvature import CurvatureSettings, IterateCurvature, analyze_iterates
from landscape.curvature.results import jsonable
from landscape.data import TASKS
from landscape.defaults import ACTIVATION_NAMES
from landscape.errors import check, check_count, one_line_warning
from landscape.evaluate import EvalConfig, evaluate
from landscape.executor import LocalExecutor, PoolExecutor, current_executor, process_pool
from landscape.export import check_formats, save_group
from landscape.io import (
    LOCK_NAME,
    MANIFEST_NAME,
    RunLock,
    claim_folder,
    folder_owner,
    read_json,
    write_group,
    write_json,
)
from landscape.models import RegularizerConfig
from landscape.page import render_page
from landscape.presets import EXPERIMENT_PRESETS as PRESETS
from landscape.presets import TRAIN_PRESETS
from landscape.progress import progress_bar
from landscape.stats import seed_interval
from landscape.train import Trainer, config_differences, make_train_config

__all__ = ["PRESETS", "ABLATIONS", "RunSpec", "plan_experiment", "run_experiment", "results_markdown",
           "PAPER_NUMBERS"]

#: The ablations :func:`plan_experiment` knows.
ABLATIONS = ("fixed-step", "no-jitter-last", "small-data", "matched-absolute", "explicit-penalty")

#: The paper's Table numbers (PSNR dB: ID / adversarial / OOD), for the same rows (arXiv 2410.14667).
PAPER_NUMBERS: dict[str, dict[str, tuple[float, float, float]]] = {
    "seismic": {"mse": (34.64, 28.85, 34.57), "adversarial": (33.50, 30.27, 33.45),
                "input-jitter": (32.92, 30.10, 32.91), "sgd-jitter": (35.10, 29.89, 34.93)},
    "mri": {"mse": (28.21, 25.68, 29.92), "adversarial": (27.68, 27.17, 27.74),
            "input-jitter": (28.18, 25.05, 29.97), "sgd-jitter": (28.22, 26.77, 30.36)},
}

MAIN = (("gd", "mse"), ("gd", "input-jitter"), ("gd", "adversarial"), ("gd", "sgd-jitter"),
        ("prox", "mse"), ("prox", "spgd-jitter"))


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
        return {"name": self.name, "study": self.study, "variant": self.variant, "arch": self.arch,
                "strategy": self.strategy, "seed": self.seed, "options": self.options, "after": self.after}


def _fmt_sigma(s: float) -> str:
    return f"{s:g}"


def preset_seeds(task: str, preset: str = "fast") -> int:
    """The preset's seed count: enough for its claims to reach a verdict on the effects the power table of
    theory/claims.md says it can detect (``fast`` denoise 8: its ID and OOD seed-level sd of 0.26 and 0.18 dB
    give minimum detectable effects of 0.30 and 0.21 dB at 8 seeds, 0.85 and 0.59 at 3; mri 5: the paper's
    OOD gain of 0.44 dB needs 4 at its measured sd; seismic 3 already detects the paper's effect sizes)."""
    return int(PRESETS[preset][task].get("seeds", 3))


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
    studies, each for seeds ``0..study_seeds-1`` (default: ``seeds``; see the module docstring).  ``seeds``
    defaults to the preset's (:func:`preset_seeds`)."""
    check(task in TASKS, f"task={task!r}: expected one of {TASKS}")
    check(preset in PRESETS, f"preset={preset!r}: expected one of {tuple(PRESETS)}")
    seeds = preset_seeds(task, preset) if seeds is None else seeds
    check_count(seeds, "seeds")
    for s in sigmas:
        check(isinstance(s, (int, float)) and math.isfinite(s) and s > 0, f"sigmas contains {s!r}: expected numbers > 0")
    for a in activations:
        check(a in ACTIVATION_NAMES, f"activation {a!r}: expected one of {ACTIVATION_NAMES}")
    for a in ablations:
        check(a in ABLATIONS, f"ablation {a!r}: expected one of {ABLATIONS}")
    p = PRESETS[preset][task]
    ss = seeds if study_seeds is None else study_seeds
    check_count(ss, "study_seeds")
    runs: list[RunSpec] = []
    for seed in range(seeds):  # the main comparison first, every seed: the studies come after it
        for arch, strat in MAIN:
            opts: dict[str, Any] = {}
            if arch == "gd" and strat in ("mse", "sgd-jitter") and p.get("snapshots"):
                opts["snapshots"] = int(p["snapshots"])
            runs.append(RunSpec(f"{arch}-{strat}-s{seed}", "main", strat, arch, strat, seed, opts))
    for seed in range(ss):
        for s in sigmas:
            runs.append(RunSpec(f"sigma{_fmt_sigma(s)}-s{seed}", "sigma", _fmt_sigma(s), "gd", "sgd-jitter", seed,
                                {"sigma": float(s)}))
    a0 = main_activation(task, preset)
    for seed in range(ss):
        for a in (a for a in dict.fromkeys(activations) if a != a0):  # a0's row is the main runs'
            for strat in ("mse", "sgd-jitter"):
                runs.append(RunSpec(f"act-{a}-{strat}-s{seed}", "activation", a, "gd", strat, seed, {"activation": a}))
    for seed in range(ss):
        for a in ablations:
            if a == "fixed-step":
                for strat in ("mse", "sgd-jitter"):
                    runs.append(RunSpec(f"fixed-step-{strat}-s{seed}", "ablation", a, "gd", strat, seed,
                                        {"fixed_step": True}))
            elif a == "no-jitter-last":
                for j in (1, 2):
                    runs.append(RunSpec(f"no-jitter-last{j}-s{seed}", "ablation", f"{a}{j}", "gd", "sgd-jitter",
                                        seed, {"zero_last": j}))
            elif a == "small-data":
                for variant, opts in (("small-fixed", {"train_fraction": 0.125}), ("fresh-noise", {"fresh_noise": True})):
                    for strat in ("mse", "sgd-jitter"):
                        runs.append(RunSpec(f"{variant}-{strat}-s{seed}", "ablation", variant, "gd", strat, seed, opts))
            elif a == "explicit-penalty":  # beside the main runs of the same seed: its claims pair with them
                runs.append(RunSpec(f"gd-curvature-penalty-s{seed}", "main", "curvature-penalty", "gd",
                                    "curvature-penalty", seed))
            elif a == "matched-absolute":
                runs.append(RunSpec(f"matched-absolute-s{seed}", "ablation", a, "gd", "sgd-jitter", seed,
                                    {"jitter_mode": "absolute", "matched_to": f"gd-sgd-jitter-s{seed}"},
                                    after=f"gd-sgd-jitter-s{seed}"))
    return runs


def main_activation(task: str, preset: str) -> str:
    """The regularizer activation of the main runs (the training preset's, unless the experiment preset's
    ``regularizer`` names another)."""
    p = PRESETS[preset][task]
    reg = {**TRAIN_PRESETS[task][p["size"]]["model"].get("regularizer", {}), **(p.get("regularizer") or {})}
    return str(reg.get("activation", RegularizerConfig.activation))


def main_sigma(task: str, preset: str) -> float:
    """The σ the main sgd-jitter runs train at (their own training config's): the σ sweep's figure and table
    show it as a point of the sweep."""
    spec = RunSpec("gd-sgd-jitter-s0", "main", "sgd-jitter", "gd", "sgd-jitter", 0)
    return float(_train_config(task, preset, spec, Path(".")).strategy.sigma)


def _train_config(task: str, preset: str, spec: RunSpec, out: Path, *, extra: dict[str, Any] | None = None,
                  device: str = "cpu"):
    """The :class:`~landscape.train.TrainConfig` of one run."""
    p = PRESETS[preset][task]
    base = TRAIN_PRESETS[task][p["size"]]
    o = dict(spec.options)
    kw: dict[str, Any] = {"arch": spec.arch, "seed": spec.seed, "size": p["size"], "device": device}
    for key in ("epochs", "patience", "min_delta", "lr", "lr_decays", "lr_factor", "train_size", "val_size",
                "batch_size", "n_iter", "regularizer", "task_options"):
        if p.get(key) is not None:
            kw[key] = p[key]
    kw["snapshots"] = int(o.pop("snapshots", 0))
    frac = o.pop("train_fraction", None)
    if frac is not None:  # a small fixed set, passed over 1/frac times per epoch: the steps of a full epoch
        kw["train_size"] = max(kw.get("batch_size", base["batch_size"]),
                               int(round(kw.get("train_size", base["train_size"]) * frac)))
        kw["epoch_passes"] = max(1, int(round(1 / frac)))
    zero_last = o.pop("zero_last", None)
    matched = o.pop("matched_to", None)
    if spec.strategy == "adversarial" and p.get("adversarial_steps"):
        kw["attack_steps"] = p["adversarial_steps"]
    kw.update(o)
    if zero_last is not None:
        K = int(kw.get("n_iter") or base["model"]["n_iter"])
        s = float(base["strategy"][spec.strategy]["sigma"])
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
    train = ck.task.training_set(int(rc["train_size"]), seed=int(rc.get("data_seed", rc.get("seed", 0))),
                                 dtype=torch.float32)
    bs = int(rc["batch_size"])
    sq = []
    with torch.no_grad():
        for b in range(min(batches, max(1, len(train.x) // bs))):
            x0, y = train.x[b * bs:(b + 1) * bs], train.y[b * bs:(b + 1) * bs]
            del x0
            x = m.initial(y)
            for k in range(m.n_iter):
                s = m.noise_scale(x, y, k)
                sq.append(float(torch.as_tensor(s).double().pow(2).mean()))
                x = m.step(x, y, k)
    sigma = math.sqrt(float(np.mean(sq)))
    return {"matched_sigma": sigma, "from": str(run_dir), "rule": rc["strategy"],
            "how": "sqrt(mean over k and training batches of s_k^2), s_k the paper rule's scale on clean iterates"}


# -------------------------------------------------------------------------------------------------
# statistics
# -------------------------------------------------------------------------------------------------
def t_interval(values: Sequence[float], level: float = 0.95) -> dict[str, Any]:
    """Mean and the ``level`` seed-level t interval (:func:`landscape.stats.seed_interval`, n − 1 df) of per-seed
    ``values``, as a table cell (NaN half-width for fewer than two seeds).  A missing (None / NaN) value is
    left out and counted in ``dropped``, so a cell never silently averages a failed run."""
    v = [float(x) for x in values if x is not None and math.isfinite(x)]
    n = len(v)
    dropped = len(list(values)) - n
    if n == 0:
        return {"mean": math.nan, "half": math.nan, "n": 0, "values": [], "dropped": dropped}
    iv = seed_interval(v, level)
    mean = float(np.mean(v))
    half = math.nan if iv is None else iv.high - iv.estimate
    return {"mean": mean, "half": half, "lo": mean - half, "hi": mean + half, "n": n, "values": v,
            "dropped": dropped, "method": "t over seeds" if iv is None else f"{iv.method} over seeds"}


def _cond_keys(ev: dict[str, Any]) -> list[str]:
    return [c["key"] for c in ev["conditions"]]


def _row(ev: dict[str, Any]) -> dict[str, Any]:
    rows = [r for r in ev["rows"] if r["kind"] == "model"]
    return rows[0]["results"]


def _per_sample(ev: dict[str, Any], key: str, metric: str) -> np.ndarray:
    return np.asarray(_row(ev)[key]["per_sample"][metric], dtype=np.float64)


def _sum_trace(curv: dict[str, Any]) -> float:
    """Mean over samples of Σ_{k=1}^{K-1} tr H_k from a cached curvature record."""
    res = IterateCurvature.from_dict(curv["curvature"])
    K = res.n_iter
    ks = [k for k in res.iterates if 1 <= k <= K - 1]
    if not ks:
        return math.nan
    return float(sum(res.values("trace", k).mean() for k in ks))


# -------------------------------------------------------------------------------------------------
# the runner
# -------------------------------------------------------------------------------------------------
def _same_config(saved: dict[str, Any], mine: dict[str, Any]) -> list[str]:
    """Where a saved run's config differs from the plan's, naming both values (``model.n_iter (the saved run:
    2, the plan: 3)``)."""
    return config_differences(saved, mine, ("the saved run", "the plan"))


def _whole_metrics(m: dict[str, Any]) -> bool:
    """Whether a run's ``metrics.json`` has what the experiment reads of it (else it raises)."""
    float(m["final"]["val_psnr"]), float(m["train_seconds"]), int(m["epochs"])
    check(isinstance(m.get("snapshots", []), list), "snapshots: expected a list")
    check(isinstance(m.get("stopping") or {}, dict), "stopping: expected an object")
    return True


def _train(spec: RunSpec, cfg: Any, run_dir: Path) -> dict[str, Any]:
    """Train, resume or reuse one run; returns its metrics and what was done.  The experiment (``run_dir``'s
    grandparent) holds its folder's lock for its lifetime, which keeps other trainings out of its runs."""
    experiment = run_dir.parent.parent
    trainer = Trainer(cfg, out_dir=run_dir, progress=False)
    ck, metrics = run_dir / "checkpoint.pt", run_dir / "metrics.json"
    if ck.exists():
        payload = read_checkpoint(ck, map_location="cpu")
        diff = _same_config(payload["config"], trainer._run_config())
        check(not diff, f"{run_dir} holds a run whose config differs from the plan's run {spec.name} in "
                        f"{'; '.join(diff)}: use another --out, or remove that run")
        done = _read_cache(metrics, _whole_metrics)  # unreadable: resumed, which writes it again
        if done is not None:
            return {"action": "reused", "metrics": done}
        return {"action": "resumed", "metrics": trainer.fit(resume=True, inside=experiment).metrics}
    return {"action": "trained", "metrics": trainer.fit(inside=experiment).metrics}


#: what a cache that is not what it should be raises while it is read and checked (a truncated file: a
#: JSONDecodeError, a ValueError; a wrong shape: a missing key, a wrong type, a list too short)
_BAD_CACHE = (ValueError, KeyError, TypeError, AttributeError, IndexError)


def _read_cache(path: Path, valid: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
    """``path``'s record when it exists, is readable and ``valid(record)``; else None.

    ``valid`` says whether the record was computed the way asked now, and reads every part of it that the
    experiment uses later, so a wrong-shaped record raises here.  A record that cannot be read (truncated, not
    JSON, the wrong shape) is named in one warning, ``cache PATH is unreadable (WHY): recomputing``, and
    recomputed: a cache never stops an experiment.
    """
    if not path.exists():
        return None
    try:
        old = read_json(path, expected="a cache record")  # io's one reader: not UTF-8, not JSON, too deep
        check(isinstance(old, dict), f"expected a JSON object, found {type(old).__name__}")
        return old if valid(old) else None
    except _BAD_CACHE as exc:
        why = str(exc).removeprefix(f"{path}: ").splitlines()[0][:160] if str(exc).strip() else ""
        why = f"{type(exc).__name__}: {why}" if isinstance(exc, (KeyError, TypeError, AttributeError, IndexError)) \
            or not why else why
        warnings.warn(f"cache {path} is unreadable ({why}): recomputing", UserWarning, stacklevel=3)
        return None


def _cached(path: Path, compute: Callable[[], dict[str, Any]],
            valid: Callable[[dict[str, Any]], bool] = lambda old: True) -> dict[str, Any]:
    """``path``'s record when it exists, is readable and ``valid(record)`` (it was computed the way asked now;
    see :func:`_read_cache`), else ``compute()``, written to ``path`` (atomically) and returned: every cache of
    an experiment."""
    old = _read_cache(path, valid)
    if old is not None:
        return old
    out = compute()
    write_json(path, out)
    return out


def _eval_config(task: str, preset: str, run_config: dict[str, Any], *, references: bool, device: str = "cpu"):
    p = PRESETS[preset][task]
    over: dict[str, Any] = {"attack_restarts": int(p["restarts"]), "attack_steps": int(p["attack_steps"]),
                            "references": references, "device": device}
    if p.get("n_test"):
        over["n_test"] = int(p["n_test"])
    if p.get("attack_eps"):
        over["attack_eps"] = tuple(p["attack_eps"])
        over["random_eps"] = (float(p["attack_eps"][len(p["attack_eps"]) // 2]),)
    return EvalConfig.from_run_config(run_config, **over)


def _curvature_cached(path: Path, run: Path, samples: int, device: str, settings: dict[str, Any] | None) -> dict[str, Any]:
    want = CurvatureSettings(**(settings or {})).to_dict()

    def valid(old: dict[str, Any]) -> bool:
        _sum_trace(old)  # the record decodes (IterateCurvature.from_dict) and has every value read later
        return old["curvature"].get("settings") == want and old.get("samples", samples) == samples

    return _cached(path, lambda: _curvature(run, samples, device=device, settings=settings), valid)


def _curvature(run: str | Path, samples: int, seed: int = 0, device: str = "cpu",
               settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Curvature at every iterate of ``samples`` ID test samples (the shared defaults of the pipeline)."""
    import torch


    ck = load_checkpoint(run)
    p = ck.task.pairs(samples, split="id", seed=int(ck.config.get("test_seed", 2024)), dtype=torch.float64)
    res = analyze_iterates(ck.model.to(device), x_true=p.x.to(device), y=p.y.to(device), iterates="all", seed=seed,
                           **(settings or {}))
    return {"checkpoint": str(run), "epoch": ck.extra.get("epoch"), "samples": samples, "curvature": res.to_dict()}


def _train_item(task: str, preset: str, spec: RunSpec, runs_dir: Path, device: str = "cpu") -> dict[str, Any]:
    """One plan item: train (or resume, or reuse) one run; returns its record for ``results.json``."""
    rd = runs_dir / spec.name
    extra = None
    if spec.after is not None:
        extra = _cached(runs_dir / f"{spec.name}.matched.json", lambda: matched_absolute_sigma(runs_dir / spec.after),
                        lambda old: math.isfinite(float(old["matched_sigma"])))
    cfg = _train_config(task, preset, spec, runs_dir, extra=extra, device=device)
    t = time.perf_counter()
    done = _train(spec, cfg, rd)
    m = done["metrics"]
    return {**spec.to_dict(), "dir": f"runs/{spec.name}", "action": done["action"], "epochs": m["epochs"],
            "stopping": m.get("stopping"), "final": m["final"], "train_seconds": m["train_seconds"],
            "matched": extra, "snapshots": m.get("snapshots", []), "seconds": time.perf_counter() - t}


def _evaluate_item(task: str, preset: str, rd: Path, references: bool, device: str = "cpu") -> dict[str, Any]:
    """One plan item: the evaluation of one run (cached in ``evaluation.json`` beside it)."""


    ck = load_checkpoint(rd)
    cfg = _eval_config(task, preset, ck.config, references=references, device=device)
    want = {k: v for k, v in cfg.to_dict().items() if k != "device"}

    def valid(old: dict[str, Any]) -> bool:  # reused only if it evaluated the same, and is whole
        for key in _cond_keys(old):
            for metric in ("psnr", "ssim"):
                check(_per_sample(old, key, metric).ndim == 1, f"{key} {metric}: expected per-sample values")
        return {k: v for k, v in old.get("eval_config", {}).items() if k != "device"} == want

    return _cached(rd / "evaluation.json", lambda: evaluate([ck], cfg), valid)


def _curvature_item(rd: Path, samples: int, snapshots: Sequence[str], device: str = "cpu",
                    settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """One plan item: the curvature of one run and of its snapshots (cached beside each checkpoint, reused
    when it was computed with the same settings)."""
    cur = _curvature_cached(rd / "curvature.json", rd, samples, device, settings)
    out: dict[str, Any] = {"sum_trace": _sum_trace(cur), "curvature": cur["curvature"]}
    if snapshots:
        pts = []
        for sp in snapshots:
            sf = rd / sp
            c = _curvature_cached(sf.with_suffix(".curvature.json"), sf, samples, device, settings)
            pts.append(_training_point(sf, c))
        final = _training_point(rd / CHECKPOINT_NAME, cur)  # an early stop ends between snapshots: the end too
        if not pts or final["epoch"] > pts[-1]["epoch"]:
            pts.append(final)
        out["over_training"] = pts
    return out


def _claims_cached(path: Path, key: dict[str, Any], compute: Callable[[], Any]) -> Any:
    """The claims of the main runs, reused from ``claims.json`` when they judged the same runs the same way."""
    key = json.loads(json.dumps(jsonable(key)))

    def valid(old: dict[str, Any]) -> bool:
        ClaimsResult.from_dict(old["result"]).verdicts()  # decodes, with the verdicts the record shows
        return old.get("key") == key

    rec = _cached(path, lambda: {"key": key, "result": compute().to_dict()}, valid)
    return ClaimsResult.from_dict(rec["result"])


#: the owner an experiment records in its folder's manifest (landscape.io.claim_folder)
EXPERIMENT_OWNER = "landscape experiment"
# what an experiment writes at the top of its folder (export figures are TASK-PRESET_NAME.FMT)
_OWN_NAMES = frozenset({"runs", "claims.json", "results.json", "results.md", "report.html", MANIFEST_NAME, LOCK_NAME})
_OWN_EXPORT = re.compile(r"^[a-z]+-[a-z]+_[A-Za-z0-9_.+-]+\.(?:html|pdf|svg|png)$")
_TEMPORARY = re.compile(r"^\..+\.tmp$")  # landscape.io's atomic-write temporaries


def check_experiment_folder(out: str | Path, *, overwrite: bool = False) -> None:
    """``ValueError`` unless ``out`` is a folder an experiment may write into: absent, empty, or its own.

    Its own: its manifest records :data:`EXPERIMENT_OWNER` (every experiment writes that first, so an
    interrupted one is recognised), or, for folders written before the manifest recorded an owner, it holds
    a ``runs`` folder and nothing but the names an experiment writes (``runs``, ``results.json``,
    ``results.md``, ``report.html``, ``claims.json``, its manifest, lock, temporary files and exported
    figures).  Any other folder holds files the experiment did not write and is refused, naming them,
    before any work; ``overwrite=True`` (``--overwrite``) writes into it anyway.
    """
    out = Path(out)
    if not out.exists() or overwrite:
        return
    check(out.is_dir(), f"--out {out}: exists and is not a directory")
    if folder_owner(out) == EXPERIMENT_OWNER:
        return
    names = sorted(e.name for e in out.iterdir() if e.name != LOCK_NAME and not _TEMPORARY.match(e.name))
    foreign = [n for n in names if n not in _OWN_NAMES and not _OWN_EXPORT.match(n)]
    if not names or (not foreign and (out / "runs").is_dir()):
        return
    shown = foreign or names
    more = f" and {len(shown) - 1} other file(s)" if len(shown) > 1 else ""
    raise ValueError(
        f"--out {out} holds {shown[0]}{more}, which landscape experiment did not write: an experiment writes only "
        "into an empty folder or its own (choose an empty or new folder, or pass --overwrite to write into it)"
    )


def _one_thread() -> None:
    """A pool worker's initializer: one torch thread, so ``workers`` processes share the cores; its warnings
    (a cache recomputed) print one line each, as the command's own do."""
    import torch

    torch.set_num_threads(1)
    warnings.formatwarning = one_line_warning("landscape experiment")


def run_experiment(
    task: str,
    out: str | Path,
    *,
    preset: str = "fast",
    seeds: int | None = None,
    sigmas: Sequence[float] = (),
    activations: Sequence[str] = (),
    ablations: Sequence[str] = (),
    study_seeds: int | None = None,
    claims: bool = True,
    progress: bool = True,
    say: Callable[[str], None] | None = None,
    executor: Any = None,
    workers: int = 1,
    device: str = "cpu",
    export: Sequence[str] = (),
    overwrite: bool = False,
) -> dict[str, Any]:
    """Run (or continue) the experiment in ``out``; returns the results record (``results.json``).

    ``out`` must be absent, empty or an experiment's own folder (:func:`check_experiment_folder`, before any
    work) unless ``overwrite=True``; the experiment then records itself as the folder's owner in its manifest.

    ``export``: formats (``"svg"``, ``"pdf"``, ``"png"``, ``"html"``) in which every figure of ``report.html``
    is also written, as ``out/TASK-PRESET_NAME.FMT``, together with the results (checked before any work).

    The runs, their evaluations and their curvature are independent items, submitted to ``executor``
    (default :func:`landscape.executor.current_executor`: the ranks of a torchrun job share them out), or to
    ``workers`` local processes (a process pool, one torch thread each) when ``workers > 1``.  Seeds come from
    the plan, never from where an item runs, so the results are the same.  Rank 0 writes the files.
    """
    t_start = time.perf_counter()
    out = Path(out)
    seeds = preset_seeds(task, preset) if seeds is None else seeds
    plan = plan_experiment(task, preset, seeds=seeds, sigmas=sigmas, activations=activations, ablations=ablations,
                           study_seeds=study_seeds)
    check_count(workers, "workers")
    check_experiment_folder(out, overwrite=overwrite)  # never into a folder holding files it did not write
    if export:
        export = check_formats(export)  # kaleido and its browser, before any work
    pool = None
    if executor is None and workers > 1:  # workers that die with this process (executor.die_with_parent)
        pool = process_pool(workers, initializer=_one_thread)
        executor = PoolExecutor(pool)
    ex = current_executor() if executor is None else executor
    root = bool(ex.is_root)
    say = say if (say is not None and root) else (lambda m: None)
    stages = [s for s in plan if s.after is None], [s for s in plan if s.after is not None]
    total = 3 * len(plan) + (1 if claims else 0) + 1
    bar = None
    if progress and root:
        bar = progress_bar(total=total, desc=f"experiment {task} ({preset})", unit="item")

    def tick(n: int, what: str) -> None:
        if bar is not None:
            bar.update(n)
            if hasattr(bar, "set_postfix_str"):
                bar.set_postfix_str(what)

    def run_all(fn: Callable[..., Any], argsets: Sequence[tuple], label: Callable[[tuple], str],
                done: Callable[[tuple, Any], None] = lambda a, r: None) -> list[Any]:
        if isinstance(ex, LocalExecutor):  # one at a time, so the bar and the log follow the work
            res = []
            for a in argsets:
                res.append(fn(*a))
                done(a, res[-1])
                tick(1, label(a))
            return res
        futures = [ex.submit(fn, *a) for a in argsets]
        res = []
        for a, f in zip(argsets, futures):
            res.append(f.result())
            done(a, res[-1])
            tick(1, label(a))
        return res

    def said(a: tuple, r: dict[str, Any]) -> None:
        say(f"{r['action']} {r['name']}: val PSNR {r['final']['val_psnr']:.2f} dB, {r['epochs']} epochs "
            f"({stop_reason(r)}), {r['seconds']:.0f} s")

    record: dict[str, Any] = {"format": "landscape-experiment/1", "task": task, "preset": preset, "seeds": seeds,
                              "plan": [s.to_dict() for s in plan], "preset_settings": PRESETS[preset][task],
                              "runs": {}}
    out.mkdir(parents=True, exist_ok=True)
    lock = RunLock(out) if root else contextlib.nullcontext()
    cres = None
    try:
        with lock:
            if root:  # first of all, so an interrupted experiment's folder is still known as its own
                claim_folder(out, EXPERIMENT_OWNER)
            runs_dir = out / "runs"
            runs_dir.mkdir(exist_ok=True)
            for stage in stages:  # the matched-absolute runs need the main sgd-jitter model of their seed
                recs = run_all(_train_item, [(task, preset, s, runs_dir, device) for s in stage], lambda a: f"train {a[2].name}",
                               said)
                for spec, r in zip(stage, recs):
                    record["runs"][spec.name] = r
            record["runs"] = {s.name: record["runs"][s.name] for s in plan}  # plan order
            evals = run_all(_evaluate_item, [(task, preset, runs_dir / s.name, i == 0, device)
                                            for i, s in enumerate(plan)],
                            lambda a: f"evaluate {a[2].name}")
            samples = int(PRESETS[preset][task]["curvature_samples"])
            snap = PRESETS[preset][task].get("snapshot_curvature", True)
            curvs = run_all(_curvature_item, [(runs_dir / s.name, samples,
                                               tuple(record["runs"][s.name]["snapshots"]) if snap else (), device,
                                              PRESETS[preset][task].get("curvature"))
                                              for s in plan], lambda a: f"curvature {a[0].name}")
            for s, e, c in zip(plan, evals, curvs):
                record["runs"][s.name]["evaluation"] = e
                record["runs"][s.name].update(c)
            if claims:
                paths = [runs_dir / s.name for s in plan
                         if s.study == "main" and s.strategy in ("mse", "sgd-jitter", "spgd-jitter",
                                                                  "curvature-penalty")]
                cl = {"attack_steps": int(PRESETS[preset][task]["attack_steps"]),  # the evaluation's PGD
                      **(PRESETS[preset][task].get("claims") or {})}
                if PRESETS[preset][task].get("curvature"):  # the claims' curvature on the preset's budget too
                    cl["curvature"] = CurvatureSettings(**PRESETS[preset][task]["curvature"])
                cst = ClaimsSettings(**cl)
                key = {"paths": [str(p.relative_to(out)) for p in paths], "settings": cst.to_dict()}
                cres = _claims_cached(out / "claims.json", key, lambda: check_claims(
                    paths, cst, progress=False, executor=ex, device=device))
                record["claims"] = cres.to_dict()
                record["claims_verdicts"] = cres.verdicts()
                tick(1, "claims")
            record["tables"] = build_tables(record)
            record["seconds"] = time.perf_counter() - t_start
            if root:
                files = {out / "results.json": json.dumps(jsonable(record), indent=1, allow_nan=False),
                         out / "results.md": results_markdown(record),
                         out / "report.html": results_html(record, claims=cres)}
                if export:  # the figures and the results appear together or not at all
                    figs = {f"{task}-{preset}_{sec['id']}": sec["figure"] for sec in figure_sections(record, cres)}
                    save_group(figs, out, export, extra=files)
                else:
                    write_group(files)
            tick(1, "write")
    finally:
        if bar is not None:
            bar.close()
        if pool is not None:
            pool.shutdown()
    return record


def _training_point(path: Path, cur: dict[str, Any]) -> dict[str, Any]:
    payload = read_checkpoint(path, map_location="cpu")
    res = IterateCurvature.from_dict(cur["curvature"])
    K = res.n_iter
    inner = [k for k in res.iterates if 1 <= k <= K - 1]
    return {"snapshot": path.name, "epoch": int(payload.get("epoch") or 0),
            "sum_trace": float(sum(res.values("trace", k).mean() for k in inner)) if inner else math.nan,
            "lambda_max_1": float(res.values("lambda_max", 1).mean()) if 1 in res.iterates else math.nan,
            "val_psnr": float((payload.get("metrics") or {}).get("final", {}).get("val_psnr", math.nan))}


# -------------------------------------------------------------------------------------------------
# tables
# -------------------------------------------------------------------------------------------------
def stop_reason(run: dict[str, Any]) -> str:
    """How a run of the record ended: ``plateau``, ``budget``, or ``diverged`` (its last validation PSNR below
    its initial model's: a failed run, whichever rule stopped it); ``?`` for a run that did not record it."""
    st = run.get("stopping") or {}
    return "diverged" if st.get("diverged") else str(st.get("reason", "?"))


def _label(arch: str, strat: str) -> str:
    names = {"mse": "MSE", "input-jitter": "input jitter", "adversarial": "adversarial (AT)",
             "sgd-jitter": "SGD jitter", "spgd-jitter": "SPGD jitter", "curvature-penalty": "explicit penalty"}
    return f"{names.get(strat, strat)} ({'GD' if arch == 'gd' else 'prox'})"


def _groups(record: dict[str, Any], study: str) -> dict[tuple[str, str], list[dict[str, Any]]]:
    g: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in record["runs"].values():
        if r["study"] == study:
            g.setdefault((r["variant"], r["arch"] + ":" + r["strategy"]), []).append(r)
    for v in g.values():
        v.sort(key=lambda r: r["seed"])
    return g


def _metric(r: dict[str, Any], key: str, metric: str) -> np.ndarray:
    return _per_sample(r["evaluation"], key, metric)


def _columns(record: dict[str, Any]) -> list[str]:
    first = next(iter(record["runs"].values()))
    return _cond_keys(first["evaluation"])


def build_tables(record: dict[str, Any]) -> dict[str, Any]:
    """The numbers of ``results.md``: per study and row, per condition, seed-level means and intervals."""
    cols = _columns(record)
    runs = record["runs"]
    out: dict[str, Any] = {"columns": cols, "main": [], "paired": [], "sigma": [], "activation": [], "ablation": []}

    def seed_means(rs: Sequence[dict[str, Any]], key: str, metric: str) -> list[float]:
        return [float(_metric(r, key, metric).mean()) for r in rs]

    def paired(rs: Sequence[dict[str, Any]], refs: Sequence[dict[str, Any]], key: str, metric: str) -> dict[str, Any]:
        by = {r["seed"]: r for r in refs}
        d = [float((_metric(r, key, metric) - _metric(by[r["seed"]], key, metric)).mean()) for r in rs if r["seed"] in by]
        return t_interval(d)

    main = [(a, s) for a, s in MAIN] + [("gd", "curvature-penalty")]  # the explicit-penalty study's, if run
    for arch, strat in main:
        rs = [r for r in runs.values() if r["study"] == "main" and r["arch"] == arch and r["strategy"] == strat]
        rs.sort(key=lambda r: r["seed"])
        if not rs:
            continue
        row = {"label": _label(arch, strat), "arch": arch, "strategy": strat, "n_seeds": len(rs),
               "cells": {c: {m: t_interval(seed_means(rs, c, m)) for m in ("psnr", "ssim")} for c in cols},
               "sum_trace": t_interval([r["sum_trace"] for r in rs]),
               "stopping": [stop_reason(r) for r in rs],
               "epochs": [r["epochs"] for r in rs]}
        out["main"].append(row)
        mse = [r for r in runs.values() if r["study"] == "main" and r["arch"] == arch and r["strategy"] == "mse"]
        if strat != "mse" and mse:
            out["paired"].append({"label": _label(arch, strat), "vs": _label(arch, "mse"),
                                  "cells": {c: {m: paired(rs, mse, c, m) for m in ("psnr", "ssim")} for c in cols},
                                  "trace_ratio": t_interval([r["sum_trace"] / b["sum_trace"] for r in rs
                                                             for b in mse if b["seed"] == r["seed"]])})
    mse_gd = [r for r in runs.values() if r["study"] == "main" and r["arch"] == "gd" and r["strategy"] == "mse"]
    sgd_gd = [r for r in runs.values() if r["study"] == "main" and r["arch"] == "gd" and r["strategy"] == "sgd-jitter"]
    id_key = "id"
    pgd_keys = [c for c in cols if c.startswith("pgd:")]
    ood_keys = [c for c in cols if c.startswith("ood:")]
    mid_pgd = pgd_keys[len(pgd_keys) // 2] if pgd_keys else None

    def summary_row(label: str, rs: Sequence[dict[str, Any]], refs: Sequence[dict[str, Any]] | None) -> dict[str, Any]:
        row: dict[str, Any] = {"label": label, "n_seeds": len(rs),
                               "id": t_interval(seed_means(rs, id_key, "psnr")),
                               "ood": t_interval([float(np.mean([_metric(r, k, "psnr").mean() for k in ood_keys]))
                                                  for r in rs]) if ood_keys else None,
                               "pgd": t_interval(seed_means(rs, mid_pgd, "psnr")) if mid_pgd else None,
                               "sum_trace": t_interval([r["sum_trace"] for r in rs]),
                               "stopping": [stop_reason(r) for r in rs]}
        if refs:
            row["d_id"] = paired(rs, refs, id_key, "psnr")
            if ood_keys:
                by = {r["seed"]: r for r in refs}
                row["d_ood"] = t_interval([float(np.mean([(_metric(r, k, "psnr") - _metric(by[r["seed"]], k, "psnr")).mean()
                                                          for k in ood_keys])) for r in rs if r["seed"] in by])
            if mid_pgd:
                row["d_pgd"] = paired(rs, refs, mid_pgd, "psnr")
            row["trace_ratio"] = t_interval([r["sum_trace"] / b["sum_trace"] for r in rs for b in refs
                                             if b["seed"] == r["seed"]])
        return row

    out["pgd_key"], out["ood_keys"] = mid_pgd, ood_keys
    sig = _groups(record, "sigma")
    if sig:
        out["sigma"].append({**summary_row("σ = 0 (MSE)", mse_gd, None), "sigma": 0.0})
        points = [(float(variant), f"σ = {variant}", rs) for (variant, _), rs in sig.items()]
        s0 = main_sigma(record["task"], record["preset"])  # the main sgd-jitter runs are a point of the sweep
        if sgd_gd and not any(math.isclose(v, s0) for v, _, _ in points):
            points.append((s0, f"σ = {_fmt_sigma(s0)} (the main runs)", sgd_gd))
        for v, label, rs in sorted(points, key=lambda p: p[0]):
            out["sigma"].append({**summary_row(label, rs, mse_gd), "sigma": v})
    act = _groups(record, "activation")
    if act:  # the main runs are the study's row for their own activation (not trained twice)
        a0 = main_activation(record["task"], record["preset"])
        out["activation"].append({**summary_row(f"{a0} (the main runs): SGD jitter vs MSE", sgd_gd, mse_gd),
                                  "activation": a0})
    for a in sorted({v for v, _ in act}):
        m, s = act.get((a, "gd:mse"), []), act.get((a, "gd:sgd-jitter"), [])
        if m and s:
            out["activation"].append({**summary_row(f"{a}: SGD jitter vs MSE", s, m), "activation": a})
    abl = _groups(record, "ablation")
    if abl:
        out["ablation"].append({**summary_row("reference: SGD jitter vs MSE (learned η, all steps, paper rule)",
                                              sgd_gd, mse_gd), "variant": "main"})
    for variant in ("fixed-step", "small-fixed", "fresh-noise"):
        m, s = abl.get((variant, "gd:mse"), []), abl.get((variant, "gd:sgd-jitter"), [])
        if m and s:
            out["ablation"].append({**summary_row(f"{variant}: SGD jitter vs MSE", s, m), "variant": variant})
    for variant in ("no-jitter-last1", "no-jitter-last2", "matched-absolute"):
        s = abl.get((variant, "gd:sgd-jitter"), [])
        if s:
            out["ablation"].append({**summary_row(f"{variant}: SGD jitter vs main MSE", s, mse_gd), "variant": variant})
    over = {}
    for r in runs.values():
        if r.get("over_training"):
            over.setdefault(_label(r["arch"], r["strategy"]), []).append({"seed": r["seed"], "points": r["over_training"]})
    out["over_training"] = over
    return out


def _num(v: Any) -> float:
    """A number of the record (``None`` is JSON's NaN)."""
    return math.nan if v is None else float(v)


def _ci(t: dict[str, Any] | None, digits: int = 2) -> str:
    if not t or t.get("n", 0) == 0 or not math.isfinite(_num(t.get("mean"))):
        return "–"
    if not math.isfinite(_num(t.get("half"))):
        return f"{t['mean']:.{digits}f}"
    return f"{t['mean']:.{digits}f} ± {t['half']:.{digits}f}"


def _dci(t: dict[str, Any] | None, digits: int = 2) -> str:
    if not t or t.get("n", 0) == 0 or not math.isfinite(_num(t.get("mean"))):
        return "–"
    if not math.isfinite(_num(t.get("half"))):
        return f"{t['mean']:+.{digits}f} (n=1)"
    mark = "" if t["lo"] <= 0 <= t["hi"] else " *"
    return f"{t['mean']:+.{digits}f} [{t['lo']:+.{digits}f}, {t['hi']:+.{digits}f}]{mark}"


def _colname(c: str) -> str:
    if c == "id":
        return "ID"
    kind, _, rest = c.partition(":")
    return {"pgd": f"PGD ε={rest}", "random": f"random ε={rest}", "ood": f"OOD {rest}"}.get(kind, c)


def results_markdown(record: dict[str, Any]) -> str:
    """``results.md``: the tables in the paper's layout, each saying what its interval is."""
    t = record.get("tables") or build_tables(record)
    cols = t["columns"]
    lines = [f"# Experiment: {record['task']} ({record['preset']} preset, {record['seeds']} seed(s))", ""]
    lines.append("Cells are PSNR (dB) / SSIM: mean over seeds of each run's mean over the test samples, ± the "
                 "half-width of the 95 % t-interval over seeds (seed-to-seed spread; none with one seed).")
    lines.append("")
    lines.append("| strategy | " + " | ".join(_colname(c) for c in cols) + " | Σ tr H_k (k=1..K−1) | stopped |")
    lines.append("|---|" + "---|" * (len(cols) + 2))
    for row in t["main"]:
        cells = [f"{_ci(row['cells'][c]['psnr'])} / {_ci(row['cells'][c]['ssim'], 3)}" for c in cols]
        stop = ", ".join(f"{s or '?'}@{e}" for s, e in zip(row["stopping"], row["epochs"]))
        lines.append(f"| {row['label']} | " + " | ".join(cells) + f" | {_ci(row['sum_trace'], 3)} | {stop} |")
    lines += ["", curvature_note(record)]
    lines += ["", "Paired differences to MSE of the same architecture (PSNR dB / SSIM): per seed, the mean over the "
              "same test samples of (strategy − MSE); then the mean over seeds and its 95 % t-interval over seeds. "
              "`*`: the interval excludes 0. The last column is the ratio Σ tr H_k (strategy / MSE), per seed, "
              "then mean and t-interval over seeds.", ""]
    lines.append("| strategy − MSE | " + " | ".join(_colname(c) for c in cols) + " | Σ tr H ratio |")
    lines.append("|---|" + "---|" * (len(cols) + 1))
    for row in t["paired"]:
        cells = [f"{_dci(row['cells'][c]['psnr'])} / {_dci(row['cells'][c]['ssim'], 3)}" for c in cols]
        lines.append(f"| {row['label']} | " + " | ".join(cells) + f" | {_ci(row['trace_ratio'], 3)} |")
    paper = PAPER_NUMBERS.get(record["task"])
    if paper:
        lines += ["", "The paper's numbers for the same rows (PSNR dB, ID / adversarial / OOD; GD architecture), "
                  "beside ours (ID / PGD at the middle ε / mean over OOD shifts). Data and sizes differ: compare "
                  "which strategy wins which column, not the values.", "",
                  "| strategy | paper ID | paper adv. | paper OOD | ours ID | ours PGD | ours OOD |", "|---|---|---|---|---|---|---|"]
        for strat in ("mse", "adversarial", "input-jitter", "sgd-jitter"):
            rows = [r for r in t["main"] if r["arch"] == "gd" and r["strategy"] == strat]
            if not rows:
                continue
            o = _ours(rows[0], t)
            lines.append(f"| {rows[0]['label']} | " + " | ".join(f"{v:.2f}" for v in paper[strat]) + " | "
                         + " | ".join("–" if not math.isfinite(v) else f"{v:.2f}" for v in o) + " |")
        lines += ["", pattern_paragraph(record, t)]

    def summary_table(title: str, rows: Sequence[dict[str, Any]], note: str) -> None:
        if not rows:
            return
        lines.extend(["", f"## {title}", "", note, "",
                      "| row | ID PSNR | OOD PSNR | PGD PSNR | Σ tr H | Δ ID | Δ OOD | Δ PGD | tr ratio | stopped |",
                      "|---|---|---|---|---|---|---|---|---|---|"])
        for r in rows:
            lines.append(f"| {r['label']} | {_ci(r['id'])} | {_ci(r.get('ood'))} | {_ci(r.get('pgd'))} | "
                         f"{_ci(r['sum_trace'], 3)} | {_dci(r.get('d_id'))} | {_dci(r.get('d_ood'))} | "
                         f"{_dci(r.get('d_pgd'))} | {_ci(r.get('trace_ratio'), 3)} | "
                         f"{', '.join(str(s) for s in r['stopping'])} |")

    pk = t.get("pgd_key") or "–"
    note = (f"PGD column: {_colname(pk) if pk != '–' else pk}; OOD: mean over the shifts. Δ: paired differences "
            "(same test samples, per seed) to the reference named in the row, mean and 95 % t-interval over seeds; "
            "tr ratio: Σ_{k=1}^{K−1} tr H_k of the row over its reference, per seed, then over seeds.")
    summary_table("Noise level σ of SGD jittering", t["sigma"], note)
    summary_table("Regularizer activation", t["activation"],
                  note + " ReLU: autograd's Hessian is the almost-everywhere one (R'' = 0 off the kinks).")
    summary_table("Mechanism ablations", t["ablation"], note)
    if t.get("over_training"):
        lines += ["", "## Curvature over training", "",
                  "Σ_{k=1}^{K−1} tr H_k (mean over the curvature samples) of the snapshots along training, per seed:", "",
                  "| strategy | seed | epoch: Σ tr H (val PSNR) |", "|---|---|---|"]
        for label, series in t["over_training"].items():
            for s in series:
                pts = "; ".join(f"{p['epoch']}: {p['sum_trace']:.3g} ({p['val_psnr']:.2f})" for p in s["points"])
                lines.append(f"| {label} | {s['seed']} | {pts} |")
    if record.get("claims_verdicts"):
        lines += ["", "## Claims (landscape claims on the main runs)", ""]
        lines += [f"- {k}: **{v}**" for k, v in record["claims_verdicts"].items()]
    lines += ["", f"Runs: {len(record['runs'])} in `runs/`; {record.get('seconds', 0):.0f} s in all for this call "
              "(reused runs cost nothing)."]
    return "\n".join(lines) + "\n"


def _ours(row: dict[str, Any], t: dict[str, Any]) -> tuple[float, float, float]:
    """(ID, PGD at the middle ε, mean over the OOD shifts) PSNR of one main-table row: seed means."""
    pk = t["pgd_key"]
    ood = float(np.mean([row["cells"][k]["psnr"]["mean"] for k in t["ood_keys"]])) if t["ood_keys"] else math.nan
    return (_num(row["cells"]["id"]["psnr"]["mean"]), _num(row["cells"][pk]["psnr"]["mean"]) if pk else math.nan, ood)


def curvature_note(record: dict[str, Any]) -> str:
    """How the Σ tr H_k column was measured and how much of it converged (from the stored results)."""
    methods, bad, total, samples = set(), 0, 0, set()
    for r in record["runs"].values():
        res = IterateCurvature.from_dict(r["curvature"])
        methods.add(res.method)
        bad += len(res.unconverged())
        total += len(res.samples)
        samples.add(res.n_samples)
    p = record.get("preset_settings", {})
    budget = p.get("curvature")
    how = ("exact dense Hessians (every estimate exact)" if methods == {"dense"} else
           f"method {'/'.join(sorted(methods))}" + (f" on the budget {budget}" if budget else ""))
    return (f"Σ tr H_k column: {how}, {'/'.join(str(n) for n in sorted(samples))} test sample(s) per run; "
            f"{bad} estimate(s) (λ, trace) in {total} (iterate, sample) results stopped at their budget unconverged"
            + (" — read those numbers as rough estimates (see `unconverged` in results.json)." if bad else "."))


def pattern_paragraph(record: dict[str, Any], t: dict[str, Any]) -> str:
    """Which strategy wins which column, ours against the paper's, in words generated from the numbers."""
    paper = PAPER_NUMBERS.get(record["task"])
    if not paper:
        return ""
    ours = {r["strategy"]: _ours(r, t) for r in t["main"] if r["arch"] == "gd"}
    common = [s for s in paper if s in ours]
    parts = []
    for i, col in enumerate(("ID", "adversarial", "OOD")):
        pw = max(common, key=lambda s: paper[s][i])
        rank = sorted(common, key=lambda s: ours[s][i], reverse=True)
        ow, margin = rank[0], ours[rank[0]][i] - ours[rank[1]][i]
        parts.append(f"{col}: the paper's best is {pw}, ours {ow} by {margin:.2f} dB over {rank[1]} "
                     f"({'same' if pw == ow else 'differs'})")
    return "Pattern (best strategy per column, GD rows, point estimates): " + "; ".join(parts) + "."


def results_html(record: dict[str, Any], *, claims: Any = None) -> str:
    """``report.html``: the tables and figures of the experiment, self-contained."""
    import html as _html


    md = results_markdown(record)
    sections: list[dict[str, Any]] = [{"id": "tables", "title": "Tables", "figure": None,
                                       "html": f"<pre>{_html.escape(md)}</pre>",
                                       "caption": "results.md, as written beside this page"}]
    sections.extend(figure_sections(record, claims))
    intro = (f"<p>Experiment {_html.escape(record['task'])} ({_html.escape(record['preset'])} preset, "
             f"{record['seeds']} seed(s)). Every number is in <code>results.json</code> beside this page.</p>")
    return render_page(f"landscape experiment: {record['task']}", sections, intro_html=intro)


def figure_sections(record: dict[str, Any], claims: Any = None) -> list[dict[str, Any]]:
    """The figures of ``report.html`` (and of ``export``), as report sections: pure functions of the record."""
    t = record.get("tables") or build_tables(record)
    sections: list[dict[str, Any]] = []
    if t["sigma"]:
        sections.append({"id": "sigma", "title": "Accuracy, robustness and flatness against σ",
                         "figure": figures.sweep_figure(t["sigma"], x="sigma", x_title="σ (paper rule)"),
                         "caption": "mean over seeds ± 95 % t-interval over seeds"})
    if t.get("over_training"):
        sections.append({"id": "over-training", "title": "Curvature over training",
                         "figure": figures.over_training_figure(t["over_training"]),
                         "caption": "Σ_{k=1}^{K−1} tr H_k and λ_max(H_1) of the snapshots, one line per seed"})
    if claims is not None:
        sections.extend(claims_sections(claims))
    return sections
