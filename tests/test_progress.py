"""Progress off a terminal: periodic one-line status with an ETA (tqdm prints nothing useful there)."""

import io
import subprocess
import sys

from landscape.progress import StatusLines, progress_bar


def test_status_lines_report_done_total_and_eta():
    buf = io.StringIO()
    bar = progress_bar(total=4, desc="work", unit="step", interval=0.0, file=buf)
    assert isinstance(bar, StatusLines)  # a StringIO is not a terminal
    for _ in range(4):
        bar.update(1)
        bar.set_postfix(loss="0.5")
    bar.close()
    lines = buf.getvalue().strip().splitlines()
    assert len(lines) == 5 and lines[0].startswith("work: 1/4 step (25%)") and "ETA" in lines[0]
    assert "loss=0.5" in lines[-1] and "4/4" in lines[-1]


def test_training_prints_progress_lines_when_stderr_is_not_a_tty(tmp_path):
    code = (
        "import landscape.progress as p, landscape.train as t\n"
        "p.StatusLines.__init__.__defaults__ = ('', 'it', 0.0, None)\n"  # a line per update, for the test
        "cfg = t.make_train_config('denoise', 'mse', epochs=1, train_size=64, batch_size=32, val_size=16)\n"
        f"t.Trainer(cfg, out_dir={str(tmp_path / 'run')!r}).fit()\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("mse epoch 1/1:")]
    assert lines and "batch" in lines[-1] and "ETA" in lines[-1] and "2/2" in lines[-1]
