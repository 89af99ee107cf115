"""``landscape demo``: the quick tour — train MSE and SGD-jittered models on the toy task and compare them.

Trains two unrolled networks on the toy denoising task with the default (``small``) preset and the
same seed — plain MSE and SGD jittering — evaluates both (ID, PGD attack, random perturbation, each
OOD shift, beside the measurement and the least-squares affine estimator) and prints the table.
Everything lands in ``--out`` (default ``runs/demo``): ``mse/`` and ``sgd-jitter/`` run directories
and ``evaluation.json``.  It then measures the curvature of both models along the unrolled path
(top eigenvalues, trace and spectral density of the loss Hessian at every iterate x_k, loss slices
around x_k and θ, robustness curves) and writes ``analysis.json`` and an offline ``report.html``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from landscape.commands import COMMANDS
from landscape.commands.args import add_threads_argument, check_out_dir, int_min
from landscape.evaluate import evaluate, format_table
from landscape.io import write_json
from landscape.records import curvature_of
from landscape.survey import analyze_checkpoints
from landscape.train import Trainer, make_train_config

HELP = COMMANDS["demo"]

DEMO_STRATEGIES = ("mse", "sgd-jitter")


def run_demo(
    out: str | Path = "runs/demo", *, seed: int = 0, quiet: bool = False, overwrite: bool = False
) -> dict[str, Any]:
    """Train, evaluate, print; returns ``{'runs': {strategy: dir}, 'evaluation': report, 'seconds': ...}``."""
    out = check_out_dir(out, create=False)  # created by the first write: a refused demo leaves no folder
    existing = [n for n in DEMO_STRATEGIES if (out / n / "checkpoint.pt").exists()]
    if existing and not overwrite:  # checked before any training: a run in DIR/mse is never replaced silently
        raise ValueError(
            f"--out {out} already holds the run(s) {', '.join(existing)}: use --overwrite to replace them"
        )
    t0 = time.perf_counter()
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    progress = None if not quiet else False
    runs: dict[str, Path] = {}
    for name in DEMO_STRATEGIES:
        cfg = make_train_config("denoise", name, seed=seed)
        t1 = time.perf_counter()
        result = Trainer(cfg, out_dir=out / name, progress=progress).fit(overwrite=overwrite)
        f, i = result.metrics["final"], result.metrics["initial"]
        say(
            f"trained {name:<11} val PSNR {i['val_psnr']:.2f} -> {f['val_psnr']:.2f} dB "
            f"({result.metrics['epochs']} epochs, {time.perf_counter() - t1:.1f} s) -> {out / name}"
        )
        runs[name] = out / name
    report = evaluate([runs[n] for n in DEMO_STRATEGIES], progress=not quiet)
    write_json(out / "evaluation.json", report)
    say("")
    say(format_table(report))
    say(f"\nwrote {out / 'evaluation.json'}")
    analysis = analyze_checkpoints(
        [runs[n] for n in DEMO_STRATEGIES],
        out,
        samples=16,
        iterates="all",
        seed=seed,
        progress=not quiet,
        threads=None,
        evaluation=report,
    )
    say("")
    say(curvature_table(analysis))
    seconds = time.perf_counter() - t0
    say(f"\nwrote {analysis['files']['analysis']} and {analysis['files']['report']} ({seconds:.0f} s in all)")
    return {"runs": runs, "evaluation": report, "analysis": analysis, "seconds": seconds}


def curvature_table(analysis: dict[str, Any]) -> str:
    """λ_max, λ_min and tr of H_k (mean ± spread over samples) per iterate k, one column group per checkpoint."""
    entries = analysis["checkpoints"]
    res = [curvature_of(e) for e in entries]
    ks = res[0].iterates
    names = (("lambda_max", "λ_max"), ("lambda_min", "λ_min"), ("trace", "trace"))
    head = "| k | " + " | ".join(f"{e['label']} {t}" for e in entries for _, t in names) + " |"
    lines = [
        f"Curvature of L_k(x_k) = ||Φ_k→K(x_k) − x*||² w.r.t. the iterate x_k ({res[0].settings.dtype}, "
        f"{res[0].method}, mean ± s/sqrt(n) over {res[0].n_samples} samples)",
        head,
        "|" + "---|" * (1 + len(names) * len(entries)),
    ]
    for k in ks:
        cells = []
        for r in res:
            summ = r.summary(k)
            for n, _ in names:
                sm = summ.get(n)
                cells.append("-" if sm is None else f"{sm.mean:.4g} ± {sm.stderr:.2g}")
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``landscape demo`` and its flags to the CLI's ``subparsers``."""
    p = subparsers.add_parser("demo", help=HELP, description=(__doc__ or "").split("\n\n", 1)[1].strip())
    p.add_argument("--out", default="runs/demo", metavar="DIR", help="output directory (default runs/demo)")
    p.add_argument("--seed", type=int_min(0), default=0, help="seed of both runs (default 0)")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing")
    p.add_argument(
        "--overwrite", action="store_true", help="replace the runs already in --out (mse/, sgd-jitter/)"
    )
    add_threads_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``landscape demo`` with the parsed ``args``; the exit code."""
    run_demo(args.out, seed=args.seed, quiet=args.quiet, overwrite=args.overwrite)
    return 0
