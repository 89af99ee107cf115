"""The report: one self-contained offline HTML page, re-renderable from analysis.json alone."""

import json
import math
import re
from html.parser import HTMLParser

import numpy as np
import pytest
import torch


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack, self.scripts, self.sections, self.external, self.links = [], [], [], [], []
        self._script = None
        self._section = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("src", "href", "data", "action", "poster"):
            v = (a.get(key) or "").strip().lower()
            if v.startswith(("http:", "https:", "//", "ftp:")):
                self.external.append((tag, key, v))
        if tag == "link":
            self.links.append(a)
        if tag == "script":
            self._script = []
        if tag == "section":
            self._section = {"id": a.get("id"), "figures": 0, "captions": 0}
            self.sections.append(self._section)
        if tag == "div" and "plotly-graph-div" in (a.get("class") or "") and self._section is not None:
            self._section["figures"] += 1
        if tag == "p" and "caption" in (a.get("class") or "") and self._section is not None:
            self._section["captions"] += 1

    def handle_endtag(self, tag):
        if tag == "script" and self._script is not None:
            self.scripts.append("".join(self._script))
            self._script = None
        if tag == "section":
            self._section = None

    def handle_data(self, data):
        if self._script is not None:
            self._script.append(data)


@pytest.fixture(scope="module")
def analysis():
    from landscape.curvature import CurvatureSettings
    from landscape.models import ModelConfig, RegularizerConfig, build_model
    from landscape.physics import Denoising
    from landscape.survey import analyze_loaded

    cfg = ModelConfig(
        arch="gd",
        signal_shape=(1, 10),
        n_iter=2,
        regularizer=RegularizerConfig(kind="cnn", width=4, depth=2, kernel_size=3, out_scale=1.0),
    )
    entries = []
    for i, label in enumerate(("mse", "sgd-jitter")):
        torch.manual_seed(i)
        m = build_model(cfg, Denoising(0.2)).double().eval()
        g = torch.Generator().manual_seed(3)
        x = torch.randn(2, 1, 10, generator=g, dtype=torch.float64)
        y = m.physics.measure(x, generator=g)
        entries.append(
            analyze_loaded(
                m,
                y,
                x,
                iterates=[0, 1, 2],
                curvature=CurvatureSettings(top_k=2, backend="jvp_grad", seed=0),
                label=label,
                settings={"slice_n": 5, "param_slice_n": 3, "eps": (0.0, 0.5), "pgd_steps": 2},
            )
        )
    from landscape.io import json_safe

    return json.loads(
        json.dumps(
            json_safe(
                {
                    "format": "landscape-analysis/2",
                    "created": "now",
                    "settings": {"samples": 2, "curvature": {"seed": 0}},
                    "checkpoints": entries,
                }
            )
        )
    )


def test_report_is_self_contained(analysis, tmp_path):
    from landscape.viz.report import render_report, write_report

    path = write_report(analysis, tmp_path / "report.html")
    text = path.read_text(encoding="utf-8")
    page = _Page()
    page.feed(text)
    page.close()
    # plotly.js embedded exactly once, inline
    bundles = [s for s in page.scripts if "plotly.js v" in s[:2000]]
    assert len(bundles) == 1
    assert text.count("plotly.js v") == 1
    # nothing is fetched: no src/href to any host, no <link>, no CDN or MathJax reference outside the bundle
    assert page.external == [] and page.links == []
    rest = text.replace(bundles[0], "")
    assert not re.search(r"https?://|cdn\.|mathjax", rest, re.I), re.findall(
        r".{40}(?:https?://|cdn\.).{40}", rest
    )
    # one figure per section, each with a caption
    assert len(page.sections) >= 8
    assert all(s["figures"] == 1 and s["captions"] == 1 for s in page.sections), page.sections
    ids = [s["id"] for s in page.sections]
    for sid in (
        "lambda-max",
        "trace",
        "ladder",
        "density",
        "slices",
        "finding",
        "lambda-min",
        "quadratic",
        "parameter-slices",
        "robustness",
        "reconstructions",
    ):
        assert sid in ids
    # the figures' scripts call Plotly.newPlot on their own divs
    assert sum("Plotly.newPlot" in s for s in page.scripts) == len(page.sections)
    assert render_report(analysis) == text


