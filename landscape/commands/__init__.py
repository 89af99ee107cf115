"""The sub-commands of ``landscape``: one module each, exposing ``register(subparsers)`` (its parser, with
``func`` set to its ``run(args)``).  :data:`COMMANDS` names them with their one-line help, so
``landscape --help`` lists them without importing any (a command's module, and torch with it, is imported
only when that command runs or prints its own help)."""

#: sub-command name -> its one-line help; the order is the order of ``landscape --help``
COMMANDS: dict[str, str] = {
    "demo": "train an MSE and an SGD-jittered model on the toy denoising task, evaluate both, measure their iterate-space curvature and write an HTML report",
    "train": "train an unrolled network on a task with one training strategy",
    "evaluate": "evaluate checkpoints in-distribution, on every OOD shift, under random and PGD perturbations",
    "hessian": "curvature (top eigenvalues, trace, spectral density) of the loss at the unrolled iterates",
    "slice": "a 1-D or 2-D loss slice around an iterate x_k (or around theta) of one checkpoint",
    "analyze": "curvature along the unrolled path, loss slices and robustness of checkpoints; writes analysis.json + report.html",
    "claims": "judge the paper's claims (flatness, penalty, robustness, accuracy) with intervals over samples and seeds",
    "report": "re-render or merge saved analysis.json / hessian records into one HTML report (no recomputation)",
    "experiment": "train, evaluate and analyse every strategy of the paper on one task (tables, report, claims)",
}
