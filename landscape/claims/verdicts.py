"""The verdicts: every claim judged from per-checkpoint measurements, nothing measured here.

:func:`~landscape.claims.judge_claims` groups the checkpoints (a group is one strategy *and* model config; its checkpoints are
seeds), compares each jittered group with the MSE group of the same model config on every quantity of
:func:`~landscape.claims.quantities.quantities`, and adds the expansion, generalisation, "explicit penalty ≈
jitter" and link claims.  Every claim's name, kind and hypothesis come from the registry
(:mod:`landscape.claims.registry`); every interval and verdict rule from :mod:`landscape.stats`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from landscape.claims.claim import Claim
from landscape.claims.quantities import Quantity, mean, quantities, sum_trace
from landscape.claims.registry import spec
from landscape.claims.settings import ClaimsSettings
from landscape.errors import check
from landscape.stats import (
    TOO_FEW_SEEDS,
    Interval,
    link_verdict,
    paired_interval,
    seed_interval,
    seed_permutation_test,
    t_quantile,
    verdict,
)

ONE_SEED = "one seed: no verdict on the method (the paired interval holds training fixed)"


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation (average ranks for ties; NaN when either side is constant or < 3 values)."""
    from scipy import stats as sps

    if len(x) < 3:
        return math.nan
    return float(sps.spearmanr(x, y).statistic)


# -- grouping -----------------------------------------------------------------------------------
def describe(cfg: dict[str, Any]) -> tuple[str, str, str]:
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


def judge_labels(entries: Sequence[dict[str, Any]]) -> list[str]:
    """Each entry's group label as :func:`judge_claims` sees it (the architecture added where two configs
    share a label)."""
    keys_of: dict[str, set[str]] = {}
    for e in entries:
        keys_of.setdefault(e["group"], set()).add(e["group_key"])
    return [
        f"{e['group']} [{json.loads(e['model_key']).get('arch', '?')}]"
        if len(keys_of[e["group"]]) > 1
        else e["group"]
        for e in entries
    ]


# -- comparisons --------------------------------------------------------------------------------
def _values(q: dict[int, dict[str, Quantity]], name: str, seeds: Sequence[int]) -> dict[int, list[float]]:
    return {s: q[s][name].values for s in seeds}


def _compare(
    name, group, base, q_by_seed_g, q_by_seed_b, st: ClaimsSettings, seeds, kind, hyp, margin=0.0, note=""
) -> Claim:
    # per-sample differences, averaged over the seed pairs (same test samples in every run)
    diffs = np.array([np.asarray(q_by_seed_g[s], float) - np.asarray(q_by_seed_b[s], float) for s in seeds])
    paired = paired_interval(
        diffs.mean(0),
        st.level,
        over=f"{diffs.shape[1]} test samples (difference averaged over {len(seeds)} seed pair(s))",
    )
    seed_lv = seed_interval(
        diffs.mean(1), st.level, over=f"{len(seeds)} seed pairs (per-seed mean over samples)"
    )
    basis = "seed-level" if len(seeds) >= 2 else ONE_SEED
    v = verdict(seed_lv, kind=kind, margin=margin, n_seeds=len(seeds))
    return Claim(
        name,
        hyp,
        f"{name}: {group} − {base}",
        group,
        base,
        kind,
        paired,
        seed_lv,
        v,
        basis,
        margin,
        note,
        n_seeds=len(seeds),
    )


