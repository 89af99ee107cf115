"""The README's "Analyse your own model" block runs as written."""

import glob
import re
import shlex
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_analyse_your_own_model_block_runs(capsys):
    text = README.read_text(encoding="utf-8")
    section = text.split("## Analyse your own model", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert blocks, "the section has a python block"
    exec(compile(blocks[0], "README.md", "exec"), {})  # noqa: S102 - our own README
    out = capsys.readouterr().out
    assert "lambda_max" in out and "lambda_min" in out
    # the wrapped step function: x_K affine in x_0 with M = (I - 0.4 I)^4, H_0 = 2 M^T M: trace 32 * 0.6^8
    last = float(out.strip().splitlines()[-1])
    assert abs(last - 32 * 0.6**8) < 1e-10


# -------------------------------------------------------------------------------------------------
# every command block of the README, as typed
# -------------------------------------------------------------------------------------------------
#: Size flags appended to each README command (documented options of that command; a later flag wins in
#: argparse, so e.g. ``--epochs 1`` replaces the README's ``--epochs 8`` and ``--grid 5`` its ``--grid 51``).
#: Nothing else of a command is changed: the test runs the README's own lines.
SMALL = {
    "train": ["--epochs", "1", "--train-size", "32", "--quiet"],
    "evaluate": ["--n-test", "4", "--attack-steps", "2", "--quiet"],
    "hessian": ["--samples", "2", "--no-progress"],
    "slice": ["--grid", "5", "--samples", "2"],
    "analyze": ["--samples", "2", "--grid", "5", "--param-grid", "3", "--pgd-steps", "1", "--quiet"],
    "report": [],
    "claims": [
        "--n-curvature",
        "2",
        "--n-ood-curvature",
        "2",
        "--n-eval",
        "4",
        "--sigmas",
        "0.1",
        "--mc-pairs",
        "2",
        "--directions",
        "1",
        "--no-attack",
        "--quiet",
    ],
}


def _command_blocks():
    """(section, [command line]) for every ```bash block of the README; continuation lines joined, comments cut."""
    text = README.read_text(encoding="utf-8")
    out = []
    for m in re.finditer(r"```bash\n(.*?)```", text, re.S):
        section = re.findall(r"^## (.+)$", text[: m.start()], re.M)[-1]
        body = m.group(1).replace("\\\n", " ")
        lines = [shlex.split(ln, comments=True) for ln in body.splitlines()]
        out.append((section, [ln for ln in lines if ln]))
    return out


def test_the_readme_has_the_command_blocks_this_test_knows():
    sections = [s for s, _ in _command_blocks()]
    assert sections == ["Quick start", "Using it", "Scaling out", "Scaling out"], sections
    assert sum(ln[0] == "landscape" for _, lines in _command_blocks() for ln in lines) == 8


def test_quick_start_block_names_make_targets_that_exist():
    """``make demo`` / ``make test`` build a virtual environment and run the whole suite: not run here (minutes,
    network for pip); the targets must exist in the Makefile."""
    make = (README.parent / "Makefile").read_text(encoding="utf-8")
    for line in next(lines for s, lines in _command_blocks() if s == "Quick start"):
        assert line[0] == "make" and re.search(rf"^{line[1]}:", make, re.M), line


def test_the_torchrun_blocks_parse():
    """The torchrun lines need several processes, GPUs or a second node: pytest.skip-worthy to run, so each one's
    landscape arguments (after ``-m landscape.cli``) go through the CLI's own parser, which fails on a typo."""
    from landscape.cli import build_parser

    lines = [ln for _, block in _command_blocks() for ln in block if ln[0] == "torchrun"]
    assert len(lines) == 4
    for ln in lines:
        args = ln[ln.index("landscape.cli") + 1 :]
        ns = build_parser(args[0]).parse_args(args)
        assert ns.distributed, ln


@pytest.mark.slow
def test_using_it_block_runs_as_typed(tmp_path, monkeypatch, capsys):
    """Every ``landscape`` line of "Using it", in order, in an empty folder, with only :data:`SMALL` appended.
    Before: ``claims runs/mse-s* runs/sgd-s*`` matched nothing after the block's own ``runs/mse``/``runs/sgd``."""
    from landscape.cli import main

    monkeypatch.chdir(tmp_path)
    lines = [ln for s, block in _command_blocks() if s == "Using it" for ln in block if ln[0] == "landscape"]
    assert [ln[1] for ln in lines] == [
        "train",
        "train",
        "evaluate",
        "hessian",
        "slice",
        "analyze",
        "report",
        "claims",
    ]
    for ln in lines:
        args = [a for part in ln[1:] for a in (sorted(glob.glob(part)) or [part] if "*" in part else [part])]
        rc = main([*args, *SMALL[ln[1]]])
        err = capsys.readouterr().err
        assert rc == 0, (" ".join(ln), err)
    for f in (
        "runs/sgd/checkpoint.pt",
        "runs/mse/checkpoint.pt",
        "eval.json",
        "hess.json",
        "slice.npz",
        "slice.html",
        "report/analysis.json",
        "report/report.html",
        "merged.html",
        "claims/claims.json",
        "claims/claims.html",
    ):
        assert (tmp_path / f).is_file(), f
