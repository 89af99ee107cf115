r"""Training strategies: how one batch ``(x, y)`` becomes the loss the optimiser minimises.

Every strategy is a small frozen config object with a ``train_step`` (the :class:`Strategy` protocol)
and a ``configure_model`` hook that sets the architecture it trains.  The loss is
always the plain mean squared error :math:`\operatorname{mean}\,(\hat x - x)^2` (per entry, over the
batch); the strategies differ only in what is perturbed:

* ``mse`` — nothing: :math:`\hat x = f_\theta(y)`.
* ``input-jitter`` — the measurement: :math:`\hat x = f_\theta(y + P w)`, :math:`w \sim N(0, \sigma_w^2 I)`
  (``P = physics.project_measurement``: for MRI the noise stays on sampled k-space lines).
* ``adversarial`` — the measurement, in the worst direction: :math:`\hat x = f_\theta(y + \delta)` with δ
  from ℓ2 PGD (:mod:`landscape.attacks`, ε absolute or relative to ‖y‖); :math:`x_0` is recomputed
  from :math:`y + \delta`.  Costs about T + 1 times an MSE step.
* ``sgd-jitter`` — the iterates: Gaussian noise inside every unrolled gradient step of
  :class:`~landscape.models.UnrolledGD`.  The strategy holds the noise rule (:attr:`SGDJitter.jitter`, a
  :class:`~landscape.jitter.JitterConfig`) and passes it to the network in its training step,
  ``model(y, jitter=self.jitter)``; the network itself holds none, so validation, evaluation and analysis
  run the clean solver.
* ``spgd-jitter`` — the same inside the argument of the learned proximal map of
  :class:`~landscape.models.UnrolledProxGD` (``arch='prox'``).
* ``curvature-penalty`` — nothing is perturbed: the loss is MSE plus the jitter's implicit penalty made
  explicit, :math:`\lambda\sum_k \tfrac12\eta_k^2 s_k^2\operatorname{tr}H_{k+1}` (per entry, as the MSE),
  from a differentiable Hutchinson estimate (:mod:`landscape.penalty`) with the scale rule of the jitter it
  mirrors.  The causal control of the Hessian-regularization argument.

Every strategy has ``noise``: the iterate noise it trains the solver with (the jittering strategies' rule,
None for the others, ``curvature-penalty`` included: its network runs clean) — the read-only way for analysis
code to know the trained rule.

Each strategy class declares the command-line flags of its options (``flags``, :class:`OptionFlag` entries of
:data:`OPTION_FLAGS`): ``landscape train`` builds its strategy flags from them and refuses a flag the chosen
strategy does not declare, and :func:`landscape.train.make_train_config` takes their keywords.

``STRATEGIES`` maps each name to its config class; :func:`make_strategy` and
:func:`strategy_from_config` build one from keyword options or a saved ``to_dict()``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from landscape.attacks import PGDConfig, pgd_attack
from landscape.errors import check, check_count, check_nonneg_float
from landscape.jitter import JITTER_MODES, MODE_ALIASES, JitterConfig, canonical_mode
from landscape.models import ModelConfig, UnrolledGD
from landscape.penalty import PENALTY_PARTS, noise_penalty

__all__ = [
    "Strategy",
    "MSE",
    "InputJitter",
    "Adversarial",
    "SGDJitter",
    "SPGDJitter",
    "CurvaturePenalty",
    "STRATEGIES",
    "OptionFlag",
    "OPTION_FLAGS",
    "option_keywords",
    "make_strategy",
    "strategy_options",
    "strategy_from_config",
    "trained_noise",
    "mse_loss",
]


def mse_loss(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The training loss of every strategy: mean of the squared error over entries and batch."""
    return F.mse_loss(x_hat, x)


