"""The conda environment lists what pyproject.toml requires; the README's quick start matches the Makefile."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAME = {"torch": "pytorch", "kaleido": "python-kaleido"}  # pip name -> conda name where they differ
# Extras left out of environment.yml on purpose (each pulls a torch-built wheel of its own); the file
# must name each in a comment together with the doc that gives its install recipe.
OUT_OF_CONDA = {"deepinv": "docs/DEEPINV.md"}


def _pyproject():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[; ]", req.strip(), maxsplit=1)[0].lower()


def _conda_entries():
    names = set()
    for line in (ROOT / "environment.yml").read_text().splitlines():
        m = re.match(r"^\s*-\s+([A-Za-z0-9_.\-]+)", line)
        if m:
            names.add(_name(m.group(1)))
    return names


def test_environment_lists_every_requirement():
    proj = _pyproject()["project"]
    conda = _conda_entries()
    extras = proj["optional-dependencies"]
    wanted = list(proj["dependencies"]) + [
        r for name, reqs in extras.items() if name not in OUT_OF_CONDA for r in reqs
    ]
    missing = [r for r in wanted if CONDA_NAME.get(_name(r), _name(r)) not in conda]
    assert not missing, f"environment.yml lacks {missing}"
    assert "python" in conda


def test_extras_kept_out_of_the_environment_are_named_there_with_their_recipe():
    extras = _pyproject()["project"]["optional-dependencies"]
    conda = _conda_entries()
    text = (ROOT / "environment.yml").read_text()
    notes = [line for line in text.splitlines() if line.lstrip().startswith("#")]
    for name, doc in OUT_OF_CONDA.items():
        assert name in extras, f"OUT_OF_CONDA names {name!r}, which pyproject.toml has no extra for"
        assert not any(_name(r) in conda for r in extras[name]), f"environment.yml lists the {name} extra"
        assert any(f"`{name}`" in line for line in notes) and any(doc in line for line in notes)
        assert (ROOT / doc).is_file()


def test_torch_range_admits_the_cpu_pin():
    deps = _pyproject()["project"]["dependencies"]
    torch_req = next(d for d in deps if _name(d) == "torch")
    assert "==" not in torch_req  # a range, never a pin that could pull a CUDA build
    makefile = (ROOT / "Makefile").read_text()
    assert "torch==2.13.0" in makefile


def test_readme_quick_start_is_two_make_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Quick start", 1)[1].split("```", 2)[1]
    cmds = [c.split("#")[0].strip() for c in block.splitlines()[1:]]
    cmds = [c for c in cmds if c]
    assert cmds == ["make demo", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_environment_uses_conda_forge_only_and_pyproject_an_spdx_license():
    text = (ROOT / "environment.yml").read_text()
    channels = text.split("channels:", 1)[1].split("dependencies:", 1)[0]
    assert [c.strip("- ").strip() for c in channels.strip().splitlines()] == ["conda-forge"]
    assert "cpuonly" not in text  # a package of the deprecated pytorch channel
    assert _pyproject()["project"]["license"] == "MIT"  # an SPDX expression, not the deprecated table
