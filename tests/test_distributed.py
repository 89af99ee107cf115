"""Scale-out on torch.distributed: 2-process gloo jobs on the CPU, launched by torchrun with timeouts.

References are independent of the code under test: a one-process Trainer / a one-process `landscape hessian`,
`analyze` and `claims` on the same checkpoints and seeds.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

import landscape
from landscape.cli import main
from landscape.executor import LocalExecutor, PoolExecutor, current_executor
from landscape.train import Trainer, make_train_config

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 150  # seconds per 2-process job: CI never hangs on a stuck collective

# a tiny toy run: K = 3, a small CNN, 48 training signals in batches of 16 (3 steps per epoch)
TRAIN = [
    "--task",
    "denoise",
    "--n-iter",
    "3",
    "--train-size",
    "48",
    "--batch-size",
    "16",
    "--threads",
    "1",
    "-q",
]
REG = {"width": 8, "depth": 2}


def _env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "LOCAL_WORLD_SIZE")
    }
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return env


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(
    args: list[str], *, nproc: int = 2, env: dict[str, str] | None = None, timeout: float = TIMEOUT
) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        str(nproc),
        "--nnodes",
        "1",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_port()),
        "-m",
        "landscape.cli",
        *args,
    ]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env={**_env(), **(env or {})}, cwd=str(ROOT)
    )


def _config(strategy: str = "mse", epochs: int = 2, **kw):
    kw = {"train_size": 48, "batch_size": 16, **kw}
    return make_train_config("denoise", strategy, n_iter=3, regularizer=REG, epochs=epochs, **kw)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Two tiny float64 checkpoints (mse and sgd-jitter) trained in this process."""
    root = tmp_path_factory.mktemp("dist-runs")
    out = {}
    for name in ("mse", "sgd-jitter"):
        cfg = _config(name, epochs=1, dtype="float64")
        Trainer(cfg, out_dir=root / name, progress=False).fit()
        out[name] = root / name
    return out


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path / "checkpoint.pt", weights_only=True)["state_dict"]


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


# -- executors ------------------------------------------------------------------------------------
def test_local_and_pool_executors_follow_concurrent_futures():
    def sq(v):
        if v < 0:
            raise ValueError(f"v={v}: expected >= 0")
        return v * v

    for ex in (LocalExecutor(), PoolExecutor(ThreadPoolExecutor(2))):
        assert [f.result() for f in [ex.submit(sq, i) for i in range(5)]] == [0, 1, 4, 9, 16]
        assert list(ex.map(sq, range(4))) == [0, 1, 4, 9]
        with pytest.raises(ValueError, match="v=-1"):
            ex.submit(sq, -1).result()
        assert ex.share("x") == "x" and ex.is_root and ex.world_size == 1
        ex.shutdown()
    assert isinstance(current_executor(), LocalExecutor)  # no process group here
    with pytest.raises(ValueError, match="submit"):
        PoolExecutor(object())


# -- gradient checkpointing -------------------------------------------------------------------------
def _jitter_grads(model, y, x, jitter, *, seed: int, naive: bool = False):
    from torch.utils.checkpoint import checkpoint

    model.zero_grad(set_to_none=True)
    model.set_generator(torch.Generator().manual_seed(seed))
    model.train()
    if naive:  # what a plain checkpoint of the step would do: the recomputation draws new noise
        xk = model.initial(y)
        for k in range(model.n_iter):
            xk = checkpoint(model.step, xk, y, k, jitter=jitter, use_reentrant=False)
        out = xk
    else:
        out = model(y, jitter=jitter)
    ((out - x) ** 2).mean().backward()
    return [p.grad.clone() for p in model.parameters()]


