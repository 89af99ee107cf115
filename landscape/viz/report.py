r"""The self-contained HTML report of an analysis (see :mod:`landscape.survey`).

:func:`render_report` builds the page from ``analysis.json`` alone (no model), so a report can be
re-rendered.  The page is self-contained: plotly.js is embedded once, each figure is a ``<div>`` with its
data, and nothing is fetched from any host.
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from landscape.claims import ClaimsResult
from landscape.compare import compare_along_path, finding
from landscape.curvature.analysis import IterateCurvature, parse_iterates
from landscape.errors import check
from landscape.evaluate import format_table
from landscape.export import settings_tag
from landscape.io import check_outputs, check_suffix, write_text
from landscape.records import curvature_of, result_files
from landscape.viz import figures as F
from landscape.viz.claims_report import claims_sections, claims_table_html
from landscape.viz.page import render_page

__all__ = [
    "check_map_iterates",
    "check_report_out",
    "map_iterates_of",
    "report_sections",
    "render_report",
    "slice_sections",
    "unconverged_note",
    "write_report",
]


def check_report_out(
    out: str | os.PathLike, results: Sequence[str | os.PathLike], *, what: str = "--out"
) -> Path:
    """``out`` as the path of a report page, checked before anything is read or written: it is none of the
    files read for ``results`` (:func:`result_files`, compared by :func:`landscape.io.check_distinct`), it
    ends in ``.html``, its folder can be written and it is no file of another write's group (the
    ``report.html`` of an analysis folder that is not an input: :func:`landscape.io.check_not_in_group`;
    written alone it would make that folder fail its own group check).  ``ValueError`` (one line) otherwise."""
    o = Path(out)
    check(str(out).strip() != "", f"{what} is empty: expected a file name ending in .html")
    check_outputs([o], result_files(results), what=what)
    return check_suffix(o, (".html",), writes="an HTML page", what=what)


def _curvatures(entries: Sequence[dict[str, Any]]) -> list[tuple[str, Any]]:
    out = []
    for i, e in enumerate(entries):
        c = curvature_of(e)
        if c is not None:
            out.append((str(e.get("label", f"#{i}")), c))
    return out


def _densities(entries: Sequence[dict[str, Any]]) -> list[tuple[str, Any, int]]:
    out = []
    for i, e in enumerate(entries):
        d = e.get("density")
        if d:
            res = IterateCurvature.from_dict(d)
            out.append((str(e.get("label", f"#{i}")), res, int(e.get("density_k", res.iterates[0]))))
    return out


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
            parts.append(
                f"{e.get('label', '?')}: {len(bad)} estimate(s) UNCONVERGED ({where}; {bad[0]['reason']})"
            )
    return (
        (" Warning — these numbers did not converge and are not to be trusted: " + "; ".join(parts) + ".")
        if parts
        else ""
    )


def over_training_series(
    entries: Sequence[dict[str, Any]], curv: Sequence[tuple[str, Any]]
) -> dict[str, Any]:
    """``{strategy: [{"seed": run, "points": [{"epoch", "sum_trace", "lambda_max_1"}]}]}`` for the runs with
    checkpoints at two or more epochs (snapshots), else ``{}``."""
    by_label = dict(curv)
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for e in entries:
        res = by_label.get(e.get("label"))
        if res is None or e.get("epoch") is None:
            continue
        p = Path(str(e.get("path", "")))
        run = p.parent.parent.name if p.parent.name == "snapshots" else p.parent.name
        K = res.n_iter
        inner = [k for k in res.iterates if 1 <= k <= K - 1]
        pt = {
            "epoch": int(e["epoch"]),
            "sum_trace": float(sum(res.values("trace", k).mean() for k in inner)) if inner else None,
            "lambda_max_1": float(res.values("lambda_max", 1).mean()) if 1 in res.iterates else None,
        }
        runs.setdefault((str((e.get("strategy") or {}).get("name", "?")), run), []).append(pt)
    out: dict[str, Any] = {}
    for (strat, run), pts in runs.items():
        if len({p["epoch"] for p in pts}) >= 2:
            out.setdefault(strat, []).append(
                {"seed": run, "name": run, "points": sorted(pts, key=lambda p: p["epoch"])}
            )
    return out


def map_iterates_of(
    analysis: dict[str, Any], curv: Sequence[tuple[str, Any]], map_iterates: Any = None
) -> list[int] | None:
    """The iterates the curvature maps show: ``map_iterates`` (``"1,5,9"`` or a list), else the analysis's
    ``settings.map_iterates``, else ``None`` (the default, :func:`landscape.viz.figures.default_map_iterates`)."""
    spec = map_iterates if map_iterates is not None else (analysis.get("settings") or {}).get("map_iterates")
    with_diag = [res for _, res in curv if res.has_diagonal]
    if spec is None or not with_diag:
        return None
    return parse_iterates(spec, with_diag[0].n_iter)


def check_map_iterates(analysis: dict[str, Any], map_iterates: Any) -> list[int] | None:
    """``map_iterates`` checked against an analysis record before a page is written: every k must be an
    iterate with diagonals in every result that has diagonals, and some result must have them (``ValueError``,
    one line, otherwise).  ``None`` passes (the default choice)."""
    if map_iterates is None:
        return None
    curv = _curvatures(analysis.get("checkpoints", []))
    with_diag = [(lab, res) for lab, res in curv if res.has_diagonal]
    check(
        bool(with_diag), f"--map-iterates {map_iterates}: no result holds diagonals (analyse with --diagonal)"
    )
    ks = map_iterates_of(analysis, curv, map_iterates)
    for lab, res in with_diag:
        have = {s.k for s in res.samples if s.diagonal is not None}
        missing = [k for k in ks or [] if k not in have]
        if missing:
            raise ValueError(
                f"--map-iterates {map_iterates}: {lab} has no diagonal at k = {missing[0]} (it has "
                f"k = {', '.join(map(str, sorted(have)))})"
            )
    return ks


def _map_caption(maps: Sequence[tuple[str, Any]], n: Any) -> str:
    """The curvature maps' caption: what is drawn and how it was obtained (exact or estimated, with probes)."""
    diags = [s.diagonal for _, r in maps for s in r.samples if s.diagonal is not None]
    exact = all(d.method == "dense" for d in diags)
    if exact:
        how = "exact, the diagonal of each dense Hessian"
    else:
        probes = sorted({d.n_probes for d in diags if d.method != "dense"})
        rng = f"{probes[0]}" if len(probes) == 1 else f"{probes[0]}–{probes[-1]}"
        how = (
            f"estimated as the mean of v ⊙ H_k v over {rng} Rademacher probes (Bekas–Kokiopoulou–Saad); the band is "
            "± the standard error (spread over samples and Monte-Carlo error in quadrature)"
        )
    bad = [
        (lab, s.k)
        for lab, r in maps
        for s in r.samples
        if s.diagonal is not None and not s.diagonal.converged
    ]
    warn = (
        (
            f" Warning — {len(bad)} diagonal estimate(s) did not reach the relative standard error asked for "
            f"(e.g. {bad[0][0]} at k = {bad[0][1]}): read the band, not the wiggles."
        )
        if bad
        else ""
    )
    return (
        f"diag(H_k) = ∂²L_k/∂x_j² for every coordinate j of the iterate x_k ({how}), mean over {n} test samples; "
        "a multi-channel state shows the sum over its channels at each position (an MRI pixel: real + "
        "imaginary). One colour per strategy (signals, overlaid) or one panel per checkpoint (images, one "
        "colour scale per k): large values mark where in the signal a perturbation of x_k moves the final loss "
        "most; negative values, where the loss curves down." + warn
    )


