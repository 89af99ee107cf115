"""Every command validates its input: a table of bad invocations, each exiting with code 2 and one stderr line
that names the problem, never a traceback.

The invocations run in-process through :func:`landscape.cli.main` (argparse errors raise ``SystemExit(2)``,
everything else returns 2); ``test_bad_invocations_in_a_real_process`` checks a few through the installed
``landscape`` script as well.
"""

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from landscape.cli import main

TRAIN = [
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
    "--quiet",
]


class _RunsShell:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


@pytest.fixture(scope="module")
def files(tmp_path_factory, request):
    """A good tiny run plus every kind of bad file the table needs."""
    root = tmp_path_factory.mktemp("cli_errors")
    run = root / "run"
    assert main(["train", *TRAIN, "--seed", "1", "--out", str(run)]) == 0
    ck = run / "checkpoint.pt"
    payload = torch.load(ck, weights_only=True)

    def resave(name, **changes):
        p = root / name
        torch.save({**payload, **changes}, p)
        return p

    (root / "garbage.pt").write_bytes(b"\x00\x01 this is not a checkpoint")
    data = ck.read_bytes()
    (root / "truncated.pt").write_bytes(data[: len(data) // 2])
    (root / "broken.json").write_text('{"format": "landscape-checkpoint", "state_dict": [1, 2')
    torch.save(
        {"format": "landscape-checkpoint", "x": _RunsShell(f"touch {root / 'PWNED'}")}, root / "evil.pt"
    )
    with open(root / "evil.pkl", "wb") as fh:
        pickle.dump({"x": _RunsShell(f"touch {root / 'PWNED'}")}, fh)
    sd = {k: v.clone() for k, v in payload["state_dict"].items()}
    next(v for v in sd.values() if v.is_floating_point()).view(-1)[0] = float("nan")
    resave("nan.pt", state_dict=sd)
    resave("future.pt", versions={**payload["versions"], "landscape": "7.0.0"})
    resave("format.pt", format_version=99)
    resave("unknown_key.pt", model_config={**payload["model_config"], "attention": True})
    (root / "empty_dir").mkdir()
    (root / "blocker").write_text("a file where a folder is needed")
    # round two: outputs that are inputs, runs that must not be lost, damaged resume state, zip bombs
    (root / "link.pt").symlink_to(ck)
    os.link(ck, root / "hard.pt")
    resave("n_iter.pt", model_config={**payload["model_config"], "n_iter": 5})
    resave("task_edit.pt", task_config={**payload["task_config"], "noise_sigma": 0.5})
    _zip_bomb(root / "bomb.pt", inflated=8 << 20)

    def resume_dir(name, **changes):
        (root / name).mkdir()
        torch.save({**payload, **changes}, root / name / "checkpoint.pt")

    rng = payload["rng"]
    opt = payload["optimizer"]
    state1 = {**opt["state"][1], "exp_avg": torch.zeros(3)}
    resume_dir("rng_dtype", rng={**rng, "data": rng["data"].float()})
    resume_dir("rng_short", rng={**rng, "jitter": rng["jitter"][:100]})
    resume_dir("rng_missing", rng={k: v for k, v in rng.items() if k != "strategy"})
    resume_dir("opt_shape", optimizer={**opt, "state": {**opt["state"], 1: state1}})
    resume_dir("history_rows", history=payload["history"][:1])
    resume_dir(
        "history_nan", history=[payload["history"][0], {**payload["history"][1], "val_loss": float("nan")}]
    )
    resume_dir("epoch_negative", epoch=-1)
    state1_nan = {**opt["state"][1], "exp_avg": torch.full_like(opt["state"][1]["exp_avg"], float("nan"))}
    resume_dir("opt_nan", optimizer={**opt, "state": {**opt["state"], 1: state1_nan}})
    groups = [{**opt["param_groups"][0], "params": opt["param_groups"][0]["params"][:-1]}]
    resume_dir("opt_params", optimizer={**opt, "param_groups": groups})
    (root / "runlink").symlink_to(run, target_is_directory=True)
    (root / "bomb_run").mkdir()
    _zip_bomb(root / "bomb_run" / "checkpoint.pt", inflated=8 << 20)
    (root / "demo_dir" / "mse").mkdir(parents=True)
    (root / "demo_dir" / "mse" / "checkpoint.pt").write_bytes(ck.read_bytes())
    assert main(["train", "--task", "mri", *TRAIN[2:], "--epochs", "0", "--out", str(root / "mri")]) == 0
    from landscape.io import RunLock

    lock = RunLock(root / "locked")
    (root / "locked").mkdir()
    lock.acquire()  # held for the module: every train into it must be refused
    request.addfinalizer(lock.release)
    return root


def _zip_bomb(path: Path, *, inflated: int) -> None:
    """A zip archive whose one deflated member inflates to ``inflated`` zero bytes (a few KiB on disk)."""
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        with zf.open("archive/data.pkl", "w") as fh:
            chunk = bytes(1 << 20)
            for _ in range(inflated // len(chunk)):
                fh.write(chunk)


def _p(root: Path, name: str) -> str:
    return str(root / name)


# (id, argv with {root}/{ck} placeholders, fragment the one error line must contain)
CASES = [
    # ---- train -----------------------------------------------------------------------------------
    ("train-unknown-strategy", ["train", *TRAIN, "--strategy", "dropout", "--out", "{root}/t"], "dropout"),
    ("train-unknown-task", ["train", *TRAIN, "--task", "ct", "--out", "{root}/t"], "'ct'"),
    ("train-unknown-activation", ["train", *TRAIN, "--activation", "swish9", "--out", "{root}/t"], "swish9"),
    ("train-unknown-size", ["train", *TRAIN, "--size", "huge", "--out", "{root}/t"], "huge"),
    (
        "train-negative-sigma",
        ["train", *TRAIN, "--strategy", "sgd-jitter", "--sigma", "-0.1", "--out", "{root}/t"],
        "-0.1",
    ),
    (
        "train-nan-sigma",
        ["train", *TRAIN, "--strategy", "sgd-jitter", "--sigma", "nan", "--out", "{root}/t"],
        "nan",
    ),
    (
        "train-sigma-not-a-number",
        ["train", *TRAIN, "--strategy", "input-jitter", "--sigma", "abc", "--out", "{root}/t"],
        "abc",
    ),
    (
        "train-negative-eps",
        ["train", *TRAIN, "--strategy", "adversarial", "--eps", "-1", "--out", "{root}/t"],
        "-1",
    ),
    ("train-sigma-for-mse", ["train", *TRAIN, "--sigma", "0.1", "--out", "{root}/t"], "sigma"),
    ("train-negative-epochs", ["train", *TRAIN, "--epochs", "-2", "--out", "{root}/t"], "-2"),
    ("train-zero-batch", ["train", *TRAIN, "--batch-size", "0", "--out", "{root}/t"], "--batch-size"),
    ("train-zero-train-size", ["train", *TRAIN, "--train-size", "0", "--out", "{root}/t"], "--train-size"),
    ("train-zero-iterations", ["train", *TRAIN, "-K", "0", "--out", "{root}/t"], "--n-iter"),
    ("train-zero-lr", ["train", *TRAIN, "--lr", "0", "--out", "{root}/t"], "--lr"),
    (
        "train-inf-lr",
        ["train", *TRAIN, "--lr", "inf", "--out", "{root}/t"],
        "--lr: 'inf': expected a finite number > 0",
    ),
    ("train-negative-seed", ["train", *TRAIN, "--seed", "-1", "--out", "{root}/t"], "--seed"),
    (
        "train-negative-noise",
        ["train", *TRAIN, "--noise-sigma", "-0.5", "--out", "{root}/t"],
        "--noise-sigma",
    ),
    ("train-unknown-device", ["train", *TRAIN, "--device", "tpu", "--out", "{root}/t"], "tpu"),
    ("train-out-is-a-file", ["train", *TRAIN, "--out", "{root}/blocker"], "not a directory"),
    ("train-out-unwritable", ["train", *TRAIN, "--out", "{root}/blocker/sub"], "cannot create"),
    ("train-resume-nothing", ["train", *TRAIN, "--out", "{root}/empty_dir", "--resume"], "cannot resume"),
    ("train-resume-corrupt", ["train", *TRAIN, "--out", "{root}/corrupt_run", "--resume"], "corrupt"),
    (
        "train-resume-other-config",
        ["train", *TRAIN, "--seed", "2", "--out", "{root}/run", "--resume"],
        "differs",
    ),
    # ---- evaluate --------------------------------------------------------------------------------
    ("evaluate-missing-file", ["evaluate", "{root}/nope.pt", "--out", "{root}/r.json"], "nope.pt"),
    (
        "evaluate-dir-without-checkpoint",
        ["evaluate", "{root}/empty_dir", "--out", "{root}/r.json"],
        "empty_dir",
    ),
    ("evaluate-garbage", ["evaluate", "{root}/garbage.pt", "--out", "{root}/r.json"], "corrupt"),
    ("evaluate-truncated", ["evaluate", "{root}/truncated.pt", "--out", "{root}/r.json"], "truncated"),
    ("evaluate-corrupt-json", ["evaluate", "{root}/broken.json", "--out", "{root}/r.json"], "broken.json"),
    ("evaluate-malicious-pickle", ["evaluate", "{root}/evil.pt", "--out", "{root}/r.json"], "unsafe"),
    ("evaluate-malicious-plain-pickle", ["evaluate", "{root}/evil.pkl", "--out", "{root}/r.json"], "unsafe"),
    ("evaluate-nan-weights", ["evaluate", "{ck}", "{root}/nan.pt", "--out", "{root}/r.json"], "NaN"),
    (
        "evaluate-future-version",
        ["evaluate", "{root}/future.pt", "--out", "{root}/r.json"],
        "landscape 7.0.0",
    ),
    (
        "evaluate-format-version",
        ["evaluate", "{root}/format.pt", "--out", "{root}/r.json"],
        "format_version=99",
    ),
    (
        "evaluate-unknown-config-key",
        ["evaluate", "{root}/unknown_key.pt", "--out", "{root}/r.json"],
        "model.attention",
    ),
    ("evaluate-negative-eps", ["evaluate", "{ck}", "--attack-eps", "-0.5", "--out", "{root}/r.json"], "-0.5"),
    ("evaluate-nan-random-eps", ["evaluate", "{ck}", "--random-eps", "nan", "--out", "{root}/r.json"], "nan"),
    ("evaluate-zero-n-test", ["evaluate", "{ck}", "--n-test", "0", "--out", "{root}/r.json"], "--n-test"),
    ("evaluate-out-is-a-dir", ["evaluate", "{ck}", "--out", "{root}/empty_dir"], "directory"),
    ("evaluate-out-missing-folder", ["evaluate", "{ck}", "--out", "{root}/no/such/r.json"], "does not exist"),
    ("evaluate-out-unwritable", ["evaluate", "{ck}", "--out", "{root}/blocker/r.json"], "blocker"),
    # ---- hessian ---------------------------------------------------------------------------------
    ("hessian-k-above-K", ["hessian", "{ck}", "--iterates", "9", "--no-progress"], "9"),
    ("hessian-k-negative", ["hessian", "{ck}", "--iterates", "-1", "--no-progress"], "-1"),
    ("hessian-k-not-a-number", ["hessian", "{ck}", "--iterates", "abc", "--no-progress"], "iterates"),
    ("hessian-negative-top-k", ["hessian", "{ck}", "--top-k", "-1", "--no-progress"], "--top-k"),
    (
        "hessian-nothing-to-compute",
        ["hessian", "{ck}", "--top-k", "0", "--bottom-k", "0", "--no-trace", "--no-progress"],
        "nothing to compute",
    ),
    ("hessian-zero-samples", ["hessian", "{ck}", "--samples", "0", "--no-progress"], "--samples"),
    ("hessian-unknown-split", ["hessian", "{ck}", "--split", "mars", "--no-progress"], "mars"),
    ("hessian-zero-tol", ["hessian", "{ck}", "--eig-tol", "0", "--no-progress"], "--eig-tol"),
    ("hessian-unknown-dtype", ["hessian", "{ck}", "--dtype", "float16", "--no-progress"], "float16"),
    ("hessian-missing-file", ["hessian", "{root}/nope.pt", "--no-progress"], "nope.pt"),
    ("hessian-nan-weights", ["hessian", "{root}/nan.pt", "--no-progress"], "NaN"),
    ("hessian-out-is-a-dir", ["hessian", "{ck}", "--out", "{root}/empty_dir", "--no-progress"], "directory"),
    # ---- slice -----------------------------------------------------------------------------------
    ("slice-k-above-K", ["slice", "{ck}", "--iterate", "9", "--grid", "3", "--out", "{root}/s.json"], "9"),
    ("slice-zero-grid", ["slice", "{ck}", "--grid", "0", "--out", "{root}/s.json"], "--grid"),
    (
        "slice-unknown-direction",
        ["slice", "{ck}", "--dirs", "sideways", "--out", "{root}/s.json"],
        "sideways",
    ),
    (
        "slice-negative-span",
        ["slice", "{ck}", "--span", "-1", "--out", "{root}/s.json"],
        "--span: '-1': expected a finite number > 0",
    ),
    (
        "slice-unknown-split",
        ["slice", "{ck}", "--split", "mars", "--grid", "3", "--out", "{root}/s.json"],
        "mars",
    ),
    ("slice-bad-out-suffix", ["slice", "{ck}", "--out", "{root}/s.txt"], "s.txt"),
    ("slice-out-unwritable", ["slice", "{ck}", "--out", "{root}/blocker/s.json"], "blocker"),
    ("slice-corrupt-checkpoint", ["slice", "{root}/garbage.pt", "--out", "{root}/s.json"], "corrupt"),
    # ---- analyze ---------------------------------------------------------------------------------
    ("analyze-zero-samples", ["analyze", "{ck}", "--samples", "0", "--out", "{root}/a"], "--samples"),
    (
        "analyze-k-above-K",
        ["analyze", "{ck}", "--iterates", "9", "--samples", "1", "--out", "{root}/a", "-q"],
        "9",
    ),
    (
        "analyze-k-not-a-number",
        ["analyze", "{ck}", "--iterates", "1,x", "--samples", "1", "--out", "{root}/a", "-q"],
        "iterate",
    ),
    (
        "analyze-unknown-split",
        ["analyze", "{ck}", "--split", "mars", "--samples", "1", "--out", "{root}/a", "-q"],
        "mars",
    ),
    (
        "analyze-unknown-slice-dirs",
        ["analyze", "{ck}", "--slice-dirs", "up,down", "--out", "{root}/a"],
        "up,down",
    ),
    ("analyze-negative-eps", ["analyze", "{ck}", "--eps", "-1", "--out", "{root}/a"], "-1"),
    ("analyze-out-is-a-file", ["analyze", "{ck}", "--out", "{root}/blocker"], "not a directory"),
    ("analyze-missing-file", ["analyze", "{root}/nope.pt", "--out", "{root}/a", "-q"], "nope.pt"),
    ("analyze-nan-weights", ["analyze", "{root}/nan.pt", "--out", "{root}/a", "-q"], "NaN"),
    # ---- demo ------------------------------------------------------------------------------------
    ("demo-negative-seed", ["demo", "--seed", "-3", "--out", "{root}/d"], "--seed"),
    ("demo-out-is-a-file", ["demo", "--out", "{root}/blocker", "-q"], "not a directory"),
    # ---- round two: an output is never one of the inputs ------------------------------------------
    ("evaluate-out-is-the-checkpoint", ["evaluate", "{ck}", "--out", "{ck}"], "is the input"),
    ("evaluate-out-is-a-symlinked-input", ["evaluate", "{root}/link.pt", "--out", "{ck}"], "is the input"),
    ("evaluate-out-is-a-hard-link", ["evaluate", "{root}/hard.pt", "--out", "{ck}"], "is the input"),
    (
        "evaluate-out-through-dotdot-is-metrics",
        ["evaluate", "{root}/run", "--out", "{root}/run/../run/metrics.json"],
        "is the input",
    ),
    (
        "hessian-out-is-metrics",
        ["hessian", "{ck}", "--out", "{root}/run/metrics.json", "--no-progress"],
        "is the input",
    ),
    (
        "hessian-out-is-the-log",
        ["hessian", "{ck}", "--out", "{root}/run/log.csv", "--no-progress"],
        "is the input",
    ),
    (
        "hessian-out-is-the-checkpoint",
        ["hessian", "{root}/link.pt", "--out", "{ck}", "--no-progress"],
        "is the input",
    ),
    (
        "slice-out-is-metrics",
        ["slice", "{ck}", "--grid", "3", "--out", "{root}/run/metrics.json"],
        "is the input",
    ),
    (
        "slice-out-is-a-symlinked-input",
        ["slice", "{root}/link.pt", "--out", "{root}/run/metrics.json"],
        "is the input",
    ),
    # ---- round two: no run is lost ----------------------------------------------------------------
    (
        "train-into-a-folder-in-use",
        ["train", *TRAIN, "--out", "{root}/locked"],
        "in use by another landscape process",
    ),
    ("train-overwrite-a-folder-in-use", ["train", *TRAIN, "--overwrite", "--out", "{root}/locked"], "in use"),
    (
        "train-over-an-existing-run",
        ["train", *TRAIN, "--seed", "1", "--out", "{root}/run"],
        "already holds a run",
    ),
    (
        "train-resume-and-overwrite",
        ["train", *TRAIN, "--resume", "--overwrite", "--out", "{root}/run"],
        "exclude",
    ),
    ("train-out-empty", ["train", *TRAIN, "--out", ""], "empty"),
    ("evaluate-out-empty", ["evaluate", "{ck}", "--out", ""], "empty"),
    ("demo-over-an-existing-run", ["demo", "--out", "{root}/demo_dir", "-q"], "already holds the run(s) mse"),
    # ---- round two: wrong numbers are refused -----------------------------------------------------
    (
        "hessian-trace-budget-too-small",
        [
            "hessian",
            "{ck}",
            "--method",
            "estimate",
            "--top-k",
            "0",
            "--bottom-k",
            "0",
            "--trace-max-matvecs",
            "2",
            "--backend",
            "double_backward",
            "--samples",
            "1",
            "--iterates",
            "0",
            "--no-progress",
        ],
        "max_matvecs=2 is too small",
    ),
    (
        "analyze-slice-k-above-K",
        ["analyze", "{ck}", "--slice-iterate", "99", "--out", "{root}/a", "-q"],
        "--slice-iterate 99",
    ),
    (
        "analyze-density-k-above-K",
        ["analyze", "{ck}", "--density-k", "99", "--out", "{root}/a", "-q"],
        "--density-k 99",
    ),
    (
        "evaluate-edited-n-iter",
        ["evaluate", "{root}/n_iter.pt", "--out", "{root}/r.json"],
        "model_config.n_iter=5",
    ),
    ("hessian-edited-n-iter", ["hessian", "{root}/n_iter.pt", "--no-progress"], "model_config.n_iter=5"),
    (
        "evaluate-edited-task",
        ["evaluate", "{root}/task_edit.pt", "--out", "{root}/r.json"],
        "task_config.noise_sigma",
    ),
    # ---- round two: one line instead of a traceback -----------------------------------------------
    ("hessian-huge-samples", ["hessian", "{ck}", "--samples", "1000000000", "--no-progress"], "of memory"),
    (
        "analyze-huge-samples",
        ["analyze", "{ck}", "--samples", "1000000000", "--out", "{root}/a", "-q"],
        "of memory",
    ),
    (
        "evaluate-huge-n-test",
        ["evaluate", "{ck}", "--n-test", "1000000000", "--out", "{root}/r.json", "-q"],
        "of memory",
    ),
    (
        "slice-huge-samples",
        [
            "slice",
            "{ck}",
            "--space",
            "parameter",
            "--samples",
            "1000000000",
            "--grid",
            "3",
            "--out",
            "{root}/s.json",
        ],
        "of memory",
    ),
    (
        "train-huge-train-size",
        ["train", *TRAIN, "--train-size", "1000000000", "--out", "{root}/t"],
        "of memory",
    ),
    (
        "slice-k-checked-before-a-huge-sample",
        [
            "slice",
            "{ck}",
            "--iterate",
            "9",
            "--sample",
            "1000000000",
            "--grid",
            "3",
            "--out",
            "{root}/s.json",
        ],
        "--iterate 9",
    ),
    ("train-device-cuda-abc", ["train", *TRAIN, "--device", "cuda:abc", "--out", "{root}/t"], "cuda:abc"),
    (
        "evaluate-device-cuda-abc",
        ["evaluate", "{ck}", "--device", "cuda:abc", "--out", "{root}/r.json"],
        "cuda:abc",
    ),
    ("evaluate-device-empty", ["evaluate", "{ck}", "--device", "", "--out", "{root}/r.json"], "--device"),
    (
        "hessian-params-bad-regex",
        ["hessian", "{ck}", "--wrt", "params", "--params", "(", "--no-progress"],
        "not a regular expression",
    ),
    (
        "hessian-linearize-on-mri",
        [
            "hessian",
            "{root}/mri",
            "--backend",
            "linearize",
            "--samples",
            "1",
            "--iterates",
            "0",
            "--no-progress",
        ],
        "'linearize' is not supported",
    ),
    (
        "train-resume-rng-dtype",
        ["train", *TRAIN, "--seed", "1", "--out", "{root}/rng_dtype", "--resume"],
        "rng['data']",
    ),
    (
        "train-resume-rng-short",
        ["train", *TRAIN, "--seed", "1", "--out", "{root}/rng_short", "--resume"],
        "rng['jitter']",
    ),
    (
        "train-resume-rng-missing",
        ["train", *TRAIN, "--seed", "1", "--out", "{root}/rng_missing", "--resume"],
        "strategy",
    ),
    (
        "train-resume-optimizer-shape",
        ["train", *TRAIN, "--seed", "1", "--out", "{root}/opt_shape", "--resume"],
        "optimizer state 1.exp_avg has shape (3,)",
    ),
    (
        "train-resume-history-rows",
        ["train", *TRAIN, "--seed", "1", "--out", "{root}/history_rows", "--resume"],
        "history has 1 rows",
    ),
    (
        "train-resume-history-nan",
        ["train", *TRAIN, "--seed", "1", "--out", "{root}/history_nan", "--resume"],
        "val_loss=nan",
    ),
    (
        "train-resume-epoch-negative",
        ["train", *TRAIN, "--seed", "1", "--out", "{root}/epoch_negative", "--resume"],
        "epoch=-1",
    ),
    (
        "train-resume-optimizer-nan",
        ["train", *TRAIN, "--seed", "1", "--out", "{root}/opt_nan", "--resume"],
        "optimizer state 1.exp_avg holds NaN",
    ),
    (
        "train-resume-optimizer-params",
        ["train", *TRAIN, "--seed", "1", "--out", "{root}/opt_params", "--resume"],
        "optimizer has 10 parameters",
    ),
    ("train-device-cuda-negative", ["train", *TRAIN, "--device", "cuda:-1", "--out", "{root}/t"], "cuda:-1"),
    ("train-device-uppercase", ["train", *TRAIN, "--device", "CPU", "--out", "{root}/t"], "'CPU'"),
    (
        "hessian-huge-samples-ood-split",
        ["hessian", "{ck}", "--split", "spikes", "--samples", "1000000000", "--no-progress"],
        "of memory",
    ),
    (
        "evaluate-out-in-a-symlinked-run",
        ["evaluate", "{root}/runlink", "--out", "{root}/run/log.csv"],
        "is the input",
    ),
    # ---- round two: denial of service -------------------------------------------------------------
    ("evaluate-zip-bomb", ["evaluate", "{root}/bomb.pt", "--out", "{root}/r.json"], "zip bomb"),
    ("hessian-zip-bomb", ["hessian", "{root}/bomb.pt", "--no-progress"], "zip bomb"),
    ("train-resume-zip-bomb", ["train", *TRAIN, "--out", "{root}/bomb_run", "--resume"], "zip bomb"),
    (
        "slice-refused-creates-no-folder",
        ["slice", "{ck}", "--dirs", "up", "--out", "{root}/newdir/s.json"],
        "'up'",
    ),
    ("analyze-bad-second-path", ["analyze", "{ck}", "{root}/nope.pt", "--out", "{root}/a", "-q"], "nope.pt"),
    # ---- top level -------------------------------------------------------------------------------
    ("unknown-command", ["frobnicate"], "frobnicate"),
]


def run_cli(argv):
    """``main(argv)`` -> exit code (argparse exits with SystemExit(2))."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def test_the_table_is_large_and_covers_every_command():
    assert len(CASES) >= 120
    assert len({c[0] for c in CASES}) == len(CASES)
    assert {c[1][0] for c in CASES} >= {"train", "evaluate", "hessian", "slice", "analyze", "demo"}


# Rows whose command belongs to code maintained elsewhere and still fails; strict, so a fix turns them into
# failures until the mark is removed.
KNOWN_FAILURES: dict[str, str] = {}


def _params():
    for name, argv, needle in CASES:
        marks = ()
        if name in KNOWN_FAILURES:
            marks = (pytest.mark.xfail(strict=True, reason=KNOWN_FAILURES[name]),)
        yield pytest.param(argv, needle, id=name, marks=marks)


@pytest.mark.parametrize("argv, needle", list(_params()))
def test_bad_invocation_exits_2_with_one_line(argv, needle, files, capsys):
    if "{root}/corrupt_run" in argv:
        (files / "corrupt_run").mkdir(exist_ok=True)
        (files / "corrupt_run" / "checkpoint.pt").write_bytes(b"garbage")
    args = [a.format(root=files, ck=files / "run" / "checkpoint.pt") for a in argv]
    before = sorted(p.name for p in files.iterdir())
    code = run_cli(args)
    captured = capsys.readouterr()
    lines = [ln for ln in captured.err.splitlines() if ln.strip()]
    assert code == 2, captured.err
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err and "Traceback" not in captured.out
    assert needle in lines[0], lines[0]
    assert lines[0].startswith("landscape")
    assert not (files / "PWNED").exists()
    created = set(sorted(p.name for p in files.iterdir())) - set(before)
    assert not created, f"a failed command left {created}"
    for name in ("run", "locked", "demo_dir", "mri"):  # nothing written into the folders it refused
        assert not [p.name for p in (files / name).rglob("*") if p.name.endswith(".tmp")]
    assert sorted(p.name for p in (files / "run").iterdir()) == ["checkpoint.pt", "log.csv", "metrics.json"]


def test_bad_invocations_in_a_real_process(files):
    """Through the installed script: exit code 2, one line, no traceback, no warnings."""
    script = Path(sys.executable).parent / "landscape"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "landscape.cli"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for argv, needle in [
        (["evaluate", _p(files, "evil.pt"), "--out", _p(files, "r.json")], "unsafe"),
        (["hessian", _p(files, "nan.pt"), "--no-progress"], "NaN"),
    ]:
        proc = subprocess.run([*cmd, *argv], capture_output=True, text=True, env=env, timeout=120)
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert proc.returncode == 2 and len(lines) == 1 and needle in lines[0], proc.stderr
        assert "Traceback" not in proc.stderr
    assert not (files / "PWNED").exists()


def _public_calls():
    """(id, call, fragment of the ValueError) for the Python API behind the commands."""
    from landscape.attacks import PGDConfig, pgd_attack, random_perturbation
    from landscape.baselines import fit_affine
    from landscape.checkpoint import load_checkpoint
    from landscape.data import make_task
    from landscape.evaluate import EvalConfig
    from landscape.strategies import make_strategy
    from landscape.train import TrainConfig, make_train_config

    task = make_task("denoise", length=16, max_jumps=2)
    y = torch.ones(2, 1, 8)
    nan = y.clone()
    nan[0, 0, 3] = float("nan")
    return [
        ("make_task-unknown", lambda: make_task("ct"), "'ct'"),
        ("pairs-zero", lambda: task.pairs(0, seed=0), "n=0"),
        ("pairs-unknown-split", lambda: task.pairs(2, split="mars", seed=0), "mars"),
        ("train-config-batch", lambda: TrainConfig(batch_size=0), "batch_size=0"),
        ("train-config-lr", lambda: TrainConfig(lr=float("nan")), "lr=nan"),
        ("train-config-unknown-key", lambda: TrainConfig.from_dict({"epochz": 3}), "epochz"),
        ("make_train_config-strategy", lambda: make_train_config("denoise", "dropout"), "dropout"),
        ("strategy-negative-sigma", lambda: make_strategy("sgd-jitter", sigma=-1.0), "sigma"),
        ("strategy-unknown-option", lambda: make_strategy("mse", sigma=0.1), "sigma"),
        ("pgd-negative-eps", lambda: PGDConfig(eps=-0.1), "eps"),
        ("pgd-nan-input", lambda: pgd_attack(lambda v: v, nan, y, PGDConfig(eps=0.1)), "NaN"),
        ("random-nan-input", lambda: random_perturbation(nan, 0.1), "NaN"),
        ("affine-nan-input", lambda: fit_affine(nan.flatten(1), y.flatten(1)), "NaN"),
        ("affine-negative-ridge", lambda: fit_affine(y.flatten(1), y.flatten(1), ridge=-1.0), "ridge"),
        ("eval-config-n-test", lambda: EvalConfig(n_test=0), "n_test"),
        ("load-directory-without-checkpoint", lambda: load_checkpoint("/"), "holds no checkpoint.pt"),
    ]


def test_public_functions_validate_their_arguments():
    calls = _public_calls()
    assert len(calls) >= 15
    for name, call, needle in calls:
        with pytest.raises((ValueError, FileNotFoundError)) as exc:
            call()
        assert needle in str(exc.value), (name, str(exc.value))
