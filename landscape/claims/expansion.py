r"""The expansion on a trained model: the jitter's scale on the clean path, training batches, the penalty check.

* :func:`unit_scales` / :func:`~landscape.claims.trained_unit_scales` — ``|s_k|`` at σ = 1 per sample, and as
  training draws it (one max over a training batch for the ``paper`` rule); :func:`~landscape.claims.training_batches`
  forms those batches.
* :func:`~landscape.claims.penalty_along_path` — the expansion's penalty per step,
  :math:`\tfrac12\eta_k^2 s_k^2\,\mathrm{tr}\,H_{k+1}`.
* :func:`~landscape.claims.penalty_check` — the Monte-Carlo excess of the jittered loss against that prediction,
  per σ.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

from landscape.errors import check
from landscape.jitter import JITTER_MODES, JitterConfig
from landscape.models import clone_model
from landscape.seeding import monte_carlo_seed
from landscape.stats import mc_ratio_interval


def clean_path(model, y: torch.Tensor) -> list[torch.Tensor]:
    """The iterates ``x_0 .. x_K`` of ``model`` on ``y`` without noise."""
    with torch.no_grad():
        xs = [model.initial(y)]
        for k in range(model.n_iter):
            xs.append(model.step(xs[-1], y, k))
    return xs


def unit_scales(model, path: list[torch.Tensor], y: torch.Tensor, mode: str) -> np.ndarray:
    """``|s_k|`` at σ = 1 on the clean path, per sample: shape (B, K) (the scale is linear in σ).

    The ``paper`` rule's max is taken per sample here (the rule for a batch of one);
    :func:`~landscape.claims.trained_unit_scales` gives the scale as training draws it, one max over a training
    batch.
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
    path = clean_path(model, y_batch)
    B = y_batch.shape[0]
    out = np.zeros((rows, model.n_iter))
    with torch.no_grad():
        for k in range(model.n_iter):
            s = (
                torch.as_tensor(
                    model.noise_scale(path[k], y_batch, k, jitter=jc, per_sample=False), dtype=torch.float64
                )
                .abs()
                .flatten()
            )
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
        """The batch size: the rows of each batch."""
        return int(self.batches[0].shape[0])

    def scales(self, model, mode: str) -> np.ndarray:
        """(B, K): the trained ``|s_k|`` at σ = 1 of each analysed sample (:func:`trained_unit_scales`)."""
        return np.concatenate(
            [trained_unit_scales(model, b, mode, r) for b, r in zip(self.batches, self.rows)]
        )


def training_batches(
    y: torch.Tensor, train_y: torch.Tensor, batch_size: int, *, seed: int, sample_ids: Sequence[int]
) -> TrainingBatches:
    """Batches of ``batch_size`` measurements as training forms them, holding the analysed samples ``y``: the
    samples fill the leading rows of as few batches as they fit in (all in one when there are at most
    ``batch_size``), and each batch is topped up with training measurements drawn without replacement (seeded by
    ``seed`` and the batch's first sample id).  Every draw then jitters a whole batch, so one batch serves all
    its analysed samples."""
    n = train_y.shape[0]
    bs = max(1, int(batch_size))
    ids = list(sample_ids)
    check(
        len(ids) == y.shape[0], f"sample_ids has {len(ids)} entries: expected one per sample ({y.shape[0]})"
    )
    out, rows = [], []
    for start in range(0, y.shape[0], bs):
        c = min(bs, y.shape[0] - start)
        m = max(0, min(bs - c, n))
        g = torch.Generator().manual_seed(monte_carlo_seed(seed, int(ids[start]), 41))
        idx = torch.randperm(n, generator=g)[:m]
        out.append(torch.cat([y[start : start + c], train_y[idx].to(y)], 0))
        rows.append(c)
    return TrainingBatches(tuple(out), tuple(rows))


def step_sizes(model) -> np.ndarray:
    """The step sizes η_k of ``model``, k = 0..K−1."""
    with torch.no_grad():
        return np.array([float(model.step_size(k)) for k in range(model.n_iter)])


