"""HVP time ÷ gradient time for every backend on the toy, seismic and MRI models.

Pearlmutter's bound: one Hessian-vector product costs about two gradients.  For each model the
gradient :math:`\\nabla_{x_0} L_0` (one forward + backward through all K steps) is timed, then every
backend's single HVP and its batched (vmap) form per HVP, and the backend ``select_backend`` picks.
Targets: auto-selected ≤ 2.5× a gradient, batched ≤ 2.0× per HVP.

    python benchmarks/bench_hvp.py [--models toy seismic mri] [--dtype float64] [--device cpu] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from landscape.curvature.backends import BACKENDS, _time, make_hvp, select_backend
from landscape.curvature.operators import iterate_loss, iterates_of, prepare_solver
from landscape.models import ModelConfig, RegularizerConfig, build_model
from landscape.physics import Deconvolution, Denoising, SingleCoilMRI

RESULTS = Path(__file__).parent / "results"


def build_case(
    name: str, *, dtype: torch.dtype = torch.float64, device: str = "cpu", n_iter: int = 10, batch: int = 1
):
    """(model prepared for analysis, x_true, y) for 'toy' (1x64 signal, 1-D CNN), 'seismic' (1x64x16
    section, 2-D CNN) or 'mri' (2x64x64, 2-D CNN with GroupNorm)."""
    torch.manual_seed(0)
    if name == "toy":
        physics, shape = Denoising(0.1), (1, 64)
        reg = RegularizerConfig(
            kind="cnn", activation="gelu", width=32, depth=3, kernel_size=5, out_scale=1.0
        )
    elif name == "seismic":
        physics, shape = Deconvolution(noise_sigma=0.01), (1, 64, 16)
        reg = RegularizerConfig(
            kind="cnn", activation="gelu", width=16, depth=3, kernel_size=3, out_scale=1.0
        )
    elif name == "mri":
        physics, shape = SingleCoilMRI((64, 64), noise_sigma=0.01), (2, 64, 64)
        reg = RegularizerConfig(
            kind="cnn", activation="gelu", width=16, depth=3, kernel_size=3, norm="group", out_scale=1.0
        )
    else:
        raise ValueError(f"unknown case {name!r}")
    model = build_model(ModelConfig(arch="gd", signal_shape=shape, n_iter=n_iter, regularizer=reg), physics)
    model = prepare_solver(model, dtype).solver.to(device)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, *shape, generator=g, dtype=dtype).to(device)
    y = (
        model.physics.measure(x.cpu(), generator=g).to(device)
        if device == "cpu"
        else model.physics.measure(x)
    )
    return model, x, y


def loss_fn(model, x, y, k=0):
    """The scalar function of the flat iterate the operators differentiate, and its point."""
    xk = iterates_of(model, y)[k]
    shape = xk.shape

    def f(z):
        return iterate_loss(model, z.view(shape), y, x, k).sum()

    return f, xk.reshape(-1).detach()


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench_case(name: str, *, dtype, device: str, budget_s: float, block: int) -> dict:
    model, x, y = build_case(name, dtype=dtype, device=device)
    f, x0 = loss_fn(model, x, y, 0)
    xg = x0.clone().requires_grad_(True)

    def grad_once():
        with torch.enable_grad():
            out = torch.autograd.grad(f(xg), xg)[0]
        sync(device)
        return out

    t_grad = _time(grad_once, budget_s)
    row = {"model": name, "dim": x0.numel(), "K": model.n_iter, "gradient_s": t_grad, "backends": {}}
    v = torch.randn(x0.shape, dtype=dtype, generator=torch.Generator().manual_seed(0)).to(device)
    V = torch.randn((block, *x0.shape), dtype=dtype, generator=torch.Generator().manual_seed(1)).to(device)
    for b in BACKENDS:
        try:
            h = make_hvp(f, x0, b)
            single = _time(lambda h=h: (h(v), sync(device)), budget_s)
            batched = _time(lambda h=h: (h.batched(V), sync(device)), budget_s) / block
            row["backends"][b] = {
                "setup_s": h.setup_time,
                "hvp_s": single,
                "batched_hvp_s": batched,
                "ratio": single / t_grad,
                "batched_ratio": batched / t_grad,
                "batched_mode": h.batched_mode,
            }
        except Exception as exc:  # noqa: BLE001 - a backend that cannot run on this model is reported
            row["backends"][b] = {"error": f"{type(exc).__name__}: {str(exc)[:120]}"}
    # the selection analyze_iterates makes for an estimator analysis of 16 samples at every iterate
    from landscape.curvature.analysis import CurvatureSettings, expected_products

    st = CurvatureSettings(method="estimate")
    per = expected_products(st, x0.numel())
    t0 = time.perf_counter()
    choice = select_backend(
        f,
        x0,
        budget_s=st.backend_budget_s,
        expected_products=per,
        total_products=per * 16 * (model.n_iter + 1),
    )
    row["auto"] = {
        "backend": choice.backend,
        "selection_s": time.perf_counter() - t0,
        "timings": choice.timings,
        "ratio": row["backends"][choice.backend]["ratio"],
    }
    best_b = min(
        (n for n, r in row["backends"].items() if "error" not in r),
        key=lambda n: row["backends"][n]["batched_ratio"],
    )
    row["best_batched"] = {"backend": best_b, "ratio": row["backends"][best_b]["batched_ratio"]}
    row["targets"] = {
        "auto<=2.5": row["auto"]["ratio"] <= 2.5,
        "batched<=2.0": row["best_batched"]["ratio"] <= 2.0,
    }
    return row


def print_table(rows: list[dict]) -> None:
    print(f"{'model':8} {'dim':>6} {'grad ms':>9}  " + "  ".join(f"{b:>22}" for b in BACKENDS) + "   auto")
    print(f"{'':8} {'':>6} {'':>9}  " + "  ".join(f"{'single / batched x':>22}" for _ in BACKENDS))
    for r in rows:
        cells = []
        for b in BACKENDS:
            c = r["backends"][b]
            cells.append(
                f"{'error':>22}" if "error" in c else f"{c['ratio']:>10.2f} / {c['batched_ratio']:<9.2f}"
            )
        print(
            f"{r['model']:8} {r['dim']:>6} {1e3 * r['gradient_s']:>9.2f}  "
            + "  ".join(cells)
            + f"   {r['auto']['backend']} ({r['auto']['ratio']:.2f}x); best batched "
            f"{r['best_batched']['backend']} ({r['best_batched']['ratio']:.2f}x)"
        )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["toy", "seismic", "mri"])
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.add_argument("--device", default="cpu")
    p.add_argument("--budget", type=float, default=1.0, help="seconds of timing per measurement")
    p.add_argument("--block", type=int, default=8, help="vectors per batched HVP")
    p.add_argument("--out", default=str(RESULTS / "bench_hvp.json"))
    args = p.parse_args(argv)
    dtype = getattr(torch, args.dtype)
    rows = []
    for name in args.models:
        rows.append(bench_case(name, dtype=dtype, device=args.device, budget_s=args.budget, block=args.block))
        print(f"done {name}", file=sys.stderr)
    print_table(rows)
    rec = {
        "benchmark": "hvp_over_gradient",
        "dtype": args.dtype,
        "device": args.device,
        "device_name": torch.cuda.get_device_name()
        if args.device.startswith("cuda")
        else platform.processor(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "block": args.block,
        "cpu_count": os.cpu_count(),
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rec, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