def report_sections(analysis: dict[str, Any], *, map_iterates: Any = None) -> list[dict[str, Any]]:
    """The report's sections, each ``{"id", "title", "figure", "caption"}``, built from the JSON alone.

    ``map_iterates`` (``"1,5,9"`` or a list of k) chooses the iterates of the curvature maps, drawn when the
    analysis holds diagonals (``--diagonal``); default the analysis's ``settings.map_iterates``, else
    k = 1, K/2, K − 1 (:func:`landscape.viz.figures.default_map_iterates`)."""
    entries = analysis.get("checkpoints", [])
    st = analysis.get("settings", {})
    secs: list[dict[str, Any]] = []
    flagged = unconverged_note(entries)
    curv = _curvatures(entries)
    dens = _densities(entries)
    _finding_sections(secs, entries, curv)
    _record_sections(secs, analysis)
    if curv:
        _curvature_sections(secs, analysis, curv, flagged, map_iterates)
    _penalty_density_sections(secs, entries, dens, st)
    _loss_slice_sections(secs, entries, st)
    _outcome_sections(secs, entries, st.get("samples", "?"))
    return secs


def _add(secs: list[dict[str, Any]], sid: str, title: str, build: Callable[[], Any], caption: str) -> None:
    """Append a section whose figure is ``build()``; missing data (the figure cannot be drawn) is said in the
    caption and the page goes on."""
    try:
        fig = build()
    except (ValueError, KeyError, TypeError, IndexError) as exc:  # missing data: say so, keep going
        fig = None
        caption = f"{caption} (not available: {exc})"
    secs.append({"id": sid, "title": title, "figure": fig, "caption": caption})


