"""Curvature maps: diag(H_k) per coordinate and the effective number of curved directions.

Oracles: the diagonal of an independent ``torch.func.hessian`` of the per-sample loss through the model's
``tail`` (float64), ``eigvalsh`` of that Hessian for n_eff, and the estimator's own variance (coverage of
±4 standard errors coordinate-wise; the standard error shrinks like 1/sqrt(probes)).
"""

import json
import math

import numpy as np
import pytest
import torch

from landscape.cli import build_parser
from landscape.commands.curvature_args import curvature_settings
from landscape.curvature.analysis import CurvatureSettings, IterateCurvature, analyze_iterates, derive_seed
from landscape.curvature.diagonal import exact_diagonal, hutchinson_diagonal
from landscape.curvature.results import Diagonal
from landscape.executor import LocalExecutor
from landscape.models import ModelConfig, RegularizerConfig, build_model
from landscape.physics import Deconvolution, SingleCoilMRI
from tests.cli_helpers import tiny_checkpoints

K = 4


def _setup(n=10, b=3, seed=0):
    """A small unrolled CNN on deconvolution (state (1, n), K = 4), float64, with b samples."""
    cfg = ModelConfig(
        signal_shape=(1, n),
        n_iter=K,
        regularizer=RegularizerConfig(
            kind="cnn", activation="gelu", width=6, depth=2, kernel_size=3, out_scale=1.0
        ),
    )
    torch.manual_seed(seed)
    model = (
        build_model(cfg, Deconvolution(wavelet_length=7, wavelet_width=1.5, noise_sigma=0.05)).double().eval()
    )
    model.requires_grad_(False)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(b, 1, n, generator=g, dtype=torch.float64)
    return model, x, model.physics.measure(x, generator=g)


def _hessian(model, x, y, b, k):
    """The independent oracle: torch.func.hessian of ||tail(x_k) - x*||^2 at the clean iterate x_k of sample b."""
    xk = model.initial(y[b : b + 1])
    for j in range(k):
        xk = model.step(xk, y[b : b + 1], j)
    shape = xk.shape

    def loss(v):
        return (model.tail(v.reshape(shape), y[b : b + 1], k) - x[b : b + 1]).pow(2).sum()

    return torch.func.hessian(loss)(xk.detach().reshape(-1))


def _spd_like(n=60, seed=0):
    """A deliberately non-diagonal indefinite symmetric matrix with a spread of diagonal entries."""
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(n, n, generator=g, dtype=torch.float64) / math.sqrt(n)
    return A + A.T + torch.diag(torch.linspace(-2.0, 6.0, n, dtype=torch.float64))


# -------------------------------------------------------------------------------------------------
# the estimator
# -------------------------------------------------------------------------------------------------
def test_estimated_diagonal_covers_the_truth_coordinatewise():
    H = _spd_like()
    d = hutchinson_diagonal(lambda v: H @ v, 60, matmat=lambda V: V @ H, max_matvecs=400, seed=3)
    z = (d.values - H.diagonal().numpy()) / d.stderr
    assert d.n_probes == d.n_matvecs == 400 and d.converged and d.reason.startswith("fixed budget")
    assert np.mean(np.abs(z) <= 4) >= 0.95
    # the standard error is the one the variance predicts: sqrt(sum_{l != j} H_jl^2 / m)
    pred = np.sqrt(((H**2).sum(1) - H.diagonal() ** 2).numpy() / 400)
    assert np.median(d.stderr / pred) == pytest.approx(1.0, abs=0.1)


def test_the_mean_standard_error_shrinks_like_one_over_sqrt_probes():
    H = _spd_like(seed=1)
    se = {
        m: float(
            np.mean(
                hutchinson_diagonal(lambda v: H @ v, 60, matmat=lambda V: V @ H, max_matvecs=m, seed=5).stderr
            )
        )
        for m in (100, 400, 1600)
    }
    assert se[100] / se[400] == pytest.approx(2.0, rel=0.15)
    assert se[400] / se[1600] == pytest.approx(2.0, rel=0.15)


