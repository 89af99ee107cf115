r"""The analysis of trained checkpoints and its self-contained HTML report.

:func:`analyze_checkpoints` loads every checkpoint, draws the same test samples for each (the run's
``test_seed``), and computes, per checkpoint:

* curvature of :math:`L_k(x_k) = \|\Phi_{k\to K}(x_k) - x^*\|^2` at each requested iterate ``k``: top
  eigenvalues, trace (with standard errors) and the spectral density of :math:`H_k`;
* a 2-D slice of :math:`L_k` around :math:`x_k` along two seeded random directions (the same draws for
  every checkpoint) and a 2-D slice of the training loss around θ along filter-normalised directions;
* a robustness curve (PSNR under ℓ2 PGD on the measurement against ε) and one reconstruction.

It writes ``analysis.json`` (every number, setting and seed) and ``report.html``.  :func:`render_report`
rebuilds the page from the JSON alone (no model), so a report can be re-rendered.  The page is
self-contained: plotly.js is embedded once, each figure is a ``<div>`` with its data, and nothing is
fetched from any host.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from landscape.errors import check, check_positive_int
from landscape.curvature.analysis import parse_iterates

__all__ = [
    "FORMAT",
    "DEFAULTS",
    "parse_iterates",
    "analyze_checkpoints",
    "analyze_loaded",
    "curvature_along_path",
    "report_sections",
    "render_page",
    "render_report",
    "slice_sections",
    "write_report",
    "load_analysis",
]

FORMAT = "landscape-analysis/1"

#: Default settings of :func:`analyze_checkpoints` (each can be overridden by keyword).
DEFAULTS: dict[str, Any] = {
    "split": "id",
    "top_k": 5,
    "trace_max_matvecs": 100,
    "trace_rtol": 0.02,
    "density_runs": 4,
    "density_steps": 30,
    "density_k": 0,
    "density_points": 200,
    "dense_max": 256,
    "backend": "auto",
    "slice_k": 0,
    "slice_kinds": ("random", "random"),
    "slice_n": 31,
    "slice_span": 1.0,
    "param_slice_n": 15,
    "param_slice_span": 0.5,
    "eps": (0.0, 0.25, 0.5, 1.0),
    "pgd_steps": 20,
    "pgd_step_size": 0.1,
    "memory_mb": 256.0,
    "dtype": "float64",
}


# -------------------------------------------------------------------------------------------------
# curvature along the path
# -------------------------------------------------------------------------------------------------
def _broaden(nodes: np.ndarray, weights: np.ndarray, grid: np.ndarray, sigma: float) -> np.ndarray:
    ok = np.isfinite(nodes)
    dens = np.zeros_like(grid)
    for row_n, row_w, row_ok in zip(nodes, weights, ok, strict=False):
        t = row_n[row_ok][:, None]
        w = row_w[row_ok][:, None]
        dens += (w * np.exp(-((grid[None, :] - t) ** 2) / (2 * sigma**2))).sum(0)
    return dens / (len(nodes) * math.sqrt(2 * math.pi) * sigma)


def _summ(values: np.ndarray) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64).ravel()
    n = len(v)
    return {
        "mean": float(np.mean(v)),
        "stderr": float(np.std(v, ddof=1) / math.sqrt(n)) if n > 1 else 0.0,
        "n": int(n),
    }


def _pick_backend(model, y, x_true, k: int, budget_s: float, generator: torch.Generator) -> dict[str, Any]:
    """Time the HVP backends on this model once (blocks of 8 products); ``linearize`` is left out
    because its build cost is paid again at every iterate and is not part of the score."""
    from landscape.curvature.backends import select_backend
    from landscape.curvature.operators import iterate_loss, iterates_of

    x_k = iterates_of(model, y)[k]
    shape = tuple(x_k.shape)

    def f(xf: torch.Tensor) -> torch.Tensor:
        return iterate_loss(model, xf.view(shape), y, x_true, k).sum()

    choice = select_backend(
        f,
        x_k.reshape(-1),
        candidates=("double_backward", "vjp_grad", "jvp_grad"),
        budget_s=budget_s,
        batched=True,
        generator=generator,
    )
    return choice.to_dict()


def _density_on_grid(nodes: np.ndarray, weights: np.ndarray, k: int, points: int) -> dict[str, Any]:
    lo = float(np.nanmin(nodes))
    hi = float(np.nanmax(nodes))
    pad = 0.05 * max(hi - lo, 1e-12)
    grid = np.linspace(lo - pad, hi + pad, points)
    sigma = max((hi - lo) / 100.0, 1e-6 * max(abs(hi), 1.0))
    dens = _broaden(nodes, weights, grid, sigma)
    return {
        "k": int(k),
        "grid": grid,
        "density": dens,
        "sigma": sigma,
        "mean": float(np.nansum(nodes * weights, axis=1).mean()),
    }


def _dense_curvature(model, y, x_true, iterates, *, top_k, density_k, density_points, backend):
    """Exact per-sample Hessians (``n`` products in one vectorised block per iterate)."""
    from landscape.curvature.operators import make_iterate_hvp

    b = y.shape[0]
    n = math.prod(tuple(x_true.shape[1:]))
    rows, lam_all, tr_all, eig_all, densities = [], [], [], [], []
    for k in iterates:
        op = make_iterate_hvp(model, y, x_true, int(k), backend=backend)
        eye = torch.eye(n, dtype=op.dtype, device=op.device)
        cols = op.matmat(eye[:, None, :].expand(n, b, n).reshape(n, b * n)).reshape(n, b, n)
        H = cols.permute(1, 2, 0).double().cpu().numpy()  # (b, n, n): H[b][:, i] = H_b e_i
        ev = np.linalg.eigvalsh(0.5 * (H + H.transpose(0, 2, 1)))[:, ::-1]  # (b, n), descending
        top = ev[:, :top_k]
        lam_all.append(top[:, 0])
        tr_all.append(ev.sum(1))
        eig_all.append(top.mean(0))
        if density_k is None or int(k) == int(density_k):
            densities.append(_density_on_grid(ev, np.full(ev.shape, 1.0 / n), k, density_points))
        rows.append(
            {
                "k": int(k),
                "lambda_max": top[:, 0],
                "top_eigenvalues": top,
                "trace": ev.sum(1),
                "trace_stderr": np.zeros(b),
                "method": "dense (exact)",
            }
        )
    return {
        "lambda_max": {
            "mean": [_summ(v)["mean"] for v in lam_all],
            "stderr": [_summ(v)["stderr"] for v in lam_all],
        },
        "trace": {"mean": [_summ(v)["mean"] for v in tr_all], "stderr": [_summ(v)["stderr"] for v in tr_all]},
        "eigenvalues": [list(e) for e in eig_all],
        "densities": densities,
        "per_iterate": rows,
        "converged": True,
        "unconverged": [],
        "n_matvecs": n * len(iterates),
        "method": "dense: exact eigenvalues and trace of every sample's H_k (n Hessian-vector products each)",
    }


def _estimated_curvature(
    model, y, x_true, iterates, *, top_k, density_k, density_points, backend, seed, options: dict[str, Any]
):
    """Lanczos / Hutch++ / SLQ through :func:`landscape.curvature.analyze_iterates`."""
    import warnings

    from landscape.curvature import analyze_iterates

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = analyze_iterates(
            model,
            x_true,
            y,
            iterates=list(iterates),
            top_k=top_k,
            trace=True,
            trace_max_matvecs=int(options.get("trace_max_matvecs", 100)),
            trace_rtol=options.get("trace_rtol", 0.02),
            backend=backend,
            seed=seed,
        )
        dens = None
        if density_k is not None:
            dens = analyze_iterates(
                model,
                x_true,
                y,
                iterates=[int(density_k)],
                top_k=0,
                trace=False,
                density=True,
                density_runs=int(options.get("density_runs", 4)),
                density_steps=int(options.get("density_steps", 30)),
                backend=res.backend,
                seed=seed,
            )
    lam_k, lam_m, lam_s = res.series("lambda_max")
    tr_k, tr_m, tr_s = res.series("trace")
    # the spread over samples estimates the sampling error; with few samples add each sample's own
    # Monte-Carlo error: se^2 = se_spread^2 + mean_b(s_b^2) / B
    tr_s = list(tr_s)
    for i, k in enumerate(tr_k):
        own = [sc.trace.stderr for sc in res.at(int(k)) if sc.trace is not None]
        if own:
            spread = tr_s[i] if np.isfinite(tr_s[i]) else 0.0
            tr_s[i] = math.sqrt(spread**2 + float(np.mean(np.square(own))) / len(own))
    eigs = []
    for k in iterates:
        summ = res.summary(int(k))
        names = ["lambda_max"] + [f"lambda_{i}" for i in range(2, top_k + 1)]
        eigs.append([summ[nm].mean for nm in names if nm in summ])
    densities = []
    if dens is not None:
        runs = [sc.density for sc in dens.samples if sc.density is not None]
        if runs:
            nodes = np.concatenate([np.atleast_2d(np.asarray(d.nodes, dtype=np.float64)) for d in runs])
            weights = np.concatenate([np.atleast_2d(np.asarray(d.weights, dtype=np.float64)) for d in runs])
            densities.append(_density_on_grid(nodes, weights, int(density_k), density_points))
    unconverged = [
        {"k": int(sc.k), "sample": int(sc.sample), "quantity": name, "reason": r.reason}
        for sc in res.samples
        for name, r in (("eigenvalues", sc.top), ("trace", sc.trace))
        if r is not None and not r.converged
    ]
    if dens is not None:
        unconverged += [
            {"k": int(sc.k), "sample": int(sc.sample), "quantity": "density", "reason": sc.density.reason}
            for sc in dens.samples
            if sc.density is not None and not sc.density.converged
        ]
    return {
        "lambda_max": {"mean": list(lam_m), "stderr": list(lam_s)},
        "trace": {"mean": list(tr_m), "stderr": list(tr_s)},
        "eigenvalues": eigs,
        "densities": densities,
        "converged": not unconverged,
        "unconverged": unconverged,
        "analysis": res.to_dict(),
        "density_analysis": None if dens is None else dens.to_dict(),
        "n_matvecs": int(
            sum(
                (sc.top.n_matvecs if sc.top else 0) + (sc.trace.n_matvecs if sc.trace else 0)
                for sc in res.samples
            )
        ),
        "method": "landscape.curvature.analyze_iterates: Lanczos (top eigenvalues), Hutch++ (trace), "
        "SLQ (density)",
    }


def curvature_along_path(
    model: torch.nn.Module,
    y: torch.Tensor,
    x_true: torch.Tensor,
    iterates: Sequence[int],
    *,
    top_k: int = 5,
    density_k: int | None = 0,
    density_points: int = 200,
    dense_max: int = 256,
    backend: str = "auto",
    seed: int = 0,
    **options: Any,
) -> dict[str, Any]:
    r"""Top eigenvalues, trace and spectral density of :math:`H_k = \nabla^2_{x_k} L_k` for each ``k``
    and each sample, summarised as mean ± standard error over the samples.

    * ``n <= dense_max``: exact — every sample's Hessian densely (``n`` Hessian-vector products in one
      block vectorised over samples and columns), eigenvalues by ``eigh``, trace exact, density the
      Gaussian-broadened eigenvalues;
    * otherwise: :func:`landscape.curvature.analyze_iterates` (Lanczos for the top eigenvalues, Hutch++
      for the trace with its standard error, SLQ for the density at ``density_k``); ``options`` may set
      ``trace_max_matvecs``, ``trace_rtol``, ``density_runs``, ``density_steps``.

    ``backend='auto'`` times the HVP backends once and keeps the fastest.  Returns the summary the
    figures read: ``iterates``, ``lambda_max``/``trace`` (``mean``, ``stderr`` lists), ``eigenvalues``
    (mean top-``top_k`` per iterate), ``density`` (at ``density_k``) and the raw numbers.
    """
    from landscape.curvature.operators import prepare_model
    from landscape.curvature.slices import derive_seed

    t0 = time.perf_counter()
    model = prepare_model(model, torch.float64 if y.dtype == torch.float64 else None)
    dt = model.step_rho.dtype
    y, x_true = y.to(dt), x_true.to(dt)
    iterates = [int(k) for k in iterates]
    n = math.prod(tuple(x_true.shape[1:]))
    choice = None
    if backend == "auto":
        g = torch.Generator().manual_seed(derive_seed(seed, "backend"))
        choice = _pick_backend(model, y, x_true, iterates[0], 0.3, g)
        backend = choice["backend"]
    if density_k is not None and density_k not in iterates:
        density_k = min(iterates, key=lambda k: abs(k - density_k))
    if n <= dense_max:
        out = _dense_curvature(
            model,
            y,
            x_true,
            iterates,
            top_k=top_k,
            density_k=density_k,
            density_points=density_points,
            backend=backend,
        )
        engine = "dense"
    else:
        out = _estimated_curvature(
            model,
            y,
            x_true,
            iterates,
            top_k=top_k,
            density_k=density_k,
            density_points=density_points,
            backend=backend,
            seed=seed,
            options=options,
        )
        engine = "analyze_iterates"
    dens = out.pop("densities")
    return {
        "source": "landscape.report.curvature_along_path",
        "engine": engine,
        "iterates": iterates,
        **out,
        "density": dens[0] if dens else None,
        "n_samples": int(y.shape[0]),
        "dim": int(n),
        "backend": backend,
        "backend_choice": choice,
        "wall_time": time.perf_counter() - t0,
        "settings": {
            "top_k": top_k,
            "density_k": density_k,
            "density_points": density_points,
            "dense_max": dense_max,
            "seed": seed,
            **options,
        },
    }


# -------------------------------------------------------------------------------------------------
# evaluation pieces
# -------------------------------------------------------------------------------------------------
def _robustness(model, physics, y, x, eps: Sequence[float], steps: int, step_size: float, magnitude: bool):
    from landscape.attacks import PGDConfig, pgd_attack
    from landscape.metrics import score

    psnr_mean, psnr_se = [], []
    for e in eps:
        if e == 0:
            with torch.no_grad():
                xh = model(y)
        else:
            cfg = PGDConfig(eps=float(e), steps=steps, step_size=step_size)
            delta = pgd_attack(model, y, x, cfg, project=physics.project_measurement)
            with torch.no_grad():
                xh = model(y + delta)
        p = score(xh, x, magnitude=magnitude)["psnr"].numpy()
        s = _summ(p)
        psnr_mean.append(s["mean"])
        psnr_se.append(s["stderr"])
    return {
        "eps": [float(e) for e in eps],
        "psnr": {"mean": psnr_mean, "stderr": psnr_se},
        "attack": {
            "kind": "l2 pgd on the measurement",
            "steps": steps,
            "step_size": step_size,
            "relative": False,
            "projection": "physics.project_measurement",
        },
    }


def _round(a: np.ndarray) -> list:
    return np.asarray([float(f"{v:.6g}") for v in np.ravel(a)]).reshape(np.shape(a)).tolist()


def _reconstruction(model, physics, y, x, magnitude: bool, sample: int = 0) -> dict[str, Any]:
    from landscape.metrics import display, score

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
def _say(progress: bool | Callable[[str], None], msg: str) -> None:
    if callable(progress):
        progress(msg)
    elif progress:
        print(msg, file=sys.stderr, flush=True)


def analyze_loaded(
    model: torch.nn.Module,
    y: torch.Tensor,
    x: torch.Tensor,
    *,
    iterates: Sequence[int],
    seed: int = 0,
    settings: dict[str, Any] | None = None,
    label: str = "model",
    progress: bool | Callable[[str], None] = False,
) -> dict[str, Any]:
    """Curvature, slices, robustness and a reconstruction for one model (in eval mode) and samples.

    ``model``, ``y`` and ``x`` must share a dtype (float64 recommended).  Returns one checkpoint entry
    of ``analysis.json`` (without the checkpoint's path, config and metrics).
    """
    from landscape.curvature.slices import input_slice, parameter_slice

    s = {**DEFAULTS, **(settings or {})}
    physics = model.physics
    magnitude = getattr(physics, "name", "") == "mri"
    timings: dict[str, float] = {}
    entry: dict[str, Any] = {"label": label}

    t = time.perf_counter()
    _say(progress, f"[{label}] curvature at iterates {list(iterates)}")
    entry["curvature"] = curvature_along_path(
        model,
        y,
        x,
        iterates,
        top_k=s["top_k"],
        density_k=s["density_k"],
        density_points=s["density_points"],
        dense_max=s["dense_max"],
        backend=s["backend"],
        seed=seed,
        trace_max_matvecs=s["trace_max_matvecs"],
        trace_rtol=s["trace_rtol"],
        density_runs=s["density_runs"],
        density_steps=s["density_steps"],
    )
    timings["curvature"] = time.perf_counter() - t

    t = time.perf_counter()
    k = min(int(s["slice_k"]), model.n_iter)
    _say(progress, f"[{label}] input slice at k={k} ({s['slice_n']}x{s['slice_n']})")
    sl = input_slice(
        model,
        y[:1],
        x[:1],
        k,
        kinds=tuple(s["slice_kinds"]),
        n=int(s["slice_n"]),
        span=float(s["slice_span"]),
        seed=seed,
        sample=0,
        memory_mb=float(s["memory_mb"]),
        keep_vectors=False,
    )
    slices = {"input": sl.to_dict()}
    timings["input_slice"] = time.perf_counter() - t
    if int(s["param_slice_n"]) > 0:
        t = time.perf_counter()
        _say(progress, f"[{label}] parameter slice ({s['param_slice_n']}x{s['param_slice_n']})")
        ps = parameter_slice(
            model,
            y,
            x,
            n=int(s["param_slice_n"]),
            span=float(s["param_slice_span"]),
            seed=seed,
            memory_mb=float(s["memory_mb"]),
        )
        slices["parameter"] = ps.to_dict()
        timings["parameter_slice"] = time.perf_counter() - t
    entry["slices"] = slices

    if s["eps"]:
        t = time.perf_counter()
        _say(progress, f"[{label}] robustness (PGD, eps={list(s['eps'])})")
        entry["robustness"] = _robustness(
            model, physics, y, x, s["eps"], int(s["pgd_steps"]), float(s["pgd_step_size"]), magnitude
        )
        timings["robustness"] = time.perf_counter() - t
    entry["reconstruction"] = _reconstruction(model, physics, y, x, magnitude)
    entry["timings"] = timings
    return entry


def _versions() -> dict[str, str]:
    import platform

    from landscape import __version__

    return {
        "landscape": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def analyze_checkpoints(
    paths: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    samples: int = 4,
    iterates: str | Sequence[int] | None = "all",
    seed: int = 0,
    progress: bool | Callable[[str], None] = True,
    write_html: bool = True,
    threads: int | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Analyse every checkpoint, write ``out_dir/analysis.json`` and ``out_dir/report.html``.

    Args:
        paths: checkpoint files or run directories (``load_checkpoint``).
        out_dir: output folder (created).
        samples: number of test samples (``task.pairs(samples, split, seed=config['test_seed'])``, the same
            samples for every checkpoint of a task).
        iterates: ``"all"`` (0..K), ``"0,3,5"`` or a list of ints.
        seed: seeds the slice directions (identical for every checkpoint), Lanczos starts and probes.
        progress: print one line per step on stderr (or call ``progress(msg)``).
        write_html: also write ``report.html`` (needs plotly).
        threads: torch CPU threads for the analysis (restored afterwards); ``None`` leaves the setting
            alone.  The models are small, so on shared or busy cores 1 thread is often fastest.
        overrides: any key of :data:`DEFAULTS`.

    Returns:
        The analysis record (what ``analysis.json`` holds), with ``files`` naming the written files.
    """
    prev = torch.get_num_threads()
    if threads is not None:
        check_positive_int(threads, "threads")
        torch.set_num_threads(threads)
    try:
        return _analyze_checkpoints(
            paths,
            out_dir,
            samples=samples,
            iterates=iterates,
            seed=seed,
            progress=progress,
            write_html=write_html,
            **overrides,
        )
    finally:
        torch.set_num_threads(prev)


def _analyze_checkpoints(
    paths: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    samples: int,
    iterates: str | Sequence[int] | None,
    seed: int,
    progress: bool | Callable[[str], None],
    write_html: bool,
    **overrides: Any,
) -> dict[str, Any]:
    from landscape.checkpoint import load_checkpoint
    from landscape.io import write_json

    check(len(paths) > 0, "no checkpoints given: expected at least one path")
    check_positive_int(samples, "samples")
    unknown = sorted(set(overrides) - set(DEFAULTS))
    check(not unknown, f"unknown analysis settings {unknown}: expected keys of {sorted(DEFAULTS)}")
    settings = {**DEFAULTS, **overrides}
    dtype = getattr(torch, str(settings["dtype"]))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    entries = []
    labels_seen: dict[str, int] = {}
    resolved_iterates: list[int] | None = None
    for path in paths:
        t0 = time.perf_counter()
        ck = load_checkpoint(path)
        model = ck.model.to(dtype).eval()
        model.requires_grad_(False)
        ks = parse_iterates(iterates, model.n_iter)
        resolved_iterates = ks
        test_seed = int(ck.config.get("test_seed", ck.config.get("seed", 0)))
        pairs = ck.task.pairs(samples, split=settings["split"], seed=test_seed, dtype=dtype)
        label = ck.name
        if label in labels_seen:
            labels_seen[label] += 1
            label = f"{label} ({Path(ck.path).parent.name or labels_seen[label]})"
        else:
            labels_seen[label] = 1
        entry = analyze_loaded(
            model, pairs.y, pairs.x, iterates=ks, seed=seed, settings=settings, label=label, progress=progress
        )
        entry.update(
            {
                "path": str(ck.path),
                "task": ck.task.config(),
                "strategy": ck.config.get("strategy"),
                "model": model.config(),
                "metrics": ck.metrics,
                "test_seed": test_seed,
                "wall_time": time.perf_counter() - t0,
            }
        )
        entries.append(entry)
    record = {
        "format": FORMAT,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(),
        "settings": {
            **{k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.items()},
            "samples": int(samples),
            "iterates": resolved_iterates,
            "seed": int(seed),
            "threads": torch.get_num_threads(),
            "loss": "L_k(x_k) = ||Phi_{k->K}(x_k; y, theta) - x*||^2, sum over entries, one sample",
            "test_data": "task.pairs(samples, split, seed=checkpoint config test_seed)",
        },
        "checkpoints": entries,
        "wall_time": time.perf_counter() - t_all,
    }
    json_path = write_json(out / "analysis.json", record)
    files = {"analysis": str(json_path)}
    if write_html:
        t = time.perf_counter()
        html_path = write_report(record, out / "report.html")
        files["report"] = str(html_path)
        record["report_time"] = time.perf_counter() - t
    record["files"] = files
    _say(progress, f"analysis written to {json_path}" + (f" and {files.get('report')}" if write_html else ""))
    return record


def load_analysis(path: str | os.PathLike) -> dict[str, Any]:
    """Read ``analysis.json`` (a file, or the folder holding it)."""
    p = Path(path)
    if p.is_dir():
        p = p / "analysis.json"
    with open(p, encoding="utf-8") as fh:
        d = json.load(fh)
    check(d.get("format") == FORMAT, f"{p} is not a landscape analysis (format={d.get('format')!r})")
    return d


# -------------------------------------------------------------------------------------------------
# the report
# -------------------------------------------------------------------------------------------------
def unconverged_note(entries: Sequence[dict[str, Any]]) -> str:
    """A caption sentence listing the estimates that did not converge ('' when all did)."""
    parts = []
    for e in entries:
        bad = (e.get("curvature") or {}).get("unconverged") or []
        if bad:
            where = ", ".join(sorted({f"{b['quantity']} at k={b['k']}" for b in bad}))
            parts.append(f"{e.get('label', '?')}: {len(bad)} estimate(s) UNCONVERGED ({where}; {bad[0]['reason']})")
    return (" Warning — these numbers did not converge and are not to be trusted: " + "; ".join(parts) + ".") if parts else ""


def report_sections(analysis: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's sections, each ``{"id", "title", "figure", "caption"}``, built from the JSON alone."""
    from landscape import figures as F

    entries = analysis.get("checkpoints", [])
    st = analysis.get("settings", {})
    labels = [e.get("label", f"#{i}") for i, e in enumerate(entries)]
    secs: list[dict[str, Any]] = []

    def add(sid: str, title: str, build: Callable[[], Any], caption: str) -> None:
        try:
            fig = build()
        except (ValueError, KeyError, TypeError, IndexError) as exc:  # missing data: say so, keep going
            fig = None
            caption = f"{caption} (not available: {exc})"
        secs.append({"id": sid, "title": title, "figure": fig, "caption": caption})

    n = st.get("samples", "?")
    flagged = unconverged_note(entries)
    if any(e.get("curvature") for e in entries):
        add(
            "lambda-max",
            "Largest eigenvalue of H_k along the path",
            lambda: F.curvature_figure(entries, "lambda_max"),
            f"λ_max of the Hessian of L_k(x_k) = ‖Φ_k→K(x_k) − x*‖² with respect to the iterate x_k, "
            f"at each iterate k, averaged over {n} test samples (error bars: standard error over samples). "
            "Lower means the remaining unrolled steps are less sensitive to a perturbation of x_k in its "
            "worst direction." + flagged,
        )
        add(
            "trace",
            "Trace of H_k along the path",
            lambda: F.curvature_figure(entries, "trace"),
            "tr(H_k), the total curvature of L_k at x_k (exact from dense Hessians in small dimension, "
            "Hutch++ otherwise); error bars are standard errors over samples. The small-noise expansion of "
            "the jittered loss penalises exactly these traces." + flagged,
        )
        add(
            "ladder",
            "Eigenvalue ladders",
            lambda: F.eigenvalue_ladder_figure(entries),
            f"The top {st.get('top_k', '')} eigenvalues of H_k at each iterate (mean over samples), one "
            "colour per checkpoint: how many stiff directions there are and how far they stand above the "
            "rest.",
        )
        add(
            "density",
            "Spectral density",
            lambda: F.density_figure(entries),
            f"Spectral density of H_k at k = {st.get('density_k')}: Gaussian-broadened eigenvalues (exact in "
            "small dimension, stochastic Lanczos quadrature otherwise), averaged over samples, log-scale "
            "density: the bulk near zero and the outliers that set λ_max.",
        )
    input_slices = [e["slices"]["input"] for e in entries if e.get("slices", {}).get("input")]
    if input_slices:
        k = input_slices[0].get("k")
        kinds = ", ".join(d.get("kind", "?") for d in input_slices[0].get("directions", []))
        add(
            "slices",
            "Loss slices around x_k, side by side",
            lambda: F.slices_side_by_side_figure(input_slices, labels[: len(input_slices)], log=True),
            f"log10 L_k on the plane x_k + α d₁ + β d₂ at k = {k}, sample 0, directions {kinds} scaled to "
            f"‖x_k‖ and drawn from seed {st.get('seed')} (the same draws for every checkpoint), one colour "
            "scale for all panels; the cross marks x_k. Wider low basins mean flatter in iterate space.",
        )
        add(
            "surface",
            "Loss surface around x_k",
            lambda: F.slice_surface_figure(
                input_slices[0], title=f"{labels[0]}: L_k around x_k, k = {k}", log=True
            ),
            f"The first checkpoint's slice ({labels[0]}) as a 3-D surface of log10 L_k.",
        )
    param_slices = [e["slices"]["parameter"] for e in entries if e.get("slices", {}).get("parameter")]
    if param_slices:
        add(
            "parameter-slices",
            "Training loss around θ (filter-normalised)",
            lambda: F.slices_side_by_side_figure(
                param_slices, labels[: len(param_slices)], log=True, title="training loss around θ"
            ),
            "For comparison, log10 of the training loss (mean over the samples of ‖f_θ(y) − x*‖²) on the "
            "plane θ + α δ₁ + β δ₂ with filter-normalised random directions (Li et al., 2018; biases held "
            "fixed): flatness in parameter space, which is not what SGD jittering targets.",
        )
    if any(e.get("robustness") for e in entries):
        r0 = next(e["robustness"] for e in entries if e.get("robustness"))
        add(
            "robustness",
            "Robustness to measurement attacks",
            lambda: F.robustness_figure(entries),
            f"PSNR (dB) of the reconstruction under an ℓ2 PGD attack on the measurement of radius ε "
            f"({r0['attack']['steps']} steps of normalised-gradient ascent), mean ± standard error over {n} "
            "samples; ε = 0 is the clean accuracy.",
        )
    if any(e.get("reconstruction") for e in entries):
        add(
            "reconstructions",
            "Reconstructions",
            lambda: F.reconstruction_figure(entries),
            "One test sample (sample 0): the truth, each checkpoint's reconstruction x̂ = x_K (PSNR in the "
            "legend or title) and the error, on the display signal (magnitude for MRI).",
        )
    return secs


_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0 auto;max-width:1200px;
padding:1em 2em;color:#222}
h1{font-size:1.6em;margin-bottom:.2em} h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
p.caption{color:#444;max-width:60em;line-height:1.4} table{border-collapse:collapse;font-size:.9em}
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left} code{background:#f4f4f4;padding:0 .2em}
.missing{color:#a00}
"""

_URL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.I)


def _summary_table(analysis: dict[str, Any]) -> str:
    rows = []
    for e in analysis.get("checkpoints", []):
        m = e.get("metrics") or {}
        c = e.get("curvature") or {}
        lam = (c.get("lambda_max") or {}).get("mean") or []
        tr = (c.get("trace") or {}).get("mean") or []
        task = (e.get("task") or {}).get("name", "")

        def fmt(v: Any) -> str:
            return f"{v:.4g}" if isinstance(v, (int, float)) and math.isfinite(v) else "–"

        psnr = None
        for src in (m, m.get("final") if isinstance(m.get("final"), dict) else {}):
            for key in ("test_psnr", "psnr", "val_psnr"):
                if psnr is None and isinstance(src.get(key), (int, float)):
                    psnr = src[key]
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(v))}</td>"
                for v in (
                    e.get("label", ""),
                    task,
                    e.get("path", ""),
                    fmt(psnr),
                    fmt(max(lam) if lam else None),
                    fmt(max(tr) if tr else None),
                    fmt(e.get("wall_time")),
                    "yes" if c.get("converged", True) else f"NO: {len(c.get('unconverged', []))} unconverged",
                )
            )
            + "</tr>"
        )
    head = (
        "<tr><th>checkpoint</th><th>task</th><th>path</th><th>PSNR (training metrics)</th>"
        "<th>max_k λ_max</th>"
        "<th>max_k tr H_k</th><th>analysis time (s)</th><th>estimates converged</th></tr>"
    )
    return f"<table>{head}{''.join(rows)}</table>"


def render_page(title: str, sections: Sequence[dict[str, Any]], *, intro_html: str = "") -> str:
    """A self-contained HTML page: plotly.js embedded once, one ``<section>`` per entry of ``sections``
    (``{"id", "title", "figure" (a Figure or None), "caption"}``), no request to any host."""
    import plotly.offline

    parts = []
    for s in sections:
        parts.append(f'<section id="{html.escape(s["id"])}"><h2>{html.escape(s["title"])}</h2>')
        if s["figure"] is not None:
            div = s["figure"].to_html(
                full_html=False,
                include_plotlyjs=False,
                include_mathjax=False,
                div_id=f"fig-{s['id']}",
                config={"displaylogo": False, "responsive": True},
            )
            if _URL.search(div):
                raise ValueError(f"figure {s['id']!r} would load something from a network host")
            parts.append(div)
        else:
            parts.append('<p class="missing">(no figure)</p>')
        parts.append(f'<p class="caption">{html.escape(s["caption"])}</p></section>')
    js = plotly.offline.get_plotlyjs()
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>{_CSS}</style>
<script type="text/javascript">{js}</script>
</head>
<body>
<h1>{html.escape(title)}</h1>
{intro_html}
{"".join(parts)}
</body>
</html>
"""


def render_report(analysis: dict[str, Any], *, title: str = "landscape analysis") -> str:
    """One self-contained HTML page (plotly.js embedded once, no external request) from the analysis JSON."""
    st = analysis.get("settings", {})
    settings_txt = html.escape(
        json.dumps(
            {
                k: st.get(k)
                for k in (
                    "samples",
                    "split",
                    "iterates",
                    "seed",
                    "dtype",
                    "top_k",
                    "dense_max",
                    "trace_max_matvecs",
                    "density_k",
                    "slice_k",
                    "slice_n",
                    "slice_span",
                    "eps",
                    "loss",
                )
            },
            indent=1,
        )
    )
    intro = (
        f"<p>Created {html.escape(str(analysis.get('created', '')))} by landscape "
        f"{html.escape(str(analysis.get('versions', {}).get('landscape', '')))}. Every number below is in "
        "<code>analysis.json</code> beside this page; the page needs no network connection.</p>\n"
        f"{_summary_table(analysis)}\n<details><summary>settings</summary><pre>{settings_txt}</pre></details>"
    )
    return render_page(title, report_sections(analysis), intro_html=intro)


def slice_sections(s: dict[str, Any], *, log: bool = False) -> list[dict[str, Any]]:
    """Sections of a single-slice page: the contour (or line) and, for 2-D slices, the surface."""
    from landscape import figures as F

    kinds = ", ".join(d.get("kind", "?") for d in s.get("directions", []))
    where = "θ (training loss)" if s.get("space") == "parameter" else f"x_k, k = {s.get('k')}"
    cap = (
        f"{'log10 ' if log else ''}loss on the {'line' if len(s['coords']) == 1 else 'plane'} "
        f"through {where} "
        f"along {kinds} directions (seed {s.get('seed')}); loss at the centre {s.get('center_value')}. "
        f"{s.get('n_evals')} points, {s.get('method')} evaluation in chunks of {s.get('chunk_size')}."
    )
    secs = [{"id": "slice", "title": "Slice", "figure": F.slice_contour_figure(s, log=log), "caption": cap}]
    if len(s["coords"]) == 2:
        secs.append(
            {
                "id": "surface",
                "title": "Surface",
                "figure": F.slice_surface_figure(s, log=log),
                "caption": "The same slice as a 3-D surface.",
            }
        )
    return secs


def write_report(analysis: dict[str, Any], path: str | os.PathLike, **kwargs: Any) -> Path:
    """Render :func:`render_report` and write it atomically to ``path``."""
    from landscape.io import write_text

    return write_text(path, render_report(analysis, **kwargs))
