"""Wall time of ``landscape analyze`` on the demo's two checkpoints (MSE and SGD jittering, toy task).

Uses the checkpoints in ``--runs`` (``mse/`` and ``sgd-jitter/``, as ``landscape demo`` writes them);
when they are missing it trains them first exactly as the demo does (``make_train_config('denoise',
strategy, seed=0)``) and reports that time separately.  The analysis runs with the settings the demo
uses (``--samples`` test samples, every iterate, top eigenvalues + trace + density, one 31 x 31 input
slice, one 15 x 15 parameter slice, a 4-point PGD robustness curve) and writes ``analysis.json`` and
``report.html`` to ``--out``.  Prints the total and the time of each part.

    OMP_NUM_THREADS=2 python benchmarks/bench_analyze.py [--runs runs/demo] [--out /tmp/bench_analyze]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

STRATEGIES = ("mse", "sgd-jitter")


def _train(runs: Path, seed: int) -> float:
    from landscape.train import Trainer, make_train_config

    t = time.perf_counter()
    for name in STRATEGIES:
        cfg = make_train_config("denoise", name, seed=seed)
        Trainer(cfg, out_dir=runs / name, progress=False).fit()
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    from landscape.survey import analyze_checkpoints

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", default="runs/demo")
    ap.add_argument("--out", default=None, help="output folder (default: <runs>/bench_analyze)")
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write the timings here")
    ap.add_argument("--no-html", action="store_true", help="skip report.html (e.g. where plotly is missing)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    runs = Path(args.runs)
    train_s = None
    if not all((runs / n / "checkpoint.pt").exists() for n in STRATEGIES):
        print(f"training the demo checkpoints into {runs} ...", flush=True)
        train_s = _train(runs, args.seed)
        print(f"  trained in {train_s:.1f} s")
    out = Path(args.out) if args.out else runs / "bench_analyze"
    t = time.perf_counter()
    rec = analyze_checkpoints(
        [runs / n for n in STRATEGIES],
        out,
        samples=args.samples,
        iterates="all",
        seed=args.seed,
        progress=False,
        write_html=not args.no_html,
    )
    total = time.perf_counter() - t
    parts: dict[str, float] = {}
    for e in rec["checkpoints"]:
        for key, v in e["timings"].items():
            parts[key] = parts.get(key, 0.0) + v
    parts["report_html"] = rec.get("report_time", 0.0)
    c = rec["checkpoints"][0]["curvature"]
    print(
        f"landscape analyze on 2 demo checkpoints: {total:.1f} s wall "
        f"({args.threads} thread(s), {args.samples} samples, iterates 0..{c['iterates'][-1]}, "
        f"dim {c['dim']}, method {c['method']}, HVP backend {c['backend']})"
    )
    for key, v in parts.items():
        print(f"  {key:<18} {v:7.2f} s")
    share = parts.get("backend_selection", 0.0) / total
    print(f"  backend selection is {100 * share:.1f}% of the wall time (target < 10%)")
    print(f"  wrote {rec['files']}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {
                    "total_s": total,
                    "train_s": train_s,
                    "parts_s": parts,
                    "backend_selection_share": share,
                    "threads": args.threads,
                    "samples": args.samples,
                    "torch": torch.__version__,
                },
                fh,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
