"""The adapters are optional: landscape imports without their libraries, and a missing one says how
to install it (these run everywhere, with or without deepinv)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_importing_landscape_and_the_adapter_module_never_imports_deepinv():
    code = (
        "import sys; import landscape, landscape.solver, landscape.adapters, landscape.adapters.deepinv; "
        "print('deepinv' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_missing_deepinv_raises_importerror_naming_the_recipe(monkeypatch):
    from landscape.adapters.deepinv import DeepinvSolver

    monkeypatch.setitem(sys.modules, "deepinv", None)  # as if not installed
    with pytest.raises(ImportError, match=r"landscape\[deepinv\].*docs/DEEPINV.md") as info:
        DeepinvSolver(object(), object())
    assert "\n" not in str(info.value)


def test_the_package_exports_resolve_lazily():
    import landscape.adapters as adapters

    assert adapters.DeepinvSolver.__name__ == "DeepinvSolver"
    with pytest.raises(AttributeError):
        adapters.no_such_adapter  # noqa: B018