def _explicit_vs_jitter_group(
    label: str, jit: str, gm: dict, jm: dict, seeds: list[int], st: ClaimsSettings
) -> list[Claim]:
    """The "explicit ≈ jitter" claims of one ``curvature-penalty`` group against its ``sgd-jitter`` twin."""
    qg = {s: quantities(gm[s]) for s in seeds}
    qj = {s: quantities(jm[s]) for s in seeds}
    common = [n for n in qg[seeds[0]] if all(n in qg[s] and n in qj[s] for s in seeds)]
    acc, ratio = spec("explicit.accuracy"), spec("explicit.flatness")
    claims = [
        _compare(
            acc.name(name),
            label,
            jit,
            _values(qg, name, seeds),
            _values(qj, name, seeds),
            st,
            seeds,
            acc.kind,
            f"{acc.hypothesis}: |Δ PSNR| ≤ {st.equivalence_db:g} dB",
            st.equivalence_db,
        )
        for name in common
        if qg[seeds[0]][name].spec.unit == "dB"
    ]  # accuracy ID, OOD, under PGD
    flat = next(
        (
            n
            for n in (spec("flatness.frobenius").name("id"), spec("flatness.trace").name("id"))
            if n in common
        ),
        None,
    )
    if flat is not None:
        ratios = [mean(qg[s][flat].values) / mean(qj[s][flat].values) for s in seeds]
        sl = seed_interval(ratios, st.level, over=f"{len(seeds)} seed pairs (per-seed ratio of sample means)")
        claims.append(
            Claim(
                ratio.name(flat),
                f"{ratio.hypothesis}: ratio within 1 ± {st.equivalence_ratio:g}",
                f"{flat}: {label} / {jit} (per seed)",
                label,
                jit,
                ratio.kind,
                None,
                sl,
                verdict(sl, kind=ratio.kind, margin=st.equivalence_ratio, n_seeds=len(seeds)),
                "seed-level" if len(seeds) >= 2 else ONE_SEED,
                st.equivalence_ratio,
                n_seeds=len(seeds),
            )
        )
    return claims


def _explicit_vs_jitter_claims(
    groups: dict[str, list[dict]], st: ClaimsSettings
) -> tuple[list[Claim], list[str]]:
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
        jit = next(
            (
                g
                for g, ms in groups.items()
                if ms[0]["strategy"].get("name") == "sgd-jitter"
                and ms[0]["model_key"] == members[0]["model_key"]
                and {k: ms[0]["strategy"].get(k) for k in twin} == twin
            ),
            None,
        )
        if jit is None:
            notes.append(
                f"group {label!r} has no sgd-jitter group with the same model, sigma and rule: no "
                "'explicit penalty ≈ jitter' claims"
            )
            continue
        gm = {m["seed"]: m for m in members}
        jm = {m["seed"]: m for m in groups[jit]}
        seeds = sorted(set(gm) & set(jm))
        if not seeds:
            notes.append(
                f"group {label!r} shares no seed with {jit!r}: no 'explicit penalty ≈ jitter' claims"
            )
            continue
        claims.extend(_explicit_vs_jitter_group(label, jit, gm, jm, seeds, st))
    return claims, notes


def _expansion_claims(label: str, members: list[dict[str, Any]], st: ClaimsSettings) -> list[Claim]:
    """The expansion claim for every rule of a group: ratio of MC excess to prediction at each σ.

    It is an identity at fixed θ, so one checkpoint can be judged on its own Monte-Carlo interval; with
    several seeds the verdict follows the t interval over the per-seed ratios (whose spread contains each
    seed's Monte-Carlo error)."""
    sp = spec("expansion")
    out = []
    for i_row, row in enumerate(members[0]["splits"]["id"]["penalty"]):
        ratios = [m["splits"]["id"]["penalty"][i_row]["ratio"] for m in members]
        scale = row.get("scale", "per sample")
        sl = (
            seed_interval(
                [r["estimate"] for r in ratios], st.level, over=f"{len(members)} seeds (per-seed ratio)"
            )
            if len(members) >= 2
            else None
        )
        first = Interval.from_dict(ratios[0])
        if len(members) >= 2:
            basis, v = "seed-level", verdict(sl, kind=sp.kind, margin=st.expansion_margin)
        else:
            basis = "Monte-Carlo, one checkpoint (an identity at fixed θ: a statement about this model)"
            v = verdict(first, kind=sp.kind, margin=st.expansion_margin)
        out.append(
            Claim(
                sp.name(f"{row['mode']}, {scale}, σ={row['sigma']:g}"),
                sp.hypothesis,
                "ratio of summed MC excess to summed prediction over the ID curvature samples",
                label,
                "ratio = 1",
                sp.kind,
                first if len(members) == 1 else None,
                sl,
                v,
                basis,
                st.expansion_margin,
                f"max η·s = {row['eta_s_max']:.3g}",
                n_seeds=len(members),
            )
        )
    return out


