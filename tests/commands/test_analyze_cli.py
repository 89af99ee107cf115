"""``landscape analyze`` and ``landscape slice`` on tiny saved checkpoints."""

import json
from html.parser import HTMLParser

import numpy as np
import pytest
import torch

from landscape.cli import main
from tests.cli_helpers import tiny_checkpoints


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return tiny_checkpoints(tmp_path_factory.mktemp("runs"))


FAST = ["--samples", "2", "--grid", "5", "--param-grid", "3", "--eps", "0", "0.5", "--pgd-steps", "2", "-q"]


def test_analyze_writes_json_and_report(checkpoints, tmp_path, capsys):
    out = tmp_path / "an"
    threads = torch.get_num_threads()
    assert (
        main(["analyze", *checkpoints, "--out", str(out), "--iterates", "0,2", "--threads", "1", *FAST]) == 0
    )
    assert torch.get_num_threads() == threads
    rec = json.loads((out / "analysis.json").read_text())
    assert rec["settings"]["threads"] == 1
    assert rec["format"] == "landscape-analysis/2"
    assert rec["settings"]["iterates"] == [0, 2] and rec["settings"]["curvature"]["seed"] == 0
    assert [e["label"] for e in rec["checkpoints"]] == ["mse", "sgd-jitter"]
    from landscape.survey import curvature_of

    for e in rec["checkpoints"]:
        c = curvature_of(e)
        assert c.iterates == (0, 2) and c.method == "dense"
        assert c.summary(2)["trace"].mean == pytest.approx(2 * 16)  # k = K: H = 2I
        assert c.summary(2)["lambda_min"].mean == pytest.approx(2.0)
        s = e["slices"]["input"]
        assert np.asarray(s["values"]).shape == (5, 5) and s["k"] == 0
        assert s["values"][2][2] == pytest.approx(s["center_value"], rel=1e-12)
        assert e["test_seed"] == 11 and e["robustness"]["eps"] == [0.0, 0.5]
    # one backend selection for the shared architecture: the second checkpoint reuses the first's choice
    first, second = rec["checkpoints"]
    assert first["curvature"]["backend_choice"] is not None and "backend_chosen_by" not in first
    assert second["backend_chosen_by"] == "mse" and second["curvature"]["backend_choice"] is None
    assert second["curvature"]["backend"] == first["curvature"]["backend"]
    # same directions (same seeds) for both checkpoints
    seeds = [[d["seed"] for d in e["slices"]["input"]["directions"]] for e in rec["checkpoints"]]
    assert seeds[0] == seeds[1]
    html = (out / "report.html").read_text()
    p = HTMLParser()
    p.feed(html)
    assert html.count("plotly.js v") == 1 and html.count("<section") >= 8


def test_analyze_all_iterates_and_no_html(checkpoints, tmp_path):
    out = tmp_path / "an2"
    assert main(["analyze", checkpoints[0], "--out", str(out), "--no-html", *FAST]) == 0
    rec = json.loads((out / "analysis.json").read_text())
    assert rec["settings"]["iterates"] == [0, 1, 2]
    assert not (out / "report.html").exists()


def test_analyze_bad_input(checkpoints, tmp_path, capsys):
    assert main(["analyze", checkpoints[0], "--out", str(tmp_path / "a"), "--iterates", "9", *FAST]) == 2
    assert "0..K" in capsys.readouterr().err
    assert main(["analyze", str(tmp_path / "missing"), "--out", str(tmp_path / "b"), *FAST]) == 2
    assert (
        main(["analyze", checkpoints[0], "--out", str(tmp_path / "c"), "--slice-dirs", "random,bogus", *FAST])
        == 2
    )
    assert "--slice-dirs" in capsys.readouterr().err


def test_slice_command(checkpoints, tmp_path, capsys):
    from landscape.curvature.slices import load_slice

    out = tmp_path / "s.json"
    assert (
        main(
            [
                "slice",
                checkpoints[1],
                "--out",
                str(out),
                "--iterate",
                "1",
                "--grid",
                "5",
                "--dirs",
                "random,gradient",
            ]
        )
        == 0
    )
    rec = json.loads(out.read_text())
    assert rec["space"] == "input" and rec["k"] == 1 and rec["checkpoint"]["label"] == "sgd-jitter"
    assert [d["kind"] for d in rec["directions"]] == ["random", "gradient"]
    assert out.with_suffix(".html").read_text().count("plotly.js v") == 1
    npz = tmp_path / "p.npz"
    assert (
        main(
            [
                "slice",
                checkpoints[0],
                "--out",
                str(npz),
                "--space",
                "parameter",
                "--dirs",
                "filter",
                "--grid",
                "5",
                "--no-html",
            ]
        )
        == 0
    )
    s = load_slice(npz)
    assert s.space == "parameter" and s.values.shape == (5,) and s.vectors is not None
    assert not npz.with_suffix(".html").exists()
    assert main(["slice", checkpoints[0], "--out", str(tmp_path / "x.txt")]) == 2
    assert main(["slice", checkpoints[0], "--out", str(tmp_path / "x.json"), "--dirs", "filter"]) == 2
    assert main(["slice", checkpoints[0], "--out", str(tmp_path / "x.json"), "--iterate", "5"]) == 2
    assert "K=2" in capsys.readouterr().err