def penalty_along_path(
    model: Any, x_true: torch.Tensor, y: torch.Tensor, res: Any, jitter: Any
) -> dict[str, Any]:
    r"""The expansion's penalty per step, :math:`P_k = \tfrac12\eta_k^2 s_k^2\,\mathrm{tr}\,H_{k+1}`, per sample.

    ``res`` is the :class:`~landscape.curvature.IterateCurvature` of these samples (traces at 1..K), ``jitter``
    the noise rule to evaluate (a :class:`~landscape.jitter.JitterConfig`; the scale :math:`s_k` is taken on
    the clean path, per sample, through the solver's ``noise_scale``).  Returns mean and standard error over
    the samples of each :math:`P_k` and of their sum (the predicted excess of the jittered loss).
    """
    path = clean_path(model, y)
    unit = unit_scales(model, path, y, jitter.mode)  # (B, K) at sigma = 1
    eta = step_sizes(model)
    K = model.n_iter
    sig = np.array([jitter.sigma_at(k, K) for k in range(K)])
    ids = [s.sample for s in res.at(res.iterates[0])]
    tr = np.array(
        [[next(s for s in res.at(k + 1) if s.sample == i).scalars()["trace"] for k in range(K)] for i in ids]
    )  # (B, K): tr H_{k+1}
    pen = 0.5 * eta[None, :] ** 2 * (sig[None, :] * unit) ** 2 * tr
    n = pen.shape[0]

    def se(a: np.ndarray) -> Any:
        return (a.std(axis=0, ddof=1) / math.sqrt(n)) if n > 1 else np.full(a.shape[1:], math.nan)

    tot = pen.sum(1)
    return {
        "k": list(range(K)),
        "mean": pen.mean(0).tolist(),
        "stderr": np.atleast_1d(se(pen)).tolist(),
        "total": float(tot.mean()),
        "total_stderr": float(tot.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan,
        "rule": jitter.to_dict(),
        "n": n,
        "formula": "P_k = 1/2 eta_k^2 s_k^2 tr H_{k+1}, s_k on the clean path (per sample); stderr over samples",
    }


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


class _Excess(NamedTuple):
    """The Monte-Carlo excess per σ (rows) and sample (columns), its standard error, and the variance of the
    total's mean per σ (samples that share draws add as one)."""

    mean: np.ndarray
    se: np.ndarray
    total_var: np.ndarray


def _draw_groups(B: int, batches: TrainingBatches | None) -> list[tuple[int, int, torch.Tensor | None]]:
    """``(first sample, rows, batch)`` of each group of samples that share draws: one sample each (alone), or
    the analysed rows of one training batch."""
    if batches is None:
        return [(b, 1, None) for b in range(B)]
    return [(sum(batches.rows[:i]), r, yb) for i, (yb, r) in enumerate(zip(batches.batches, batches.rows))]


def _group_draws(
    ym: torch.Tensor,
    start: int,
    batch: torch.Tensor | None,
    pairs: int,
    K: int,
    gen: torch.Generator,
    dt: torch.dtype,
) -> tuple[torch.Tensor, list[torch.Tensor] | torch.Tensor]:
    """The measurements a group jitters and its draws ε (float64 from ``gen``, then ``dt``): a sample repeated
    ``pairs`` times with one (pairs, ...) draw per step, or one training batch with (pairs, K, B, ...) draws."""
    if batch is None:
        yb = ym[start : start + 1].expand(pairs, *ym.shape[1:]).contiguous()
        return yb, [
            torch.randn(yb.shape, generator=gen, dtype=torch.float64).to(device=yb.device, dtype=dt)
            for _ in range(K)
        ]
    yb = batch.to(dt)
    return yb, torch.randn((pairs, K, *yb.shape), generator=gen, dtype=torch.float64).to(
        device=yb.device, dtype=dt
    )


def _antithetic_excess(
    mc, xb: torch.Tensor, yb: torch.Tensor, draws, jc: JitterConfig, rows: int, clean: np.ndarray
) -> np.ndarray:
    """(pairs, rows): ½(J(ε) + J(−ε)) − L_0 of each draw and analysed row (per sample when ``draws`` is a list
    of per-step draws, else one training batch per draw)."""
    with torch.no_grad():
        if isinstance(draws, list):
            outp = mc.jittered(yb, draws, jitter=jc, per_sample=True)[:, None]
            outm = mc.jittered(yb, [-e for e in draws], jitter=jc, per_sample=True)[:, None]
        else:
            outp = _jittered_rows(mc, yb, draws, jc, rows)
            outm = _jittered_rows(mc, yb, -draws, jc, rows)
        jp = (outp - xb).pow(2).flatten(2).sum(2)  # (pairs, rows)
        jm = (outm - xb).pow(2).flatten(2).sum(2)
    return (0.5 * (jp + jm)).double().cpu().numpy() - clean


def _mc_excess(
    mc,
    xm: torch.Tensor,
    ym: torch.Tensor,
    clean: np.ndarray,
    *,
    mode: str,
    sigmas: Sequence[float],
    pairs: int,
    seed: int,
    ids: list[int],
    batches: TrainingBatches | None,
    K: int,
    dt: torch.dtype,
) -> _Excess:
    """The antithetic Monte-Carlo excess of every sample at every σ, draws shared across σ and seeded by
    ``(seed, first sample id of the group, mode)``."""
    B = ym.shape[0]
    excess = np.zeros((len(sigmas), B))
    excess_se = np.zeros((len(sigmas), B))
    total_var = np.zeros(len(sigmas))  # Var of the total's MC mean: groups that share draws add as one
    for start, r, batch in _draw_groups(B, batches):
        gen = torch.Generator().manual_seed(monte_carlo_seed(seed, ids[start], JITTER_MODES.index(mode), 7))
        yb, draws = _group_draws(ym, start, batch, pairs, K, gen, dt)
        xb = xm[start : start + r]
        for i, s in enumerate(sigmas):
            a = _antithetic_excess(
                mc, xb, yb, draws, JitterConfig(float(s), mode), r, clean[None, start : start + r]
            )
            excess[i, start : start + r] = a.mean(0)
            excess_se[i, start : start + r] = a.std(0, ddof=1) / math.sqrt(pairs)
            total_var[i] += a.sum(1).var(ddof=1) / pairs
    return _Excess(excess, excess_se, total_var)


def _penalty_row(
    i: int,
    s: float,
    ex: _Excess,
    coef: np.ndarray,
    traces: np.ndarray,
    trace_se: np.ndarray,
    eta: np.ndarray,
    unit: np.ndarray,
    *,
    mode: str,
    scale: str,
    clean: np.ndarray,
    pairs: int,
    level: float,
) -> dict[str, Any]:
    """The penalty check's row at the ``i``-th σ ``s``: excess and prediction per sample and summed, their ratio."""
    B = traces.shape[0]
    pred = s**2 * (coef * traces).sum(1)
    pred_se = s**2 * np.sqrt(((coef * trace_se) ** 2).sum(1))
    e_sum, e_se = ex.mean[i].sum(), math.sqrt(ex.total_var[i])
    p_sum, p_se = pred.sum(), math.sqrt((pred_se**2).sum())
    ratio = mc_ratio_interval(
        float(e_sum),
        float(e_se),
        float(p_sum),
        float(p_se),
        level,
        over="Monte-Carlo draws and trace estimator, samples and θ fixed",
        n=B,
    )
    return {
        "mode": mode,
        "scale": scale,
        "sigma": float(s),
        "eta_s_max": float((eta[None, :] * unit * s).max()),
        "excess": ex.mean[i].tolist(),
        "excess_se": ex.se[i].tolist(),
        "predicted": pred.tolist(),
        "predicted_se": pred_se.tolist(),
        "excess_total": float(e_sum),
        "excess_total_se": float(e_se),
        "predicted_total": float(p_sum),
        "predicted_total_se": float(p_se),
        "ratio": ratio.to_dict(),
        "clean_loss": clean.tolist(),
        "pairs": int(pairs),
    }


def _prediction_coefficients(
    model, y: torch.Tensor, mode: str, batches: TrainingBatches | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What :func:`penalty_check` predicts from: the step sizes η (K,), the unit noise scales s (B, K) (per
    sample on the clean path, or the training batch's with ``batches``) and the coefficients ½η²s² (B, K) of
    the prediction per σ², Σ_j coef_j tr_j."""
    eta = step_sizes(model)
    unit = (
        unit_scales(model, clean_path(model, y), y, mode) if batches is None else batches.scales(model, mode)
    )  # (B, K)
    coef = 0.5 * eta[None, :] ** 2 * unit**2  # prediction per σ²: sum_j coef_j tr_j
    return eta, unit, coef


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
    check(
        batches is None or sum(batches.rows) == B,
        f"batches hold {0 if batches is None else sum(batches.rows)} analysed samples: expected {B}",
    )
    eta, unit, coef = _prediction_coefficients(model, y, mode, batches)
    mc = model if mc_dtype is None else clone_model(model).to(mc_dtype)
    dt = mc_dtype or x_true.dtype
    xm, ym = x_true.to(dt), y.to(dt)
    with torch.no_grad():
        clean = (mc(ym) - xm).pow(2).flatten(1).sum(1).double().cpu().numpy()
    ex = _mc_excess(
        mc,
        xm,
        ym,
        clean,
        mode=mode,
        sigmas=sigmas,
        pairs=pairs,
        seed=seed,
        ids=ids,
        batches=batches,
        K=model.n_iter,
        dt=dt,
    )
    scale = "per sample" if batches is None else f"batch of {batches.size} (as trained)"
    return [
        _penalty_row(
            i,
            s,
            ex,
            coef,
            traces,
            trace_se,
            eta,
            unit,
            mode=mode,
            scale=scale,
            clean=clean,
            pairs=pairs,
            level=level,
        )
        for i, s in enumerate(sigmas)
    ]
