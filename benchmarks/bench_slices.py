"""A 51 x 51 loss slice evaluated in batches vs point by point, side by side.

The model is the demo's toy denoiser (signals of length 64, K = 10 unrolled steps, residual 1-D CNN
regularizer of width 32 and depth 4, kernel 5), untrained but with a full-size last layer, in float64
on the CPU.  Input space: L_k(x_k + a d1 + b d2) at k = 0 (all K steps run for every point), two
seeded random directions; the batched evaluation stacks the grid points along the batch dimension of
``model.tail`` in memory-capped chunks (default budget 256 MB), the pointwise one calls it once per
point.  Parameter space: the same grid for the training loss on 8 samples around theta,
``torch.func.vmap`` over ``functional_call`` vs one call per point.  Reports the best of ``--repeats``
wall times, the speed-up and the largest difference between the two grids.

It also times the model's own forward (``tail`` from k = 0) per point at batch sizes 1..2601 and reports the
slice's time per grid point ÷ the best of those (the throughput limit; target ≤ 1.3).

Measured 2026-11-26 (51 x 51, demo model, batched vs pointwise):

* NVIDIA H100, float64: 0.056 s vs 10.5 s (187x); float32: 0.033 s vs 9.4 s (281x); parameter space
  21 x 21, float64: 0.22 s vs 1.86 s (8.6x).
* CPU (one core of that machine, idle), float64: 4.9 s vs 5.0 s (1.0x): here the per-point work is
  about 20 MFLOP and PyTorch's float64 CPU convolution runs sample by sample (im2col + GEMM per batch
  element), so stacking points saves only the Python/dispatch overhead, which is small beside it.
  float32 (oneDNN convolutions): 1.6 s vs 6.2 s (3.9x).  With an MLP regularizer
  (``--kind mlp --width 64 --depth 3``) the batched float64 grid is 32x faster on one CPU core.

    OMP_NUM_THREADS=1 python benchmarks/bench_slices.py [--grid 51] [--threads 1] [--dtype float64|float32]
        [--device cpu|cuda] [--out bench_slices.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import numpy as np
import torch


def _best(fn, repeats: int):
    best, out = float("inf"), None
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best, out


def main(argv: list[str] | None = None) -> int:
    from landscape.curvature.slices import input_slice, parameter_slice
    from landscape.data import make_task
    from landscape.models import ModelConfig, RegularizerConfig, build_model

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--grid", type=int, default=51)
    ap.add_argument(
        "--param-grid", type=int, default=21, help="grid of the parameter-space comparison (0: skip)"
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--memory-mb", type=float, default=256.0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    ap.add_argument("--kind", choices=("cnn", "mlp"), default="cnn", help="regularizer (the demo's: cnn)")
    ap.add_argument("--width", type=int, default=32, help="regularizer width (the demo's: 32)")
    ap.add_argument("--depth", type=int, default=4, help="regularizer depth (the demo's: 4)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)

    task = make_task("denoise")
    cfg = ModelConfig(
        arch="gd",
        signal_shape=task.signal_shape,
        n_iter=10,
        regularizer=RegularizerConfig(
            kind=args.kind, width=args.width, depth=args.depth, kernel_size=5, out_scale=1.0
        ),
    )
    torch.manual_seed(0)
    dtype = getattr(torch, args.dtype)
    model = build_model(cfg, task.physics).to(dtype=dtype, device=dev).eval().requires_grad_(False)
    pairs = task.pairs(8, seed=0, dtype=dtype)
    x, y = pairs.x.to(dev), pairs.y.to(dev)
    n = args.grid
    res: dict = {
        "device": str(dev),
        "dtype": args.dtype,
        "cpu": platform.processor() or platform.machine(),
        "threads": args.threads,
        "torch": torch.__version__,
        "grid": [n, n],
        "model": cfg.to_dict(),
    }

    def run(method: str):
        return input_slice(
            model, y[:1], x[:1], 0, n=n, seed=0, method=method, memory_mb=args.memory_mb, dtype=None
        )  # the grid in the model's dtype (the slice default is float32)

    run("batched")  # warm-up
    tb, sb = _best(lambda: run("batched"), args.repeats)
    tp, sp = _best(lambda: run("pointwise"), max(1, args.repeats - 2))
    diff = float(np.max(np.abs(sb.values - sp.values)))
    res["input"] = {
        "batched_s": tb,
        "pointwise_s": tp,
        "speedup": tp / tb,
        "max_abs_diff": diff,
        "chunk_size": sb.chunk_size,
        "calls_batched": sb.settings["calls"],
        "points": n * n,
    }
    where = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU, {args.threads} thread(s)"
    print(f"input space, {n}x{n} = {n * n} points, k=0 (K=10 steps each), {args.dtype}, {where}")
    print(f"  batched   {tb:8.3f} s  ({sb.settings['calls']} calls, chunks of {sb.chunk_size})")
    print(f"  pointwise {tp:8.3f} s  ({n * n} calls)")
    print(f"  speed-up  {tp / tb:8.1f} x   max |difference| {diff:.2e}")
    # the throughput limit: the model's own forward (tail from k = 0) per point, at the best batch size
    lim = {}
    x0 = model(y[:1], return_iterates=True).iterates[0]
    for b in (1, 8, 32, 128, 512, 2048, n * n):
        xb, yb = x0.expand(b, *x0.shape[1:]).contiguous(), y[:1].expand(b, *y.shape[1:]).contiguous()
        with torch.no_grad():
            t, _ = _best(lambda xb=xb, yb=yb: model.tail(xb, yb, 0), args.repeats)
        lim[b] = t / b
    best_b = min(lim, key=lim.get)
    res["input"]["forward_per_point_s"] = {str(b): v for b, v in lim.items()}
    res["input"]["ratio_to_best_forward"] = (tb / (n * n)) / lim[best_b]
    print(
        f"  per point {1e6 * tb / (n * n):8.1f} us; the model's best forward {1e6 * lim[best_b]:.1f} us per point "
        f"(batch {best_b}): ratio {res['input']['ratio_to_best_forward']:.2f} (target <= 1.3)"
    )
    if args.param_grid > 0:
        m = args.param_grid

        def prun(method: str):
            return parameter_slice(model, y, x, n=m, seed=0, method=method, memory_mb=args.memory_mb)

        prun("batched")
        tb2, pb = _best(lambda: prun("batched"), args.repeats)
        tp2, pp = _best(lambda: prun("pointwise"), max(1, args.repeats - 2))
        d2 = float(np.max(np.abs(pb.values - pp.values)))
        res["parameter"] = {
            "batched_s": tb2,
            "pointwise_s": tp2,
            "speedup": tp2 / tb2,
            "max_abs_diff": d2,
            "chunk_size": pb.chunk_size,
            "method": pb.method,
            "points": m * m,
            "samples": 8,
        }
        print(f"parameter space, {m}x{m} points, training loss on 8 samples (vmap over functional_call)")
        print(f"  batched   {tb2:8.3f} s  ({pb.method}, chunks of {pb.chunk_size})")
        print(f"  pointwise {tp2:8.3f} s")
        print(f"  speed-up  {tp2 / tb2:8.1f} x   max |difference| {d2:.2e}")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(res, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
