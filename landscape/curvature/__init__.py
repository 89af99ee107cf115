r"""Curvature of the loss of an unrolled network with respect to its intermediate iterates (and parameters).

Operators (matvecs) come from :mod:`~landscape.curvature.operators` with Hessian-vector products from
:mod:`~landscape.curvature.backends`; estimators (:mod:`~landscape.curvature.eigen`,
:mod:`~landscape.curvature.trace`, :mod:`~landscape.curvature.density`) are pure functions of a matvec and
return the frozen results of :mod:`~landscape.curvature.results`; :func:`analyze_iterates` puts them
together per sample and iterate.
"""

from landscape.curvature.analysis import CurvatureSettings, IterateCurvature, analyze_iterates
from landscape.curvature.backends import BACKENDS, make_hvp, select_backend
from landscape.curvature.density import slq, spectral_density
from landscape.curvature.eigen import eigsh, lanczos, lanczos_both_ends, power_iteration, top_eigenpairs
from landscape.curvature.operators import (
    CurvatureOperator,
    make_iterate_hvp,
    make_param_hvp,
    make_regularizer_hvp,
    make_regularizer_jacobian,
    prepare_solver,
    residual_weight,
)
from landscape.curvature.results import LOSS_CONVENTION, Density, Eigenpairs, Estimate
from landscape.curvature.seeds import derive_seed
from landscape.curvature.trace import estimate_trace, hutchinson, hutchpp

__all__ = [
    "BACKENDS",
    "CurvatureOperator",
    "CurvatureSettings",
    "Density",
    "Eigenpairs",
    "Estimate",
    "IterateCurvature",
    "LOSS_CONVENTION",
    "analyze_iterates",
    "derive_seed",
    "lanczos_both_ends",
    "prepare_solver",
    "eigsh",
    "estimate_trace",
    "hutchinson",
    "hutchpp",
    "lanczos",
    "make_hvp",
    "make_iterate_hvp",
    "make_param_hvp",
    "make_regularizer_hvp",
    "make_regularizer_jacobian",
    "power_iteration",
    "residual_weight",
    "select_backend",
    "slq",
    "spectral_density",
    "top_eigenpairs",
]
