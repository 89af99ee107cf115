"""Measuring one checkpoint for the claims: errors, curvature, noise coordinates, robustness, attack, penalty.

:func:`measure_checkpoint` is the one item :func:`~landscape.claims.check_claims` hands its executor: its
measurements depend only on the checkpoint, the settings and the reference jitter rule, never on where or with
which other checkpoints it runs.  Every estimator seed derives from ``(settings.seed, sample index, ...)``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from landscape.attacks import PGDConfig, pgd_attack, random_perturbation
from landscape.claims.expansion import (
    TrainingBatches,
    clean_path,
    penalty_check,
    step_sizes,
    training_batches,
    unit_scales,
)
from landscape.claims.settings import BATCH_MAX_MODES, ClaimsSettings
from landscape.config import EvaluationSettings
from landscape.curvature import analyze_iterates, estimate_trace
from landscape.curvature.operators import (
    make_regularizer_hvp,
    make_regularizer_jacobian,
    regularizer_input,
    residual_weight,
)
from landscape.io import from_json_array, from_json_float
from landscape.metrics import score
from landscape.models import clone_model
from landscape.seeding import monte_carlo_seed


def _coordinates(entry, model, xc, yc, K, ref_mode, ref_sigma, st, batches) -> tuple[np.ndarray, np.ndarray]:
    """Noise coordinates ½η_k²s_k² tr H_{k+1} (reference rule) and the regularizer's ‖J_R‖_F² and
    residual-weighted trace at every k, per sample, into ``entry``; returns (tr H_{k+1}, its s.e.).

    ``noise_coordinates`` take s_k as training draws it (one max over a training batch, ``batches``);
    ``noise_coordinates_per_sample`` the per-sample max (a batch of one), a second, labelled quantity."""
    path = clean_path(model, yc)
    curv = entry["curvature"]
    tr = from_json_array(curv["trace"])  # None (not computed) and "nan" read as NaN
    tse = np.array([[0.0 if v is None else from_json_float(v) for v in row] for row in curv["trace_se"]])
    kpos = {k: i for i, k in enumerate(curv["iterates"])}
    tr_next = tr[:, [kpos[k] for k in range(1, K + 1)]]
    tse_next = tse[:, [kpos[k] for k in range(1, K + 1)]]
    eta = step_sizes(model)
    unit = unit_scales(model, path, yc, ref_mode)
    trained = batches.scales(model, ref_mode)
    entry["noise_coordinates"] = (0.5 * eta[None, :] ** 2 * (ref_sigma * trained) ** 2 * tr_next).tolist()
    entry["noise_coordinates_per_sample"] = (
        0.5 * eta[None, :] ** 2 * (ref_sigma * unit) ** 2 * tr_next
    ).tolist()
    entry["noise_batch_size"] = batches.size
    jr, rw = [], []
    for b in range(yc.shape[0]):
        jrow, rrow = [], []
        for k in range(K):
            a, c = _regularizer_curvature(
                model,
                path[k][b : b + 1],
                yc[b : b + 1],
                xc[b : b + 1],
                k,
                st.regularizer_probes,
                monte_carlo_seed(st.seed, b, k, 31),
            )
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
    tr = estimate_trace(
        op,
        method="hutchinson",
        max_matvecs=probes,
        min_probes=min(probes, 10),
        block=min(probes, 10),
        generator=torch.Generator().manual_seed(seed),
    )
    return float(jf), float(tr.estimate)


def _curvature(model, x, y, iterates, st: ClaimsSettings, sample_ids) -> dict[str, Any]:
    """tr H_k, λ_max, λ_min, tr H_k² (= ‖H_k‖_F²) and, when exact, Σ|λ| and the positive and negative parts of
    the trace, per sample and iterate: one call of the curvature pipeline, seeds from sample ids."""
    res = analyze_iterates(
        model,
        x_true=x,
        y=y,
        iterates=iterates,
        sample_ids=list(sample_ids),
        settings=replace(st.curvature, seed=st.seed, bottom_k=max(st.curvature.bottom_k, 1)),
    )
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


@dataclass
class _Laps:
    """Wall time per phase: ``laps(name)`` adds the time since the previous lap to ``name``."""

    timings: dict[str, float] = field(default_factory=dict)
    clock: float = field(default_factory=time.perf_counter)

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = self.timings.get(name, 0.0) + now - self.clock
        self.clock = now


#: The evaluation of a run config that leaves every setting out (its first ε where a run lists none).
_DEFAULT_EVALUATION = EvaluationSettings()


@dataclass(frozen=True)
class _Checkpoint:
    """What every split of one checkpoint's measurement shares."""

    model: Any
    task: Any
    train: Any  # the run's own training pairs
    batch_size: int
    evaluation: EvaluationSettings  # the run's evaluation config (robustness ε, attack)
    own_mode: str | None  # the run's own jitter rule, if it jitters
    ref_mode: str
    ref_sigma: float
    st: ClaimsSettings
    device: str
    laps: _Laps


