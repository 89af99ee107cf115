"""Reliability, round three (issue 22): a report never replaces its inputs, strings from result files never
run as script, a lock that is a link is refused, an experiment never writes into a folder of someone else's
files, a damaged or edited shipped checkpoint is refused, and an attack that overflows is flagged.

Each test failed before its fix (see docs/RELIABILITY.md, section 7).
"""

import json
import os
import re
import shutil
import struct
import warnings
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
from cli_helpers import one_error_line, run_cli

from landscape.checkpoint import load_checkpoint, read_checkpoint
from landscape.cli import main
from landscape.examples import checkpoints_dir, toy_checkpoint
from landscape.io import LOCK_NAME, RunLock, json_safe, sha256_file, write_group, write_json

EVIL = "<script>alert(1)</script></script><!--<img src=x onerror=alert(2)>&amp;"


# -------------------------------------------------------------------------------------------------
# a small real analysis, a hessian record and a claims result, every string of them hostile
# -------------------------------------------------------------------------------------------------
def _entries(label_prefix=""):
    from landscape.curvature import CurvatureSettings
    from landscape.models import ModelConfig, RegularizerConfig, build_model
    from landscape.physics import Denoising
    from landscape.survey import analyze_loaded

    cfg = ModelConfig(
        arch="gd",
        signal_shape=(1, 10),
        n_iter=2,
        regularizer=RegularizerConfig(kind="cnn", width=4, depth=2, kernel_size=3, out_scale=1.0),
    )
    entries = []
    for i in range(2):
        torch.manual_seed(i)
        m = build_model(cfg, Denoising(0.2)).double().eval()
        g = torch.Generator().manual_seed(3)
        x = torch.randn(2, 1, 10, generator=g, dtype=torch.float64)
        y = m.physics.measure(x, generator=g)
        entries.append(
            analyze_loaded(
                m,
                y,
                x,
                iterates=[0, 1, 2],
                curvature=CurvatureSettings(top_k=2, backend="jvp_grad", seed=0),
                label=f"{label_prefix}{i}",
                settings={"slice_n": 3, "param_slice_n": 0, "eps": (0.0, 0.5), "pgd_steps": 1},
            )
        )
    return entries


@pytest.fixture(scope="module")
def entries():
    return json.loads(json.dumps(json_safe(_entries())))


def _analysis(entries, evil=False):
    from landscape.survey import FORMAT

    es = json.loads(json.dumps(entries))
    s = EVIL if evil else "x"
    for i, e in enumerate(es):
        if evil:
            e["label"] = f"{EVIL}{i}"
        e["path"] = f"/runs/{s}/checkpoint.pt"
        e["task"] = {"name": s}
        e["strategy"] = {"name": s}
    return {
        "format": FORMAT,
        "created": s,
        "versions": {"landscape": s},
        "settings": {
            "samples": s if evil else 2,
            "split": s,
            "curvature": {"seed": s if evil else 0, "top_k": 2},
        },
        "checkpoints": es,
    }


def _claims(evil=EVIL):
    from landscape.claims import FORMAT, FORMAT_VERSION, ClaimsSettings

    def iv():
        return {
            "estimate": 1.0,
            "low": 0.5,
            "high": 1.5,
            "level": 0.95,
            "over": evil,
            "n": 3,
            "method": evil,
            "kind": evil,
        }

    common = {
        "hypothesis": evil,
        "quantity": evil,
        "group": evil,
        "baseline": evil,
        "kind": evil,
        "verdict": evil,
        "basis": evil,
        "note": evil,
    }
    claims = [
        {
            **common,
            "name": f"expansion: MC excess / predicted penalty [{evil}, σ=0.1]",
            "paired": iv(),
            "seed_level": iv(),
        },
        {
            **common,
            "name": evil,
            "paired": None,
            "seed_level": None,
            "test": {
                "statistic": 0.5,
                "p_greater": 0.1,
                "p_less": 0.9,
                "n_perm": 6,
                "exact": True,
                "n_seeds": 3,
                "n_groups": 2,
                "min_p": 0.1,
                "level": 0.95,
                "method": evil,
            },
        },
    ]
    curv = {"iterates": [0, 1], "trace": [[1.0, 2.0], [1.5, 2.5]], "trace_sq": [[1.0, 2.0], [1.5, 2.5]]}
    cks = [
        {"group": evil, "path": evil, "label": evil, "splits": {"id": {"curvature": curv}}} for _ in range(2)
    ]
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "settings": ClaimsSettings().to_dict(),
        "checkpoints": cks,
        "groups": [{"group": evil, "name": evil}],
        "claims": claims,
        "reference_jitter": {"mode": evil, "sigma": evil},
        "notes": [evil],
        "info": {"note": evil},
    }


