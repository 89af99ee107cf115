"""The front door: ``landscape`` lists the public API by job, every name is the object its module
defines, ``import landscape`` stays light, and the notebooks import from the front door only."""

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import landscape

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("name", sorted(landscape.__all__))
def test_every_public_name_is_its_modules_object(name):
    value = getattr(landscape, name)
    if name == "__version__":
        assert isinstance(value, str)
        return
    module = landscape._WHERE[name]
    expected = (  # a module offered by name (figures: landscape.viz.figures), else a name in its module
        importlib.import_module(module)
        if module.rsplit(".", 1)[-1] == name
        else getattr(importlib.import_module(module), name)
    )
    assert value is expected


def test_the_groups_hold_every_name_once_and_dir_lists_them():
    names = [n for group in landscape.API.values() for n in group]
    assert len(names) == len(set(names)) == len(landscape.__all__) - 1
    assert set(landscape.__all__) <= set(dir(landscape))
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        landscape.not_a_name  # noqa: B018


def test_no_public_name_is_shadowed_by_a_submodule():
    """Importing ``landscape.X`` sets the package attribute ``X`` to the module, so a function named like a
    submodule would turn into that module as soon as anything imported it."""
    root = Path(landscape.__file__).parent
    submodules = {p.stem for p in root.glob("*.py")} | {
        p.name for p in root.iterdir() if (p / "__init__.py").exists()
    }
    clash = [n for n, m in landscape._WHERE.items() if n in submodules and m != "landscape"]
    assert not clash, clash


def test_import_landscape_imports_no_torch_and_no_plotly():
    code = (
        "import sys, landscape\nprint(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'plotly', 'scipy')))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", (r.stdout[:300], r.stderr[-300:])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_import_the_package_from_its_front_door(path):
    nb = json.loads(path.read_text())
    deep = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        for node in ast.walk(ast.parse("".join(cell["source"]))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("landscape."):
                deep.append(ast.unparse(node))
            elif isinstance(node, ast.Import):
                deep += [ast.unparse(node) for a in node.names if a.name.startswith("landscape.")]
            elif isinstance(node, ast.ImportFrom) and node.module == "landscape":
                missing = [a.name for a in node.names if a.name not in landscape.__all__]
                assert not missing, f"{path.name} imports {missing}, which the front door does not list"
    assert not deep, f"{path.name} reaches past the front door: {deep}"
