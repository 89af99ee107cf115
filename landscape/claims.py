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
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from landscape.attacks import PGDConfig, pgd_attack, random_perturbation
from landscape.checkpoint import LoadedCheckpoint, load_checkpoint, versions
from landscape.curvature import analyze_iterates, estimate_trace
from landscape.curvature.operators import (
    make_regularizer_hvp,
    make_regularizer_jacobian,
    regularizer_input,
    residual_weight,
)
from landscape.curvature.settings import CurvatureSettings
from landscape.errors import check
from landscape.executor import current_executor
from landscape.jitter import JITTER_MODES, JitterConfig
from landscape.metrics import score
from landscape.models import clone_model
from landscape.progress import progress_bar
from landscape.seeding import monte_carlo_seed
from landscape.stats import (
    TOO_FEW_SEEDS,
    VERDICTS,
    Interval,
    LinkTest,
    link_verdict,
    mc_ratio_interval,
    paired_interval,
    seed_interval,
    seed_permutation_test,
    t_quantile,
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

FORMAT = "landscape-claims"
#: Rules whose scale is one max over the training batch: their "as trained" penalty needs a training batch.
BATCH_MAX_MODES = ("paper", "paper-clean-path")
FORMAT_VERSION = 1


# -- settings -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClaimsSettings:
    """What :func:`check_claims` measures and how much it spends.

    ``n_curvature`` ID samples (and ``n_ood_curvature`` per OOD split, at ``ood_iterates``) get the
    Hessian analysis; ``n_eval`` samples per split the accuracy / robustness / attack numbers.
    ``sigmas``: the σ of the penalty check (in each rule's own units).  ``margin_db``: the non-inferiority
    margin of the accuracy claim; ``expansion_margin``: the relative tolerance of the expansion claim;
    ``equivalence_db`` and ``equivalence_ratio``: the bands of the "explicit penalty ≈ jitter" claims (a
    ``curvature-penalty`` group against the ``sgd-jitter`` group of the same model, σ and rule).  All margins
    are fixed before any measurement and recorded.  ``curvature`` are the settings of the one
    curvature pipeline (:func:`landscape.curvature.analyze_iterates`), its defaults unless given; its seed is
    ``seed``.
    """

    n_curvature: int = 4
    n_ood_curvature: int = 4
    ood_iterates: str = "all"
    n_eval: int = 64
    sigmas: tuple[float, ...] = (0.025, 0.05, 0.1)
    mc_pairs: int = 512
    mc_dtype: str = "float32"  # the Monte Carlo runs in this dtype (clean loss too, so no bias between them)
    n_directions: int = 8
    attack: bool = True
    attack_steps: int | None = None  # PGD steps of the attack claim; None: the run's evaluation config's (20)
    curvature: CurvatureSettings = field(default_factory=CurvatureSettings)  # the pipeline's shared defaults
    regularizer_probes: int = 16
    level: float = 0.95
    n_perm: int = 9999  # random seed permutations of the link test when S! is larger (else all of them)
    margin_db: float = 0.1
    expansion_margin: float = 0.1
    equivalence_db: float = 0.1  # "explicit penalty ≈ jitter": |Δ PSNR| ≤ this, in dB
    equivalence_ratio: float = 0.2  # ... and Σ‖H_k‖_F (penalty / jitter) within 1 ± this
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "sigmas", tuple(float(s) for s in self.sigmas))
        if isinstance(self.curvature, dict):
            object.__setattr__(self, "curvature", CurvatureSettings.from_dict(self.curvature))
        for name in ("n_curvature", "n_eval", "mc_pairs", "n_directions", "n_perm"):
            v = getattr(self, name)
            check(isinstance(v, int) and v >= 1, f"{name}={v!r}: expected an integer >= 1")
        check(self.attack_steps is None or (isinstance(self.attack_steps, int) and self.attack_steps >= 1),
              f"attack_steps={self.attack_steps!r}: expected an integer >= 1, or None for the run's own")
        check(isinstance(self.n_ood_curvature, int) and self.n_ood_curvature >= 0,
              f"n_ood_curvature={self.n_ood_curvature!r}: expected an integer >= 0")
        check(len(self.sigmas) >= 1 and all(math.isfinite(s) and s > 0 for s in self.sigmas),
              f"sigmas={self.sigmas!r}: expected one or more numbers > 0")
        check(0 < self.level < 1, f"level={self.level!r}: expected a number in (0, 1)")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sigmas"] = list(self.sigmas)
        d["curvature"] = self.curvature.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClaimsSettings:
        d = dict(d)
        d.pop("n_boot", None)  # results saved when seed intervals were percentile bootstraps
        # results saved before the claims took the shared curvature settings kept these fields flat
        old = {k: d.pop(k) for k in ("top_k", "bottom_k", "trace_rtol", "trace_max_matvecs", "eig_tol", "backend")
               if k in d}
        if old and "curvature" not in d:
            d["curvature"] = {**old, "method": "estimate"}
        return cls(**{**d, "sigmas": tuple(d.get("sigmas", cls.sigmas))})


# -- statistics: every interval and verdict rule comes from landscape.stats ---------------------
def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation (average ranks for ties; NaN when either side is constant or < 3 values)."""
    from scipy import stats as sps

    if len(x) < 3:
        return math.nan
    return float(sps.spearmanr(x, y).statistic)


# -- results ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Claim:
    """One hypothesis for one comparison: its quantity, both intervals and the verdict."""

    name: str
    hypothesis: str
    quantity: str
    group: str
    baseline: str
    kind: str
    paired: Interval | None
    seed_level: Interval | None
    verdict: str
    basis: str
    margin: float = 0.0
    note: str = ""
    test: LinkTest | None = None  # the link claims' seed-permutation test (they have no interval)
    n_seeds: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["paired"] = None if self.paired is None else self.paired.to_dict()
        d["seed_level"] = None if self.seed_level is None else self.seed_level.to_dict()
        d["test"] = None if self.test is None else self.test.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Claim:
        d = dict(d)
        d["paired"] = Interval.from_dict(d.get("paired"))
        d["seed_level"] = Interval.from_dict(d.get("seed_level"))
        d["test"] = LinkTest.from_dict(d.get("test"))
        return cls(**d)


@dataclass(frozen=True)
class ClaimsResult:
    """What :func:`check_claims` returns: per-checkpoint measurements, the penalty check and the claims."""

    settings: ClaimsSettings
    checkpoints: tuple[dict[str, Any], ...]
    groups: tuple[dict[str, Any], ...]
    claims: tuple[Claim, ...]
    reference_jitter: dict[str, Any]
    notes: tuple[str, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)

    def claim(self, name: str, group: str | None = None) -> Claim:
        """The claim called ``name`` (for ``group`` when given); KeyError if absent."""
        for c in self.claims:
            if c.name == name and (group is None or c.group == group):
                return c
        raise KeyError(f"no claim {name!r}" + (f" for group {group!r}" if group else ""))

    def verdicts(self) -> dict[str, str]:
        """``{'name | group': verdict}`` for every claim."""
        return {f"{c.name} | {c.group}": c.verdict for c in self.claims}

    def table(self) -> str:
        """Plain-text verdict table: claim, group, seed-level and paired intervals, verdict."""
        rows = [("claim", "group", "seed-level", "paired", "verdict")]
        for c in self.claims:
            sl = str(c.seed_level) if c.seed_level else (
                f"rho {c.test.statistic if c.test.statistic is None else round(c.test.statistic, 3)}, "
                f"p {min(c.test.p_greater, c.test.p_less):.3g}" if c.test else "-")
            rows.append((c.name, c.group, sl, str(c.paired) if c.paired else "-", c.verdict))
        w = [max(len(r[i]) for r in rows) for i in range(5)]
        return "\n".join("  ".join(x.ljust(w[i]) for i, x in enumerate(r)) for r in rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "settings": self.settings.to_dict(),
            "checkpoints": list(self.checkpoints),
            "groups": list(self.groups),
            "claims": [c.to_dict() for c in self.claims],
            "reference_jitter": self.reference_jitter,
            "notes": list(self.notes),
            "info": self.info,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, as_saved: bool = False) -> ClaimsResult:
        """The result ``d`` holds.  A result saved under the old percentile-bootstrap rules is re-judged from
        its stored measurements (:func:`rejudge`, with a note saying so) unless ``as_saved``, which keeps its
        old verdicts, for showing what changed (``theory/rejudge_main.py``)."""
        check(d.get("format") == FORMAT, f"not a claims result (format={d.get('format')!r})")
        check(d.get("format_version") == FORMAT_VERSION,
              f"claims format_version={d.get('format_version')!r}: this version reads {FORMAT_VERSION}")
        result = cls(
            settings=ClaimsSettings.from_dict(d["settings"]),
            checkpoints=tuple(d["checkpoints"]),
            groups=tuple(d["groups"]),
            claims=tuple(Claim.from_dict(c) for c in d["claims"]),
            reference_jitter=d["reference_jitter"],
            notes=tuple(d.get("notes", ())),
            info=d.get("info", {}),
        )
        if not as_saved and _judged_by_bootstrap(d):  # no verdict may rest on a percentile bootstrap over a few seeds
            judged = rejudge(result)
            note = ("Re-judged on load: this result was saved when seed-level intervals were percentile "
                    "bootstraps over seeds; its verdicts now follow this version's rules, from its stored "
                    "measurements (nothing re-measured).")
            result = replace(judged, notes=(*judged.notes, note))
        return result


def _judged_by_bootstrap(d: dict[str, Any]) -> bool:
    """Whether a saved claims result's verdicts came from the old percentile-bootstrap rules."""
    methods = [str((c.get("seed_level") or {}).get("method", "")) for c in d.get("claims", ())
               if isinstance(c, dict) and isinstance(c.get("seed_level"), dict)]
    return "n_boot" in (d.get("settings") or {}) or any(m.startswith("percentile bootstrap") for m in methods)


