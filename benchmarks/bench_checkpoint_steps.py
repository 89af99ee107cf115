"""Memory saved by ``--checkpoint-steps``: one training step of the MRI paper model, with and without.

Each setting runs in its own process and reports (1) the bytes autograd saves for the backward pass
(``saved_tensors_hooks``: what the activations cost between forward and backward) and (2) the peak RSS
of the process (``ru_maxrss``) over the step, above the RSS before it.  By hand, not in CI:

    python benchmarks/bench_checkpoint_steps.py --shape 128 --batch 1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def one(shape: int, batch: int, checkpoint: bool) -> dict:
    import torch

    from landscape.train import Trainer, make_train_config

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    cfg = make_train_config("mri", "sgd-jitter", size="paper", train_size=batch, batch_size=batch, epochs=1)
    from dataclasses import replace

    cfg = replace(cfg, task_options={"shape": [shape, shape]}, val_size=1)
    tr = Trainer(cfg, progress=False, checkpoint_steps=checkpoint)
    x, y = tr.train_set.x, tr.train_set.y
    tr.model.train()
    saved = [0]

    def pack(t):
        saved[0] += t.numel() * t.element_size()
        return t

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = tr.strategy.train_step(tr.model, x, y, generator=tr.generators["strategy"])
    loss.backward()
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "checkpoint_steps": checkpoint,
        "shape": shape,
        "batch": batch,
        "K": tr.model.n_iter,
        "saved_MiB": saved[0] / 2**20,
        "peak_rss_growth_MiB": (peak - before) / 1024,
        "seconds": seconds,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", type=int, default=128)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--child", choices=("on", "off"), default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(one(a.shape, a.batch, a.child == "on")))
        return
    rows = []
    for mode in ("off", "on"):
        out = subprocess.run(
            [sys.executable, __file__, "--shape", str(a.shape), "--batch", str(a.batch), "--child", mode],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    for r in rows:
        print(
            f"checkpoint_steps={r['checkpoint_steps']!s:5}  MRI {r['shape']}x{r['shape']} batch {r['batch']} "
            f"K={r['K']}: saved for backward {r['saved_MiB']:.0f} MiB, peak RSS +{r['peak_rss_growth_MiB']:.0f} MiB, "
            f"{r['seconds']:.1f} s"
        )
    off, on = rows
    print(
        f"saved tensors {off['saved_MiB'] / max(on['saved_MiB'], 1e-9):.1f}x smaller, peak RSS growth "
        f"{off['peak_rss_growth_MiB'] / max(on['peak_rss_growth_MiB'], 1e-9):.1f}x smaller, "
        f"time {on['seconds'] / off['seconds']:.2f}x"
    )


if __name__ == "__main__":
    main()
