"""Figure export: HTML always; PDF/SVG through kaleido as vectors; one line, exit code 2 and no files when
kaleido or its browser is missing; every figure of `landscape analyze --export` written with analysis.json."""

import json
import re
import sys
import zlib

import numpy as np
import plotly.graph_objects as go
import pytest

from landscape import export, figures
from landscape import survey as survey_mod
from landscape.cli import main
from landscape.examples import toy_checkpoint
from landscape.export import ExportUnavailable, save, static_export_available

STATIC = static_export_available()
needs_static = pytest.mark.skipif(
    not STATIC,
    reason="kaleido>=1 or a Chrome/Chromium is missing (pip install 'landscape[export]'; apt install "
    "chromium or BROWSER_PATH): the PDF/SVG export cannot be checked here",
)


def _line():
    return go.Figure(go.Scatter(x=[0, 1, 2, 3, 4, 5, 6], y=[0, 1, 4, 9, 16, 25, 36], mode="lines"))


def _slice_record(n=9):
    a = np.linspace(-1, 1, n)
    vals = (a[:, None] ** 2 + 2 * a[None, :] ** 2 + 0.5).tolist()
    return {
        "coords": [a.tolist(), a.tolist()],
        "values": vals,
        "center_value": 0.5,
        "k": 1,
        "directions": [{"kind": "random", "norm": 1.0}, {"kind": "random", "norm": 1.0}],
    }


def _no_kaleido(monkeypatch):
    monkeypatch.setitem(sys.modules, "kaleido", None)  # `import kaleido` raises ImportError


# ---------------------------------------------------------------------------------------------- HTML, names
def test_html_is_self_contained_and_needs_no_kaleido(tmp_path, monkeypatch):
    _no_kaleido(monkeypatch)
    p = figures.save(_line(), tmp_path / "line.html")
    text = p.read_text()
    assert "Plotly.newPlot" in text and len(text) > 1_000_000  # plotly.js embedded, not fetched
    assert not re.search(r"""<script[^>]+src=["']https?://""", text)
    assert [f.name for f in tmp_path.iterdir()] == ["line.html"]  # no temporary left behind


def test_unknown_suffix_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"\.eps.*expected one of \.html, \.pdf, \.svg, \.png"):
        save(_line(), tmp_path / "x.eps")


def test_settings_tag_and_iterate_ranges():
    from landscape.viz.report import _range

    assert (
        export.settings_tag([("", "denoise"), ("n", 16), ("seed", 0), ("span", None)]) == "denoise_n16_seed0"
    )
    assert export.settings_tag({"span": "1/2 x"}) == "span1-2-x"
    assert _range(range(11)) == "0-10" and _range([0, 5, 10]) == "0.5.10" and _range([3]) == "3"


# ---------------------------------------------------------------------------------------------- missing pieces
def test_missing_kaleido_is_one_line_and_writes_nothing(tmp_path, monkeypatch):
    _no_kaleido(monkeypatch)
    with pytest.raises(ExportUnavailable) as info:
        save(_line(), tmp_path / "line.pdf")
    msg = str(info.value)
    assert "\n" not in msg and "kaleido" in msg and "pip install 'landscape[export]'" in msg
    assert list(tmp_path.iterdir()) == []


