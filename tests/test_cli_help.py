"""`landscape --help` starts without torch, and the names it offers are the registries' own.

A command's own module (and torch with it) is imported only when that command runs or prints its own
help: its module imports the API it calls at the top, as every module of the package does."""

import subprocess
import sys


def test_help_does_not_import_torch():
    code = (
        "import sys\nfrom landscape.cli import COMMANDS, build_parser\nbuild_parser(None)\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')"
        " or m.rsplit('.', 1)[-1] in COMMANDS and m.startswith('landscape.commands.')))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]", r.stdout[:300]
    for argv in (["--help"], ["hessian", "--help"], ["train", "--help"], ["analyze", "--help"]):
        r = subprocess.run(
            [sys.executable, "-m", "landscape.cli", *argv], capture_output=True, text=True, timeout=120
        )
        assert r.returncode == 0 and "usage: landscape" in r.stdout, (argv, r.stderr[-300:])


def test_the_cli_names_equal_the_registries():
    from landscape import defaults as D
    from landscape.curvature.backends import BACKENDS
    from landscape.curvature.settings import BACKENDS as B2
    from landscape.data import TASKS
    from landscape.jitter import JITTER_MODES, MODE_ALIASES
    from landscape.models import ACTIVATIONS
    from landscape.strategies import STRATEGIES
    from landscape.train import SIZES

    assert D.TASK_NAMES == tuple(TASKS) and D.SIZE_NAMES == tuple(SIZES)
    assert set(D.STRATEGY_NAMES) == set(STRATEGIES) and D.JITTER_MODE_NAMES == tuple(JITTER_MODES)
    assert D.JITTER_MODE_ALIASES == MODE_ALIASES and D.ACTIVATION_NAMES == tuple(ACTIVATIONS)
    assert BACKENDS is B2
