"""The claims section of the HTML report: a verdict table and pure plotly figure builders.

``claims_section(result)`` returns an HTML fragment (no plotly.js; the page embeds it once),
``claims_sections(result)`` the same as report sections (``{"id", "title", "figure", "caption"}``) for
:func:`landscape.viz.page.render_page`, ``write_claims_html(result, path)`` a standalone page and ``write_claims(result, DIR)`` claims.json with
claims.html as one write group.
The figure builders take a :class:`~landscape.claims.ClaimsResult` and return a ``plotly`` Figure.
"""

from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from landscape.claims import ClaimsResult
from landscape.claims.registry import spec
from landscape.export import figure_div
from landscape.io import json_safe, write_group, write_text
from landscape.viz.figures import finish, strategy_color
from landscape.viz.page import render_page

__all__ = [
    "claims_figure",
    "flatness_figure",
    "claims_table_html",
    "claims_section",
    "claims_sections",
    "claims_markdown",
    "claims_html",
    "write_claims_html",
    "write_claims",
]

_VERDICT_COLOUR = {
    "supported": "#2ca02c",
    "contradicted": "#d62728",
    "inconclusive": "#7f7f7f",
    "too few seeds": "#7f7f7f",
}


def claims_figure(result: ClaimsResult):
    """MC excess ÷ predicted penalty against σ, per group and noise rule, with the claim's interval."""
    import plotly.graph_objects as go

    fig = go.Figure()
    groups = [g["group"] for g in result.groups]
    i = 0
    for g in groups:
        rules: dict[str, list[Any]] = {}  # "mode, scale" -> claims at each σ
        for c in result.claims:
            inside = spec("expansion").tag(c.name) if c.group == g else None  # "RULE, σ=S"
            if inside is not None:
                rules.setdefault(inside.rsplit(", σ=", 1)[0], []).append(c)
        for rule, rows in rules.items():
            sig = [float(spec("expansion").tag(c.name).rsplit("σ=", 1)[1]) for c in rows]
            ivs = [c.seed_level or c.paired for c in rows]
            est = [iv.estimate for iv in ivs]
            ok = [iv.bounded for iv in ivs]
            fig.add_trace(
                go.Scatter(
                    x=sig,
                    y=est,
                    mode="lines+markers",
                    name=f"{g} · {rule}",
                    line={
                        "color": strategy_color(g, i),
                        "dash": "dot"
                        if rule.startswith("absolute")
                        else "dash"
                        if "per sample" in rule
                        else "solid",
                    },
                    error_y={
                        "type": "data",
                        "symmetric": False,
                        "array": [iv.high - iv.estimate if o else 0.0 for iv, o in zip(ivs, ok)],
                        "arrayminus": [iv.estimate - iv.low if o else 0.0 for iv, o in zip(ivs, ok)],
                    },
                    hovertext=[
                        f"{c.verdict} ({c.basis})" + ("" if o else "; interval unbounded")
                        for c, o in zip(rows, ok)
                    ],
                )
            )
            i += 1
    m = result.settings.expansion_margin
    fig.add_hline(y=1.0, line={"color": "black", "width": 1})
    fig.add_hrect(y0=1 - m, y1=1 + m, fillcolor="#2ca02c", opacity=0.08, line_width=0)
    fig.update_layout(
        title="Jittered-loss excess ÷ Hessian-trace prediction",
        xaxis_title="σ (in each rule's units)",
        yaxis_title="ratio",
        xaxis_type="log",
        template="plotly_white",
        height=420,
    )
    return finish(fig)


