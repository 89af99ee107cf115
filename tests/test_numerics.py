"""Honest numerics: estimators flag non-convergence with a reason, float32 warns when the tolerance is out of
reach, every output records the seeds that made it, and the same seed gives the same numbers."""

import json
import re
import warnings

import numpy as np
import pytest
import torch

from landscape.curvature.eigen import check_tolerance, eigsh, lanczos, power_iteration
from landscape.curvature.trace import hutchinson, hutchpp


def spd_matrix(n=60, seed=0, dtype=torch.float64):
    """A non-diagonal symmetric matrix with a spread spectrum (slow for a Krylov method to resolve fully)."""
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    lam = torch.linspace(1.0, 2.0, n, dtype=torch.float64) ** 3
    return (Q * lam) @ Q.T if dtype == torch.float64 else ((Q * lam) @ Q.T).to(dtype)


def mv(A):
    return lambda v: A @ v


# -------------------------------------------------------------------------------------------------
# non-convergence is flagged, with a reason and a warning
# -------------------------------------------------------------------------------------------------
def test_lanczos_out_of_budget_is_flagged():
    A = spd_matrix()
    with pytest.warns(RuntimeWarning, match="lanczos did not converge"):
        r = lanczos(mv(A), 60, k=3, tol=1e-10, max_matvecs=5, seed=0)
    assert r.converged is False and "budget of 5 matvecs" in r.reason and r.n_matvecs == 5
    d = r.to_dict()
    assert d["converged"] is False and d["reason"] == r.reason and d["seed"] == 0
    json.dumps(d)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ok = lanczos(mv(A), 60, k=3, tol=1e-8, seed=0)
    assert ok.converged and ok.reason
    assert ok.values[0] == pytest.approx(float(torch.linalg.eigvalsh(A)[-1]), rel=1e-8)


def test_eigsh_and_power_iteration_out_of_budget_are_flagged():
    A = spd_matrix()
    with pytest.warns(RuntimeWarning, match="eigsh did not converge"):
        r = eigsh(mv(A), 60, k=3, tol=1e-12, max_matvecs=8, seed=0)
    assert r.converged is False and r.reason
    with pytest.warns(RuntimeWarning, match="power_iteration did not converge"):
        p = power_iteration(mv(A), 60, k=1, tol=1e-12, max_iter=3, seed=0)
    assert p.converged is False and "not converged" in p.reason


def test_trace_estimators_out_of_budget_are_flagged():
    A = spd_matrix()
    with pytest.warns(RuntimeWarning, match="hutchpp did not converge"):
        t = hutchpp(mv(A), 60, rtol=1e-9, max_matvecs=30, seed=0)
    assert t.converged is False and t.reason and t.n_matvecs <= 30
    with pytest.warns(RuntimeWarning, match="hutchinson did not converge"):
        h = hutchinson(mv(A), 60, rtol=1e-9, max_matvecs=20, seed=0)
    assert h.converged is False and h.reason
    assert h.to_dict()["converged"] is False


# -------------------------------------------------------------------------------------------------
# float32: a tolerance below what it can deliver warns
# -------------------------------------------------------------------------------------------------
def test_float32_warns_when_the_tolerance_is_out_of_reach():
    with pytest.warns(RuntimeWarning, match="float32 can deliver"):
        check_tolerance(1e-10, torch.float32)
    A32 = spd_matrix(dtype=torch.float32)
    with pytest.warns(RuntimeWarning, match=r"tol=1e-10 is below what torch.float32 can deliver"):
        lanczos(mv(A32), 60, k=1, tol=1e-10, dtype=torch.float32, seed=0)
    with pytest.warns(RuntimeWarning, match=r"rtol=1e-09 is below what torch.float32"):
        hutchpp(mv(A32), 60, rtol=1e-9, max_matvecs=60, dtype=torch.float32, seed=0)
    with warnings.catch_warnings():  # float64 can, and float32 at a reachable tolerance can
        warnings.simplefilter("error")
        check_tolerance(1e-10, torch.float64)
        check_tolerance(1e-4, torch.float32)


