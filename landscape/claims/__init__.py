r"""``check_claims``: the paper's claims as measurable hypotheses, each with an interval and a verdict.

One call measures every given checkpoint and compares each jittered group with the MSE group trained
with the same model config (several checkpoints of one group are seeds)::

    from landscape.claims import check_claims
    res = check_claims(["runs/mse-s0", "runs/mse-s1", "runs/sgd-s0", "runs/sgd-s1"])
    for c in res.claims: print(c.name, c.group, c.verdict)
    json.dump(res.to_dict(), f); ClaimsResult.from_dict(d) == res

What is measured (theory/claims.md states each hypothesis; theory/expansion.md the formulas):

* **penalty** — at fixed θ, the Monte-Carlo excess :math:`E_w J - L_0` of the jittered loss from antithetic
  pairs :math:`(\varepsilon, -\varepsilon)` with its standard error, against the Hessian-trace prediction
  :math:`\sum_j \tfrac12\eta_j^2 s_j^2\operatorname{tr}H_{j+1}` (:math:`s_j` on the clean path), for
  several small σ, for the checkpoint's own jitter rule and for absolute noise; the ratio with a Monte-Carlo
  interval (draws and trace estimator; delta method).  The ``paper`` rule is checked as trained — one max
  over a training batch of the run's batch size that holds the analysed samples in its leading rows
  (:func:`training_batches`) — and, as a
  second, labelled row, per sample (the rule for a batch of one).
* **flatness** — tr H_k, ‖H_k‖_F, Σ|λ|(H_k), λ_max(H_k), λ_min(H_k) at every iterate (ID and each OOD split)
  through :func:`landscape.curvature.analyze_iterates` (the trace can cancel, H_k being indefinite; the
  Frobenius norm and Σ|λ| cannot); the noise coordinates :math:`\tfrac12\eta_k^2 s_k^2\operatorname{tr}H_{k+1}`
  at one reference jitter rule shared by all checkpoints, s_k as trained (and per sample, labelled); the
  regularizer's input curvature :math:`\|J_R\|_F^2` and the trace of the residual-weighted Hessian
  :math:`\nabla^2\langle u, R\rangle` (ID).
* **robustness** — :math:`E\|\hat x(y + e) - x^*\|^2` over random :math:`e` of norm ε (relative to ‖y‖
  when the checkpoint's evaluation config says so).
* **accuracy** — per-sample PSNR and squared error on ID and every OOD split; PGD-attacked error.
* **generalisation** — test risk minus training risk (clean solver).
* **link** — Spearman rank correlation between summed iterate curvature and OOD / attacked error, tested
  by permuting seeds jointly (checkpoints that share a seed move together; ranks centred within each group,
  so a difference between groups is not read as a link): :func:`landscape.stats.seed_permutation_test`.

Statistics (all from :mod:`landscape.stats`): every comparison is reported twice — a *paired* t interval
over the shared test samples (each sample's difference averaged over seed pairs; it holds training fixed)
and a *seed-level* t interval with n − 1 degrees of freedom over the seed pairs' mean differences.  The
verdict follows the seed-level interval (:func:`landscape.stats.verdict`); with one seed a comparison reads
``too few seeds``, whatever its paired interval.  The expansion of one checkpoint is an identity at fixed
θ and is judged on its Monte-Carlo interval; with several seeds on the t interval over per-seed ratios.
The rules' false-verdict rates are measured by seeded null simulations in ``tests/test_stats.py``.

Checkpoints are sorted by (group, seed, path) first, so the result does not depend on the order given.
Every estimator seed derives from ``(settings.seed, sample index, ...)``, never from a batch position.

The package, by job (each name below is importable from ``landscape.claims`` too):

* :mod:`~landscape.claims.settings` — :class:`ClaimsSettings`, the result format;
* :mod:`~landscape.claims.registry` — every claim as a typed :class:`~landscape.claims.registry.ClaimSpec`
  (name, kind, hypothesis), looked up by key;
* :mod:`~landscape.claims.expansion` — unit and trained noise scales, :func:`training_batches`,
  :func:`penalty_along_path`, :func:`penalty_check`;
* :mod:`~landscape.claims.measure` — measuring one checkpoint;
* :mod:`~landscape.claims.quantities` — the per-sample quantities a claim compares, each with its spec;
* :mod:`~landscape.claims.claim` and :mod:`~landscape.claims.verdicts` — :class:`Claim`, :func:`judge_claims`;
* :mod:`~landscape.claims.result` — :class:`ClaimsResult`, :func:`rejudge`, :func:`merge_claims`;
* :mod:`~landscape.claims.api` — :func:`check_claims`.
"""

from __future__ import annotations

from landscape.claims.api import check_claims
from landscape.claims.claim import Claim
from landscape.claims.expansion import TrainingBatches as TrainingBatches
from landscape.claims.expansion import penalty_along_path as penalty_along_path
from landscape.claims.expansion import penalty_check
from landscape.claims.expansion import trained_unit_scales as trained_unit_scales
from landscape.claims.expansion import training_batches as training_batches
from landscape.claims.result import ClaimsResult, merge_claims, rejudge
from landscape.claims.settings import BATCH_MAX_MODES as BATCH_MAX_MODES
from landscape.claims.settings import FORMAT as FORMAT
from landscape.claims.settings import FORMAT_VERSION as FORMAT_VERSION
from landscape.claims.settings import ClaimsSettings
from landscape.claims.verdicts import ONE_SEED as ONE_SEED
from landscape.claims.verdicts import judge_claims, spearman
from landscape.claims.verdicts import judge_labels as judge_labels
from landscape.stats import (
    TOO_FEW_SEEDS,
    VERDICTS,
    Interval,
    paired_interval,
    seed_interval,
    verdict,
)

__all__ = [
    "ClaimsSettings",
    "Interval",
    "Claim",
    "ClaimsResult",
    "check_claims",
    "merge_claims",
    "verdict",
    "paired_interval",
    "seed_interval",
    "penalty_check",
    "spearman",
    "VERDICTS",
    "TOO_FEW_SEEDS",
    "judge_claims",
    "rejudge",
]
