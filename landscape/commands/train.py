"""``landscape train``: train one unrolled network with one strategy (see :mod:`landscape.train`)."""

from __future__ import annotations

import argparse
import sys

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
from landscape.defaults import JITTER_MODE_ALIASES as MODE_ALIASES
from landscape.defaults import JITTER_MODE_NAMES as JITTER_MODES
from landscape.defaults import SIZE_NAMES as SIZES
from landscape.defaults import STRATEGY_NAMES as STRATEGIES
from landscape.defaults import TASK_NAMES as TASKS
from landscape.distributed import current_context, make_distributed_trainer
from landscape.errors import UsageError, check_device
from landscape.penalty import PENALTY_PARTS
from landscape.strategies import strategy_options
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
    g = p.add_argument_group("model")
    g.add_argument("--n-iter", "-K", type=int_min(1, "n_iter"), default=None, metavar="K",
                   help="number of unrolled iterations K (default: the preset's, 10 for the toy task)")
    g.add_argument("--activation", choices=sorted(ACTIVATIONS), default=None,
                   help="activation of the regularizer network (default gelu)")
    g.add_argument("--arch", choices=("gd", "prox"), default=None,
                   help="gd: UnrolledGD; prox: UnrolledProxGD (sgd-jitter forces gd, spgd-jitter forces prox)")
    g.add_argument("--fixed-step", action="store_true",
                   help="freeze the step size eta at its initial value instead of learning it")


# each strategy flag and the strategy option it sets: a flag is refused for a strategy without that option
STRATEGY_FLAGS = {
    "--sigma": ("sigma", "sigma"),
    "--jitter-mode": ("jitter_mode", "mode"),
    "--eps": ("eps", "eps"),
    "--eps-absolute": ("eps_absolute", "relative"),
    "--attack-steps": ("attack_steps", "steps"),
    "--attack-step-size": ("attack_step_size", "step_size"),
    "--penalty-weight": ("penalty_weight", "weight"),
    "--penalty-probes": ("penalty_probes", "probes"),
    "--penalty-part": ("penalty_part", "part"),
}


def refuse_foreign_options(args: argparse.Namespace) -> None:
    """UsageError naming the first strategy flag given that ``args.strategy`` has no option for."""
    declared = strategy_options(args.strategy)
    for flag, (dest, option) in STRATEGY_FLAGS.items():
        value = getattr(args, dest, None)
        if value is not None and value is not False and option not in declared:
            raise UsageError(
                f"{flag} is not an option of --strategy {args.strategy} "
                f"(its options: {', '.join(declared) or 'none'})"
            )


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help=HELP,
        description=HELP + ".",
        epilog=STRATEGY_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--task", choices=TASKS, default="denoise", help="inverse problem (default denoise)")
    p.add_argument("--strategy", choices=sorted(STRATEGIES), default="mse", help="training strategy (default mse)")
    p.add_argument("--size", choices=SIZES, default="small",
                   help="preset: small = CPU-sized (default), paper = the paper's sizes (352-sample traces, "
                        "320x320 MRI; for a GPU)")
    p.add_argument("--out", required=True, metavar="DIR", help="run directory (created if needed)")

    g = p.add_argument_group("strategy")
    g.add_argument("--sigma", type=sigma_list, default=None, metavar="S",
                   help="noise level: input-jitter sigma_w per entry; sgd/spgd-jitter sigma, one number or one per "
                        "iteration as a comma list (e.g. 0.1,0.1,0.1,0.1,0.1,0.1,0.1,0.1,0,0). Default: the preset's")
    g.add_argument("--jitter-mode", choices=JITTER_MODES + tuple(MODE_ALIASES), default=None,
                   help="sgd/spgd-jitter noise rule: paper (std sigma * max(x_k - eta A^T(A x_k - y)) over the batch, "
                        "not detached: the official code's rule; preset default), absolute (std sigma), normalized "
                        "(std sigma/sqrt(n)), per-sample-step (std sigma * max|gradient step| per sample, detached; "
                        "'relative' is its deprecated name), paper-clean-path (the paper rule with its scale taken "
                        "from the un-jittered trajectory, a control)")
    g.add_argument("--eps", type=float_nonneg, default=None,
                   help="adversarial: PGD radius (relative to ||y|| per sample unless --eps-absolute)")
    g.add_argument("--eps-absolute", action="store_true", help="adversarial: --eps is an absolute l2 norm")
    g.add_argument("--attack-steps", type=int_min(1, "attack_steps"), default=None, metavar="T", help="adversarial: PGD steps T")
    g.add_argument("--attack-step-size", type=float_pos, default=None, metavar="A",
                   help="adversarial: PGD step as a fraction of eps")
    g.add_argument("--penalty-weight", type=float_nonneg, default=None, metavar="L",
                   help="curvature-penalty: the weight lambda of the penalty (default 1: the expansion's own)")
    g.add_argument("--penalty-probes", type=int_min(1, "probes"), default=None, metavar="P",
                   help="curvature-penalty: Rademacher probes per step, one per iterate each (default 1)")
    g.add_argument("--penalty-part", choices=PENALTY_PARTS, default=None,
                   help="curvature-penalty: full (1/2 tr H, default) or gauss-newton (||J||_F^2 only)")

    add_model_options(p)

    g = p.add_argument_group("optimisation and data")
    g.add_argument("--epochs", type=int_min(0, "epochs"), default=None, metavar="N", help="epochs (default: the preset's)")
    g.add_argument("--batch-size", type=int_min(1, "batch_size"), default=None, metavar="B")
    g.add_argument("--lr", type=float_pos, default=None, help="Adam learning rate (default: the preset's)")
    g.add_argument("--train-size", type=int_min(1), default=None, metavar="N", help="number of training signals")
    g.add_argument("--patience", type=int_min(1, "patience"), default=None, metavar="P",
                   help="stop early when validation PSNR has not risen by more than --min-delta dB for P epochs "
                        "(--epochs is then the budget; default: train all epochs)")
    g.add_argument("--min-delta", type=float_nonneg, default=0.0, metavar="DB",
                   help="smallest validation-PSNR gain that counts as improvement, in dB (default 0)")
    g.add_argument("--lr-decays", type=int_min(0, "lr_decays"), default=0, metavar="D",
                   help="on a validation plateau, multiply the learning rate by --lr-factor and go on, up to D "
                        "times; the plateau after the last decay stops the run (needs --patience; default 0)")
    g.add_argument("--lr-factor", type=float_pos, default=None, metavar="F",
                   help="the learning-rate factor of each --lr-decays step, in (0, 1) (default 0.3)")
    g.add_argument("--epoch-passes", type=int_min(1, "epoch_passes"), default=1, metavar="P",
                   help="passes over the training set per epoch: validation, --patience and --snapshots count "
                        "epochs, so a set 1/P the size trains as many steps per epoch (default 1)")
    g.add_argument("--snapshots", type=int_min(0, "snapshots"), default=0, metavar="N",
                   help="keep N checkpoints evenly spread over training in DIR/snapshots/ (for curvature over "
                        "training: landscape analyze DIR/snapshots/*.pt DIR)")
    g.add_argument("--fresh-noise", action="store_true",
                   help="re-draw the measurement noise of every batch (default: fixed training pairs)")
    g.add_argument("--noise-sigma", type=float_nonneg, default=None, help="measurement noise std (default: the task's)")
    g.add_argument("--seed", type=int_min(0), default=0,
                   help="seed of the weights, batch order, jitter and strategy noise (default 0)")
    g.add_argument("--data-seed", type=int_min(0), default=None, help="seed of the training data (default: --seed)")
    g.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    g.add_argument("--float64", action="store_true", help="train in float64 (default float32)")
    g.add_argument("--resume", action="store_true",
                   help="continue the run saved in --out (same config; --epochs may be larger)")
    g.add_argument("--overwrite", action="store_true",
                   help="replace a run already saved in --out (without it, an existing run is never overwritten)")
    g.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no summary")
    add_scale_arguments(p, device=False, training=True)
    add_threads_argument(p)
    p.set_defaults(func=scaled(run))


