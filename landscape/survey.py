r"""The survey of checkpoints behind ``landscape analyze``: curvature along the unrolled path, slices, robustness.

:func:`analyze_checkpoints` loads every checkpoint, draws the same test samples for each (the run's
``test_seed``: :meth:`~landscape.checkpoint.load.LoadedCheckpoint.test_pairs`; sample
ids 0..n-1 of the split), and computes, per checkpoint:

* the curvature of :math:`L_k(x_k)` at each requested iterate through the one pipeline,
  :func:`landscape.curvature.analyze_iterates`, with the shared :class:`CurvatureSettings` defaults
  (exact dense Hessians where they are cheaper; λ_max, λ_min, trace, and the spectral density at
  ``density_k``);
* a 2-D slice of :math:`L_k` around :math:`x_k` along two seeded directions (the same draws for every
  checkpoint) and a 2-D slice of the training loss around θ along filter-normalised directions;
* a robustness curve (:func:`landscape.evaluate.robustness_curve`: PSNR under ℓ2 PGD on the measurement,
  ε relative to ‖y‖ as in ``landscape evaluate``) and one reconstruction.

It owns the ``analysis.json`` format (:data:`FORMAT`, :func:`load_analysis`); :mod:`landscape.viz.report`
only renders it.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from landscape.checkpoint import (
    LoadedCheckpoint,
    load_checkpoint,
    resolve_checkpoint_path,
    run_files,
    versions,
)
from landscape.claims import penalty_along_path
from landscape.curvature.analysis import CurvatureSettings, IterateCurvature, analyze_iterates, parse_iterates
from landscape.curvature.slices import input_slice, parameter_slice
from landscape.defaults import ANALYSIS_DEFAULTS
from landscape.errors import check, check_count, check_positive_int
from landscape.evaluate import robustness_curve
from landscape.executor import current_executor, use_executor
from landscape.export import check_formats, render
from landscape.io import check_distinct, check_writable, json_safe, write_group
from landscape.metrics import display, score
from landscape.records import FORMAT, curvature_of, hessian_span, load_analysis
from landscape.solver import Solver, as_solver
from landscape.viz.report import analysis_figures, render_report

__all__ = [
    "FORMAT",
    "DEFAULTS",
    "parse_iterates",
    "analyze_checkpoints",
    "analyze_loaded",
    "load_analysis",
    "curvature_of",
    "hessian_span",
]

DEFAULTS = ANALYSIS_DEFAULTS  # see landscape.defaults

_CURVATURE_FIELDS = set(CurvatureSettings.__dataclass_fields__)


# -------------------------------------------------------------------------------------------------
# pieces
# -------------------------------------------------------------------------------------------------
def _round(a: np.ndarray) -> list:
    return np.asarray([float(f"{v:.6g}") for v in np.ravel(a)]).reshape(np.shape(a)).tolist()


def _reconstruction(
    model: Solver, physics: Any, y: torch.Tensor, x: torch.Tensor, magnitude: bool, sample: int = 0
) -> dict[str, Any]:
    with torch.no_grad():
        traj = model(y[sample : sample + 1], return_iterates=True)
    xh, x0, xt = traj.output, traj.iterates[0], x[sample : sample + 1]
    p = float(score(xh, xt, magnitude=magnitude)["psnr"][0])

    def disp(t: torch.Tensor) -> np.ndarray:
        d = display(t.detach().double().cpu(), magnitude)[0]  # (C, ...)
        return d[0].numpy()

    shape = tuple(xt.shape[1:])
    kind = "signal" if len(shape) == 2 else "image"
    return {
        "display": kind,
        "magnitude": magnitude,
        "sample": sample,
        "shape": list(shape),
        "x_true": _round(disp(xt)),
        "x_hat": _round(disp(xh)),
        "x_init": _round(disp(x0)),
        "psnr": p,
    }


# -------------------------------------------------------------------------------------------------
# the analysis
# -------------------------------------------------------------------------------------------------
def _eigen_line(
    model: Solver, y: torch.Tensor, x: torch.Tensor, k: int, span: float, seed: int, memory_mb: float
) -> dict[str, Any]:
    """A 1-D slice along the unit top eigenvector of H_k, with the quadratic model's coefficients."""
    line = input_slice(
        model,
        y,
        x,
        k,
        kinds=("eigen",),
        n=41,
        span=span,
        seed=seed,
        sample=0,
        scale="unit",
        memory_mb=memory_mb,
        keep_vectors=True,
        dtype=None,
    )
    view = as_solver(model).prepared(None)
    xk = view.iterates(y)[k].clone().requires_grad_(True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(view.loss(xk, y, x, k).sum(), xk)
    v = torch.as_tensor(line.vectors[0], dtype=g.dtype).reshape(g.shape)
    d = line.to_dict()
    d["quadratic"] = {
        "value": line.center_value,
        "slope": float((g * v).sum()),
        "curvature": float(line.directions[0].get("eigenvalue", math.nan)),
    }
    return d


def _say(progress: bool | Callable[[str], None], msg: str) -> None:
    if callable(progress):
        progress(msg)
    elif progress:
        print(msg, file=sys.stderr, flush=True)


def analyze_loaded(
    model: Solver,
    y: torch.Tensor,
    x: torch.Tensor,
    *,
    iterates: Sequence[int],
    curvature: CurvatureSettings | None = None,
    settings: dict[str, Any] | None = None,
    label: str = "model",
    progress: bool | Callable[[str], None] = False,
    reference_span: float | None = None,
    penalty_jitter: Any = None,
    executor: Any = None,
) -> dict[str, Any]:
    """Curvature, slices, robustness and a reconstruction for one solver and test samples.

    ``model`` is any solver of the protocol; slices of parameters need an ``nn.Module``, the robustness
    curve and the reconstruction a ``physics`` (they are skipped, and say so, otherwise).  Returns one
    checkpoint entry of ``analysis.json`` (without the checkpoint's path, config and metrics).
    ``penalty_jitter`` (a noise rule) adds the expansion's penalty ½ η_k² s_k² tr H_{k+1} along the path, when
    the solver offers ``noise_scale`` and ``step_size`` and every iterate was analysed.
    With ``slice_span='hessian'`` the input slice uses unit directions over ±α*, α* = √(2 L_k/λ_max)
    (:func:`hessian_span`) of this solver's sample 0, or ``reference_span`` when given (so several
    checkpoints share one scale), and a 1-D slice along the top eigenvector carries its quadratic model.
    ``executor`` (default :func:`landscape.executor.current_executor`) runs the curvature items (iterate ×
    sample chunk) and the slice grid blocks; the numbers do not depend on it.
    """
    ex = current_executor() if executor is None else executor
    with use_executor(ex):
        return _analyze_loaded(
            model,
            y,
            x,
            iterates=iterates,
            curvature=curvature,
            settings=settings,
            label=label,
            progress=progress,
            reference_span=reference_span,
            penalty_jitter=penalty_jitter,
            ex=ex,
        )


def _analyze_loaded(
    model: Solver,
    y: torch.Tensor,
    x: torch.Tensor,
    *,
    iterates: Sequence[int],
    curvature: CurvatureSettings | None,
    settings: dict[str, Any] | None,
    label: str,
    progress: bool | Callable[[str], None],
    reference_span: float | None,
    penalty_jitter: Any,
    ex: Any,
) -> dict[str, Any]:
    s = {**DEFAULTS, **(settings or {})}
    cs = curvature or CurvatureSettings()
    physics = getattr(model, "physics", None)
    magnitude = getattr(physics, "name", "") == "mri"
    timings: dict[str, float] = {}
    entry: dict[str, Any] = {"label": label}

    t = time.perf_counter()
    res = _curvature_entries(entry, model, y, x, iterates, cs, s, label, progress, penalty_jitter, ex)
    timings["curvature"] = time.perf_counter() - t
    timings["backend_selection"] = res.backend_choice.selection_time if res.backend_choice else 0.0
    entry["slices"] = _slice_entries(entry, timings, model, y, x, res, cs, s, label, progress, reference_span)

    if s["eps"] and physics is not None:
        t = time.perf_counter()
        _say(progress, f"[{label}] robustness (PGD, eps={list(s['eps'])} x ||y||)")
        entry["robustness"] = robustness_curve(
            model,
            physics,
            y,
            x,
            s["eps"],
            steps=int(s["pgd_steps"]),
            step_size=float(s["pgd_step_size"]),
            magnitude=magnitude,
        )
        timings["robustness"] = time.perf_counter() - t
    if physics is not None:
        entry["reconstruction"] = _reconstruction(model, physics, y, x, magnitude)
    entry["timings"] = timings
    return entry


def _curvature_entries(
    entry: dict[str, Any],
    model: Solver,
    y: torch.Tensor,
    x: torch.Tensor,
    iterates: Sequence[int],
    cs: CurvatureSettings,
    s: dict[str, Any],
    label: str,
    progress: bool | Callable[[str], None],
    penalty_jitter: Any,
    ex: Any,
) -> IterateCurvature:
    """The curvature at ``iterates`` into ``entry`` (``density`` at ``density_k`` when asked, ``curvature``,
    ``density_k``, and ``penalty`` along the path when every iterate was analysed); returns the curvature."""
    ids = list(range(y.shape[0]))
    _say(progress, f"[{label}] curvature at iterates {list(iterates)} ({len(ids)} samples)")
    res = analyze_iterates(
        model, x_true=x, y=y, iterates=list(iterates), settings=cs, sample_ids=ids, executor=ex
    )
    dk = s["density_k"]
    if dk is not None:
        dk = min(iterates, key=lambda k: abs(k - int(dk)))
        if not cs.density:  # the density at one iterate only: free when dense, SLQ otherwise
            dset = replace(cs, density=True, diagonal=False, method=res.method, backend=res.backend)
            if res.method != "dense":
                dset = replace(dset, top_k=0, bottom_k=0, trace=False)
            entry["density"] = analyze_iterates(
                model, x_true=x, y=y, iterates=[dk], settings=dset, sample_ids=ids, executor=ex
            ).to_dict()
    entry["curvature"] = res.to_dict()
    entry["density_k"] = dk
    full = set(range(1, model.n_iter + 1)) <= set(res.iterates)
    if (
        penalty_jitter is not None
        and full
        and all(callable(getattr(model, a, None)) for a in ("noise_scale", "step_size"))
    ):
        entry["penalty"] = penalty_along_path(model, x, y, res, penalty_jitter)
    return res


def _slice_entries(
    entry: dict[str, Any],
    timings: dict[str, float],
    model: Solver,
    y: torch.Tensor,
    x: torch.Tensor,
    res: IterateCurvature,
    cs: CurvatureSettings,
    s: dict[str, Any],
    label: str,
    progress: bool | Callable[[str], None],
    reference_span: float | None,
) -> dict[str, Any]:
    """The input slice at ``slice_iterate`` (with the line along the top eigenvector on the Hessian's own
    scale) and the parameter slice; their times go into ``timings``, the Hessian span into ``entry``."""
    t = time.perf_counter()
    k = int(s["slice_iterate"])
    check(0 <= k <= model.n_iter, f"slice_iterate={k!r}: expected an iterate 0..K with K={model.n_iter}")
    span, scale = s["slice_span"], "norm"
    if span == "hessian":  # unit directions over +-alpha*, alpha* of the reference checkpoint when given
        ref = reference_span
        span, scale = (float(ref) if ref else hessian_span(res, k) if k in res.iterates else 1.0), "unit"
        entry["slice_span"] = {
            "rule": "alpha* = sqrt(2 L_k / lambda_max) of sample 0 of the first checkpoint",
            "alpha": span,
            "own_alpha": hessian_span(res, k) if k in res.iterates else None,
        }
    _say(progress, f"[{label}] input slice at k={k} ({s['slice_n']}x{s['slice_n']})")
    sl = input_slice(
        model,
        y[:1],
        x[:1],
        k,
        kinds=tuple(s["slice_kinds"]),
        n=int(s["slice_n"]),
        span=float(span),
        seed=cs.seed,
        sample=0,
        scale=scale,
        memory_mb=float(s["memory_mb"]),
        keep_vectors=False,
    )
    slices = {"input": sl.to_dict()}
    if scale == "unit":
        slices["eigen_line"] = _eigen_line(
            model, y[:1], x[:1], k, float(span), cs.seed, float(s["memory_mb"])
        )
    timings["input_slice"] = time.perf_counter() - t
    if int(s["param_slice_n"]) > 0 and isinstance(model, torch.nn.Module):
        t = time.perf_counter()
        _say(progress, f"[{label}] parameter slice ({s['param_slice_n']}x{s['param_slice_n']})")
        ps = parameter_slice(
            model,
            y,
            x,
            n=int(s["param_slice_n"]),
            span=float(s["param_slice_span"]),
            seed=cs.seed,
            memory_mb=float(s["memory_mb"]),
        )
        slices["parameter"] = ps.to_dict()
        timings["parameter_slice"] = time.perf_counter() - t
    return slices


def _split_settings(
    overrides: dict[str, Any], curvature: CurvatureSettings | None
) -> tuple[dict, CurvatureSettings]:
    cur = {k: v for k, v in overrides.items() if k in _CURVATURE_FIELDS}
    rest = {k: v for k, v in overrides.items() if k not in _CURVATURE_FIELDS}
    unknown = sorted(set(rest) - set(DEFAULTS))
    check(
        not unknown,
        f"unknown analysis settings {unknown}: expected keys of {sorted(DEFAULTS)} or of CurvatureSettings",
    )
    return {**DEFAULTS, **rest}, replace(curvature or CurvatureSettings(), **cur)


def analyze_checkpoints(
    paths: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    samples: int = 16,
    iterates: str | Sequence[int] | None = "all",
    curvature: CurvatureSettings | None = None,
    progress: bool | Callable[[str], None] = True,
    write_html: bool = True,
    threads: int | None = None,
    evaluation: dict[str, Any] | None = None,
    executor: Any = None,
    device: str = "cpu",
    export: Sequence[str] = (),
    **overrides: Any,
) -> dict[str, Any]:
    """Analyse every checkpoint, write ``out_dir/analysis.json`` and ``out_dir/report.html``.

    Args:
        paths: checkpoint files or run directories (``load_checkpoint``).
        out_dir: output folder (created).
        samples: number of test samples (``ck.test_pairs(samples, split)``: ``task.pairs`` with the run's
            ``test_seed``, the same samples for every checkpoint of a task; sample ids 0..samples-1).
        iterates: ``"all"`` (0..K), ``"0,3,5"`` or a list of ints.
        curvature: the :class:`CurvatureSettings` (default: the shared defaults); its fields can also be
            given as keywords (``top_k=3``, ``seed=1``, ``method='estimate'``...).
        progress: print one line per step on stderr (or call ``progress(msg)``).
        write_html: also write ``report.html`` (needs plotly).
        threads: torch CPU threads for the analysis (restored afterwards); ``None`` leaves the setting
            alone.  The models are small, so on shared or busy cores 1 thread is often fastest.
        evaluation: a ``landscape.evaluate.evaluate`` report to carry into ``analysis.json`` and show on
            the report page (the demo passes its own).
        executor: where the items run (default :func:`landscape.executor.current_executor`: the ranks of a
            torchrun job, else this process); only its root writes the files.
        device: where the models run (``cpu``, ``cuda``, ``cuda:N``).
        export: formats (``"pdf"``, ``"svg"``, ``"png"``, ``"html"``) in which every figure of the report is
            also written to ``out_dir/NAME.FMT``, NAME carrying the settings
            (:func:`landscape.viz.report.analysis_figures`).  Static formats need kaleido and a browser; that is
            checked before any work (:class:`landscape.export.ExportUnavailable`, one line), and the figures
            appear together with ``analysis.json`` or not at all.
        overrides: any key of :data:`DEFAULTS` or field of :class:`CurvatureSettings`.

    Returns:
        The analysis record (what ``analysis.json`` holds), with ``files`` naming the written files.
    """
    prev = torch.get_num_threads()
    if threads is not None:
        check_count(threads, "threads")
        torch.set_num_threads(threads)
    try:
        return _analyze_checkpoints(
            paths,
            out_dir,
            samples=samples,
            iterates=iterates,
            curvature=curvature,
            progress=progress,
            write_html=write_html,
            evaluation=evaluation,
            executor=executor,
            device=device,
            export=export,
            **overrides,
        )
    finally:
        torch.set_num_threads(prev)


def _check_outputs(paths: Sequence[str | os.PathLike], out: Path) -> None:
    """The outputs checked before any work: ``out`` a folder (or absent) where ``analysis.json`` can be
    written, and neither output one of the inputs' run files."""
    check(not out.exists() or out.is_dir(), f"--out {out}: exists and is not a directory")
    check_writable(out / "analysis.json", what="--out", create=False)  # fail now, not after the analysis
    check_distinct(
        [out / "analysis.json", out / "report.html"],
        [f for p in paths for f in run_files(resolve_checkpoint_path(p))],
    )


def _check_iterate_settings(
    loaded: Sequence[LoadedCheckpoint], iterates: Any, settings: dict[str, Any]
) -> None:
    """``--iterates``, ``--map-iterates``, ``--slice-iterate`` and ``--density-k`` within 0..K of every
    checkpoint, the map iterates among the analysed ones."""
    for ck in loaded:
        K = ck.model.n_iter
        ks = parse_iterates(iterates, K)
        if settings.get("map_iterates") is not None:
            missing = [k for k in parse_iterates(settings["map_iterates"], K) if k not in ks]
            if missing:
                raise ValueError(
                    f"--map-iterates {settings['map_iterates']}: k = {missing[0]} is not among the "
                    f"analysed iterates (--iterates {iterates}; {ck.path})"
                )
        for key in ("slice_iterate", "density_k"):
            v = settings.get(key)
            check(
                v is None or (isinstance(v, int) and 0 <= v <= K),
                f"--{key.replace('_', '-')} {v}: expected an iterate 0..K with K={K} ({ck.path})",
            )


def _penalty_rule(loaded: Sequence[LoadedCheckpoint]) -> Any:
    """The noise rule whose penalty every checkpoint is evaluated under: the first jittered checkpoint's (the
    noise its strategy trained with)."""
    return next((j for j in (c.config.strategy.noise for c in loaded) if j is not None and j.active), None)


@dataclass
class _Survey:
    """One pass over the checkpoints, and what carries from one to the next: the labels given, the curvature
    backend chosen per architecture (selected once, reused), the slice span the first checkpoint sets, and
    the iterates resolved."""

    settings: dict[str, Any]
    curvature: CurvatureSettings
    samples: int
    iterates: str | Sequence[int] | None
    device: str
    executor: Any
    progress: bool | Callable[[str], None]
    rule: Any
    labels_seen: dict[str, int] = field(default_factory=dict)
    chosen: dict[str, tuple[str, str]] = field(
        default_factory=dict
    )  # architecture -> (backend, chooser's label)
    ref_span: float | None = None
    resolved_iterates: list[int] | None = None

    def label(self, ck: LoadedCheckpoint) -> str:
        """The strategy name; a snapshot adds its run and epoch, a repeated label its folder (or count)."""
        label = ck.name
        if Path(ck.path).parent.name == "snapshots":  # a snapshot along training: its run and epoch
            label = f"{ck.name} ({Path(ck.path).parent.parent.name}) @ epoch {ck.extra.get('epoch')}"
        if label in self.labels_seen:
            self.labels_seen[label] += 1
            label = f"{label} ({Path(ck.path).parent.name or self.labels_seen[label]})"
        else:
            self.labels_seen[label] = 1
        return label

    def entry(self, ck: LoadedCheckpoint) -> dict[str, Any]:
        """The ``analysis.json`` entry of one checkpoint, on the run's test samples (:meth:`LoadedCheckpoint.test_pairs`)."""
        t0 = time.perf_counter()
        cs = self.curvature
        model = ck.model.to(device=self.device, dtype=cs.torch_dtype).eval()
        model.requires_grad_(False)
        ks = parse_iterates(self.iterates, model.n_iter)
        self.resolved_iterates = ks
        pairs = ck.test_pairs(self.samples, split=self.settings["split"], dtype=cs.torch_dtype)
        label = self.label(ck)
        arch = json.dumps(model.config(), sort_keys=True, default=str)
        ccs = cs
        if cs.backend == "auto" and arch in self.chosen:  # selection is made once per architecture and reused
            ccs = replace(cs, backend=self.chosen[arch][0])
        entry = analyze_loaded(
            model,
            pairs.y.to(self.device),
            pairs.x.to(self.device),
            iterates=ks,
            curvature=ccs,
            settings=self.settings,
            label=label,
            progress=self.progress,
            reference_span=self.ref_span,
            penalty_jitter=self.rule,
            executor=self.executor,
        )
        if ccs is not cs:
            entry["backend_chosen_by"] = self.chosen[arch][1]
        elif cs.backend == "auto":
            self.chosen[arch] = (entry["curvature"]["backend"], label)
        if self.ref_span is None and "slice_span" in entry:
            self.ref_span = entry["slice_span"][
                "alpha"
            ]  # the first checkpoint sets one scale for every panel
        entry.update(
            {
                "path": str(ck.path),
                "task": ck.task.config(),
                "strategy": ck.saved_config.get("strategy"),
                "model": model.config(),
                "metrics": ck.metrics,
                "epoch": ck.extra.get("epoch"),
                "test_seed": ck.test_seed,
                "wall_time": time.perf_counter() - t0,
            }
        )
        return entry


def _record(
    survey: _Survey, entries: list[dict[str, Any]], evaluation: dict[str, Any] | None, t_all: float
) -> dict[str, Any]:
    """The analysis record: format, creation time, versions, every setting, the entries."""
    ex = survey.executor
    record = {
        "format": FORMAT,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": versions(),
        "settings": {
            **{k: (list(v) if isinstance(v, tuple) else v) for k, v in survey.settings.items()},
            "curvature": survey.curvature.to_dict(),
            "samples": int(survey.samples),
            "iterates": survey.resolved_iterates,
            "threads": torch.get_num_threads(),
            "executor": {"kind": type(ex).__name__, "world_size": int(ex.world_size)},
            "device": str(survey.device),
            "eps_convention": "relative: eps * ||y_i|| per sample (as landscape evaluate)",
            "test_data": "task.pairs(samples, split, seed=checkpoint config test_seed); sample ids 0..samples-1",
        },
        "checkpoints": entries,
        "wall_time": time.perf_counter() - t_all,
    }
    if evaluation is not None:
        record["evaluation"] = evaluation
    return record


def _write_record(
    record: dict[str, Any],
    out: Path,
    *,
    write_html: bool,
    export: Sequence[str],
    ex: Any,
    progress: bool | Callable[[str], None],
) -> dict[str, Any]:
    """``analysis.json``, the report and the exported figures, rendered first, then made visible together
    (:func:`landscape.io.write_group`: a manifest written last) by the root rank only.  Returns the files."""
    json_path = out / "analysis.json"
    files: dict[str, Any] = {"analysis": str(json_path)}
    group = {json_path: json.dumps(json_safe(record), indent=2, allow_nan=False) + "\n"}
    if write_html and ex.is_root:
        t = time.perf_counter()
        html_path = out / "report.html"
        group[html_path] = render_report(record)
        files["report"] = str(html_path)
        record["report_time"] = time.perf_counter() - t
    if (
        export and ex.is_root
    ):  # every figure in every format, rendered before anything is written, then one group
        t = time.perf_counter()
        figs = analysis_figures(record)
        _say(progress, f"exporting {len(figs)} figures as {', '.join(export)}")
        for fmt in export:
            for name, data in zip(figs, render(list(figs.values()), fmt)):
                group[out / f"{name}.{fmt}"] = data
        files["figures"] = sorted(str(out / f"{n}.{fmt}") for n in figs for fmt in export)
        record["export_time"] = time.perf_counter() - t
    if ex.is_root:  # one writer: rank 0 of a distributed run
        out.mkdir(parents=True, exist_ok=True)
        write_group(group)
    return files


def _analyze_checkpoints(
    paths: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    samples: int,
    iterates: str | Sequence[int] | None,
    curvature: CurvatureSettings | None,
    progress: bool | Callable[[str], None],
    write_html: bool,
    evaluation: dict[str, Any] | None = None,
    executor: Any = None,
    device: str = "cpu",
    export: Sequence[str] = (),
    **overrides: Any,
) -> dict[str, Any]:
    ex = current_executor() if executor is None else executor
    out = Path(out_dir)
    check(len(paths) > 0, "no checkpoints given: expected at least one path")
    formats = tuple(check_formats(export)) if export else ()  # kaleido and its browser, before any work
    check_positive_int(samples, "samples")
    settings, cs = _split_settings(overrides, curvature)
    _check_outputs(paths, out)
    loaded = [load_checkpoint(p) for p in paths]  # every input and setting checked before any work
    _check_iterate_settings(loaded, iterates, settings)
    t_all = time.perf_counter()
    survey = _Survey(
        settings=settings,
        curvature=cs,
        samples=samples,
        iterates=iterates,
        device=device,
        executor=ex,
        progress=progress,
        rule=_penalty_rule(loaded),
    )
    entries = [survey.entry(ck) for ck in loaded]
    record = _record(survey, entries, evaluation, t_all)
    files = _write_record(record, out, write_html=write_html, export=formats, ex=ex, progress=progress)
    record["files"] = files
    _say(
        progress,
        f"analysis written to {files['analysis']}" + (f" and {files.get('report')}" if write_html else ""),
    )
    return record
