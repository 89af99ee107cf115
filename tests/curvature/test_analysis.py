"""analyze_iterates: per-sample results equal the dense oracle, aggregates are mean ± s/sqrt(n), JSON-safe."""

import json

import numpy as np
import pytest
import torch
from tiny_models import K, make_batch, make_model

from landscape.curvature.analysis import CurvatureSettings, analyze_iterates, derive_seed
from landscape.curvature.operators import dense_matrix, make_iterate_hvp, make_param_hvp
from landscape.executor import LocalExecutor


def test_per_sample_and_aggregate_match_dense_oracle():
    model = make_model("cnn-per-iteration")
    x, y = make_batch(model, b=3)
    res = analyze_iterates(
        model,
        x_true=x,
        y=y,
        iterates=[0, 2, K],
        top_k=2,
        bottom_k=1,
        trace=True,
        density=True,
        trace_rtol=0.05,
        density_runs=3,
        density_steps=8,
        backend="vjp_grad",
        seed=7,
        method="estimate",
    )
    assert res.iterates == (0, 2, K) and len(res.samples) == 9 and res.converged
    for k in (0, 2):
        lmax, tr = [], []
        for b in range(3):
            H = dense_matrix(make_iterate_hvp(model, y[b : b + 1], x[b : b + 1], k, backend="jvp_grad"))
            ev = torch.linalg.eigvalsh(H).numpy()
            s = res.at(k)[b]
            np.testing.assert_allclose(s.top.values, ev[::-1][:2], rtol=1e-6)
            np.testing.assert_allclose(s.bottom.values, ev[:1], rtol=1e-6, atol=1e-10)
            assert abs(s.trace.estimate - ev.sum()) <= 3 * s.trace.stderr + 1e-9 * ev.sum()
            assert s.seed == derive_seed(7, "iterate", "eigen", k, b) and s.top.seed == s.seed
            lmax.append(ev[-1])
            tr.append(s.trace.estimate)
        summ = res.summary(k)
        assert summ["lambda_max"].mean == pytest.approx(np.mean(lmax), rel=1e-6)
        assert summ["lambda_max"].stderr == pytest.approx(np.std(lmax, ddof=1) / np.sqrt(3), rel=1e-4)
        assert summ["trace"].mean == pytest.approx(np.mean(tr), rel=1e-12) and summ["trace"].n == 3
    ks, mean, se = res.series("lambda_max")
    assert list(ks) == [0, 2, K] and mean[-1] == pytest.approx(2.0)
    d = res.to_dict()
    text = json.dumps(d, allow_nan=False)
    assert d["loss"].startswith("L_k(x_k) = ||Phi") and d["dtype"] == "float64" and d["backend"] == "vjp_grad"
    assert d["settings"]["seed"] == 7 and "per_sample" in d and "aggregate" in d and len(text) > 0
    assert "lambda_max" in res.table()


def test_params_wrt_and_auto_backend_recorded():
    model = make_model("cnn-shared")
    x, y = make_batch(model, b=2)
    res = analyze_iterates(
        model,
        x_true=x,
        y=y,
        iterates="0",
        wrt="params",
        top_k=1,
        trace=False,
        backend_budget_s=0.05,
        progress=True,
    )
    assert res.backend_choice is not None and res.backend == res.backend_choice.backend
    for b in range(2):
        H = dense_matrix(make_param_hvp(model, y[b : b + 1], x[b : b + 1], 0, backend="vjp_grad"))
        assert res.at(0)[b].top.values[0] == pytest.approx(float(torch.linalg.eigvalsh(H)[-1]), rel=1e-6)
    assert res.to_dict()["backend_choice"]["timings"]


def test_float32_analysis_warns_about_tolerance_and_settings_validate():
    model = make_model("mlp-shared").float()
    x, y = make_batch(model.double(), b=1)
    model.float()
    with pytest.warns(RuntimeWarning, match="float32"):
        res = analyze_iterates(
            model,
            x_true=x,
            y=y,
            iterates=[1],
            dtype="float32",
            top_k=1,
            trace=False,
            backend="jvp_grad",
            eig_tol=1e-7,
            method="estimate",
        )
    assert res.to_dict()["dtype"] == "float32" and res.at(1)[0].top.dtype == "float32"
    with pytest.raises(ValueError, match="wrt"):
        CurvatureSettings(wrt="nope")
    with pytest.raises(ValueError, match="iterates"):
        analyze_iterates(model, x_true=x, y=y, iterates=[K + 1])


def test_a_split_analysis_equals_one_piece_whatever_the_chunks():
    """``executor=``/``chunks=`` cut the pipeline into (iterate, sample chunk) items: the numbers are one
    piece's, since every seed derives from (seed, k, sample id); the split is recorded."""

    model = make_model("cnn-per-iteration")
    x, y = make_batch(model, b=3)
    kw = dict(
        iterates=[0, 2],
        top_k=2,
        trace=True,
        trace_rtol=0.05,
        backend="vjp_grad",
        seed=3,
        method="estimate",
        sample_ids=[4, 9, 1],
    )
    one = analyze_iterates(model, x_true=x, y=y, **kw)
    assert "sharding" not in one.info
    for chunks in (2, 3):
        split = analyze_iterates(model, x_true=x, y=y, executor=LocalExecutor(), chunks=chunks, **kw)
        assert split.info["sharding"]["items"] == 2 * chunks and split.info["sharding"]["chunks"] == chunks
        for k in (0, 2):
            for a, b in zip(one.at(k), split.at(k)):
                assert a.sample == b.sample and a.seed == b.seed
                np.testing.assert_array_equal(a.top.values, b.top.values)
                assert a.trace.estimate == b.trace.estimate