def _finding_sections(
    secs: list[dict[str, Any]], entries: Sequence[dict[str, Any]], curv: Sequence[tuple[str, Any]]
) -> None:
    """The finding (each result's curvature relative to the first) and the curvature over training."""
    if len(curv) >= 2:
        comps = [
            (lab, q, compare_along_path(curv[0][1], res, q))
            for lab, res in curv[1:]
            for q in ("trace", "abs_trace", "trace_sq", "lambda_max")
        ]
        _add(
            secs,
            "finding",
            "Finding: curvature relative to " + curv[0][0],
            lambda: F.paired_ratio_figure(comps),
            finding(curv) + " The figure shows the ratio per iterate with that interval; 1 means no change.",
        )
    elif curv:
        secs.append({"id": "finding", "title": "Finding", "figure": None, "caption": finding(curv)})
    over = over_training_series(entries, curv)
    if over:
        _add(
            secs,
            "over-training",
            "Curvature over training",
            lambda: F.over_training_figure(over),
            "Σ_{k=1}^{K−1} tr H_k and λ_max(H_1) (means over the test samples) of each run's snapshots against "
            "the epoch they were saved at (landscape train --snapshots N)",
        )


def _record_sections(secs: list[dict[str, Any]], analysis: dict[str, Any]) -> None:
    """The claims (verdicts table and figures) and the evaluation table the record carries, if any."""
    cl = analysis.get("claims")
    if cl:
        cres = ClaimsResult.from_dict(cl)
        secs.append(
            {
                "id": "claims",
                "title": "Claims: verdicts with intervals",
                "figure": None,
                "caption": "",
                "html": claims_table_html(cres),
            }
        )
        secs.extend(claims_sections(cres))
    ev = analysis.get("evaluation")
    if ev:
        secs.append(
            {
                "id": "evaluation",
                "title": "Accuracy and robustness (landscape evaluate)",
                "figure": None,
                "caption": "",
                "html": f"<pre>{html.escape(format_table(ev))}</pre>",
            }
        )


