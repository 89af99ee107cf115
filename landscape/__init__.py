"""landscape: SGD-jittered unrolled networks for inverse problems and the curvature of their loss
with respect to the intermediate iterates x_k.

The core API (physics, models, jitter) is imported eagerly; heavier parts (plotting, CLI) load on use.
"""

from landscape.jitter import JitterConfig
from landscape.models import (
    ModelConfig,
    RegularizerConfig,
    Trajectory,
    UnrolledGD,
    UnrolledProxGD,
    build_model,
)
from landscape.physics import Deconvolution, Denoising, SingleCoilMRI, adjointness_gap

__version__ = "0.1.0"

__all__ = [
    "Denoising",
    "Deconvolution",
    "SingleCoilMRI",
    "adjointness_gap",
    "JitterConfig",
    "ModelConfig",
    "RegularizerConfig",
    "Trajectory",
    "UnrolledGD",
    "UnrolledProxGD",
    "build_model",
    "load_checkpoint",
    "__version__",
]


def __getattr__(name: str):
    if name == "load_checkpoint":
        from landscape.checkpoint import load_checkpoint

        return load_checkpoint
    raise AttributeError(f"module 'landscape' has no attribute {name!r}")
