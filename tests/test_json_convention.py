"""One convention for numbers that are not finite, in every JSON file the package writes.

``landscape.io.json_safe`` is the one encoder (NaN and ±Inf are the strings ``"nan"``, ``"inf"``, ``"-inf"``;
``null`` only means absent) and ``from_json_float`` / ``from_json_array`` the one decoder, which also reads the
``null`` that curvature results wrote for a non-finite number before the convention was one.  The references are
the values put in: a round trip must give them back exactly, infinities with their sign.
"""

import json
import math

import numpy as np
import pytest
import torch

from landscape.cli import main
from landscape.curvature import analyze_iterates
from landscape.curvature.analysis import IterateCurvature
from landscape.curvature.results import Density, Diagonal, Eigenpairs, Estimate
from landscape.io import from_json_array, from_json_float, json_safe
from landscape.records import load_analysis
from landscape.solver import FunctionSolver
from tests.cli_helpers import tiny_checkpoints


def _through_file(obj):
    """``obj`` as a strict-JSON file holds it (``allow_nan=False``: a bare NaN would be refused)."""
    return json.loads(json.dumps(json_safe(obj), allow_nan=False))


def _old_style(obj):
    """What the earlier curvature writer put on disk for the same values: ``null`` for every non-finite number."""
    if isinstance(obj, dict):
        return {k: _old_style(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_old_style(v) for v in obj]
    return None if obj in ("nan", "inf", "-inf") else obj


def test_non_finite_numbers_round_trip_with_their_sign():
    values = [1.5, -0.0, math.nan, math.inf, -math.inf, 3]
    on_disk = _through_file(values)
    assert on_disk == [1.5, -0.0, "nan", "inf", "-inf", 3]
    back = [from_json_float(v) for v in on_disk]
    np.testing.assert_array_equal(back, np.array(values, dtype=float))
    assert from_json_float(None) != from_json_float(None)  # an old file's null is NaN
    arr = np.array([[1.0, math.nan], [math.inf, -math.inf]])
    np.testing.assert_array_equal(from_json_array(_through_file(arr)), arr)
    np.testing.assert_array_equal(from_json_array([[1.0, None], ["inf", "-inf"]]), arr)
    assert json_safe({"d": torch.float64, "n": np.float32(2.5), "b": np.bool_(True)}) == {
        "d": "float64",
        "n": 2.5,
        "b": True,
    }


@pytest.mark.parametrize("bad", ["NaN ", "infinity", "1.0", True, [1.0], {"a": 1}])
def test_a_value_that_is_not_a_number_is_one_line_naming_it(bad):
    with pytest.raises(ValueError, match=r"expected a number or one of \['-inf', 'inf', 'nan'\]") as e:
        from_json_float(bad)
    assert repr(bad) in str(e.value) and "\n" not in str(e.value)


def _results():
    common = dict(n_matvecs=4, converged=False, reason="non-finite result", seed=1, dtype="float64")
    return [
        Eigenpairs(
            values=np.array([math.inf, 2.0]),
            residuals=np.array([math.nan, 0.0]),
            method="lanczos",
            which="LA",
            tol=1e-6,
            wall_time=0.5,
            **common,
        ),
        Estimate(
            estimate=-math.inf,
            stderr=math.nan,
            method="hutchinson",
            wall_time=0.25,
            samples=np.array([1.0, math.nan, -math.inf]),
            **common,
        ),
        Density(
            grid=np.array([0.0, 1.0]),
            density=np.array([math.nan, 0.5]),
            nodes=np.array([[0.0, math.inf]]),
            weights=np.array([[0.5, 0.5]]),
            sigma=0.1,
            mean=math.nan,
            mean_stderr=math.inf,
            n_runs=1,
            lanczos_steps=2,
            wall_time=0.125,
            **common,
        ),
        Diagonal(
            values=np.array([1.0, -math.inf]),
            stderr=np.array([math.nan, 0.0]),
            n_probes=3,
            method="hutchinson",
            wall_time=0.0625,
            **common,
        ),
    ]


def _same(a, b):
    for name in a.__dataclass_fields__:
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y, err_msg=name)
        elif isinstance(x, float) and math.isnan(x):
            assert isinstance(y, float) and math.isnan(y), name
        else:
            assert x == y, name


