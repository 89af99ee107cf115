"""Round four (h3): the curvature pipeline's input checks, the paper figures, and the README as typed.

Each test failed on the code before its fix (see the docstrings)."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch

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
        with pytest.raises(ValueError, match=r"^y cast to float32 has 1 non-finite entries \(0 NaN, 1 Inf\) in sample 0"):
            analyze_iterates(m, x_true=x, y=y2, iterates=[0], dtype="float32")


def test_x_true_of_the_wrong_shape_is_one_line_naming_both_shapes(tiny):
    """Before: RuntimeError 'The size of tensor a (12) must match the size of tensor b (5)'."""
    m, x, y = tiny
    with pytest.raises(ValueError) as e:
        analyze_iterates(m, x_true=x[:, :, :5], y=y, iterates=[0])
    assert str(e.value) == ("x_true has shape (3, 1, 5) but the solver's output for y has shape (3, 1, 12): "
                            "expected x_true of the output's shape")
    with pytest.raises(ValueError, match=r"x_true has shape \(3, 12\) but the solver's output for y has shape \(3, 1, 12\)"):
        analyze_iterates(m, x_true=x.reshape(3, 12), y=y, iterates=[0])


def _nan_loss(xh, xt, y):
    return ((xh - xt) ** 2).flatten(1).sum(1) * math.nan


def _nan_value_loss(xh, xt, y):  # the value is NaN, its derivatives are those of the squared error
    return ((xh - xt) ** 2).flatten(1).sum(1) + (xt.flatten(1)[:, :1].sum(1).detach() * math.nan)


def _round_trip(r: IterateCurvature) -> IterateCurvature:
    return IterateCurvature.from_dict(json.loads(json.dumps(r.to_dict(), allow_nan=False)))


@pytest.mark.parametrize("settings", [
    dict(method="dense"),
    dict(method="estimate", density=True),
    dict(method="estimate", top_k=0, bottom_k=0, trace_sq=False),  # before: a NaN trace marked 'exact', converged
])
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
