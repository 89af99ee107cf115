"""``landscape experiment``: the paper's comparison for one task end to end, and the studies beyond it.

Trains every strategy of the paper (mse, input-jitter, adversarial, sgd-jitter on UnrolledGD; mse and
spgd-jitter on UnrolledProxGD) for each seed until validation stops improving within the preset's budget,
evaluates each run (ID, every OOD shift, random perturbations, PGD at several ε with random restarts, the
worst restart kept), measures curvature at every iterate (and over training, from snapshots), runs the
claims, and writes DIR/results.json, DIR/results.md and DIR/report.html together.  Runs already in
DIR/runs are reused and an interrupted run resumes, so a stopped experiment continues where it stopped.
The Python API is landscape.experiment.run_experiment.
"""

from __future__ import annotations

import argparse
import sys

from landscape.commands import COMMANDS
from landscape.commands.args import (
    add_scale_arguments,
    add_threads_argument,
    check_out_dir,
    export_formats,
    int_min,
)
from landscape.commands.common import scaled
from landscape.defaults import ACTIVATION_NAMES
from landscape.executor import current_executor
from landscape.experiment import ABLATIONS, run_experiment

HELP = COMMANDS["experiment"]


def _list(kind, what: str):
    def parse(text: str):
        try:
            return [kind(t) for t in text.split(",") if t.strip()]
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated {what}") from None

    return parse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``landscape experiment`` and its flags to the CLI's ``subparsers``."""
    p = subparsers.add_parser(
        "experiment", help=HELP, description=(__doc__ or "").split("\n\n", 1)[1].strip()
    )
    p.add_argument("task", choices=("denoise", "seismic", "mri"), help="the inverse problem")
    _add_plan_flags(p)
    _add_run_flags(p)
    p.set_defaults(func=scaled(run))


def _add_plan_flags(p: argparse.ArgumentParser) -> None:
    """What is run: the preset, the seeds, and the studies (noise levels, activations, ablations) and their seeds."""
    p.add_argument(
        "--preset",
        choices=("fast", "paper", "tiny"),
        default="fast",
        help="fast: K = 5 and small sizes for 2 CPU cores, every run trained to a validation plateau "
        "(measured with 3 seeds, claims and --workers 2, docs/results.md: denoise 13 min, mri 12, "
        "seismic 29; the preset's own seed counts, 8 for denoise and 5 for mri, take longer and were not timed yet); paper: the paper's sizes, for a GPU; tiny: a smoke test in seconds (default fast)",
    )
    p.add_argument(
        "--seeds",
        type=int_min(1, "seeds"),
        default=None,
        metavar="N",
        help="seeds 0..N-1 per strategy (default: the preset's, enough for its claims to reach verdicts: "
        "fast denoise 8, mri 5, seismic 3; theory/claims.md has the power table)",
    )
    p.add_argument(
        "--sigmas",
        type=_list(float, "numbers"),
        default=[],
        metavar="S,S,...",
        help="noise-level study: sgd-jitter at each sigma (paper rule), e.g. 0.025,0.05,0.2",
    )
    p.add_argument(
        "--activations",
        type=_list(str, "names"),
        default=[],
        metavar="A,A,...",
        help=f"activation study: mse and sgd-jitter with each regularizer activation ({', '.join(ACTIVATION_NAMES)})",
    )
    p.add_argument(
        "--ablations",
        type=_list(str, "names"),
        default=[],
        metavar="NAME,...",
        help=f"mechanism ablations: {', '.join(ABLATIONS)} (or all); explicit-penalty trains the "
        "curvature-penalty strategy beside the main runs, for the 'explicit ≈ jitter' claims",
    )
    p.add_argument(
        "--study-seeds",
        type=int_min(1, "study_seeds"),
        default=None,
        metavar="N",
        help="seeds of the studies (default: --seeds)",
    )


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    """How it runs and where it writes: claims or not, local workers, the folder, exported figures, quiet,
    threads, and where it runs (--distributed, --device, --autocast)."""
    p.add_argument("--no-claims", action="store_true", help="skip landscape claims on the main runs")
    p.add_argument(
        "--workers",
        type=int_min(1, "workers"),
        default=1,
        metavar="W",
        help="train, evaluate and analyse W runs at once in local processes, one torch thread each "
        "(default 1; under torchrun use --distributed instead)",
    )
    p.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="experiment folder (runs are reused from DIR/runs): "
        "absent, empty or an experiment's own, unless --overwrite",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="write into DIR even though it holds files landscape experiment did not write (they are "
        "left alone unless they have the names of its outputs)",
    )
    p.add_argument(
        "--export",
        type=export_formats,
        default=(),
        metavar="FMT[,FMT]",
        help="also write every figure of report.html as DIR/TASK-PRESET_NAME.FMT, with the results: pdf, "
        "svg (through kaleido and a Chrome/Chromium), png or html",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar, no summary")
    add_threads_argument(p)
    add_scale_arguments(p)


def run(args: argparse.Namespace) -> int:
    """Run ``landscape experiment`` with the parsed ``args``; the exit code."""
    out = check_out_dir(args.out, create=False)
    abl = list(ABLATIONS) if args.ablations == ["all"] else args.ablations
    say = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    rec = run_experiment(
        args.task,
        out,
        preset=args.preset,
        seeds=args.seeds,
        sigmas=args.sigmas,
        activations=args.activations,
        ablations=abl,
        study_seeds=args.study_seeds,
        claims=not args.no_claims,
        progress=not args.quiet,
        say=say,
        workers=args.workers,
        device=args.device,
        export=args.export,
        overwrite=args.overwrite,
    )
    if not args.quiet and current_executor().is_root:
        print((out / "results.md").read_text())
        print(
            f"wrote {out / 'results.json'}, {out / 'results.md'} and {out / 'report.html'} "
            f"({rec['seconds']:.0f} s)"
        )
    return 0
