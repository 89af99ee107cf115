"""Round four (h3): the curvature pipeline's input checks, the paper figures, and the README as typed.

Each test failed on the code before its fix (see the docstrings)."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

from landscape.curvature.analysis import IterateCurvature, analyze_iterates
from tests.curvature.tiny_models import make_batch, make_model


# -------------------------------------------------------------------------------------------------
# 1. analyze_iterates: non-finite inputs, non-finite results, x_true of the wrong shape
# -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny():
    m = make_model("mlp-shared")
    x, y = make_batch(m, b=3)
    return m, x, y


@pytest.mark.parametrize("arg", ["y", "x_true"])
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_inputs_are_refused_naming_the_argument_the_count_and_the_sample(tiny, arg, bad):
    """Before: a NaN in y made eigh fail with a bare LinAlgError (or, trace only, NaN numbers marked converged)."""
    m, x, y = tiny
    t = {"y": y, "x_true": x}[arg].clone()
    t[2, 0, 3] = bad
    t[2, 0, 5] = bad
    kw = {"y": y, "x_true": x, arg: t}
    with pytest.raises(ValueError) as e:
        analyze_iterates(m, iterates=[0], sample_ids=[10, 11, 12], **kw)
    msg = str(e.value)
    assert "\n" not in msg
    nan, inf = (2, 0) if math.isnan(bad) else (0, 2)
    assert msg.startswith(f"{arg} has 2 non-finite entries ({nan} NaN, {inf} Inf) in sample 12 (of 3)"), msg


def test_a_float64_input_that_overflows_float32_is_refused(tiny):
    m, x, y = tiny
    y2 = y.clone()
    y2[0, 0, 0] = 1e300
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(
            ValueError, match=r"^y cast to float32 has 1 non-finite entries \(0 NaN, 1 Inf\) in sample 0"
        ):
            analyze_iterates(m, x_true=x, y=y2, iterates=[0], dtype="float32")


def test_x_true_of_the_wrong_shape_is_one_line_naming_both_shapes(tiny):
    """Before: RuntimeError 'The size of tensor a (12) must match the size of tensor b (5)'."""
    m, x, y = tiny
    with pytest.raises(ValueError) as e:
        analyze_iterates(m, x_true=x[:, :, :5], y=y, iterates=[0])
    assert str(e.value) == (
        "x_true has shape (3, 1, 5) but the solver's output for y has shape (3, 1, 12): "
        "expected x_true of the output's shape"
    )
    with pytest.raises(
        ValueError, match=r"x_true has shape \(3, 12\) but the solver's output for y has shape \(3, 1, 12\)"
    ):
        analyze_iterates(m, x_true=x.reshape(3, 12), y=y, iterates=[0])


def _nan_loss(xh, xt, y):
    return ((xh - xt) ** 2).flatten(1).sum(1) * math.nan


def _nan_value_loss(xh, xt, y):  # the value is NaN, its derivatives are those of the squared error
    return ((xh - xt) ** 2).flatten(1).sum(1) + (xt.flatten(1)[:, :1].sum(1).detach() * math.nan)


def _round_trip(r: IterateCurvature) -> IterateCurvature:
    return IterateCurvature.from_dict(json.loads(json.dumps(r.to_dict(), allow_nan=False)))


@pytest.mark.parametrize(
    "settings",
    [
        dict(method="dense"),
        dict(method="estimate", density=True),
        dict(
            method="estimate", top_k=0, bottom_k=0, trace_sq=False
        ),  # before: a NaN trace marked 'exact', converged
    ],
)
def test_a_loss_that_returns_nan_is_never_converged_also_after_a_json_round_trip(tiny, settings):
    """Before: LinAlgError from eigh (dense, Lanczos), or (trace only) NaN numbers reported as converged."""
    m, x, y = tiny
    with pytest.warns(RuntimeWarning, match="non-finite"):
        r = analyze_iterates(m, x_true=x, y=y, iterates=[0, 2], loss=_nan_loss, **settings)
    for res in (r, _round_trip(r)):
        assert not res.converged
        assert all(not s.converged for s in res.samples)
        bad = res.unconverged()
        assert {(u["k"], u["sample"]) for u in bad} == {(k, b) for k in (0, 2) for b in range(3)}
        quantities = {u["quantity"] for u in bad}
        assert "loss" in quantities and len(quantities) >= 2
        assert all("non-finite" in u["reason"] for u in bad)
        assert res.to_dict()["per_sample"][0]["converged"] is False
        for s in res.samples:
            for q in ("top", "bottom", "trace", "density", "trace_sq"):
                est = getattr(s, q)
                if est is not None:
                    assert not est.converged and "non-finite" in est.reason
    assert "*" in r.table()


def test_a_nan_loss_value_with_a_finite_hessian_is_flagged_but_keeps_its_curvature(tiny):
    """The Hessian is the squared error's (checked against the default loss); only the loss is NaN."""
    m, x, y = tiny
    ref = analyze_iterates(m, x_true=x, y=y, iterates=[1])
    assert ref.converged
    with pytest.warns(RuntimeWarning, match="non-finite loss"):
        r = analyze_iterates(m, x_true=x, y=y, iterates=[1], loss=_nan_value_loss)
    back = _round_trip(r)
    for res in (r, back):
        assert not res.converged
        assert [u["quantity"] for u in res.unconverged()] == ["loss"] * 3
        np.testing.assert_allclose(res.values("lambda_max", 1), ref.values("lambda_max", 1), rtol=1e-10)
        assert np.isnan(res.values("loss", 1)).all()