def _curvature_sections(
    secs: list[dict[str, Any]],
    analysis: dict[str, Any],
    curv: Sequence[tuple[str, Any]],
    flagged: str,
    map_iterates: Any,
) -> None:
    """λ_max, the trace, the eigenvalue ladders, λ_min, n_eff (when measured) and the curvature maps (when
    the results hold diagonals) along the path."""
    st = analysis.get("settings", {})
    n, cst = st.get("samples", "?"), st.get("curvature", {})
    _add(
        secs,
        "lambda-max",
        "Largest eigenvalue of H_k along the path",
        lambda: F.curvature_figure(curv, "lambda_max"),
        f"λ_max of the Hessian of L_k(x_k) = ‖Φ_k→K(x_k) − x*‖² with respect to the iterate x_k, "
        f"at each iterate k, averaged over {n} test samples (error bars: standard error over samples). "
        "Lower means the remaining unrolled steps are less sensitive to a perturbation of x_k in its "
        "worst direction." + flagged,
    )
    _add(
        secs,
        "trace",
        "Trace of H_k along the path",
        lambda: F.curvature_figure(curv, "trace", log=True),
        "tr(H_k) (log scale), the total curvature of L_k at x_k (exact from dense Hessians in small dimension, "
        "Hutch++ otherwise); error bars are standard errors over samples. The small-noise expansion of "
        "the jittered loss penalises exactly these traces." + flagged,
    )
    _add(
        secs,
        "ladder",
        "Eigenvalue ladders",
        lambda: F.eigenvalue_ladder_figure(curv),
        f"The top {cst.get('top_k', '')} eigenvalues and λ_min of H_k at each iterate (mean over samples), "
        "one colour per checkpoint: how many stiff directions there are, how far they stand above the "
        "rest, and how negative the curvature gets (H_k is indefinite).",
    )
    _add(
        secs,
        "lambda-min",
        "Smallest eigenvalue of H_k along the path",
        lambda: F.curvature_figure(curv, "lambda_min"),
        "λ_min of H_k: the iterate Hessians are indefinite, so λ_max and the trace alone hide the "
        "directions in which the loss curves down." + flagged,
    )
    if any("n_eff" in res.names() for _, res in curv):
        _add(
            secs,
            "curved-directions",
            "Effective number of curved directions",
            lambda: F.curvature_figure(curv, "n_eff"),
            "n_eff(H_k) = (Σ|λ|)² / tr(H_k²), the participation ratio of the eigenvalues' magnitudes: n when "
            "every direction curves alike, 1 when one direction holds all the curvature (exact from dense "
            "Hessians; from an SLQ density and the estimated tr(H_k²) otherwise, where it is shown only with "
            "--density). tr(H_k)²/tr(H_k²) is not used: H_k is indefinite and its trace cancels." + flagged,
        )
    maps = [(lab, res) for lab, res in curv if res.has_diagonal]
    if maps:
        _add(
            secs,
            "curvature-maps",
            "Where the curvature sits: diag(H_k) per coordinate",
            lambda: F.curvature_map_figure(maps, map_iterates_of(analysis, curv, map_iterates)),
            _map_caption(maps, n),
        )


def _penalty_density_sections(
    secs: list[dict[str, Any]],
    entries: Sequence[dict[str, Any]],
    dens: Sequence[tuple[str, Any, int]],
    st: dict[str, Any],
) -> None:
    """The penalty the theory names along the path, and the spectral densities, when measured."""
    if any(e.get("penalty") for e in entries):
        p0 = next(e["penalty"] for e in entries if e.get("penalty"))
        _add(
            secs,
            "penalty",
            "The penalty the theory names",
            lambda: F.penalty_figure(entries),
            "Per step k, ½ η_k² s_k² tr H_{k+1}: the second-order excess of the jittered loss over the clean loss "
            f"(theory/jitter_expansion.md), every checkpoint evaluated under the same rule ({p0['rule']}), with s_k "
            f"on its own clean path; mean ± standard error over {p0['n']} samples, log scale. The legend gives the "
            "sum over k, the predicted total excess.",
        )
    if dens:
        _add(
            secs,
            "density",
            "Spectral density",
            lambda: F.density_figure(dens),
            f"Spectral density of H_k at k = {st.get('density_k')}: Gaussian-broadened eigenvalues (exact in "
            "small dimension, stochastic Lanczos quadrature otherwise), averaged over samples, log-scale "
            "density: the bulk near zero and the outliers that set λ_max.",
        )


