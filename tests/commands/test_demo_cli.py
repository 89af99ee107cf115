"""`landscape demo`: the wiring end to end, on a shrunken preset (the real one is timed by hand)."""

import dataclasses
import json

import pytest

from landscape import presets
from landscape.cli import main


def test_demo_trains_both_models_and_prints_the_comparison(tmp_path, monkeypatch, capsys):
    preset = presets.TRAIN_PRESETS["denoise"]["small"]
    small = dataclasses.replace(
        preset,
        epochs=1,
        train_size=32,
        val_size=16,
        model={"n_iter": 2, "regularizer": {"kind": "cnn", "width": 8, "depth": 2, "kernel_size": 5}},
        evaluation={**preset.evaluation, "n_test": 8, "steps": 2},
    )
    monkeypatch.setitem(presets.TRAIN_PRESETS["denoise"], "small", small)
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    assert (out / "mse" / "checkpoint.pt").exists() and (out / "sgd-jitter" / "checkpoint.pt").exists()
    rep = json.loads((out / "evaluation.json").read_text())
    assert [r["name"] for r in rep["rows"]] == ["measurement", "affine", "mse", "sgd-jitter"]
    printed = capsys.readouterr().out
    assert "sgd-jitter" in printed and "OOD" in printed and "PGD" in printed
    # the curvature step: analysis.json + report.html, and the per-iterate table printed
    analysis = json.loads((out / "analysis.json").read_text())
    assert [e["label"] for e in analysis["checkpoints"]] == ["mse", "sgd-jitter"]
    assert analysis["settings"]["iterates"] == [0, 1, 2]
    assert (out / "report.html").read_text().count("<html") == 1
    assert "λ_max" in printed and "| 2 |" in printed


def test_demo_help_and_bad_out(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    assert "--out" in capsys.readouterr().out
    f = tmp_path / "f"
    f.write_text("")
    assert main(["demo", "--out", str(f), "--quiet"]) == 2