def test_report_rerenders_from_json_file(analysis, tmp_path):
    from landscape.io import write_json
    from landscape.records import load_analysis
    from landscape.viz.report import render_report

    write_json(tmp_path / "analysis.json", analysis)
    again = load_analysis(tmp_path)
    assert render_report(again) == render_report(analysis)
    with pytest.raises(ValueError, match="not a landscape analysis"):
        (tmp_path / "x.json").write_text("{}")
        load_analysis(tmp_path / "x.json")


def test_missing_pieces_are_reported_not_fatal(analysis):
    from landscape.viz.report import render_report, report_sections

    broken = json.loads(json.dumps(analysis))
    broken["checkpoints"][0]["reconstruction"] = {"display": "signal"}  # no arrays
    secs = report_sections(broken)
    rec = [s for s in secs if s["id"] == "reconstructions"][0]
    assert rec["figure"] is None and "not available" in rec["caption"]
    assert "(no figure)" in render_report(broken)


def test_parse_iterates():
    from landscape.survey import parse_iterates

    assert parse_iterates("all", 3) == [0, 1, 2, 3]
    assert parse_iterates("3,0,3", 5) == [0, 3]
    assert parse_iterates([1, 2], 2) == [1, 2]
    with pytest.raises(ValueError, match="0..K"):
        parse_iterates("7", 5)
    with pytest.raises(ValueError, match="comma"):
        parse_iterates("a,b", 5)


def test_dense_and_estimated_curvature_agree():
    from landscape.curvature import analyze_iterates
    from landscape.models import ModelConfig, RegularizerConfig, build_model
    from landscape.physics import Denoising

    torch.manual_seed(0)
    cfg = ModelConfig(
        arch="gd",
        signal_shape=(1, 8),
        n_iter=2,
        regularizer=RegularizerConfig(
            kind="cnn", activation="tanh", width=4, depth=2, kernel_size=3, out_scale=1.0
        ),
    )
    m = build_model(cfg, Denoising(0.2)).double().eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 1, 8, generator=g, dtype=torch.float64)
    y = m.physics.measure(x, generator=g)
    a = analyze_iterates(m, x_true=x, y=y, iterates=[0, 2], top_k=2, backend="jvp_grad")
    b = analyze_iterates(
        m,
        x_true=x,
        y=y,
        iterates=[0, 2],
        top_k=2,
        backend="jvp_grad",
        method="estimate",
        trace_max_matvecs=60,
        trace_rtol=1e-6,
    )
    assert a.method == "dense" and b.method == "estimate"
    for key in ("lambda_max", "lambda_min", "trace"):
        assert a.series(key)[1] == pytest.approx(b.series(key)[1], rel=1e-6)
    assert a.series("trace")[1][-1] == pytest.approx(2 * 8)  # k = K: L = ||x - x*||^2, H = 2I


def _fake_result(traces, lmax, lmin, ids=None):
    """An IterateCurvature with given per-sample scalars at k = 0 and 1 (dense-style exact values)."""
    from landscape.curvature.analysis import CurvatureSettings, IterateCurvature, SampleCurvature
    from landscape.curvature.results import Eigenpairs, Estimate

    samples = []
    ids = ids or list(range(len(traces)))
    for k in (0, 1):
        for i, (t, a, b) in zip(ids, zip(traces, lmax, lmin)):

            def ep(v, w):
                return Eigenpairs(
                    np.array([v]), np.zeros(1), 4, True, "exact", "dense", w, 0.0, None, "float64", 0.0
                )

            samples.append(
                SampleCurvature(
                    k,
                    i,
                    0,
                    1.0,
                    ep(a * (k + 1), "LA"),
                    ep(b, "SA"),
                    Estimate(t * (k + 1), 0.0, 4, True, "exact", "dense", None, "float64", 0.0),
                )
            )
    return IterateCurvature(
        CurvatureSettings(), (0, 1), tuple(samples), 1, 4, "dense", "double_backward", None, 0.0
    )


