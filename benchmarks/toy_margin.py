"""How far a learned nonlinear solver beats the best linear estimator on the toy denoising task.

Trains a small UnrolledGD (1-D CNN regularizer, plain MSE, Adam, CPU, seeded) on the toy task and reports
the in-distribution test PSNR of

* ``identity``  — the measurement ``y`` itself,
* ``affine``    — the least-squares affine map ``y -> W y + b`` fitted on the same training pairs
  (:func:`landscape.baselines.fit_affine`), the best linear estimator on that data,
* ``unrolled``  — the trained unrolled network,

and the margin ``unrolled - affine``.  PSNR convention (per sample, then the mean over samples):
``10 log10(peak^2 / MSE)`` with ``peak = max_i |x*_i|`` of that sample and ``MSE`` the mean over its
entries.

    OMP_NUM_THREADS=1 python benchmarks/toy_margin.py --out toy_margin.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import torch

from landscape.baselines import fit_affine
from landscape.data import make_task
from landscape.models import ModelConfig, RegularizerConfig, build_model


def psnr(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-sample PSNR (dB), peak = max |x| of the sample, MSE = mean over its entries."""
    mse = (x_hat - x).flatten(1).pow(2).mean(1)
    peak = x.flatten(1).abs().amax(1)
    return 10 * torch.log10(peak**2 / mse)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=None, help="write the numbers to this JSON file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--length", type=int, default=64)
    p.add_argument("--noise-sigma", type=float, default=None, help="default: the task's")
    p.add_argument("--n-train", type=int, default=2048)
    p.add_argument("--n-test", type=int, default=512)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--n-iter", type=int, default=10)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--kernel-size", type=int, default=5)
    p.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="stop training after this wall time (off by default: the numbers then depend on the machine)",
    )
    args = p.parse_args(argv)

    torch.manual_seed(args.seed)
    task = make_task("denoise", length=args.length, noise_sigma=args.noise_sigma)
    train = task.training_set(args.n_train, seed=args.seed)
    test = task.pairs(args.n_test, split="id", seed=args.seed)

    identity = float(psnr(test.y, test.x).mean())
    affine = fit_affine(train.x, train.y)
    affine_psnr = float(psnr(affine(test.y), test.x).mean())
    affine_train = float(psnr(affine(train.y), train.x).mean())

    cfg = ModelConfig(
        arch="gd",
        signal_shape=task.signal_shape,
        n_iter=args.n_iter,
        regularizer=RegularizerConfig(
            kind="cnn", activation="gelu", width=args.width, depth=args.depth, kernel_size=args.kernel_size
        ),
    )
    model = build_model(cfg, task.physics)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, T_max=args.epochs * train.n_batches(args.batch_size)
    )
    g = torch.Generator().manual_seed(args.seed + 1)
    t0 = time.perf_counter()
    epochs_run = 0
    for epoch in range(args.epochs):
        model.train()
        total = 0.0
        for xb, yb in train.batches(args.batch_size, generator=g):
            loss = (model(yb) - xb).pow(2).flatten(1).sum(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(xb)
        epochs_run = epoch + 1
        print(
            f"epoch {epochs_run:3d}  train loss {total / len(train):.4f}  ({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
        if args.max_seconds is not None and time.perf_counter() - t0 > args.max_seconds:
            break
    train_seconds = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        unrolled = float(psnr(model(test.y), test.x).mean())

    result = {
        "task": task.config(),
        "seed": args.seed,
        "n_train": args.n_train,
        "n_test": args.n_test,
        "psnr_convention": "per-sample 10*log10(max|x*|^2 / mean squared error), mean over test samples",
        "psnr_db": {"identity": identity, "affine": affine_psnr, "unrolled": unrolled},
        "affine_train_psnr_db": affine_train,
        "margin_unrolled_minus_affine_db": unrolled - affine_psnr,
        "model": model.config(),
        "epochs_run": epochs_run,
        "lr": args.lr,
        "batch_size": args.batch_size,
        "train_seconds": train_seconds,
        "torch_threads": torch.get_num_threads(),
    }
    print(
        f"ID test PSNR (dB): identity {identity:.2f} | affine {affine_psnr:.2f} | unrolled {unrolled:.2f} | "
        f"margin {unrolled - affine_psnr:+.2f} dB"
    )
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0 if math.isfinite(unrolled) else 1


if __name__ == "__main__":
    sys.exit(main())
