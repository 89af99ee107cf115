r"""Loop-unrolled networks with SGD / SPGD jittering and access to every intermediate iterate.

.. math::
   \text{UnrolledGD:}\quad x_{k+1} = x_k - \eta_k\,\big(A^\top(Ax_k - y) + R_\theta(x_k) + w_k\big)

   \text{UnrolledProxGD:}\quad x_{k+1} = P_\theta\big(x_k - \eta_k\,(A^\top(Ax_k - y) + w_k)\big),
   \qquad P_\theta(z) = z - R_\theta(z)

for :math:`k = 0, \dots, K-1`, :math:`x_0 = A^\top y` by default.  The network holds no noise: the jitter
:math:`w_k` (see :mod:`landscape.jitter`) is drawn only when a caller passes a rule, ``model(y, jitter=rule)``
(the jittering strategies of :mod:`landscape.strategies` do, in their training step), so evaluation,
attacks and curvature analysis run the clean solver.  ``tail(x_k, y, k)`` is the map
:math:`\Phi_{k\to K}` that runs the remaining steps, the function every curvature quantity at iterate
``k`` differentiates.

Models are built from plain config dataclasses (:class:`RegularizerConfig`, :class:`ModelConfig`) so a
checkpoint can rebuild them exactly (:func:`build_model`, :meth:`UnrolledGD.config`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from landscape.errors import check, check_count, check_positive_int
from landscape.jitter import JitterConfig, jitter_scale, standard_normal
from landscape.physics import Physics
from landscape.taylor import Jet, taylor2

__all__ = [
    "ACTIVATIONS",
    "RegularizerConfig",
    "ModelConfig",
    "MLPRegularizer",
    "CNNRegularizer",
    "ShiftedSoftplus",
    "Trajectory",
    "UnrolledGD",
    "UnrolledProxGD",
    "build_regularizer",
    "build_model",
    "LEGACY_KEYS",
]


class ShiftedSoftplus(nn.Softplus):
    """``softplus(x) − log 2``: softplus moved to pass through 0 like relu and gelu, with the same derivatives.

    Plain softplus maps 0 to log 2 ≈ 0.69, so every layer of a fresh regularizer adds an offset and R_θ(x)
    starts far from 0; in the denoise ``fast`` experiment (Adam, lr 5e-3) such a model's loss rose from
    0.09 to 1.3 in the first epoch and it never trained (13.5 dB after 60 epochs at K = 10; 14.1 and 9.4 dB
    for two seeds at K = 5, against 18-19 dB with gelu), while this one trained like gelu
    (docs/results.md).  Its first and second derivatives (sigmoid and sigmoid′) are softplus's, so the Hessians a
    shifted-softplus network has are those of a smooth softplus network.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Elementwise ``softplus(x) − log 2``."""
        return super().forward(x) - math.log(2.0)


ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "softplus": nn.Softplus,
    "shifted-softplus": ShiftedSoftplus,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "tanh": nn.Tanh,
    "identity": nn.Identity,
}


def _activation(name: str) -> nn.Module:
    check(name in ACTIVATIONS, f"activation={name!r}: expected one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


@dataclass(frozen=True)
class RegularizerConfig:
    """The learned regularizer :math:`R_\\theta` (or the residual of the proximal map).

    ``kind='mlp'``: fully connected on the flattened signal, ``depth`` hidden layers of ``width`` units.
    ``kind='cnn'``: residual CNN (1-D for ``(B, C, n)`` signals, 2-D for ``(B, C, H, W)``), ``depth``
    hidden conv layers of ``width`` features and kernel ``kernel_size``; ``norm='group'`` adds GroupNorm
    (as the paper's DnCNN-style MRI regularizer; it makes the map non-affine even with ``identity``).
    ``out_scale`` multiplies the initial weights of the last layer, so an untrained model starts close
    to plain gradient descent.
    """

    kind: str = "cnn"
    activation: str = "gelu"
    width: int = 32
    depth: int = 3
    kernel_size: int = 5
    norm: str = "none"
    out_scale: float = 0.1

    def __post_init__(self) -> None:
        check(self.kind in ("mlp", "cnn"), f"regularizer kind={self.kind!r}: expected 'mlp' or 'cnn'")
        check(
            self.activation in ACTIVATIONS,
            f"activation={self.activation!r}: expected one of {sorted(ACTIVATIONS)}",
        )
        check_positive_int(self.width, "width")
        check_positive_int(self.depth, "depth")
        check_positive_int(self.kernel_size, "kernel_size")
        check(self.kernel_size % 2 == 1, f"kernel_size={self.kernel_size!r}: expected an odd integer")
        check(self.norm in ("none", "group"), f"norm={self.norm!r}: expected 'none' or 'group'")


class MLPRegularizer(nn.Module):
    """MLP on the flattened signal: ``(B, *shape) -> (B, *shape)``."""

    def __init__(self, shape: tuple[int, ...], cfg: RegularizerConfig):
        super().__init__()
        self.shape = tuple(shape)
        n = math.prod(self.shape)
        layers: list[nn.Module] = []
        d = n
        for _ in range(cfg.depth):
            layers += [nn.Linear(d, cfg.width), _activation(cfg.activation)]
            d = cfg.width
        last = nn.Linear(d, n)
        with torch.no_grad():
            last.weight.mul_(cfg.out_scale)
            last.bias.zero_()
        layers.append(last)
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The MLP applied to each sample flattened, reshaped back to ``x``'s shape."""
        return self.net(x.flatten(1)).view(x.shape)

    def taylor2(self, a: torch.Tensor, a1: torch.Tensor, a2: torch.Tensor | None = None) -> Jet:
        """Second-order Taylor mode (:func:`landscape.taylor.taylor2`) through the flattened MLP."""
        y, y1, y2 = taylor2(self.net, a.flatten(1), a1.flatten(1), None if a2 is None else a2.flatten(1))
        return y.view(a.shape), y1.view(a.shape), None if y2 is None else y2.view(a.shape)


class CNNRegularizer(nn.Module):
    """Small residual CNN: a lifting conv, ``depth - 1`` residual blocks ``h + act(conv(h))``, a projection."""

    def __init__(self, channels: int, ndim: int, cfg: RegularizerConfig):
        super().__init__()
        check(ndim in (1, 2), f"ndim={ndim!r}: expected 1 (signals/traces) or 2 (images/sections)")
        conv = nn.Conv1d if ndim == 1 else nn.Conv2d
        p = cfg.kernel_size // 2
        w = cfg.width
        groups = math.gcd(w, 8)

        def norm() -> nn.Module:
            return nn.GroupNorm(groups, w) if cfg.norm == "group" else nn.Identity()

        self.lift = nn.Sequential(
            conv(channels, w, cfg.kernel_size, padding=p), norm(), _activation(cfg.activation)
        )
        self.blocks = nn.ModuleList(
            nn.Sequential(conv(w, w, cfg.kernel_size, padding=p), norm(), _activation(cfg.activation))
            for _ in range(cfg.depth - 1)
        )
        self.proj = conv(w, channels, cfg.kernel_size, padding=p)
        with torch.no_grad():
            self.proj.weight.mul_(cfg.out_scale)
            self.proj.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The residual CNN: lift to the hidden width, residual blocks, project back to the input channels."""
        h = self.lift(x)
        for block in self.blocks:
            h = h + block(h)
        return self.proj(h)

    def taylor2(self, a: torch.Tensor, a1: torch.Tensor, a2: torch.Tensor | None = None) -> Jet:
        """Second-order Taylor mode (:func:`landscape.taylor.taylor2`) through the residual blocks."""
        h = taylor2(self.lift, a, a1, a2)
        for block in self.blocks:
            b = taylor2(block, *h)
            h = (h[0] + b[0], h[1] + b[1], None if a2 is None else h[2] + b[2])
        return taylor2(self.proj, *h)


def build_regularizer(cfg: RegularizerConfig, signal_shape: tuple[int, ...]) -> nn.Module:
    """Build :math:`R_\\theta` for signals of per-sample shape ``signal_shape`` (``(C, n)`` or ``(C, H, W)``)."""
    if cfg.kind == "mlp":
        return MLPRegularizer(signal_shape, cfg)
    check(
        len(signal_shape) in (2, 3),
        f"signal_shape={signal_shape!r}: a CNN regularizer expects (C, n) or (C, H, W)",
    )
    return CNNRegularizer(signal_shape[0], len(signal_shape) - 1, cfg)


@dataclass(frozen=True)
class ModelConfig:
    """Everything that defines an unrolled network apart from the physics and the weights.

    ``step`` is the initial step η (default ``0.5 / ‖A‖²``, half the classical ``1/L`` of the data term,
    so the data step is a strict contraction and every iterate carries over to the next); it is kept
    positive as ``softplus(ρ)``.  ``learn_step=False`` freezes it (a learned η can shrink to absorb the
    jitter, which enters as ``η·w_k``).  ``shared=False`` gives each iteration its own regularizer
    weights and step.  ``x0`` is ``'adjoint'`` (:math:`A^\\top y`) or ``'zero'``.

    The noise is not part of the model: the training strategy holds it (:attr:`landscape.strategies.SGDJitter.jitter`).
    Configs written before it moved there may carry a ``jitter`` entry (:data:`LEGACY_KEYS`); :meth:`from_dict`
    leaves it out (:func:`landscape.checkpoint.load_checkpoint` first checks it against the run's strategy).
    """

    arch: str = "gd"
    signal_shape: tuple[int, ...] = (1, 64)
    n_iter: int = 10
    step: float | None = None
    learn_step: bool = True
    shared: bool = True
    x0: str = "adjoint"
    regularizer: RegularizerConfig = field(default_factory=RegularizerConfig)

    def __post_init__(self) -> None:
        check(
            self.arch in ("gd", "prox"),
            f"arch={self.arch!r}: expected 'gd' (UnrolledGD) or 'prox' (UnrolledProxGD)",
        )
        check_count(self.n_iter, "n_iter")
        check(self.x0 in ("adjoint", "zero"), f"x0={self.x0!r}: expected 'adjoint' or 'zero'")
        object.__setattr__(self, "signal_shape", tuple(int(s) for s in self.signal_shape))
        check(
            len(self.signal_shape) >= 1 and all(s >= 1 for s in self.signal_shape),
            f"signal_shape={self.signal_shape!r}: expected positive sizes",
        )
        if self.step is not None:
            check(
                math.isfinite(self.step) and self.step > 0,
                f"step={self.step!r}: expected a number > 0 (or None for 0.5/||A||^2)",
            )
        if isinstance(self.regularizer, dict):
            object.__setattr__(self, "regularizer", RegularizerConfig(**self.regularizer))

    def to_dict(self) -> dict[str, Any]:
        """The config as a JSON-safe dict (``signal_shape`` a list; inverse of :meth:`from_dict`)."""
        d = asdict(self)
        d["signal_shape"] = list(self.signal_shape)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """The config of ``to_dict()``; a legacy entry (:data:`LEGACY_KEYS`, see the class docstring) is left out."""
        d = {k: v for k, v in d.items() if k not in LEGACY_KEYS}
        d["regularizer"] = RegularizerConfig(**d.get("regularizer", {}))
        return cls(**d)


#: Model-config keys of older versions that :meth:`ModelConfig.from_dict` accepts and leaves out: ``jitter``
#: (the noise moved to the training strategy).
LEGACY_KEYS = ("jitter",)


@dataclass
class Trajectory:
    """The iterates :math:`x_0, \\dots, x_K` of one forward pass (``iterates[k]`` is :math:`x_k`)."""

    iterates: list[torch.Tensor]

    @property
    def output(self) -> torch.Tensor:
        """The last iterate :math:`x_K` (the network's output)."""
        return self.iterates[-1]

    def __len__(self) -> int:
        return len(self.iterates)


def _softplus_inv(v: float) -> float:
    return v + math.log(-math.expm1(-v))


class UnrolledGD(nn.Module):
    r"""K steps of (jittered) gradient descent with a learned regularizer gradient :math:`R_\theta`.

    .. math:: x_{k+1} = x_k - \eta_k\,(A^\top(Ax_k - y) + R_\theta(x_k) + w_k)
    """

    arch = "gd"

    def __init__(self, physics: Physics, config: ModelConfig | None = None, **overrides: Any):
        super().__init__()
        if config is None:
            config = ModelConfig(arch=self.arch, **overrides)
        elif overrides:
            config = ModelConfig.from_dict({**config.to_dict(), **overrides})
        check(config.arch == self.arch, f"config arch={config.arch!r} does not match {type(self).__name__}")
        self.cfg = config
        self.physics = physics
        self.n_iter = config.n_iter
        #: The random stream of the jitter noise (:meth:`set_generator`; None: torch's global one).
        self.generator: torch.Generator | None = None
        #: Per-iteration gradient checkpointing (a runtime switch, not part of the config): with grad
        #: enabled, every unrolled step runs under ``torch.utils.checkpoint`` (``use_reentrant=False``) and is
        #: recomputed in the backward pass, so only the K + 1 iterates stay alive, not every step's
        #: activations.  The jitter draw happens *outside* the recomputed function and is passed in, because
        #: torch's RNG preservation covers the global generators only, never the model's own ``generator``:
        #: recomputation therefore sees exactly the noise of the forward pass, and the gradients equal the
        #: un-checkpointed ones (``tests/test_distributed.py``).
        self.checkpoint_steps: bool = False
        n_reg = 1 if config.shared else config.n_iter
        first = build_regularizer(config.regularizer, config.signal_shape)
        regs = [first] + [
            build_regularizer(config.regularizer, config.signal_shape) for _ in range(n_reg - 1)
        ]
        self.regularizers = nn.ModuleList(regs)
        if config.step is None:
            like = torch.zeros((1, *config.signal_shape), dtype=torch.float64)
            norm = physics.op_norm(like, generator=torch.Generator().manual_seed(0))
            eta0 = 0.5 / max(norm**2, 1e-12)
        else:
            eta0 = float(config.step)
        rho = torch.full((n_reg,), _softplus_inv(eta0))
        if config.learn_step:
            self.step_rho = nn.Parameter(rho)
        else:
            self.register_buffer("step_rho", rho)

    # -- pieces ------------------------------------------------------------------------------
    def set_generator(self, generator: torch.Generator | None) -> UnrolledGD:
        """Use ``generator`` for the jitter noise (seeded training is reproducible through it)."""
        self.generator = generator
        return self

    def step_size(self, k: int) -> torch.Tensor:
        """:math:`\\eta_k > 0`."""
        return F.softplus(self.step_rho[0 if self.cfg.shared else k])

    def regularizer(self, k: int) -> nn.Module:
        """The regularizer of step ``k`` (the single shared one when ``shared``)."""
        return self.regularizers[0 if self.cfg.shared else k]

    def _draw(self, like: torch.Tensor, k: int, jitter: JitterConfig | None) -> torch.Tensor | None:
        """:math:`\\varepsilon_k` from the model's generator, or None when ``jitter`` leaves step ``k`` clean."""
        if jitter is None or jitter.sigma_at(k, self.n_iter) == 0:
            return None
        return standard_normal(like, self.generator)

    def _check_jitter(self, jitter: JitterConfig | None) -> None:
        if jitter is None:
            return
        check(isinstance(jitter, JitterConfig), f"jitter={jitter!r}: expected a JitterConfig or None")
        s = jitter.sigma
        check(
            not isinstance(s, tuple) or len(s) == self.n_iter,
            f"jitter sigma has {len(s) if isinstance(s, tuple) else 1} entries: expected one per iteration "
            f"(K={self.n_iter})",
        )

    def noise_scale(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        k: int,
        *,
        jitter: JitterConfig,
        per_sample: bool = False,
    ) -> torch.Tensor | float:
        """The per-entry noise scale :math:`s_k` that step ``k`` would use at iterate ``x`` under rule ``jitter``
        (required: the model holds no rule of its own).

        ``per_sample=True`` evaluates the ``paper`` rule's batch max per sample (the rule for a batch of one).
        See :mod:`landscape.jitter`.
        """
        d, r = self.data_gradient(x, y), self._reg_term(x, k)
        return self._scale(x, d, r, k, jitter, per_sample)

    def _reg_term(self, x: torch.Tensor, k: int) -> torch.Tensor | None:
        return self.regularizer(k)(x)

    def _grad_step(self, d: torch.Tensor, r: torch.Tensor | None) -> torch.Tensor:
        return d + r

    def _scale(self, x, d, r, k, jc: JitterConfig, per_sample: bool):
        sigma = jc.sigma_at(k, self.n_iter)
        after = x - self.step_size(k) * d if jc.mode in ("paper", "paper-clean-path") else None
        return jitter_scale(
            jc.mode, sigma, after_data_step=after, grad_step=self._grad_step(d, r), per_sample=per_sample
        )

    def data_gradient(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The data-term gradient :math:`A^\\top(Ax - y)`."""
        return self.physics.adjoint(self.physics.forward(x) - y)

    def regularizer_input(self, x: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
        """Where step ``k`` evaluates :math:`R_\\theta`: ``x_k`` itself (the solver protocol's optional
        capability; the proximal model overrides it)."""
        return x

    def _clean_after_data_step(self, x_ref: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
        """:math:`\\bar g_k = \\bar x_k - \\eta_k A^\\top(A\\bar x_k - y)` at the clean iterate, detached."""
        with torch.no_grad():
            return x_ref - self.step_size(k) * self.data_gradient(x_ref, y)

    def _update(
        self,
        x,
        y,
        k,
        eps,
        jc: JitterConfig | None,
        per_sample: bool = False,
        x_ref: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One step with standard-normal draw ``eps`` (None: the clean step) under rule ``jc``.

        ``x_ref`` is the clean iterate the ``paper-clean-path`` rule takes its scale from (default ``x``).
        """
        d = self.data_gradient(x, y)
        r = self.regularizer(k)(x)
        eta = self.step_size(k)
        if eps is None:
            return x - eta * (d + r)
        if jc.mode in ("paper", "paper-clean-path"):  # the official update: g - eta (R(x) + max(g) sigma eps)
            g = x - eta * d
            ref = (
                g if jc.mode == "paper" else self._clean_after_data_step(x if x_ref is None else x_ref, y, k)
            )
            n = (
                jitter_scale(jc.mode, jc.sigma_at(k, self.n_iter), after_data_step=ref, per_sample=per_sample)
                * eps
            )
            return g - eta * (r + n)
        w = self._scale(x, d, r, k, jc, per_sample) * eps
        return x - eta * (d + r + w)

    def step(
        self, x: torch.Tensor, y: torch.Tensor, k: int, *, jitter: JitterConfig | None = None
    ) -> torch.Tensor:
        """One unrolled iteration :math:`x_k \\mapsto x_{k+1}`: clean, or jittered by rule ``jitter`` with a fresh
        draw from the model's generator (a ``paper-clean-path`` rule takes its scale from ``x`` itself here)."""
        return self._update(x, y, k, self._draw(x, k, jitter), jitter)

    def taylor_step(self, jet: Jet, y: torch.Tensor, k: int, u: torch.Tensor | None) -> Jet:
        r"""The clean step ``k`` in second-order Taylor mode along a curve of iterates, with the perturbation
        ``t·u`` entering where the step-k jitter enters (:math:`x_{k+1} \mathrel{-}= \eta_k t u`).

        ``jet = (x, x', x'')`` at t = 0 (``x''`` None: first order only); returns the jet of :math:`x_{k+1}`.
        Used by :func:`landscape.penalty.noise_penalty`; checked there against dense Hessians.
        """
        x, x1, x2 = jet
        eta = self.step_size(k)
        d, d1 = self.data_gradient(x, y), self._normal(x1)
        r, r1, r2 = taylor2(self.regularizer(k), x, x1, x2)
        w = 0 if u is None else u
        out1 = x1 - eta * (d1 + r1 + w)
        return x - eta * (d + r), out1, None if x2 is None else x2 - eta * (self._normal(x2) + r2)

    def _normal(self, v: torch.Tensor) -> torch.Tensor:
        """:math:`A^\\top A v`: the data gradient's derivative (it is affine in x)."""
        return self.physics.adjoint(self.physics.forward(v))

    def jittered(
        self,
        y: torch.Tensor,
        eps: list[torch.Tensor | None],
        *,
        jitter: JitterConfig,
        per_sample: bool = False,
        x0: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """:math:`x_K` of the solver jittered with the given standard-normal draws ``eps[k]`` (None: clean step).

        Deterministic given ``eps`` and independent of train/eval mode, so antithetic pairs
        (``eps``, ``-eps``) and other estimators can be built on it.  ``jitter`` is the rule (required: the
        model holds none); steps where its σ is 0 are clean.
        """
        jc = jitter
        check(
            len(eps) == self.n_iter,
            f"eps has {len(eps)} entries: expected one per iteration (K={self.n_iter})",
        )
        self._check_inputs(y, x0)
        x = self.initial(y) if x0 is None else x0
        ref = self._clean_iterates(y, x) if jc.mode == "paper-clean-path" else None
        for k in range(self.n_iter):
            e = eps[k] if jc.sigma_at(k, self.n_iter) > 0 else None
            x = self._update(x, y, k, e, jc, per_sample, None if ref is None else ref[k])
        return x

    def _clean_iterates(self, y: torch.Tensor, x0: torch.Tensor) -> list[torch.Tensor]:
        with torch.no_grad():
            xs = [x0]
            for k in range(self.n_iter - 1):
                xs.append(self._update(xs[-1], y, k, None, None))
        return xs

    # -- validation --------------------------------------------------------------------------
    def _param_like(self) -> torch.Tensor:
        return self.step_rho

    def _check_inputs(self, y: torch.Tensor, x: torch.Tensor | None = None, k: int | None = None) -> None:
        check(isinstance(y, torch.Tensor), f"y is a {type(y).__name__}: expected a torch.Tensor")
        ref = self._param_like()
        check(
            y.dtype == ref.dtype,
            f"y has dtype {y.dtype}: expected {ref.dtype}, the dtype of the model (use model.to(dtype))",
        )
        check(
            y.device == ref.device,
            f"y is on device {y.device}: expected {ref.device}, the device of the model",
        )
        if x is not None:
            check(isinstance(x, torch.Tensor), f"x is a {type(x).__name__}: expected a torch.Tensor")
            expected = (y.shape[0], *self.cfg.signal_shape)
            check(
                tuple(x.shape) == expected,
                f"x has shape {tuple(x.shape)}: expected {expected} (batch of y, signal shape of the model)",
            )
            check(x.dtype == y.dtype, f"x has dtype {x.dtype}: expected {y.dtype}, the dtype of y")
            check(x.device == y.device, f"x is on device {x.device}: expected {y.device}, the device of y")
        if k is not None:
            check(
                isinstance(k, int) and 0 <= k <= self.n_iter,
                f"k={k!r}: expected an iterate index 0..K with K={self.n_iter}",
            )

    def initial(self, y: torch.Tensor) -> torch.Tensor:
        """:math:`x_0`: :math:`A^\\top y` (default) or zeros."""
        x0 = self.physics.adjoint(y)
        if self.cfg.x0 == "zero":
            x0 = torch.zeros_like(x0)
        expected = (y.shape[0], *self.cfg.signal_shape)
        check(
            tuple(x0.shape) == expected,
            f"y has shape {tuple(y.shape)}: its adjoint has shape {tuple(x0.shape)}, expected {expected}",
        )
        return x0

    # -- the network -------------------------------------------------------------------------
    def forward(
        self,
        y: torch.Tensor,
        x0: torch.Tensor | None = None,
        return_iterates: bool = False,
        *,
        jitter: JitterConfig | None = None,
    ) -> torch.Tensor | Trajectory:
        """Run all K steps from ``x0`` (default :math:`A^\\top y`): the clean solver, or with ``jitter`` (a
        :class:`~landscape.jitter.JitterConfig`) fresh noise by that rule in every step where its σ > 0, drawn
        from the model's generator (:meth:`set_generator`) whatever the train/eval mode.

        Returns :math:`x_K`, or a :class:`Trajectory` of :math:`x_0..x_K` with ``return_iterates=True``.
        """
        self._check_inputs(y, x0)
        self._check_jitter(jitter)
        jc = jitter if jitter is not None and jitter.active else None
        x = self.initial(y) if x0 is None else x0
        iterates = [x]
        ref = self._clean_iterates(y, x) if jc is not None and jc.mode == "paper-clean-path" else None
        recompute = self.checkpoint_steps and torch.is_grad_enabled()
        for k in range(self.n_iter):
            eps = self._draw(x, k, jc)  # drawn once, outside a recomputed step (see checkpoint_steps)
            x_ref = (
                None if ref is None else ref[k]
            )  # the clean-path rule: scale from the un-jittered trajectory
            if recompute:
                x = checkpoint(self._update, x, y, k, eps, jc, False, x_ref, use_reentrant=False)
            else:
                x = self._update(x, y, k, eps, jc, x_ref=x_ref)
            iterates.append(x)
        return Trajectory(iterates) if return_iterates else x

    def tail(self, x_k: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
        """:math:`\\Phi_{k\\to K}(x_k)`: the remaining K − k clean steps from iterate ``k`` (``k = K`` is the identity)."""
        self._check_inputs(y, x_k, k)
        x = x_k
        for j in range(k, self.n_iter):
            x = self.step(x, y, j)
        return x

    def config(self) -> dict[str, Any]:
        """JSON-serialisable config; ``build_model(ModelConfig.from_dict(c), physics)`` rebuilds the network."""
        return self.cfg.to_dict()

    def extra_repr(self) -> str:
        """The number of steps and whether they share weights, for the module's repr."""
        return f"K={self.n_iter}, shared={self.cfg.shared}"


class UnrolledProxGD(UnrolledGD):
    r"""K steps of (jittered) proximal gradient descent with a learned proximal map.

    .. math:: x_{k+1} = P_\theta(x_k - \eta_k\,(A^\top(Ax_k - y) + w_k)),\qquad P_\theta(z) = z - R_\theta(z)
    """

    arch = "prox"

    def regularizer_input(self, x: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
        """The data step :math:`z_k = x_k - \\eta_k A^\\top(Ax_k - y)`, where the proximal map acts."""
        return x - self.step_size(k) * self.data_gradient(x, y)

    def _reg_term(self, x: torch.Tensor, k: int) -> torch.Tensor | None:
        return None

    def _grad_step(self, d: torch.Tensor, r: torch.Tensor | None) -> torch.Tensor:
        return d

    def taylor_step(self, jet: Jet, y: torch.Tensor, k: int, u: torch.Tensor | None) -> Jet:
        """The proximal step in Taylor mode: the perturbation enters the prox argument, as its jitter does."""
        x, x1, x2 = jet
        eta = self.step_size(k)
        z = x - eta * self.data_gradient(x, y)
        z1 = x1 - eta * (self._normal(x1) + (0 if u is None else u))
        z2 = None if x2 is None else x2 - eta * self._normal(x2)
        r, r1, r2 = taylor2(self.regularizer(k), z, z1, z2)
        return z - r, z1 - r1, None if z2 is None else z2 - r2

    def _update(
        self,
        x,
        y,
        k,
        eps,
        jc: JitterConfig | None,
        per_sample: bool = False,
        x_ref: torch.Tensor | None = None,
    ) -> torch.Tensor:
        d = self.data_gradient(x, y)
        eta = self.step_size(k)
        if eps is None:
            z = x - eta * d
        elif jc.mode in ("paper", "paper-clean-path"):
            g = x - eta * d
            ref = (
                g if jc.mode == "paper" else self._clean_after_data_step(x if x_ref is None else x_ref, y, k)
            )
            n = (
                jitter_scale(jc.mode, jc.sigma_at(k, self.n_iter), after_data_step=ref, per_sample=per_sample)
                * eps
            )
            z = g - eta * n
        else:
            z = x - eta * (d + self._scale(x, d, None, k, jc, per_sample) * eps)
        return z - self.regularizer(k)(z)


def build_model(config: ModelConfig, physics: Physics) -> UnrolledGD:
    """Build :class:`UnrolledGD` (``arch='gd'``) or :class:`UnrolledProxGD` (``arch='prox'``)."""
    cls = UnrolledGD if config.arch == "gd" else UnrolledProxGD
    return cls(physics, config)


def clone_model(model: UnrolledGD) -> UnrolledGD:
    """Deep copy of a model (weights, physics and config), without its jitter generator."""
    gen = model.generator
    model.generator = None
    try:
        return copy.deepcopy(model)
    finally:
        model.generator = gen