@pytest.fixture
def results(entries, tmp_path):
    """An analysis folder as `landscape analyze` writes it (analysis.json + report.html + manifest), a
    hessian record, a claims folder and a claims.json file."""
    from landscape.viz.report import render_report

    a = _analysis(entries)
    folder = tmp_path / "analysis"
    folder.mkdir()
    write_group(
        {folder / "analysis.json": json.dumps(a, indent=1) + "\n", folder / "report.html": render_report(a)}
    )
    write_json(
        tmp_path / "hessian.json", {"checkpoint": "/runs/h/checkpoint.pt", "result": entries[0]["curvature"]}
    )
    write_json(tmp_path / "claims" / "claims.json", _claims("ok"))
    write_json(tmp_path / "c.json", _claims("ok"))
    return tmp_path


def _snapshot(root):
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# -------------------------------------------------------------------------------------------------
# 1. landscape report --out is never one of its inputs, and is an .html page
# -------------------------------------------------------------------------------------------------
REPORT_OUT_IS_AN_INPUT = [
    ("the-analysis-json", ["analysis"], "analysis/analysis.json"),
    ("the-analysis-json-given-as-file", ["analysis/analysis.json"], "analysis/analysis.json"),
    ("the-report-beside-the-analysis-it-reads", ["analysis"], "analysis/report.html"),
    ("the-hessian-record", ["analysis", "hessian.json"], "hessian.json"),
    ("the-claims-json-of-a-claims-folder", ["analysis", "claims"], "claims/claims.json"),
    ("the-claims-json", ["c.json"], "c.json"),
    ("through-dotdot", ["analysis"], "claims/../analysis/analysis.json"),
]


@pytest.mark.parametrize("inputs, out", [pytest.param(i, o, id=n) for n, i, o in REPORT_OUT_IS_AN_INPUT])
def test_report_out_that_is_an_input_is_refused_and_the_input_survives(results, inputs, out, capsys):
    before = _snapshot(results)
    code = run_cli(["report", *(results / i for i in inputs), "--out", results / out])
    line = one_error_line(capsys, code)
    assert "is the input" in line and Path(out).name in line, line
    assert _snapshot(results) == before  # nothing replaced, nothing added


def test_report_out_that_is_a_hard_link_to_an_input_is_refused(results, capsys):
    os.link(results / "analysis" / "analysis.json", results / "alias.html")
    before = _snapshot(results)
    line = one_error_line(capsys, run_cli(["report", results / "analysis", "--out", results / "alias.html"]))
    assert "is the input" in line
    assert _snapshot(results) == before


def test_report_out_must_end_in_html(results, capsys):
    line = one_error_line(capsys, run_cli(["report", results / "analysis", "--out", results / "r.json"]))
    assert "r.json" in line and "ending in .html" in line, line
    assert not (results / "r.json").exists()


def test_report_into_an_input_folder_under_a_new_name_is_written(results, capsys):
    before = _snapshot(results)
    out = results / "analysis" / "merged.html"
    assert (
        run_cli(["report", results / "analysis", results / "hessian.json", results / "claims", "--out", out])
        == 0
    )
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert {p: b for p, b in _snapshot(results).items() if p != out} == before