@dataclass(frozen=True)
class OptionFlag:
    """A strategy option's command-line flag, as ``landscape train`` declares it.

    ``flag`` (``--sigma``) sets option ``option`` (the strategy's field, ``sigma``); ``keyword`` is its name as
    a keyword of :func:`landscape.train.make_train_config` (also argparse's ``dest``).  ``kind`` says how the
    CLI parses the value: ``sigma-list`` (a number or a comma list), ``float>=0``, ``float>0``, ``int>=1``,
    ``choice`` (one of ``choices``) or ``switch`` (no value: the option is set to ``value`` when given);
    ``limit`` names the :data:`landscape.errors.COUNT_LIMITS` bound of an integer.  ``metavar`` and ``help`` are
    the argparse ones.
    """

    flag: str
    option: str
    kind: str
    help: str
    metavar: str | None = None
    choices: tuple[str, ...] = ()
    value: Any = None
    limit: str | None = None

    @property
    def keyword(self) -> str:
        """The flag as a keyword: ``--jitter-mode`` -> ``jitter_mode``."""
        return self.flag.lstrip("-").replace("-", "_")


SIGMA = OptionFlag(
    "--sigma",
    "sigma",
    "sigma-list",
    metavar="S",
    help="noise level: input-jitter sigma_w per entry; sgd/spgd-jitter sigma, one number or one per "
    "iteration as a comma list (e.g. 0.1,0.1,0.1,0.1,0.1,0.1,0.1,0.1,0,0). Default: the preset's",
)
JITTER_MODE = OptionFlag(
    "--jitter-mode",
    "mode",
    "choice",
    choices=JITTER_MODES + tuple(MODE_ALIASES),
    help="sgd/spgd-jitter noise rule: paper (std sigma * max(x_k - eta A^T(A x_k - y)) over the batch, "
    "not detached: the official code's rule; preset default), absolute (std sigma), normalized "
    "(std sigma/sqrt(n)), per-sample-step (std sigma * max|gradient step| per sample, detached; "
    "'relative' is its deprecated name), paper-clean-path (the paper rule with its scale taken "
    "from the un-jittered trajectory, a control)",
)
EPS = OptionFlag(
    "--eps",
    "eps",
    "float>=0",
    help="adversarial: PGD radius (relative to ||y|| per sample unless --eps-absolute)",
)
EPS_ABSOLUTE = OptionFlag(
    "--eps-absolute", "relative", "switch", value=False, help="adversarial: --eps is an absolute l2 norm"
)
ATTACK_STEPS = OptionFlag(
    "--attack-steps", "steps", "int>=1", metavar="T", limit="attack_steps", help="adversarial: PGD steps T"
)
ATTACK_STEP_SIZE = OptionFlag(
    "--attack-step-size",
    "step_size",
    "float>0",
    metavar="A",
    help="adversarial: PGD step as a fraction of eps",
)
PENALTY_WEIGHT = OptionFlag(
    "--penalty-weight",
    "weight",
    "float>=0",
    metavar="L",
    help="curvature-penalty: the weight lambda of the penalty (default 1: the expansion's own)",
)
PENALTY_PROBES = OptionFlag(
    "--penalty-probes",
    "probes",
    "int>=1",
    metavar="P",
    limit="probes",
    help="curvature-penalty: Rademacher probes per step, one per iterate each (default 1)",
)
PENALTY_PART = OptionFlag(
    "--penalty-part",
    "part",
    "choice",
    choices=PENALTY_PARTS,
    help="curvature-penalty: full (1/2 tr H, default) or gauss-newton (||J||_F^2 only)",
)

#: Every strategy flag, in the order ``landscape train --help`` lists them; each strategy class declares the
#: ones it takes in its ``flags``.
OPTION_FLAGS: tuple[OptionFlag, ...] = (
    SIGMA,
    JITTER_MODE,
    EPS,
    EPS_ABSOLUTE,
    ATTACK_STEPS,
    ATTACK_STEP_SIZE,
    PENALTY_WEIGHT,
    PENALTY_PROBES,
    PENALTY_PART,
)


def option_keywords() -> dict[str, OptionFlag]:
    """``make_train_config`` keyword -> its :class:`OptionFlag` (``jitter_mode`` -> ``--jitter-mode``, option
    ``mode``).  The switch ``--eps-absolute`` is also reachable by its option's own keyword ``eps_relative``."""
    out: dict[str, OptionFlag] = {}
    for f in OPTION_FLAGS:
        out[f.keyword] = f
        if f is EPS_ABSOLUTE:
            out["eps_relative"] = dataclasses.replace(f, kind="bool")
    return out


