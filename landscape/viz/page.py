"""The one self-contained HTML page every report is: plotly.js embedded once, a ``<section>`` per
figure or table, every string escaped, nothing fetched from any host.  :mod:`landscape.viz.report`
(analyses) and :mod:`landscape.viz.claims_report` (claims) both assemble their pages here."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

from landscape.export import figure_div

__all__ = ["render_page"]

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0 auto;max-width:1200px;
padding:1em 2em;color:#222}
h1{font-size:1.6em;margin-bottom:.2em} h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
p.caption{color:#444;max-width:60em;line-height:1.4} table{border-collapse:collapse;font-size:.9em}
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left} code{background:#f4f4f4;padding:0 .2em}
.missing{color:#a00} pre{overflow-x:auto;font-size:.85em}
"""

_URL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.I)


def render_page(title: str, sections: Sequence[dict[str, Any]], *, intro_html: str = "") -> str:
    """A self-contained HTML page: plotly.js embedded once, one ``<section>`` per entry of ``sections``
    (``{"id", "title", "figure" (a Figure or None), "caption"}``), no request to any host.

    Every text is escaped: titles, ids and captions with :func:`html.escape`, the figures' data through
    :func:`landscape.export.figure_div` (JSON with ``<``, ``>``, ``&`` and ``/`` as ``\\u`` escapes), so a
    string from a result file shows as text and never runs as script.  A section's ``"html"`` is inserted
    as it is: its builder escapes what it holds."""
    import plotly.offline

    parts = []
    for s in sections:
        parts.append(f'<section id="{html.escape(s["id"])}"><h2>{html.escape(s["title"])}</h2>')
        if s.get("html"):
            parts.append(s["html"])
        elif s["figure"] is not None:
            div = figure_div(s["figure"], f"fig-{s['id']}")  # its JSON cannot end the <script> (script_json)
            if _URL.search(div):
                raise ValueError(f"figure {s['id']!r} would load something from a network host")
            parts.append(div)
        elif s["id"] != "finding":
            parts.append('<p class="missing">(no figure)</p>')
        parts.append(f'<p class="caption">{html.escape(s["caption"])}</p></section>')
    js = plotly.offline.get_plotlyjs()
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>{CSS}</style>
<script type="text/javascript">{js}</script>
</head>
<body>
<h1>{html.escape(title)}</h1>
{intro_html}
{"".join(parts)}
</body>
</html>
"""
