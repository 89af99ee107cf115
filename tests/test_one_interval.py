"""One number, three entry points, one interval: the ID PSNR difference (sgd-jitter − MSE, per-seed mean over
the same test samples) gets the same seed-level t interval from the experiment tables
(:func:`landscape.experiment.build_tables`), from ``claims`` (:func:`landscape.claims.rejudge`) and in the
report page built from that claims result (:func:`landscape.records.merge_results` + ``render_report``).

The data are the stored per-sample PSNRs of ``theory/results_claims_main.json`` (3 seeds, learned step), and
the reference is a hand-written t interval (mean ± t_{0.975, n−1} s/√n)."""

import copy
import json
import math
from pathlib import Path

import numpy as np
from scipy import stats as sps

from landscape.claims import ClaimsResult, rejudge
from landscape.experiment import build_tables
from landscape.records import merge_results
from landscape.viz.report import render_report

STORED = Path(__file__).resolve().parents[1] / "theory" / "results_claims_main.json"
GROUP = "sgd-jitter (paper, σ=0.1)"


def _eval(psnr):
    per = {"psnr": list(psnr), "ssim": [0.5] * len(psnr)}
    return {
        "conditions": [{"key": "id"}],
        "rows": [{"kind": "model", "results": {"id": {"per_sample": per}}}],
    }


def _record(entries):
    runs = {}
    for e in entries:
        strat = e["strategy"]["name"]
        runs[f"{strat}-s{e['seed']}"] = {
            "study": "main",
            "variant": "",
            "arch": "gd",
            "strategy": strat,
            "seed": e["seed"],
            "evaluation": _eval(e["splits"]["id"]["psnr"]),
            "sum_trace": 1.0,
            "epochs": 1,
            "stopping": {"reason": "plateau"},
        }
    return {"runs": runs, "task": "denoise", "preset": "fast", "seeds": 3}


def test_experiment_claims_and_report_give_one_interval_for_one_number(tmp_path):
    raw = json.loads(STORED.read_text())
    result = rejudge(ClaimsResult.from_dict(copy.deepcopy(raw)))
    claim = next(c for c in result.claims if c.name == "accuracy: PSNR [id]" and c.group == GROUP)
    learned = [e for e in raw["checkpoints"] if e["learn_step"]]
    assert sorted(e["strategy"]["name"] for e in learned) == ["mse"] * 3 + ["sgd-jitter"] * 3

    # the independent reference: per-seed mean differences, a t interval with n - 1 df
    by = {(e["strategy"]["name"], e["seed"]): np.asarray(e["splits"]["id"]["psnr"]) for e in learned}
    d = np.array([(by["sgd-jitter", s] - by["mse", s]).mean() for s in sorted({e["seed"] for e in learned})])
    half = sps.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    ref = (d.mean(), d.mean() - half, d.mean() + half)

    sl = claim.seed_level  # entry point 1: claims
    assert claim.n_seeds == 3 and sl.kind == "seeds" and sl.n == 3
    np.testing.assert_allclose((sl.estimate, sl.low, sl.high), ref, rtol=0, atol=1e-12)

    record = _record(learned)  # entry point 2: the experiment tables
    cell = build_tables(record)["paired"][0]["cells"]["id"]["psnr"]
    np.testing.assert_allclose((cell["mean"], cell["lo"], cell["hi"]), ref, rtol=0, atol=1e-12)

    path = tmp_path / "claims.json"  # entry point 3: the report page of that claims result
    path.write_text(json.dumps(result.to_dict()))
    page = render_report(merge_results([path]))
    assert str(sl) == f"{ref[0]:.4g} [{ref[1]:.4g}, {ref[2]:.4g}]" and f"<td>{sl} (" in page


def test_a_result_saved_under_the_bootstrap_rules_is_rejudged_on_load():
    """No verdict shown rests on a percentile bootstrap over a few seeds: loading the 3-seed run of record
    (saved under those rules) re-judges it from its stored measurements, exactly as rejudge does."""
    raw = json.loads(STORED.read_text())
    assert any("percentile bootstrap" in (c.get("seed_level") or {}).get("method", "") for c in raw["claims"])
    saved = ClaimsResult.from_dict(raw, as_saved=True)
    loaded = ClaimsResult.from_dict(raw)
    assert loaded.verdicts() == rejudge(saved).verdicts() != saved.verdicts()
    assert not any("bootstrap" in c.seed_level.method for c in loaded.claims if c.seed_level is not None)
    assert "Re-judged on load" in loaded.notes[-1]
    again = ClaimsResult.from_dict(json.loads(json.dumps(loaded.to_dict(), default=str)))
    assert again.verdicts() == loaded.verdicts() and again.notes == loaded.notes