@runtime_checkable
class Strategy(Protocol):
    """What the :class:`~landscape.train.Trainer` needs from a strategy."""

    name: ClassVar[str]
    #: The command-line flags of its options (see :class:`OptionFlag`).
    flags: ClassVar[tuple[OptionFlag, ...]]

    @property
    def noise(self) -> JitterConfig | None:
        """The iterate noise the strategy trains the solver with (None: the clean solver)."""
        ...

    def configure_model(self, config: ModelConfig) -> ModelConfig:
        """The model config this strategy trains (e.g. the architecture its noise enters)."""
        ...

    def train_step(
        self, model: UnrolledGD, x: torch.Tensor, y: torch.Tensor, *, generator: torch.Generator | None
    ) -> torch.Tensor:
        """Scalar loss of one batch; the Trainer backpropagates it and steps the optimiser."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """The strategy as a JSON-safe dict; :func:`strategy_from_config` rebuilds it."""
        ...


class _Clean:
    """What the strategies without iterate noise share: the model config as given, no noise."""

    flags: ClassVar[tuple[OptionFlag, ...]] = ()

    @property
    def noise(self) -> JitterConfig | None:
        return None

    def configure_model(self, config: ModelConfig) -> ModelConfig:
        return config


@dataclass(frozen=True)
class MSE(_Clean):
    """Plain supervised training of the clean unrolled network."""

    name: ClassVar[str] = "mse"

    def train_step(self, model, x, y, *, generator=None):
        """MSE of the clean network's output on ``y`` (``generator`` unused)."""
        return mse_loss(model(y), x)

    def to_dict(self) -> dict[str, Any]:
        """``{'name': 'mse'}``: no options."""
        return {"name": self.name}


@dataclass(frozen=True)
class InputJitter(_Clean):
    """Gaussian noise of std ``sigma`` per entry added to the measurement, fresh every step."""

    name: ClassVar[str] = "input-jitter"
    flags: ClassVar[tuple[OptionFlag, ...]] = (SIGMA,)
    sigma: float = 0.05

    def __post_init__(self) -> None:
        """Check ``sigma``: one finite number >= 0."""
        check(
            isinstance(self.sigma, (int, float)) and math.isfinite(self.sigma) and self.sigma >= 0,
            f"sigma={self.sigma!r}: input jitter expects one finite number >= 0",
        )

    def train_step(self, model, x, y, *, generator=None):
        """MSE on ``y + P w``, ``w`` of std ``sigma`` from ``generator`` (``P``: ``project_measurement``)."""
        dev = generator.device if generator is not None else y.device
        w = torch.randn(y.shape, generator=generator, dtype=y.dtype, device=dev).to(y.device)
        w = model.physics.project_measurement(self.sigma * w)
        return mse_loss(model(y + w), x)

    def to_dict(self) -> dict[str, Any]:
        """The name and ``sigma``."""
        return {"name": self.name, "sigma": self.sigma}


@dataclass(frozen=True)
class Adversarial(_Clean):
    """Training on ℓ2 PGD-perturbed measurements (Madry-style, adversarial examples only)."""

    name: ClassVar[str] = "adversarial"
    flags: ClassVar[tuple[OptionFlag, ...]] = (EPS, EPS_ABSOLUTE, ATTACK_STEPS, ATTACK_STEP_SIZE)
    attack: PGDConfig = field(default_factory=PGDConfig)

    def __post_init__(self) -> None:
        """Turn an ``attack`` dict (a saved config) into a :class:`~landscape.attacks.PGDConfig`."""
        if isinstance(self.attack, dict):
            object.__setattr__(self, "attack", PGDConfig(**self.attack))

    def train_step(self, model, x, y, *, generator=None):
        """MSE on ``y + δ``, δ from ℓ2 PGD against the bare network (``generator``: its random start)."""
        # the attack runs on the bare network: under DistributedDataParallel (``model.module``) only the
        # training forward may go through the gradient-averaging wrapper
        bare = getattr(model, "module", model)
        delta = pgd_attack(
            bare, y, x, self.attack, project=bare.physics.project_measurement, generator=generator
        )
        return mse_loss(model(y + delta), x)

    def to_dict(self) -> dict[str, Any]:
        """The name and the attack's config as a dict."""
        return {"name": self.name, "attack": self.attack.to_dict()}