def flatness_figure(result: ClaimsResult, split: str = "id", quantity: str = "trace"):
    """Mean over seeds of the per-seed sample mean of ``quantity`` (trace, trace_sq, abs_trace, lambda_max,
    lambda_min) against k.  The y axis is logarithmic only for a positive quantity whose every drawn value is
    above 0 (the trace of an indefinite H_k can be negative)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    by_group: dict[str, list[dict[str, Any]]] = {}
    for e in result.checkpoints:
        if "curvature" in e["splits"].get(split, {}):
            by_group.setdefault(e["group"], []).append(e)
    positive = quantity in ("trace", "trace_sq", "abs_trace")
    for i, (g, members) in enumerate(by_group.items()):
        ks = members[0]["splits"][split]["curvature"]["iterates"]
        if quantity not in members[0]["splits"][split]["curvature"]:
            continue
        per_seed = np.array(
            [
                [
                    np.mean(
                        [row[j] for row in m["splits"][split]["curvature"][quantity] if row[j] is not None]
                    )
                    for j in range(len(ks))
                ]
                for m in members
            ]
        )
        mean = per_seed.mean(0)
        se = per_seed.std(0, ddof=1) / math.sqrt(len(members)) if len(members) > 1 else np.zeros_like(mean)
        positive = positive and bool(np.all(mean - se > 0))
        fig.add_trace(
            go.Scatter(
                x=ks,
                y=mean,
                mode="lines+markers",
                name=f"{g} ({len(members)} seed(s))",
                line={"color": strategy_color(g, i)},
                error_y={"type": "data", "array": se.tolist()},
            )
        )
    name = {
        "trace": "tr H_k",
        "lambda_max": "λ_max(H_k)",
        "lambda_min": "λ_min(H_k)",
        "trace_sq": "‖H_k‖_F²",
        "abs_trace": "Σ|λ|(H_k)",
    }.get(quantity, quantity)
    fig.update_layout(
        title=f"{name} along the path [{split}] (error bars: seed-to-seed standard error)",
        xaxis_title="iterate k",
        yaxis_title=name,
        template="plotly_white",
        height=420,
        yaxis_type="log" if positive else "linear",
    )
    return finish(fig)


def claims_table_html(result: ClaimsResult) -> str:
    """The verdict table as HTML: claim, group vs baseline, seed-level and paired intervals, verdict."""
    head = (
        "<tr><th>claim</th><th>group</th><th>vs</th><th>seed-level interval</th><th>paired interval</th>"
        "<th>verdict</th><th>basis</th></tr>"
    )
    rows = []
    for c in result.claims:

        def cell(iv):
            return "–" if iv is None else html.escape(f"{iv} ({iv.method}; over {iv.over})")

        colour = _VERDICT_COLOUR.get(c.verdict, "black")
        sl = (
            cell(c.seed_level)
            if c.test is None
            else html.escape(
                f"rho = {c.test.statistic if c.test.statistic is None else round(c.test.statistic, 3)}, one-sided "
                f"p = {c.test.p_greater:.3g} / {c.test.p_less:.3g} ({c.test.n_perm} seed permutations, "
                f"{c.test.n_seeds} seeds)"
            )
        )
        rows.append(
            f'<tr><td title="{html.escape(c.hypothesis)}">{html.escape(c.name)}</td>'
            f"<td>{html.escape(c.group)}</td><td>{html.escape(c.baseline)}</td><td>{sl}</td>"
            f'<td>{cell(c.paired)}</td><td style="color:{colour};font-weight:bold">{html.escape(c.verdict)}</td>'
            f"<td>{html.escape(c.basis)}</td></tr>"
        )
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in result.notes)
    return (
        f'<table class="claims">{head}{"".join(rows)}</table>'
        f"<p>Intervals at level {result.settings.level}: seed-level t intervals (n − 1 df) over seed pairs, "
        f"paired t intervals over test samples, Monte-Carlo intervals for the expansion of one checkpoint. "
        f"Verdicts follow the seed-level interval; with one seed a comparison says 'too few seeds'. "
        f"The link is a seed-permutation test. Margins: accuracy {result.settings.margin_db} dB, expansion "
        f"±{result.settings.expansion_margin:.0%}.</p><ul>{notes}</ul>"
    )


def claims_sections(result: ClaimsResult) -> list[dict[str, Any]]:
    """Report sections (``{"id", "title", "figure", "caption"}``) for :func:`landscape.viz.page.render_page`."""
    ref = result.reference_jitter
    return [
        {
            "id": "claims-penalty",
            "title": "Claims: does the expansion hold?",
            "figure": claims_figure(result),
            "caption": "Monte-Carlo excess of the jittered loss (antithetic pairs) ÷ the Hessian-trace prediction, "
            "for each checkpoint group's own rule and for absolute noise; error bars are the claim's "
            "interval; the shaded band is the expansion margin.",
        },
        {
            "id": "claims-flatness",
            "title": "Claims: flatness along the path",
            "figure": flatness_figure(result),
            "caption": f"tr H_k at every iterate (ID): the quantity of the penalty, which can cancel. Noise coordinates "
            f"use the reference rule {ref['mode']} σ={ref['sigma']}.",
        },
        {
            "id": "claims-flatness-fro",
            "title": "Claims: flatness that cannot cancel",
            "figure": flatness_figure(result, quantity="trace_sq"),
            "caption": "‖H_k‖_F² = Σλ² at every iterate (ID): a size of H_k in which negative eigenvalues add.",
        },
    ]


def claims_section(result: ClaimsResult) -> str:
    """An HTML fragment: the verdict table and the figures (plotly.js not included).  Each figure enters
    through :func:`landscape.export.figure_div`, the one way a figure enters a page (its JSON cannot end the
    ``<script>``, whatever plotly version serialises it)."""
    parts = ['<section id="claims"><h2>Claims</h2>', claims_table_html(result)]
    for s in claims_sections(result):
        div = figure_div(s["figure"], f"fig-{s['id']}")
        parts.append(
            f'<h3>{html.escape(s["title"])}</h3>{div}<p class="caption">{html.escape(s["caption"])}</p>'
        )
    parts.append("</section>")
    return "".join(parts)


def claims_html(result: ClaimsResult) -> str:
    """A standalone, offline page: plotly.js embedded once, the verdict table, then the figures."""
    return render_page("landscape claims", claims_sections(result), intro_html=claims_table_html(result))


def write_claims_html(result: ClaimsResult, path: str | os.PathLike) -> Path:
    """:func:`claims_html` written atomically to ``path``."""
    return write_text(path, claims_html(result))


def write_claims(
    result: ClaimsResult, out_dir: str | os.PathLike, *, command: str | None = None
) -> list[Path]:
    """``out_dir/claims.json`` and ``out_dir/claims.html`` as one :func:`landscape.io.write_group`: both are
    rendered first, then made visible together (a failure before the renames leaves both old files, one
    between them is caught by :func:`landscape.io.check_group`)."""
    out = Path(out_dir)
    d = result.to_dict()
    d["command"] = command
    text = json.dumps(json_safe(d), indent=2, allow_nan=False) + "\n"
    return write_group({out / "claims.json": text, out / "claims.html": claims_html(result)})


def claims_markdown(result: ClaimsResult, *, expansion: bool = True) -> str:
    """The verdict table as Markdown (seed-level and paired intervals, verdict, basis)."""
    lines = ["| claim | group | seed-level interval | paired interval | verdict |", "|---|---|---|---|---|"]
    for c in result.claims:
        if not expansion and spec("expansion").tag(c.name) is not None:
            continue
        sl = "–" if c.seed_level is None else f"{c.seed_level} ({c.seed_level.method}, n={c.seed_level.n})"
        if c.test is not None:
            sl = (
                f"rho {c.test.statistic if c.test.statistic is None else round(c.test.statistic, 3)}, p "
                f"{c.test.p_greater:.3g} / {c.test.p_less:.3g} ({c.test.n_perm} permutations, {c.test.n_seeds} seeds)"
            )
        pa = "–" if c.paired is None else f"{c.paired} (n={c.paired.n})"
        lines.append(f"| {c.name} | {c.group} | {sl} | {pa} | **{c.verdict}** |")
    return "\n".join(lines)