def test_checkpoint_steps_gives_the_same_gradients_and_noise_on_recomputation():
    tr = Trainer(_config("sgd-jitter", dtype="float64"), progress=False)
    model = tr.model
    x, y = tr.train_set.x[:8], tr.train_set.y[:8]
    jc = tr.strategy.jitter  # the noise the sgd-jitter strategy trains with
    ref = _jitter_grads(model, y, x, jc, seed=5)
    model.checkpoint_steps = True
    got = _jitter_grads(model, y, x, jc, seed=5)
    diff = max(float((a - b).abs().max()) for a, b in zip(ref, got))
    assert diff < 1e-12, diff
    # the hazard this guards against: recomputation with a generator torch does not preserve draws anew
    model.checkpoint_steps = False
    naive = _jitter_grads(model, y, x, jc, seed=5, naive=True)
    assert max(float((a - b).abs().max()) for a, b in zip(ref, naive)) > 1e-6


def _saved_bytes(model, y, x) -> int:
    total = [0]

    def pack(t):
        total[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        ((model(y) - x) ** 2).mean().backward()
    return total[0]


def test_checkpoint_steps_keeps_fewer_activations():
    cfg = make_train_config("denoise", "mse", n_iter=8, regularizer={"width": 32, "depth": 4}, train_size=16)
    tr = Trainer(cfg, progress=False)
    x, y = tr.train_set.x, tr.train_set.y
    full = _saved_bytes(tr.model, y, x)
    tr.model.checkpoint_steps = True
    kept = _saved_bytes(tr.model, y, x)
    assert kept < full / 4, (kept, full)  # only each step's inputs are held between forward and backward


def test_bf16_autocast_trains_and_is_recorded(tmp_path):
    cfg = _config("sgd-jitter", epochs=1, autocast="bf16")
    res = Trainer(cfg, out_dir=tmp_path / "r", progress=False).fit()
    assert all(torch.isfinite(p).all() for p in res.model.parameters())
    assert next(res.model.parameters()).dtype == torch.float32
    saved = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)["config"]
    assert saved["autocast"] == "bf16"
    with pytest.raises(ValueError, match="autocast"):
        _config(autocast="fp8")
    assert "autocast" not in _config().to_dict()  # runs without it keep their config as it was


