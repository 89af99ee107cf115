r"""Curvature of the loss of an unrolled network with respect to its intermediate iterates (and parameters).

Operators (matvecs) come from :mod:`~landscape.curvature.operators` with Hessian-vector products from
:mod:`~landscape.curvature.backends`; estimators (:mod:`~landscape.curvature.eigen`,
:mod:`~landscape.curvature.trace`, :mod:`~landscape.curvature.diagonal`, :mod:`~landscape.curvature.density`) are pure functions of a matvec and
return the frozen results of :mod:`~landscape.curvature.results`; :func:`analyze_iterates` puts them
together per sample and iterate.

Names load on first use (PEP 562), so ``landscape.curvature.settings`` is importable without torch.
"""

_LAZY = {
    "BACKENDS": "landscape.curvature.settings",
    "CurvatureOperator": "landscape.curvature.operators",
    "CurvatureSettings": "landscape.curvature.settings",
    "Density": "landscape.curvature.results",
    "Diagonal": "landscape.curvature.results",
    "Eigenpairs": "landscape.curvature.results",
    "Estimate": "landscape.curvature.results",
    "IterateCurvature": "landscape.curvature.analysis",
    "LOSS_CONVENTION": "landscape.curvature.results",
    "analyze_iterates": "landscape.curvature.analysis",
    "derive_seed": "landscape.seeding",
    "lanczos_both_ends": "landscape.curvature.eigen",
    "prepare_solver": "landscape.curvature.operators",
    "eigsh": "landscape.curvature.eigen",
    "estimate_trace": "landscape.curvature.trace",
    "exact_diagonal": "landscape.curvature.diagonal",
    "hutchinson_diagonal": "landscape.curvature.diagonal",
    "hutchinson": "landscape.curvature.trace",
    "hutchpp": "landscape.curvature.trace",
    "lanczos": "landscape.curvature.eigen",
    "make_hvp": "landscape.curvature.backends",
    "make_iterate_hvp": "landscape.curvature.operators",
    "make_param_hvp": "landscape.curvature.operators",
    "make_regularizer_hvp": "landscape.curvature.operators",
    "make_regularizer_jacobian": "landscape.curvature.operators",
    "power_iteration": "landscape.curvature.eigen",
    "residual_weight": "landscape.curvature.operators",
    "select_backend": "landscape.curvature.backends",
    "slq": "landscape.curvature.density",
    "spectral_density": "landscape.curvature.density",
    "top_eigenpairs": "landscape.curvature.eigen",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'landscape.curvature' has no attribute {name!r}")
