"""Reliability, round two: no output destroys an input, no run is lost, every failure is one line.

Each test here proves one guarantee of docs/RELIABILITY.md: two trainings into one folder (exactly one
runs), a stale lock, a full disk on a small tmpfs (one line, the old file intact, no temporary file), a
zip bomb refused within a memory bound, data independent of torch's default dtype, prefix-stable test
sets, temporary files of killed writers cleaned, grouped writes detected when interrupted, PGD that
overflows, Hutch++ within its budget, an interrupted --overwrite.
"""

import json
import os
import subprocess
import sys
import textwrap
import time
import warnings
import zlib
from pathlib import Path

import pytest
import torch

from landscape.cli import main

TINY = ["--task", "denoise", "--train-size", "16", "--batch-size", "8", "-K", "2", "--quiet"]


def _cmd() -> list[str]:
    script = Path(sys.executable).parent / "landscape"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from landscape.cli import main; sys.exit(main())"]


def _env(**extra: str) -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[1])
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": root, **extra}


def _one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


# -------------------------------------------------------------------------------------------------
# no run is lost
# -------------------------------------------------------------------------------------------------
def test_two_trainings_into_one_folder_exactly_one_runs(tmp_path, capsys):
    out = tmp_path / "run"
    slow = _env(LANDSCAPE_TEST_STEP_DELAY="0.3")
    first = subprocess.Popen(
        [*_cmd(), "train", *TINY, "--epochs", "3", "--out", str(out)],
        env=slow,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lock = out / ".landscape.lock"
        deadline = time.time() + 60

        def claimed() -> bool:  # the pid is written once the flock is held (the file exists a moment before)
            try:
                return lock.read_text().startswith(f"{first.pid} ")
            except OSError:
                return False

        while not claimed() and time.time() < deadline:
            time.sleep(0.02)
        assert claimed(), "the first training never claimed its folder"
        # the second training (this process) asks to overwrite: the folder is in use, so it is refused
        code = main(["train", *TINY, "--epochs", "1", "--seed", "5", "--overwrite", "--out", str(out)])
        line = _one_line(capsys.readouterr().err)
        assert first.poll() is None, "the first training ended before the second started: slow it down"
        assert code == 2
        assert "in use by another landscape process" in line and f"pid {first.pid}" in line, line
        _, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err
    # nothing lost: the first run is complete and its own (seed 0, 3 epochs), no lock or temp file left
    from landscape.checkpoint import load_checkpoint

    ck = load_checkpoint(out)
    assert ck.config.seed == 0 and ck.extra["epoch"] == 3
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 3
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "log.csv", "metrics.json"]


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    (out / ".landscape.lock").write_text(f"{dead.stdout.strip()} somehost\n")
    assert main(["train", *TINY, "--epochs", "1", "--out", str(out)]) == 0
    assert not (out / ".landscape.lock").exists()
    assert (out / "metrics.json").exists()


def test_an_interrupted_overwrite_never_pairs_the_new_checkpoint_with_old_results(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "1", "--out", str(out)]) == 0
    # the new run dies in epoch 1 (its loss overflows): the old metrics.json and log.csv must be gone
    code = main(["train", *TINY, "--epochs", "2", "--lr", "1e38", "--overwrite", "--out", str(out)])
    assert code == 2 and "the last good checkpoint is epoch 0" in capsys.readouterr().err
    assert not (out / "metrics.json").exists()
    assert torch.load(out / "checkpoint.pt", weights_only=True)["config"]["lr"] == 1e38


def test_demo_refuses_a_folder_holding_a_run_before_training(tmp_path, capsys):
    (tmp_path / "sgd-jitter").mkdir()
    (tmp_path / "sgd-jitter" / "checkpoint.pt").write_bytes(b"the user's own run")
    t0 = time.perf_counter()
    assert main(["demo", "--out", str(tmp_path), "-q"]) == 2
    assert time.perf_counter() - t0 < 5  # refused before the first model is trained
    assert "already holds the run(s) sgd-jitter" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sgd-jitter"]


