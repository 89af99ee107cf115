"""Reliability, round three (part h2): bad experiment caches, bounded counts, pool workers that die with their
parent, run folders kept by a running experiment, a full disk during training, the thread count of a resume,
and small refusals (K mismatch, --lr-factor alone, python -m landscape)."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
import torch

import landscape.io as lio
from landscape.cli import main
from landscape.errors import count_limit
from landscape.experiment import plan_experiment, run_experiment
from landscape.train import Trainer, make_train_config

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--epochs", "1", "--train-size", "16", "--batch-size", "8", "-K", "2", "-q"]


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "OMP_NUM_THREADS": "1",
    }


def _err_lines(capsys) -> list[str]:
    return [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]


# ------------------------------------------------------------------------------------------------------------
# 1. a bad cache is named in one warning and recomputed; the experiment completes
# ------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_experiment(tmp_path_factory):
    out = tmp_path_factory.mktemp("exp") / "exp"
    rec = run_experiment("denoise", out, preset="tiny", seeds=1, claims=True, progress=False)
    return out, rec


def _cache_files(out: Path) -> dict[str, Path]:
    rd = out / "runs" / "gd-mse-s0"
    snaps = sorted((rd / "snapshots").glob("*.curvature.json"))
    assert snaps, "the tiny preset keeps snapshots of the GD MSE run"
    return {
        "claims": out / "claims.json",
        "evaluation": rd / "evaluation.json",
        "curvature": rd / "curvature.json",
        "metrics": rd / "metrics.json",
        "snapshot-curvature": snaps[0],
    }


@pytest.mark.parametrize("kind", ["claims", "evaluation", "curvature", "metrics", "snapshot-curvature"])
@pytest.mark.parametrize("fault", ["truncated", "wrong-shape", "not-an-object"])
def test_a_bad_cache_is_named_in_one_warning_and_recomputed(tiny_experiment, kind, fault):
    out, first = tiny_experiment
    path = _cache_files(out)[kind]
    good = json.loads(path.read_text())
    text = path.read_text()
    bad = {
        "truncated": text[: len(text) // 2],
        "wrong-shape": json.dumps({k: (v if k in ("key", "eval_config") else 7) for k, v in good.items()}),
        "not-an-object": "[1, 2, 3]",
    }[fault]
    path.write_text(bad)
    with pytest.warns(UserWarning) as caught:
        rec = run_experiment("denoise", out, preset="tiny", seeds=1, claims=True, progress=False)
    ours = [str(w.message) for w in caught if "cache" in str(w.message)]
    assert ours == [f"cache {path} is unreadable ({ours[0].split('(', 1)[1].rsplit(')', 1)[0]}): recomputing"]
    assert "\n" not in ours[0]
    again = json.loads(path.read_text())  # rewritten whole: the same keys as the cache it replaced
    assert isinstance(again, dict) and set(again) == set(good)
    assert set(rec["runs"]) == set(first["runs"])
    assert json.loads((out / "results.json").read_text())["runs"].keys() == first["runs"].keys()


def test_a_bad_cache_through_the_command_is_one_warning_line(tiny_experiment):
    out, _ = tiny_experiment
    path = out / "runs" / "gd-sgd-jitter-s0" / "curvature.json"
    path.write_text('{"curvature": {"samples": [')
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "landscape",
            "experiment",
            "denoise",
            "--preset",
            "tiny",
            "--seeds",
            "1",
            "--out",
            str(out),
            "-q",
        ],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    lines = [ln for ln in r.stderr.splitlines() if "cache" in ln]
    assert r.returncode == 0, r.stderr[-2000:]
    assert lines == [
        f"landscape experiment: warning: cache {path} is unreadable "
        f"({lines[0].split('unreadable (', 1)[1].rsplit('): recomputing', 1)[0]}): recomputing "
        "(UserWarning)"
    ]
    assert json.loads(path.read_text())["samples"] >= 1


# ------------------------------------------------------------------------------------------------------------
# 2. every count is bounded before any work
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv, flag, bound",
    [
        (["experiment", "denoise", "--seeds", "1000000000"], "--seeds", "1..1000"),
        (["experiment", "denoise", "--study-seeds", "100000"], "--study-seeds", "1..1000"),
        (["experiment", "denoise", "--workers", "100000"], "--workers", f"1..{count_limit('workers')}"),
        (["train", "--threads", "100000"], "--threads", f"1..{count_limit('threads')}"),
        (["analyze", "x.pt", "--threads", "1000000"], "--threads", f"1..{count_limit('threads')}"),
        (["train", "-K", "1000000"], "--n-iter/-K", "1..1000"),
        (["train", "--epochs", "10000000000"], "--epochs", "0..100000"),
        (["train", "--batch-size", "10000000000"], "--batch-size", "1..1000000"),
        (["train", "--snapshots", "100000000"], "--snapshots", "0..10000"),
        (["train", "--epoch-passes", "100000000"], "--epoch-passes", "1..10000"),
        (["train", "--lr-decays", "100000"], "--lr-decays", "0..100"),
    ],
)
def test_a_count_past_its_bound_is_one_line_before_any_work(tmp_path, capsys, argv, flag, bound):
    out = tmp_path / "out"
    t = time.perf_counter()
    with pytest.raises(SystemExit) as e:
        main([*argv, "--out", str(out)])
    assert time.perf_counter() - t < 5
    lines = _err_lines(capsys)
    assert e.value.code == 2 and len(lines) == 1, lines
    assert f"argument {flag}:" in lines[0] and f"expected an integer {bound}" in lines[0]
    assert not out.exists()


def test_the_python_api_checks_the_same_bounds(tmp_path):
    t = time.perf_counter()
    with pytest.raises(ValueError, match=r"seeds=1000000000: expected an integer 1\.\.1000"):
        plan_experiment("denoise", "tiny", seeds=10**9)
    with pytest.raises(ValueError, match=r"seeds=1000000000: expected an integer 1\.\.1000"):
        run_experiment("denoise", tmp_path / "e", preset="tiny", seeds=10**9, progress=False)
    with pytest.raises(ValueError, match=r"workers=100000: expected an integer 1\.\."):
        run_experiment("denoise", tmp_path / "e", preset="tiny", seeds=1, workers=100000, progress=False)
    with pytest.raises(ValueError, match=r"n_iter=1000000: expected an integer 1\.\.1000"):
        make_train_config("denoise", "mse", n_iter=10**6)
    with pytest.raises(ValueError, match=r"epochs=10000000000: expected an integer 0\.\.100000"):
        make_train_config("denoise", "mse", epochs=10**10)
    with pytest.raises(ValueError, match=r"threads=100000: expected an integer 1\.\."):
        Trainer(make_train_config("denoise", "mse", train_size=16, batch_size=8, n_iter=2), threads=100000)
    assert time.perf_counter() - t < 5 and not (tmp_path / "e").exists()


# ------------------------------------------------------------------------------------------------------------
# 3. pool workers die with their parent
# ------------------------------------------------------------------------------------------------------------
def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return state not in ("Z", "X")


def test_sigkilled_parent_takes_its_pool_workers_with_it(tmp_path):
    script = tmp_path / "pool.py"
    script.write_text(
        textwrap.dedent("""
        import os, sys, time
        from landscape.executor import process_pool
        if __name__ == "__main__":
            pool = process_pool(2)
            [f.result() for f in [pool.submit(os.getpid) for _ in range(4)]]
            sleeping = [pool.submit(time.sleep, 300) for _ in range(2)]
            time.sleep(1.0)
            print(" ".join(str(p) for p in pool._processes), flush=True)
            time.sleep(300)
    """)
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=_env())
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [p for p in pids if _alive(p)]
        assert not left, f"workers {left} outlived their SIGKILLed parent"
    finally:
        for p in pids if "pids" in locals() else []:
            if _alive(p):
                os.kill(p, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()


# ------------------------------------------------------------------------------------------------------------
# 4. a running experiment keeps its runs
# ------------------------------------------------------------------------------------------------------------
def test_train_overwrite_into_a_run_of_a_running_experiment_is_refused(tmp_path, capsys):
    exp = tmp_path / "exp"
    run = exp / "runs" / "gd-mse-s0"
    assert main(["train", "--out", str(run), *TINY]) == 0
    before = (run / "checkpoint.pt").read_bytes()
    holder = subprocess.Popen(  # holds the experiment folder's lock as run_experiment does, for its lifetime
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom landscape.io import RunLock\n"
            f"with RunLock({str(exp)!r}, what='experiment folder'):\n    print('held', flush=True)\n    time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        capsys.readouterr()
        code = main(["train", "--overwrite", "--out", str(run), *TINY])
        lines = _err_lines(capsys)
        assert code == 2 and len(lines) == 1, lines
        assert (
            f"is inside {exp}, which is in use by another landscape process (pid {holder.pid} on" in lines[0]
        )
        assert (run / "checkpoint.pt").read_bytes() == before
        assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt", "log.csv", "metrics.json"]
    finally:
        holder.kill()
        holder.wait()
    assert main(["train", "--overwrite", "--out", str(run), *TINY]) == 0  # the owner gone, it is accepted


def test_an_experiment_trains_its_own_runs_while_it_holds_its_folder(tmp_path):
    out = tmp_path / "exp"
    rec = run_experiment("denoise", out, preset="tiny", seeds=1, claims=False, progress=False)
    assert {r["action"] for r in rec["runs"].values()} == {"trained"}
    assert not (out / lio.LOCK_NAME).exists()


# ------------------------------------------------------------------------------------------------------------
# 5. a full disk while train writes its checkpoint
# ------------------------------------------------------------------------------------------------------------
def _enospc(*_a, **_k):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("where", ["create", "write", "fsync", "rename", "torch-unexpected-pos"])
def test_a_full_disk_during_a_checkpoint_is_one_line_and_keeps_the_old_one(
    tmp_path, capsys, monkeypatch, where
):
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), *TINY]) == 0
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    capsys.readouterr()
    target = str(run / "checkpoint.pt")
    if where == "create":
        real = tempfile.mkstemp
        monkeypatch.setattr(
            tempfile, "mkstemp", lambda *a, **k: _enospc() if "checkpoint" in k["prefix"] else real(*a, **k)
        )
    elif where == "write":
        real_save = torch.save
        monkeypatch.setattr(torch, "save", lambda obj, f, *a, **k: (real_save(obj, f, *a, **k), _enospc()))
    elif where == "fsync":
        real_fsync = os.fsync
        monkeypatch.setattr(
            os,
            "fsync",
            lambda fd: _enospc() if "checkpoint.pt" in os.readlink(f"/proc/self/fd/{fd}") else real_fsync(fd),
        )
    elif where == "rename":
        real_replace = os.replace
        monkeypatch.setattr(os, "replace", lambda a, b: _enospc() if str(b) == target else real_replace(a, b))
    else:  # torch's zip writer on a full file system: a RuntimeError, not an OSError

        def full_save(*_a, **_k):
            raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 64 vs 0")

        monkeypatch.setattr(torch, "save", full_save)
        monkeypatch.setattr(lio, "_disk_full", lambda folder: True)
    code = main(
        [
            "train",
            "--out",
            str(run),
            "--resume",
            *TINY[:0],
            "--epochs",
            "2",
            "--train-size",
            "16",
            "--batch-size",
            "8",
            "-K",
            "2",
            "-q",
        ]
    )
    lines = _err_lines(capsys)
    assert code == 2 and lines == [f"landscape train: error: No space left on device: {target}"]
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before  # the old checkpoint, no temporary file


# ------------------------------------------------------------------------------------------------------------
# 6. a resume reuses the recorded thread count
# ------------------------------------------------------------------------------------------------------------
def _cfg(epochs: int):
    return make_train_config("denoise", "sgd-jitter", epochs=epochs, train_size=32, batch_size=8, n_iter=2)


def test_a_resume_reuses_the_recorded_thread_count_and_is_bitwise(tmp_path, monkeypatch):
    previous = torch.get_num_threads()
    try:
        straight = Trainer(_cfg(4), out_dir=tmp_path / "straight", progress=False, threads=1).fit()
        part = Trainer(_cfg(2), out_dir=tmp_path / "resumed", progress=False, threads=1).fit()
        assert part.metrics["threads"] == 1
        torch.set_num_threads(2)  # the machine's load changed: the default would now differ
        seen = []
        real_step = torch.optim.Adam.step

        def step(self, *a, **k):
            seen.append(torch.get_num_threads())
            return real_step(self, *a, **k)

        monkeypatch.setattr(torch.optim.Adam, "step", step)
        resumed = Trainer(_cfg(4), out_dir=tmp_path / "resumed", progress=False).fit(resume=True)
        assert set(seen) == {1} and resumed.metrics["threads"] == 1
        assert torch.get_num_threads() == 2  # restored
        assert json.loads((tmp_path / "resumed" / "metrics.json").read_text())["threads"] == 1
        for (n, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
            assert torch.equal(a, b), n
    finally:
        torch.set_num_threads(previous)


def test_a_resume_with_another_explicit_thread_count_warns(tmp_path):
    previous = torch.get_num_threads()
    try:
        Trainer(_cfg(1), out_dir=tmp_path / "r", progress=False, threads=1).fit()
        with pytest.warns(UserWarning, match=r"with 2 torch threads, but the run trained with 1"):
            res = Trainer(_cfg(2), out_dir=tmp_path / "r", progress=False, threads=2).fit(resume=True)
        assert res.metrics["threads"] == 2
    finally:
        torch.set_num_threads(previous)


# ------------------------------------------------------------------------------------------------------------
# 7. small refusals and python -m landscape
# ------------------------------------------------------------------------------------------------------------
def test_a_resume_with_another_k_names_the_run_and_both_k(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), *TINY]) == 0
    capsys.readouterr()
    code = main(
        [
            "train",
            "--out",
            str(run),
            "--resume",
            "--epochs",
            "2",
            "--train-size",
            "16",
            "--batch-size",
            "8",
            "-K",
            "3",
            "-q",
        ]
    )
    lines = _err_lines(capsys)
    assert code == 2 and len(lines) == 1
    assert f"cannot resume {run / 'checkpoint.pt'}" in lines[0]
    assert "model.n_iter (the checkpoint: 2, this run: 3)" in lines[0]


def test_lr_factor_without_lr_decays_is_refused(tmp_path, capsys):
    code = main(["train", "--out", str(tmp_path / "r"), "--lr-factor", "0.5", *TINY])
    lines = _err_lines(capsys)
    assert code == 2 and len(lines) == 1 and "--lr-factor 0.5" in lines[0] and "--lr-decays" in lines[0]
    assert not (tmp_path / "r").exists()
    capsys.readouterr()
    assert (
        main(
            [
                "train",
                "--out",
                str(tmp_path / "r"),
                "--lr-factor",
                "0.5",
                "--lr-decays",
                "1",
                "--patience",
                "1",
                *TINY,
            ]
        )
        == 0
    )  # with --lr-decays it is used
    assert torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=False)["config"]["lr_factor"] == 0.5


def test_python_dash_m_landscape_prints_usage():
    r = subprocess.run(
        [sys.executable, "-m", "landscape", "--help"], capture_output=True, text=True, env=_env(), timeout=120
    )
    assert r.returncode == 0 and r.stdout.startswith("usage: landscape")
    assert "experiment" in r.stdout and r.stderr == ""
