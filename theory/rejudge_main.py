"""Re-judge theory/results_claims_main.json (the 12-checkpoint run of record, 3 seeds) with this version's verdict
rules, measuring nothing again, and list every verdict that changed.  Run: python theory/rejudge_main.py"""

import json
from pathlib import Path

from landscape.claims import ClaimsResult, rejudge

old = json.loads(Path(__file__).with_name("results_claims_main.json").read_text())
old["claims"] = [
    {
        k: v
        for k, v in c.items()
        if k
        in (
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
    }
    for c in old["claims"]
]
res = ClaimsResult.from_dict(old, as_saved=True)  # the old verdicts, to compare
new = rejudge(res)


def key(c):
    name = c.name.replace(", per sample, σ=", ", σ=")  # the per-sample rows kept their meaning
    name = name.replace("link: within-strategy rank association (", "link: Spearman(")
    return f"{name} | {c.group}"


before = {key(c): c for c in res.claims}
after = {key(c): c for c in new.claims}
print("| claim | group | old interval (percentile bootstrap) | old | new interval (t, n−1 df) | new |")
print("|---|---|---|---|---|---|")
n = 0
for k, c in after.items():
    b = before.get(k)
    if b is None or b.verdict != c.verdict:
        n += 1
        oi = b.seed_level if b is not None and b.seed_level is not None else None
        ni = c.seed_level if c.seed_level is not None else (f"p = {c.test.p_greater:.3g}" if c.test else "–")
        print(
            f"| {c.name} | {c.group} | {oi if oi else '–'} | {b.verdict if b else '–'} | {ni} | **{c.verdict}** |"
        )
print(f"\n{n} of {len(after)} verdicts changed")