def _robustness(c: _Checkpoint, xe: torch.Tensor, ye: torch.Tensor) -> dict[str, Any]:
    """Average-case robustness: E‖x̂(y + e) − x*‖² over random e of norm ε, directions seeded by sample index."""
    st, ev = c.st, c.evaluation
    eps_r = (ev.random_eps or _DEFAULT_EVALUATION.random_eps)[0]  # the first ε (none given: the default)
    rel = ev.relative
    rob = []
    for i in range(xe.shape[0]):
        gen = torch.Generator().manual_seed(monte_carlo_seed(st.seed, i, 23))
        yr = ye[i : i + 1].expand(st.n_directions, *ye.shape[1:]).contiguous()
        d = random_perturbation(
            yr, eps_r, project=c.task.physics.project_measurement, relative=rel, generator=gen
        )
        with torch.no_grad():
            rob.append(float((c.model(yr + d) - xe[i : i + 1]).pow(2).flatten(1).sum(1).mean()))
    return {"eps": eps_r, "relative": rel, "n_directions": st.n_directions, "sq_error": rob}


def _attack(c: _Checkpoint, xe: torch.Tensor, ye: torch.Tensor) -> dict[str, Any]:
    """PGD-attacked squared error and PSNR at the run's evaluation ε (``st.attack_steps`` steps when given)."""
    ev = c.evaluation
    pgd = PGDConfig(
        eps=(ev.attack_eps or _DEFAULT_EVALUATION.attack_eps)[0],  # the first ε (none given: the default)
        steps=int(c.st.attack_steps or ev.steps),
        step_size=ev.step_size,
        relative=ev.relative,
    )
    for p in c.model.parameters():
        p.requires_grad_(False)
    delta = pgd_attack(c.model, ye, xe, pgd, project=c.task.physics.project_measurement)
    with torch.no_grad():
        xa = c.model(ye + delta)
    return {
        **pgd.to_dict(),
        "sq_error": (xa - xe).pow(2).flatten(1).sum(1).tolist(),
        "psnr": score(xa, xe)["psnr"].tolist(),
    }


def _penalty(c: _Checkpoint, xc, yc, tr_next, tse_next, batches: TrainingBatches) -> list[dict[str, Any]]:
    """The penalty check's rows: the run's own rule (the reference rule if it does not jitter) as trained (a batch
    max over a training batch), per sample, and absolute noise."""
    mode = c.own_mode or c.ref_mode
    checks = [(mode, batches)] if mode in BATCH_MAX_MODES else []
    checks += [(m, None) for m in dict.fromkeys([mode, "absolute"])]
    st = c.st
    return [
        row
        for m, bs in checks
        for row in penalty_check(
            c.model,
            xc,
            yc,
            tr_next,
            tse_next,
            mode=m,
            sigmas=st.sigmas,
            pairs=st.mc_pairs,
            seed=st.seed,
            sample_ids=list(range(xc.shape[0])),
            level=st.level,
            mc_dtype=getattr(torch, st.mc_dtype),
            batches=bs,
        )
    ]


