"""Helpers the CLI tests share: run a command in-process, read its one error line, save tiny checkpoints."""

import torch

from landscape.checkpoint import save_checkpoint
from landscape.cli import main
from landscape.data import make_task
from landscape.models import ModelConfig, RegularizerConfig, build_model


def run_cli(argv):
    """``landscape ARGV`` in-process: its exit code (argparse's SystemExit included)."""
    try:
        return main([str(a) for a in argv])
    except SystemExit as exc:
        return exc.code


def one_error_line(capsys, code):
    """Assert exit code 2 with exactly one stderr line, no traceback, and return that line."""
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("landscape "), lines[0]
    return lines[0]


def tiny_checkpoints(root, names=("mse", "sgd-jitter"), *, length=16, n_iter=2, metrics=None):
    """Untrained denoise checkpoints (GD, a width-4 CNN regularizer), one run folder ``root/NAME`` per
    strategy name, seeded by its index, test seed 11; returns the folders as strings."""
    task = make_task("denoise", length=length, max_jumps=2)
    cfg = ModelConfig(
        arch="gd",
        signal_shape=task.signal_shape,
        n_iter=n_iter,
        regularizer=RegularizerConfig(kind="cnn", width=4, depth=2, kernel_size=3, out_scale=1.0),
    )
    folders = []
    for i, name in enumerate(names):
        torch.manual_seed(i)
        model = build_model(cfg, task.physics)
        run = {"strategy": {"name": name}, "seed": i, "test_seed": 11, "dtype": "float32"}
        m = {"test_psnr": 20.0 + i} if metrics is None else metrics
        folders.append(str(save_checkpoint(root / name / "checkpoint.pt", model, task, run, m).parent))
    return folders
