"""`landscape train`: writes the three outputs; bad input is one line and exit code 2."""

import json

import pytest

from landscape.cli import main
from landscape.strategies import trained_noise

TINY = ["--task", "denoise", "--train-size", "16", "--batch-size", "8", "--epochs", "1", "-K", "2", "--quiet"]


def test_train_writes_checkpoint_log_and_metrics(tmp_path):
    out = tmp_path / "run"
    code = main(
        [
            "train",
            *TINY,
            "--strategy",
            "sgd-jitter",
            "--sigma",
            "0.1,0.2",
            "--fixed-step",
            "--seed",
            "4",
            "--activation",
            "softplus",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "log.csv", "metrics.json"]
    m = json.loads((out / "metrics.json").read_text())
    assert m["strategy"] == "sgd-jitter" and m["seed"] == 4 and m["epochs"] == 1
    from landscape import load_checkpoint

    ck = load_checkpoint(out)
    # sigma is stored once, in the strategy; the loaded model holds no noise
    import torch

    payload = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ck.saved_config["strategy"]["sigma"] == [0.1, 0.2] and ck.config.strategy.sigma == (0.1, 0.2)
    assert "jitter" not in payload["model_config"] and "jitter" not in ck.config.model.to_dict()
    assert "sigma" not in json.dumps(m) and trained_noise(ck.saved_config).sigma == (0.1, 0.2)
    assert ck.config.strategy.noise == trained_noise(ck.saved_config)
    assert ck.config.model.effective.learn_step is False
    assert ck.config.model.effective.regularizer.activation == "softplus"
    assert ck.config.train_size == 16 and ck.model.n_iter == 2


def test_resume_from_the_cli(tmp_path):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    args = [a if a != "1" else "2" for a in TINY]  # --epochs 2
    assert main(["train", *args, "--out", str(out), "--resume"]) == 0
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 2


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--strategy", "dropout"], "--strategy"),
        (["--task", "ct"], "--task"),
        (["--strategy", "sgd-jitter", "--sigma", "-0.1"], "--sigma"),
        (["--strategy", "adversarial", "--eps", "-1"], "--eps"),
        (["--strategy", "mse", "--sigma", "0.1"], "sigma"),
        (["--epochs", "-2"], "--epochs"),
        (["--device", "tpu"], "device"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, needle, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        code = main(["train", *TINY, *args, "--out", str(tmp_path / "x")])
        raise SystemExit(code)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and "Traceback" not in err


def test_output_that_cannot_be_written(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["train", *TINY, "--out", str(blocker)]) == 2
    assert main(["train", *TINY, "--out", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("--out" in e for e in err)


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for opt in (
        "--task",
        "--strategy",
        "--sigma",
        "--n-iter",
        "--activation",
        "--epochs",
        "--seed",
        "--size",
        "--out",
        "--fixed-step",
        "--train-size",
        "--fresh-noise",
        "--device",
        "--eps",
        "--resume",
        "sgd-jitter",
        "spgd-jitter",
        "input-jitter",
        "adversarial",
    ):
        assert opt in text


def test_an_existing_run_is_never_overwritten_without_asking(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    before = (out / "checkpoint.pt").read_bytes()
    capsys.readouterr()
    assert main(["train", *TINY, "--seed", "9", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds a run" in err[0] and "--overwrite" in err[0]
    assert (out / "checkpoint.pt").read_bytes() == before  # untouched
    assert main(["train", *TINY, "--out", str(out), "--resume", "--overwrite"]) == 2
    assert main(["train", *TINY, "--seed", "9", "--out", str(out), "--overwrite"]) == 0
    assert (out / "checkpoint.pt").read_bytes() != before
