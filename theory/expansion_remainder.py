"""How fast the second-order expansion's remainder shrinks with σ (theory/jitter_expansion.md §2–3).

For the shipped jittered toy checkpoint (K = 10, 4 ID test samples), per noise rule: 1 − (MC jittered-loss excess ÷ predicted penalty) at
σ = 0.0125 … 0.2, with its Monte-Carlo standard error (antithetic pairs, samples and θ fixed, exact dense
traces), and the log–log slope of |1 − ratio| against σ over the σ where it exceeds 3 standard errors.  A
smooth remainder gives slope 2 (the excess is σ² tr + O(σ⁴)); a scale with near-ties in its max gives 1.

    OMP_NUM_THREADS=1 python theory/expansion_remainder.py      # about 12 minutes on one free core
    OMP_NUM_THREADS=1 python theory/expansion_remainder.py batch   # the rule as trained only

The rule as trained (``paper``, one max over a training batch of the run's batch size) jitters one batch
holding the 4 samples per draw (``claims.training_batches``).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import torch

from landscape.checkpoint import load_checkpoint
from landscape.claims import penalty_check, training_batches
from landscape.curvature import analyze_iterates
from landscape.models import clone_model

CKPTS = Path(__file__).resolve().parents[1] / "landscape" / "examples" / "checkpoints"
SIGMAS = (0.0125, 0.025, 0.05, 0.1, 0.2)
N_SAMPLES, PAIRS = 4, 512


def measure(name: str, only_batch: bool = False) -> list[dict]:
    ck = load_checkpoint(CKPTS / name)
    model = clone_model(ck.model).to(torch.float64).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    cfg = ck.config
    pairs = ck.test_pairs(N_SAMPLES)
    K = model.n_iter
    res = analyze_iterates(
        model, x_true=pairs.x, y=pairs.y, iterates=list(range(1, K + 1)), method="dense", top_k=1, bottom_k=0
    )
    traces = np.stack([res.values("trace", k) for k in range(1, K + 1)], 1)
    train = ck.task.training_set(cfg.train_size, seed=cfg.resolved_data_seed, dtype=torch.float64)
    batches = training_batches(pairs.y, train.y, cfg.batch_size, seed=0, sample_ids=range(N_SAMPLES))
    rows = []
    rules = (("absolute", None), ("paper-clean-path", None), ("paper", None), ("paper", batches))
    for mode, bs in rules[3:] if only_batch else rules:
        n_pairs = PAIRS
        for r in penalty_check(
            model,
            pairs.x,
            pairs.y,
            traces,
            np.zeros_like(traces),
            mode=mode,
            sigmas=SIGMAS,
            pairs=n_pairs,
            seed=0,
            batches=bs,
        ):
            rat = r["ratio"]
            se = (rat["high"] - rat["low"]) / (2 * 1.959964)
            rows.append(
                {
                    "ckpt": name,
                    "pairs": n_pairs,
                    "mode": mode,
                    "scale": r["scale"],
                    "sigma": r["sigma"],
                    "eta_s_max": r["eta_s_max"],
                    "one_minus": 1 - rat["estimate"],
                    "se": se,
                }
            )
        rs = rows[-len(SIGMAS) :]
        print(
            f"| {mode} | {rs[0]['scale']} | "
            + " | ".join(f"{r['one_minus']:+.4f} ± {r['se']:.4f} (ηs {r['eta_s_max']:.3g})" for r in rs)
            + f" | {slope(rs):.2f} |",
            flush=True,
        )
    return rows


def slope(rows: list[dict]) -> float:
    ok = [r for r in rows if abs(r["one_minus"]) > 3 * r["se"]]
    if len(ok) < 2:
        return math.nan
    return float(
        np.polyfit(np.log([r["sigma"] for r in ok]), np.log([abs(r["one_minus"]) for r in ok]), 1)[0]
    )


def main() -> None:
    torch.set_num_threads(1)
    for name in ("toy-sgd-jitter",):
        print(
            f"\n## {name}: 1 − ratio ± MC s.e. (max η·s)\n\n| rule | scale | "
            + " | ".join(f"σ={s:g}" for s in SIGMAS)
            + " | slope |",
            flush=True,
        )
        print("|---|---|" + "---|" * (len(SIGMAS) + 1), flush=True)
        measure(name, only_batch=sys.argv[1:] == ["batch"])


if __name__ == "__main__":
    main()