def _generalisation_claim(label, base, gm, bm, seeds, st: ClaimsSettings) -> Claim:
    """Theorem 7.4: generalisation gap (test risk − training risk); test and training samples both paired."""
    sp = spec("generalisation")
    gap_g = {s: mean(gm[s]["splits"]["id"]["sq_error"]) - mean(gm[s]["train"]["sq_error"]) for s in seeds}
    gap_b = {s: mean(bm[s]["splits"]["id"]["sq_error"]) - mean(bm[s]["train"]["sq_error"]) for s in seeds}
    dt = np.mean(
        [np.subtract(gm[s]["splits"]["id"]["sq_error"], bm[s]["splits"]["id"]["sq_error"]) for s in seeds], 0
    )
    dr = np.mean([np.subtract(gm[s]["train"]["sq_error"], bm[s]["train"]["sq_error"]) for s in seeds], 0)
    m_ = float(dt.mean() - dr.mean())
    se = math.sqrt(dt.var(ddof=1) / dt.size + dr.var(ddof=1) / dr.size)
    h = t_quantile(st.level, min(dt.size, dr.size) - 1) * se
    paired = Interval(
        m_,
        m_ - h,
        m_ + h,
        st.level,
        f"{dt.size} test and {dr.size} training samples (paired "
        f"by sample, averaged over {len(seeds)} seed pair(s))",
        int(dt.size),
        "t (Welch-style sum)",
        "paired",
    )
    sl = seed_interval([gap_g[s] - gap_b[s] for s in seeds], st.level, over=f"{len(seeds)} seed pairs")
    return Claim(
        sp.name("id"),
        sp.hypothesis,
        f"gap difference: {label} − {base}",
        label,
        base,
        sp.kind,
        paired,
        sl,
        verdict(sl, kind=sp.kind, n_seeds=len(seeds)),
        "seed-level" if len(seeds) >= 2 else ONE_SEED,
        n_seeds=len(seeds),
    )


def _link_claims(entries: list[dict[str, Any]], st: ClaimsSettings) -> tuple[list[Claim], list[str]]:
    """The curvature–error link, clustered by seed (:func:`landscape.stats.seed_permutation_test`).

    Only the complete design enters: the groups that have every seed of the common seed set (≥ 2 seeds)."""
    sp = spec("link")
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
        return mean(sum_trace(e["splits"]["id"], e["K"]))

    def ood(e):
        return mean([mean(e["splits"][s]["sq_error"]) for s in e["splits"] if s != "id"])

    targets = {"OOD squared error (mean over shifts)": ood}
    if all("attack" in e["splits"]["id"] for e in entries):
        targets["PGD-attacked squared error"] = lambda e: mean(e["splits"]["id"]["attack"]["sq_error"])
    claims = []
    for tname, f in targets.items():
        test = None
        if groups:
            x, y = arr(curv), arr(f)
            if np.all(np.isfinite(x)) and np.all(np.isfinite(y)):
                test = seed_permutation_test(x, y, level=st.level, n_perm=st.n_perm, seed=st.seed)
        v = link_verdict(test)
        basis = (
            f"seed-permutation test over {len(common)} seeds × {len(groups)} groups"
            if test is not None
            else "fewer than 2 seeds shared by the groups"
        )
        if v == TOO_FEW_SEEDS and test is not None:
            basis += f" (smallest attainable p = {test.min_p:.3g} > {(1 - st.level) / 2:g})"
        claims.append(
            Claim(
                sp.name(tname),
                sp.hypothesis,
                "correlation of two-way centred within-group ranks across checkpoints",
                "all checkpoints",
                "-",
                sp.kind,
                None,
                None,
                v,
                basis,
                note=f"{len(entries)} checkpoints",
                test=test,
                n_seeds=len(common),
            )
        )
    return claims, notes