# -------------------------------------------------------------------------------------------------
# a full disk
# -------------------------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mnt)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or 'not permitted'})")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_a_full_disk_is_one_line_and_leaves_the_old_files(small_disk, tmp_path, capsys):
    from landscape.checkpoint import load_checkpoint

    out = small_disk / "run"
    # the first checkpoints fit; a later one (written beside the old one before the rename) does not
    assert main(["train", *TINY, "--epochs", "3", "--out", str(out)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line == f"landscape train: error: No space left on device: {out / 'checkpoint.pt'}", line
    epoch = load_checkpoint(out).extra["epoch"]  # the last checkpoint that fitted is intact ...
    assert epoch < 2
    logged = [int(r.split(",")[0]) for r in (out / "log.csv").read_text().splitlines()[1:]]
    assert logged == list(range(epoch + 1))  # ... and its log agrees with it
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    # a JSON writer on the same full disk: one line naming the file, nothing left behind
    filler = small_disk / "filler"
    free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
    filler.write_bytes(b"x" * max(free - 4096, 0))
    run = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "0", "--out", str(run)]) == 0
    capsys.readouterr()
    target = small_disk / "h.json"
    target.write_text("old")
    code = main(
        ["hessian", str(run), "--samples", "1", "--iterates", "0", "--no-progress", "--out", str(target)]
    )
    assert code == 2
    line = _one_line(capsys.readouterr().err)
    assert line == f"landscape hessian: error: No space left on device: {target}", line
    assert target.read_text() == "old"
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler", "h.json", "run"]


def test_warnings_are_one_line_each(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "0", "--out", str(run)]) == 0
    capsys.readouterr()

    def show(message, category, filename, lineno, file=None, line=None):  # what Python does outside pytest
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        monkeypatch.setattr(warnings, "showwarning", show)  # pytest records warnings; print them instead
        code = main(
            [
                "hessian",
                str(run),
                "--dtype",
                "float32",
                "--samples",
                "1",
                "--iterates",
                "0",
                "--backend",
                "double_backward",
                "--no-progress",
            ]
        )
    assert code == 0
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert lines and all(ln.startswith(("landscape hessian: warning: ", "warning: ")) for ln in lines), lines
    assert any("x_true in torch.float64 is cast down" in ln and ln.endswith("(UserWarning)") for ln in lines)
    assert warnings.formatwarning is not None and "landscape" not in warnings.formatwarning(
        "m", UserWarning, "f.py", 1, ""
    )  # restored after the command


def test_allocator_errors_are_one_line():
    from landscape.cli import error_line

    assert "out of memory (7.5 GiB requested)" in error_line(
        RuntimeError(
            "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: you tried to "
            "allocate 8053063680 bytes."
        )
    )
    assert error_line(MemoryError()).startswith("out of memory")
    assert (
        error_line(OSError(28, "No space left on device", "/x/y.json"))
        == "No space left on device: /x/y.json"
    )
    assert error_line(RuntimeError("a bug")) is None  # a bug still shows its traceback


# -------------------------------------------------------------------------------------------------
# denial of service
# -------------------------------------------------------------------------------------------------
def _write_zip_bomb(path: Path, gib: int) -> int:
    """A torch-like zip whose one member inflates to ``gib`` GiB of zeros; returns the file size."""
    chunk = bytes(1 << 20)
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = comp.compress(chunk) + comp.flush(zlib.Z_FULL_FLUSH)  # identical for every chunk
    n = gib << 10
    crc = 0
    for _ in range(n):
        crc = zlib.crc32(chunk, crc)
    data = block * n + comp.flush()
    size = n << 20
    name = b"archive/data/0"
    import struct

    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, crc, len(data), size, len(name), 0)
    central = struct.pack(
        "<IHHHHHHIIIHHHHHII",
        0x02014B50,
        20,
        20,
        0,
        8,
        0,
        0,
        crc,
        len(data),
        size,
        len(name),
        0,
        0,
        0,
        0,
        0,
        0,
    )
    with open(path, "wb") as fh:
        fh.write(local + name + data)
        offset = fh.tell()
        fh.write(central + name)
        fh.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central) + len(name), offset, 0))
    return path.stat().st_size