def test_the_finding_paragraph_follows_the_numbers():
    from landscape.compare import finding, paired

    ref = _fake_result([10, 12, 9, 11, 10, 13], [2, 2.2, 1.9, 2.1, 2.0, 2.3], [-1, -1.1, -0.9, -1, -1, -1.2])
    flat = _fake_result(
        [3, 4, 2.5, 3.5, 3, 4], [0.5, 0.6, 0.4, 0.5, 0.5, 0.6], [-0.2, -0.3, -0.1, -0.2, -0.2, -0.3]
    )
    same = _fake_result(
        [10.1, 11.9, 9.1, 10.9, 10, 13.1], [2, 2.2, 1.9, 2.1, 2.0, 2.3], [-1, -1.1, -0.9, -1, -1, -1.2]
    )
    a = finding([("mse", ref), ("sgd", flat)])
    b = finding([("mse", ref), ("sgd", same)])
    assert a != b
    assert "tr H_k at k = 0 is lower: 0.31×" in a and "not distinguishable" in b
    c = paired(ref, flat, "trace", 0)
    assert c.n == 6 and c.ratio == pytest.approx(20 / 65) and c.ratio_lo <= c.ratio <= c.ratio_hi < 1
    assert c.diff_hi < 0 and "paired intervals over the test samples" in c.interval
    # lambda_min is negative: a difference, no ratio
    m = paired(ref, flat, "lambda_min", 0)
    assert math.isnan(m.ratio) and m.diff > 0
    with pytest.raises(ValueError, match="same sample ids"):
        paired(ref, _fake_result([1, 2], [1, 1], [0, 0], ids=[40, 41]), "trace", 0)


def test_landscape_report_rerenders_saved_results_without_recomputing(analysis, tmp_path):
    from landscape.cli import main
    from landscape.io import write_json
    from landscape.records import merge_results
    from landscape.viz.report import report_sections

    a = tmp_path / "a" / "analysis.json"
    write_json(a, analysis)
    out = tmp_path / "again.html"
    assert main(["report", str(a.parent), "--out", str(out)]) == 0
    merged = merge_results([a.parent])
    s1 = report_sections(analysis)
    s2 = report_sections(merged)
    assert [s["id"] for s in s1] == [s["id"] for s in s2]
    for x, y in zip(s1, s2):
        if x["figure"] is not None:
            assert (
                x["figure"].to_plotly_json()["data"].__repr__()
                == y["figure"].to_plotly_json()["data"].__repr__()
            )
    assert "Finding" in out.read_text() and s1[0]["id"] == "finding"
    # a hessian-style record merges in beside it
    h = tmp_path / "h.json"
    write_json(
        h,
        {
            "command": "hessian",
            "checkpoint": "/runs/extra/checkpoint.pt",
            "result": analysis["checkpoints"][0]["curvature"],
        },
    )
    both = merge_results([a.parent, h])
    assert [e["label"] for e in both["checkpoints"]] == ["mse", "sgd-jitter", "extra"]
    assert main(["report", str(tmp_path / "nope.json"), "--out", str(tmp_path / "x.html")]) == 2


def test_penalty_along_the_path_is_half_eta2_s2_trace_and_is_drawn():
    from landscape import figures as F
    from landscape.claims import penalty_along_path
    from landscape.curvature import CurvatureSettings, analyze_iterates
    from landscape.jitter import JitterConfig
    from landscape.models import ModelConfig, RegularizerConfig, build_model
    from landscape.physics import Denoising
    from landscape.survey import analyze_loaded

    torch.manual_seed(0)
    cfg = ModelConfig(
        arch="gd",
        signal_shape=(1, 8),
        n_iter=3,
        regularizer=RegularizerConfig(kind="cnn", activation="tanh", width=4, depth=2, kernel_size=3),
    )
    m = build_model(cfg, Denoising(0.2)).double().eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 1, 8, generator=g, dtype=torch.float64)
    y = m.physics.measure(x, generator=g)
    rule = JitterConfig(0.2, "absolute")
    res = analyze_iterates(m, x_true=x, y=y, iterates="all")
    p = penalty_along_path(m, x, y, res, rule)
    eta = [float(m.step_size(k)) for k in range(3)]
    for k in range(3):
        want = np.mean([0.5 * eta[k] ** 2 * 0.2**2 * s.scalars()["trace"] for s in res.at(k + 1)])
        assert p["mean"][k] == pytest.approx(want, rel=1e-12)
    assert p["total"] == pytest.approx(sum(p["mean"]), rel=1e-12) and p["n"] == 3
    entry = analyze_loaded(
        m,
        y,
        x,
        iterates=[0, 1, 2, 3],
        curvature=CurvatureSettings(),
        penalty_jitter=rule,
        settings={"slice_n": 3, "param_slice_n": 0, "eps": ()},
    )
    fig = F.penalty_figure([{"label": "m", **entry}])
    assert list(fig.data[0].y) == pytest.approx(p["mean"]) and "absolute" in fig.layout.title.text