@pytest.mark.parametrize("res", _results(), ids=lambda r: type(r).__name__)
def test_curvature_results_write_strings_and_read_old_nulls(res):
    on_disk = _through_file(res.to_dict(include_vectors=True))
    for name, x in vars(res).items():  # a number, finite or not, is never written as null (null: absent)
        if isinstance(x, (float, np.ndarray)):
            assert None not in np.ravel(np.array(on_disk[name], dtype=object)).tolist(), name
    assert '"nan"' in json.dumps(on_disk)
    _same(type(res).from_dict(on_disk), res)
    old = type(res).from_dict(_old_style(on_disk))  # an older file: null for NaN and for ±Inf alike
    for name in res.__dataclass_fields__:
        x, y = getattr(res, name), getattr(old, name)
        if isinstance(x, np.ndarray):
            np.testing.assert_array_equal(np.where(np.isfinite(x), x, np.nan), y, err_msg=name)


def _one_sample_analysis():
    A = torch.tensor([[1.0, 0.5], [0.0, 2.0]], dtype=torch.float64)
    solver = FunctionSolver(lambda x, y, k: x - 0.2 * (x @ A.T - y) @ A, n_iter=2, initial=lambda y: y @ A)
    x = torch.tensor([[0.3, -0.7]], dtype=torch.float64)
    return analyze_iterates(solver, x_true=x, y=x @ A.T, iterates=[1, 2], method="dense")


def test_an_iterate_curvature_with_one_sample_writes_its_spread_as_nan_and_reads_old_files():
    res = _one_sample_analysis()
    d = _through_file(res.to_dict())
    assert d["aggregate"]["1"]["trace"]["stderr"] == "nan"  # the spread of one sample
    back = IterateCurvature.from_dict(d)
    assert math.isnan(back.summary(1)["trace"].stderr) and back.table() == res.table()
    assert IterateCurvature.from_dict(_old_style(d)).table() == res.table()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    (folder,) = tiny_checkpoints(tmp_path_factory.mktemp("runs"), ("mse",))
    return folder


def _stderrs(obj, where=""):
    """Every ``stderr`` leaf of a record, with where it sits."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "stderr" and not isinstance(v, (dict, list)):
                yield f"{where}.{k}", v
            else:
                yield from _stderrs(v, f"{where}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _stderrs(v, f"{where}[{i}]")


def test_one_analysis_json_has_one_convention(checkpoint, tmp_path):
    """With one test sample every spread is NaN: in the curvature part and in the rest alike, the string."""
    out = tmp_path / "an"
    fast = [
        "--samples",
        "1",
        "--grid",
        "3",
        "--param-grid",
        "3",
        "--eps",
        "0",
        "0.5",
        "--pgd-steps",
        "2",
        "-q",
    ]
    assert main(["analyze", checkpoint, "--out", str(out), "--iterates", "1,2", *fast]) == 0
    rec = json.loads((out / "analysis.json").read_text())
    spreads = dict(_stderrs(rec))
    curv = {w: v for w, v in spreads.items() if ".curvature.aggregate." in w}
    rest = {w: v for w, v in spreads.items() if ".curvature." not in w}
    assert curv and rest, sorted(spreads)
    assert set(curv.values()) == {"nan"} and "nan" in rest.values(), spreads
    assert None not in spreads.values()
    (entry,) = load_analysis(out / "analysis.json")["checkpoints"]
    c = IterateCurvature.from_dict(entry["curvature"])
    assert math.isnan(c.summary(1)["trace"].stderr)


def test_intervals_and_link_tests_read_their_non_finite_bounds_back_as_numbers():
    from landscape.stats import Interval, LinkTest

    iv = Interval(math.nan, -math.inf, math.inf, 0.95, "seeds", 3, "t (2 df)", "seeds")
    back = Interval.from_dict(_through_file(iv.to_dict()))
    assert math.isnan(back.estimate) and (back.low, back.high) == (-math.inf, math.inf)
    assert not back.bounded and str(back)  # the properties work on what was read (a string bound would raise)
    link = LinkTest(None, 0.5, math.nan, 6, True, 3, 2, 1 / 6, 0.95)
    again = LinkTest.from_dict(_through_file(link.to_dict()))
    assert again.statistic is None and math.isnan(again.p_less) and again.min_p == link.min_p