def _jitter_config(sigma: Any, mode: str) -> JitterConfig:
    return JitterConfig(tuple(sigma) if isinstance(sigma, (list, tuple)) else sigma, mode)


@dataclass(frozen=True)
class SGDJitter:
    """Noise :math:`w_k` inside every unrolled gradient step (UnrolledGD), in training only.

    ``sigma`` is one number or one per iteration; ``mode`` is a :data:`landscape.jitter.JITTER_MODES` rule
    (default ``'paper'``, the official code's rule; the deprecated ``'relative'`` is read as
    ``'per-sample-step'``).  The strategy holds the rule (:attr:`jitter`) and passes it to the network in
    :meth:`train_step`; the noise is drawn from the model's generator (:meth:`UnrolledGD.set_generator`).
    """

    name: ClassVar[str] = "sgd-jitter"
    arch: ClassVar[str] = "gd"
    flags: ClassVar[tuple[OptionFlag, ...]] = (SIGMA, JITTER_MODE)
    sigma: float | tuple[float, ...] = 0.1
    mode: str = "paper"

    def __post_init__(self) -> None:
        """Store ``mode`` by its current name; check ``sigma`` (a list becomes a tuple)."""
        object.__setattr__(self, "mode", canonical_mode(self.mode))
        jc = _jitter_config(self.sigma, self.mode)  # validates sigma
        object.__setattr__(self, "sigma", jc.sigma)

    @property
    def jitter(self) -> JitterConfig:
        """The noise rule this strategy trains with."""
        return JitterConfig(self.sigma, self.mode)

    @property
    def noise(self) -> JitterConfig:
        """The iterate noise of training: :attr:`jitter`."""
        return self.jitter

    def configure_model(self, config: ModelConfig) -> ModelConfig:
        """``config`` with this strategy's architecture (its σ list is checked against K here)."""
        self.jitter.sigma_at(0, config.n_iter)  # a per-iteration σ needs one entry per iteration
        return dataclasses.replace(config, arch=self.arch)

    def train_step(self, model, x, y, *, generator=None):
        """MSE of ``model(y, jitter=self.jitter)``, noise from the model's generator; needs this ``arch``."""
        check(
            model.arch == self.arch,
            f"{self.name} trains arch={self.arch!r} models, got {model.arch!r}",
        )
        return mse_loss(model(y, jitter=self.jitter), x)  # the noise from the model's own generator

    def to_dict(self) -> dict[str, Any]:
        """The name, ``sigma`` (a list when per iteration) and ``mode``."""
        s = self.sigma
        return {"name": self.name, "sigma": list(s) if isinstance(s, tuple) else s, "mode": self.mode}


@dataclass(frozen=True)
class SPGDJitter(SGDJitter):
    """Noise inside the argument of the learned proximal map (UnrolledProxGD, ``arch='prox'``)."""

    name: ClassVar[str] = "spgd-jitter"
    arch: ClassVar[str] = "prox"