def test_the_stopping_rule_and_its_record():
    H = (
        torch.diag(torch.linspace(1.0, 2.0, 20, dtype=torch.float64)) + 0.01
    )  # nearly diagonal: converges fast
    d = hutchinson_diagonal(lambda v: H @ v, 20, shape=(1, 20), max_matvecs=500, rtol=0.01, seed=0)
    assert d.converged and d.n_probes < 500 and d.rel_stderr <= 0.01 and d.shape == (1, 20)
    H = _spd_like(n=30)
    with pytest.warns(RuntimeWarning, match="hutchinson_diagonal did not converge"):
        d = hutchinson_diagonal(lambda v: H @ v, 30, max_matvecs=20, rtol=1e-3, seed=0)
    assert not d.converged and d.n_probes == 20 and "budget reached" in d.reason and d.rel_stderr > 1e-3
    with pytest.raises(ValueError, match="shape"):
        hutchinson_diagonal(lambda v: H @ v, 30, shape=(1, 29))
    e = exact_diagonal(H, shape=(3, 10))
    assert (
        e.shape == (3, 10) and e.rel_stderr == 0.0 and np.array_equal(e.values.ravel(), H.diagonal().numpy())
    )


# -------------------------------------------------------------------------------------------------
# the pipeline
# -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("chain", [True, False])
def test_exact_diagonal_equals_an_independent_hessian_through_the_tail(chain):
    model, x, y = _setup()
    res = analyze_iterates(
        model, x_true=x, y=y, iterates=[0, 2, K], diagonal=True, method="dense", chain=chain, top_k=1
    )
    assert res.method == "dense" and res.info["dense_algorithm"]["algorithm"] == (
        "chain" if chain else "per-iterate"
    )
    for k in (0, 2, K):
        for b, s in enumerate(res.at(k)):
            H = _hessian(model, x, y, b, k)
            d = s.diagonal
            assert d.shape == (1, 10) and d.method == "dense" and d.converged and not d.stderr.any()
            np.testing.assert_allclose(d.values.ravel(), H.diagonal().numpy(), rtol=1e-9, atol=1e-12)
            ev = torch.linalg.eigvalsh(H).numpy()
            eff = s.curved_directions()
            assert eff["how"] == "exact" and s.errors()["n_eff"] == 0.0
            assert eff["value"] == pytest.approx(np.abs(ev).sum() ** 2 / (ev**2).sum(), rel=1e-9)
            assert 1.0 <= eff["value"] <= 10.0 and s.scalars()["n_eff"] == eff["value"]
    assert res.at(K)[0].diagonal.values == pytest.approx(2.0)  # k = K: L = ||x - x*||^2, H = 2I


def test_image_states_keep_their_shape():
    model = (
        build_model(
            ModelConfig(
                signal_shape=(2, 4, 4),
                n_iter=2,
                regularizer=RegularizerConfig(
                    kind="cnn", activation="gelu", width=4, depth=2, kernel_size=3, out_scale=1.0
                ),
            ),
            SingleCoilMRI((4, 4), acceleration=2, center_fraction=0.25),
        )
        .double()
        .eval()
    )
    model.requires_grad_(False)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 2, 4, 4, generator=g, dtype=torch.float64)
    y = model.physics.measure(x, generator=g)
    res = analyze_iterates(model, x_true=x, y=y, iterates=[1], diagonal=True, top_k=1, method="dense")
    H = _hessian(model, x, y, 0, 1)
    d = res.at(1)[0].diagonal
    assert d.shape == (2, 4, 4)
    np.testing.assert_allclose(d.values, H.diagonal().reshape(2, 4, 4).numpy(), rtol=1e-9, atol=1e-12)


