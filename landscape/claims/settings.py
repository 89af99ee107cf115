"""What :func:`~landscape.claims.check_claims` measures and how much it spends; the result file's format."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from landscape.curvature.settings import CurvatureSettings
from landscape.errors import check

FORMAT = "landscape-claims"
#: Rules whose scale is one max over the training batch (their "as trained" penalty needs a training batch).
BATCH_MAX_MODES = ("paper", "paper-clean-path")
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ClaimsSettings:
    """What :func:`~landscape.claims.check_claims` measures and how much it spends.

    ``n_curvature`` ID samples (and ``n_ood_curvature`` per OOD split, at ``ood_iterates``) get the
    Hessian analysis; ``n_eval`` samples per split the accuracy / robustness / attack numbers.
    ``sigmas``: the σ of the penalty check (in each rule's own units).  ``margin_db``: the non-inferiority
    margin of the accuracy claim; ``expansion_margin``: the relative tolerance of the expansion claim;
    ``equivalence_db`` and ``equivalence_ratio``: the bands of the "explicit penalty ≈ jitter" claims (a
    ``curvature-penalty`` group against the ``sgd-jitter`` group of the same model, σ and rule).  All margins
    are fixed before any measurement and recorded.  ``curvature`` are the settings of the one
    curvature pipeline (:func:`landscape.curvature.analyze_iterates`), its defaults unless given; its seed is
    ``seed``.
    """

    n_curvature: int = 4
    n_ood_curvature: int = 4
    ood_iterates: str = "all"
    n_eval: int = 64
    sigmas: tuple[float, ...] = (0.025, 0.05, 0.1)
    mc_pairs: int = 512
    mc_dtype: str = "float32"  # the Monte Carlo runs in this dtype (clean loss too, so no bias between them)
    n_directions: int = 8
    attack: bool = True
    attack_steps: int | None = None  # PGD steps of the attack claim; None: the run's evaluation config's (20)
    curvature: CurvatureSettings = field(default_factory=CurvatureSettings)  # the pipeline's shared defaults
    regularizer_probes: int = 16
    level: float = 0.95
    n_perm: int = 9999  # random seed permutations of the link test when S! is larger (else all of them)
    margin_db: float = 0.1
    expansion_margin: float = 0.1
    equivalence_db: float = 0.1  # "explicit penalty ≈ jitter": |Δ PSNR| ≤ this, in dB
    equivalence_ratio: float = 0.2  # ... and Σ‖H_k‖_F (penalty / jitter) within 1 ± this
    seed: int = 0

    def __post_init__(self) -> None:
        """Read a ``curvature`` dict, make ``sigmas`` floats; check the counts, ``sigmas`` and ``level``."""
        object.__setattr__(self, "sigmas", tuple(float(s) for s in self.sigmas))
        if isinstance(self.curvature, dict):
            object.__setattr__(self, "curvature", CurvatureSettings.from_dict(self.curvature))
        for name in ("n_curvature", "n_eval", "mc_pairs", "n_directions", "n_perm"):
            v = getattr(self, name)
            check(isinstance(v, int) and v >= 1, f"{name}={v!r}: expected an integer >= 1")
        check(
            self.attack_steps is None or (isinstance(self.attack_steps, int) and self.attack_steps >= 1),
            f"attack_steps={self.attack_steps!r}: expected an integer >= 1, or None for the run's own",
        )
        check(
            isinstance(self.n_ood_curvature, int) and self.n_ood_curvature >= 0,
            f"n_ood_curvature={self.n_ood_curvature!r}: expected an integer >= 0",
        )
        check(
            len(self.sigmas) >= 1 and all(math.isfinite(s) and s > 0 for s in self.sigmas),
            f"sigmas={self.sigmas!r}: expected one or more numbers > 0",
        )
        check(0 < self.level < 1, f"level={self.level!r}: expected a number in (0, 1)")

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-safe dict (inverse of :meth:`from_dict`)."""
        d = asdict(self)
        d["sigmas"] = list(self.sigmas)
        d["curvature"] = self.curvature.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClaimsSettings:
        """The settings ``d`` holds; older results' fields (``n_boot``, flat curvature keys) are read too."""
        d = dict(d)
        d.pop("n_boot", None)  # results saved when seed intervals were percentile bootstraps
        # results saved before the claims took the shared curvature settings kept these fields flat
        old = {
            k: d.pop(k)
            for k in ("top_k", "bottom_k", "trace_rtol", "trace_max_matvecs", "eig_tol", "backend")
            if k in d
        }
        if old and "curvature" not in d:
            d["curvature"] = {**old, "method": "estimate"}
        return cls(**{**d, "sigmas": tuple(d.get("sigmas", cls.sigmas))})
