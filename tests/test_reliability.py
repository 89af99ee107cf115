"""Crash-proof training and safe files: SIGKILL mid-epoch then --resume is bitwise identical to a straight
run; an interrupted atomic write leaves the old file intact; NaN in input data is refused with a clear
message."""

import csv
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from landscape.checkpoint import read_checkpoint
from landscape.cli import main

# 8 steps per epoch; with LANDSCAPE_TEST_STEP_DELAY=0.1 an epoch lasts at least 0.8 s
RUN = [
    "--task",
    "denoise",
    "--strategy",
    "sgd-jitter",
    "--train-size",
    "64",
    "--batch-size",
    "8",
    "--epochs",
    "3",
    "-K",
    "2",
    "--seed",
    "7",
    "--quiet",
]
STEP_DELAY = 0.1


def _landscape_cmd() -> list[str]:
    script = Path(sys.executable).parent / "landscape"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from landscape.cli import main; sys.exit(main())"]


def _logged_epochs(out: Path) -> list[int]:
    try:
        with open(out / "log.csv", newline="") as fh:
            return [int(r["epoch"]) for r in csv.DictReader(fh)]
    except (FileNotFoundError, ValueError, KeyError):
        return []


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "log.csv", newline="") as fh:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(fh)]


def test_sigkill_mid_epoch_then_resume_is_bitwise_identical(tmp_path, monkeypatch):
    monkeypatch.delenv("LANDSCAPE_TEST_STEP_DELAY", raising=False)
    killed = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LANDSCAPE_TEST_STEP_DELAY": str(STEP_DELAY)}
    proc = subprocess.Popen(
        [*_landscape_cmd(), "train", *RUN, "--out", str(killed)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while 1 not in _logged_epochs(killed):  # epoch 1 is complete and saved: epoch 2 is starting
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "training did not finish its first epoch in 60 s"
            time.sleep(0.01)
        time.sleep(3.5 * STEP_DELAY)  # a few steps into epoch 2 (of 8 steps)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    saved = read_checkpoint(killed / "checkpoint.pt")
    # killed inside epoch 2 (or, on a very slow machine, epoch 3): after a save, before the run ended
    assert saved["epoch"] in (1, 2), saved["epoch"]
    assert not (killed / "metrics.json").exists()

    assert main(["train", *RUN, "--out", str(killed), "--resume"]) == 0
    straight = tmp_path / "straight"
    assert main(["train", *RUN, "--out", str(straight)]) == 0

    a, b = read_checkpoint(straight / "checkpoint.pt"), read_checkpoint(killed / "checkpoint.pt")
    assert a["epoch"] == b["epoch"] == 3
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k  # bitwise
    for k in a["rng"]:
        assert torch.equal(a["rng"][k], b["rng"][k]), k
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert sa.keys() == sb.keys() and all(torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"]) for i in sa)
    assert _rows(straight) == _rows(killed)  # the log continues exactly (timings aside)
    assert [p.name for p in killed.iterdir() if p.name.endswith(".tmp")] == []


_HALF_WRITE = textwrap.dedent("""
    import sys, time
    from landscape.io import atomic_write

    def write(fh):
        fh.write(b"NEW-HALF")
        fh.flush()
        print("writing", flush=True)
        time.sleep(60)
        fh.write(b"-REST")

    atomic_write(sys.argv[1], write)
""")


def test_sigkill_during_an_atomic_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "checkpoint.pt"
    target.write_bytes(b"OLD-COMPLETE")
    proc = subprocess.Popen(
        [sys.executable, "-c", _HALF_WRITE, str(target)],
        stdout=subprocess.PIPE,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        assert proc.stdout.readline().strip() == b"writing"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    assert target.read_bytes() == b"OLD-COMPLETE"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "checkpoint.pt"]
    assert (
        len(leftovers) == 1 and leftovers[0].startswith(".checkpoint.pt.") and leftovers[0].endswith(".tmp")
    )


def test_resume_removes_stale_temporaries_and_refuses_a_missing_run(tmp_path, capsys):
    out = tmp_path / "run"
    tiny = [
        "--task",
        "denoise",
        "--train-size",
        "16",
        "--batch-size",
        "8",
        "-K",
        "2",
        "--quiet",
        "--out",
        str(out),
    ]
    assert main(["train", *tiny, "--epochs", "1"]) == 0
    stale = out / ".checkpoint.pt.abc123.tmp"
    stale.write_bytes(b"half")
    assert main(["train", *tiny, "--epochs", "2", "--resume"]) == 0
    assert not stale.exists()
    assert read_checkpoint(out)["epoch"] == 2
    capsys.readouterr()
    assert main(["train", *tiny[:-1], str(tmp_path / "empty"), "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot resume: no checkpoint" in err


def test_fastmri_file_with_nan_is_refused(tmp_path):
    h5py = pytest.importorskip("h5py")
    from landscape.data.fastmri import load_fastmri

    img = np.ones((2, 16, 16), np.float32)
    img[1, 3, 4] = np.nan
    with h5py.File(tmp_path / "scan.h5", "w") as f:
        f["reconstruction_esc"] = img
    with pytest.raises(ValueError, match=r"scan.h5: 'reconstruction_esc' holds 1 NaN/Inf value"):
        load_fastmri(str(tmp_path), shape=(8, 8))
    (tmp_path / "scan.h5").write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match=r"scan.h5: cannot be read as HDF5"):
        load_fastmri(str(tmp_path), shape=(8, 8))
