"""theory/RESULTS.md's tables for the 8-seed run of record (runs/claims8/result/claims.json, copied to
theory/results_claims_8seeds.json): the verdict table, and every claim whose verdict differs between the
3-seed run under the old rules (percentile bootstrap), the same run re-judged under the new ones, and the
8-seed run.  Run: python theory/results_8seeds.py [claims.json]   (prints Markdown; measures nothing)"""

import json
import sys
from pathlib import Path

from landscape.claims import ClaimsResult, rejudge
from landscape.viz.claims_report import claims_markdown

HERE = Path(__file__).resolve().parent
src = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "results_claims_8seeds.json"
eight = ClaimsResult.from_dict(json.loads(src.read_text()))
old_raw = json.loads((HERE / "results_claims_main.json").read_text())
keep = (
    "name",
    "hypothesis",
    "quantity",
    "group",
    "baseline",
    "kind",
    "paired",
    "seed_level",
    "verdict",
    "basis",
    "margin",
    "note",
)
old_raw["claims"] = [{k: v for k, v in c.items() if k in keep} for c in old_raw["claims"]]
old = ClaimsResult.from_dict(old_raw, as_saved=True)  # the old verdicts, to compare
new3 = rejudge(old)


def key(c):
    name = c.name.replace(", per sample, σ=", ", σ=")  # the 3-seed run had only the per-sample rows
    name = name.replace("link: within-strategy rank association (", "link: Spearman(")
    return f"{name} | {c.group}"


print("## Verdicts, 8 seeds\n")
print(claims_markdown(eight))
b3, n3, e8 = ({key(c): c for c in r.claims} for r in (old, new3, eight))
print("\n## Verdicts that differ: 3 seeds (old rules), 3 seeds (new rules), 8 seeds\n")
print("| claim | group | 3 seeds, bootstrap | 3 seeds, t | 8 seeds, t | 8-seed interval |")
print("|---|---|---|---|---|---|")
n = 0
for k in sorted(set(b3) | set(e8), key=lambda k: (k.split(" | ")[1], k)):
    vs = [d[k].verdict if k in d else "–" for d in (b3, n3, e8)]
    if len(set(vs)) > 1:
        n += 1
        c = e8.get(k)
        iv = (
            "–"
            if c is None
            else (
                c.seed_level
                if c.seed_level is not None
                else f"p {c.test.p_greater:.3g} / {c.test.p_less:.3g}"
                if c.test
                else "–"
            )
        )
        name, group = k.split(" | ")
        print(f"| {name} | {group} | {vs[0]} | {vs[1]} | **{vs[2]}** | {iv} |")
print(f"\n{n} claims differ ({len(e8)} claims in the 8-seed run, {len(b3)} in the 3-seed run)")