# -- measurements on one model -----------------------------------------------------------------
def _clean_path(model, y: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        xs = [model.initial(y)]
        for k in range(model.n_iter):
            xs.append(model.step(xs[-1], y, k))
    return xs


def _unit_scales(model, path: list[torch.Tensor], y: torch.Tensor, mode: str) -> np.ndarray:
    """``|s_k|`` at σ = 1 on the clean path, per sample: shape (B, K) (the scale is linear in σ).

    The ``paper`` rule's max is taken per sample here (the rule for a batch of one); :func:`trained_unit_scales`
    gives the scale as training draws it, one max over a training batch.
    """
    jc = JitterConfig(1.0, mode)
    B = y.shape[0]
    out = np.zeros((B, model.n_iter))
    with torch.no_grad():
        for k in range(model.n_iter):
            s = model.noise_scale(path[k], y, k, jitter=jc, per_sample=True)
            s = torch.as_tensor(s, dtype=torch.float64).abs().flatten()
            out[:, k] = (s.expand(B) if s.numel() == 1 else s).cpu().numpy()
    return out


def trained_unit_scales(model, y_batch: torch.Tensor, mode: str, rows: int = 1) -> np.ndarray:
    """``|s_k|`` at σ = 1 that training gives the first ``rows`` rows of ``y_batch`` (a batch of the training batch
    size), on the clean path: shape (rows, K).  For the ``paper`` rule this is one max over the whole batch
    tensor, as in training (:func:`landscape.jitter.jitter_scale` with ``per_sample=False``), so every row has
    the same scale; for rules without a batch max it equals the per-sample scale.  Its square times σ² is the
    variance of the noise training draws for that batch at step k (exactly at k = 0; on the clean path, i.e. to
    first order in σ, after it)."""
    jc = JitterConfig(1.0, mode)
    path = _clean_path(model, y_batch)
    B = y_batch.shape[0]
    out = np.zeros((rows, model.n_iter))
    with torch.no_grad():
        for k in range(model.n_iter):
            s = torch.as_tensor(model.noise_scale(path[k], y_batch, k, jitter=jc, per_sample=False),
                                dtype=torch.float64).abs().flatten()
            out[:, k] = (s.expand(B) if s.numel() == 1 else s)[:rows].cpu().numpy()
    return out


@dataclass(frozen=True)
class TrainingBatches:
    """Batches as training forms them, holding the analysed samples: ``batches[i]`` has ``rows[i]`` analysed
    samples in its leading rows (in order), then training measurements up to the batch size."""

    batches: tuple[torch.Tensor, ...]
    rows: tuple[int, ...]

    @property
    def size(self) -> int:
        return int(self.batches[0].shape[0])

    def scales(self, model, mode: str) -> np.ndarray:
        """(B, K): the trained ``|s_k|`` at σ = 1 of each analysed sample (:func:`trained_unit_scales`)."""
        return np.concatenate([trained_unit_scales(model, b, mode, r) for b, r in zip(self.batches, self.rows)])


def training_batches(y: torch.Tensor, train_y: torch.Tensor, batch_size: int, *, seed: int,
                     sample_ids: Sequence[int]) -> TrainingBatches:
    """Batches of ``batch_size`` measurements as training forms them, holding the analysed samples ``y``: the
    samples fill the leading rows of as few batches as they fit in (all in one when there are at most
    ``batch_size``), and each batch is topped up with training measurements drawn without replacement (seeded by
    ``seed`` and the batch's first sample id).  Every draw then jitters a whole batch, so one batch serves all
    its analysed samples."""
    n = train_y.shape[0]
    bs = max(1, int(batch_size))
    ids = list(sample_ids)
    check(len(ids) == y.shape[0], f"sample_ids has {len(ids)} entries: expected one per sample ({y.shape[0]})")
    out, rows = [], []
    for start in range(0, y.shape[0], bs):
        c = min(bs, y.shape[0] - start)
        m = max(0, min(bs - c, n))
        g = torch.Generator().manual_seed(monte_carlo_seed(seed, int(ids[start]), 41))
        idx = torch.randperm(n, generator=g)[:m]
        out.append(torch.cat([y[start : start + c], train_y[idx].to(y)], 0))
        rows.append(c)
    return TrainingBatches(tuple(out), tuple(rows))


def _steps(model) -> np.ndarray:
    with torch.no_grad():
        return np.array([float(model.step_size(k)) for k in range(model.n_iter)])


def penalty_along_path(model: Any, x_true: torch.Tensor, y: torch.Tensor, res: Any, jitter: Any) -> dict[str, Any]:
    r"""The expansion's penalty per step, :math:`P_k = \tfrac12\eta_k^2 s_k^2\,\mathrm{tr}\,H_{k+1}`, per sample.

    ``res`` is the :class:`~landscape.curvature.IterateCurvature` of these samples (traces at 1..K), ``jitter``
    the noise rule to evaluate (a :class:`~landscape.jitter.JitterConfig`; the scale :math:`s_k` is taken on
    the clean path, per sample, through the solver's ``noise_scale``).  Returns mean and standard error over
    the samples of each :math:`P_k` and of their sum (the predicted excess of the jittered loss).
    """
    path = _clean_path(model, y)
    unit = _unit_scales(model, path, y, jitter.mode)  # (B, K) at sigma = 1
    eta = _steps(model)
    K = model.n_iter
    sig = np.array([jitter.sigma_at(k, K) for k in range(K)])
    ids = [s.sample for s in res.at(res.iterates[0])]
    tr = np.array([[next(s for s in res.at(k + 1) if s.sample == i).scalars()["trace"] for k in range(K)]
                   for i in ids])  # (B, K): tr H_{k+1}
    pen = 0.5 * eta[None, :] ** 2 * (sig[None, :] * unit) ** 2 * tr
    n = pen.shape[0]

    def se(a: np.ndarray) -> Any:
        return (a.std(axis=0, ddof=1) / math.sqrt(n)) if n > 1 else np.full(a.shape[1:], math.nan)

    tot = pen.sum(1)
    return {"k": list(range(K)), "mean": pen.mean(0).tolist(), "stderr": np.atleast_1d(se(pen)).tolist(),
            "total": float(tot.mean()), "total_stderr": float(tot.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan,
            "rule": jitter.to_dict(), "n": n,
            "formula": "P_k = 1/2 eta_k^2 s_k^2 tr H_{k+1}, s_k on the clean path (per sample); stderr over samples"}


def _jittered_rows(mc, yb: torch.Tensor, eps: torch.Tensor, jc, rows: int) -> torch.Tensor:
    """x_K of the first ``rows`` rows of the batch ``yb`` under each draw ``eps`` (P, K, B, ...): one batch per
    draw, so a batch-max rule takes its max over that draw's batch, as in training (vmap over draws in chunks of
    4, a loop if the model does not vmap; on the toy CNN at batch 64 a single vmap over 256 draws is 3× slower
    than chunks of 4, its activations falling out of cache)."""
    def one(e: torch.Tensor) -> torch.Tensor:
        return mc.jittered(yb, [e[k] for k in range(e.shape[0])], jitter=jc, per_sample=False)[:rows]

    try:
        return torch.func.vmap(one, chunk_size=4)(eps)
    except Exception:  # noqa: BLE001 - a model whose forward does not vmap: the same draws one at a time
        return torch.stack([one(e) for e in eps])


def penalty_check(
    model,
    x_true: torch.Tensor,
    y: torch.Tensor,
    traces: np.ndarray,
    trace_se: np.ndarray,
    *,
    mode: str,
    sigmas: Sequence[float],
    pairs: int = 4096,
    seed: int = 0,
    sample_ids: Sequence[int] | None = None,
    level: float = 0.95,
    mc_dtype: torch.dtype | None = None,
    batches: TrainingBatches | None = None,
) -> list[dict[str, Any]]:
    r"""Monte-Carlo jittered-loss excess against the Hessian-trace prediction, one row per σ.

    ``traces[b, j]`` is :math:`\operatorname{tr}H_{j+1}` of sample ``b`` on the clean path (j = 0..K−1) and
    ``trace_se`` its standard error.  The excess uses antithetic pairs: each draw ε gives
    :math:`\tfrac12(J(\varepsilon) + J(-\varepsilon)) - L_0`, which cancels the first-order term exactly.
    Draws are shared across σ (common random numbers) and seeded by ``(seed, sample id, mode)``.

    Without ``batches`` each sample is jittered on its own (the ``paper`` rule's max per sample, the rule for a
    batch of one).  With ``batches`` (:func:`training_batches`, the samples in their leading rows) every draw
    jitters a whole training batch as training does, the scale is the training batch's
    (:func:`trained_unit_scales`), and each sample's excess is its own row's.  Samples that share a batch share
    its draws, so the standard error of the total is taken over the draws' per-batch sums.

    Returns per σ: per-sample excess ± SE, prediction ± SE, and the ratio of their sums with a Monte-Carlo
    interval (the draws and the trace estimator, samples fixed; delta method).  ``mc_dtype`` runs the
    Monte Carlo (and its clean loss) in another dtype than the model's, e.g. float32 for speed.
    """
    B = y.shape[0]
    ids = list(range(B)) if sample_ids is None else list(sample_ids)
    check(batches is None or sum(batches.rows) == B, f"batches hold {0 if batches is None else sum(batches.rows)} "
          f"analysed samples: expected {B}")
    eta = _steps(model)
    unit = (_unit_scales(model, _clean_path(model, y), y, mode) if batches is None
            else batches.scales(model, mode))  # (B, K)
    coef = 0.5 * eta[None, :] ** 2 * unit**2  # prediction per σ²: sum_j coef_j tr_j
    K = model.n_iter
    mc = model if mc_dtype is None else clone_model(model).to(mc_dtype)
    dt = mc_dtype or x_true.dtype
    xm, ym = x_true.to(dt), y.to(dt)
    with torch.no_grad():
        clean = (mc(ym) - xm).pow(2).flatten(1).sum(1).double().cpu().numpy()
    excess = np.zeros((len(sigmas), B))
    excess_se = np.zeros((len(sigmas), B))
    total_var = np.zeros(len(sigmas))  # Var of the total's MC mean: groups that share draws add as one
    # groups of samples that share draws: one sample each (alone), or the analysed rows of one batch
    groups = ([(b, 1, None) for b in range(B)] if batches is None else
              [(sum(batches.rows[:i]), r, yb) for i, (yb, r) in enumerate(zip(batches.batches, batches.rows))])
    for start, r, batch in groups:
        gen = torch.Generator().manual_seed(monte_carlo_seed(seed, ids[start], JITTER_MODES.index(mode), 7))
        xb = xm[start : start + r]
        if batch is None:
            yb = ym[start : start + 1].expand(pairs, *y.shape[1:]).contiguous()
            eps = [torch.randn(yb.shape, generator=gen, dtype=torch.float64).to(device=yb.device, dtype=dt)
                   for _ in range(K)]
        else:
            yb = batch.to(dt)
            e_all = torch.randn((pairs, K, *yb.shape), generator=gen, dtype=torch.float64).to(device=yb.device, dtype=dt)
        for i, s in enumerate(sigmas):
            jc = JitterConfig(float(s), mode)
            with torch.no_grad():
                if batch is None:
                    outp = mc.jittered(yb, eps, jitter=jc, per_sample=True)[:, None]
                    outm = mc.jittered(yb, [-e for e in eps], jitter=jc, per_sample=True)[:, None]
                else:
                    outp = _jittered_rows(mc, yb, e_all, jc, r)
                    outm = _jittered_rows(mc, yb, -e_all, jc, r)
                jp = (outp - xb).pow(2).flatten(2).sum(2)  # (pairs, r)
                jm = (outm - xb).pow(2).flatten(2).sum(2)
            a = (0.5 * (jp + jm)).double().cpu().numpy() - clean[None, start : start + r]
            excess[i, start : start + r] = a.mean(0)
            excess_se[i, start : start + r] = a.std(0, ddof=1) / math.sqrt(pairs)
            total_var[i] += a.sum(1).var(ddof=1) / pairs
    scale = "per sample" if batches is None else f"batch of {batches.size} (as trained)"
    rows = []
    for i, s in enumerate(sigmas):
        pred = s**2 * (coef * traces).sum(1)
        pred_se = s**2 * np.sqrt(((coef * trace_se) ** 2).sum(1))
        e_sum, e_se = excess[i].sum(), math.sqrt(total_var[i])
        p_sum, p_se = pred.sum(), math.sqrt((pred_se**2).sum())
        ratio = mc_ratio_interval(float(e_sum), float(e_se), float(p_sum), float(p_se), level,
                                  over="Monte-Carlo draws and trace estimator, samples and θ fixed", n=B)
        rows.append({
            "mode": mode, "scale": scale, "sigma": float(s), "eta_s_max": float((eta[None, :] * unit * s).max()),
            "excess": excess[i].tolist(), "excess_se": excess_se[i].tolist(),
            "predicted": pred.tolist(), "predicted_se": pred_se.tolist(),
            "excess_total": float(e_sum), "excess_total_se": float(e_se),
            "predicted_total": float(p_sum), "predicted_total_se": float(p_se),
            "ratio": ratio.to_dict(), "clean_loss": clean.tolist(), "pairs": int(pairs),
        })
    return rows


def _coordinates(entry, model, xc, yc, K, ref_mode, ref_sigma, st, batches) -> tuple[np.ndarray, np.ndarray]:
    """Noise coordinates ½η_k²s_k² tr H_{k+1} (reference rule) and the regularizer's ‖J_R‖_F² and
    residual-weighted trace at every k, per sample, into ``entry``; returns (tr H_{k+1}, its s.e.).

    ``noise_coordinates`` take s_k as training draws it (one max over a training batch, ``batches``);
    ``noise_coordinates_per_sample`` the per-sample max (a batch of one), a second, labelled quantity."""
    path = _clean_path(model, yc)
    curv = entry["curvature"]
    tr = np.array([[v if v is not None else math.nan for v in row] for row in curv["trace"]])
    tse = np.array([[v if v is not None else 0.0 for v in row] for row in curv["trace_se"]])
    kpos = {k: i for i, k in enumerate(curv["iterates"])}
    tr_next = tr[:, [kpos[k] for k in range(1, K + 1)]]
    tse_next = tse[:, [kpos[k] for k in range(1, K + 1)]]
    eta = _steps(model)
    unit = _unit_scales(model, path, yc, ref_mode)
    trained = batches.scales(model, ref_mode)
    entry["noise_coordinates"] = (0.5 * eta[None, :] ** 2 * (ref_sigma * trained) ** 2 * tr_next).tolist()
    entry["noise_coordinates_per_sample"] = (0.5 * eta[None, :] ** 2 * (ref_sigma * unit) ** 2 * tr_next).tolist()
    entry["noise_batch_size"] = batches.size
    jr, rw = [], []
    for b in range(yc.shape[0]):
        jrow, rrow = [], []
        for k in range(K):
            a, c = _regularizer_curvature(model, path[k][b : b + 1], yc[b : b + 1], xc[b : b + 1], k,
                                          st.regularizer_probes, monte_carlo_seed(st.seed, b, k, 31))
            jrow.append(a)
            rrow.append(c)
        jr.append(jrow)
        rw.append(rrow)
    entry["regularizer_jacobian_fro2"] = jr
    entry["residual_weighted_trace"] = rw
    return tr_next, tse_next


def _regularizer_curvature(model, x_k, y, x_true, k, probes, seed) -> tuple[float, float]:
    """``(‖J_R‖_F², tr ∇²⟨u, R⟩)`` at iterate ``k`` of one sample (u: the back-propagated residual).

    The only place that touches the regularizer operators, so it is easy to redirect to a solver capability.
    """
    xin = regularizer_input(model, x_k, y, k)
    jf = make_regularizer_jacobian(model, xin, k).frobenius_sq(probes, seed=seed).estimate
    u = residual_weight(model, y, x_true, k)
    op = make_regularizer_hvp(model, xin, u, k, backend="double_backward")
    tr = estimate_trace(op, method="hutchinson", max_matvecs=probes, min_probes=min(probes, 10),
                        block=min(probes, 10), generator=torch.Generator().manual_seed(seed))
    return float(jf), float(tr.estimate)


def _curvature(model, x, y, iterates, st: ClaimsSettings, sample_ids) -> dict[str, Any]:
    """tr H_k, λ_max, λ_min, tr H_k² (= ‖H_k‖_F²) and, when exact, Σ|λ| and the positive and negative parts of
    the trace, per sample and iterate: one call of the curvature pipeline, seeds from sample ids."""
    res = analyze_iterates(model, x_true=x, y=y, iterates=iterates, sample_ids=list(sample_ids),
                           settings=replace(st.curvature, seed=st.seed, bottom_k=max(st.curvature.bottom_k, 1)))
    ks = [int(k) for k in res.iterates]
    names = ("trace", "lambda_max", "lambda_min", "trace_sq", "abs_trace", "trace_pos", "trace_neg")
    per: dict[str, list[list[float | None]]] = {n: [] for n in (*names, "trace_se")}
    for sid in sample_ids:
        rows: dict[str, list[float | None]] = {n: [] for n in per}
        for k in ks:
            (s,) = [sc for sc in res.at(k) if sc.sample == int(sid)]
            sc = s.scalars()
            for n in names:
                rows[n].append(sc.get(n))
            rows["trace_se"].append(float(s.trace.stderr) if s.trace is not None else None)
        for n in per:
            per[n].append(rows[n])
    return {"iterates": ks, **per, "converged": res.converged, "method": res.method, "backend": res.backend}


def _errors(model, x, y) -> dict[str, list[float]]:
    with torch.no_grad():
        xh = model(y)
    s = score(xh, x)
    return {"psnr": s["psnr"].tolist(), "sq_error": (xh - x).pow(2).flatten(1).sum(1).double().cpu().tolist()}


def _measure_checkpoint(ck, ref_mode: str, ref_sigma: float, st: ClaimsSettings, device: str = "cpu") -> dict[str, Any]:
    t0 = time.perf_counter()
    model = clone_model(ck.model).to(device=device, dtype=torch.float64).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    cfg = ck.config
    task = ck.task
    test_seed = int(cfg["test_seed"])
    ev = cfg.get("evaluation") or {}
    own = cfg.get("model", {}).get("jitter", {}) or {}
    own_mode = own.get("mode") if _active(own.get("sigma", 0)) else None
    out: dict[str, Any] = {"splits": {}}
    timings: dict[str, float] = {}

    clock = [time.perf_counter()]

    def lap(name: str) -> None:
        now = time.perf_counter()
        timings[name] = timings.get(name, 0.0) + now - clock[0]
        clock[0] = now

    n_curv = st.n_curvature
    K = model.n_iter
    out["K"] = K
    # the run's own training data: the generalisation gap, and the batches the noise scale is taken over
    train = task.training_set(int(cfg["train_size"]), seed=int(cfg.get("data_seed", cfg.get("seed", 0))),
                              dtype=torch.float64)
    batch_size = int(cfg.get("batch_size", 1))
    out["step_sizes"] = _steps(model).tolist()
    for split in task.splits:
        n = max(st.n_eval, n_curv if split == "id" else st.n_ood_curvature)
        pairs = task.pairs(n, split=split, seed=test_seed, dtype=torch.float64)
        x, y = pairs.x.to(device), pairs.y.to(device)
        entry: dict[str, Any] = {"n_eval": st.n_eval, **_errors(model, x[: st.n_eval], y[: st.n_eval])}
        nc = n_curv if split == "id" else st.n_ood_curvature
        if nc:
            its = "all" if split == "id" else st.ood_iterates
            ids = list(range(nc))
            lap("other")
            entry["curvature"] = _curvature(model, x[:nc], y[:nc], its, st, ids)
            lap("curvature")
        batches = training_batches(y[:nc], train.y.to(device), batch_size, seed=st.seed,
                                   sample_ids=range(nc)) if nc else None
        if split != "id" and nc and set(range(1, K + 1)) <= set(entry["curvature"]["iterates"]):
            _coordinates(entry, model, x[:nc], y[:nc], K, ref_mode, ref_sigma, st, batches)  # noise, regularizer
            lap("regularizer")
        if split == "id":
            xe, ye = x[: st.n_eval], y[: st.n_eval]
            # average-case robustness: directions seeded by the sample index
            eps_r = float((ev.get("random_eps") or [0.1])[0])
            rel = bool(ev.get("relative", True))
            rob = []
            for i in range(xe.shape[0]):
                gen = torch.Generator().manual_seed(monte_carlo_seed(st.seed, i, 23))
                yr = ye[i : i + 1].expand(st.n_directions, *ye.shape[1:]).contiguous()
                d = random_perturbation(yr, eps_r, project=task.physics.project_measurement, relative=rel,
                                        generator=gen)
                with torch.no_grad():
                    rob.append(float((model(yr + d) - xe[i : i + 1]).pow(2).flatten(1).sum(1).mean()))
            entry["robustness"] = {"eps": eps_r, "relative": rel, "n_directions": st.n_directions, "sq_error": rob}
            if st.attack:
                pgd = PGDConfig(eps=float((ev.get("attack_eps") or [0.1])[0]), steps=int(st.attack_steps or ev.get("steps", 20)),
                                step_size=float(ev.get("step_size", 0.1)), relative=rel)
                for p in model.parameters():
                    p.requires_grad_(False)
                delta = pgd_attack(model, ye, xe, pgd, project=task.physics.project_measurement)
                with torch.no_grad():
                    xa = model(ye + delta)
                entry["attack"] = {**pgd.to_dict(), "sq_error": (xa - xe).pow(2).flatten(1).sum(1).tolist(),
                                   "psnr": score(xa, xe)["psnr"].tolist()}
            lap("robustness and attack")
            # noise coordinates at the reference rule, regularizer curvature, and the penalty check
            xc, yc = x[:n_curv], y[:n_curv]
            tr_next, tse_next = _coordinates(entry, model, xc, yc, K, ref_mode, ref_sigma, st, batches)
            lap("regularizer")
            mode = own_mode or ref_mode
            # the rule as trained (a batch max over a training batch), the per-sample variant, absolute noise
            checks = [(mode, batches)] if mode in BATCH_MAX_MODES else []
            checks += [(m, None) for m in dict.fromkeys([mode, "absolute"])]
            entry["penalty"] = [row for m, bs in checks for row in penalty_check(
                model, xc, yc, tr_next, tse_next, mode=m, sigmas=st.sigmas, pairs=st.mc_pairs, seed=st.seed,
                sample_ids=list(range(n_curv)), level=st.level, mc_dtype=getattr(torch, st.mc_dtype), batches=bs)]
            lap("penalty")
        out["splits"][split] = entry
    # generalisation: clean risk on training pairs (the run's own data seed) vs test pairs
    xt, yt = train.x[: st.n_eval].to(device), train.y[: st.n_eval].to(device)
    out["train"] = _errors(model, xt, yt)
    lap("other")
    out["seconds"] = time.perf_counter() - t0
    out["timings"] = timings
    return out


def _active(sigma) -> bool:
    return any(float(v) > 0 for v in sigma) if isinstance(sigma, (list, tuple)) else float(sigma or 0) > 0


# -- grouping and comparisons -------------------------------------------------------------------
def _describe(cfg: dict[str, Any]) -> tuple[str, str, str]:
    """(group key, label, model key) of a run config."""
    strat = dict(cfg.get("strategy", {}))
    model = dict(cfg.get("model", {}))
    model.pop("jitter", None)
    model.pop("signal_shape", None)
    mkey = json.dumps(model, sort_keys=True)
    key = json.dumps({"strategy": strat, "model": model, "task": cfg.get("task")}, sort_keys=True)
    label = strat.get("name", "?")
    if "mode" in strat:
        label += f" ({strat['mode']}, σ={strat.get('sigma')})"
    elif "sigma" in strat:
        label += f" (σ={strat['sigma']})"
    if model.get("learn_step") is False:
        label += ", fixed step"
    return key, label, mkey


def _mean(v) -> float:
    a = np.asarray([x for x in v if x is not None], dtype=np.float64)
    return float(a.mean()) if a.size else math.nan


def _sum_over_k(entry: dict[str, Any], K: int, name: str = "trace", f=None) -> list[float]:
    """Per sample: Σ over the analysed iterates 1 ≤ k ≤ K−1 (the θ-dependent ones) of ``f(name)``."""
    c = entry["curvature"]
    idx = [i for i, k in enumerate(c["iterates"]) if 1 <= k <= K - 1]
    if name not in c:
        return []
    rows = c[name]
    return [math.nan if any(row[i] is None for i in idx) else float(sum((f or float)(row[i]) for i in idx))
            for row in rows]


def _sum_trace(entry: dict[str, Any], K: int) -> list[float]:
    """Per sample: Σ tr H_k over the analysed iterates 1 ≤ k ≤ K−1 (the θ-dependent ones)."""
    return _sum_over_k(entry, K, "trace")


def _mean_over_k(entry, name, K) -> list[float]:
    c = entry["curvature"]
    idx = [i for i, k in enumerate(c["iterates"]) if 1 <= k <= K - 1]
    return [float(np.mean([row[i] for i in idx])) for row in c[name]]


def _quantities(m: dict[str, Any]) -> dict[str, list[float]]:
    """Per-sample quantities a claim compares, keyed by claim name."""
    K = m["K"]
    q: dict[str, list[float]] = {}
    for split, e in m["splits"].items():
        if "curvature" in e:
            q[f"flatness: Σ tr H_k [{split}]"] = _sum_trace(e, K)
            fro = _sum_over_k(e, K, "trace_sq", lambda v: math.sqrt(max(float(v), 0.0)))
            if fro and all(math.isfinite(v) for v in fro):  # sizes of H_k that cannot cancel
                q[f"flatness: Σ ‖H_k‖_F [{split}]"] = fro
            ab = _sum_over_k(e, K, "abs_trace")
            if ab and all(math.isfinite(v) for v in ab):
                q[f"flatness: Σ |λ|(H_k) [{split}]"] = ab
            q[f"flatness: mean λ_max(H_k) [{split}]"] = _mean_over_k(e, "lambda_max", K)
        tag = "id" if split == "id" else f"ood:{split}"
        q[f"accuracy: PSNR [{tag}]"] = e["psnr"]
    for split, e in m["splits"].items():  # ID, and every OOD split whose curvature covers 1..K
        if "noise_coordinates" in e:
            q[f"flatness: Σ noise coordinates [{split}]"] = [float(sum(r)) for r in e["noise_coordinates"]]
            q[f"flatness: Σ ‖J_R‖_F² [{split}]"] = [float(sum(r)) for r in e["regularizer_jacobian_fro2"]]
    idm = m["splits"]["id"]
    q["robustness: E‖x̂(y+e) − x*‖² [id]"] = idm["robustness"]["sq_error"]
    if "attack" in idm:
        q["attack: PSNR under PGD [id]"] = idm["attack"]["psnr"]
    return q


_CLAIM_SPECS = {  # prefix -> (kind, hypothesis)
    "flatness: Σ tr H_k": ("lower", "jittered models are flatter in iterate space: smaller Σ_{k=1}^{K-1} tr H_k "
                           "(the quantity of the penalty; it can cancel, H_k being indefinite)"),
    "flatness: Σ ‖H_k‖_F": ("lower", "jittered models are flatter in a measure that cannot cancel: smaller "
                            "Σ_{k=1}^{K-1} ‖H_k‖_F"),
    "flatness: Σ |λ|(H_k)": ("lower", "jittered models are flatter in a measure that cannot cancel: smaller "
                             "Σ_{k=1}^{K-1} Σ_i |λ_i(H_k)|"),
    "flatness: mean λ_max": ("lower", "jittered models have smaller top eigenvalues λ_max(H_k), 1 ≤ k ≤ K−1"),
    "flatness: Σ noise coordinates": ("lower", "smaller implicit penalty Σ_k ½η_k²s_k² tr H_{k+1} at the reference "
                                      "rule, s_k as trained (one max over a training batch)"),
    "flatness: Σ ‖J_R‖_F²": ("lower", "the regularizer is smoother in its input: smaller Σ_k ‖J_R(x_k)‖_F²"),
    "robustness": ("lower", "Theorem 7.5 (average-case robustness): smaller E‖x̂(y+e) − x*‖² for random e"),
    "accuracy: PSNR [id]": ("noninferior", "no accuracy loss in distribution: Δ PSNR > −margin"),
    "accuracy: PSNR [ood": ("higher", "better out of distribution: Δ PSNR > 0"),
    "attack": ("higher", "better under the PGD attack: Δ PSNR > 0 (the paper's experiments; no theorem)"),
}

ONE_SEED = "one seed: no verdict on the method (the paired interval holds training fixed)"


def _spec(name: str) -> tuple[str, str]:
    for prefix, spec in _CLAIM_SPECS.items():
        if name.startswith(prefix):
            return spec
    raise KeyError(name)


def _compare(name, group, base, q_by_seed_g, q_by_seed_b, st: ClaimsSettings, seeds, kind, hyp, margin=0.0,
             note="") -> Claim:
    # per-sample differences, averaged over the seed pairs (same test samples in every run)
    diffs = np.array([np.asarray(q_by_seed_g[s], float) - np.asarray(q_by_seed_b[s], float) for s in seeds])
    paired = paired_interval(diffs.mean(0), st.level, over=f"{diffs.shape[1]} test samples (difference averaged "
                             f"over {len(seeds)} seed pair(s))")
    seed_lv = seed_interval(diffs.mean(1), st.level, over=f"{len(seeds)} seed pairs (per-seed mean over samples)")
    basis = "seed-level" if len(seeds) >= 2 else ONE_SEED
    v = verdict(seed_lv, kind=kind, margin=margin, n_seeds=len(seeds))
    return Claim(name, hyp, f"{name}: {group} − {base}", group, base, kind, paired, seed_lv, v, basis, margin, note,
                 n_seeds=len(seeds))


def _explicit_vs_jitter_claims(groups: dict[str, list[dict]], st: ClaimsSettings) -> tuple[list[Claim], list[str]]:
    """Issue 23's causal claims: a ``curvature-penalty`` group against the ``sgd-jitter`` group with the same
    model, σ and rule, paired by seed.  Equivalence, not a difference: accuracy (ID, each OOD split, under
    PGD) within ± ``equivalence_db`` dB, flatness (Σ‖H_k‖_F, or Σ tr H_k where the norm was not measured)
    within 1 ± ``equivalence_ratio`` as a per-seed ratio; seed-level t intervals; bands fixed in the settings."""
    claims: list[Claim] = []
    notes: list[str] = []
    for label, members in groups.items():
        strat = members[0]["strategy"]
        if strat.get("name") != "curvature-penalty":
            continue
        twin = {k: v for k, v in strat.items() if k in ("sigma", "mode")}
        jit = next((g for g, ms in groups.items() if ms[0]["strategy"].get("name") == "sgd-jitter"
                    and ms[0]["model_key"] == members[0]["model_key"]
                    and {k: ms[0]["strategy"].get(k) for k in twin} == twin), None)
        if jit is None:
            notes.append(f"group {label!r} has no sgd-jitter group with the same model, sigma and rule: no "
                         "'explicit penalty ≈ jitter' claims")
            continue
        gm = {m["seed"]: m for m in members}
        jm = {m["seed"]: m for m in groups[jit]}
        seeds = sorted(set(gm) & set(jm))
        if not seeds:
            notes.append(f"group {label!r} shares no seed with {jit!r}: no 'explicit penalty ≈ jitter' claims")
            continue
        qg = {s: _quantities(gm[s]) for s in seeds}
        qj = {s: _quantities(jm[s]) for s in seeds}
        common = [n for n in qg[seeds[0]] if all(n in qg[s] and n in qj[s] for s in seeds)]
        hyp = ("the explicit penalty trains models equivalent to jittering's (the Hessian-regularization argument "
               "made causal)")
        for name in common:
            if name.startswith(("accuracy: PSNR", "attack: PSNR")):
                claims.append(_compare(f"explicit ≈ jitter: {name}", label, jit, {s: qg[s][name] for s in seeds},
                                       {s: qj[s][name] for s in seeds}, st, seeds, "equivalent",
                                       f"{hyp}: |Δ PSNR| ≤ {st.equivalence_db:g} dB", st.equivalence_db))
        flat = next((n for n in ("flatness: Σ ‖H_k‖_F [id]", "flatness: Σ tr H_k [id]") if n in common), None)
        if flat is not None:
            ratios = [_mean(qg[s][flat]) / _mean(qj[s][flat]) for s in seeds]
            sl = seed_interval(ratios, st.level, over=f"{len(seeds)} seed pairs (per-seed ratio of sample means)")
            claims.append(Claim(
                f"explicit ≈ jitter: {flat} ratio", f"{hyp}: ratio within 1 ± {st.equivalence_ratio:g}",
                f"{flat}: {label} / {jit} (per seed)", label, jit, "equal", None, sl,
                verdict(sl, kind="equal", margin=st.equivalence_ratio, n_seeds=len(seeds)),
                "seed-level" if len(seeds) >= 2 else ONE_SEED, st.equivalence_ratio, n_seeds=len(seeds)))
    return claims, notes


def _expansion_claims(label: str, members: list[dict[str, Any]], st: ClaimsSettings) -> list[Claim]:
    """The expansion claim for every rule of a group: ratio of MC excess to prediction at each σ.

    It is an identity at fixed θ, so one checkpoint can be judged on its own Monte-Carlo interval; with
    several seeds the verdict follows the t interval over the per-seed ratios (whose spread contains each
    seed's Monte-Carlo error)."""
    out = []
    for i_row, row in enumerate(members[0]["splits"]["id"]["penalty"]):
        ratios = [m["splits"]["id"]["penalty"][i_row]["ratio"] for m in members]
        scale = row.get("scale", "per sample")
        sl = seed_interval([r["estimate"] for r in ratios], st.level,
                           over=f"{len(members)} seeds (per-seed ratio)") if len(members) >= 2 else None
        first = Interval.from_dict(ratios[0])
        if len(members) >= 2:
            basis, v = "seed-level", verdict(sl, kind="equal", margin=st.expansion_margin)
        else:
            basis = "Monte-Carlo, one checkpoint (an identity at fixed θ: a statement about this model)"
            v = verdict(first, kind="equal", margin=st.expansion_margin)
        out.append(Claim(
            f"expansion: MC excess / predicted penalty [{row['mode']}, {scale}, σ={row['sigma']:g}]",
            "the jittered loss equals the clean loss plus Σ_j ½η_j²s_j² tr H_{j+1} (second order in σ)",
            "ratio of summed MC excess to summed prediction over the ID curvature samples", label, "ratio = 1",
            "equal", first if len(members) == 1 else None, sl, v, basis, st.expansion_margin,
            f"max η·s = {row['eta_s_max']:.3g}", n_seeds=len(members)))
    return out


def _generalisation_claim(label, base, gm, bm, seeds, st: ClaimsSettings) -> Claim:
    """Theorem 7.4: generalisation gap (test risk − training risk); test and training samples both paired."""
    gap_g = {s: _mean(gm[s]["splits"]["id"]["sq_error"]) - _mean(gm[s]["train"]["sq_error"]) for s in seeds}
    gap_b = {s: _mean(bm[s]["splits"]["id"]["sq_error"]) - _mean(bm[s]["train"]["sq_error"]) for s in seeds}
    dt = np.mean([np.subtract(gm[s]["splits"]["id"]["sq_error"], bm[s]["splits"]["id"]["sq_error"]) for s in seeds], 0)
    dr = np.mean([np.subtract(gm[s]["train"]["sq_error"], bm[s]["train"]["sq_error"]) for s in seeds], 0)
    m_ = float(dt.mean() - dr.mean())
    se = math.sqrt(dt.var(ddof=1) / dt.size + dr.var(ddof=1) / dr.size)
    h = t_quantile(st.level, min(dt.size, dr.size) - 1) * se
    paired = Interval(m_, m_ - h, m_ + h, st.level, f"{dt.size} test and {dr.size} training samples (paired "
                      f"by sample, averaged over {len(seeds)} seed pair(s))", int(dt.size), "t (Welch-style sum)",
                      "paired")
    sl = seed_interval([gap_g[s] - gap_b[s] for s in seeds], st.level, over=f"{len(seeds)} seed pairs")
    return Claim(
        "generalisation: test − training risk [id]",
        "Theorem 7.4: the jittered solution generalises no worse: smaller (test − training) squared error",
        f"gap difference: {label} − {base}", label, base, "lower", paired, sl,
        verdict(sl, kind="lower", n_seeds=len(seeds)), "seed-level" if len(seeds) >= 2 else ONE_SEED,
        n_seeds=len(seeds))


def _link_claims(entries: list[dict[str, Any]], st: ClaimsSettings) -> tuple[list[Claim], list[str]]:
    """The curvature–error link, clustered by seed (:func:`landscape.stats.seed_permutation_test`).

    Only the complete design enters: the groups that have every seed of the common seed set (≥ 2 seeds)."""
    by_group: dict[str, dict[int, dict[str, Any]]] = {}
    for e in entries:
        by_group.setdefault(e["group"], {})[e["seed"]] = e
    common = sorted(set.intersection(*(set(d) for d in by_group.values()))) if by_group else []
    groups = sorted(by_group) if len(common) >= 2 else []
    notes = []
    left = [g for g in by_group if g not in groups]
    if left and groups:
        notes.append(f"link: groups {left} lack some of the common seeds {common} and are left out")

    def arr(f) -> np.ndarray:
        return np.array([[f(by_group[g][s]) for s in common] for g in groups], dtype=np.float64)

    def curv(e):
        return _mean(_sum_trace(e["splits"]["id"], e["K"]))

    def ood(e):
        return _mean([_mean(e["splits"][s]["sq_error"]) for s in e["splits"] if s != "id"])

    targets = {"OOD squared error (mean over shifts)": ood}
    if all("attack" in e["splits"]["id"] for e in entries):
        targets["PGD-attacked squared error"] = lambda e: _mean(e["splits"]["id"]["attack"]["sq_error"])
    claims = []
    for tname, f in targets.items():
        test = None
        if groups:
            x, y = arr(curv), arr(f)
            if np.all(np.isfinite(x)) and np.all(np.isfinite(y)):
                test = seed_permutation_test(x, y, level=st.level, n_perm=st.n_perm, seed=st.seed)
        v = link_verdict(test)
        basis = (f"seed-permutation test over {len(common)} seeds × {len(groups)} groups"
                 if test is not None else "fewer than 2 seeds shared by the groups")
        if v == TOO_FEW_SEEDS and test is not None:
            basis += f" (smallest attainable p = {test.min_p:.3g} > {(1 - st.level) / 2:g})"
        claims.append(Claim(
            f"link: within-strategy rank association (Σ tr H_k [id], {tname})",
            "flatter checkpoints have lower OOD / attacked error beyond what their strategy and seed explain: "
            "positive association of within-group, within-seed centred ranks",
            "correlation of two-way centred within-group ranks across checkpoints", "all checkpoints", "-", "higher",
            None, None, v, basis, note=f"{len(entries)} checkpoints", test=test, n_seeds=len(common)))
    return claims, notes


def judge_claims(entries: Sequence[dict[str, Any]], st: ClaimsSettings) -> tuple[list[dict], list[Claim], list[str]]:
    """The verdicts from per-checkpoint measurements (``ClaimsResult.checkpoints``): group rows, claims and
    notes.  Pure: the same measurements and settings give the same claims, so old results can be re-judged
    (:func:`rejudge`) without measuring anything again."""
    entries = [dict(e) for e in entries]
    notes: list[str] = []
    # a group is one strategy *and* model config: two groups with one label (mse on UnrolledGD and on
    # UnrolledProxGD) get the architecture in their label, so they are never merged into one group
    for e, g in zip(entries, judge_labels(entries)):
        e["group"] = g
    check(len({e["group"] for e in entries}) == len({e["group_key"] for e in entries}),
          "check_claims: two different run configs share one group label; give them different strategies or archs")
    groups: dict[str, list[dict]] = {}
    for e in entries:
        groups.setdefault(e["group"], []).append(e)
    claims: list[Claim] = []
    group_rows = []
    for label, members in groups.items():
        is_mse = members[0]["strategy"].get("name") == "mse"
        group_rows.append({"group": label, "seeds": [m["seed"] for m in members], "baseline": is_mse,
                           "paths": [m["path"] for m in members]})
        claims.extend(_expansion_claims(label, members, st))
        if is_mse:
            continue
        base = next((g for g, ms in groups.items() if ms[0]["strategy"].get("name") == "mse"
                     and ms[0]["model_key"] == members[0]["model_key"]), None)
        if base is None:
            notes.append(f"group {label!r} has no MSE group with the same model config: no comparisons")
            continue
        bm = {m["seed"]: m for m in groups[base]}
        gm = {m["seed"]: m for m in members}
        seeds = sorted(set(bm) & set(gm))
        if not seeds:
            notes.append(f"group {label!r} shares no seed with {base!r}: no paired comparisons")
            continue
        if len(seeds) < 2:
            notes.append(f"group {label!r} vs {base!r}: {ONE_SEED}; its verdicts read '{TOO_FEW_SEEDS}'")
        qg = {s: _quantities(gm[s]) for s in seeds}
        qb = {s: _quantities(bm[s]) for s in seeds}
        for name in qg[seeds[0]]:
            if not all(name in qg[s] and name in qb[s] for s in seeds):
                continue  # measured for some runs only (e.g. results saved before the quantity existed)
            kind, hyp = _spec(name)
            margin = st.margin_db if kind == "noninferior" else 0.0
            claims.append(_compare(name, label, base, {s: qg[s][name] for s in seeds},
                                   {s: qb[s][name] for s in seeds}, st, seeds, kind, hyp, margin))
        claims.append(_generalisation_claim(label, base, gm, bm, seeds, st))
    eq, eq_notes = _explicit_vs_jitter_claims(groups, st)
    link, link_notes = _link_claims(entries, st)
    return group_rows, claims + eq + link, notes + eq_notes + link_notes


def _notes(cks_activations: set, batch_size: Any) -> list[str]:
    notes: list[str] = []
    if "relu" in cks_activations:
        notes.append("ReLU regularizer: autograd gives the almost-everywhere Hessian (R'' = 0 off the kinks), so the "
                     "predicted penalty misses the kinks' contribution; the measured excess / prediction gap is "
                     "reported as measured.")
    notes.append("H_K = ∇²‖x − x*‖² = 2I whatever θ (and whatever A): training cannot change the last iterate's "
                 "curvature, so flatness sums run over 1 ≤ k ≤ K−1 (H_0 is reported, not summed).")
    notes.append(f"The 'paper' rule's scale is one max over a training batch: the noise coordinates and the "
                 f"'as trained' penalty rows take it over a batch of the run's batch size ({batch_size}: the analysed "
                 "samples, all in one batch where they fit, topped up with training samples); the 'per sample' rows take the max per sample (a batch of one), "
                 "a different, labelled quantity.")
    notes.append("tr H_k can cancel (H_k is indefinite): Σ ‖H_k‖_F (and Σ|λ| where the spectrum is exact) are "
                 "judged beside it.")
    return notes


def rejudge(result: ClaimsResult, **overrides: Any) -> ClaimsResult:
    """The same measurements judged again by this version's rules (``overrides`` replace settings fields
    that only the verdicts use, e.g. ``level`` or ``margin_db``): nothing is measured."""
    st = replace(result.settings, **overrides)
    group_rows, claims, notes = judge_claims(result.checkpoints, st)
    acts = {e.get("activation") for e in result.checkpoints}
    bs = result.info.get("batch_size", "?")
    return replace(result, settings=st, groups=tuple(group_rows), claims=tuple(claims),
                   notes=tuple(_notes(acts, bs) + notes))


def check_claims(
    paths: Sequence[str | Path | Any],
    settings: ClaimsSettings | None = None,
    *,
    progress: bool = False,
    executor: Any = None,
    device: str = "cpu",
    **overrides: Any,
) -> ClaimsResult:
    """Measure every checkpoint and judge each claim for each jittered group against its MSE group.

    ``paths``: run directories, checkpoint files or :class:`~landscape.checkpoint.LoadedCheckpoint`s of one
    task.  Checkpoints with the same strategy and model config are seeds of one group.  ``overrides``
    replace :class:`ClaimsSettings` fields.  ``executor`` (default :func:`landscape.executor.current_executor`)
    measures the checkpoints as independent items (under torchrun: checkpoint i on rank i mod W, gathered on
    every rank); the measurements do not depend on where they run.  ``device`` is where the models run.
    The verdicts come from :func:`judge_claims` on the measurements.
    """
    ex = current_executor() if executor is None else executor
    t0 = time.perf_counter()
    st = replace(settings or ClaimsSettings(), **overrides)
    check(len(paths) >= 1, "check_claims: expected at least one checkpoint")
    cks = [p if isinstance(p, LoadedCheckpoint) else load_checkpoint(p) for p in paths]
    task_cfg = json.dumps(cks[0].task.config(), sort_keys=True)
    for c in cks[1:]:
        check(json.dumps(c.task.config(), sort_keys=True) == task_cfg,
              f"checkpoint {c.path} is for a different task than {cks[0].path}: check one task at a time")
    cks.sort(key=lambda c: (_describe(c.config)[0], int(c.config.get("seed", 0)), str(c.path)))
    seen: dict[tuple[str, int, int], Any] = {}
    for c in cks:  # a group's checkpoints are its seeds: two epochs of one run (snapshots) are not two seeds
        ident = (_describe(c.config)[0], int(c.config.get("seed", 0)), int(c.config.get("data_seed", c.config.get("seed", 0))))
        if ident in seen:
            raise ValueError(f"checkpoints {seen[ident].path} and {c.path} are the same run (strategy, config and seed "
                             f"{ident[1]}), e.g. two snapshots: claims treats a group's checkpoints as seeds, so pass "
                             "one checkpoint per run (the same epoch for each)")
        seen[ident] = c
    # the reference jitter rule for the noise coordinates: the most common one among jittered runs
    rules = []
    for c in cks:
        j = c.config.get("model", {}).get("jitter", {}) or {}
        if _active(j.get("sigma", 0)) and not isinstance(j.get("sigma"), list):
            rules.append((j.get("mode"), float(j["sigma"])))
    ref = max(sorted(set(rules)), key=rules.count) if rules else ("paper", 0.1)
    bar = None
    if progress:
        bar = progress_bar(total=len(cks), desc="claims", unit="checkpoint")
    entries = []
    futures = [ex.submit(_measure_checkpoint, c, ref[0], ref[1], st, device) for c in cks]
    for c, fut in zip(cks, futures):
        key, label, mkey = _describe(c.config)
        m = fut.result()
        entries.append({"path": str(c.path), "group": label, "group_key": key, "model_key": mkey,
                        "strategy": c.config.get("strategy"), "seed": int(c.config.get("seed", 0)),
                        "activation": c.config.get("model", {}).get("regularizer", {}).get("activation"),
                        "learn_step": c.config.get("model", {}).get("learn_step", True),
                        "batch_size": c.config.get("batch_size"), **m})
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    info = {"seconds": time.perf_counter() - t0, "versions": versions(), "task": json.loads(task_cfg)}
    return _judged_result(entries, st, {"mode": ref[0], "sigma": ref[1]}, info)


def _judged_result(entries: list[dict[str, Any]], st: ClaimsSettings, reference: dict[str, Any],
                   info: dict[str, Any]) -> ClaimsResult:
    """The :class:`ClaimsResult` of measured ``entries``: judged, labelled, with the notes and the batch sizes."""
    group_rows, claims, notes = judge_claims(entries, st)
    for e, g in zip(entries, judge_labels(entries)):
        e["group"] = g
    sizes = sorted({str(e.get("batch_size")) for e in entries})
    info = {**info, "batch_size": sizes[0] if len(sizes) == 1 else sizes}
    acts = {e.get("activation") for e in entries}
    return ClaimsResult(st, tuple(entries), tuple(group_rows), tuple(claims), reference,
                        tuple(_notes(acts, info["batch_size"]) + notes), info)


def merge_claims(results: Sequence[ClaimsResult]) -> ClaimsResult:
    """One result from several measured with the same settings, reference rule and task, judged together.

    Each checkpoint's measurements depend only on the checkpoint, the settings and the reference rule, so
    checkpoints measured in separate ``check_claims`` calls (e.g. seeds or a strategy added later) give the
    claims one call over all of them would.  Refused, in one line, when the settings, reference rule or task
    differ, or when one run appears twice."""
    check(len(results) >= 1, "merge_claims: expected at least one claims result")
    first = results[0]
    for r in results[1:]:
        check(r.settings.to_dict() == first.settings.to_dict(),
              "merge_claims: the results were measured with different settings: "
              f"{_settings_diff(first.settings, r.settings)}")
        check(r.reference_jitter == first.reference_jitter, f"merge_claims: reference rules differ "
              f"({first.reference_jitter} and {r.reference_jitter}): the noise coordinates are not comparable")
        check(r.info.get("task") == first.info.get("task"), "merge_claims: the results are for different tasks")
    entries, seen = [], {}
    for r in results:
        for e in r.checkpoints:
            e = dict(e)
            e["group"] = _describe(json.loads(e["group_key"]))[1]  # the base label; judge_labels adds the arch
            ident = (e["group_key"], e["seed"])
            check(ident not in seen, f"merge_claims: {seen.get(ident)} and {e['path']} are the same run (strategy, "
                  f"config and seed {e['seed']})")
            seen[ident] = e["path"]
            entries.append(e)
    entries.sort(key=lambda e: (e["group_key"], e["seed"], e["path"]))  # check_claims' order
    info = {**first.info, "seconds": sum(float(r.info.get("seconds", 0.0)) for r in results),
            "merged_from": len(results)}
    return _judged_result(entries, first.settings, first.reference_jitter, info)


def _settings_diff(a: ClaimsSettings, b: ClaimsSettings) -> str:
    da, db = a.to_dict(), b.to_dict()
    return ", ".join(f"{k}={da.get(k)!r} vs {db.get(k)!r}" for k in sorted(set(da) | set(db)) if da.get(k) != db.get(k))


def judge_labels(entries: Sequence[dict[str, Any]]) -> list[str]:
    """Each entry's group label as :func:`judge_claims` sees it (the architecture added where two configs
    share a label)."""
    keys_of: dict[str, set[str]] = {}
    for e in entries:
        keys_of.setdefault(e["group"], set()).add(e["group_key"])
    return [f"{e['group']} [{json.loads(e['model_key']).get('arch', '?')}]" if len(keys_of[e["group"]]) > 1
            else e["group"] for e in entries]
