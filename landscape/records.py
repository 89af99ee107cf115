"""The ``analysis.json`` record: its format tag, its reader (which checks that the file and the report
written with it are still the pair :func:`landscape.io.write_group` wrote) and the typed views of its
entries.  :mod:`landscape.analyze` writes it; :mod:`landscape.report`, :mod:`landscape.experiment` and the
notebooks read it through here."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from landscape.curvature.analysis import IterateCurvature
from landscape.errors import check
from landscape.io import MANIFEST_NAME, check_group

__all__ = ["FORMAT", "load_analysis", "curvature_of", "hessian_span"]

#: The ``format`` tag of ``analysis.json`` files.
FORMAT = "landscape-analysis/2"


def load_analysis(path: str | os.PathLike) -> dict[str, Any]:
    """Read ``analysis.json`` (a file, or the folder holding it)."""
    p = Path(path)
    if p.is_dir():
        p = p / "analysis.json"
    names = [n for n in ("analysis.json", "report.html") if (p.parent / n).exists()]
    if p.name == "analysis.json" and (p.parent / MANIFEST_NAME).exists():
        check_group(p.parent, names)  # the pair was written together and neither was replaced since
    with open(p, encoding="utf-8") as fh:
        d = json.load(fh)
    check(d.get("format") == FORMAT, f"{p} is not a landscape analysis of this version (format={d.get('format')!r}, "
          f"expected {FORMAT!r})")
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
