"""A compact copy of an experiment's results.json for docs/results/: per-sample evaluations, curvature and the
claims' per-checkpoint measurements left out (the tables, the verdicts and every run's summary stay).

    python theory/compact_results.py runs/exp-mri5/results.json docs/results/mri5.json "COMMAND"
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def compact(record: dict, source: str, command: str) -> dict:
    out = {k: v for k, v in record.items() if k != "claims"}
    out["runs"] = {
        name: {k: v for k, v in run.items() if k not in ("evaluation", "curvature")}
        for name, run in record["runs"].items()
    }
    out["note"] = (
        f"compact copy of {source} ({command}): per-sample evaluations, curvature and the claims' "
        "per-checkpoint measurements left out"
    )
    return out


if __name__ == "__main__":
    src, dst, command = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    if dst.exists():
        sys.exit(f"{dst} exists: expected a new file")
    dst.write_text(json.dumps(compact(json.loads(Path(src).read_text()), src, command), indent=1) + "\n")
    print(dst)
