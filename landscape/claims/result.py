"""The claims result (``claims.json``): :class:`ClaimsResult`, its JSON round trip, re-judging and merging.

Every judged result is assembled by :func:`judged_result`, from measured checkpoint entries;
:func:`~landscape.claims.rejudge` and :func:`~landscape.claims.merge_claims` judge stored measurements again
without measuring anything.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from landscape.claims.claim import Claim
from landscape.claims.settings import FORMAT, FORMAT_VERSION, ClaimsSettings
from landscape.claims.verdicts import describe, judge_claims, judge_labels, result_notes
from landscape.errors import check


@dataclass(frozen=True)
class ClaimsResult:
    """What :func:`~landscape.claims.check_claims` returns: per-checkpoint measurements, the penalty check and
    the claims."""

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
            sl = (
                str(c.seed_level)
                if c.seed_level
                else (
                    f"rho {c.test.statistic if c.test.statistic is None else round(c.test.statistic, 3)}, "
                    f"p {min(c.test.p_greater, c.test.p_less):.3g}"
                    if c.test
                    else "-"
                )
            )
            rows.append((c.name, c.group, sl, str(c.paired) if c.paired else "-", c.verdict))
        w = [max(len(r[i]) for r in rows) for i in range(5)]
        return "\n".join("  ".join(x.ljust(w[i]) for i, x in enumerate(r)) for r in rows)

    def to_dict(self) -> dict[str, Any]:
        """The result as ``claims.json`` holds it (inverse of :meth:`from_dict`)."""
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
        check(
            d.get("format_version") == FORMAT_VERSION,
            f"claims format_version={d.get('format_version')!r}: this version reads {FORMAT_VERSION}",
        )
        result = cls(
            settings=ClaimsSettings.from_dict(d["settings"]),
            checkpoints=tuple(d["checkpoints"]),
            groups=tuple(d["groups"]),
            claims=tuple(Claim.from_dict(c) for c in d["claims"]),
            reference_jitter=d["reference_jitter"],
            notes=tuple(d.get("notes", ())),
            info=d.get("info", {}),
        )
        if not as_saved and _judged_by_bootstrap(
            d
        ):  # no verdict may rest on a percentile bootstrap over a few seeds
            judged = rejudge(result)
            note = (
                "Re-judged on load: this result was saved when seed-level intervals were percentile "
                "bootstraps over seeds; its verdicts now follow this version's rules, from its stored "
                "measurements (nothing re-measured)."
            )
            result = replace(judged, notes=(*judged.notes, note))
        return result


def _judged_by_bootstrap(d: dict[str, Any]) -> bool:
    """Whether a saved claims result's verdicts came from the old percentile-bootstrap rules."""
    methods = [
        str((c.get("seed_level") or {}).get("method", ""))
        for c in d.get("claims", ())
        if isinstance(c, dict) and isinstance(c.get("seed_level"), dict)
    ]
    return "n_boot" in (d.get("settings") or {}) or any(m.startswith("percentile bootstrap") for m in methods)


def rejudge(result: ClaimsResult, **overrides: Any) -> ClaimsResult:
    """The same measurements judged again by this version's rules (``overrides`` replace settings fields
    that only the verdicts use, e.g. ``level`` or ``margin_db``): nothing is measured."""
    st = replace(result.settings, **overrides)
    group_rows, claims, notes = judge_claims(result.checkpoints, st)
    acts = {e.get("activation") for e in result.checkpoints}
    bs = result.info.get("batch_size", "?")
    return replace(
        result,
        settings=st,
        groups=tuple(group_rows),
        claims=tuple(claims),
        notes=tuple(result_notes(acts, bs) + notes),
    )


def judged_result(
    entries: list[dict[str, Any]], st: ClaimsSettings, reference: dict[str, Any], info: dict[str, Any]
) -> ClaimsResult:
    """The :class:`ClaimsResult` of measured ``entries``: judged, labelled, with the notes and the batch sizes."""
    group_rows, claims, notes = judge_claims(entries, st)
    for e, g in zip(entries, judge_labels(entries)):
        e["group"] = g
    sizes = sorted({str(e.get("batch_size")) for e in entries})
    info = {**info, "batch_size": sizes[0] if len(sizes) == 1 else sizes}
    acts = {e.get("activation") for e in entries}
    return ClaimsResult(
        st,
        tuple(entries),
        tuple(group_rows),
        tuple(claims),
        reference,
        tuple(result_notes(acts, info["batch_size"]) + notes),
        info,
    )


def merge_claims(results: Sequence[ClaimsResult]) -> ClaimsResult:
    """One result from several measured with the same settings, reference rule and task, judged together.

    Each checkpoint's measurements depend only on the checkpoint, the settings and the reference rule, so
    checkpoints measured in separate ``check_claims`` calls (e.g. seeds or a strategy added later) give the
    claims one call over all of them would.  Refused, in one line, when the settings, reference rule or task
    differ, or when one run appears twice."""
    check(len(results) >= 1, "merge_claims: expected at least one claims result")
    first = results[0]
    for r in results[1:]:
        check(
            r.settings.to_dict() == first.settings.to_dict(),
            "merge_claims: the results were measured with different settings: "
            f"{_settings_diff(first.settings, r.settings)}",
        )
        check(
            r.reference_jitter == first.reference_jitter,
            f"merge_claims: reference rules differ "
            f"({first.reference_jitter} and {r.reference_jitter}): the noise coordinates are not comparable",
        )
        check(
            r.info.get("task") == first.info.get("task"), "merge_claims: the results are for different tasks"
        )
    entries, seen = [], {}
    for r in results:
        for e in r.checkpoints:
            e = dict(e)
            e["group"] = describe(json.loads(e["group_key"]))[1]  # the base label; judge_labels adds the arch
            ident = (e["group_key"], e["seed"])
            check(
                ident not in seen,
                f"merge_claims: {seen.get(ident)} and {e['path']} are the same run (strategy, "
                f"config and seed {e['seed']})",
            )
            seen[ident] = e["path"]
            entries.append(e)
    entries.sort(key=lambda e: (e["group_key"], e["seed"], e["path"]))  # check_claims' order
    info = {
        **first.info,
        "seconds": sum(float(r.info.get("seconds", 0.0)) for r in results),
        "merged_from": len(results),
    }
    return judged_result(entries, first.settings, first.reference_jitter, info)


def _settings_diff(a: ClaimsSettings, b: ClaimsSettings) -> str:
    da, db = a.to_dict(), b.to_dict()
    return ", ".join(
        f"{k}={da.get(k)!r} vs {db.get(k)!r}" for k in sorted(set(da) | set(db)) if da.get(k) != db.get(k)
    )