def test_report_inputs_are_the_files_merge_results_reads(results):
    from landscape.records import result_files

    got = result_files([results / "analysis", results / "claims", results / "hessian.json"])
    assert got == [
        results / "analysis" / "analysis.json",
        results / "analysis" / "report.html",
        results / "analysis" / ".landscape-manifest.json",
        results / "claims" / "claims.json",
        results / "hessian.json",
    ]


# -------------------------------------------------------------------------------------------------
# 2. strings from result files never run as script
# -------------------------------------------------------------------------------------------------
class _Scripts(HTMLParser):
    """The text of every <script> element as a browser's tokenizer sees it (ended by the first </script)."""

    def __init__(self):
        super().__init__()
        self.scripts, self._cur = [], None

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self._cur = []

    def handle_endtag(self, tag):
        if tag == "script" and self._cur is not None:
            self.scripts.append("".join(self._cur))
            self._cur = None

    def handle_data(self, data):
        if self._cur is not None:
            self._cur.append(data)


def _assert_no_script_from_data(page: str, n_figures_min: int):
    assert "<script>alert" not in page and "<img src=x" not in page
    p = _Scripts()
    p.feed(page)
    p.close()
    bundle = [s for s in p.scripts if "plotly.js v" in s[:2000]]
    figures = [s for s in p.scripts if s not in bundle]
    assert len(bundle) == 1
    # every <script> the page opens is one of ours: the bundle and one per figure div, no more
    assert len(p.scripts) == page.count("<script") == 1 + page.count('class="plotly-graph-div"')
    assert len(figures) >= n_figures_min
    for s in figures:  # the embedded JSON: no '<' or '>' at all, so no </script> and no <!--
        assert "<" not in s and ">" not in s, s[:200]
        assert s.count("Plotly.newPlot(") == 1
    return figures


def _hostile_results(entries, tmp_path):
    write_json(tmp_path / "evil" / "analysis.json", _analysis(entries, evil=True))
    write_json(tmp_path / "claims.json", _claims())
    return [tmp_path / "evil", tmp_path / "claims.json"]


def test_a_hostile_analysis_and_claims_result_render_as_text(entries, tmp_path):
    out = tmp_path / "page.html"
    assert (
        main(["report", *map(str, _hostile_results(entries, tmp_path)), "--out", str(out), "--title", EVIL])
        == 0
    )
    page = out.read_text()
    figures = _assert_no_script_from_data(page, 8)
    # the strings are there, as text: escaped in the markup, \u escapes in the figures' data
    assert page.count(html_escaped(EVIL)) > 20
    assert any("\\u003cscript\\u003ealert(1)\\u003c\\u002fscript\\u003e" in s for s in figures)


def html_escaped(s):
    import html

    return html.escape(s)


def test_figures_stay_escaped_even_where_plotly_does_not_escape_its_json(entries, tmp_path, monkeypatch):
    """plotly before 5.15 wrote its JSON unescaped; landscape's pages escape it themselves (export.figure_div)."""
    import plotly.io._json as pj

    monkeypatch.setattr(pj, "_safe", lambda text, swap=None: text)
    import plotly.graph_objects as go

    from landscape.claims import ClaimsResult
    from landscape.export import render
    from landscape.viz.claims_report import write_claims_html

    assert '"</script>"' in pj.to_json_plotly({"a": "</script>"})  # the serialiser really is unescaped now
    out = tmp_path / "page.html"
    assert main(["report", *map(str, _hostile_results(entries, tmp_path)), "--out", str(out)]) == 0
    _assert_no_script_from_data(out.read_text(), 8)
    page = write_claims_html(ClaimsResult.from_dict(_claims()), tmp_path / "claims.html").read_text()
    _assert_no_script_from_data(page, 3)
    fig = go.Figure(go.Scatter(y=[1, 2], name=EVIL), layout={"title": EVIL})
    _assert_no_script_from_data(render([fig], "html")[0].decode(), 1)