def run(args: argparse.Namespace) -> int:
    check_device(args.device)
    out = check_out_dir(args.out, create=False)
    if args.resume and args.overwrite:
        raise UsageError("--resume and --overwrite exclude each other: continue the run or replace it")
    if args.lr_factor is not None and not args.lr_decays:
        raise UsageError(f"--lr-factor {args.lr_factor:g} is used only by --lr-decays D (the learning rate is "
                         "multiplied by it on each of D plateaus): give --lr-decays too, or leave --lr-factor out")
    refuse_foreign_options(args)
    cfg = make_train_config(
        args.task,
        args.strategy,
        size=args.size,
        sigma=args.sigma,
        jitter_mode=args.jitter_mode,
        eps=args.eps,
        eps_relative=False if args.eps_absolute else None,
        attack_steps=args.attack_steps,
        attack_step_size=args.attack_step_size,
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
        options={"weight": args.penalty_weight, "probes": args.penalty_probes, "part": args.penalty_part},
    )
    progress = None if not args.quiet else False
    ctx = None
    if args.distributed:  # one rank of a torchrun job (landscape.distributed; the job was joined by `scaled`)
        ctx = current_context()
        trainer = make_distributed_trainer(cfg, ctx, out_dir=out, progress=progress,
                                           checkpoint_steps=args.checkpoint_steps, threads=args.threads)
    else:  # threads: --threads, or None: a resumed run reuses the count it trained with (Trainer's threads)
        trainer = Trainer(cfg, out_dir=out, progress=progress, checkpoint_steps=args.checkpoint_steps,
                          threads=args.threads)  # validates first
    # fit claims the folder (a second training into it is refused), refuses to replace a run without
    # --overwrite and creates the folder only now, removing it again if it fails before writing
    result = trainer.fit(resume=args.resume, overwrite=args.overwrite)
    if not args.quiet and (ctx is None or ctx.is_root):
        m = result.metrics
        f, i = m["final"], m["initial"]
        print(
            f"{cfg.strategy.name} on {cfg.task}: val loss {i['val_loss']:.4g} -> {f['val_loss']:.4g}, "
            f"val PSNR {i['val_psnr']:.2f} -> {f['val_psnr']:.2f} dB in {m['epochs']} epochs "
            f"({m['train_seconds']:.1f} s" + (f", {ctx.world_size} ranks" if ctx else "") + f"); wrote {out / 'checkpoint.pt'}",
            file=sys.stdout,
        )
    return 0