@dataclass(frozen=True)
class CurvaturePenalty:
    r"""MSE plus the explicit penalty :math:`\lambda\sum_k \tfrac12\eta_k^2 s_k^2\operatorname{tr}H_{k+1}`.

    ``sigma`` and ``mode`` are those of the jitter it mirrors (the scale :math:`s_k` by the same rule, on the
    clean path); ``weight`` λ = 1 is the second-order expansion's own penalty, λ = 0 plain MSE; ``probes``
    Rademacher probes (one per iterate each) per training step; ``part='gauss-newton'`` keeps only the
    Jacobian term :math:`\eta_k^2 s_k^2\|J_{k+1}\|_F^2`.  The network is trained without noise.  See
    :mod:`landscape.penalty`.
    """

    name: ClassVar[str] = "curvature-penalty"
    flags: ClassVar[tuple[OptionFlag, ...]] = (
        SIGMA,
        JITTER_MODE,
        PENALTY_WEIGHT,
        PENALTY_PROBES,
        PENALTY_PART,
    )
    sigma: float | tuple[float, ...] = 0.1
    mode: str = "paper"
    weight: float = 1.0
    probes: int = 1
    part: str = "full"

    def __post_init__(self) -> None:
        """Store ``mode`` by its current name; check ``sigma``, ``weight``, ``probes`` and ``part``."""
        object.__setattr__(self, "mode", canonical_mode(self.mode))
        object.__setattr__(self, "sigma", _jitter_config(self.sigma, self.mode).sigma)  # validates sigma
        object.__setattr__(self, "weight", check_nonneg_float(self.weight, "weight"))
        check_count(self.probes, "probes")
        check(self.part in PENALTY_PARTS, f"part={self.part!r}: expected one of {PENALTY_PARTS}")

    @property
    def jitter(self) -> JitterConfig:
        """The jitter rule whose penalty this strategy trains with."""
        return _jitter_config(self.sigma, self.mode)

    @property
    def noise(self) -> None:
        """None: the network is trained without noise (:attr:`jitter` is the rule its penalty mirrors)."""
        return None

    def configure_model(self, config: ModelConfig) -> ModelConfig:
        """``config`` as given: the network trains without noise."""
        return config

    def train_step(self, model, x, y, *, generator=None):
        """MSE plus ``weight`` × the Hutchinson penalty, per entry (probes: ``generator``); not under DDP."""
        check(
            getattr(model, "module", model) is model,
            "curvature-penalty does not run under --distributed: its nested forward-mode pass bypasses the "
            "gradient-averaging wrapper; train it in one process",
        )
        out, pen = noise_penalty(
            model, x, y, self.jitter, probes=self.probes, part=self.part, generator=generator
        )
        return mse_loss(out, x) + self.weight * pen.sum() / x.numel()

    def to_dict(self) -> dict[str, Any]:
        """The name and every option (``sigma`` a list when per iteration)."""
        s = self.sigma
        return {
            "name": self.name,
            "sigma": list(s) if isinstance(s, tuple) else s,
            "mode": self.mode,
            "weight": self.weight,
            "probes": self.probes,
            "part": self.part,
        }


STRATEGIES: dict[str, type] = {
    cls.name: cls for cls in (MSE, InputJitter, Adversarial, SGDJitter, SPGDJitter, CurvaturePenalty)
}


def strategy_options(name: str) -> tuple[str, ...]:
    """The option names strategy ``name`` declares (its config dataclass fields; ``adversarial`` also takes
    the :class:`~landscape.attacks.PGDConfig` fields directly)."""
    check(name in STRATEGIES, f"strategy={name!r}: expected one of {sorted(STRATEGIES)}")
    cls = STRATEGIES[name]
    names = [f.name for f in dataclasses.fields(cls)]
    if cls is Adversarial:
        names += [f.name for f in dataclasses.fields(PGDConfig)]
    return tuple(names)


def make_strategy(name: str, **options: Any) -> Strategy:
    """Build a strategy by name; ``options`` are its config fields (``None`` values keep the default).

    ``adversarial`` also accepts the :class:`~landscape.attacks.PGDConfig` fields (``eps``, ``steps``,
    ``step_size``, ``relative``) directly.
    """
    check(name in STRATEGIES, f"strategy={name!r}: expected one of {sorted(STRATEGIES)}")
    cls = STRATEGIES[name]
    options = {k: v for k, v in options.items() if v is not None}
    if cls is Adversarial:
        pgd_fields = {f.name for f in dataclasses.fields(PGDConfig)}
        attack = dict(options.pop("attack", {}) or {})
        attack.update({k: options.pop(k) for k in list(options) if k in pgd_fields})
        options["attack"] = PGDConfig(**attack)
    allowed = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - allowed)
    check(not unknown, f"strategy {name!r} has no option(s) {unknown}: expected some of {sorted(allowed)}")
    return cls(**options)


def trained_noise(run_config: dict[str, Any]) -> JitterConfig | None:
    """The iterate noise a saved run trained its solver with: its strategy's ``noise`` (None when the run config
    names no strategy, or a strategy without iterate noise)."""
    strat = (run_config or {}).get("strategy")
    if not (isinstance(strat, dict) and strat.get("name")):
        return None
    return strategy_from_config(strat).noise


def strategy_from_config(cfg: dict[str, Any]) -> Strategy:
    """Rebuild a strategy from its ``to_dict()``."""
    cfg = dict(cfg)
    name = cfg.pop("name", None)
    return make_strategy(name, **cfg)
