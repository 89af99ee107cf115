"""``landscape claims RUNS... --out DIR``: the paper's claims as hypotheses, with intervals and verdicts.

Checkpoints with the same strategy and model config are seeds of one group; each jittered group is
compared with the MSE group of the same model config.  Writes DIR/claims.json
(:class:`landscape.claims.ClaimsResult`) and DIR/claims.html together (one write group), and prints the verdict table.
"""

from __future__ import annotations

import argparse
import sys

from landscape.claims import check_claims
from landscape.commands import COMMANDS
from landscape.commands.args import add_scale_arguments, add_threads_argument, check_out_dir, int_min
from landscape.commands.common import scaled
from landscape.commands.curvature_args import add_curvature_arguments, curvature_settings
from landscape.executor import current_executor
from landscape.io import check_outputs
from landscape.viz.claims_report import write_claims

HELP = COMMANDS["claims"]


def _floats(text: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected comma-separated numbers like 0.025,0.05,0.1"
        ) from None
    if not vals or any(not v > 0 for v in vals):
        raise argparse.ArgumentTypeError(f"{text!r}: expected numbers > 0")
    return vals


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``landscape claims`` and its flags to the CLI's ``subparsers``."""
    p = subparsers.add_parser("claims", help=HELP, description=(__doc__ or "").split("\n\n", 1)[1].strip())
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories or checkpoint files (one task)")
    p.add_argument("--out", required=True, metavar="DIR", help="where claims.json and claims.html go")
    p.add_argument(
        "--n-curvature", type=int_min(1), default=4, metavar="N", help="ID samples for the Hessians (4)"
    )
    p.add_argument(
        "--n-ood-curvature",
        type=int_min(0),
        default=4,
        metavar="N",
        help="samples per OOD split for the Hessians (4; 0 = none)",
    )
    p.add_argument(
        "--ood-iterates", default="all", metavar="K,K", help="iterates analysed on OOD splits (all)"
    )
    p.add_argument(
        "--n-eval",
        type=int_min(2),
        default=64,
        metavar="N",
        help="samples per split for accuracy, robustness, attack (64)",
    )
    p.add_argument(
        "--sigmas",
        type=_floats,
        default=(0.025, 0.05, 0.1),
        metavar="S,S",
        help="σ of the penalty check (0.025,0.05,0.1)",
    )
    p.add_argument(
        "--mc-pairs", type=int_min(2), default=512, metavar="N", help="antithetic pairs per sample (512)"
    )
    p.add_argument(
        "--directions", type=int_min(1), default=8, metavar="N", help="random directions per sample (8)"
    )
    p.add_argument("--no-attack", action="store_true", help="skip the PGD attack")
    p.add_argument(
        "--attack-steps",
        type=int_min(1),
        default=None,
        metavar="N",
        help="PGD steps of the attack (default: each run's evaluation config, 20)",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no table")
    add_curvature_arguments(p)
    add_scale_arguments(p)
    add_threads_argument(p)
    p.set_defaults(func=scaled(run))


def run(args: argparse.Namespace) -> int:
    """Run ``landscape claims`` with the parsed ``args``; the exit code."""
    ex = current_executor()
    out = check_out_dir(args.out, create=False)  # created when written: a refusal leaves no folder
    check_outputs([out / "claims.json", out / "claims.html"], args.runs)  # both, before any work
    res = check_claims(
        args.runs,
        n_curvature=args.n_curvature,
        n_ood_curvature=args.n_ood_curvature,
        ood_iterates=args.ood_iterates,
        n_eval=args.n_eval,
        sigmas=args.sigmas,
        mc_pairs=args.mc_pairs,
        n_directions=args.directions,
        attack=not args.no_attack,
        attack_steps=args.attack_steps,
        curvature=curvature_settings(args),
        seed=args.seed,
        progress=not args.quiet and ex.is_root,
        executor=ex,
        device=args.device,
    )
    if not ex.is_root:  # rank 0 writes
        return 0
    out = check_out_dir(args.out)
    command = "landscape claims " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["claims"] else None
    write_claims(res, out, command=command)  # claims.json and claims.html: one write group
    if not args.quiet:
        print(res.table())
        print(f"\nwrote {out / 'claims.json'} and {out / 'claims.html'}")
    return 0