def test_estimated_diagonal_agrees_with_the_dense_one_within_its_errors():
    model, x, y = _setup(n=24, b=2)
    kw = dict(iterates=[1, 3], top_k=1, diagonal=True, seed=4)
    dense = analyze_iterates(model, x_true=x, y=y, method="dense", **kw)
    with pytest.warns(RuntimeWarning, match="diagonal"):  # 1 % of the mean |diag| needs more than 300 probes
        est = analyze_iterates(model, x_true=x, y=y, method="estimate", trace_max_matvecs=300, **kw)
    z = []
    for k in (1, 3):
        for a, s in zip(dense.at(k), est.at(k)):
            d = s.diagonal
            assert d.method.startswith("hutchinson_diag") and d.seed == derive_seed(
                4, "iterate", "diagonal", k, s.sample
            )
            assert d.n_probes == d.n_matvecs <= 300 and d.converged == (d.rel_stderr <= 0.01)
            assert s.n_matvecs >= d.n_matvecs
            z.append((d.values - a.diagonal.values).ravel() / d.stderr.ravel())
    z = np.concatenate(z)
    assert np.mean(np.abs(z) <= 4) >= 0.95
    # without a spectrum there is no sum|lambda|: n_eff is unavailable, with the reason (never tr^2 / tr H^2)
    s = est.at(1)[0]
    assert "n_eff" not in s.scalars() and math.isnan(s.curved_directions()["value"])
    assert "sum|lambda|" in s.curved_directions()["reason"]
    assert {u["quantity"] for u in est.unconverged()} <= {"diagonal"}


def test_json_round_trip_and_a_chunked_run_equals_one_piece():
    model, x, y = _setup(n=12, b=3)
    kw = dict(
        iterates=[1, 2],
        top_k=1,
        bottom_k=0,
        diagonal=True,
        method="estimate",
        trace_max_matvecs=60,
        trace_rtol=None,
        backend="vjp_grad",
        seed=2,
        sample_ids=[5, 0, 7],
    )
    one = analyze_iterates(model, x_true=x, y=y, **kw)
    text = json.dumps(one.to_dict(), allow_nan=False)
    back = IterateCurvature.from_dict(json.loads(text))
    assert back.settings.diagonal and back.has_diagonal
    for a, b in zip(one.samples, back.samples):
        assert isinstance(b.diagonal, Diagonal) and b.diagonal.shape == (1, 12)
        np.testing.assert_array_equal(a.diagonal.values, b.diagonal.values)
        np.testing.assert_array_equal(a.diagonal.stderr, b.diagonal.stderr)
        assert (a.diagonal.n_probes, a.diagonal.converged, a.diagonal.seed) == (
            b.diagonal.n_probes,
            b.diagonal.converged,
            b.diagonal.seed,
        )
    m = back.diagonal_map(1)
    assert m["n"] == 3 and m["values"].shape == (1, 12) and (m["mc_stderr"] > 0).all()
    np.testing.assert_allclose(m["values"], np.mean([s.diagonal.values for s in one.at(1)], axis=0))
    assert back.diagonal_map(2, sample=7)["samples"] == [7]
    for chunks in (2, 3):
        split = analyze_iterates(model, x_true=x, y=y, executor=LocalExecutor(), chunks=chunks, **kw)
        for a, b in zip(one.samples, split.samples):
            assert (a.k, a.sample) == (b.k, b.sample)
            np.testing.assert_array_equal(a.diagonal.values, b.diagonal.values)
            np.testing.assert_array_equal(a.diagonal.stderr, b.diagonal.stderr)
    off = analyze_iterates(model, x_true=x, y=y, **{**kw, "diagonal": False})
    assert not off.has_diagonal and "diagonal" not in json.dumps(
        [s.to_dict()["diagonal"] for s in off.samples]
    )
    with pytest.raises(ValueError, match="no diagonal at k=1"):
        off.diagonal_map(1)