def _measure_id(c: _Checkpoint, entry: dict[str, Any], x, y, batches: TrainingBatches) -> None:
    """The ID split's extras, into ``entry``: robustness, attack, noise and regularizer coordinates, penalty check."""
    st, K = c.st, c.model.n_iter
    xe, ye = x[: st.n_eval], y[: st.n_eval]
    entry["robustness"] = _robustness(c, xe, ye)
    if st.attack:
        entry["attack"] = _attack(c, xe, ye)
    c.laps("robustness and attack")
    xc, yc = x[: st.n_curvature], y[: st.n_curvature]
    tr_next, tse_next = _coordinates(entry, c.model, xc, yc, K, c.ref_mode, c.ref_sigma, st, batches)
    c.laps("regularizer")
    entry["penalty"] = _penalty(c, xc, yc, tr_next, tse_next, batches)
    c.laps("penalty")


def _measure_split(c: _Checkpoint, split: str, test_seed: int) -> dict[str, Any]:
    """One split's measurements: errors on ``n_eval`` samples, curvature (and, where it covers 1..K, the noise
    and regularizer coordinates) on the analysed ones, and on ID everything of :func:`_measure_id`."""
    st, model, K = c.st, c.model, c.model.n_iter
    n_curv = st.n_curvature if split == "id" else st.n_ood_curvature
    pairs = c.task.pairs(max(st.n_eval, n_curv), split=split, seed=test_seed, dtype=torch.float64)
    x, y = pairs.x.to(c.device), pairs.y.to(c.device)
    entry: dict[str, Any] = {"n_eval": st.n_eval, **_errors(model, x[: st.n_eval], y[: st.n_eval])}
    batches = None
    if n_curv:
        c.laps("other")
        entry["curvature"] = _curvature(
            model,
            x[:n_curv],
            y[:n_curv],
            "all" if split == "id" else st.ood_iterates,
            st,
            list(range(n_curv)),
        )
        c.laps("curvature")
        batches = training_batches(
            y[:n_curv], c.train.y.to(c.device), c.batch_size, seed=st.seed, sample_ids=range(n_curv)
        )
    if split != "id" and n_curv and set(range(1, K + 1)) <= set(entry["curvature"]["iterates"]):
        _coordinates(entry, model, x[:n_curv], y[:n_curv], K, c.ref_mode, c.ref_sigma, st, batches)
        c.laps("regularizer")
    if split == "id":
        _measure_id(c, entry, x, y, batches)
    return entry


def _frozen_model(model, device: str):
    """A float64 copy of ``model`` on ``device`` in eval mode, without parameter gradients."""
    model = clone_model(model).to(device=device, dtype=torch.float64).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def measure_checkpoint(
    ck, ref_mode: str, ref_sigma: float, st: ClaimsSettings, device: str = "cpu"
) -> dict[str, Any]:
    """Every measurement the claims judge, of one loaded checkpoint ``ck``: per split (ID and each OOD split)
    errors, curvature, coordinates, and on ID robustness, attack and the penalty check; the training risk;
    the step sizes; the wall time per phase.  ``ref_mode``, ``ref_sigma``: the reference jitter rule of the
    noise coordinates (shared by all checkpoints)."""
    t0 = time.perf_counter()
    model = _frozen_model(ck.model, device)
    cfg = ck.config
    test_seed = ck.test_seed
    own = cfg.strategy.noise  # the rule the run trained with (None: no iterate noise)
    out: dict[str, Any] = {"splits": {}}
    laps = _Laps()
    out["K"] = model.n_iter
    # the run's own training data: the generalisation gap, and the batches the noise scale is taken over
    train = ck.task.training_set(cfg.train_size, seed=cfg.resolved_data_seed, dtype=torch.float64)
    c = _Checkpoint(
        model,
        ck.task,
        train,
        cfg.batch_size,
        cfg.evaluation.effective,
        own.mode if own is not None and own.active else None,
        ref_mode,
        ref_sigma,
        st,
        device,
        laps,
    )
    out["step_sizes"] = step_sizes(model).tolist()
    for split in ck.task.splits:
        out["splits"][split] = _measure_split(c, split, test_seed)
    # generalisation: clean risk on training pairs (the run's own data seed) vs test pairs
    xt, yt = train.x[: st.n_eval].to(device), train.y[: st.n_eval].to(device)
    out["train"] = _errors(model, xt, yt)
    laps("other")
    out["seconds"] = time.perf_counter() - t0
    out["timings"] = laps.timings
    return out
