"""Whole-process wall time of ``landscape hessian`` against the simplest exact method, side by side.

The engine should never be slower than a naive exact reference: load the checkpoint, draw the same test
samples, take ``torch.func.hessian`` of L_k(x_k) = ||Phi_{k->K}(x_k) - x*||^2 vmapped over the samples at
every iterate, and ``eigvalsh``.  Both run as fresh processes (imports, loading, backend choice and all),
alternated ``--repeats`` times in one run, one torch thread each; the ratio of medians is the figure.
The engine is also timed with ``--no-chain`` (each H_k formed through its own tail, as the naive method does)
to show what the chain rule's one backward sweep (landscape.curvature.chain) saves.

    OMP_NUM_THREADS=1 python benchmarks/bench_hessian_naive.py [--checkpoint RUN] [--samples 2] [--repeats 3]

Without ``--checkpoint`` a toy checkpoint (denoise, MSE, 2 epochs) is trained first into a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"

NAIVE = r"""
import sys, torch
torch.set_num_threads(1)
from landscape.checkpoint import load_checkpoint
ck = load_checkpoint(sys.argv[1])
n = int(sys.argv[2])
m = ck.model.double().eval().requires_grad_(False)
p = ck.test_pairs(n)
with torch.no_grad():
    its = m(p.y, return_iterates=True).iterates
out = []
for k in range(m.n_iter + 1):
    def loss(xk, y, xt):
        return ((m.tail(xk[None], y[None], k)[0] - xt) ** 2).sum()
    H = torch.func.vmap(torch.func.hessian(loss))(its[k], p.y, p.x)
    d = H.reshape(n, its[k][0].numel(), -1)
    ev = torch.linalg.eigvalsh(d)
    out.append((ev[:, -5:].mean().item(), ev.sum(-1).mean().item()))
print(out[0], out[-1])
"""


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return time.perf_counter() - t, r.stdout


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(RESULTS / "bench_hessian_naive.json"))
    args = ap.parse_args(argv)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    tmp = None
    ck = args.checkpoint
    if ck is None:
        tmp = tempfile.mkdtemp(prefix="bench_hessian_")
        ck = str(Path(tmp) / "mse")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "landscape.cli",
                "train",
                "--task",
                "denoise",
                "--strategy",
                "mse",
                "--epochs",
                "2",
                "--seed",
                "0",
                "--out",
                ck,
                "--quiet",
            ],
            check=True,
            env=env,
            capture_output=True,
        )
    engine = [
        sys.executable,
        "-m",
        "landscape.cli",
        "hessian",
        ck,
        "--iterates",
        "all",
        "--top-k",
        "5",
        "--samples",
        str(args.samples),
        "--no-progress",
        "--out",
        str(Path(tempfile.mkdtemp()) / "h.json"),
    ]
    naive = [sys.executable, "-c", NAIVE, ck, str(args.samples)]
    per_iterate = engine[:-1] + [str(Path(tempfile.mkdtemp()) / "h.json"), "--no-chain"]
    te, tn, tp = [], [], []
    for _ in range(args.repeats):
        te.append(timed(engine, env)[0])
        tn.append(timed(naive, env)[0])
        tp.append(timed(per_iterate, env)[0])
    rec = json.loads(Path(engine[-1]).read_text())["result"]
    ratio = statistics.median(te) / statistics.median(tn)
    print(
        f"landscape hessian --iterates all --top-k 5 --samples {args.samples}: "
        f"{statistics.median(te):.2f} s (runs {', '.join(f'{t:.2f}' for t in te)}; method {rec['method']}, "
        f"backend {rec['backend']}, {rec['n_matvecs']} products)"
    )
    print(
        f"naive exact (vmapped torch.func.hessian + eigvalsh): {statistics.median(tn):.2f} s "
        f"(runs {', '.join(f'{t:.2f}' for t in tn)})"
    )
    print(
        f"landscape hessian ... --no-chain (each H_k through its own tail): {statistics.median(tp):.2f} s "
        f"(runs {', '.join(f'{t:.2f}' for t in tp)})"
    )
    print(
        f"ratio engine / naive = {ratio:.2f} (target <= 1.0); "
        f"per-iterate / naive = {statistics.median(tp) / statistics.median(tn):.2f}"
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps(
            {
                "engine_s": te,
                "naive_s": tn,
                "per_iterate_s": tp,
                "ratio": ratio,
                "per_iterate_ratio": statistics.median(tp) / statistics.median(tn),
                "dense_algorithm": rec.get("info", {}).get("dense_algorithm"),
                "samples": args.samples,
                "checkpoint": ck,
                "method": rec["method"],
                "backend": rec["backend"],
                "backend_choice": rec["backend_choice"],
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
