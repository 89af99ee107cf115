"""Where the curvature sits (issue 23's maps), in numbers: for each checkpoint of a `landscape analyze
--diagonal` run on the toy task, per k, the mean over samples of tr H_k (= Σ diag), the share of Σ|diag(H_k)|
on the positions next to a jump of the true piecewise-constant signal, and n_eff = (Σ|λ|)²/tr H² (dense).
One checkpoint per strategy and 4 samples: a description of these models, not a verdict on a method.

    landscape analyze runs/claims8/learned/mse-s0 runs/claims8/learned/sgd-jitter-s0 \\
        runs/claims8/penalty/curvature-penalty-s0 --out runs/maps-toy --samples 4 --diagonal --grid 5 \\
        --param-grid 0 --eps --threads 1 --export html
    python theory/curvature_maps.py runs/maps-toy
"""

import sys

import numpy as np

from landscape.checkpoint import load_checkpoint
from landscape.records import curvature_of, load_analysis

folder = sys.argv[1] if len(sys.argv) > 1 else "runs/maps-toy"
a = load_analysis(folder)
first = a["checkpoints"][0]
ck = load_checkpoint(first["path"])
n = len(curvature_of(first).at(1))
pairs = ck.test_pairs(n)
x = pairs.x.numpy()[:, 0]
jump = np.zeros_like(x, dtype=bool)
d = np.abs(np.diff(x, axis=1)) > 1e-9
jump[:, 1:] |= d
jump[:, :-1] |= d
print(f"{n} ID samples; {100 * jump.mean():.1f} % of positions are next to a jump\n")
print("| checkpoint | k | tr H_k | share of Σ|diag| at jumps | n_eff |")
print("|---|---|---|---|---|")
for e in a["checkpoints"]:
    c = curvature_of(e)
    for k in (1, 5, 9):
        ds = np.stack([np.asarray(s.diagonal.values).reshape(-1) for s in c.at(k)])
        share = (np.abs(ds) * jump).sum(1) / np.abs(ds).sum(1)
        neff = np.nanmean([s.curved_directions()["value"] for s in c.at(k)])
        print(f"| {e['label']} | {k} | {ds.sum(1).mean():.3g} | {share.mean():.2f} | {neff:.1f} |")
