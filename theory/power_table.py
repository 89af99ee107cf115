"""The power table of theory/claims.md: from the measured seed-to-seed spread of each paired difference
(SGD jitter − MSE, GD architecture), the smallest effect each seed count detects with 80 % power at the
verdicts' level, and the seeds the paper's effect sizes need.

Run: python theory/power_table.py  (reads docs/results/{denoise,seismic,mri}.json and, when present,
runs/claims8/result/claims.json; prints Markdown)."""

import json
import math
from pathlib import Path

import numpy as np

from landscape.stats import min_detectable_effect, seeds_needed

ROOT = Path(__file__).resolve().parents[1]
# the paper's SGD jitter − MSE differences (dB), PAPER.md's tables: (ID, PGD-attacked, OOD)
PAPER = {
    "seismic": (35.10 - 34.64, 29.89 - 28.85, 34.93 - 34.57),
    "mri": (28.22 - 28.21, 26.77 - 25.68, 30.36 - 29.92),
}
COUNTS = (3, 5, 8, 10)


def sd(values):
    v = np.asarray(values, dtype=float)
    return float(v.std(ddof=1)) if v.size >= 2 else math.nan


def fmt(x, d=2):
    return "–" if x is None or not math.isfinite(x) else f"{x:.{d}g}" if abs(x) < 0.01 else f"{x:.{d}f}"


rows = []
for task in ("denoise", "seismic", "mri"):
    t = json.loads((ROOT / "docs" / "results" / f"{task}.json").read_text())["tables"]
    row = next(r for r in t["paired"] if r["label"].startswith("SGD jitter") and "(GD)" in r["label"])
    cells = row["cells"]
    ood = [np.mean(v) for v in zip(*[cells[k]["psnr"]["values"] for k in t["ood_keys"]])]
    for name, vals, paper in (
        ("ID PSNR", cells["id"]["psnr"]["values"], 0),
        (f"PGD PSNR ({t['pgd_key']})", cells[t["pgd_key"]]["psnr"]["values"], 1),
        ("OOD PSNR (mean over shifts)", ood, 2),
    ):
        s = sd(vals)
        eff = PAPER.get(task, (None,) * 3)[paper]
        need = seeds_needed(eff, s) if eff is not None else None
        rows.append(
            (
                task,
                name,
                len(vals),
                float(np.mean(vals)),
                s,
                [min_detectable_effect(s, n) for n in COUNTS],
                eff,
                need,
            )
        )
print(
    "| task | quantity (dB, SGD jitter − MSE, GD) | seeds measured | mean | seed sd | "
    + " | ".join(f"MDE at {n} seeds" for n in COUNTS)
    + " | paper's effect | seeds it needs |"
)
print("|---|---|---|---|---|" + "---|" * len(COUNTS) + "---|---|")
for task, name, n, m, s, mde, eff, need in rows:
    print(
        f"| {task} | {name} | {n} | {m:+.3f} | {fmt(s, 3)} | "
        + " | ".join(fmt(x, 3) for x in mde)
        + f" | {'–' if eff is None else f'{eff:+.2f}'} | {'–' if eff is None else (need or '> 1000')} |"
    )

claims = ROOT / "runs" / "claims8" / "result" / "claims.json"
if claims.exists():
    d = json.loads(claims.read_text())
    print("\nToy task (theory/RESULTS.md, learned step), from the claims' per-seed values:\n")
    print("| claim | seeds | mean | seed sd | " + " | ".join(f"MDE at {n}" for n in COUNTS) + " |")
    print("|---|---|---|---|" + "---|" * len(COUNTS))
    for c in d["claims"]:
        sl = c.get("seed_level")
        if not sl or c["group"].endswith("fixed step") or c["name"].startswith("expansion"):
            continue
        n = sl["n"]
        s = (
            (sl["high"] - sl["estimate"])
            * math.sqrt(n)
            / __import__("landscape.stats").stats.t_quantile(sl["level"], n - 1)
        )
        print(
            f"| {c['name']} | {n} | {sl['estimate']:+.4g} | {s:.3g} | "
            + " | ".join(fmt(min_detectable_effect(s, k), 3) for k in COUNTS)
            + " |"
        )