def _loss_slice_sections(
    secs: list[dict[str, Any]], entries: Sequence[dict[str, Any]], st: dict[str, Any]
) -> None:
    """The input-space slices side by side, the quadratic model along the top eigenvector and the
    parameter-space slices, when measured."""
    labels = [e.get("label", f"#{i}") for i, e in enumerate(entries)]
    input_slices = [e["slices"]["input"] for e in entries if e.get("slices", {}).get("input")]
    if input_slices:
        k = input_slices[0].get("k")
        kinds = ", ".join(d.get("kind", "?") for d in input_slices[0].get("directions", []))
        sp = next((e.get("slice_span") for e in entries if e.get("slice_span")), None)
        units = (
            f"unit directions over ±α* with α* = √(2 L_k/λ_max) = {sp['alpha']:.3g} (sample 0 of {labels[0]}), "
            "the distance at which the quadratic model along the top eigenvector rises by the loss itself"
            if sp
            else "directions scaled to ‖x_k‖"
        )
        _add(
            secs,
            "slices",
            "Loss slices around x_k, side by side",
            lambda: F.slices_side_by_side_figure(input_slices, labels[: len(input_slices)], log=True),
            f"log10 L_k on the plane x_k + α d₁ + β d₂ at k = {k}, sample 0, directions {kinds}: {units}; "
            f"random draws from seed {st.get('curvature', {}).get('seed')} (the same for every checkpoint), one "
            "colour scale and one extent for all panels; the cross marks x_k. Wider low basins mean flatter in "
            "iterate space.",
        )
    lines = [
        (e.get("label", f"#{i}"), e["slices"]["eigen_line"])
        for i, e in enumerate(entries)
        if e.get("slices", {}).get("eigen_line")
    ]
    if lines:
        _add(
            secs,
            "quadratic",
            "Where the Hessian describes the loss",
            lambda: F.quadratic_model_figure(lines),
            "L_k along the unit top eigenvector v of H_k (solid) and its quadratic model "
            "L + α ∇L·v + ½ α² λ_max (dashed), over the same ±α* as the slices: the curvature numbers describe "
            "the loss where the two agree.",
        )
    param_slices = [e["slices"]["parameter"] for e in entries if e.get("slices", {}).get("parameter")]
    if param_slices:
        _add(
            secs,
            "parameter-slices",
            "Training loss around θ (filter-normalised)",
            lambda: F.slices_side_by_side_figure(
                param_slices, labels[: len(param_slices)], log=True, title="training loss around θ"
            ),
            "For comparison, log10 of the training loss (mean over the samples of ‖f_θ(y) − x*‖²) on the "
            "plane θ + α δ₁ + β δ₂ with filter-normalised random directions (Li et al., 2018; biases held "
            "fixed): flatness in parameter space, which is not what SGD jittering targets.",
        )


def _outcome_sections(secs: list[dict[str, Any]], entries: Sequence[dict[str, Any]], n: Any) -> None:
    """Robustness to measurement attacks and the reconstructions, when measured."""
    if any(e.get("robustness") for e in entries):
        r0 = next(e["robustness"] for e in entries if e.get("robustness"))
        _add(
            secs,
            "robustness",
            "Robustness to measurement attacks",
            lambda: F.robustness_figure(entries),
            f"PSNR (dB) of the reconstruction under an ℓ2 PGD attack on the measurement of radius ε "
            f"({r0['attack']['steps']} steps of normalised-gradient ascent), ε relative to ‖y‖ per sample as in "
            f"landscape evaluate, mean ± standard error over {n} samples; ε = 0 is the clean accuracy.",
        )
    if any(e.get("reconstruction") for e in entries):
        _add(
            secs,
            "reconstructions",
            "Reconstructions",
            lambda: F.reconstruction_figure(entries),
            "One test sample (sample 0): the truth, each checkpoint's reconstruction x̂ = x_K (PSNR in the "
            "legend or title) and the error, on the display signal (magnitude for MRI).",
        )


