"""The runner of an experiment: :func:`run_experiment` trains, evaluates and measures every run of the plan
(each an independent item for an executor), judges the claims and writes the results; every step is cached
beside its run, so an interrupted experiment continues where it stopped.  :func:`check_experiment_folder`
says whether a folder is one an experiment may write into."""

from __future__ import annotations

import contextlib
import json
import math
import re
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from landscape.checkpoint import CHECKPOINT_NAME, load_checkpoint, read_checkpoint
from landscape.claims import ClaimsResult, ClaimsSettings, check_claims
from landscape.config import TrainConfig
from landscape.curvature import CurvatureSettings, IterateCurvature, analyze_iterates
from landscape.errors import check, check_count, one_line_warning
from landscape.evaluate import EvalConfig, evaluate
from landscape.executor import LocalExecutor, PoolExecutor, current_executor, process_pool
from landscape.experiment.plan import (
    RunSpec,
    matched_absolute_sigma,
    plan_experiment,
    preset_seeds,
    train_config,
)
from landscape.experiment.tables import (
    _cond_keys,
    _per_sample,
    _sum_trace,
    build_tables,
    figure_sections,
    results_html,
    results_markdown,
    stop_reason,
)
from landscape.export import check_formats, save_group
from landscape.io import (
    LOCK_NAME,
    MANIFEST_NAME,
    RunLock,
    claim_folder,
    folder_owner,
    json_safe,
    read_json,
    write_group,
    write_json,
)
from landscape.presets import ExperimentPreset, experiment_preset, thaw
from landscape.progress import progress_bar
from landscape.train import Trainer, config_differences

__all__ = ["EXPERIMENT_OWNER", "check_experiment_folder", "run_experiment"]


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
        check(
            not diff,
            f"{run_dir} holds a run whose config differs from the plan's run {spec.name} in "
            f"{'; '.join(diff)}: use another --out, or remove that run",
        )
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
        why = (
            f"{type(exc).__name__}: {why}"
            if isinstance(exc, (KeyError, TypeError, AttributeError, IndexError)) or not why
            else why
        )
        warnings.warn(f"cache {path} is unreadable ({why}): recomputing", UserWarning, stacklevel=3)
        return None


def _cached(
    path: Path,
    compute: Callable[[], dict[str, Any]],
    valid: Callable[[dict[str, Any]], bool] = lambda old: True,
) -> dict[str, Any]:
    """``path``'s record when it exists, is readable and ``valid(record)`` (it was computed the way asked now;
    see :func:`_read_cache`), else ``compute()``, written to ``path`` (atomically) and returned: every cache of
    an experiment."""
    old = _read_cache(path, valid)
    if old is not None:
        return old
    out = compute()
    write_json(path, out)
    return out


