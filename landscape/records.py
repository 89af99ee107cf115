"""The result records and their one reader: ``analysis.json`` (its format tag, its reader, which checks that
the file and the report written with it are still the pair :func:`landscape.io.write_group` wrote, and the
typed views of its entries), ``landscape hessian`` records and ``claims.json``, and their merge into one
analysis record (:func:`merge_results`, what ``landscape report`` draws).  :mod:`landscape.survey` writes
analyses; :mod:`landscape.viz.report`, :mod:`landscape.experiment` and the notebooks read every record through
:func:`read_result` / :func:`load_analysis`, which check the shape of what they read (the known top-level keys
and their types) and turn every failure into one ``ValueError`` line naming the file."""

from __future__ import annotations

import datetime as _dt
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from landscape import __version__
from landscape.claims import FORMAT as CLAIMS_FORMAT
from landscape.claims import ClaimsResult
from landscape.curvature.analysis import IterateCurvature
from landscape.errors import check
from landscape.io import MANIFEST_NAME, check_group, read_json, sha256_file

__all__ = [
    "FORMAT",
    "EXPECTED",
    "load_analysis",
    "read_result",
    "check_record",
    "curvature_of",
    "hessian_span",
    "merge_results",
    "resolve_result",
    "result_files",
]

#: The ``format`` tag of ``analysis.json`` files.
FORMAT = "landscape-analysis/2"

#: What a result file must be, as the one-line errors say it.
EXPECTED = (
    f'a landscape analysis.json, hessian record or claims.json (a JSON object with "format": "{FORMAT}" '
    f'or "{CLAIMS_FORMAT}", or a hessian record whose "result" is an IterateCurvature)'
)

_NONE = type(None)
_NUM = (int, float)
# the known top-level keys of each record and the types they may have (None: the key may hold null)
_ANALYSIS_KEYS: dict[str, tuple[type, ...]] = {
    "format": (str,),
    "created": (str, _NONE),
    "versions": (dict, _NONE),
    "settings": (dict, _NONE),
    "checkpoints": (list,),
    "evaluation": (dict, _NONE),
    "claims": (dict, _NONE),
    "sources": (list, _NONE),
}
_ENTRY_KEYS: dict[str, tuple[type, ...]] = {
    "label": (str, int),
    "path": (str, _NONE),
    "sha256": (str, _NONE),
    "curvature": (dict, _NONE),
    "density": (dict, _NONE),
    "density_k": (int, _NONE),
    "slices": (dict, _NONE),
    "slice_span": (dict, _NONE),
    "robustness": (dict, _NONE),
    "reconstruction": (dict, _NONE),
    "penalty": (dict, _NONE),
    "metrics": (dict, _NONE),
    "task": (dict, _NONE),
    "strategy": (dict, _NONE),
    "timings": (dict, _NONE),
    "epoch": (int, _NONE),
    "wall_time": (*_NUM, _NONE),
    "source": (str, _NONE),
}
_HESSIAN_KEYS: dict[str, tuple[type, ...]] = {
    "result": (dict,),
    "checkpoint": (str, _NONE),
    "task": (dict, _NONE),
    "versions": (dict, _NONE),
    "split": (str, _NONE),
    "n_samples": (int, _NONE),
    "command": (str, _NONE),
    "strategy": (str, _NONE),
}
_CLAIMS_KEYS: dict[str, tuple[type, ...]] = {
    "format": (str,),
    "settings": (dict,),
    "checkpoints": (list,),
    "groups": (list,),
    "claims": (list,),
    "reference_jitter": (dict,),
    "notes": (list, _NONE),
    "info": (dict, _NONE),
    "command": (str, _NONE),
}
_TYPE_NAMES = {
    dict: "an object",
    list: "a list",
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true/false",
    _NONE: "null",
}


def _kind(v: Any) -> str:
    return _TYPE_NAMES.get(type(v), type(v).__name__)


def _check_keys(
    d: dict[str, Any], known: dict[str, tuple[type, ...]], where: str, required: tuple[str, ...] = ()
) -> None:
    for key in required:
        check(key in d, f'{where}: no "{key}" field (expected {_TYPE_NAMES[known[key][0]]})')
    for key, types in known.items():
        if key in d:
            v = d[key]
            ok = isinstance(v, types) and not (isinstance(v, bool) and bool not in types)
            check(
                ok, f'{where}: "{key}" is {_kind(v)}, expected ' + " or ".join(_TYPE_NAMES[t] for t in types)
            )


def _parsed(where: str, what: str, build: Any) -> Any:
    """``build()``, its KeyError / TypeError / ValueError / IndexError / AttributeError as one line naming
    ``where``: the fields below the top level are checked by reading them into their typed results."""
    try:
        return build()
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        detail = (
            f"no field {exc}"
            if isinstance(exc, KeyError)
            else str(exc).splitlines()[0]
            if str(exc)
            else type(exc).__name__
        )
        raise ValueError(f"{where}: not a valid {what} ({detail})") from None


