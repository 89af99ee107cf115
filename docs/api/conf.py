"""Sphinx configuration of the API reference (built from the docstrings: ``make docs``; CI builds it with
warnings as errors)."""

project = "landscape"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.mathjax"]
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": False,
                           "ignore-module-all": True}  # each name documented once, where it is defined
autodoc_typehints = "none"  # the signatures show the names; the docstrings say the types
autodoc_mock_imports = ["plotly", "kaleido", "deepinv", "pyhessian", "h5py", "nibabel", "nbclient", "nbformat"]
napoleon_google_docstring = True
napoleon_numpy_docstring = False
nitpicky = False
exclude_patterns = ["_build"]
html_theme = "alabaster"
suppress_warnings = ["autodoc.import_object"]
napoleon_use_ivar = True  # "Attributes:" as fields, not a second description of each dataclass field
