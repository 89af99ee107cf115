"""The verdict rules' false-verdict rates and power (theory/claims.md), from the seeded simulation the tests
run (landscape.stats.simulate_verdicts; tests/test_stats.py asserts the same rates).  Run:
python theory/calibration.py"""

from landscape.stats import power, simulate_verdicts

M = 0.3  # margin of the noninferiority / equivalence rules in the simulation (per-seed sd = 1)
CASES = [
    ("lower (Δ < 0)", {"kind": "lower"}, 0.0, "supported"),
    ("lower (Δ < 0)", {"kind": "lower"}, 0.0, "contradicted"),
    ("noninferior (Δ > −m)", {"kind": "noninferior", "margin": M}, -M, "supported"),
    ("equal (|Δ − 1| ≤ m)", {"kind": "equal", "margin": M}, 1 - M, "supported"),
    ("equal (|Δ − 1| ≤ m)", {"kind": "equal", "margin": M}, 1 - M, "contradicted"),
    ("equivalent (|Δ| ≤ m)", {"kind": "equivalent", "margin": M}, M, "supported"),
    ("equivalent (|Δ| ≤ m)", {"kind": "equivalent", "margin": M}, M, "contradicted"),
]
SEEDS = (2, 3, 5, 10)
print("| rule | true mean (boundary) | false verdict | " + " | ".join(f"{n} seeds" for n in SEEDS) + " |")
print("|---|---|---|" + "---|" * len(SEEDS))
for law in ("normal", "laplace"):
    for name, rule, mean, wrong in CASES:
        r = [simulate_verdicts(mean, n, **rule, law=law, draws=20000, seed=1)[wrong] for n in SEEDS]
        print(f"| {name}, {law} | {mean:g} | {wrong} | " + " | ".join(f"{100 * x:.2f} %" for x in r) + " |")
print("\nPower of a one-directional verdict (t interval excludes 0), effect in units of the per-seed sd:\n")
print("| effect / sd | " + " | ".join(f"{n} seeds" for n in SEEDS) + " |")
print("|---|" + "---|" * len(SEEDS))
for d in (0.5, 1.0, 1.5, 2.0, 3.0):
    print(f"| {d:g} | " + " | ".join(f"{100 * power(d, 1.0, n):.0f} %" for n in SEEDS) + " |")