def test_a_zip_bomb_is_refused_before_it_is_inflated(tmp_path):
    bomb = tmp_path / "bomb.pt"
    on_disk = _write_zip_bomb(bomb, gib=3)
    import zipfile

    with zipfile.ZipFile(bomb) as zf:  # a real bomb: 3 MB that inflate to 3 GiB of zeros
        (info,) = zf.infolist()
        assert info.file_size == 3 << 30 and on_disk < 4 << 20
        with zf.open(info) as fh:
            assert fh.read(1 << 20) == bytes(1 << 20)
    probe = textwrap.dedent(f"""
        import resource, sys
        from landscape.checkpoint import load_checkpoint
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            load_checkpoint({str(bomb)!r})
        except ValueError as exc:
            message = str(exc)
        else:
            sys.exit("loaded")
        growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        print(growth, message)
    """)
    proc = subprocess.run(
        [sys.executable, "-c", probe], env=_env(), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    growth_kib, message = proc.stdout.split(" ", 1)
    assert "zip bomb" in message and "3.0 GiB" in message, message
    assert int(growth_kib) < 32 * 1024, f"peak RSS grew by {int(growth_kib)} KiB while refusing"


# -------------------------------------------------------------------------------------------------
# the same data whatever the default dtype, prefix-stable test sets
# -------------------------------------------------------------------------------------------------
def test_data_is_identical_under_float32_and_float64_default_dtypes():
    from landscape.data import make_task

    for name in ("denoise", "seismic", "mri"):
        task = make_task(name)
        for split in (*task.splits, "train"):
            if split == "real_brain":
                continue  # file-backed (nibabel sample data): sampled from the same code path as lesions
            ref = task.pairs(3, split=split, seed=11, dtype=torch.float64)
            prev = torch.get_default_dtype()
            torch.set_default_dtype(torch.float64)
            try:
                other = task.pairs(3, split=split, seed=11, dtype=torch.float64)
                batches = list(
                    task.training_set(4, seed=3).batches(2, generator=torch.Generator().manual_seed(0))
                )
            finally:
                torch.set_default_dtype(prev)
            assert torch.equal(ref.x, other.x) and torch.equal(ref.y, other.y), (name, split)
            again = list(task.training_set(4, seed=3).batches(2, generator=torch.Generator().manual_seed(0)))
            assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(batches, again))


def test_test_sets_are_prefix_stable():
    from landscape.data import make_task

    for name in ("denoise", "seismic", "mri"):
        task = make_task(name)
        for split in (task.splits[0], task.splits[1]):
            big = task.pairs(6, split=split, seed=2024, dtype=torch.float64)
            small = task.pairs(4, split=split, seed=2024, dtype=torch.float64)
            tail = task.pairs(2, split=split, seed=2024, dtype=torch.float64, start=4)
            assert torch.equal(big.x[:4], small.x) and torch.equal(big.y[:4], small.y), (name, split)
            assert torch.equal(big.x[4:], tail.x) and torch.equal(big.y[4:], tail.y), (name, split)
            assert not torch.equal(big.x[0], big.x[1])  # samples differ from each other


def test_hessian_samples_are_the_first_samples_of_evaluate(tmp_path):
    """`landscape hessian --help` says so: its --samples N test pairs are evaluate's first N."""
    from landscape.commands.hessian import EPILOG
    from landscape.evaluate import EvalConfig, _test_pairs

    assert "exactly those of `landscape evaluate`" in EPILOG
    from landscape.data import make_task

    task = make_task("denoise")
    cfg = EvalConfig(n_test=12, test_seed=2024)
    ev = _test_pairs(task, cfg, "id", torch.float64)
    hs = task.pairs(5, split="id", seed=2024, dtype=torch.float64)
    assert torch.equal(ev.x[:5], hs.x) and torch.equal(ev.y[:5], hs.y)


