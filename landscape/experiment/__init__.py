r"""``landscape experiment``: the paper's comparison for one task end to end, and the studies beyond it.

One call trains every run of a *plan*, evaluates each, measures curvature and judges the claims, then writes
``DIR/results.json``, ``DIR/results.md`` and ``DIR/report.html`` together (:func:`landscape.io.write_group`).

The plan (:func:`~landscape.experiment.plan.plan_experiment`), for seeds ``0..S-1``:

* ``main`` — ``UnrolledGD`` with mse, input-jitter, adversarial and sgd-jitter (the paper's rule, its σ),
  and ``UnrolledProxGD`` with mse and spgd-jitter;
* ``sigma`` (``sigmas=``) — sgd-jitter at each σ (σ = 0 is the main MSE run);
* ``activation`` (``activations=``) — mse and sgd-jitter with each regularizer activation;
* ``ablation`` (``ablations=``, any of :data:`~landscape.experiment.plan.ABLATIONS`) — a fixed step η; no jitter on the last one or
  two steps; a small fixed training set (1/8 of the pairs, passed over 8 times per epoch, so an epoch has the
  steps of a full one) and fresh measurement noise every batch; absolute noise whose
  variance matches the paper rule's, measured on the main sgd-jitter model of the same seed; and
  ``explicit-penalty``, the causal control: ``UnrolledGD`` trained with the jitter's penalty made explicit
  (``curvature-penalty`` at the main sgd-jitter's σ and rule, :mod:`landscape.penalty`), which joins the main
  comparison (tables, and the claims' "explicit penalty ≈ jitter" equivalence claims).

Every run trains until validation PSNR stops improving (``patience`` epochs without a gain above
``min_delta`` dB) within the preset's epoch budget; ``results.json`` records for each run whether it
stopped on that plateau or ran out of budget.  The main GD runs keep ``snapshots`` checkpoints along
training, whose curvature gives tr H_k and λ_max against epoch.

Runs live in ``DIR/runs/<name>``.  A finished run is reused (its config must equal the plan's, else the
experiment stops with one line naming the run), an interrupted one resumes from its last epoch, and each
run's evaluation and curvature are cached beside it (``evaluation.json``, ``curvature.json``), so an
interrupted experiment continues where it stopped.  One progress bar covers the whole plan.

Statistics (each table says which):

* cells ``mean ± h`` over seeds: the mean over seeds of each run's mean over the test samples, ``h`` the
  half-width of the 95 % t-interval over seeds (the seed-to-seed spread; none with one seed);
* paired differences to MSE: per seed, the mean over the *same* test samples of (strategy − MSE of the same
  architecture and seed); then mean and 95 % t-interval over seeds.  Verdicts follow these seed-level
  intervals;
* curvature: Σ_{k=1}^{K-1} tr H_k per sample (exact dense Hessians on the toy task), averaged over samples,
  then over seeds as above.

The package: :mod:`~landscape.experiment.plan` (the runs and their training configs, from the experiment
preset: :func:`landscape.presets.experiment_preset`), :mod:`~landscape.experiment.run` (the runner, its items
and caches) and :mod:`~landscape.experiment.tables` (the tables, ``results.md``, ``report.html`` and the
figures, pure functions of the record).  Every public name of the three is importable from here.
"""

from __future__ import annotations

from landscape.experiment.plan import (
    ABLATIONS,
    MAIN,
    PRESETS,
    RunSpec,
    main_activation,
    main_sigma,
    matched_absolute_sigma,
    plan_experiment,
    preset_seeds,
    train_config,
)
from landscape.experiment.run import EXPERIMENT_OWNER, check_experiment_folder, run_experiment
from landscape.experiment.tables import (
    PAPER_NUMBERS,
    build_tables,
    curvature_note,
    figure_sections,
    pattern_paragraph,
    results_html,
    results_markdown,
    stop_reason,
    t_interval,
)

__all__ = [
    "PRESETS",
    "ABLATIONS",
    "MAIN",
    "RunSpec",
    "plan_experiment",
    "preset_seeds",
    "main_activation",
    "main_sigma",
    "train_config",
    "matched_absolute_sigma",
    "EXPERIMENT_OWNER",
    "check_experiment_folder",
    "run_experiment",
    "PAPER_NUMBERS",
    "t_interval",
    "stop_reason",
    "build_tables",
    "results_markdown",
    "curvature_note",
    "pattern_paragraph",
    "results_html",
    "figure_sections",
]