def check_record(d: Any, path: str | os.PathLike) -> str:
    """The kind of the result record ``d`` read from ``path``: ``"analysis"``, ``"hessian"`` or ``"claims"``.

    The one shape check of every result file: ``d`` must be a JSON object of one of the three kinds; its
    known top-level keys must have their types; each checkpoint entry of an analysis must be an object with
    typed known keys; the curvature results (an entry's ``curvature`` and ``density``, a hessian record's
    ``result``) and a claims result must read back into their typed classes.  ``ValueError`` (one line naming
    the file and what was expected) otherwise."""
    p = Path(path)
    check(isinstance(d, dict), f"{p}: expected {EXPECTED}, got {_kind(d)}")
    fmt = d.get("format")
    if fmt == FORMAT:
        _check_keys(d, _ANALYSIS_KEYS, str(p), ("checkpoints",))
        for i, e in enumerate(d["checkpoints"]):
            where = f"{p}: checkpoints[{i}]"
            check(
                isinstance(e, dict), f"{where} is {_kind(e)}, expected an object (one checkpoint's results)"
            )
            _check_keys(e, _ENTRY_KEYS, where)
            for key in ("curvature", "density"):
                if e.get(key):
                    _parsed(
                        f"{where}.{key}", "IterateCurvature", lambda v=e[key]: IterateCurvature.from_dict(v)
                    )
            for name, sl in (e.get("slices") or {}).items():
                check(
                    sl is None or isinstance(sl, dict),
                    f"{where}.slices.{name} is {_kind(sl)}, expected an object",
                )
        if d.get("claims"):
            _parsed(
                f"{p}: claims", "claims result", lambda: ClaimsResult.from_dict(d["claims"], as_saved=True)
            )
        return "analysis"
    if fmt == CLAIMS_FORMAT:
        _check_keys(
            d, _CLAIMS_KEYS, str(p), ("settings", "checkpoints", "groups", "claims", "reference_jitter")
        )
        _parsed(str(p), "claims result", lambda: ClaimsResult.from_dict(d, as_saved=True))  # shape only
        return "claims"
    if fmt is None and isinstance(d.get("result"), dict):
        _check_keys(d, _HESSIAN_KEYS, str(p), ("result",))
        _parsed(f"{p}: result", "IterateCurvature", lambda: IterateCurvature.from_dict(d["result"]))
        return "hessian"
    if fmt is None and d.get("kind") == "IterateCurvature":  # a bare IterateCurvature.to_dict()
        _parsed(str(p), "IterateCurvature", lambda: IterateCurvature.from_dict(d))
        return "hessian"
    raise ValueError(
        f"{p}: expected {EXPECTED}, got an object with format={fmt!r}"
        + ("" if fmt is not None else f" and keys {', '.join(sorted(map(str, d))[:6]) or 'none'}")
    )


def read_result(path: str | os.PathLike) -> tuple[str, dict[str, Any]]:
    """``(kind, record)`` of one result file (:func:`check_record`), read by :func:`landscape.io.read_json`:
    every failure, from an unreadable file to JSON nested 100 000 levels deep, is one line naming the file."""
    d = read_json(path, expected=EXPECTED)
    return check_record(d, path), d


def load_analysis(path: str | os.PathLike) -> dict[str, Any]:
    """Read ``analysis.json`` (a file, or the folder holding it), checked as :func:`check_record` says."""
    p = Path(path)
    if p.is_dir():
        p = p / "analysis.json"
    names = [n for n in ("analysis.json", "report.html") if (p.parent / n).exists()]
    if p.name == "analysis.json" and (p.parent / MANIFEST_NAME).exists():
        check_group(p.parent, names)  # the pair was written together and neither was replaced since
    d = read_json(p, expected=f'a landscape analysis.json (a JSON object with "format": "{FORMAT}")')
    fmt = d.get("format") if isinstance(d, dict) else None
    check(
        isinstance(d, dict) and isinstance(fmt, str) and fmt.startswith("landscape-analysis"),
        f"{p} is not a landscape analysis" + (f" (got {_kind(d)})" if not isinstance(d, dict) else ""),
    )
    check(
        fmt == FORMAT,
        f"{p} is not a landscape analysis of this version (format={fmt!r}, expected {FORMAT!r})",
    )
    check_record(d, p)
    return d


def hessian_span(res: IterateCurvature, k: int, sample: int = 0) -> float:
    r"""The slice half-width in Hessian units: :math:`\alpha^* = \sqrt{2 L_k / \lambda_{max}(H_k)}` for one
    sample, where the quadratic model along the top eigenvector rises by the loss itself."""
    s = next((sc for sc in res.at(k) if sc.sample == sample), None)
    check(s is not None and s.top is not None, f"no top eigenvalue at k={k} for sample {sample}")
    lam, loss = float(s.top.values[0]), float(s.loss)
    check(lam > 0 and math.isfinite(lam), f"lambda_max(H_{k}) = {lam:g}: a Hessian-unit span needs it > 0")
    return math.sqrt(2 * max(loss, 1e-300) / lam)


