"""landscape: SGD-jittered unrolled networks for inverse problems and the curvature of their loss
with respect to the intermediate iterates x_k.

The public API, grouped by job (``help(landscape)`` or ``dir(landscape)`` lists it; every name is the
object defined in the module named beside it, so its docstring is the reference):

* **Physics and data** — ``Denoising``, ``Deconvolution``, ``SingleCoilMRI``, ``adjointness_gap``;
  ``make_task``, ``task_from_config``, ``TASKS``, ``load_fastmri``.
* **Models and training** — ``ModelConfig``, ``RegularizerConfig``, ``JitterConfig``, ``JITTER_MODES``,
  ``UnrolledGD``, ``UnrolledProxGD``, ``Trajectory``, ``build_model``; ``STRATEGIES``, ``strategy_options``,
  ``TrainConfig``, ``make_train_config``, ``Trainer``; the jitter's penalty made explicit, ``noise_penalty``
  (second-order Taylor mode, ``taylor2``).
* **Checkpoints** — ``load_checkpoint``, ``save_checkpoint``, ``LoadedCheckpoint``, ``toy_checkpoint``.
* **The solver protocol** (anything with ``n_iter``, ``initial(y)``, ``step(x, y, k)``) — ``as_solver``,
  ``SolverView``, ``FunctionSolver``; ``DeepinvSolver``, ``from_deepinv`` (deepinv's unfolded models; the
  ``deepinv`` extra).
* **Curvature** (one pipeline) — ``analyze_iterates``, ``CurvatureSettings``, ``IterateCurvature``; the
  estimators ``lanczos``, ``lanczos_both_ends``, ``eigsh``, ``hutchinson``, ``hutchpp``, ``estimate_trace``,
  ``hutchinson_diagonal``, ``slq``, ``spectral_density`` and their results ``Eigenpairs``, ``Estimate``,
  ``Diagonal``, ``Density``; operators
  ``make_iterate_hvp``, ``make_param_hvp``; loss slices ``input_slice``, ``parameter_slice``.
* **Evaluation** — ``evaluate_checkpoints`` (``landscape.evaluate.evaluate``: the name ``evaluate`` is the
  module's), ``EvalConfig``, ``format_table``, ``robustness_curve``; ``PGDConfig``,
  ``pgd_attack``, ``random_perturbation``; ``psnr``, ``ssim``, ``mse``.
* **Studies** — ``analyze_checkpoints``, ``analyze_loaded``; ``check_claims``, ``ClaimsSettings``,
  ``ClaimsResult``, ``judge_claims``, ``rejudge``, ``merge_claims``, ``penalty_check``; ``run_experiment``; statistics
  ``paired_interval``, ``seed_interval``, ``verdict``.
* **Figures and reports** — ``figures`` (the figure builders, a module), ``analysis_figures``,
  ``render_report``, ``write_report``, ``merge_results``, ``claims_figure``, ``write_claims_html``.
* **Notebooks** — ``setup``, ``show``, ``fast``.

Names load on first use (PEP 562): ``import landscape`` and ``landscape --help`` import no torch, and
``landscape.viz.figures`` no plotly until a figure is built.  The map below is the whole front door; the
package's own modules import each other at their tops, in the layers docs/CONTRACTS.md lists.
"""

import importlib

__version__ = "0.1.0"

#: job -> {public name: the module that defines it}.  ``__all__`` and ``dir(landscape)`` come from it.
API: dict[str, dict[str, str]] = {
    "physics and data": {
        "Denoising": "landscape.physics",
        "Deconvolution": "landscape.physics",
        "SingleCoilMRI": "landscape.physics",
        "adjointness_gap": "landscape.physics",
        "make_task": "landscape.data",
        "task_from_config": "landscape.data",
        "TASKS": "landscape.data",
        "load_fastmri": "landscape.data.fastmri",
    },
    "models and training": {
        "ModelConfig": "landscape.models",
        "RegularizerConfig": "landscape.models",
        "UnrolledGD": "landscape.models",
        "UnrolledProxGD": "landscape.models",
        "Trajectory": "landscape.models",
        "build_model": "landscape.models",
        "JitterConfig": "landscape.jitter",
        "JITTER_MODES": "landscape.jitter",
        "STRATEGIES": "landscape.strategies",
        "strategy_options": "landscape.strategies",
        "TrainConfig": "landscape.config",
        "make_train_config": "landscape.train",
        "Trainer": "landscape.train",
        "noise_penalty": "landscape.penalty",
        "taylor2": "landscape.taylor",
    },
    "checkpoints": {
        "load_checkpoint": "landscape.checkpoint",
        "save_checkpoint": "landscape.checkpoint",
        "LoadedCheckpoint": "landscape.checkpoint",
        "toy_checkpoint": "landscape.examples",
    },
    "solver protocol": {
        "as_solver": "landscape.solver",
        "SolverView": "landscape.solver",
        "FunctionSolver": "landscape.solver",
        "DeepinvSolver": "landscape.adapters",
        "from_deepinv": "landscape.adapters",
    },
    "curvature": {
        **{
            n: "landscape.curvature"
            for n in (
                "analyze_iterates",
                "CurvatureSettings",
                "IterateCurvature",
                "lanczos",
                "lanczos_both_ends",
                "eigsh",
                "hutchinson",
                "hutchpp",
                "estimate_trace",
                "hutchinson_diagonal",
                "slq",
                "spectral_density",
                "Eigenpairs",
                "Estimate",
                "Density",
                "Diagonal",
                "make_iterate_hvp",
                "make_param_hvp",
            )
        },
        "input_slice": "landscape.curvature.slices",
        "parameter_slice": "landscape.curvature.slices",
    },
    "evaluation": {
        "evaluate_checkpoints": "landscape.evaluate",
        "EvalConfig": "landscape.evaluate",
        "format_table": "landscape.evaluate",
        "robustness_curve": "landscape.evaluate",
        "PGDConfig": "landscape.attacks",
        "pgd_attack": "landscape.attacks",
        "random_perturbation": "landscape.attacks",
        "psnr": "landscape.metrics",
        "ssim": "landscape.metrics",
        "mse": "landscape.metrics",
    },
    "studies": {
        "analyze_checkpoints": "landscape.survey",
        "analyze_loaded": "landscape.survey",
        **{
            n: "landscape.claims"
            for n in (
                "check_claims",
                "ClaimsSettings",
                "ClaimsResult",
                "judge_claims",
                "rejudge",
                "merge_claims",
                "penalty_check",
            )
        },
        "run_experiment": "landscape.experiment",
        "paired_interval": "landscape.stats",
        "seed_interval": "landscape.stats",
        "verdict": "landscape.stats",
    },
    "figures and reports": {
        "figures": "landscape.viz.figures",
        "analysis_figures": "landscape.viz.report",
        "render_report": "landscape.viz.report",
        "write_report": "landscape.viz.report",
        "merge_results": "landscape.records",
        "claims_figure": "landscape.viz.claims_report",
        "write_claims_html": "landscape.viz.claims_report",
    },
    "notebooks": {
        "setup": "landscape.viz.notebook",
        "show": "landscape.viz.notebook",
        "fast": "landscape.viz.notebook",
    },
}

_WHERE = {name: module for group in API.values() for name, module in group.items()}

__all__ = ["__version__", *_WHERE]


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'landscape' has no attribute {name!r}")
    if module.rsplit(".", 1)[-1] == name:  # a module offered by name (figures: landscape.viz.figures)
        return importlib.import_module(module)
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
