r"""1-D and 2-D slices of the loss around an iterate :math:`x_k` (input space) or around θ (parameter space).

Input space, one sample :math:`(y, x^*)`, iterate :math:`k`:

.. math::
   s(\alpha, \beta) = L_k(x_k + \alpha d_1 + \beta d_2),\qquad
   L_k(x) = \|\Phi_{k\to K}(x; y, \theta) - x^*\|^2 \ \text{(sum over entries)}

Parameter space, a batch of samples, the training loss (same per-sample convention, mean over samples):

.. math:: s(\alpha, \beta) = \tfrac1B\sum_i \|f_{\theta + \alpha\delta_1 + \beta\delta_2}(y_i) - x^*_i\|^2

Directions (``kinds``):

* input space: ``"random"`` (Gaussian, scaled to :math:`\|x_k\|`), ``"random_channel"`` (Gaussian, each
  channel scaled to the norm of that channel of :math:`x_k`, the input-space analogue of filter
  normalisation), ``"eigen"`` (top Hessian eigenvectors of :math:`L_k` at :math:`x_k`, the i-th ``"eigen"``
  entry uses the i-th eigenvector), ``"gradient"`` (:math:`\nabla L_k(x_k)`, the adversarial direction),
  ``"range"`` / ``"null"`` (one Gaussian draw split into :math:`A^H A g` and :math:`g - A^H A g`; needs
  an operator whose :math:`A^H A` is an orthogonal projection, e.g. MRI: sampled vs unsampled k-space);
* parameter space: ``"filter"`` (Li et al., 2018: Gaussian, each filter, i.e. each slice along dim 0 of a
  weight, scaled to the norm of the same filter of θ; biases and other 1-D parameters get 0) and
  ``"random"`` (Gaussian per tensor, scaled to the norm of that tensor).

All directions are scaled to the norm of the point they perturb (``scale="norm"``, default) or are unit
vectors (``scale="unit"``); ``Slice.directions[i]["norm"]`` records :math:`\|d_i\|`, so the curvature
along :math:`d` is :math:`d^\top H d = \|d\|^2\, v^\top H v`.  Random directions are drawn on the CPU in
float64 from a generator seeded by :func:`~landscape.seeding.derive_seed` of ``(seed, space, k, sample, index)`` only, so two checkpoints of the
same task get the same raw draws (scaled to their own iterates) and are compared on one footing; later
random directions are orthogonalised against the earlier ones before scaling.

Evaluation is batched: grid points are stacked along the batch dimension of ``model.tail(x, y, k)``
(parameter space: ``torch.func.vmap`` over ``functional_call``) in chunks capped by a memory budget measured on the solver itself,
under ``torch.no_grad`` and with the model in eval mode (jitter off).  ``method="pointwise"`` evaluates
one point per call, as a reference.
"""

from landscape.curvature.slices.grid import bytes_per_point, chunk_cap, evaluate_grid, grid_coordinates
from landscape.curvature.slices.input import (
    INPUT_KINDS,
    input_directions,
    input_slice,
    iterate_loss_fn,
    iterate_points,
    top_eigenvectors,
)
from landscape.curvature.slices.parameter import (
    PARAMETER_KINDS,
    parameter_directions,
    parameter_loss_fn,
    parameter_slice,
)
from landscape.curvature.slices.result import LOSS_CONVENTION, TRAIN_LOSS_CONVENTION, Slice, load_slice
from landscape.seeding import derive_seed

__all__ = [
    "INPUT_KINDS",
    "PARAMETER_KINDS",
    "LOSS_CONVENTION",
    "TRAIN_LOSS_CONVENTION",
    "Slice",
    "derive_seed",
    "grid_coordinates",
    "iterate_loss_fn",
    "iterate_points",
    "input_directions",
    "top_eigenvectors",
    "input_slice",
    "parameter_directions",
    "parameter_loss_fn",
    "parameter_slice",
    "evaluate_grid",
    "bytes_per_point",
    "chunk_cap",
    "load_slice",
]