# -------------------------------------------------------------------------------------------------
# temporary files of killed writers, grouped writes
# -------------------------------------------------------------------------------------------------
def test_temporary_files_of_dead_writers_are_removed_by_the_next_write(tmp_path):
    from landscape.io import write_json

    dead = int(
        subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
        ).stdout
    )
    stale = tmp_path / f".report.html.p{dead}.abc123.tmp"
    legacy = tmp_path / ".checkpoint.pt.q1w2e3r4.tmp"  # an older version's name, no pid
    alive = tmp_path / f".analysis.json.p{os.getppid()}.zzz999.tmp"  # a live writer's
    for p in (stale, legacy, alive):
        p.write_bytes(b"x" * 1000)
    old = time.time() - 2 * 24 * 3600
    for p in (stale, legacy, alive):
        os.utime(p, (old, old))
    write_json(tmp_path / "other.json", {"a": 1})
    assert not stale.exists() and not legacy.exists()
    assert alive.exists()  # never touched while its writer lives
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, "other.json"])
    assert oct((tmp_path / "other.json").stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def test_a_group_interrupted_between_two_renames_is_detected(tmp_path, monkeypatch):
    from landscape import io as lio

    a, b = tmp_path / "analysis.json", tmp_path / "report.html"
    lio.write_group({a: "{}", b: "<html>1</html>"})
    lio.check_group(tmp_path, ["analysis.json", "report.html"])
    real = os.replace
    calls = []

    def crash_after_one(src, dst):
        calls.append(dst)
        if len([c for c in calls if not str(c).endswith(lio.MANIFEST_NAME)]) == 2:
            raise KeyboardInterrupt  # killed between the two renames
        return real(src, dst)

    monkeypatch.setattr(lio.os, "replace", crash_after_one)
    with pytest.raises(KeyboardInterrupt):
        lio.write_group({a: '{"new": 1}', b: "<html>2</html>"})
    monkeypatch.setattr(lio.os, "replace", real)
    assert a.read_text() == '{"new": 1}' and b.read_text() == "<html>1</html>"  # a mismatched pair ...
    with pytest.raises(ValueError, match="interrupted"):  # ... that is detected
        lio.check_group(tmp_path, ["analysis.json", "report.html"])
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    lio.write_group({a: '{"new": 2}', b: "<html>3</html>"})
    lio.check_group(tmp_path, ["analysis.json", "report.html"])
    b.write_text("edited")
    with pytest.raises(ValueError, match="does not belong"):
        lio.check_group(tmp_path, ["analysis.json", "report.html"])


def test_a_failing_render_writes_nothing_of_the_group(tmp_path):
    from landscape import io as lio

    a, b = tmp_path / "analysis.json", tmp_path / "report.html"
    lio.write_group({a: "old", b: "old"})

    class Boom(bytes):
        def __bytes__(self):
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        lio.write_group({a: "new", b: Boom()})
    assert a.read_text() == "old" and b.read_text() == "old"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# -------------------------------------------------------------------------------------------------
# wrong numbers are refused or flagged
# -------------------------------------------------------------------------------------------------
def test_pgd_that_overflows_never_reports_the_clean_psnr():
    from landscape.attacks import PGDConfig, pgd_attack
    from landscape.metrics import psnr

    x = torch.ones(2, 1, 8)
    y = torch.ones(2, 1, 8)

    def net(v):  # its output overflows float32 for large perturbations
        return torch.exp(30 * v)

    clean = psnr(net(y), x)
    curve = []
    for eps in (0.1, 1.0, 10.0, 100.0):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            d = pgd_attack(net, y, x, PGDConfig(eps=eps, steps=10))
        p = psnr(net(y + d), x)
        assert bool((p < clean).all()), (eps, p, clean)
        curve.append(float(p.mean()))
        overflow = [w for w in caught if "overflowed" in str(w.message)]
        assert bool(overflow) == (not torch.isfinite(p).all()), eps
    assert curve == sorted(curve, reverse=True)  # never rises with eps
    assert curve[-1] == float("-inf")


def test_hutchpp_never_spends_more_than_its_budget():
    from landscape.curvature.trace import hutchinson, hutchpp

    A = torch.randn(40, 40, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    A = A @ A.T
    spent = []

    def mv(v):
        spent.append(1)
        return A @ v

    with pytest.raises(ValueError, match="max_matvecs=2 is too small"):
        hutchpp(mv, 40, max_matvecs=2, rtol=0.01)
    for budget in (4, 7, 12, 30):
        for rtol in (None, 1e-3):
            spent.clear()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                est = hutchpp(mv, 40, max_matvecs=budget, rtol=rtol)
                ref = hutchinson(mv, 40, max_matvecs=budget, rtol=rtol)
            assert est.n_matvecs <= budget and ref.n_matvecs <= budget
            if rtol is not None:
                assert not est.converged and "budget" in est.reason
    spent.clear()
    est = hutchpp(lambda v: A @ v, 40, max_matvecs=12, rtol=None)
    assert est.n_matvecs == 12 and est.settings["max_matvecs"] == 12


def test_an_edited_n_iter_is_refused(tmp_path):
    from landscape.checkpoint import load_checkpoint

    run = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "0", "--out", str(run)]) == 0
    payload = torch.load(run / "checkpoint.pt", weights_only=True)
    payload["model_config"]["n_iter"] = 7
    torch.save(payload, tmp_path / "edited.pt")
    with pytest.raises(ValueError, match=r"model_config.n_iter=7 but config.model.n_iter=2"):
        load_checkpoint(tmp_path / "edited.pt")
    payload["config"]["model"]["n_iter"] = 7  # both edited: the weights still tell (shared=False)
    payload["model_config"]["shared"] = payload["config"]["model"]["shared"] = False
    torch.save(payload, tmp_path / "both.pt")
    with pytest.raises(ValueError, match="does not match|needs 7"):
        load_checkpoint(tmp_path / "both.pt")