def test_missing_browser_names_browser_path(tmp_path, monkeypatch):
    if export._kaleido_version() is None:
        pytest.skip("kaleido is not installed: the browser check comes after the kaleido check")
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-chrome"))
    with pytest.raises(
        ExportUnavailable, match=r"BROWSER_PATH='.*no-such-chrome' is not an executable.*chromium"
    ):
        save(_line(), tmp_path / "line.svg")
    monkeypatch.delenv("BROWSER_PATH")
    monkeypatch.setattr(export, "find_browser", lambda: None)
    with pytest.raises(ExportUnavailable, match=r"no Chrome or Chromium was found.*plotly_get_chrome"):
        export.check_static_export("svg")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_cli_without_kaleido_exits_2_with_one_line_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    _no_kaleido(monkeypatch)
    out = tmp_path / "report"
    rc = main(["analyze", str(toy_checkpoint("mse")), "--out", str(out), "--export", "pdf", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith(
        "landscape analyze: error: PDF export needs the kaleido package"
    )
    assert "Traceback" not in err and not out.exists()


def test_cli_refuses_an_unknown_format(capsys, tmp_path):
    with pytest.raises(SystemExit) as info:
        main(["analyze", str(toy_checkpoint("mse")), "--out", str(tmp_path / "o"), "--export", "pdf,eps"])
    assert info.value.code == 2
    assert "expected one or more of html, pdf, svg, png" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- vector output
def _svg_path_points(svg: str) -> list[int]:
    """Vertices of each <path d="..."> (M/L commands), in order."""
    return [len(re.findall(r"[ML]", d)) for d in re.findall(r'<path[^>]* d="([^"]+)"', svg)]


@needs_static
def test_svg_of_a_line_and_a_contour_are_vector_paths(tmp_path):
    line = save(_line(), tmp_path / "line.svg").read_text()
    assert "<image" not in line
    assert 7 in _svg_path_points(line)  # the 7 data points are one 7-vertex path, not pixels
    fig = figures.slice_contour_figure(_slice_record())
    svg = save(fig, tmp_path / "slice.svg").read_text()
    assert "<image" not in svg
    assert svg.count("<path") > 20  # filled contour bands and their lines


@needs_static
def test_pdf_has_vector_content_and_no_raster(tmp_path):
    data = save(figures.slice_contour_figure(_slice_record()), tmp_path / "slice.pdf").read_bytes()
    assert data.startswith(b"%PDF")
    assert not re.search(rb"/Subtype\s*/Image", data)  # no embedded raster
    ops = 0
    for m in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", data, re.S):
        try:
            content = zlib.decompress(m.group(1))
        except zlib.error:
            continue
        ops += len(re.findall(rb"[\d.]+ [\d.]+ [lc]\b", content))  # lineto / curveto operators
    assert ops > 50


@needs_static
def test_cli_export_writes_every_figure_with_the_analysis(tmp_path, capsys):
    from landscape.io import check_group

    out = tmp_path / "report"
    rc = main(
        [
            "analyze",
            str(toy_checkpoint("sgd-jitter")),
            "--out",
            str(out),
            "--samples",
            "2",
            "--iterates",
            "0,5,10",
            "--grid",
            "5",
            "--param-grid",
            "0",
            "--eps",
            "0",
            "0.1",
            "--pgd-steps",
            "2",
            "--export",
            "pdf,svg",
            "--quiet",
            "--threads",
            "1",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    rec = json.loads((out / "analysis.json").read_text())
    from landscape.viz.report import analysis_figures

    names = sorted(analysis_figures(rec))
    assert len(names) >= 8 and any(n.startswith("trace_") for n in names)
    for n in names:
        assert "_denoise_id_n2_k0.5.10_auto_seed0" in n  # the settings are in every name
        assert (out / f"{n}.pdf").read_bytes().startswith(b"%PDF")
        assert "<svg" in (out / f"{n}.svg").read_text()[:200]
    assert any("_sk0_grid5_spanhessian" in n for n in names)  # a slice names its own settings
    check_group(out, ["analysis.json", "report.html"] + [f"{n}.{f}" for n in names for f in ("pdf", "svg")])


def test_cli_export_failure_mid_render_leaves_nothing(tmp_path, monkeypatch, capsys):
    out = tmp_path / "report"
    calls = []

    def render(figs, fmt, **kw):
        calls.append(fmt)
        if fmt == "svg":
            raise ExportUnavailable("the browser kaleido started (chromium) failed: crashed")
        return [b"%PDF-1.4 fake"] * len(figs)

    monkeypatch.setattr(export, "check_static_export", lambda fmt="pdf": "/usr/bin/chromium")
    monkeypatch.setattr(survey_mod, "render", render)  # the survey imports render at its top
    rc = main(
        [
            "analyze",
            str(toy_checkpoint("mse")),
            "--out",
            str(out),
            "--samples",
            "1",
            "--iterates",
            "0,1",
            "--grid",
            "3",
            "--param-grid",
            "0",
            "--eps",
            "--export",
            "pdf,svg",
            "--quiet",
            "--threads",
            "1",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and calls == ["pdf", "svg"]
    assert err.strip() == "landscape analyze: error: the browser kaleido started (chromium) failed: crashed"
    assert not out.exists() or list(out.iterdir()) == []  # neither analysis.json nor a single figure
