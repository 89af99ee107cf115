r"""The analysis of trained checkpoints: curvature along the unrolled path, slices, robustness.

:func:`analyze_checkpoints` loads every checkpoint, draws the same test samples for each (the run's
``test_seed``), and computes, per checkpoint:

* curvature of :math:`L_k(x_k) = \|\Phi_{k\to K}(x_k) - x^*\|^2` at each requested iterate ``k``: top
  eigenvalues, trace (with standard errors) and the spectral density of :math:`H_k`;
* a 2-D slice of :math:`L_k` around :math:`x_k` along two seeded random directions (the same draws for
  every checkpoint) and a 2-D slice of the training loss around θ along filter-normalised directions;
* a robustness curve (PSNR under ℓ2 PGD on the measurement against ε) and one reconstruction.

It writes ``analysis.json`` (every number, setting and seed) and, through :mod:`landscape.report`,
``report.html``.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from landscape.curvature.analysis import parse_iterates
from landscape.errors import check, check_positive_int
from landscape.io import check_writable, json_safe, write_group
from landscape.report import FORMAT, render_report

__all__ = [
    "FORMAT",
    "DEFAULTS",
    "parse_iterates",
    "analyze_checkpoints",
    "analyze_loaded",
    "curvature_along_path",
]


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


def _pick_backend(
    model, y, x_true, k: int, budget_s: float, generator: torch.Generator, expected_products: int
) -> dict[str, Any]:
    """Time the HVP backends on this model once (blocks of 8 products).  Build time counts, spread over
    ``expected_products`` (each iterate builds a new operator), so ``linearize``'s re-trace is priced in."""
    from landscape.curvature.backends import select_backend
    from landscape.curvature.operators import iterate_loss, iterates_of

    x_k = iterates_of(model, y)[k]
    shape = tuple(x_k.shape)

    def f(xf: torch.Tensor) -> torch.Tensor:
        return iterate_loss(model, xf.view(shape), y, x_true, k).sum()

    choice = select_backend(
        f,
        x_k.reshape(-1),
        budget_s=budget_s,
        batched=True,
        expected_products=expected_products,
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
        products = n * y.shape[0] if n <= dense_max else int(options.get("trace_max_matvecs", 100))
        choice = _pick_backend(model, y, x_true, iterates[0], 0.3, g, max(products, 1))
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
        "source": "landscape.analyze.curvature_along_path",
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

    check(len(paths) > 0, "no checkpoints given: expected at least one path")
    check_positive_int(samples, "samples")
    unknown = sorted(set(overrides) - set(DEFAULTS))
    check(not unknown, f"unknown analysis settings {unknown}: expected keys of {sorted(DEFAULTS)}")
    settings = {**DEFAULTS, **overrides}
    dtype = getattr(torch, str(settings["dtype"]))
    out = Path(out_dir)
    check(not out.exists() or out.is_dir(), f"--out {out}: exists and is not a directory")
    check_writable(out / "analysis.json", what="--out", create=False)  # fail now, not after the analysis
    from landscape.checkpoint import resolve_checkpoint_path, run_files
    from landscape.io import check_distinct

    check_distinct([out / "analysis.json", out / "report.html"],
                   [f for p in paths for f in run_files(resolve_checkpoint_path(p))])
    loaded = [load_checkpoint(p) for p in paths]  # every input and setting checked before any work
    for ck in loaded:
        K = ck.model.n_iter
        parse_iterates(iterates, K)
        for key in ("slice_k", "density_k"):
            v = settings.get(key)
            check(v is None or (isinstance(v, int) and 0 <= v <= K),
                  f"--{key.replace('_', '-')} {v}: expected an iterate 0..K with K={K} ({ck.path})")
    t_all = time.perf_counter()
    entries = []
    labels_seen: dict[str, int] = {}
    resolved_iterates: list[int] | None = None
    for ck in loaded:
        t0 = time.perf_counter()
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
    # both files rendered first, then made visible together (io.write_group: a manifest written last)
    json_path = out / "analysis.json"
    files = {"analysis": str(json_path)}
    group = {json_path: json.dumps(json_safe(record), indent=2, allow_nan=False) + "\n"}
    if write_html:
        t = time.perf_counter()
        html_path = out / "report.html"
        group[html_path] = render_report(record)
        files["report"] = str(html_path)
        record["report_time"] = time.perf_counter() - t
    out.mkdir(parents=True, exist_ok=True)
    write_group(group)
    record["files"] = files
    _say(progress, f"analysis written to {json_path}" + (f" and {files.get('report')}" if write_html else ""))
    return record
