"""landscape: SGD-jittered unrolled networks for inverse problems and the curvature of their loss
with respect to the intermediate iterates x_k.

Every name below is imported on first use (PEP 562), so ``import landscape`` and ``landscape --help``
do not import torch.
"""

_LAZY = {
    "JitterConfig": "landscape.jitter",
    "ModelConfig": "landscape.models",
    "RegularizerConfig": "landscape.models",
    "Trajectory": "landscape.models",
    "UnrolledGD": "landscape.models",
    "UnrolledProxGD": "landscape.models",
    "build_model": "landscape.models",
    "Deconvolution": "landscape.physics",
    "Denoising": "landscape.physics",
    "SingleCoilMRI": "landscape.physics",
    "adjointness_gap": "landscape.physics",
    "load_checkpoint": "landscape.checkpoint",
}

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
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'landscape' has no attribute {name!r}")