def curvature_of(entry: dict[str, Any]) -> IterateCurvature | None:
    """The typed curvature result of one checkpoint entry of ``analysis.json`` (``None`` if absent)."""
    c = entry.get("curvature")
    return None if not c else IterateCurvature.from_dict(c)


def resolve_result(path: str | os.PathLike) -> Path:
    """The file :func:`merge_results` reads for one RESULT: a folder's ``analysis.json``, or its
    ``claims.json`` when it holds no ``analysis.json`` (a ``landscape claims --out DIR`` folder); a file as
    it is."""
    q = Path(path)
    if q.is_dir():
        if not (q / "analysis.json").exists() and (q / "claims.json").exists():
            return q / "claims.json"
        return q / "analysis.json"
    return q


def result_files(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Every file :func:`merge_results` reads for ``paths``, the inputs of ``landscape report``: each
    result as :func:`resolve_result` finds it and, beside an ``analysis.json``, the ``report.html`` and the
    manifest its group check reads (a page written over that ``report.html`` would break the group)."""
    out: list[Path] = []
    for p in paths:
        q = resolve_result(p)
        out.append(q)
        if q.name == "analysis.json":
            out += [q.parent / "report.html", q.parent / MANIFEST_NAME]
    return out


def _checkpoint_identity(path: Any) -> str | None:
    """What makes two entries the same checkpoint: the sha256 of its file when it exists here (copies and
    links of one checkpoint agree), else its resolved path; None without a path."""
    if not isinstance(path, str) or not path:
        return None
    p = Path(os.path.realpath(path))
    try:
        return "sha256:" + sha256_file(p) if p.is_file() else str(p)
    except OSError:
        return str(p)


def _source(q: Path, kind: str, d: dict[str, Any]) -> dict[str, Any]:
    """One line of a merged report's header: the file, its kind, when and by which landscape it was written."""
    vers = d.get("versions") if kind != "claims" else (d.get("info") or {}).get("versions")
    out = {"file": str(q), "kind": kind}
    if isinstance(d.get("created"), str) and d["created"]:
        out["created"] = d["created"]
    if isinstance(vers, dict) and vers.get("landscape"):
        out["landscape"] = str(vers["landscape"])
    return out


def merge_results(paths: Sequence[str | os.PathLike]) -> dict[str, Any]:
    """One analysis record from saved results: ``analysis.json`` files (or folders), ``landscape hessian``
    records (each becomes a checkpoint entry with its curvature only) and a ``claims.json`` (its verdicts
    and figures become the report's claims section).  Nothing is recomputed.

    Every file is read and checked by :func:`landscape.records.read_result` (one line naming a bad file).
    The record's ``sources`` lists the files its numbers come from, which the page's header names.  A
    checkpoint that appears twice (the same file, by sha256, or the same resolved path: say in an analysis
    and in a hessian record) is drawn twice, as measured, and a ``UserWarning`` line names both inputs."""
    check(len(paths) > 0, "no results given: expected analysis.json files, folders or hessian records")
    entries: list[dict[str, Any]] = []
    sources: list[dict[str, Any]] = []
    seen: dict[str, tuple[str, Path]] = {}
    settings: dict[str, Any] = {}
    evaluation = claims = None
    for p in paths:
        q = resolve_result(
            p
        )  # a folder: its analysis.json, or the claims.json of a `landscape claims` folder
        if q.name == "analysis.json":
            kind, d = "analysis", load_analysis(q)  # its group check, then the shape check
        else:
            kind, d = read_result(q)
        sources.append(_source(q, kind, d))
        if kind == "claims":
            claims = d
            continue
        if kind == "analysis":
            new = list(d.get("checkpoints") or [])
            settings = settings or d.get("settings") or {}
            evaluation = evaluation or d.get("evaluation")
        else:
            res = d.get("result") if isinstance(d.get("result"), dict) else d
            label = Path(str(d.get("checkpoint") or q)).parent.name or q.stem
            new = [
                {"label": label, "path": d.get("checkpoint", str(q)), "curvature": res, "task": d.get("task")}
            ]
            settings = settings or {"samples": res.get("n_samples"), "curvature": res.get("settings", {})}
        for e in new:
            ident = _checkpoint_identity(e.get("path"))
            if ident is None:
                continue
            if ident in seen:
                lab, src = seen[ident]
                warnings.warn(
                    f"checkpoint {e.get('path')} appears twice: as {lab!r} from {src} and as "
                    f"{e.get('label')!r} from {q}; both are drawn (the same weights, measured twice)",
                    stacklevel=2,
                )
            else:
                seen[ident] = (str(e.get("label")), q)
        entries += new
    created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    out = {
        "format": FORMAT,
        "created": created,
        "versions": {"landscape": __version__},
        "sources": sources,
        "settings": settings,
        "checkpoints": entries,
    }
    if evaluation is not None:
        out["evaluation"] = evaluation
    if claims is not None:
        out["claims"] = claims
    return out