def _eval_config(
    task: str, preset: str, run_config: TrainConfig | dict[str, Any], *, references: bool, device: str = "cpu"
):
    p = experiment_preset(preset, task)
    over: dict[str, Any] = {
        "attack_restarts": int(p.restarts),
        "attack_steps": int(p.attack_steps),
        "references": references,
        "device": device,
    }
    if p.n_test:
        over["n_test"] = int(p.n_test)
    if p.attack_eps:
        over["attack_eps"] = tuple(p.attack_eps)
        over["random_eps"] = (float(p.attack_eps[len(p.attack_eps) // 2]),)
    return EvalConfig.from_run_config(run_config, **over)


def _curvature_cached(
    path: Path, run: Path, samples: int, device: str, settings: dict[str, Any] | None
) -> dict[str, Any]:
    want = CurvatureSettings(**(settings or {})).to_dict()

    def valid(old: dict[str, Any]) -> bool:
        _sum_trace(old)  # the record decodes (IterateCurvature.from_dict) and has every value read later
        return old["curvature"].get("settings") == want and old.get("samples", samples) == samples

    return _cached(path, lambda: _curvature(run, samples, device=device, settings=settings), valid)


def _curvature(
    run: str | Path, samples: int, seed: int = 0, device: str = "cpu", settings: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Curvature at every iterate of ``samples`` ID test samples (the shared defaults of the pipeline)."""

    ck = load_checkpoint(run)
    p = ck.test_pairs(samples)
    res = analyze_iterates(
        ck.model.to(device),
        x_true=p.x.to(device),
        y=p.y.to(device),
        iterates="all",
        seed=seed,
        **(settings or {}),
    )
    return {
        "checkpoint": str(run),
        "epoch": ck.extra.get("epoch"),
        "samples": samples,
        "curvature": res.to_dict(),
    }


def _train_item(task: str, preset: str, spec: RunSpec, runs_dir: Path, device: str = "cpu") -> dict[str, Any]:
    """One plan item: train (or resume, or reuse) one run; returns its record for ``results.json``."""
    rd = runs_dir / spec.name
    extra = None
    if spec.after is not None:
        extra = _cached(
            runs_dir / f"{spec.name}.matched.json",
            lambda: matched_absolute_sigma(runs_dir / spec.after),
            lambda old: math.isfinite(float(old["matched_sigma"])),
        )
    cfg = train_config(task, preset, spec, extra=extra, device=device)
    t = time.perf_counter()
    done = _train(spec, cfg, rd)
    m = done["metrics"]
    return {
        **spec.to_dict(),
        "dir": f"runs/{spec.name}",
        "action": done["action"],
        "epochs": m["epochs"],
        "stopping": m.get("stopping"),
        "final": m["final"],
        "train_seconds": m["train_seconds"],
        "matched": extra,
        "snapshots": m.get("snapshots", []),
        "seconds": time.perf_counter() - t,
    }


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


def _curvature_item(
    rd: Path,
    samples: int,
    snapshots: Sequence[str],
    device: str = "cpu",
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
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
        final = _training_point(
            rd / CHECKPOINT_NAME, cur
        )  # an early stop ends between snapshots: the end too
        if not pts or final["epoch"] > pts[-1]["epoch"]:
            pts.append(final)
        out["over_training"] = pts
    return out


def _claims_cached(path: Path, key: dict[str, Any], compute: Callable[[], Any]) -> Any:
    """The claims of the main runs, reused from ``claims.json`` when they judged the same runs the same way."""
    key = json.loads(json.dumps(json_safe(key)))

    def valid(old: dict[str, Any]) -> bool:
        ClaimsResult.from_dict(old["result"]).verdicts()  # decodes, with the verdicts the record shows
        return old.get("key") == key

    rec = _cached(path, lambda: {"key": key, "result": compute().to_dict()}, valid)
    return ClaimsResult.from_dict(rec["result"])


#: the owner an experiment records in its folder's manifest (landscape.io.claim_folder)
EXPERIMENT_OWNER = "landscape experiment"
# what an experiment writes at the top of its folder (export figures are TASK-PRESET_NAME.FMT)
_OWN_NAMES = frozenset(
    {"runs", "claims.json", "results.json", "results.md", "report.html", MANIFEST_NAME, LOCK_NAME}
)
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


def _executor(executor: Any, workers: int) -> tuple[Any, Any]:
    """The executor of the items, and the process pool made for it (None unless ``workers > 1`` and no
    ``executor`` was given): its workers die with this process (:func:`landscape.executor.die_with_parent`)."""
    if executor is None and workers > 1:
        pool = process_pool(workers, initializer=_one_thread)
        return PoolExecutor(pool), pool
    return (current_executor() if executor is None else executor), None


@dataclass
class _Items:
    """Runs a stage's items on the executor ``ex`` and follows them on the progress bar ``bar`` (if any)."""

    ex: Any
    bar: Any = None

    def tick(self, n: int, what: str) -> None:
        if self.bar is not None:
            self.bar.update(n)
            if hasattr(self.bar, "set_postfix_str"):
                self.bar.set_postfix_str(what)

    def run_all(
        self,
        fn: Callable[..., Any],
        argsets: Sequence[tuple],
        label: Callable[[tuple], str],
        done: Callable[[tuple, Any], None] = lambda a, r: None,
    ) -> list[Any]:
        """``fn(*a)`` for each ``a`` of ``argsets``, in order; ``done(a, result)`` and a tick after each."""
        if isinstance(self.ex, LocalExecutor):  # one at a time, so the bar and the log follow the work
            res = []
            for a in argsets:
                res.append(fn(*a))
                done(a, res[-1])
                self.tick(1, label(a))
            return res
        futures = [self.ex.submit(fn, *a) for a in argsets]
        res = []
        for a, f in zip(argsets, futures):
            res.append(f.result())
            done(a, res[-1])
            self.tick(1, label(a))
        return res


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
    plan = plan_experiment(
        task,
        preset,
        seeds=seeds,
        sigmas=sigmas,
        activations=activations,
        ablations=ablations,
        study_seeds=study_seeds,
    )
    check_count(workers, "workers")
    check_experiment_folder(out, overwrite=overwrite)  # never into a folder holding files it did not write
    if export:
        export = check_formats(export)  # kaleido and its browser, before any work
    ex, pool = _executor(executor, workers)
    root = bool(ex.is_root)
    say = say if (say is not None and root) else (lambda m: None)
    bar = None
    if progress and root:
        bar = progress_bar(
            total=3 * len(plan) + (1 if claims else 0) + 1, desc=f"experiment {task} ({preset})", unit="item"
        )
    items = _Items(ex, bar)
    p = experiment_preset(preset, task)
    record = _new_record(task, preset, seeds, plan, p)
    out.mkdir(parents=True, exist_ok=True)
    try:
        with RunLock(out) if root else contextlib.nullcontext():
            if root:  # first of all, so an interrupted experiment's folder is still known as its own
                claim_folder(out, EXPERIMENT_OWNER)
            runs_dir = out / "runs"
            runs_dir.mkdir(exist_ok=True)
            record["runs"] = _train_runs(items, task, preset, plan, runs_dir, device, say)
            _measure_runs(items, task, preset, plan, runs_dir, record["runs"], device)
            cres = _claims_stage(items, record, out, plan, p, device) if claims else None
            record["tables"] = build_tables(record)
            record["seconds"] = time.perf_counter() - t_start
            if root:
                _write_results(record, out, cres, export)
            items.tick(1, "write")
    finally:
        if bar is not None:
            bar.close()
        if pool is not None:
            pool.shutdown()
    return record


def _new_record(
    task: str, preset: str, seeds: int, plan: list[RunSpec], p: ExperimentPreset
) -> dict[str, Any]:
    """The results record before any work: what is run (task, preset, seeds, plan, the preset's settings)."""
    return {
        "format": "landscape-experiment/1",
        "task": task,
        "preset": preset,
        "seeds": seeds,
        "plan": [s.to_dict() for s in plan],
        "preset_settings": p.to_dict(),
        "runs": {},
    }


def _train_runs(
    items: _Items,
    task: str,
    preset: str,
    plan: list[RunSpec],
    runs_dir: Path,
    device: str,
    say: Callable[[str], None],
) -> dict[str, dict[str, Any]]:
    """Train (or resume, or reuse) every run of the plan; their records, in plan order.  The matched-absolute
    runs come in a second stage: they need the main sgd-jitter model of their seed."""

    def said(a: tuple, r: dict[str, Any]) -> None:
        say(
            f"{r['action']} {r['name']}: val PSNR {r['final']['val_psnr']:.2f} dB, {r['epochs']} epochs "
            f"({stop_reason(r)}), {r['seconds']:.0f} s"
        )

    runs: dict[str, dict[str, Any]] = {}
    for stage in ([s for s in plan if s.after is None], [s for s in plan if s.after is not None]):
        recs = items.run_all(
            _train_item,
            [(task, preset, s, runs_dir, device) for s in stage],
            lambda a: f"train {a[2].name}",
            said,
        )
        runs.update(zip((s.name for s in stage), recs))
    return {s.name: runs[s.name] for s in plan}  # plan order


def _measure_runs(
    items: _Items,
    task: str,
    preset: str,
    plan: list[RunSpec],
    runs_dir: Path,
    runs: dict[str, dict[str, Any]],
    device: str,
) -> None:
    """Evaluate every run and measure its curvature (and its snapshots'), into its record in ``runs``."""
    p = experiment_preset(preset, task)
    evals = items.run_all(
        _evaluate_item,
        [(task, preset, runs_dir / s.name, i == 0, device) for i, s in enumerate(plan)],
        lambda a: f"evaluate {a[2].name}",
    )
    budget = None if p.curvature is None else thaw(p.curvature)  # a plain dict: it travels to the workers
    curvs = items.run_all(
        _curvature_item,
        [
            (
                runs_dir / s.name,
                int(p.curvature_samples),
                tuple(runs[s.name]["snapshots"]) if p.snapshot_curvature else (),
                device,
                budget,
            )
            for s in plan
        ],
        lambda a: f"curvature {a[0].name}",
    )
    for s, e, c in zip(plan, evals, curvs):
        runs[s.name]["evaluation"] = e
        runs[s.name].update(c)


def _claims_settings(p: ExperimentPreset) -> ClaimsSettings:
    """The claims' settings of an experiment preset: its ``claims``, the evaluation's PGD steps, and its
    curvature budget (when it sets one)."""
    cl = {"attack_steps": int(p.attack_steps), **thaw(p.claims)}  # the evaluation's PGD
    if p.curvature:  # the claims' curvature on the preset's budget too
        cl["curvature"] = CurvatureSettings(**thaw(p.curvature))
    return ClaimsSettings(**cl)


def _judge_claims(out: Path, plan: list[RunSpec], p: ExperimentPreset, ex: Any, device: str) -> ClaimsResult:
    """The claims on the main runs (cached in ``claims.json``)."""
    paths = [
        out / "runs" / s.name
        for s in plan
        if s.study == "main" and s.strategy in ("mse", "sgd-jitter", "spgd-jitter", "curvature-penalty")
    ]
    cst = _claims_settings(p)
    key = {"paths": [str(q.relative_to(out)) for q in paths], "settings": cst.to_dict()}
    return _claims_cached(
        out / "claims.json", key, lambda: check_claims(paths, cst, progress=False, executor=ex, device=device)
    )


def _claims_stage(
    items: _Items, record: dict[str, Any], out: Path, plan: list[RunSpec], p: ExperimentPreset, device: str
) -> ClaimsResult:
    """The claims judged on the measured runs, into ``record`` (``claims`` and ``claims_verdicts``)."""
    cres = _judge_claims(out, plan, p, items.ex, device)
    record["claims"] = cres.to_dict()
    record["claims_verdicts"] = cres.verdicts()
    items.tick(1, "claims")
    return cres


def _write_results(
    record: dict[str, Any], out: Path, cres: ClaimsResult | None, export: Sequence[str]
) -> None:
    """``results.json``, ``results.md``, ``report.html`` and the exported figures, together or not at all."""
    files = {
        out / "results.json": json.dumps(json_safe(record), indent=1, allow_nan=False),
        out / "results.md": results_markdown(record),
        out / "report.html": results_html(record, claims=cres),
    }
    if export:  # the figures and the results appear together or not at all
        figs = {
            f"{record['task']}-{record['preset']}_{sec['id']}": sec["figure"]
            for sec in figure_sections(record, cres)
        }
        save_group(figs, out, export, extra=files)
    else:
        write_group(files)


def _training_point(path: Path, cur: dict[str, Any]) -> dict[str, Any]:
    payload = read_checkpoint(path, map_location="cpu")
    res = IterateCurvature.from_dict(cur["curvature"])
    K = res.n_iter
    inner = [k for k in res.iterates if 1 <= k <= K - 1]
    return {
        "snapshot": path.name,
        "epoch": int(payload.get("epoch") or 0),
        "sum_trace": float(sum(res.values("trace", k).mean() for k in inner)) if inner else math.nan,
        "lambda_max_1": float(res.values("lambda_max", 1).mean()) if 1 in res.iterates else math.nan,
        "val_psnr": float((payload.get("metrics") or {}).get("final", {}).get("val_psnr", math.nan)),
    }
