"""Time per training step of each strategy relative to plain MSE, on the same model and batch, side by side.

One optimiser step = ``strategy.train_step`` + backward + Adam step.  Every strategy gets its own copy of
the same initial weights (each strategy's ``configure_model`` of the task preset: UnrolledGD for mse,
input-jitter, adversarial and sgd-jitter; UnrolledProxGD for spgd-jitter, compared with MSE on the same
prox model).  The strategies are timed round-robin — one step of each in turn, ``--repeats`` rounds after
``--warmup`` rounds — so drifts in machine load hit all of them alike; the ratio is of the medians.
Expected: jittering within 5 % of MSE; adversarial training with T PGD steps about T + 1 times MSE;
the explicit curvature penalty (one Rademacher probe per iterate, nested forward-mode through the unrolled
network, then backward) at most 3 times MSE (issue 23's target), its Gauss–Newton part less.

    OMP_NUM_THREADS=1 python benchmarks/bench_strategies.py [--task denoise] [--out bench.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch

from landscape.config import ModelOverrides
from landscape.data import make_task
from landscape.models import ModelConfig, build_model
from landscape.presets import TRAIN_PRESETS, TrainPreset, train_preset
from landscape.strategies import make_strategy

#: the strategies timed, in order ("(gn)": the penalty's Gauss-Newton part; "(prox)": on UnrolledProxGD)
NAMES = [
    "mse",
    "input-jitter",
    "adversarial",
    "sgd-jitter",
    "curvature-penalty",
    "curvature-penalty (gn)",
    "mse (prox)",
    "spgd-jitter",
]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="denoise", choices=sorted(TRAIN_PRESETS))
    p.add_argument("--size", default="small", choices=("small", "paper"))
    p.add_argument("--batch-size", type=int, default=None, help="default: the preset's")
    p.add_argument("--attack-steps", type=int, default=None, help="PGD steps T (default: the preset's)")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write the numbers to this JSON file")
    return p


def _runs(
    args: argparse.Namespace, preset: TrainPreset, base: ModelConfig, physics, device: torch.device
) -> dict:
    """Per name of :data:`NAMES`: (strategy, model with the same initial weights, Adam, noise generator)."""
    runs = {}
    for name in NAMES:
        sname = name.split(" ")[0]
        opts = preset.strategy_options(sname)
        if sname == "adversarial" and args.attack_steps is not None:
            opts["steps"] = args.attack_steps
        if name == "curvature-penalty (gn)":
            opts["part"] = "gauss-newton"
        strat = make_strategy(sname, **opts)
        cfg = strat.configure_model(base)
        if name == "mse (prox)":
            cfg = ModelConfig.from_dict({**cfg.to_dict(), "arch": "prox"})
        torch.manual_seed(args.seed)
        model = build_model(cfg, physics).to(device).train()
        model.set_generator(torch.Generator(device=device).manual_seed(1))
        opt = torch.optim.Adam(model.parameters(), lr=preset.lr)
        gen = torch.Generator(device=device).manual_seed(2)
        runs[name] = (strat, model, opt, gen)
    return runs


def _times(
    runs: dict, x: torch.Tensor, y: torch.Tensor, device: torch.device, warmup: int, repeats: int
) -> dict[str, list[float]]:
    """Seconds per optimiser step of each strategy, round-robin (``warmup`` rounds dropped)."""

    def step(name: str) -> float:
        strat, model, opt, gen = runs[name]
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = strat.train_step(model, x, y, generator=gen)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    times: dict[str, list[float]] = {n: [] for n in NAMES}
    for r in range(warmup + repeats):
        for n in NAMES:
            t = step(n)
            if r >= warmup:
                times[n].append(t)
    return times


def _rows(times: dict[str, list[float]], attack_steps: int) -> list[dict]:
    """Median, IQR and ratio to the MSE of the same architecture, per strategy."""
    med = {n: statistics.median(v) for n, v in times.items()}
    ref = {n: med["mse (prox)"] if n in ("mse (prox)", "spgd-jitter") else med["mse"] for n in NAMES}
    T = attack_steps
    rows = []
    for n in NAMES:
        q = sorted(times[n])
        rows.append(
            {
                "strategy": n,
                "median_ms": 1e3 * med[n],
                "iqr_ms": 1e3 * (q[3 * len(q) // 4] - q[len(q) // 4]),
                "ratio_to_mse": med[n] / ref[n],
                "expected": f"~{T + 1} (T={T})"
                if n == "adversarial"
                else (
                    "1"
                    if "mse" in n
                    else ("<= 3 (issue 23)" if n.startswith("curvature-penalty") else "<= 1.05")
                ),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    preset = train_preset(args.task, args.size)
    task = make_task(args.task, size=args.size)
    bs = args.batch_size or preset.batch_size
    device = torch.device(args.device)
    pairs = task.pairs(bs, split="train", seed=args.seed)
    x, y = pairs.x.to(device), pairs.y.to(device)
    base = ModelOverrides(preset.model).model_config(task.signal_shape)
    runs = _runs(args, preset, base, task.physics, device)
    rows = _rows(_times(runs, x, y, device, args.warmup, args.repeats), runs["adversarial"][0].attack.steps)
    print(
        f"task {args.task} ({args.size}), batch {bs}, device {device}, threads {torch.get_num_threads()}, "
        f"{args.repeats} round-robin repeats"
    )
    print(f"{'strategy':<22} {'median ms':>10} {'IQR ms':>8} {'ratio':>7}  expected")
    for r in rows:
        print(
            f"{r['strategy']:<22} {r['median_ms']:>10.2f} {r['iqr_ms']:>8.2f} {r['ratio_to_mse']:>7.3f}  {r['expected']}"
        )
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(
                {
                    "task": args.task,
                    "size": args.size,
                    "batch_size": bs,
                    "device": str(device),
                    "threads": torch.get_num_threads(),
                    "repeats": args.repeats,
                    "rows": rows,
                    "torch": str(torch.__version__),
                },
                fh,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
