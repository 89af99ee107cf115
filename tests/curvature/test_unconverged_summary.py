"""Unconverged estimates are reported once per analysis (one warning) and marked in the result's own table,
not once per estimate (a notebook cell used to fill with ~40 "hutchpp did not converge" lines)."""

import warnings

from landscape.curvature import analyze_iterates
from tests.curvature.tiny_models import make_batch, make_model


def _run(**over):
    model = make_model("mlp-shared")
    x, y = make_batch(model, b=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = analyze_iterates(
            model,
            x_true=x,
            y=y,
            iterates=[0, 2],
            method="estimate",
            top_k=1,
            bottom_k=0,
            backend="double_backward",
            **over,
        )
    return res, [w for w in caught if issubclass(w.category, RuntimeWarning)]


def test_unconverged_traces_give_one_warning_and_starred_cells():
    res, caught = _run(
        trace_rtol=1e-9, trace_max_matvecs=12, trace_sq=False
    )  # Hutch++ cannot reach 1e-9 in 12
    bad = res.unconverged()
    assert len(bad) == 6 and {u["quantity"] for u in bad} == {"trace"}
    assert len(caught) == 1, [str(w.message) for w in caught]
    msg = str(caught[0].message)
    assert msg.startswith(
        "analyze_iterates: 6 estimate(s) did not converge (trace 6) in 6 (iterate, sample) results"
    )
    assert bad[0]["reason"] in msg and "\n" not in msg
    lines = res.table().splitlines()
    head = lines[0].split()
    rows = {int(r.split()[0]): r for r in lines[1:3]}
    assert head[:3] == ["k", "loss", "lambda_max"] and head[-1] == "trace"
    for r in rows.values():
        cells = r.split("  ")
        assert cells[-1].endswith("*")  # the trace column is starred
        assert not any(c.endswith("*") for c in cells[:-1])  # lambda_max converged: not starred
    assert lines[-1].startswith("* 6 estimate(s) did not converge (trace 6)")


def test_converged_analysis_is_silent_and_unstarred():
    res, caught = _run(trace_rtol=None, trace_max_matvecs=30)  # a fixed budget always "converges"
    assert res.converged and not caught
    assert "*" not in res.table()


def test_trace_sq_shares_the_traces_products_and_its_convergence():
    res, caught = _run(trace_rtol=1e-9, trace_max_matvecs=12)  # tr H^2 from the same Hutch++ products
    bad = res.unconverged()
    assert len(bad) == 12 and {u["quantity"] for u in bad} == {"trace", "trace_sq"}
    assert len(caught) == 1 and "(trace 6, trace_sq 6)" in str(caught[0].message)
