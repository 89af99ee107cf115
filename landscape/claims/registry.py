"""Every claim :func:`~landscape.claims.check_claims` judges, as a typed registry.

A :class:`ClaimSpec` says what one claim is: its registry ``key``, its ``family`` (the text before the colon of
its name), how its name is written (``template``, the part that varies filled in as ``{tag}``), how the
verdict reads its interval (``kind``, :func:`landscape.stats.verdict`) and the hypothesis it states
(theory/claims.md).  The measurement side asks the registry for a claim's spec by key
(:data:`CLAIMS`, :func:`spec`) and writes names with :meth:`ClaimSpec.name`; nothing parses a name back.

The names (and so ``claims.json`` and the tables) are those of the label table this registry replaced.
"""

from __future__ import annotations

from dataclasses import dataclass

from landscape.errors import check

#: How a verdict reads a claim's interval (:func:`landscape.stats.verdict`'s ``kind``).
KINDS = ("lower", "higher", "noninferior", "equivalent", "equal")


@dataclass(frozen=True)
class ClaimSpec:
    """One claim of the registry.

    ``template`` is the claim's name with ``{tag}`` where the varying part goes (a split such as ``id`` or
    ``ood:blur``; a rule and σ; another claim's name).  ``unit`` is the unit of the compared quantity where
    a band is stated in it (``"dB"`` for PSNR, whose "explicit ≈ jitter" band is ``equivalence_db``).
    """

    key: str
    family: str
    template: str
    kind: str
    hypothesis: str
    unit: str = ""

    def __post_init__(self) -> None:
        """Check ``kind``, and that ``template`` starts with ``family`` and holds ``{tag}``."""
        check(self.kind in KINDS, f"claim {self.key!r}: kind={self.kind!r}: expected one of {KINDS}")
        check(
            self.template.startswith(f"{self.family}") and "{tag}" in self.template,
            f"claim {self.key!r}: template={self.template!r}: expected '{self.family}...' with a {{tag}}",
        )

    def name(self, tag: str) -> str:
        """The claim's name for ``tag`` (as written in ``claims.json`` and the tables)."""
        return self.template.replace("{tag}", tag)

    def tag(self, name: str) -> str | None:
        """The ``{tag}`` part of a claim ``name`` written by this spec, or None when ``name`` is another claim's
        (the inverse of :meth:`name`, so readers of ``claims.json`` never match names by prefix themselves)."""
        head, _, tail = self.template.partition("{tag}")
        ok = name.startswith(head) and name.endswith(tail) and len(name) >= len(head) + len(tail)
        return name[len(head) : len(name) - len(tail)] if ok else None


_EXPLICIT = (
    "the explicit penalty trains models equivalent to jittering's (the Hessian-regularization argument "
    "made causal)"
)

_SPECS = (
    # per-sample quantities, each jittered group against its MSE group (landscape.claims.quantities)
    ClaimSpec(
        "flatness.trace",
        "flatness",
        "flatness: Σ tr H_k [{tag}]",
        "lower",
        "jittered models are flatter in iterate space: smaller Σ_{k=1}^{K-1} tr H_k "
        "(the quantity of the penalty; it can cancel, H_k being indefinite)",
    ),
    ClaimSpec(
        "flatness.frobenius",
        "flatness",
        "flatness: Σ ‖H_k‖_F [{tag}]",
        "lower",
        "jittered models are flatter in a measure that cannot cancel: smaller Σ_{k=1}^{K-1} ‖H_k‖_F",
    ),
    ClaimSpec(
        "flatness.abs_eigenvalues",
        "flatness",
        "flatness: Σ |λ|(H_k) [{tag}]",
        "lower",
        "jittered models are flatter in a measure that cannot cancel: smaller Σ_{k=1}^{K-1} Σ_i |λ_i(H_k)|",
    ),
    ClaimSpec(
        "flatness.lambda_max",
        "flatness",
        "flatness: mean λ_max(H_k) [{tag}]",
        "lower",
        "jittered models have smaller top eigenvalues λ_max(H_k), 1 ≤ k ≤ K−1",
    ),
    ClaimSpec(
        "flatness.noise_coordinates",
        "flatness",
        "flatness: Σ noise coordinates [{tag}]",
        "lower",
        "smaller implicit penalty Σ_k ½η_k²s_k² tr H_{k+1} at the reference rule, s_k as trained (one max "
        "over a training batch)",
    ),
    ClaimSpec(
        "flatness.regularizer_jacobian",
        "flatness",
        "flatness: Σ ‖J_R‖_F² [{tag}]",
        "lower",
        "the regularizer is smoother in its input: smaller Σ_k ‖J_R(x_k)‖_F²",
    ),
    ClaimSpec(
        "robustness",
        "robustness",
        "robustness: E‖x̂(y+e) − x*‖² [{tag}]",
        "lower",
        "Theorem 7.5 (average-case robustness): smaller E‖x̂(y+e) − x*‖² for random e",
    ),
    ClaimSpec(
        "accuracy.id",
        "accuracy",
        "accuracy: PSNR [{tag}]",
        "noninferior",
        "no accuracy loss in distribution: Δ PSNR > −margin",
        unit="dB",
    ),
    ClaimSpec(
        "accuracy.ood",
        "accuracy",
        "accuracy: PSNR [{tag}]",
        "higher",
        "better out of distribution: Δ PSNR > 0",
        unit="dB",
    ),
    ClaimSpec(
        "attack",
        "attack",
        "attack: PSNR under PGD [{tag}]",
        "higher",
        "better under the PGD attack: Δ PSNR > 0 (the paper's experiments; no theorem)",
        unit="dB",
    ),
    # claims judged from the measurements as a whole (landscape.claims.verdicts)
    ClaimSpec(
        "expansion",
        "expansion",
        "expansion: MC excess / predicted penalty [{tag}]",
        "equal",
        "the jittered loss equals the clean loss plus Σ_j ½η_j²s_j² tr H_{j+1} (second order in σ)",
    ),
    ClaimSpec(
        "generalisation",
        "generalisation",
        "generalisation: test − training risk [{tag}]",
        "lower",
        "Theorem 7.4: the jittered solution generalises no worse: smaller (test − training) squared error",
    ),
    ClaimSpec(
        "link",
        "link",
        "link: within-strategy rank association (Σ tr H_k [id], {tag})",
        "higher",
        "flatter checkpoints have lower OOD / attacked error beyond what their strategy and seed explain: "
        "positive association of within-group, within-seed centred ranks",
    ),
    ClaimSpec("explicit.accuracy", "explicit ≈ jitter", "explicit ≈ jitter: {tag}", "equivalent", _EXPLICIT),
    ClaimSpec("explicit.flatness", "explicit ≈ jitter", "explicit ≈ jitter: {tag} ratio", "equal", _EXPLICIT),
)

#: Every claim by key.
CLAIMS: dict[str, ClaimSpec] = {s.key: s for s in _SPECS}
check(len(CLAIMS) == len(_SPECS), "claims registry: two specs share one key")


def spec(key: str) -> ClaimSpec:
    """The registered claim ``key``; one-line error naming the key otherwise."""
    check(key in CLAIMS, f"claim key {key!r}: expected one of {sorted(CLAIMS)}")
    return CLAIMS[key]
