"""`landscape evaluate`: JSON + table; bad checkpoints, radii and output paths exit with code 2."""

import json

import pytest

from landscape.cli import main

TINY = ["--task", "denoise", "--train-size", "16", "--batch-size", "8", "--epochs", "1", "-K", "2", "--quiet"]


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_eval")
    for s in ("mse", "input-jitter"):
        assert main(["train", *TINY, "--strategy", s, "--out", str(root / s)]) == 0
    return root


def test_evaluate_writes_json_and_prints_the_table(ckpts, tmp_path, capsys):
    out = tmp_path / "res.json"
    code = main(
        [
            "evaluate",
            str(ckpts / "mse"),
            str(ckpts / "input-jitter" / "checkpoint.pt"),
            "--attack-eps",
            "0.05",
            "0.1",
            "--random-eps",
            "--n-test",
            "6",
            "--attack-steps",
            "2",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    rep = json.loads(out.read_text())
    assert [r["name"] for r in rep["rows"]] == ["measurement", "affine", "mse", "input-jitter"]
    assert [c["key"] for c in rep["conditions"]][:3] == ["id", "pgd:0.05", "pgd:0.1"]
    assert not any(c["kind"] == "random" for c in rep["conditions"])
    printed = capsys.readouterr().out
    assert "PGD ε=0.05" in printed and "input-jitter" in printed


@pytest.mark.parametrize("kind", ["missing", "corrupt", "negative-eps", "out-dir", "out-missing-folder"])
def test_bad_input_exits_2_with_one_line(kind, ckpts, tmp_path, capsys):
    ck, out, extra = str(ckpts / "mse"), str(tmp_path / "r.json"), []
    if kind == "missing":
        ck = str(tmp_path / "nope.pt")
    elif kind == "corrupt":
        bad = tmp_path / "bad.pt"
        bad.write_bytes(b"\x00garbage")
        ck = str(bad)
    elif kind == "negative-eps":
        extra = ["--attack-eps", "-0.5"]
    elif kind == "out-dir":
        out = str(tmp_path)
    else:
        out = str(tmp_path / "no" / "such" / "r.json")
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(main(["evaluate", ck, *extra, "--out", out, "--quiet"]))
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and err.startswith("landscape evaluate")


def test_help(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    text = capsys.readouterr().out
    for opt in ("CKPT", "--attack-eps", "--random-eps", "--out", "--n-test", "--test-seed", "--eps-absolute"):
        assert opt in text