def test_script_json_keeps_the_value():
    from landscape.export import script_json

    value = {"s": EVIL + "\u2028\u2029/", "n": [1.5, None, True]}
    text = script_json(json.dumps(value))
    assert not re.search("[<>&/\u2028\u2029]", text)
    assert json.loads(text) == value


# -------------------------------------------------------------------------------------------------
# 3. a lock that is a symlink, a folder, a FIFO or a hard link is refused and nothing it names is touched
# -------------------------------------------------------------------------------------------------
def _make_lock(kind, folder, victim):
    lock = folder / LOCK_NAME
    if kind == "symlink":
        lock.symlink_to(victim)
    elif kind == "dangling-symlink":
        lock.symlink_to(folder.parent / "nowhere")
    elif kind == "hard-link":
        os.link(victim, lock)
    elif kind == "directory":
        lock.mkdir()
    elif kind == "fifo":
        os.mkfifo(lock)
    return lock


LOCK_KINDS = ["symlink", "dangling-symlink", "hard-link", "directory", "fifo"]


@pytest.mark.parametrize("kind", LOCK_KINDS)
def test_a_lock_that_is_not_a_regular_file_is_refused_and_its_target_survives(tmp_path, kind):
    folder, victim = tmp_path / "run", tmp_path / "thesis.tex"
    folder.mkdir()
    victim.write_text("three years of work\n")
    lock = _make_lock(kind, folder, victim)
    with pytest.raises(ValueError) as exc:
        RunLock(folder).acquire()
    msg = str(exc.value)
    assert str(lock) in msg and "\n" not in msg, msg
    assert victim.read_text() == "three years of work\n"
    assert not (tmp_path / "nowhere").exists()  # a dangling link's target is not created
    assert os.path.lexists(lock)  # left for the user to look at


def test_training_into_a_folder_whose_lock_is_a_symlink_is_one_line(tmp_path, capsys):
    folder, victim = tmp_path / "run", tmp_path / "notes.txt"
    folder.mkdir()
    victim.write_text("keep me\n")
    _make_lock("symlink", folder, victim)
    code = run_cli(
        [
            "train",
            "--task",
            "denoise",
            "--train-size",
            "16",
            "--batch-size",
            "8",
            "--epochs",
            "1",
            "-K",
            "2",
            "--quiet",
            "--out",
            folder,
        ]
    )
    line = one_error_line(capsys, code)
    assert str(folder / LOCK_NAME) in line and "symbolic link" in line, line
    assert victim.read_text() == "keep me\n"
    assert sorted(p.name for p in folder.iterdir()) == [LOCK_NAME]


