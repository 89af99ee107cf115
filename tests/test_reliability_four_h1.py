"""Reliability, round three, part h1: what `landscape report`, `slice`, `hessian` and `claims` read and write.

Every result file is read by one reader (records.read_result over io.read_json), so a wrong shape or a
garbage file is one line naming it; a report says where its numbers come from; no output breaks another
write's group; claims.json and claims.html, and a slice with its page, appear together or not at all; bad
counts and suffixes are refused before any work; the claims fragment escapes its figures itself.
"""

import json
import shutil
import warnings
from pathlib import Path

import pytest
from cli_helpers import one_error_line, run_cli
from test_reliability_three import EVIL, _analysis, _assert_no_script_from_data, _claims, _entries, _Scripts

from landscape.examples import toy_checkpoint
from landscape.io import MANIFEST_NAME, check_group, json_safe, write_group, write_json
from landscape.records import load_analysis

CK = toy_checkpoint("mse") / "checkpoint.pt"


def _snapshot(root):
    return {p: p.read_bytes() for p in sorted(Path(root).rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def entries():
    return json.loads(json.dumps(json_safe(_entries())))


@pytest.fixture
def results(entries, tmp_path):
    """An analysis folder written as `landscape analyze` writes it, a hessian record and a claims folder."""
    from landscape.viz.report import render_report

    a = _analysis(entries)
    for i, e in enumerate(a["checkpoints"]):
        e["path"] = f"/runs/run{i}/checkpoint.pt"
    folder = tmp_path / "analysis"
    folder.mkdir()
    write_group(
        {folder / "analysis.json": json.dumps(a, indent=1) + "\n", folder / "report.html": render_report(a)}
    )
    write_json(
        tmp_path / "hessian.json",
        {
            "checkpoint": "/runs/h/checkpoint.pt",
            "result": entries[0]["curvature"],
            "versions": {"landscape": "0.0.9"},
        },
    )
    write_json(tmp_path / "claims" / "claims.json", _claims("ok"))
    return tmp_path


# -------------------------------------------------------------------------------------------------
# 1 and 5. a result file of the wrong shape, or garbage: one line naming the file
# -------------------------------------------------------------------------------------------------
def _curv(entries):
    return entries[0]["curvature"]


BAD_RESULTS = {
    "a-list": (b"[1, 2, 3]", "got a list"),
    "null": (b"null", "got null"),
    "a-number": (b"3", "got an integer"),
    "a-string": (b'"analysis"', "got a string"),
    "an-object-of-no-kind": (b'{"hello": 1}', "expected a landscape analysis.json"),
    "checkpoints-a-number": (
        b'{"format": "landscape-analysis/2", "checkpoints": 5}',
        '"checkpoints" is an integer',
    ),
    "settings-a-list": (
        b'{"format": "landscape-analysis/2", "checkpoints": [], "settings": [1]}',
        '"settings" is a list',
    ),
    "an-entry-a-string": (
        b'{"format": "landscape-analysis/2", "checkpoints": ["x"]}',
        "checkpoints[0] is a string",
    ),
    "a-label-a-list": (
        b'{"format": "landscape-analysis/2", "checkpoints": [{"label": [1]}]}',
        '"label" is a list',
    ),
    "curvature-a-stub": (
        b'{"format": "landscape-analysis/2", "checkpoints": [{"curvature": {"kind": "IterateCurvature"}}]}',
        "not a valid IterateCurvature",
    ),
    "slices-a-number": (
        b'{"format": "landscape-analysis/2", "checkpoints": [{"slices": {"input": 3}}]}',
        "slices.input is an integer",
    ),
    "hessian-result-a-stub": (
        b'{"result": {"kind": "IterateCurvature", "iterates": 3}}',
        "not a valid IterateCurvature",
    ),
    "hessian-checkpoint-a-number": (None, '"checkpoint" is an integer'),
    "claims-a-list-of-numbers": (
        b'{"format": "landscape-claims", "settings": {}, "checkpoints": [], "groups": [], '
        b'"claims": [1], "reference_jitter": {}}',
        "not a valid claims result",
    ),
    "claims-without-settings": (b'{"format": "landscape-claims", "checkpoints": []}', 'no "settings" field'),
    "nested-100000-deep": (b"[" * 100_000, "nested too deeply"),
    "truncated": (b'{"format": "landscape-analysis/2", "checkpoints": [', "not JSON"),
    "binary-garbage": (bytes(range(256)) * 4, "not UTF-8"),
    "latin-1": ('{"label": "caf\u00e9"}'.encode("latin-1"), "not UTF-8"),
    "empty": (b"", "not JSON"),
}


@pytest.mark.parametrize("name", list(BAD_RESULTS))
def test_report_of_a_bad_result_file_is_one_line_naming_it(name, entries, tmp_path, capsys):
    content, needle = BAD_RESULTS[name]
    if content is None:
        content = json.dumps({"checkpoint": 3, "result": _curv(entries)}).encode()
    bad = tmp_path / f"{name}.json"
    bad.write_bytes(content)
    line = one_error_line(capsys, run_cli(["report", bad, "--out", tmp_path / "r.html"]))
    assert str(bad) in line and needle in line, line
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("name", ["a-list", "nested-100000-deep", "binary-garbage", "an-entry-a-string"])
def test_an_analysis_folder_of_bad_json_is_one_line_naming_its_file(name, tmp_path, capsys):
    (tmp_path / "ana").mkdir()
    (tmp_path / "ana" / "analysis.json").write_bytes(BAD_RESULTS[name][0])
    line = one_error_line(capsys, run_cli(["report", tmp_path / "ana", "--out", tmp_path / "r.html"]))
    assert str(tmp_path / "ana" / "analysis.json") in line, line
    with pytest.raises(ValueError, match="analysis.json"):
        load_analysis(tmp_path / "ana")


def test_a_good_result_of_each_kind_still_reads(results):
    from landscape.records import read_result

    assert read_result(results / "analysis" / "analysis.json")[0] == "analysis"
    assert read_result(results / "hessian.json")[0] == "hessian"
    assert read_result(results / "claims" / "claims.json")[0] == "claims"


def test_garbage_checkpoints_of_slice_hessian_claims_are_one_line_naming_the_file(tmp_path, capsys):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(bytes(range(256)) * 8)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(CK.read_bytes()[:5000])
    for bad in (garbage, truncated):
        for argv in (
            ["slice", bad, "--grid", "3", "--out", tmp_path / "s.json"],
            ["hessian", bad, "--no-progress"],
            ["claims", bad, "--out", tmp_path / "cl", "-q"],
        ):
            line = one_error_line(capsys, run_cli(argv))
            assert bad.name in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage.pt", "truncated.pt"]  # nothing written


# -------------------------------------------------------------------------------------------------
# 2. the same checkpoint twice among the inputs: a warning naming both inputs
# -------------------------------------------------------------------------------------------------
def test_the_same_checkpoint_in_two_inputs_warns_naming_both(results, tmp_path, capsys):
    run = tmp_path / "copy"
    run.mkdir()
    shutil.copy(CK, run / "checkpoint.pt")  # a copy: another path, the same sha256
    a = load_analysis(results / "analysis")
    a["checkpoints"][0]["path"] = str(CK)
    write_json(results / "ana2" / "analysis.json", a)
    write_json(
        results / "h2.json",
        {"checkpoint": str(run / "checkpoint.pt"), "result": a["checkpoints"][0]["curvature"]},
    )
    out = tmp_path / "r.html"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert run_cli(["report", results / "ana2", results / "h2.json", "--out", out]) == 0
    msgs = [str(w.message) for w in caught if "appears twice" in str(w.message)]
    assert len(msgs) == 1, [str(w.message) for w in caught]
    assert str(results / "ana2" / "analysis.json") in msgs[0] and str(results / "h2.json") in msgs[0], msgs[0]
    assert "\n" not in msgs[0]
    # distinct checkpoints: no warning
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert run_cli(["report", results / "analysis", results / "hessian.json", "--out", out]) == 0
    assert not [w for w in caught if "appears twice" in str(w.message)]


# -------------------------------------------------------------------------------------------------
# 3. the header says which files the numbers come from, and by which landscape
# -------------------------------------------------------------------------------------------------
def _header(page):
    return page.split("<body>", 1)[1].split("<table", 1)[0]


@pytest.mark.parametrize(
    "inputs", [["analysis"], ["hessian.json"], ["claims"], ["analysis", "hessian.json", "claims"]]
)
def test_the_header_names_the_files_its_numbers_come_from(results, inputs):
    from landscape import __version__

    out = results / "r.html"
    assert run_cli(["report", *(results / i for i in inputs), "--out", out]) == 0
    head = _header(out.read_text())
    assert "merged" not in head and "landscape ." not in head and "landscape <" not in head, head
    assert "beside this page" not in head, head  # the page is not beside an analysis.json it describes
    assert f"by landscape {__version__}" in head, head
    files = {
        "analysis": "analysis/analysis.json",
        "hessian.json": "hessian.json",
        "claims": "claims/claims.json",
    }
    for i in inputs:
        assert str(results / files[i]) in head, head
    if "analysis" in inputs:
        assert "analysis created x by landscape x" in head  # the source's own date and version
    if "hessian.json" in inputs:
        assert "hessian record by landscape 0.0.9" in head


def test_the_header_of_an_analysis_page_names_its_analysis_json(entries):
    from landscape.viz.report import render_report

    a = _analysis(entries)
    head = _header(render_report(a))
    assert (
        "Created x by landscape x. Every number below is in <code>analysis.json</code> beside this page"
        in head
    )
    del a["created"], a["versions"]
    head = _header(render_report(a))
    assert "By a landscape version it does not record. Every number" in head, head


# -------------------------------------------------------------------------------------------------
# 4. --out that is a file of another folder's write group
# -------------------------------------------------------------------------------------------------
def test_report_over_the_report_html_of_another_analysis_is_refused(results, capsys):
    before = _snapshot(results)
    ana = results / "analysis"
    line = one_error_line(capsys, run_cli(["report", results / "hessian.json", "--out", ana / "report.html"]))
    assert "report.html" in line and "written together" in line and "analysis.json" in line, line
    assert _snapshot(results) == before
    load_analysis(ana)  # the analysis folder still passes its own group check
    check_group(ana, ["analysis.json", "report.html"])
    # a new name in that folder is fine, and the folder still loads
    assert run_cli(["report", results / "hessian.json", "--out", ana / "other.html"]) == 0
    load_analysis(ana)


def test_slice_over_the_report_html_of_an_analysis_is_refused(results, capsys):
    before = _snapshot(results)
    line = one_error_line(
        capsys, run_cli(["slice", CK, "--grid", "3", "--out", results / "analysis" / "report.json"])
    )
    assert "report.html" in line and "written together" in line, line
    assert _snapshot(results) == before


# -------------------------------------------------------------------------------------------------
# 6. claims.json and claims.html: one write group
# -------------------------------------------------------------------------------------------------
def _fake_claims(monkeypatch, d):
    import landscape.commands.claims as cmd
    from landscape.claims import ClaimsResult

    monkeypatch.setattr(cmd, "check_claims", lambda *a, **k: ClaimsResult.from_dict(d))


def test_claims_json_and_html_are_one_write_group(tmp_path, monkeypatch):
    import landscape.viz.claims_report as cr

    out = tmp_path / "cl"
    _fake_claims(monkeypatch, _claims("first"))
    assert run_cli(["claims", CK, "--out", out, "-q"]) == 0
    check_group(out, ["claims.json", "claims.html"])
    before = _snapshot(out)
    assert json.loads((out / "claims.json").read_text())["claims"][0]["verdict"] == "first"

    # a failure between the two writes (the page fails after the JSON is ready): neither file changes
    _fake_claims(monkeypatch, _claims("second"))

    def broken(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cr, "render_page", broken)
    assert run_cli(["claims", CK, "--out", out, "-q"]) == 2
    assert _snapshot(out) == before
    check_group(out, ["claims.json", "claims.html"])
    monkeypatch.undo()

    # a crash between the two renames: the group check says so
    import landscape.io as lio

    _fake_claims(monkeypatch, _claims("third"))
    calls = []
    real = lio.os.replace

    def replace(src, dst):
        calls.append(dst)
        if str(dst).endswith("claims.html"):
            raise OSError(5, "Input/output error")
        return real(src, dst)

    monkeypatch.setattr(lio.os, "replace", replace)
    assert run_cli(["claims", CK, "--out", out, "-q"]) == 2
    monkeypatch.undo()
    with pytest.raises(ValueError, match="incomplete|does not belong"):
        check_group(out, ["claims.json", "claims.html"])


def test_claims_refused_before_work_leaves_no_folder(tmp_path, capsys, monkeypatch):
    (tmp_path / "cl").mkdir()
    (tmp_path / "cl" / "claims.html").mkdir()  # the page's path is a folder: refused before any work
    monkeypatch.setattr(
        "landscape.commands.claims.check_claims", lambda *a, **k: pytest.fail("work was done")
    )
    line = one_error_line(capsys, run_cli(["claims", CK, "--out", tmp_path / "cl", "-q"]))
    assert "claims.html" in line, line
    assert not (tmp_path / "cl" / "claims.json").exists()


# -------------------------------------------------------------------------------------------------
# 7 and 8. counts and suffixes bounded before any work
# -------------------------------------------------------------------------------------------------
def test_hessian_top_k_above_the_dimension_is_refused(tmp_path, capsys, monkeypatch):
    import landscape.commands.hessian as cmd

    monkeypatch.setattr(cmd, "hessian_record", lambda *a, **k: pytest.fail("work was done"))
    line = one_error_line(capsys, run_cli(["hessian", CK, "--top-k", "100000", "--no-progress"]))
    assert "--top-k 100000" in line and "at most 64" in line, line
    line = one_error_line(capsys, run_cli(["hessian", CK, "--bottom-k", "65", "--no-progress"]))
    assert "--bottom-k 65" in line and "at most 64" in line, line
    line = one_error_line(
        capsys,
        run_cli(["hessian", CK, "--wrt", "params", "--params", "step", "--top-k", "99", "--no-progress"]),
    )
    assert "--top-k 99" in line and "selected parameters" in line, line


def test_slice_sample_beyond_the_test_samples_is_refused(tmp_path, capsys, monkeypatch):
    import landscape.commands.slice as cmd

    monkeypatch.setattr(cmd, "input_slice", lambda *a, **k: pytest.fail("work was done"))
    line = one_error_line(
        capsys, run_cli(["slice", CK, "--sample", "1000000000", "--grid", "3", "--out", tmp_path / "s.json"])
    )
    assert "--sample 1000000000" in line and "999999" in line, line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("out", ["h.npz", "h.html", "h"])
def test_hessian_out_must_end_in_json(tmp_path, capsys, monkeypatch, out):
    import landscape.commands.hessian as cmd

    monkeypatch.setattr(cmd, "load_checkpoint", lambda *a, **k: pytest.fail("work was done"))
    line = one_error_line(capsys, run_cli(["hessian", CK, "--out", tmp_path / out, "--no-progress"]))
    assert out in line and "ending in .json" in line, line
    assert list(tmp_path.iterdir()) == []


# -------------------------------------------------------------------------------------------------
# 9. slice: every output checked first, written as one group
# -------------------------------------------------------------------------------------------------
def test_slice_refuses_an_unwritable_page_before_writing_its_json(tmp_path, capsys, monkeypatch):
    import landscape.commands.slice as cmd

    (tmp_path / "s.html").mkdir()
    monkeypatch.setattr(cmd, "load_checkpoint", lambda *a, **k: pytest.fail("work was done"))
    line = one_error_line(capsys, run_cli(["slice", CK, "--grid", "3", "--out", tmp_path / "s.json"]))
    assert "s.html" in line and "directory" in line, line
    assert not (tmp_path / "s.json").exists()


@pytest.mark.parametrize("suffix", [".json", ".npz"])
def test_slice_writes_its_result_and_page_together(tmp_path, monkeypatch, suffix):
    import landscape.commands.slice as cmd
    from landscape.curvature.slices.result import load_slice

    out = tmp_path / f"s{suffix}"
    assert run_cli(["slice", CK, "--grid", "3", "--out", out]) == 0
    check_group(tmp_path, [out.name, "s.html"])
    assert load_slice(out).values.shape == (3, 3)
    before = _snapshot(tmp_path)

    def broken(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cmd, "render_page", broken)  # the page fails after the result is ready
    assert run_cli(["slice", CK, "--grid", "3", "--seed", "1", "--out", out]) == 2
    assert _snapshot(tmp_path) == before  # neither file replaced
    monkeypatch.undo()
    assert run_cli(["slice", CK, "--grid", "3", "--seed", "1", "--out", out]) == 0  # its own group: rewritten
    check_group(tmp_path, [out.name, "s.html"])


# -------------------------------------------------------------------------------------------------
# 10. the claims fragment, claims.html and the report page escape hostile claims themselves
# -------------------------------------------------------------------------------------------------
HOSTILE = "</script><script>alert(1)</script><!--"


def test_hostile_claims_never_run_as_script_without_plotlys_escaping(tmp_path, monkeypatch):
    import plotly.io._json as pj

    from landscape.claims import ClaimsResult
    from landscape.viz.claims_report import claims_section

    monkeypatch.setattr(pj, "_safe", lambda text, swap=None: text)
    assert '"</script>"' in pj.to_json_plotly({"a": "</script>"})  # plotly's own escaping is off
    d = _claims(HOSTILE)
    # the fragment: one <script> per figure div, none of them holding a '<'
    frag = claims_section(ClaimsResult.from_dict(d))
    p = _Scripts()
    p.feed(frag)
    p.close()
    assert len(p.scripts) == frag.count("<script") == frag.count('class="plotly-graph-div"') == 3
    assert all("<" not in s and ">" not in s for s in p.scripts)
    assert "<script>alert" not in frag
    # claims.html as `landscape claims` writes it, and the report page of that claims folder
    _fake_claims(monkeypatch, d)
    assert run_cli(["claims", CK, "--out", tmp_path / "cl", "-q"]) == 0
    _assert_no_script_from_data((tmp_path / "cl" / "claims.html").read_text(), 3)
    assert run_cli(["report", tmp_path / "cl", "--out", tmp_path / "page.html"]) == 0
    _assert_no_script_from_data((tmp_path / "page.html").read_text(), 3)
    assert EVIL  # the round-three hostile string is covered by test_reliability_three
    assert MANIFEST_NAME in {p.name for p in (tmp_path / "cl").iterdir()}