# -------------------------------------------------------------------------------------------------
# seeds: explicit, recorded, reproducible
# -------------------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_estimators_are_functions_of_their_seed():
    A = spd_matrix()
    a = hutchinson(mv(A), 60, max_matvecs=12, seed=3)
    b = hutchinson(mv(A), 60, max_matvecs=12, seed=3)
    c = hutchinson(mv(A), 60, max_matvecs=12, seed=4)
    assert a.estimate == b.estimate and a.seed == 3 and a.estimate != c.estimate
    torch.manual_seed(123)  # the global generator plays no part
    d = hutchinson(mv(A), 60, max_matvecs=12, seed=3)
    assert d.estimate == a.estimate
    la = lanczos(mv(A), 60, k=2, max_matvecs=6, seed=1, tol=1e-3)
    lb = lanczos(mv(A), 60, k=2, max_matvecs=6, seed=1, tol=1e-3)
    assert np.array_equal(la.values, lb.values) and la.seed == 1


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from landscape.cli import main

    out = tmp_path_factory.mktemp("seeds") / "run"
    assert (
        main(
            [
                "train",
                "--task",
                "denoise",
                "--train-size",
                "16",
                "--batch-size",
                "8",
                "--epochs",
                "1",
                "-K",
                "2",
                "--seed",
                "3",
                "--data-seed",
                "4",
                "--quiet",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    return out


def test_hessian_unconverged_is_reported_and_recorded(trained, tmp_path, capsys):
    from landscape.cli import main

    out = tmp_path / "h.json"
    with pytest.warns(RuntimeWarning):
        code = main(
            [
                "hessian",
                str(trained),
                "--iterates",
                "0",
                "--method",
                "estimate",
                "--top-k",
                "2",
                "--trace-rtol",
                "1e-9",
                "--trace-max-matvecs",
                "12",
                "--samples",
                "1",
                "--seed",
                "9",
                "--backend",
                "vjp_grad",
                "--no-progress",
                "--out",
                str(out),
            ]
        )
    assert code == 0
    assert "did not converge" in capsys.readouterr().err
    rec = json.loads(out.read_text())
    r = rec["result"]
    assert r["converged"] is False
    trace = r["per_sample"][0]["trace"]
    assert trace["converged"] is False and trace["reason"]
    # every seed that made the numbers is in the record
    assert r["seed"] == 9 and rec["run_seed"] == 3 and rec["data_seed"] == 2024
    assert all(s["seed"] is not None for s in r["per_sample"])


def test_hessian_float32_with_a_tight_tolerance_warns(trained):
    from landscape.cli import main

    with pytest.warns(RuntimeWarning, match="float32"):
        assert (
            main(
                [
                    "hessian",
                    str(trained),
                    "--iterates",
                    "2",
                    "--method",
                    "estimate",
                    "--top-k",
                    "1",
                    "--eig-tol",
                    "1e-10",
                    "--dtype",
                    "float32",
                    "--samples",
                    "1",
                    "--backend",
                    "vjp_grad",
                    "--no-progress",
                ]
            )
            == 0
        )


def test_every_output_records_its_seeds(trained, tmp_path):
    from landscape.checkpoint import load_checkpoint
    from landscape.cli import main

    m = json.loads((trained / "metrics.json").read_text())
    assert (m["seed"], m["data_seed"], m["test_seed"]) == (3, 4, 2024)
    ck = load_checkpoint(trained)
    assert (ck.config.seed, ck.config.data_seed, ck.config.test_seed, ck.test_seed) == (3, 4, 2024, 2024)
    assert ck.extra["seed"] == 3

    ev = tmp_path / "ev.json"
    assert (
        main(
            [
                "evaluate",
                str(trained),
                "--n-test",
                "4",
                "--attack-steps",
                "1",
                "--test-seed",
                "17",
                "--quiet",
                "--out",
                str(ev),
            ]
        )
        == 0
    )
    rep = json.loads(ev.read_text())
    assert rep["eval_config"]["test_seed"] == 17 and rep["seeds"]["test_seed"] == 17
    row = next(r for r in rep["rows"] if r["kind"] == "model")
    assert (row["seed"], row["data_seed"]) == (3, 4)

    sl = tmp_path / "s.json"
    assert main(["slice", str(trained), "--grid", "3", "--seed", "5", "--no-html", "--out", str(sl)]) == 0
    s = json.loads(sl.read_text())
    assert s["seed"] == 5 and s["checkpoint"]["test_seed"] == 2024

    an = tmp_path / "an"
    assert (
        main(
            [
                "analyze",
                str(trained),
                "--samples",
                "1",
                "--iterates",
                "0,2",
                "--grid",
                "3",
                "--param-grid",
                "0",
                "--eps",
                "--seed",
                "6",
                "--no-html",
                "-q",
                "--out",
                str(an),
            ]
        )
        == 0
    )
    a = json.loads((an / "analysis.json").read_text())
    assert a["settings"]["curvature"]["seed"] == 6
    assert all(e["test_seed"] == 2024 for e in a["checkpoints"])


def test_report_marks_unconverged_numbers(trained, tmp_path):
    """An estimator out of budget must be visible in analysis.json and shown as unconverged in the report."""
    from landscape.survey import analyze_checkpoints

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rec = analyze_checkpoints(
            [str(trained)],
            tmp_path / "an",
            samples=1,
            iterates="0,2",
            seed=0,
            progress=False,
            write_html=True,
            method="estimate",
            trace_rtol=1e-12,
            trace_max_matvecs=12,
            top_k=1,
            slice_n=3,
            param_slice_n=0,
            eps=(),
        )
    curv = rec["checkpoints"][0]["curvature"]
    assert curv["converged"] is False and curv["unconverged"]  # the estimator said so ...
    text = json.dumps(
        json.loads((tmp_path / "an" / "analysis.json").read_text())["checkpoints"][0]["curvature"]
    )
    assert '"converged": false' in text
    html = (tmp_path / "an" / "report.html").read_text()
    visible = re.sub(
        r"<script\b.*?</script>", "", html, flags=re.DOTALL | re.IGNORECASE
    ).lower()  # not plotly.js
    assert any(
        w in visible for w in ("unconverged", "not converged", "did not converge")
    )  # ... and the report shows it