def test_the_flag_reaches_the_settings_and_the_help():
    for command in ("analyze", "hessian"):
        p = build_parser(command)
        base = [command, "ck"] + (["--out", "d"] if command == "analyze" else [])
        assert curvature_settings(p.parse_args([*base, "--diagonal"])).diagonal is True
        assert curvature_settings(p.parse_args(base)).diagonal is CurvatureSettings().diagonal is False
    p = build_parser("analyze")
    assert p.parse_args(["analyze", "ck", "--out", "d", "--map-iterates", "1,3"]).map_iterates == "1,3"
    text = p._subparsers._group_actions[0].choices["analyze"].format_help()
    assert "--diagonal" in text and "--map-iterates" in text and "diag(H_k)" in text
    with pytest.raises(ValueError, match="diagonal"):
        CurvatureSettings(diagonal=1)


# -------------------------------------------------------------------------------------------------
# the report
# -------------------------------------------------------------------------------------------------
def _record(results, **settings):
    """An analysis record holding only curvature (what the report draws the maps from)."""
    return json.loads(
        json.dumps(
            {
                "format": "landscape-analysis/2",
                "created": "now",
                "settings": {"samples": 2, **settings},
                "checkpoints": [{"label": lab, "curvature": r.to_dict()} for lab, r in results],
            },
            allow_nan=False,
        )
    )


@pytest.fixture(scope="module")
def signals():
    out = []
    for seed, lab in ((0, "mse"), (1, "sgd-jitter")):
        model, x, y = _setup(n=10, b=2, seed=seed)
        out.append((lab, analyze_iterates(model, x_true=x, y=y, iterates="all", top_k=1, diagonal=True)))
    return out


def _section(analysis, sid, **kw):
    from landscape.viz.report import report_sections

    return next((s for s in report_sections(analysis, **kw) if s["id"] == sid), None)


def test_default_map_iterates():
    from landscape.viz.figures import default_map_iterates

    assert default_map_iterates(range(11), 10) == [1, 5, 9]
    assert default_map_iterates([0, 4], 4) == [0, 4]  # the nearest analysed ones, no repeats
    assert default_map_iterates([3], 10) == [3] and default_map_iterates([], 10) == []


def test_the_report_draws_signal_maps_when_diagonals_exist(signals):
    from landscape.viz.figures import STRATEGY_COLORS

    sec = _section(_record(signals), "curvature-maps")
    assert sec is not None and sec["figure"] is not None and "exact" in sec["caption"]
    fig = sec["figure"]
    assert [a.text for a in fig.layout.annotations] == ["k = 1", "k = 2", "k = 3"]  # 1, K/2, K - 1
    lines = [t for t in fig.data if t.mode == "lines"]
    assert [t.name for t in lines] == ["mse"] * 3 + ["sgd-jitter"] * 3
    assert {t.name: t.line.color for t in lines} == {n: STRATEGY_COLORS[n] for n in ("mse", "sgd-jitter")}
    for t, (_, res), k in zip(lines, [signals[0]] * 3 + [signals[1]] * 3, [1, 2, 3] * 2):
        np.testing.assert_allclose(np.asarray(t.y), res.diagonal_map(k)["values"].ravel())
    assert sum(t.fill == "toself" for t in fig.data) == 6  # a ± s.e. band under every line
    fig = _section(_record(signals), "curvature-maps", map_iterates="0,4")["figure"]
    assert [a.text for a in fig.layout.annotations] == ["k = 0", "k = 4"]
    fig = _section(_record(signals, map_iterates=[2]), "curvature-maps")["figure"]
    assert [a.text for a in fig.layout.annotations] == ["k = 2"]  # the analysis's own choice
    eff = _section(_record(signals), "curved-directions")
    assert eff is not None and eff["figure"] is not None


