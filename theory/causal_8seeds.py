"""theory/RESULTS.md's causal comparison (issue 23): the explicit curvature penalty beside MSE and SGD jittering
on the toy task, 8 seeds, learned step.  Merges the 8-seed claims run (runs/claims8/result/claims.json) with the
claims of the 8 curvature-penalty checkpoints measured with the same settings (runs/claims8/penalty-result/
claims.json) -- landscape.claims.merge_claims, which refuses results measured differently -- and prints
Markdown: the 'explicit ≈ jitter' claims, and each group against MSE on the same quantities.  Measures nothing
(``--out FILE`` also writes the merged result as a claims.json).

    python theory/causal_8seeds.py runs/claims8/result/claims.json runs/claims8/penalty-result/claims.json
"""

import json
import math
import sys
from dataclasses import replace
from pathlib import Path

from landscape.claims import ClaimsResult, merge_claims
from landscape.stats import seeds_needed, t_quantile
from landscape.viz.claims_report import claims_markdown

HERE = Path(__file__).resolve().parent
args = sys.argv[1:]
out = None
if "--out" in args:
    i = args.index("--out")
    out, args = Path(args[i + 1]), args[:i] + args[i + 2 :]
srcs = [Path(a) for a in args] or [HERE / "results_claims_8seeds.json", HERE / "results_claims_penalty.json"]
results = [ClaimsResult.from_dict(json.loads(p.read_text())) for p in srcs]
merged = merge_claims(results)
if out is not None:
    out.write_text(json.dumps(merged.to_dict(), indent=1, allow_nan=True))

learned = [c for c in merged.claims if "fixed step" not in c.group and "fixed step" not in (c.baseline or "")]
eq = [c for c in learned if c.name.startswith("explicit ≈ jitter")]
print("## Explicit penalty ≈ jitter (equivalence; seed-level t intervals over 8 seed pairs)\n")
print(claims_markdown(replace(merged, claims=tuple(eq))))
print(
    "\nSeeds each equivalence claim needs: the per-seed sd from the seed-level interval (h = t·sd/√n), and the "
    "fewest seeds whose two one-sided tests reach about 80 % power (each side 90 %) if the true difference is "
    "the measured one (none if it lies outside the band):\n"
)
print("| claim | estimate | per-seed sd | band | seeds needed |")
print("|---|---|---|---|---|")
for c in eq:
    iv = c.seed_level
    if iv is None:
        continue
    sd = (iv.high - iv.estimate) * math.sqrt(iv.n) / t_quantile(iv.level, iv.n - 1)
    if c.kind == "equivalent":
        room, band = c.margin - abs(iv.estimate), f"±{c.margin:g} dB"
    else:
        room, band = c.margin - abs(iv.estimate - 1), f"1 ± {c.margin:g}"
    need = (
        "none (the estimate is outside the band)"
        if room <= 0
        else seeds_needed(room, sd, target_power=0.9) or "over 1000"
    )
    print(f"| {c.name} | {iv.estimate:.4g} | {sd:.3g} | {band} | {need} |")
keep = (
    "flatness: Σ tr H_k [id]",
    "flatness: Σ ‖H_k‖_F [id]",
    "flatness: Σ |λ|(H_k) [id]",
    "accuracy: PSNR [id]",
    "attack: PSNR under PGD [id]",
    "robustness",
    "flatness: Σ noise coordinates [id]",
)
vs_mse = [
    c
    for c in learned
    if c.baseline
    and c.baseline.startswith("mse")
    and (c.name.startswith(keep) or c.name.startswith("accuracy: PSNR [ood"))
    and not c.name.startswith("explicit")
]
vs_mse.sort(key=lambda c: (c.name, c.group))
print("\n## Each training method against MSE (learned step, 8 seeds)\n")
print(claims_markdown(replace(merged, claims=tuple(vs_mse))))
