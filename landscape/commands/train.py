"""``landscape train``: train one unrolled network with one strategy (see :mod:`landscape.train`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from landscape.commands import COMMANDS
from landscape.commands.args import (
    add_scale_arguments,
    add_threads_argument,
    check_out_dir,
    float_nonneg,
    float_pos,
    int_min,
    sigma_list,
)
from landscape.commands.common import scaled
from landscape.defaults import ACTIVATION_NAMES as ACTIVATIONS
from landscape.defaults import SIZE_NAMES as SIZES
from landscape.defaults import STRATEGY_NAMES as STRATEGIES
from landscape.defaults import TASK_NAMES as TASKS
from landscape.distributed import current_context, make_distributed_trainer
from landscape.errors import UsageError, check_device
from landscape.strategies import OPTION_FLAGS, OptionFlag, strategy_options
from landscape.strategies import STRATEGIES as STRATEGY_CLASSES
from landscape.train import Trainer, make_train_config

HELP = COMMANDS["train"]

STRATEGY_HELP = """\
strategies (one named option of the same Trainer; the loss is always plain MSE):
  mse           plain supervised training of the unrolled network
  input-jitter  Gaussian noise of std --sigma added to the measurement y every step
                (MRI: kept on the sampled k-space lines)
  adversarial   l2 PGD on the measurement (--eps, --attack-steps, --attack-step-size;
                eps relative to ||y|| per sample unless --eps-absolute); x_0 recomputed from y + delta
  sgd-jitter    noise inside every unrolled gradient step (UnrolledGD), training only; default
                rule --jitter-mode paper (the official code's), sigma 0.1 (MRI 0.01)
  spgd-jitter   noise inside the argument of the learned proximal map (UnrolledProxGD)
  curvature-penalty
                no noise: MSE + weight * sum_k 1/2 eta_k^2 s_k^2 tr H_{k+1}, the sgd-jitter's
                second-order penalty made explicit (Hutchinson, --penalty-probes per step),
                s_k by --jitter-mode at --sigma on the clean path; --penalty-part gauss-newton
                keeps the Jacobian term eta_k^2 s_k^2 ||J_{k+1}||_F^2 only

writes OUT/checkpoint.pt (weights, full config, metrics, versions, seed, optimizer and generator
states; rewritten atomically after every epoch), OUT/log.csv (one row per epoch, epoch 0 = untrained)
and OUT/metrics.json (final metrics).
"""


def add_model_options(p: argparse.ArgumentParser) -> None:
    """Add the model overrides (``--n-iter``, ``--activation``, ...) to parser ``p`` as one group."""
    g = p.add_argument_group("model")
    g.add_argument(
        "--n-iter",
        "-K",
        type=int_min(1, "n_iter"),
        default=None,
        metavar="K",
        help="number of unrolled iterations K (default: the preset's, 10 for the toy task)",
    )
    g.add_argument(
        "--activation",
        choices=sorted(ACTIVATIONS),
        default=None,
        help="activation of the regularizer network (default gelu)",
    )
    g.add_argument(
        "--arch",
        choices=("gd", "prox"),
        default=None,
        help="gd: UnrolledGD; prox: UnrolledProxGD (sgd-jitter forces gd, spgd-jitter forces prox)",
    )
    g.add_argument(
        "--fixed-step",
        action="store_true",
        help="freeze the step size eta at its initial value instead of learning it",
    )


def _flag_type(flag: OptionFlag) -> Any:
    """The argparse ``type`` of a strategy flag's declared kind."""
    kinds = {"sigma-list": sigma_list, "float>=0": float_nonneg, "float>0": float_pos}
    if flag.kind == "int>=1":
        return int_min(1, flag.limit)
    return kinds.get(flag.kind)


def add_strategy_options(p: argparse.ArgumentParser) -> None:
    """The ``strategy`` argument group: every flag a strategy declares (:data:`landscape.strategies.OPTION_FLAGS`)."""
    g = p.add_argument_group("strategy")
    for flag in OPTION_FLAGS:
        if flag.kind == "switch":
            g.add_argument(flag.flag, action="store_true", help=flag.help)
            continue
        kw: dict[str, Any] = {"default": None, "help": flag.help}
        if flag.kind == "choice":
            kw["choices"] = flag.choices
        else:
            kw["type"] = _flag_type(flag)
        if flag.metavar:
            kw["metavar"] = flag.metavar
        g.add_argument(flag.flag, **kw)


def strategy_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The strategy flags given, as :func:`landscape.train.make_train_config` keywords (None: not given)."""
    return {f.keyword: getattr(args, f.keyword, None) for f in OPTION_FLAGS}


def refuse_foreign_options(args: argparse.Namespace) -> None:
    """UsageError naming the first strategy flag given that ``args.strategy`` does not declare."""
    declared = strategy_options(args.strategy)
    mine = STRATEGY_CLASSES[args.strategy].flags
    for flag in OPTION_FLAGS:
        value = getattr(args, flag.keyword, None)
        if value is not None and value is not False and flag not in mine:
            raise UsageError(
                f"{flag.flag} is not an option of --strategy {args.strategy} "
                f"(its options: {', '.join(declared) or 'none'})"
            )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``landscape train`` and its flags to the CLI's ``subparsers``."""
    p = subparsers.add_parser(
        "train",
        help=HELP,
        description=HELP + ".",
        epilog=STRATEGY_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--task", choices=TASKS, default="denoise", help="inverse problem (default denoise)")
    p.add_argument(
        "--strategy", choices=sorted(STRATEGIES), default="mse", help="training strategy (default mse)"
    )
    p.add_argument(
        "--size",
        choices=SIZES,
        default="small",
        help="preset: small = CPU-sized (default), paper = the paper's sizes (352-sample traces, "
        "320x320 MRI; for a GPU)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="run directory (created if needed)")

    add_strategy_options(p)
    add_model_options(p)

    g = p.add_argument_group("optimisation and data")
    _add_optimisation_flags(g)
    _add_data_and_run_flags(g)
    add_scale_arguments(p, device=False, training=True)
    add_threads_argument(p)
    p.set_defaults(func=scaled(run))


def _add_optimisation_flags(g: argparse._ArgumentGroup) -> None:
    """The flags of the optimisation: epochs, batch size, learning rate and its decays, training-set size, early
    stopping, passes per epoch and snapshots."""
    g.add_argument(
        "--epochs",
        type=int_min(0, "epochs"),
        default=None,
        metavar="N",
        help="epochs (default: the preset's)",
    )
    g.add_argument("--batch-size", type=int_min(1, "batch_size"), default=None, metavar="B")
    g.add_argument("--lr", type=float_pos, default=None, help="Adam learning rate (default: the preset's)")
    g.add_argument(
        "--train-size", type=int_min(1), default=None, metavar="N", help="number of training signals"
    )
    g.add_argument(
        "--patience",
        type=int_min(1, "patience"),
        default=None,
        metavar="P",
        help="stop early when validation PSNR has not risen by more than --min-delta dB for P epochs "
        "(--epochs is then the budget; default: train all epochs)",
    )
    g.add_argument(
        "--min-delta",
        type=float_nonneg,
        default=0.0,
        metavar="DB",
        help="smallest validation-PSNR gain that counts as improvement, in dB (default 0)",
    )
    g.add_argument(
        "--lr-decays",
        type=int_min(0, "lr_decays"),
        default=0,
        metavar="D",
        help="on a validation plateau, multiply the learning rate by --lr-factor and go on, up to D "
        "times; the plateau after the last decay stops the run (needs --patience; default 0)",
    )
    g.add_argument(
        "--lr-factor",
        type=float_pos,
        default=None,
        metavar="F",
        help="the learning-rate factor of each --lr-decays step, in (0, 1) (default 0.3)",
    )
    g.add_argument(
        "--epoch-passes",
        type=int_min(1, "epoch_passes"),
        default=1,
        metavar="P",
        help="passes over the training set per epoch: validation, --patience and --snapshots count "
        "epochs, so a set 1/P the size trains as many steps per epoch (default 1)",
    )
    g.add_argument(
        "--snapshots",
        type=int_min(0, "snapshots"),
        default=0,
        metavar="N",
        help="keep N checkpoints evenly spread over training in DIR/snapshots/ (for curvature over "
        "training: landscape analyze DIR/snapshots/*.pt DIR)",
    )


def _add_data_and_run_flags(g: argparse._ArgumentGroup) -> None:
    """The flags of the training data (noise, seeds) and of the run itself (device, dtype, resume, output)."""
    g.add_argument(
        "--fresh-noise",
        action="store_true",
        help="re-draw the measurement noise of every batch (default: fixed training pairs)",
    )
    g.add_argument(
        "--noise-sigma", type=float_nonneg, default=None, help="measurement noise std (default: the task's)"
    )
    g.add_argument(
        "--seed",
        type=int_min(0),
        default=0,
        help="seed of the weights, batch order, jitter and strategy noise (default 0)",
    )
    g.add_argument(
        "--data-seed", type=int_min(0), default=None, help="seed of the training data (default: --seed)"
    )
    g.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    g.add_argument("--float64", action="store_true", help="train in float64 (default float32)")
    g.add_argument(
        "--resume",
        action="store_true",
        help="continue the run saved in --out (same config; --epochs may be larger)",
    )
    g.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a run already saved in --out (without it, an existing run is never overwritten)",
    )
    g.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no summary")


def run(args: argparse.Namespace) -> int:
    """Run ``landscape train`` with the parsed ``args``; the exit code."""
    check_device(args.device)
    out = check_out_dir(args.out, create=False)
    if args.resume and args.overwrite:
        raise UsageError("--resume and --overwrite exclude each other: continue the run or replace it")
    if args.lr_factor is not None and not args.lr_decays:
        raise UsageError(
            f"--lr-factor {args.lr_factor:g} is used only by --lr-decays D (the learning rate is "
            "multiplied by it on each of D plateaus): give --lr-decays too, or leave --lr-factor out"
        )
    refuse_foreign_options(args)
    cfg = make_train_config(
        args.task,
        args.strategy,
        size=args.size,
        n_iter=args.n_iter,
        activation=args.activation,
        arch=args.arch,
        fixed_step=args.fixed_step,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        train_size=args.train_size,
        fresh_noise=args.fresh_noise,
        patience=args.patience,
        min_delta=args.min_delta,
        lr_decays=args.lr_decays,
        lr_factor=0.3 if args.lr_factor is None else args.lr_factor,
        epoch_passes=args.epoch_passes,
        snapshots=args.snapshots,
        seed=args.seed,
        data_seed=args.data_seed,
        device=args.device,
        dtype="float64" if args.float64 else "float32",
        noise_sigma=args.noise_sigma,
        autocast=args.autocast,
        **strategy_arguments(args),
    )
    progress = None if not args.quiet else False
    ctx = None
    if args.distributed:  # one rank of a torchrun job (landscape.distributed; the job was joined by `scaled`)
        ctx = current_context()
        trainer = make_distributed_trainer(
            cfg,
            ctx,
            out_dir=out,
            progress=progress,
            checkpoint_steps=args.checkpoint_steps,
            threads=args.threads,
        )
    else:  # threads: --threads, or None: a resumed run reuses the count it trained with (Trainer's threads)
        trainer = Trainer(
            cfg, out_dir=out, progress=progress, checkpoint_steps=args.checkpoint_steps, threads=args.threads
        )  # validates first
    # fit claims the folder (a second training into it is refused), refuses to replace a run without
    # --overwrite and creates the folder only now, removing it again if it fails before writing
    result = trainer.fit(resume=args.resume, overwrite=args.overwrite)
    if not args.quiet and (ctx is None or ctx.is_root):
        m = result.metrics
        f, i = m["final"], m["initial"]
        print(
            f"{cfg.strategy.name} on {cfg.task}: val loss {i['val_loss']:.4g} -> {f['val_loss']:.4g}, "
            f"val PSNR {i['val_psnr']:.2f} -> {f['val_psnr']:.2f} dB in {m['epochs']} epochs "
            f"({m['train_seconds']:.1f} s"
            + (f", {ctx.world_size} ranks" if ctx else "")
            + f"); wrote {out / 'checkpoint.pt'}",
            file=sys.stdout,
        )
    return 0