# -------------------------------------------------------------------------------------------------
# 2. the paper figures: titles fit, the main σ in the sweep, log ticks, the export size, one colour per strategy
# -------------------------------------------------------------------------------------------------
def _cell(m, half=0.1):
    return {"mean": m, "half": half, "n": 2}


def _sweep_rows():
    return [
        {
            "sigma": s,
            "label": f"σ = {s}",
            "id": _cell(30 + s),
            "ood": _cell(28.0),
            "pgd": _cell(20.0),
            "sum_trace": _cell(10 ** (3 - 10 * s)),
        }
        for s in (0.0, 0.05, 0.1, 0.2)
    ]


def _layout_fits(fig):
    from landscape.export import DEFAULT_SIZE

    lay = fig.to_dict()["layout"]
    width = lay.get("width") or DEFAULT_SIZE[0]
    lines = lay["title"]["text"].split("<br>")
    font = lay["title"]["font"]["size"]
    for ln in lines:  # 0.6 em a character is generous for plotly's sans-serif font
        assert len(ln) * 0.6 * font <= width - 40, (ln, width)
    assert lay["margin"]["t"] >= 36 + 24 * len(lines)
    return lines


def test_the_sigma_sweep_title_fits_its_figure():
    """Before: a 100-character title on one line, top margin the template's 100 px at 800 px: clipped in a PDF."""
    from landscape import figures

    fig = figures.sweep_figure(_sweep_rows(), x="sigma", x_title="σ (paper rule)")
    lines = _layout_fits(fig)
    assert len(lines) >= 2
    assert " ".join(lines) == (
        "Accuracy, robustness and flatness against σ (paper rule) (mean over seeds ± 95 % "
        "t-interval over seeds)"
    )


def test_every_figure_builder_title_fits(tiny):
    from landscape import figures

    m, x, y = tiny
    res = analyze_iterates(m, x_true=x, y=y, iterates=[0, 1, 2], top_k=2)
    figs = [
        figures.curvature_figure([("mse", res)], "trace", log=True),
        figures.eigenvalue_ladder_figure([("mse", res)]),
        figures.over_training_figure(
            {"MSE (GD)": [{"seed": 0, "points": [{"epoch": 1, "sum_trace": 1.0, "lambda_max_1": 2.0}]}]}
        ),
    ]
    for fig in figs:
        _layout_fits(fig)


def _axis(fig, name):
    return fig.to_dict()["layout"][name]


def test_log_axes_label_decades_or_one_two_five_never_every_minor_tick():
    """Before: a log axis without dtick: plotly labels 2, 3, … 9 of every decade of a short range."""
    from landscape import figures

    wide = figures.sweep_figure(_sweep_rows())  # Σ tr H_k from 1e3 down to 1e1: two decades
    ax = _axis(wide, "yaxis2")
    assert ax["type"] == "log" and ax["dtick"] == 1 and ax["exponentformat"] == "power"
    rows = _sweep_rows()
    for r, v in zip(rows, (1.0, 2.0, 3.0, 5.0)):
        r["sum_trace"] = _cell(v)
    narrow = figures.sweep_figure(rows)  # less than a decade: 1, 2 and 5 are labelled
    assert _axis(narrow, "yaxis2")["dtick"] == "D2"
    assert "dtick" not in _axis(narrow, "yaxis") or _axis(narrow, "yaxis").get("type") != "log"