def test_no_maps_without_diagonals_and_strings_from_files_are_escaped(signals):
    from landscape.viz.report import check_map_iterates, render_report

    model, x, y = _setup(n=10, b=2)
    plain = analyze_iterates(model, x_true=x, y=y, iterates=[1, 2], top_k=1)
    rec = _record([("mse", plain)])
    assert _section(rec, "curvature-maps") is None
    assert 'id="curvature-maps"' not in render_report(rec)
    with pytest.raises(ValueError, match="no result holds diagonals"):
        check_map_iterates(rec, "1")
    evil = "<script>alert(1)</script>"
    page = render_report(_record([(evil, signals[0][1]), ("mse", plain)]))
    assert page.count('id="curvature-maps"') == 1 and "<script>alert(1)" not in page
    with pytest.raises(ValueError, match="no diagonal at k = 0"):
        check_map_iterates(
            _record([("a", analyze_iterates(model, x_true=x, y=y, iterates=[1, 2], top_k=1, diagonal=True))]),
            "0,1",
        )
    assert check_map_iterates(_record(signals), "3,1") == [1, 3]


def test_image_maps_side_by_side_one_colour_scale_per_iterate():
    model = (
        build_model(
            ModelConfig(
                signal_shape=(2, 4, 4),
                n_iter=3,
                regularizer=RegularizerConfig(
                    kind="cnn", activation="gelu", width=4, depth=2, kernel_size=3, out_scale=1.0
                ),
            ),
            SingleCoilMRI((4, 4), acceleration=2, center_fraction=0.25),
        )
        .double()
        .eval()
    )
    model.requires_grad_(False)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 2, 4, 4, generator=g, dtype=torch.float64)
    y = model.physics.measure(x, generator=g)
    res = analyze_iterates(model, x_true=x, y=y, iterates="all", top_k=1, diagonal=True)
    sec = _section(_record([("mse", res), ("sgd-jitter", res)]), "curvature-maps")
    fig = sec["figure"]
    heat = [t for t in fig.data if t.type == "heatmap"]
    assert len(heat) == 2 * 2  # k = 1, 2 (1, K/2, K - 1 with K = 3) x two checkpoints
    assert [t.coloraxis for t in heat] == ["coloraxis", "coloraxis", "coloraxis2", "coloraxis2"]
    np.testing.assert_allclose(
        np.asarray(heat[0].z), res.diagonal_map(1)["values"].sum(0)
    )  # real + imaginary
    assert "per pixel" in fig.layout.title.text and "2 channels" in fig.layout.title.text


def test_landscape_analyze_and_report_pass_the_flags_through(tmp_path, capsys):
    from landscape.cli import main

    paths = tiny_checkpoints(tmp_path, length=12, n_iter=3, metrics={})
    fast = ["--samples", "2", "--grid", "3", "--param-grid", "0", "--eps", "--threads", "1", "-q"]
    out = tmp_path / "an"
    assert main(["analyze", *paths, "--out", str(out), "--diagonal", "--map-iterates", "1,3", *fast]) == 0
    rec = json.loads((out / "analysis.json").read_text())
    assert rec["settings"]["curvature"]["diagonal"] is True and rec["settings"]["map_iterates"] == "1,3"
    from landscape.records import curvature_of

    for e in rec["checkpoints"]:
        c = curvature_of(e)
        assert c.has_diagonal and c.at(3)[0].diagonal.values == pytest.approx(2.0)  # k = K: H = 2I
        assert e["density"]["per_sample"][0]["diagonal"] is None  # the density's own pass adds none
    assert 'id="curvature-maps"' in (out / "report.html").read_text()
    page = tmp_path / "page.html"
    assert main(["report", str(out), "--out", str(page), "--map-iterates", "2"]) == 0
    assert 'id="curvature-maps"' in page.read_text()
    capsys.readouterr()
    assert main(["report", str(out), "--out", str(page), "--map-iterates", "7"]) == 2
    assert "k=7 is outside 0..K" in capsys.readouterr().err
    assert (
        main(
            [
                "analyze",
                *paths,
                "--out",
                str(tmp_path / "b"),
                "--iterates",
                "0,1",
                "--map-iterates",
                "2",
                *fast,
            ]
        )
        == 2
    )
    assert "not among the analysed iterates" in capsys.readouterr().err