def test_a_regular_lock_still_locks_and_is_removed(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    with RunLock(folder):
        assert (folder / LOCK_NAME).read_text().split()[0] == str(os.getpid())
        with pytest.raises(ValueError, match="in use by another landscape process"):
            RunLock(folder).acquire()
    assert not (folder / LOCK_NAME).exists()


# -------------------------------------------------------------------------------------------------
# 4. an experiment writes only into an empty folder or its own
# -------------------------------------------------------------------------------------------------
class _Stop(Exception):
    pass


def test_an_experiment_refuses_a_folder_of_foreign_files(tmp_path, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "README.md").write_text("# my notes\n")
    (docs / "results.md").write_text("hand-written results\n")
    before = _snapshot(docs)
    code = run_cli(
        ["experiment", "denoise", "--preset", "tiny", "--seeds", "1", "--no-claims", "-q", "--out", docs]
    )
    line = one_error_line(capsys, code)
    assert str(docs) in line and "README.md" in line and "--overwrite" in line, line
    assert _snapshot(docs) == before and sorted(p.name for p in docs.iterdir()) == ["README.md", "results.md"]


def test_an_experiment_accepts_its_own_folder_again_and_overwrite(tmp_path, monkeypatch):
    import landscape.experiment as ex
    import landscape.experiment.run as ex_run

    def stop(*a, **k):
        raise _Stop

    monkeypatch.setattr(ex_run, "_train_item", stop)  # interrupted at its first training
    out = tmp_path / "exp"
    for _ in range(2):  # the second run finds the first's folder: its own, so it goes on (to the same stop)
        with pytest.raises(_Stop):
            ex.run_experiment("denoise", out, preset="tiny", seeds=1, claims=False, progress=False)
    assert ex.check_experiment_folder(out) is None
    (out / "my-notes.txt").write_text("mine\n")  # a note in an experiment's own folder is left alone
    with pytest.raises(_Stop):
        ex.run_experiment("denoise", out, preset="tiny", seeds=1, claims=False, progress=False)
    assert (out / "my-notes.txt").read_text() == "mine\n"
    # a folder written before the manifest recorded its owner: only the experiment's names, with runs/
    old = tmp_path / "old"
    (old / "runs").mkdir(parents=True)
    for name in ("results.json", "results.md", "report.html", "claims.json", "denoise-tiny_trace.svg"):
        (old / name).write_text("{}")
    ex.check_experiment_folder(old)
    # foreign files: refused, unless overwrite
    other = tmp_path / "other"
    other.mkdir()
    (other / "data.csv").write_text("1,2\n")
    with pytest.raises(ValueError, match=r"holds data\.csv"):
        ex.check_experiment_folder(other)
    with pytest.raises(_Stop):
        ex.run_experiment(
            "denoise", other, preset="tiny", seeds=1, claims=False, progress=False, overwrite=True
        )
    assert (other / "data.csv").read_text() == "1,2\n"
    ex.check_experiment_folder(other)  # now claimed by the experiment


def test_the_experiment_command_has_overwrite():
    from landscape.cli import build_parser

    args = build_parser().parse_args(["experiment", "denoise", "--out", "x", "--overwrite"])
    assert args.overwrite is True


# -------------------------------------------------------------------------------------------------
# 5. a damaged or edited shipped checkpoint is refused (tested on copies: the shipped files are never touched)
# -------------------------------------------------------------------------------------------------
@pytest.fixture
def shipped_copy(tmp_path):
    original = {p: sha256_file(p) for p in checkpoints_dir().rglob("*") if p.is_file()}
    dst = tmp_path / "checkpoints"
    shutil.copytree(checkpoints_dir(), dst, ignore=shutil.ignore_patterns("__pycache__"))
    yield dst
    assert {p: sha256_file(p) for p in original} == original  # the shipped files are unchanged


def _flip_a_data_byte(path: Path) -> str:
    with zipfile.ZipFile(path) as zf:
        info = max(zf.infolist(), key=lambda i: i.file_size)
    data = bytearray(path.read_bytes())
    n, e = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    data[info.header_offset + 30 + n + e + info.file_size // 2] ^= 0x01
    path.write_bytes(bytes(data))
    return info.filename


def test_a_flipped_byte_fails_the_crc_and_is_refused(tmp_path, capsys):
    ck = tmp_path / "checkpoint.pt"  # a lone copy: no PROVENANCE.json beside it, only the CRC can tell
    shutil.copyfile(toy_checkpoint("mse") / "checkpoint.pt", ck)
    member = _flip_a_data_byte(ck)
    with pytest.raises(ValueError, match=f"{re.escape(member)}.*CRC"):
        load_checkpoint(ck)
    line = one_error_line(capsys, run_cli(["evaluate", ck, "--out", tmp_path / "r.json", "-q"]))
    assert "corrupt" in line and member in line, line
    assert not (tmp_path / "r.json").exists()


def test_a_copy_of_the_shipped_folder_is_checked_against_its_provenance(shipped_copy, capsys):
    run = shipped_copy / "toy-mse"
    load_checkpoint(run)  # unchanged: loads
    payload = read_checkpoint(run)  # a valid archive with right CRCs, but not the shipped bytes
    payload["metrics"] = {**payload["metrics"], "note": "edited"}
    torch.save(payload, run / "checkpoint.pt")
    with pytest.raises(ValueError, match=r"toy-mse/checkpoint\.pt has sha256 .*PROVENANCE\.json"):
        load_checkpoint(run)
    line = one_error_line(capsys, run_cli(["evaluate", run, "--out", shipped_copy / "r.json", "-q"]))
    assert "checkpoint.pt" in line and "PROVENANCE.json" in line, line
    # a file beside it that PROVENANCE.json lists, edited
    other = shipped_copy / "toy-sgd-jitter"
    load_checkpoint(other)
    (other / "metrics.json").write_text((other / "metrics.json").read_text().replace("}", ' , "x": 1}', 1))
    with pytest.raises(ValueError, match=r"metrics\.json has sha256"):
        load_checkpoint(other)


def test_the_shipped_checkpoints_match_their_provenance():
    record = json.loads((checkpoints_dir() / "PROVENANCE.json").read_text())
    for run, rec in record["runs"].items():
        for name, sha in rec["files"].items():
            assert sha256_file(checkpoints_dir() / run / name) == sha, (run, name)
        load_checkpoint(checkpoints_dir() / run)


# -------------------------------------------------------------------------------------------------
# 6. an attack that overflows is flagged by analyze as by evaluate, never reported as the clean PSNR
# -------------------------------------------------------------------------------------------------
def test_per_sample_norm_does_not_overflow():
    from landscape.attacks import per_sample_norm

    t = torch.full((2, 64), 1e300, dtype=torch.float64)
    t[1] = 0.0
    assert torch.allclose(per_sample_norm(t), torch.tensor([8e300, 0.0], dtype=torch.float64), rtol=1e-12)
    assert torch.isinf(per_sample_norm(torch.tensor([[float("inf"), 1.0]]))).all()
    assert torch.isnan(per_sample_norm(torch.tensor([[float("nan"), 1.0]]))).all()
    v = torch.randn(3, 5, dtype=torch.float64)
    assert torch.allclose(per_sample_norm(v), v.norm(dim=1), rtol=1e-14)


def _overflow_warnings(argv):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main([str(a) for a in argv])
    assert code == 0
    return [
        str(w.message)
        for w in caught
        if issubclass(w.category, RuntimeWarning) and "overflowed" in str(w.message)
    ]


def test_analyze_flags_an_attack_that_overflows_as_evaluate_does(tmp_path):
    ck = toy_checkpoint("mse")
    ev = _overflow_warnings(
        [
            "evaluate",
            ck,
            "--out",
            tmp_path / "ev.json",
            "--attack-eps",
            "1e300",
            "--random-eps",
            "--n-test",
            "2",
            "--no-references",
            "-q",
            "--threads",
            "1",
        ]
    )
    an = _overflow_warnings(
        [
            "analyze",
            ck,
            "--out",
            tmp_path / "a",
            "--samples",
            "2",
            "--iterates",
            "0",
            "--no-trace",
            "--top-k",
            "1",
            "--bottom-k",
            "0",
            "--grid",
            "3",
            "--param-grid",
            "0",
            "--eps",
            "0",
            "1e300",
            "--no-html",
            "-q",
            "--threads",
            "1",
        ]
    )
    # the same flag (landscape.attacks.pgd_attack's warning) from both commands
    assert (
        ev and an and all(re.match(r"PGD: the loss overflowed .* within eps=1e\+300", m) for m in ev + an)
    ), (ev, an)
    psnr = json.loads((tmp_path / "ev.json").read_text())["rows"][0]["results"]["pgd:1e+300"]["psnr"]["mean"]
    rob = json.loads((tmp_path / "a" / "analysis.json").read_text())["checkpoints"][0]["robustness"]
    clean, attacked = rob["psnr"]["mean"]
    assert isinstance(clean, float) and attacked in ("-inf", "nan"), rob["psnr"]  # not the clean PSNR
    assert psnr in ("-inf", "nan"), psnr