# -- one-line errors ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv, needle",
    [
        (["train", *TRAIN, "--distributed", "--out", "{t}/a"], "no torchrun environment"),
        (["hessian", "{ck}", "--distributed"], "no torchrun environment"),
        (["hessian", "{ck}", "--autocast", "bf16"], "analysis runs in float32 or float64"),
        (["analyze", "{ck}", "--out", "{t}/b", "--autocast", "bf16"], "analysis runs in float32 or float64"),
        (["claims", "{ck}", "--out", "{t}/c", "--autocast", "bf16"], "analysis runs in float32 or float64"),
        (["hessian", "{ck}", "--device", "gpu"], "expected cpu, cuda or cuda:N"),
        (["train", *TRAIN, "--autocast", "bf16", "--float64", "--out", "{t}/d"], "drop --float64"),
    ],
)
def test_bad_scale_out_invocations_are_one_line(argv, needle, runs, tmp_path, capsys, monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)
    argv = [a.format(t=tmp_path, ck=runs["mse"]) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err
    assert not any(tmp_path.iterdir())


def test_a_batch_smaller_than_the_world_is_refused():
    from landscape.distributed import _check_batches

    with pytest.raises(ValueError, match="--batch-size 1 with 2 ranks"):
        _check_batches(_config(batch_size=1), 2)
    with pytest.raises(ValueError, match="last batch of 1 for 2 ranks"):
        _check_batches(_config(train_size=49), 2)
    _check_batches(_config(train_size=50), 2)


# -- 2-process jobs -----------------------------------------------------------------------------
def _ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_two_ranks_train_to_the_weights_of_one_process(tmp_path):
    """mse, float64: DDP over two ranks (batch 16 = 8 + 8) equals one process with batch 16, to rounding."""
    t = time.perf_counter()
    _ok(
        torchrun(
            ["train", *TRAIN, "--epochs", "2", "--float64", "--distributed", "--out", str(tmp_path / "two")]
        )
    )
    seconds = time.perf_counter() - t
    main(["train", *TRAIN, "--epochs", "2", "--float64", "--out", str(tmp_path / "one-cli")])
    diff = _max_diff(_weights(tmp_path / "one-cli"), _weights(tmp_path / "two"))
    assert diff < 1e-12, diff
    h1 = json.loads((tmp_path / "one-cli" / "metrics.json").read_text())["final"]
    h2 = json.loads((tmp_path / "two" / "metrics.json").read_text())["final"]
    for k in ("train_loss", "val_loss", "val_psnr"):
        assert abs(h1[k] - h2[k]) <= 1e-10 * max(1.0, abs(h1[k])), (k, h1[k], h2[k])
    assert json.loads((tmp_path / "two" / "metrics.json").read_text())["steps"] == 6
    print(f"2-rank mse training: max |w_2 - w_1| = {diff:.2e}, job {seconds:.1f} s")


def test_jittered_training_is_reproducible_for_a_fixed_world_size_and_resumes(tmp_path):
    args = ["train", *TRAIN, "--strategy", "sgd-jitter", "--distributed"]
    _ok(torchrun([*args, "--epochs", "2", "--out", str(tmp_path / "a")]))
    _ok(torchrun([*args, "--epochs", "1", "--out", str(tmp_path / "b")]))
    _ok(torchrun([*args, "--epochs", "2", "--resume", "--out", str(tmp_path / "b")]))
    assert _max_diff(_weights(tmp_path / "a"), _weights(tmp_path / "b")) == 0.0
    ck = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    assert ck["config"]["distributed"] == {"world_size": 2}
    assert not torch.equal(ck["rng"]["jitter@rank0"], ck["rng"]["jitter@rank1"])  # split streams
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["checkpoint.pt", "log.csv", "metrics.json"]
    # a resume under another world size is refused in one line
    assert (
        main(
            [
                "train",
                *TRAIN,
                "--strategy",
                "sgd-jitter",
                "--epochs",
                "3",
                "--resume",
                "--out",
                str(tmp_path / "b"),
            ]
        )
        == 2
    )


def _scalars(result: dict) -> dict[tuple[int, int], dict[str, float]]:
    from landscape.curvature.analysis import IterateCurvature

    res = IterateCurvature.from_dict(result)
    return {(s.k, s.sample): s.scalars() for s in res.samples}


def _close(a: dict, b: dict, rtol: float = 1e-9) -> float:
    assert a.keys() == b.keys()
    worst = 0.0
    for key in a:
        assert a[key].keys() == b[key].keys()
        for n, v in a[key].items():
            w = b[key][n]
            worst = max(worst, abs(v - w) / max(1e-12, abs(v)))
    assert worst <= rtol, worst
    return worst


def test_sharded_hessian_equals_one_process(runs, tmp_path):
    ck = runs["sgd-jitter"]
    common = [
        "hessian",
        str(ck),
        "--samples",
        "3",
        "--iterates",
        "all",
        "--top-k",
        "2",
        "--threads",
        "1",
        "--no-progress",
    ]
    for method in ("estimate", "dense"):
        assert main([*common, "--method", method, "--out", str(tmp_path / f"one-{method}.json")]) == 0
        _ok(
            torchrun(
                [*common, "--method", method, "--distributed", "--out", str(tmp_path / f"two-{method}.json")]
            )
        )
        one = json.loads((tmp_path / f"one-{method}.json").read_text())["result"]
        two = json.loads((tmp_path / f"two-{method}.json").read_text())["result"]
        worst = _close(_scalars(one), _scalars(two))
        assert two["info"]["sharding"]["world_size"] == 2 and two["info"]["sharding"]["items"] == 8
        assert one["settings"] == two["settings"]
        print(f"sharded hessian ({method}): worst relative difference {worst:.1e}")


def test_sharded_analyze_and_claims_equal_one_process(runs, tmp_path):
    cks = [str(runs["mse"]), str(runs["sgd-jitter"])]
    an = [
        "analyze",
        *cks,
        "--samples",
        "3",
        "--iterates",
        "0,2,3",
        "--grid",
        "5",
        "--param-grid",
        "3",
        "--eps",
        "0.1",
        "--pgd-steps",
        "2",
        "--no-html",
        "-q",
        "--threads",
        "1",
    ]
    assert main([*an, "--out", str(tmp_path / "a1")]) == 0
    _ok(torchrun([*an, "--distributed", "--out", str(tmp_path / "a2")]))
    a1 = json.loads((tmp_path / "a1" / "analysis.json").read_text())
    a2 = json.loads((tmp_path / "a2" / "analysis.json").read_text())
    for e1, e2 in zip(a1["checkpoints"], a2["checkpoints"]):
        _close(_scalars(e1["curvature"]), _scalars(e2["curvature"]))
        for kind in ("input", "parameter"):
            v1 = torch.tensor(e1["slices"][kind]["values"], dtype=torch.float64)
            v2 = torch.tensor(e2["slices"][kind]["values"], dtype=torch.float64)
            assert torch.allclose(v1, v2, rtol=1e-6, atol=1e-9), kind
        assert e1["robustness"] == e2["robustness"]
    assert a2["settings"]["executor"] == {"kind": "TorchDistributedExecutor", "world_size": 2}

    cl = [
        "claims",
        *cks,
        "--n-curvature",
        "2",
        "--n-ood-curvature",
        "0",
        "--n-eval",
        "4",
        "--mc-pairs",
        "8",
        "--directions",
        "2",
        "--no-attack",
        "--sigmas",
        "0.1",
        "-q",
        "--threads",
        "1",
    ]
    assert main([*cl, "--out", str(tmp_path / "c1")]) == 0
    _ok(torchrun([*cl, "--distributed", "--out", str(tmp_path / "c2")]))
    c1 = json.loads((tmp_path / "c1" / "claims.json").read_text())
    c2 = json.loads((tmp_path / "c2" / "claims.json").read_text())
    assert [c["verdict"] for c in c1["claims"]] == [c["verdict"] for c in c2["claims"]]
    assert len(c1["checkpoints"]) == len(c2["checkpoints"]) == 2
    for e1, e2 in zip(c1["checkpoints"], c2["checkpoints"]):
        assert e1["path"] == e2["path"]
        s1, s2 = e1["splits"]["id"], e2["splits"]["id"]
        for key in ("sq_error", "psnr"):
            assert s1[key] == pytest.approx(s2[key], rel=1e-12)
        t1, t2 = (np.array(s["curvature"]["trace"], dtype=float) for s in (s1, s2))
        np.testing.assert_allclose(t1, t2, rtol=1e-9)
        assert s1["penalty"][0]["excess"] == pytest.approx(s2["penalty"][0]["excess"], rel=1e-12)


def test_a_killed_rank_fails_the_job_in_one_line_without_hanging(tmp_path):
    stamp = tmp_path / "killed-at"
    env = {
        "LANDSCAPE_TEST_KILL_RANK": "1:4",
        "LANDSCAPE_TEST_STEP_DELAY": "0.05",
        "LANDSCAPE_TEST_KILL_STAMP": str(stamp),
    }
    proc = torchrun(
        ["train", *TRAIN, "--epochs", "3", "--distributed", "--out", str(tmp_path / "k")], env=env, timeout=90
    )
    seconds = time.time() - float(stamp.read_text())  # from the SIGKILL to the end of the whole job
    assert seconds < 30, seconds
    assert proc.returncode != 0
    ours = [
        ln for ln in proc.stderr.splitlines() if re.match(r"landscape \w+: ", ln)
    ]  # not torchrun's own lines
    assert len(ours) == 1 and "error" in ours[0], proc.stderr[-3000:]
    # the checkpoint on disk is a complete earlier epoch (rank 0 writes atomically)
    assert (tmp_path / "k" / "checkpoint.pt").exists()
    print(f"killed rank: the job ended {seconds:.2f} s after the kill: {ours[0]}")


def test_a_cancelled_job_says_so_once_in_the_commands_own_line(tmp_path):
    """SIGTERM to torchrun (a cancelled job) reaches the worker, which prints one 'landscape train: error:' line."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "1",
        "--nnodes",
        "1",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_port()),
        "-m",
        "landscape.cli",
        "train",
        *TRAIN,
        "--epochs",
        "50",
        "--distributed",
        "--out",
        str(tmp_path / "c"),
    ]
    proc = subprocess.Popen(
        cmd,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**_env(), "LANDSCAPE_TEST_STEP_DELAY": "0.2"},
        cwd=str(ROOT),
    )
    try:
        deadline = time.time() + 90
        while not (tmp_path / "c" / "log.csv").exists():  # the worker is training
            assert proc.poll() is None and time.time() < deadline, "the job ended before it trained"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    ours = [ln for ln in err.splitlines() if re.match(r"landscape \w+: ", ln)]
    assert ours == [
        "landscape train: error: rank 0 of 1 stopped by the launcher (another rank failed or the job "
        "was cancelled)"
    ], err[-3000:]
    # torchrun's own traceback only, none of ours: a frame is ours when its file is in our package folder (a
    # clone named `landscape` holds torch under landscape/.venv/..., which is not ours)
    pkg = re.escape(str(Path(landscape.__file__).resolve().parent)) + "/"
    assert not re.search(r'File "' + pkg, err), err[-3000:]


# -- CUDA (skipped without a GPU) --------------------------------------------------------------------
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


@cuda
def test_cuda_training_matches_cpu(tmp_path):
    """float64 mse on cuda vs cpu: weights within 1e-8 after 6 steps (different kernels, same maths)."""
    a = Trainer(_config("mse", dtype="float64"), progress=False).fit().model
    b = Trainer(_config("mse", dtype="float64", device="cuda"), progress=False).fit().model
    diff = max(float((p.cpu() - q).abs().max()) for p, q in zip(b.parameters(), a.parameters()))
    assert diff < 1e-8, diff


@cuda
def test_cuda_checkpoint_steps_and_bf16(tmp_path):
    cfg = _config("sgd-jitter", device="cuda", autocast="bf16")
    res = Trainer(cfg, progress=False, checkpoint_steps=True).fit()
    assert all(torch.isfinite(p).all() for p in res.model.parameters())


@cuda
def test_cuda_hessian_matches_cpu(runs, tmp_path):
    """Dense Hessians in float64 on cuda vs cpu: relative 1e-9."""
    common = [
        "hessian",
        str(runs["sgd-jitter"]),
        "--samples",
        "2",
        "--top-k",
        "2",
        "--method",
        "dense",
        "--no-progress",
    ]
    assert main([*common, "--out", str(tmp_path / "cpu.json")]) == 0
    assert main([*common, "--device", "cuda", "--out", str(tmp_path / "gpu.json")]) == 0
    one = json.loads((tmp_path / "cpu.json").read_text())["result"]
    two = json.loads((tmp_path / "gpu.json").read_text())["result"]
    _close(_scalars(one), _scalars(two))
    assert two["info"]["device"].startswith("cuda")


@cuda
def test_cuda_two_rank_nccl_training_matches_one_process(tmp_path):
    if torch.cuda.device_count() < 2:
        pytest.skip("needs 2 GPUs for a 2-rank NCCL job")
    _ok(
        torchrun(
            [
                "train",
                *TRAIN,
                "--epochs",
                "2",
                "--float64",
                "--device",
                "cuda",
                "--distributed",
                "--out",
                str(tmp_path / "two"),
            ]
        )
    )
    main(["train", *TRAIN, "--epochs", "2", "--float64", "--device", "cuda", "--out", str(tmp_path / "one")])
    assert _max_diff(_weights(tmp_path / "one"), _weights(tmp_path / "two")) < 1e-10