def test_the_sigma_sweep_holds_the_main_runs_sigma():
    """Before: the sweep's rows were σ = 0 (MSE) and the swept σ only; the main sgd-jitter runs (trained at the
    preset's σ) were left out of the figure and table."""
    from landscape.experiment import build_tables, main_sigma

    def run(study, variant, strategy, seed, psnr, arch="gd"):
        ev = {
            "conditions": [{"key": "id"}],
            "rows": [
                {
                    "kind": "model",
                    "results": {"id": {"per_sample": {"psnr": [psnr, psnr + 1.0], "ssim": [0.5, 0.6]}}},
                }
            ],
        }
        return {
            "study": study,
            "variant": variant,
            "arch": arch,
            "strategy": strategy,
            "seed": seed,
            "sum_trace": 10.0 + psnr,
            "evaluation": ev,
            "epochs": 1,
            "stopping": {"reason": "budget"},
            "snapshots": [],
        }

    runs = {}
    for seed in (0, 1):
        runs[f"gd-mse-s{seed}"] = run("main", "mse", "mse", seed, 20.0 + seed)
        runs[f"gd-sgd-jitter-s{seed}"] = run("main", "sgd-jitter", "sgd-jitter", seed, 22.0 + seed)
        runs[f"sigma0.05-s{seed}"] = run("sigma", "0.05", "sgd-jitter", seed, 21.0 + seed)
    record = {"task": "denoise", "preset": "fast", "seeds": 2, "runs": runs}
    s0 = main_sigma("denoise", "fast")
    assert s0 == 0.1  # the preset's σ, read from the main runs' own training config
    t = build_tables(record)
    assert [r["sigma"] for r in t["sigma"]] == [0.0, 0.05, s0]
    main_row = t["sigma"][-1]
    assert main_row["label"] == "σ = 0.1 (the main runs)" and main_row["id"]["mean"] == pytest.approx(
        (22.5 + 23.5) / 2
    )
    from landscape import figures

    fig = figures.sweep_figure(t["sigma"], x="sigma")
    assert list(fig.data[0].x) == [0.0, 0.05, 0.1]


def test_static_exports_get_a_paper_size_unless_the_figure_sets_its_own(monkeypatch):
    """Before: a figure without its own width was exported 800 px (600 pt) wide: wider than a paper's page."""
    import contextlib

    import plotly.graph_objects as go

    from landscape import export

    calls = []

    class FakeKaleido:
        @staticmethod
        def calc_fig_sync(fig, opts):
            calls.append(dict(opts))
            return b"%PDF-fake"

    monkeypatch.setattr(export, "check_static_export", lambda fmt="pdf": "fake")
    monkeypatch.setattr(export, "_session", lambda: contextlib.nullcontext(FakeKaleido))
    plain = go.Figure(go.Scatter(y=[1, 2]))
    own = go.Figure(go.Scatter(y=[1, 2]), layout={"width": 500, "height": 300})
    export.render([plain, own], "pdf")
    assert [(c["width"], c["height"]) for c in calls] == [(672, 408), (500, 300)]
    assert 672 * 0.75 == 504 == 7 * 72  # 7 in: the width of a two-column figure, in PDF points


def test_one_colour_per_strategy_in_report_and_claims_figures(tiny):
    """Before: colours went by position, so MSE was blue in report.html (listed first) and red in claims.html
    (listed second), and jitter the other way round."""
    from landscape import figures
    from landscape.claims import FORMAT, FORMAT_VERSION, ClaimsResult, ClaimsSettings
    from landscape.viz.claims_report import claims_figure, flatness_figure

    m, x, y = tiny
    res = analyze_iterates(m, x_true=x, y=y, iterates=[0, 1], top_k=1)
    report_fig = figures.curvature_figure([("mse", res), ("sgd-jitter", res)], "trace")
    report_colors = {tr.name: tr.line.color for tr in report_fig.data}
    curv = {"iterates": [0, 1], "trace": [[1.0, 2.0], [1.5, 2.5]]}
    groups = ["sgd-jitter (paper, σ=0.1)", "mse"]  # the other order
    iv = {
        "estimate": 1.0,
        "low": 0.5,
        "high": 1.5,
        "level": 0.95,
        "over": "seeds",
        "n": 3,
        "method": "t",
        "kind": "seeds",
    }
    claims = [
        {
            "hypothesis": "h",
            "quantity": "q",
            "group": g,
            "baseline": "mse",
            "kind": "k",
            "verdict": "supported",
            "basis": "b",
            "note": "",
            "name": "expansion: MC excess / predicted penalty [paper, σ=0.1]",
            "paired": iv,
            "seed_level": iv,
        }
        for g in groups
    ]
    cr = ClaimsResult.from_dict(
        {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "settings": ClaimsSettings().to_dict(),
            "checkpoints": [
                {"group": g, "path": g, "label": g, "splits": {"id": {"curvature": curv}}} for g in groups
            ],
            "groups": [{"group": g, "name": g} for g in groups],
            "claims": claims,
            "reference_jitter": None,
            "notes": [],
            "info": {},
        }
    )
    for fig in (flatness_figure(cr), claims_figure(cr)):
        colors = {tr.name.split(" ")[0]: tr.line.color for tr in fig.data}
        assert colors["mse"] == report_colors["mse"] == figures.STRATEGY_COLORS["mse"]
        assert colors["sgd-jitter"] == report_colors["sgd-jitter"] == figures.STRATEGY_COLORS["sgd-jitter"]
    exp = figures.over_training_figure(
        {
            "SGD jitter (GD)": [{"seed": 0, "points": [{"epoch": 1, "sum_trace": 1.0}]}],
            "MSE (GD)": [{"seed": 0, "points": [{"epoch": 1, "sum_trace": 1.0}]}],
        }
    )
    assert exp.data[0].line.color == figures.STRATEGY_COLORS["sgd-jitter"]
    assert exp.data[2].line.color == figures.STRATEGY_COLORS["mse"]
