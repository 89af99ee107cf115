"""Regenerate the shipped toy checkpoints: ``python -m landscape.examples.regenerate`` (``make toy-checkpoints``).

Trains the two models of ``landscape demo --seed 0`` exactly as that command does
(``make_train_config("denoise", strategy, seed=0)`` and :class:`~landscape.train.Trainer`, one torch thread),
then writes each run folder without its resume state (optimizer moments and RNG states: they triple the
size and only ``--resume`` reads them).  The slim checkpoint is checked with
:func:`~landscape.checkpoint.load_checkpoint` (every integrity check) and must give the same outputs as the
trained one before it replaces the shipped file; ``PROVENANCE.json`` records the command and each file's
sha256.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from landscape.checkpoint import load_checkpoint, read_checkpoint, versions
from landscape.examples import TOY_STRATEGIES, checkpoints_dir
from landscape.io import atomic_write
from landscape.train import Trainer, make_train_config

COMMAND = "python -m landscape.examples.regenerate"


def _sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def slim_copy(src_run: Path, dst_run: Path) -> None:
    """Copy a run folder, leaving the checkpoint's resume state out; checked to load and agree."""
    payload = read_checkpoint(src_run)  # validated: format, versions, finite weights
    payload["optimizer"] = None
    payload["rng"] = {}
    dst_run.mkdir(parents=True, exist_ok=True)
    tmp = dst_run / "checkpoint.pt.new"
    atomic_write(tmp, lambda f: torch.save(payload, f))
    a, b = load_checkpoint(src_run), load_checkpoint(tmp)
    y = a.test_pairs(4, dtype=torch.float32).y
    with torch.no_grad():
        if not torch.equal(a.model(y), b.model(y)):
            raise RuntimeError(f"the slim copy of {src_run} does not reproduce its outputs")
    tmp.replace(dst_run / "checkpoint.pt")
    for name in ("metrics.json", "log.csv"):
        shutil.copyfile(src_run / name, dst_run / name)


def main(argv: list[str] | None = None) -> int:
    """Regenerate the shipped example checkpoints (``python -m landscape.examples.regenerate``); the exit code."""
    p = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--out", type=Path, default=None, help="folder of the run folders (default: the package's)"
    )
    args = p.parse_args(argv)
    out = args.out or checkpoints_dir()
    torch.set_num_threads(1)
    record = {
        "command": COMMAND,
        "trained_as": "landscape demo --seed 0 (make_train_config('denoise', strategy, "
        "seed=0), Trainer, 1 torch thread); resume state (optimizer, rng) removed",
        "runs": {},
    }
    with tempfile.TemporaryDirectory(prefix="landscape-toy-") as tmp:
        for strategy in TOY_STRATEGIES:
            t0 = time.perf_counter()
            cfg = make_train_config("denoise", strategy, seed=0)
            result = Trainer(cfg, out_dir=Path(tmp) / strategy, progress=False).fit()
            dst = out / f"toy-{strategy}"
            slim_copy(Path(tmp) / strategy, dst)
            record["runs"][dst.name] = {
                "strategy": strategy,
                "seed": 0,
                "epochs": result.metrics["epochs"],
                "val_psnr": result.metrics["final"]["val_psnr"],
                "train_seconds": round(time.perf_counter() - t0, 1),
                "files": {n: _sha256(dst / n) for n in ("checkpoint.pt", "metrics.json", "log.csv")},
            }
            print(
                f"{dst}: val PSNR {result.metrics['final']['val_psnr']:.2f} dB "
                f"({(dst / 'checkpoint.pt').stat().st_size / 1024:.0f} KB)",
                flush=True,
            )
    record["versions"] = versions()
    (out / "PROVENANCE.json").write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
