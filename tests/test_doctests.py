"""The seeded doctest examples in the public API's docstrings run (each checks against a dense or closed form)."""

import doctest
import importlib

import pytest

MODULES = [
    "landscape.solver",
    "landscape.curvature.analysis",
    "landscape.curvature.eigen",
    "landscape.curvature.operators",
    "landscape.seeding",
    "landscape.curvature.trace",
    "landscape.curvature.diagonal",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    mod = importlib.import_module(name)
    res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert res.attempted > 0 and res.failed == 0, res
