"""Figures and pages: every plotly figure (:mod:`~landscape.viz.figures`), the one HTML page assembly
(:mod:`~landscape.viz.page`), the analysis report (:mod:`~landscape.viz.report`), the claims page
(:mod:`~landscape.viz.claims_report`) and the notebook helpers (:mod:`~landscape.viz.notebook`).

Figures are pure functions of typed results; pages escape every string read from a file.  The package
imports nothing itself, so ``import landscape.viz`` stays cheap; import the module you need.
"""