def _summary_table(analysis: dict[str, Any]) -> str:
    rows = []
    for e in analysis.get("checkpoints", []):
        m = e.get("metrics") or {}
        c = curvature_of(e)
        task = (e.get("task") or {}).get("name", "")

        def fmt(v: Any) -> str:
            return f"{v:.4g}" if isinstance(v, (int, float)) and math.isfinite(v) else "–"

        def at0(name: str, c: Any = c) -> Any:
            if c is None or not c.iterates:
                return None
            sm = c.summary(c.iterates[0]).get(name)
            return None if sm is None else sm.mean

        psnr = None
        for src in (m, m.get("final") if isinstance(m.get("final"), dict) else {}):
            for key in ("test_psnr", "psnr", "val_psnr"):
                if psnr is None and isinstance(src.get(key), (int, float)):
                    psnr = src[key]
        bad = c.unconverged() if c is not None else []
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(v))}</td>"
                for v in (
                    e.get("label", ""),
                    task,
                    e.get("path", ""),
                    fmt(psnr),
                    fmt(at0("lambda_max")),
                    fmt(at0("lambda_min")),
                    fmt(at0("trace")),
                    fmt(e.get("wall_time")),
                    "yes" if not bad else f"NO: {len(bad)} unconverged",
                )
            )
            + "</tr>"
        )
    k0 = "k₀"
    head = (
        "<tr><th>checkpoint</th><th>task</th><th>path</th><th>PSNR (training metrics)</th>"
        f"<th>λ_max(H_{k0})</th><th>λ_min(H_{k0})</th><th>tr H_{k0}</th><th>analysis time (s)</th>"
        "<th>estimates converged</th></tr>"
    )
    return f"<table>{head}{''.join(rows)}</table>"


_KIND_NAMES = {"analysis": "analysis", "hessian": "hessian record", "claims": "claims result"}


def _by(created: Any, version: Any) -> str:
    """``created 2024-… by landscape 0.1.0``, leaving out what is not recorded (never an empty field)."""
    when = f"created {created} " if isinstance(created, str) and created else ""
    who = (
        f"by landscape {version}"
        if isinstance(version, str) and version
        else "by a landscape version it does not record"
    )
    return when + who


def provenance_html(analysis: dict[str, Any]) -> str:
    """The page's header sentence: which files every number comes from, when and by which landscape.

    A record of :func:`landscape.records.merge_results` (``landscape report``, whatever it merged: one analysis, several,
    hessian records, a claims result) names each of its ``sources`` with its own date and version, and the
    landscape that rendered the page; an analysis that ``landscape analyze`` writes with its page names the
    ``analysis.json`` beside it."""
    vers = analysis.get("versions") if isinstance(analysis.get("versions"), dict) else {}
    sources = analysis.get("sources")
    if isinstance(sources, list) and sources:
        items = "".join(
            f"<li><code>{html.escape(str(src.get('file', '?')))}</code>: "
            f"{html.escape(_KIND_NAMES.get(str(src.get('kind')), str(src.get('kind', 'result'))))} "
            f"{html.escape(_by(src.get('created'), src.get('landscape')))}</li>"
            for src in sources
            if isinstance(src, dict)
        )
        return (
            f"<p>Rendered {html.escape(_by(analysis.get('created'), vers.get('landscape')))} from "
            f"{len(sources)} file(s); every number below is in these files, and the page needs no network "
            f'connection:</p><ul class="sources">{items}</ul>'
        )
    return (
        f"<p>{html.escape(_by(analysis.get('created'), vers.get('landscape')).capitalize())}. Every number "
        "below is in <code>analysis.json</code> beside this page; the page needs no network connection.</p>"
    )


