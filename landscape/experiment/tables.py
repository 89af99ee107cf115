"""The tables, pages and figures of an experiment, pure functions of its record (``results.json``):
:func:`build_tables` (seed-level means and t-intervals, :func:`t_interval`), :func:`results_markdown`
(``results.md``), :func:`results_html` (``report.html``) and :func:`figure_sections`."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from landscape.curvature import IterateCurvature
from landscape.experiment.plan import MAIN, _fmt_sigma, main_activation, main_sigma
from landscape.io import from_json_float
from landscape.stats import seed_interval
from landscape.viz import figures
from landscape.viz.claims_report import claims_sections
from landscape.viz.page import render_page

__all__ = [
    "PAPER_NUMBERS",
    "t_interval",
    "stop_reason",
    "build_tables",
    "results_markdown",
    "curvature_note",
    "pattern_paragraph",
    "results_html",
    "figure_sections",
]

#: The paper's Table numbers (PSNR dB: ID / adversarial / OOD), for the same rows (arXiv 2410.14667).
PAPER_NUMBERS: dict[str, dict[str, tuple[float, float, float]]] = {
    "seismic": {
        "mse": (34.64, 28.85, 34.57),
        "adversarial": (33.50, 30.27, 33.45),
        "input-jitter": (32.92, 30.10, 32.91),
        "sgd-jitter": (35.10, 29.89, 34.93),
    },
    "mri": {
        "mse": (28.21, 25.68, 29.92),
        "adversarial": (27.68, 27.17, 27.74),
        "input-jitter": (28.18, 25.05, 29.97),
        "sgd-jitter": (28.22, 26.77, 30.36),
    },
}


# -------------------------------------------------------------------------------------------------
# statistics
# -------------------------------------------------------------------------------------------------
def t_interval(values: Sequence[float], level: float = 0.95) -> dict[str, Any]:
    """Mean and the ``level`` seed-level t interval (:func:`landscape.stats.seed_interval`, n − 1 df) of per-seed
    ``values``, as a table cell (NaN half-width for fewer than two seeds).  A missing (None / NaN) value is
    left out and counted in ``dropped``, so a cell never silently averages a failed run."""
    v = [x for x in map(from_json_float, values) if math.isfinite(x)]
    n = len(v)
    dropped = len(list(values)) - n
    if n == 0:
        return {"mean": math.nan, "half": math.nan, "n": 0, "values": [], "dropped": dropped}
    iv = seed_interval(v, level)
    mean = float(np.mean(v))
    half = math.nan if iv is None else iv.high - iv.estimate
    return {
        "mean": mean,
        "half": half,
        "lo": mean - half,
        "hi": mean + half,
        "n": n,
        "values": v,
        "dropped": dropped,
        "method": "t over seeds" if iv is None else f"{iv.method} over seeds",
    }


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


def stop_reason(run: dict[str, Any]) -> str:
    """How a run of the record ended: ``plateau``, ``budget``, or ``diverged`` (its last validation PSNR below
    its initial model's: a failed run, whichever rule stopped it); ``?`` for a run that did not record it."""
    st = run.get("stopping") or {}
    return "diverged" if st.get("diverged") else str(st.get("reason", "?"))


def _label(arch: str, strat: str) -> str:
    names = {
        "mse": "MSE",
        "input-jitter": "input jitter",
        "adversarial": "adversarial (AT)",
        "sgd-jitter": "SGD jitter",
        "spgd-jitter": "SPGD jitter",
        "curvature-penalty": "explicit penalty",
    }
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


# -------------------------------------------------------------------------------------------------
# tables
# -------------------------------------------------------------------------------------------------
def _seed_means(rs: Sequence[dict[str, Any]], key: str, metric: str) -> list[float]:
    return [float(_metric(r, key, metric).mean()) for r in rs]


def _paired(
    rs: Sequence[dict[str, Any]], refs: Sequence[dict[str, Any]], key: str, metric: str
) -> dict[str, Any]:
    """Per seed, the mean over the same test samples of (run − its reference of the same seed), over seeds."""
    by = {r["seed"]: r for r in refs}
    d = [
        float((_metric(r, key, metric) - _metric(by[r["seed"]], key, metric)).mean())
        for r in rs
        if r["seed"] in by
    ]
    return t_interval(d)


def _trace_ratio(rs: Sequence[dict[str, Any]], refs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return t_interval([r["sum_trace"] / b["sum_trace"] for r in rs for b in refs if b["seed"] == r["seed"]])


def _main_runs(runs: dict[str, dict[str, Any]], arch: str, strat: str) -> list[dict[str, Any]]:
    """The main study's runs of one architecture and strategy, in the record's order."""
    return [r for r in runs.values() if r["study"] == "main" and r["arch"] == arch and r["strategy"] == strat]


def _main_tables(
    runs: dict[str, dict[str, Any]], cols: list[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The main table's rows (every column, per metric) and the paired differences of each row to MSE."""
    main, paired = [], []
    for arch, strat in (*MAIN, ("gd", "curvature-penalty")):  # the explicit-penalty study's, if run
        rs = sorted(_main_runs(runs, arch, strat), key=lambda r: r["seed"])
        if not rs:
            continue
        main.append(
            {
                "label": _label(arch, strat),
                "arch": arch,
                "strategy": strat,
                "n_seeds": len(rs),
                "cells": {c: {m: t_interval(_seed_means(rs, c, m)) for m in ("psnr", "ssim")} for c in cols},
                "sum_trace": t_interval([r["sum_trace"] for r in rs]),
                "stopping": [stop_reason(r) for r in rs],
                "epochs": [r["epochs"] for r in rs],
            }
        )
        mse = _main_runs(runs, arch, "mse")
        if strat != "mse" and mse:
            paired.append(
                {
                    "label": _label(arch, strat),
                    "vs": _label(arch, "mse"),
                    "cells": {c: {m: _paired(rs, mse, c, m) for m in ("psnr", "ssim")} for c in cols},
                    "trace_ratio": _trace_ratio(rs, mse),
                }
            )
    return main, paired


def _summary_row(
    label: str,
    rs: Sequence[dict[str, Any]],
    refs: Sequence[dict[str, Any]] | None,
    *,
    pgd_key: str | None,
    ood_keys: list[str],
) -> dict[str, Any]:
    """One row of a study's table: ID, mean OOD and middle-ε PGD PSNR, Σ tr H, and the paired differences
    to ``refs`` (the same seeds) when given."""
    row: dict[str, Any] = {
        "label": label,
        "n_seeds": len(rs),
        "id": t_interval(_seed_means(rs, "id", "psnr")),
        "ood": t_interval([float(np.mean([_metric(r, k, "psnr").mean() for k in ood_keys])) for r in rs])
        if ood_keys
        else None,
        "pgd": t_interval(_seed_means(rs, pgd_key, "psnr")) if pgd_key else None,
        "sum_trace": t_interval([r["sum_trace"] for r in rs]),
        "stopping": [stop_reason(r) for r in rs],
    }
    if refs:
        row["d_id"] = _paired(rs, refs, "id", "psnr")
        if ood_keys:
            by = {r["seed"]: r for r in refs}
            row["d_ood"] = t_interval(
                [
                    float(
                        np.mean(
                            [
                                (_metric(r, k, "psnr") - _metric(by[r["seed"]], k, "psnr")).mean()
                                for k in ood_keys
                            ]
                        )
                    )
                    for r in rs
                    if r["seed"] in by
                ]
            )
        if pgd_key:
            row["d_pgd"] = _paired(rs, refs, pgd_key, "psnr")
        row["trace_ratio"] = _trace_ratio(rs, refs)
    return row


#: :func:`_summary_row` with the columns bound: ``summary(label, runs, refs)``
_Summary = Callable[..., dict[str, Any]]


def _sigma_rows(
    record: dict[str, Any], summary: _Summary, mse_gd: list[dict[str, Any]], sgd_gd: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The σ sweep: MSE as σ = 0, each σ trained, and the main sgd-jitter runs as a point of the sweep."""
    sig = _groups(record, "sigma")
    if not sig:
        return []
    rows = [{**summary("σ = 0 (MSE)", mse_gd, None), "sigma": 0.0}]
    points = [(float(variant), f"σ = {variant}", rs) for (variant, _), rs in sig.items()]
    s0 = main_sigma(record["task"], record["preset"])  # the main sgd-jitter runs are a point of the sweep
    if sgd_gd and not any(math.isclose(v, s0) for v, _, _ in points):
        points.append((s0, f"σ = {_fmt_sigma(s0)} (the main runs)", sgd_gd))
    for v, label, rs in sorted(points, key=lambda p: p[0]):
        rows.append({**summary(label, rs, mse_gd), "sigma": v})
    return rows


def _activation_rows(
    record: dict[str, Any], summary: _Summary, mse_gd: list[dict[str, Any]], sgd_gd: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """SGD jitter against MSE per activation; the main runs are the row of their own activation."""
    act = _groups(record, "activation")
    rows = []
    if act:  # the main runs are the study's row for their own activation (not trained twice)
        a0 = main_activation(record["task"], record["preset"])
        rows.append({**summary(f"{a0} (the main runs): SGD jitter vs MSE", sgd_gd, mse_gd), "activation": a0})
    for a in sorted({v for v, _ in act}):
        m, s = act.get((a, "gd:mse"), []), act.get((a, "gd:sgd-jitter"), [])
        if m and s:
            rows.append({**summary(f"{a}: SGD jitter vs MSE", s, m), "activation": a})
    return rows


def _ablation_rows(
    record: dict[str, Any], summary: _Summary, mse_gd: list[dict[str, Any]], sgd_gd: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The mechanism ablations, each against its own MSE (trained the same way) or the main MSE."""
    abl = _groups(record, "ablation")
    rows = []
    if abl:
        rows.append(
            {
                **summary("reference: SGD jitter vs MSE (learned η, all steps, paper rule)", sgd_gd, mse_gd),
                "variant": "main",
            }
        )
    for variant in ("fixed-step", "small-fixed", "fresh-noise"):
        m, s = abl.get((variant, "gd:mse"), []), abl.get((variant, "gd:sgd-jitter"), [])
        if m and s:
            rows.append({**summary(f"{variant}: SGD jitter vs MSE", s, m), "variant": variant})
    for variant in ("no-jitter-last1", "no-jitter-last2", "matched-absolute"):
        s = abl.get((variant, "gd:sgd-jitter"), [])
        if s:
            rows.append({**summary(f"{variant}: SGD jitter vs main MSE", s, mse_gd), "variant": variant})
    return rows


def _over_training(runs: dict[str, dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    over: dict[str, list[dict[str, Any]]] = {}
    for r in runs.values():
        if r.get("over_training"):
            over.setdefault(_label(r["arch"], r["strategy"]), []).append(
                {"seed": r["seed"], "points": r["over_training"]}
            )
    return over


def build_tables(record: dict[str, Any]) -> dict[str, Any]:
    """The numbers of ``results.md``: per study and row, per condition, seed-level means and intervals."""
    cols = _columns(record)
    runs = record["runs"]
    main, paired = _main_tables(runs, cols)
    mse_gd, sgd_gd = _main_runs(runs, "gd", "mse"), _main_runs(runs, "gd", "sgd-jitter")
    pgd_keys = [c for c in cols if c.startswith("pgd:")]
    ood_keys = [c for c in cols if c.startswith("ood:")]
    mid_pgd = pgd_keys[len(pgd_keys) // 2] if pgd_keys else None
    summary = functools.partial(_summary_row, pgd_key=mid_pgd, ood_keys=ood_keys)
    return {
        "columns": cols,
        "main": main,
        "paired": paired,
        "sigma": _sigma_rows(record, summary, mse_gd, sgd_gd),
        "activation": _activation_rows(record, summary, mse_gd, sgd_gd),
        "ablation": _ablation_rows(record, summary, mse_gd, sgd_gd),
        "pgd_key": mid_pgd,
        "ood_keys": ood_keys,
        "over_training": _over_training(runs),
    }


def _ci(t: dict[str, Any] | None, digits: int = 2) -> str:
    if not t or t.get("n", 0) == 0 or not math.isfinite(from_json_float(t.get("mean"))):
        return "–"
    if not math.isfinite(from_json_float(t.get("half"))):
        return f"{t['mean']:.{digits}f}"
    return f"{t['mean']:.{digits}f} ± {t['half']:.{digits}f}"


def _dci(t: dict[str, Any] | None, digits: int = 2) -> str:
    if not t or t.get("n", 0) == 0 or not math.isfinite(from_json_float(t.get("mean"))):
        return "–"
    if not math.isfinite(from_json_float(t.get("half"))):
        return f"{t['mean']:+.{digits}f} (n=1)"
    mark = "" if t["lo"] <= 0 <= t["hi"] else " *"
    return f"{t['mean']:+.{digits}f} [{t['lo']:+.{digits}f}, {t['hi']:+.{digits}f}]{mark}"


def _colname(c: str) -> str:
    if c == "id":
        return "ID"
    kind, _, rest = c.partition(":")
    return {"pgd": f"PGD ε={rest}", "random": f"random ε={rest}", "ood": f"OOD {rest}"}.get(kind, c)


# -------------------------------------------------------------------------------------------------
# results.md
# -------------------------------------------------------------------------------------------------
def results_markdown(record: dict[str, Any]) -> str:
    """``results.md``: the tables in the paper's layout, each saying what its interval is."""
    t = record.get("tables") or build_tables(record)
    lines = [f"# Experiment: {record['task']} ({record['preset']} preset, {record['seeds']} seed(s))", ""]
    lines += _main_lines(record, t)
    lines += _paper_lines(record, t)
    pk = t.get("pgd_key") or "–"
    note = (
        f"PGD column: {_colname(pk) if pk != '–' else pk}; OOD: mean over the shifts. Δ: paired differences "
        "(same test samples, per seed) to the reference named in the row, mean and 95 % t-interval over seeds; "
        "tr ratio: Σ_{k=1}^{K−1} tr H_k of the row over its reference, per seed, then over seeds."
    )
    lines += _summary_lines("Noise level σ of SGD jittering", t["sigma"], note)
    lines += _summary_lines(
        "Regularizer activation",
        t["activation"],
        note + " ReLU: autograd's Hessian is the almost-everywhere one (R'' = 0 off the kinks).",
    )
    lines += _summary_lines("Mechanism ablations", t["ablation"], note)
    lines += _over_training_lines(t)
    if record.get("claims_verdicts"):
        lines += ["", "## Claims (landscape claims on the main runs)", ""]
        lines += [f"- {k}: **{v}**" for k, v in record["claims_verdicts"].items()]
    lines += [
        "",
        f"Runs: {len(record['runs'])} in `runs/`; {record.get('seconds', 0):.0f} s in all for this call "
        "(reused runs cost nothing).",
    ]
    return "\n".join(lines) + "\n"


def _main_lines(record: dict[str, Any], t: dict[str, Any]) -> list[str]:
    """The main table, the curvature note and the paired differences to MSE."""
    cols = t["columns"]
    lines = [
        "Cells are PSNR (dB) / SSIM: mean over seeds of each run's mean over the test samples, ± the "
        "half-width of the 95 % t-interval over seeds (seed-to-seed spread; none with one seed).",
        "",
    ]
    lines.append(
        "| strategy | " + " | ".join(_colname(c) for c in cols) + " | Σ tr H_k (k=1..K−1) | stopped |"
    )
    lines.append("|---|" + "---|" * (len(cols) + 2))
    for row in t["main"]:
        cells = [f"{_ci(row['cells'][c]['psnr'])} / {_ci(row['cells'][c]['ssim'], 3)}" for c in cols]
        stop = ", ".join(f"{s or '?'}@{e}" for s, e in zip(row["stopping"], row["epochs"]))
        lines.append(f"| {row['label']} | " + " | ".join(cells) + f" | {_ci(row['sum_trace'], 3)} | {stop} |")
    lines += ["", curvature_note(record)]
    lines += [
        "",
        "Paired differences to MSE of the same architecture (PSNR dB / SSIM): per seed, the mean over the "
        "same test samples of (strategy − MSE); then the mean over seeds and its 95 % t-interval over seeds. "
        "`*`: the interval excludes 0. The last column is the ratio Σ tr H_k (strategy / MSE), per seed, "
        "then mean and t-interval over seeds.",
        "",
    ]
    lines.append("| strategy − MSE | " + " | ".join(_colname(c) for c in cols) + " | Σ tr H ratio |")
    lines.append("|---|" + "---|" * (len(cols) + 1))
    for row in t["paired"]:
        cells = [f"{_dci(row['cells'][c]['psnr'])} / {_dci(row['cells'][c]['ssim'], 3)}" for c in cols]
        lines.append(f"| {row['label']} | " + " | ".join(cells) + f" | {_ci(row['trace_ratio'], 3)} |")
    return lines


def _paper_lines(record: dict[str, Any], t: dict[str, Any]) -> list[str]:
    """The paper's numbers beside ours, and the pattern paragraph (tasks the paper reports only)."""
    paper = PAPER_NUMBERS.get(record["task"])
    if not paper:
        return []
    lines = [
        "",
        "The paper's numbers for the same rows (PSNR dB, ID / adversarial / OOD; GD architecture), "
        "beside ours (ID / PGD at the middle ε / mean over OOD shifts). Data and sizes differ: compare "
        "which strategy wins which column, not the values.",
        "",
        "| strategy | paper ID | paper adv. | paper OOD | ours ID | ours PGD | ours OOD |",
        "|---|---|---|---|---|---|---|",
    ]
    for strat in ("mse", "adversarial", "input-jitter", "sgd-jitter"):
        rows = [r for r in t["main"] if r["arch"] == "gd" and r["strategy"] == strat]
        if not rows:
            continue
        o = _ours(rows[0], t)
        lines.append(
            f"| {rows[0]['label']} | "
            + " | ".join(f"{v:.2f}" for v in paper[strat])
            + " | "
            + " | ".join("–" if not math.isfinite(v) else f"{v:.2f}" for v in o)
            + " |"
        )
    return lines + ["", pattern_paragraph(record, t)]


def _summary_lines(title: str, rows: Sequence[dict[str, Any]], note: str) -> list[str]:
    """One study's table (none without rows)."""
    if not rows:
        return []
    lines = [
        "",
        f"## {title}",
        "",
        note,
        "",
        "| row | ID PSNR | OOD PSNR | PGD PSNR | Σ tr H | Δ ID | Δ OOD | Δ PGD | tr ratio | stopped |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['label']} | {_ci(r['id'])} | {_ci(r.get('ood'))} | {_ci(r.get('pgd'))} | "
            f"{_ci(r['sum_trace'], 3)} | {_dci(r.get('d_id'))} | {_dci(r.get('d_ood'))} | "
            f"{_dci(r.get('d_pgd'))} | {_ci(r.get('trace_ratio'), 3)} | "
            f"{', '.join(str(s) for s in r['stopping'])} |"
        )
    return lines


def _over_training_lines(t: dict[str, Any]) -> list[str]:
    if not t.get("over_training"):
        return []
    lines = [
        "",
        "## Curvature over training",
        "",
        "Σ_{k=1}^{K−1} tr H_k (mean over the curvature samples) of the snapshots along training, per seed:",
        "",
        "| strategy | seed | epoch: Σ tr H (val PSNR) |",
        "|---|---|---|",
    ]
    for label, series in t["over_training"].items():
        for s in series:
            pts = "; ".join(f"{p['epoch']}: {p['sum_trace']:.3g} ({p['val_psnr']:.2f})" for p in s["points"])
            lines.append(f"| {label} | {s['seed']} | {pts} |")
    return lines


def _ours(row: dict[str, Any], t: dict[str, Any]) -> tuple[float, float, float]:
    """(ID, PGD at the middle ε, mean over the OOD shifts) PSNR of one main-table row: seed means."""
    pk = t["pgd_key"]
    ood = (
        float(np.mean([row["cells"][k]["psnr"]["mean"] for k in t["ood_keys"]]))
        if t["ood_keys"]
        else math.nan
    )
    return (
        from_json_float(row["cells"]["id"]["psnr"]["mean"]),
        from_json_float(row["cells"][pk]["psnr"]["mean"]) if pk else math.nan,
        ood,
    )


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
    how = (
        "exact dense Hessians (every estimate exact)"
        if methods == {"dense"}
        else f"method {'/'.join(sorted(methods))}" + (f" on the budget {budget}" if budget else "")
    )
    return (
        f"Σ tr H_k column: {how}, {'/'.join(str(n) for n in sorted(samples))} test sample(s) per run; "
        f"{bad} estimate(s) (λ, trace) in {total} (iterate, sample) results stopped at their budget unconverged"
        + (" — read those numbers as rough estimates (see `unconverged` in results.json)." if bad else ".")
    )


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
        parts.append(
            f"{col}: the paper's best is {pw}, ours {ow} by {margin:.2f} dB over {rank[1]} "
            f"({'same' if pw == ow else 'differs'})"
        )
    return "Pattern (best strategy per column, GD rows, point estimates): " + "; ".join(parts) + "."


def results_html(record: dict[str, Any], *, claims: Any = None) -> str:
    """``report.html``: the tables and figures of the experiment, self-contained."""
    import html as _html

    md = results_markdown(record)
    sections: list[dict[str, Any]] = [
        {
            "id": "tables",
            "title": "Tables",
            "figure": None,
            "html": f"<pre>{_html.escape(md)}</pre>",
            "caption": "results.md, as written beside this page",
        }
    ]
    sections.extend(figure_sections(record, claims))
    intro = (
        f"<p>Experiment {_html.escape(record['task'])} ({_html.escape(record['preset'])} preset, "
        f"{record['seeds']} seed(s)). Every number is in <code>results.json</code> beside this page.</p>"
    )
    return render_page(f"landscape experiment: {record['task']}", sections, intro_html=intro)


def figure_sections(record: dict[str, Any], claims: Any = None) -> list[dict[str, Any]]:
    """The figures of ``report.html`` (and of ``export``), as report sections: pure functions of the record."""
    t = record.get("tables") or build_tables(record)
    sections: list[dict[str, Any]] = []
    if t["sigma"]:
        sections.append(
            {
                "id": "sigma",
                "title": "Accuracy, robustness and flatness against σ",
                "figure": figures.sweep_figure(t["sigma"], x="sigma", x_title="σ (paper rule)"),
                "caption": "mean over seeds ± 95 % t-interval over seeds",
            }
        )
    if t.get("over_training"):
        sections.append(
            {
                "id": "over-training",
                "title": "Curvature over training",
                "figure": figures.over_training_figure(t["over_training"]),
                "caption": "Σ_{k=1}^{K−1} tr H_k and λ_max(H_1) of the snapshots, one line per seed",
            }
        )
    if claims is not None:
        sections.extend(claims_sections(claims))
    return sections