# -- judging ------------------------------------------------------------------------------------
def _against_mse(
    label: str, members: list[dict], groups: dict[str, list[dict]], st: ClaimsSettings, notes: list[str]
) -> list[Claim]:
    """A jittered group against the MSE group of its model config, paired by seed: every quantity both measured,
    and the generalisation gap (a note instead where there is no such group or no shared seed)."""
    base = next(
        (
            g
            for g, ms in groups.items()
            if ms[0]["strategy"].get("name") == "mse" and ms[0]["model_key"] == members[0]["model_key"]
        ),
        None,
    )
    if base is None:
        notes.append(f"group {label!r} has no MSE group with the same model config: no comparisons")
        return []
    bm = {m["seed"]: m for m in groups[base]}
    gm = {m["seed"]: m for m in members}
    seeds = sorted(set(bm) & set(gm))
    if not seeds:
        notes.append(f"group {label!r} shares no seed with {base!r}: no paired comparisons")
        return []
    if len(seeds) < 2:
        notes.append(f"group {label!r} vs {base!r}: {ONE_SEED}; its verdicts read '{TOO_FEW_SEEDS}'")
    qg = {s: quantities(gm[s]) for s in seeds}
    qb = {s: quantities(bm[s]) for s in seeds}
    claims = []
    for name, q in qg[seeds[0]].items():
        if not all(name in qg[s] and name in qb[s] for s in seeds):
            continue  # measured for some runs only (e.g. results saved before the quantity existed)
        margin = st.margin_db if q.spec.kind == "noninferior" else 0.0
        claims.append(
            _compare(
                name,
                label,
                base,
                _values(qg, name, seeds),
                _values(qb, name, seeds),
                st,
                seeds,
                q.spec.kind,
                q.spec.hypothesis,
                margin,
            )
        )
    claims.append(_generalisation_claim(label, base, gm, bm, seeds, st))
    return claims


def judge_claims(
    entries: Sequence[dict[str, Any]], st: ClaimsSettings
) -> tuple[list[dict], list[Claim], list[str]]:
    """The verdicts from per-checkpoint measurements (``ClaimsResult.checkpoints``): group rows, claims and
    notes.  Pure: the same measurements and settings give the same claims, so old results can be re-judged
    (:func:`~landscape.claims.rejudge`) without measuring anything again."""
    entries = [dict(e) for e in entries]
    notes: list[str] = []
    # a group is one strategy *and* model config: two groups with one label (mse on UnrolledGD and on
    # UnrolledProxGD) get the architecture in their label, so they are never merged into one group
    for e, g in zip(entries, judge_labels(entries)):
        e["group"] = g
    check(
        len({e["group"] for e in entries}) == len({e["group_key"] for e in entries}),
        "check_claims: two different run configs share one group label; give them different strategies or archs",
    )
    groups: dict[str, list[dict]] = {}
    for e in entries:
        groups.setdefault(e["group"], []).append(e)
    claims: list[Claim] = []
    group_rows = []
    for label, members in groups.items():
        is_mse = members[0]["strategy"].get("name") == "mse"
        group_rows.append(
            {
                "group": label,
                "seeds": [m["seed"] for m in members],
                "baseline": is_mse,
                "paths": [m["path"] for m in members],
            }
        )
        claims.extend(_expansion_claims(label, members, st))
        if not is_mse:
            claims.extend(_against_mse(label, members, groups, st, notes))
    eq, eq_notes = _explicit_vs_jitter_claims(groups, st)
    link, link_notes = _link_claims(entries, st)
    return group_rows, claims + eq + link, notes + eq_notes + link_notes


def result_notes(activations: set, batch_size: Any) -> list[str]:
    """The notes every claims result carries (ReLU regularizers, H_K, the ``paper`` rule's batch max, tr H_k)."""
    out: list[str] = []
    if "relu" in activations:
        out.append(
            "ReLU regularizer: autograd gives the almost-everywhere Hessian (R'' = 0 off the kinks), so the "
            "predicted penalty misses the kinks' contribution; the measured excess / prediction gap is "
            "reported as measured."
        )
    out.append(
        "H_K = ∇²‖x − x*‖² = 2I whatever θ (and whatever A): training cannot change the last iterate's "
        "curvature, so flatness sums run over 1 ≤ k ≤ K−1 (H_0 is reported, not summed)."
    )
    out.append(
        f"The 'paper' rule's scale is one max over a training batch: the noise coordinates and the "
        f"'as trained' penalty rows take it over a batch of the run's batch size ({batch_size}: the analysed "
        "samples, all in one batch where they fit, topped up with training samples); the 'per sample' rows take the max per sample (a batch of one), "
        "a different, labelled quantity."
    )
    out.append(
        "tr H_k can cancel (H_k is indefinite): Σ ‖H_k‖_F (and Σ|λ| where the spectrum is exact) are "
        "judged beside it."
    )
    return out
