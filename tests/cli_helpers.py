"""Helpers the CLI reliability tests share: run a command in-process, and read its one error line."""

from landscape.cli import main


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