def render_report(
    analysis: dict[str, Any], *, title: str = "landscape analysis", map_iterates: Any = None
) -> str:
    """One self-contained HTML page (plotly.js embedded once, no external request) from the analysis JSON
    (``map_iterates``: see :func:`report_sections`)."""
    st = analysis.get("settings", {})
    settings_txt = html.escape(
        json.dumps(
            {
                k: st.get(k)
                for k in (
                    "samples",
                    "split",
                    "iterates",
                    "curvature",
                    "density_k",
                    "slice_iterate",
                    "slice_n",
                    "slice_span",
                    "map_iterates",
                    "eps",
                    "eps_convention",
                )
            },
            indent=1,
        )
    )
    intro = (
        f"{provenance_html(analysis)}\n"
        f"{_summary_table(analysis)}\n<details><summary>settings</summary><pre>{settings_txt}</pre></details>"
    )
    return render_page(title, report_sections(analysis, map_iterates=map_iterates), intro_html=intro)


def slice_sections(s: dict[str, Any], *, log: bool = False) -> list[dict[str, Any]]:
    """Sections of a single-slice page: the contour (or line) and, for 2-D slices, the surface."""
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
    """Render :func:`render_report` and write it atomically to ``path`` (which must end in ``.html``)."""
    p = Path(path)
    check(
        p.suffix.lower() == ".html", f"report path {p}: expected a file name ending in .html (an HTML page)"
    )
    return write_text(p, render_report(analysis, **kwargs))


def _range(ks: Any) -> str:
    """``0-10`` for a contiguous run of iterates, ``0.5.10`` otherwise."""
    ks = sorted(int(k) for k in ks or [])
    if not ks:
        return "none"
    if len(ks) > 2 and ks == list(range(ks[0], ks[-1] + 1)):
        return f"{ks[0]}-{ks[-1]}"
    return ".".join(map(str, ks))


def analysis_figures(analysis: dict[str, Any], *, map_iterates: Any = None) -> dict[str, Any]:
    """Every figure of the report, keyed by a file name (no suffix) that carries the settings it was made with:
    ``SECTION_TASK_SPLIT_nSAMPLES_kITERATES_METHOD_seedS`` plus the section's own (the density's iterate, the
    slice's iterate, grid and span, the attack's steps), e.g. ``trace_denoise_id_n16_k0-10_auto_seed0``."""
    st = analysis.get("settings", {})
    cst = st.get("curvature", {})
    tasks = sorted({(e.get("task") or {}).get("name", "task") for e in analysis.get("checkpoints", [])})
    base = [
        ("", "+".join(tasks) or "task"),
        ("", st.get("split")),
        ("n", st.get("samples")),
        ("k", _range(st.get("iterates"))),
        ("", cst.get("method")),
        ("seed", cst.get("seed")),
    ]
    span = st.get("slice_span")
    own = {
        "density": {"dk": st.get("density_k")},
        "slices": {"sk": st.get("slice_iterate"), "grid": st.get("slice_n"), "span": span},
        "quadratic": {"sk": st.get("slice_iterate"), "span": span},
        "parameter-slices": {"grid": st.get("param_slice_n"), "span": st.get("param_slice_span")},
        "robustness": {"pgd": st.get("pgd_steps")},
    }
    curv = _curvatures(analysis.get("checkpoints", []))
    try:
        mk = map_iterates_of(analysis, curv, map_iterates)
    except ValueError:
        mk = None  # the section says why it has no figure
    own["curvature-maps"] = {"mk": _range(mk) if mk is not None else "default"}
    out: dict[str, Any] = {}
    for s in report_sections(analysis, map_iterates=map_iterates):
        if s.get("figure") is None:
            continue
        tag = settings_tag(base + list(own.get(s["id"], {}).items()))
        name = f"{s['id']}_{tag}"
        i = 2
        while name in out:
            name, i = f"{s['id']}-{i}_{tag}", i + 1
        out[name] = s["figure"]
    return out
