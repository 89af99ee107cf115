r"""1-D and 2-D slices of the loss around an iterate :math:`x_k` (input space) or around θ (parameter space).

Input space, one sample :math:`(y, x^*)`, iterate :math:`k`:

.. math::
   s(\alpha, \beta) = L_k(x_k + \alpha d_1 + \beta d_2),\qquad
   L_k(x) = \|\Phi_{k\to K}(x; y, \theta) - x^*\|^2 \ \text{(sum over entries)}

Parameter space, a batch of samples, the training loss (same per-sample convention, mean over samples):

.. math:: s(\alpha, \beta) = \tfrac1B\sum_i \|f_{\theta + \alpha\delta_1 + \beta\delta_2}(y_i) - x^*_i\|^2

Directions (``kinds``):

* input space: ``"random"`` (Gaussian, scaled to :math:`\|x_k\|`), ``"random_channel"`` (Gaussian, each
  channel scaled to the norm of that channel of :math:`x_k`, the input-space analogue of filter
  normalisation), ``"eigen"`` (top Hessian eigenvectors of :math:`L_k` at :math:`x_k`, the i-th ``"eigen"``
  entry uses the i-th eigenvector), ``"gradient"`` (:math:`\nabla L_k(x_k)`, the adversarial direction),
  ``"range"`` / ``"null"`` (one Gaussian draw split into :math:`A^H A g` and :math:`g - A^H A g`; needs
  an operator whose :math:`A^H A` is an orthogonal projection, e.g. MRI: sampled vs unsampled k-space);
* parameter space: ``"filter"`` (Li et al., 2018: Gaussian, each filter, i.e. each slice along dim 0 of a
  weight, scaled to the norm of the same filter of θ; biases and other 1-D parameters get 0) and
  ``"random"`` (Gaussian per tensor, scaled to the norm of that tensor).

All directions are scaled to the norm of the point they perturb (``scale="norm"``, default) or are unit
vectors (``scale="unit"``); ``Slice.directions[i]["norm"]`` records :math:`\|d_i\|`, so the curvature
along :math:`d` is :math:`d^\top H d = \|d\|^2\, v^\top H v`.  Random directions are drawn on the CPU in
float64 from a generator seeded by ``(seed, space, k, sample, index)`` only, so two checkpoints of the
same task get the same raw draws (scaled to their own iterates) and are compared on one footing; later
random directions are orthogonalised against the earlier ones before scaling.

Evaluation is batched: grid points are stacked along the batch dimension of ``model.tail(x, y, k)``
(parameter space: ``torch.func.vmap`` over ``functional_call``) in chunks capped by a memory budget,
under ``torch.no_grad`` and with the model in eval mode (jitter off).  ``method="pointwise"`` evaluates
one point per call, as a reference.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from landscape.errors import check, check_positive_int

__all__ = [
    "INPUT_KINDS",
    "PARAMETER_KINDS",
    "LOSS_CONVENTION",
    "TRAIN_LOSS_CONVENTION",
    "Slice",
    "derive_seed",
    "grid_coordinates",
    "iterate_loss_fn",
    "iterate_points",
    "input_directions",
    "top_eigenvectors",
    "input_slice",
    "parameter_directions",
    "parameter_loss_fn",
    "parameter_slice",
    "evaluate_grid",
    "chunk_size_for",
    "load_slice",
]

INPUT_KINDS = ("random", "random_channel", "eigen", "gradient", "range", "null")
PARAMETER_KINDS = ("filter", "random")

LOSS_CONVENTION = "L_k(x_k) = ||Phi_{k->K}(x_k; y, theta) - x*||^2, sum over entries, one sample"
TRAIN_LOSS_CONVENTION = "L(theta) = mean over samples of ||f_theta(y) - x*||^2 (sum over entries)"

_FORMAT = "landscape-slice/1"


# -------------------------------------------------------------------------------------------------
# helpers
# -------------------------------------------------------------------------------------------------
def derive_seed(seed: int, *names: object) -> int:
    """A 63-bit seed from ``seed`` and a path of names (blake2b), e.g. ``derive_seed(0, "input", 3)``."""
    check(
        isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0,
        f"seed={seed!r}: expected an integer >= 0",
    )
    key = ":".join([str(seed), *(str(n) for n in names)]).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") >> 1


def _randn(shape: Sequence[int], seed: int, like: torch.Tensor) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(tuple(shape), generator=g, dtype=torch.float64).to(
        dtype=like.dtype, device=like.device
    )


def grid_coordinates(n: int, span: float) -> np.ndarray:
    """``n`` points evenly spaced on ``[-span, span]``; with ``n`` odd the middle one is exactly 0."""
    check_positive_int(n, "grid size n")
    check(math.isfinite(span) and span > 0, f"span={span!r}: expected a number > 0")
    if n == 1:
        return np.zeros(1)
    half = (n - 1) / 2.0
    return span * (np.arange(n, dtype=np.float64) - half) / half


@contextmanager
def _eval_mode(model: torch.nn.Module):
    was = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was)


def _check_single(y: torch.Tensor, x_true: torch.Tensor) -> None:
    check(
        y.shape[0] == 1 and x_true.shape[0] == 1,
        f"y has batch {y.shape[0]} and x_true batch {x_true.shape[0]}: an input-space slice takes one "
        "sample (batch 1; use y[i:i+1])",
    )


def _model_dtype(model: torch.nn.Module) -> torch.dtype:
    return next(iter(model.parameters())).dtype


def chunk_size_for(
    model: torch.nn.Module, *, memory_mb: float = 256.0, batch: int = 1, max_chunk: int = 4096
) -> int:
    """How many grid points to stack per call so that one chunk stays within ``memory_mb``.

    A deliberately rough count of the live tensors of one unrolled step under ``no_grad`` (the signal,
    the data term, the regularizer's activations) times ``batch`` samples per point, plus one copy of
    the parameters per point for parameter-space slices (``batch > 1`` or ``params=True`` callers).
    """
    cfg = model.cfg
    itemsize = torch.empty(0, dtype=_model_dtype(model)).element_size()
    n = math.prod(cfg.signal_shape)
    r = cfg.regularizer
    if r.kind == "cnn":
        spatial = n // cfg.signal_shape[0]
        act = r.width * spatial * (r.depth + 2)
    else:
        act = r.width * (r.depth + 1)
    per_point = itemsize * batch * (8 * n + 3 * act)
    budget = max(float(memory_mb), 0.0) * 2**20
    return int(max(1, min(max_chunk, budget // max(per_point, 1))))


# -------------------------------------------------------------------------------------------------
# the result
# -------------------------------------------------------------------------------------------------
def _jsonable(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()] if value.ndim else _jsonable(value.item())
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


@dataclass(frozen=True)
class Slice:
    r"""A 1-D or 2-D slice of a loss.

    ``values[i]`` (1-D) or ``values[i, j]`` (2-D) is the loss at
    ``center + coords[0][i] * d_1 (+ coords[1][j] * d_2)``; ``center_value`` is the loss at the centre
    itself (computed separately, not read off the grid).  ``directions[i]`` holds the kind, the norm
    :math:`\|d_i\|`, the seed and notes of direction ``i``; ``vectors`` (n_dirs, n) are the flattened
    directions (kept in memory and in NPZ files, left out of ``to_dict()`` unless asked for).
    """

    space: str
    coords: tuple[np.ndarray, ...]
    values: np.ndarray
    center_value: float
    directions: tuple[dict[str, Any], ...]
    k: int | None
    sample: int | None
    seed: int
    loss: str
    dtype: str
    method: str
    chunk_size: int
    n_evals: int
    wall_time: float
    settings: dict[str, Any] = field(default_factory=dict)
    vectors: np.ndarray | None = None

    @property
    def ndim(self) -> int:
        return len(self.coords)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(c) for c in self.coords)

    def value_at_origin(self) -> float:
        """The grid value at the origin (all coordinates 0); ``nan`` if 0 is not a grid point."""
        idx = []
        for c in self.coords:
            hits = np.flatnonzero(c == 0.0)
            if len(hits) == 0:
                return math.nan
            idx.append(int(hits[0]))
        return float(self.values[tuple(idx)])

    def to_dict(self, *, include_vectors: bool = False) -> dict[str, Any]:
        out = {
            "kind": "Slice",
            "format": _FORMAT,
            "space": self.space,
            "coords": [_jsonable(c) for c in self.coords],
            "values": _jsonable(self.values),
            "center_value": _jsonable(self.center_value),
            "directions": _jsonable(list(self.directions)),
            "k": self.k,
            "sample": self.sample,
            "seed": self.seed,
            "loss": self.loss,
            "dtype": self.dtype,
            "method": self.method,
            "chunk_size": self.chunk_size,
            "n_evals": self.n_evals,
            "wall_time": self.wall_time,
            "settings": _jsonable(self.settings),
        }
        if include_vectors and self.vectors is not None:
            out["vectors"] = _jsonable(self.vectors)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Slice:
        check(d.get("kind", "Slice") == "Slice", f"kind={d.get('kind')!r}: expected a Slice record")

        def arr(v: Any) -> np.ndarray:
            return np.array(
                [np.nan if e is None else e for e in np.ravel(np.array(v, dtype=object))], dtype=np.float64
            ).reshape(np.shape(np.array(v, dtype=object)))

        vec = d.get("vectors")
        return cls(
            space=d["space"],
            coords=tuple(np.asarray(c, dtype=np.float64) for c in d["coords"]),
            values=arr(d["values"]),
            center_value=math.nan if d["center_value"] is None else float(d["center_value"]),
            directions=tuple(dict(x) for x in d["directions"]),
            k=d.get("k"),
            sample=d.get("sample"),
            seed=int(d["seed"]),
            loss=d.get("loss", ""),
            dtype=d.get("dtype", ""),
            method=d.get("method", ""),
            chunk_size=int(d.get("chunk_size", 0)),
            n_evals=int(d.get("n_evals", 0)),
            wall_time=float(d.get("wall_time", 0.0)),
            settings=dict(d.get("settings", {})),
            vectors=None if vec is None else np.asarray(vec, dtype=np.float64),
        )

    def save_npz(self, path: str | os.PathLike) -> str:
        """Write arrays (coords, values, vectors) and the JSON metadata to ``path`` (atomically)."""
        path = os.fspath(path)
        meta = self.to_dict()
        arrays: dict[str, np.ndarray] = {"values": np.asarray(self.values)}
        for i, c in enumerate(self.coords):
            arrays[f"coord{i}"] = np.asarray(c)
        if self.vectors is not None:
            arrays["vectors"] = np.asarray(self.vectors)
        meta.pop("values")
        meta.pop("coords")
        arrays["meta"] = np.array(json.dumps(meta))
        from landscape.io import atomic_write  # fsynced, usual permissions, no temp file left behind

        atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays))
        return path

    @classmethod
    def load_npz(cls, path: str | os.PathLike) -> Slice:
        with np.load(os.fspath(path), allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            n = sum(1 for key in z.files if key.startswith("coord"))
            meta["coords"] = [z[f"coord{i}"] for i in range(n)]
            meta["values"] = z["values"]
            s = cls.from_dict({**meta, "values": [0.0]})
            vec = z["vectors"] if "vectors" in z.files else None
            return _replace(s, values=np.asarray(z["values"], dtype=np.float64), vectors=vec)


def _replace(s: Slice, **changes: Any) -> Slice:
    from dataclasses import replace

    return replace(s, **changes)


def load_slice(path: str | os.PathLike) -> Slice:
    """Load a slice saved as ``.npz`` (:meth:`Slice.save_npz`) or ``.json`` (``to_dict``)."""
    path = os.fspath(path)
    if path.endswith(".npz"):
        return Slice.load_npz(path)
    with open(path, encoding="utf-8") as fh:
        d = json.load(fh)
    if "slice" in d and isinstance(d["slice"], dict):
        d = d["slice"]
    return Slice.from_dict(d)


# -------------------------------------------------------------------------------------------------
# grid evaluation
# -------------------------------------------------------------------------------------------------
def evaluate_grid(
    fn: Callable[[torch.Tensor], torch.Tensor],
    coords: Sequence[np.ndarray],
    *,
    chunk_size: int,
    method: str = "batched",
    tune: bool = False,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Evaluate ``fn`` on the tensor grid spanned by ``coords``.

    ``fn`` maps a ``(P, n_dirs)`` tensor of coordinates to ``(P,)`` values.  ``method="batched"`` calls
    it on chunks of at most ``chunk_size`` points (the memory cap), ``"pointwise"`` on one point at a
    time.  With ``tune=True`` the first chunks try sizes 1, 8, 32, 128, ... (up to the cap) on real grid
    points, and the rest of the grid uses the size with the lowest time per point: past the cache
    size a bigger chunk can be slower (e.g. float64 convolutions on a CPU), so the best size is
    measured, not assumed.  Returns the values (shape ``[len(c) for c in coords]``) and a record of
    the calls (``calls``, ``chunk_size`` used, ``trials`` as ``[size, seconds per point]``).
    """
    check(method in ("batched", "pointwise"), f"method={method!r}: expected 'batched' or 'pointwise'")
    shape = tuple(len(c) for c in coords)
    mesh = np.meshgrid(*coords, indexing="ij")
    pts = torch.from_numpy(np.stack([m.ravel() for m in mesh], axis=1))
    total = pts.shape[0]
    cap = 1 if method == "pointwise" else max(1, int(chunk_size))
    out = np.empty(total, dtype=np.float64)
    calls = 0
    trials: list[list[float]] = []
    start = 0

    def run(size: int) -> float:
        nonlocal start, calls
        t = time.perf_counter()
        vals = fn(pts[start : start + size])
        out[start : start + size] = vals.detach().to("cpu", torch.float64).numpy()
        calls += 1
        start += size
        return time.perf_counter() - t

    with torch.no_grad():
        step = cap
        if tune and cap > 1:
            sizes = [1] + [s for s in (8, 32, 128, 512, 2048) if s < cap] + [cap]
            for size in sizes:
                size = min(size, total - start)
                if size <= 0:
                    break
                dt = run(size)
                if size > 1 or len(sizes) == 1:
                    trials.append([size, dt / size])
            if trials:
                step = int(min(trials, key=lambda t: t[1])[0])
        while start < total:
            run(min(step, total - start))
    return out.reshape(shape), {
        "calls": calls,
        "chunk_size": int(step),
        "chunk_cap": int(cap),
        "trials": trials,
    }


def _as_pair(v: int | float | Sequence, ndim: int, name: str) -> tuple:
    if isinstance(v, (int, float)):
        return (v,) * ndim
    v = tuple(v)
    check(len(v) == ndim, f"{name}={v!r}: expected one value or {ndim} (one per direction)")
    return v


# -------------------------------------------------------------------------------------------------
# input space
# -------------------------------------------------------------------------------------------------
def iterate_loss_fn(
    model: torch.nn.Module, y: torch.Tensor, x_true: torch.Tensor, k: int
) -> Callable[[torch.Tensor], torch.Tensor]:
    r"""``f(X) -> (P,)``: :math:`L_k` at each of the ``P`` iterates stacked in ``X`` ``(P, *signal_shape)``.

    The points go through ``model.tail`` as one batch with ``y`` expanded (not copied) to ``P`` rows.
    """
    _check_single(y, x_true)
    meas = tuple(y.shape[1:])

    def f(xs: torch.Tensor) -> torch.Tensor:
        p = xs.shape[0]
        out = model.tail(xs, y.expand(p, *meas), k)
        return (out - x_true).pow(2).flatten(1).sum(dim=1)

    return f


def iterate_points(
    center: torch.Tensor, dirs: Sequence[torch.Tensor]
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``g(C) -> (P, *shape)``: the points ``center + Σ_i C[:, i] d_i`` for coordinates ``C`` (P, n_dirs)."""
    stacked = torch.stack([d.reshape(center.shape[1:]) for d in dirs])  # (n_dirs, *shape)

    def g(c: torch.Tensor) -> torch.Tensor:
        c = c.to(dtype=center.dtype, device=center.device)
        return center + torch.tensordot(c, stacked, dims=1)

    return g


def _hvp_fn(model: torch.nn.Module, y: torch.Tensor, x_true: torch.Tensor, k: int, x_k: torch.Tensor):
    f = iterate_loss_fn(model, y, x_true, k)

    def scalar(x: torch.Tensor) -> torch.Tensor:
        return f(x).sum()

    grad = torch.func.grad(scalar)

    def hvp(v: torch.Tensor) -> torch.Tensor:
        return torch.func.jvp(grad, (x_k,), (v,))[1]

    return hvp


def top_eigenvectors(
    model: torch.nn.Module,
    y: torch.Tensor,
    x_true: torch.Tensor,
    k: int,
    n_vectors: int,
    *,
    x_k: torch.Tensor | None = None,
    seed: int = 0,
    tol: float = 1e-10,
) -> tuple[np.ndarray, np.ndarray]:
    r"""The ``n_vectors`` largest (algebraic) eigenpairs of :math:`\nabla^2 L_k(x_k)` for one sample.

    Hessian-vector products by forward-over-reverse (``torch.func.jvp`` of ``torch.func.grad``) through
    ARPACK (``scipy.sparse.linalg.eigsh``), or a dense ``eigh`` when the dimension is tiny.  Returns
    ``(values (n_vectors,), vectors (n_vectors, n))``, descending, unit vectors, sign fixed so that the
    entry of largest magnitude is positive.  (The curvature package's Lanczos gives the same pairs;
    this small helper keeps slices self-contained.)
    """
    import scipy.sparse.linalg as sla

    _check_single(y, x_true)
    with _eval_mode(model):
        if x_k is None:
            with torch.no_grad():
                x_k = model(y, return_iterates=True).iterates[k]
        x_k = x_k.detach()
        hvp = _hvp_fn(model, y, x_true, k, x_k)
        n = x_k.numel()
        check(1 <= n_vectors < n, f"n_vectors={n_vectors!r}: expected 1..{n - 1}")

        def mv(v: np.ndarray) -> np.ndarray:
            t = torch.as_tensor(
                np.ascontiguousarray(v).reshape(x_k.shape), dtype=x_k.dtype, device=x_k.device
            )
            return hvp(t).detach().to("cpu", torch.float64).numpy().ravel()

        if n <= 256:
            eye = torch.eye(n, dtype=x_k.dtype, device=x_k.device).reshape(n, *x_k.shape)
            try:  # all n products at once
                cols = torch.func.vmap(hvp)(eye)
            except Exception:  # noqa: BLE001 - a model vmap cannot handle: one product at a time
                cols = torch.stack([hvp(e) for e in eye])
            dense = cols.detach().to("cpu", torch.float64).reshape(n, n).numpy().T
            vals, vecs = np.linalg.eigh(0.5 * (dense + dense.T))
            order = np.argsort(vals)[::-1][:n_vectors]
            vals, vecs = vals[order], vecs[:, order]
        else:
            op = sla.LinearOperator((n, n), matvec=mv, dtype=np.float64)
            v0 = np.random.default_rng(derive_seed(seed, "eigsh")).standard_normal(n)
            vals, vecs = sla.eigsh(op, k=n_vectors, which="LA", tol=tol, v0=v0)
            order = np.argsort(vals)[::-1]
            vals, vecs = vals[order], vecs[:, order]
    vecs = vecs.T.copy()
    for i in range(len(vecs)):
        j = int(np.argmax(np.abs(vecs[i])))
        if vecs[i, j] < 0:
            vecs[i] = -vecs[i]
        vecs[i] /= np.linalg.norm(vecs[i])
    return vals, vecs


def _is_projection(physics: torch.nn.Module, like: torch.Tensor, seed: int) -> bool:
    g = _randn(like.shape, derive_seed(seed, "projection-check"), like)
    p = physics.normal(g)
    pp = physics.normal(p)
    return float((pp - p).norm()) <= 1e-6 * max(float(p.norm()), 1e-30)


def input_directions(
    model: torch.nn.Module,
    y: torch.Tensor,
    x_true: torch.Tensor,
    k: int,
    kinds: Sequence[str] = ("random", "random"),
    *,
    seed: int = 0,
    sample: int | None = None,
    scale: str = "norm",
    x_k: torch.Tensor | None = None,
    eigvecs: np.ndarray | torch.Tensor | None = None,
) -> tuple[list[torch.Tensor], list[dict[str, Any]], torch.Tensor]:
    """Build the directions of an input-space slice around :math:`x_k` (see the module docstring).

    Returns ``(directions, metadata, x_k)``: each direction shaped like ``x_k`` ``(1, *signal_shape)``.
    ``eigvecs`` ``(m, n)`` (unit, descending eigenvalue) are used for ``"eigen"`` directions when
    given; otherwise :func:`top_eigenvectors` computes them.
    """
    _check_single(y, x_true)
    check(len(kinds) in (1, 2), f"kinds={tuple(kinds)!r}: expected 1 or 2 directions")
    for kd in kinds:
        check(kd in INPUT_KINDS, f"direction kind={kd!r}: expected one of {INPUT_KINDS}")
    check(scale in ("norm", "unit"), f"scale={scale!r}: expected 'norm' (||x_k||) or 'unit'")
    check(isinstance(k, int) and 0 <= k <= model.n_iter, f"k={k!r}: expected 0..K with K={model.n_iter}")
    with _eval_mode(model):
        if x_k is None:
            with torch.no_grad():
                x_k = model(y, return_iterates=True).iterates[k]
        x_k = x_k.detach()
        xnorm = float(x_k.norm())
        target = xnorm if (scale == "norm" and xnorm > 0) else 1.0
        n_eigen = sum(1 for kd in kinds if kd == "eigen")
        eig_vals = None
        if n_eigen:
            if eigvecs is None:
                eig_vals, eigvecs = top_eigenvectors(model, y, x_true, k, n_eigen, x_k=x_k, seed=seed)
            eigvecs = np.asarray(torch.as_tensor(eigvecs).detach().cpu().numpy(), dtype=np.float64)
            check(eigvecs.shape[0] >= n_eigen, f"eigvecs has {eigvecs.shape[0]} rows: {n_eigen} needed")
        split = None
        if any(kd in ("range", "null") for kd in kinds):
            physics = model.physics
            check(
                _is_projection(physics, x_k, seed),
                f"direction kinds range/null need an operator whose A^H A is a projection (MRI); "
                f"{getattr(physics, 'name', type(physics).__name__)!r} is not",
            )
            g = _randn(x_k.shape, derive_seed(seed, "input", f"k={k}", f"sample={sample}", "split"), x_k)
            rng = physics.normal(g)
            split = {"range": rng, "null": g - rng}

        dirs: list[torch.Tensor] = []
        meta: list[dict[str, Any]] = []
        i_eigen = 0
        for i, kd in enumerate(kinds):
            info: dict[str, Any] = {"kind": kd, "index": i}
            if kd in ("random", "random_channel"):
                s = derive_seed(seed, "input", f"k={k}", f"sample={sample}", f"dir={i}")
                d = _randn(x_k.shape, s, x_k)
                for prev in dirs:  # orthogonalise against the earlier directions, then scale
                    d = d - (d * prev).sum() / (prev * prev).sum() * prev
                info["seed"] = s
                if kd == "random_channel" and scale == "norm" and xnorm > 0:
                    cn = x_k.flatten(2).norm(dim=2)  # (1, C)
                    dn = d.flatten(2).norm(dim=2)
                    fac = torch.where(cn > 0, cn, torch.full_like(cn, xnorm / math.sqrt(cn.numel())))
                    d = d * (fac / dn).view(1, -1, *([1] * (x_k.dim() - 2)))
                else:
                    d = d * (target / d.norm())
            elif kd == "eigen":
                v = torch.as_tensor(eigvecs[i_eigen], dtype=x_k.dtype, device=x_k.device).reshape(x_k.shape)
                info["eigen_index"] = i_eigen
                if eig_vals is not None:
                    info["eigenvalue"] = float(eig_vals[i_eigen])
                i_eigen += 1
                d = v * (target / v.norm())
            elif kd == "gradient":
                xg = x_k.clone().requires_grad_(True)
                with torch.enable_grad():
                    loss = iterate_loss_fn(model, y, x_true, k)(xg).sum()
                    (grad,) = torch.autograd.grad(loss, xg)
                gn = float(grad.norm())
                info["grad_norm"] = gn
                if gn == 0:
                    s = derive_seed(seed, "input", f"k={k}", f"sample={sample}", f"dir={i}")
                    grad = _randn(x_k.shape, s, x_k)
                    info["note"] = "zero gradient: a random direction instead"
                d = grad * (target / grad.norm())
            else:  # range / null
                d = split[kd]
                dn = float(d.norm())
                if dn == 0:
                    info["note"] = f"empty {kd} part: zero direction"
                else:
                    d = d * (target / dn)
            info["norm"] = float(d.norm())
            dirs.append(d.detach())
            meta.append(info)
        if len(dirs) == 2:
            n0, n1 = float(dirs[0].norm()), float(dirs[1].norm())
            if n0 > 0 and n1 > 0:
                cos = float((dirs[0] * dirs[1]).sum()) / (n0 * n1)
                for m in meta:
                    m["cosine_between"] = cos
    return dirs, meta, x_k


def input_slice(
    model: torch.nn.Module,
    y: torch.Tensor,
    x_true: torch.Tensor,
    k: int,
    *,
    kinds: Sequence[str] = ("random", "random"),
    n: int | Sequence[int] = 31,
    span: float | Sequence[float] = 1.0,
    seed: int = 0,
    sample: int | None = None,
    scale: str = "norm",
    method: str = "batched",
    memory_mb: float = 256.0,
    chunk_size: int | None = None,
    tune: bool = True,
    eigvecs: np.ndarray | torch.Tensor | None = None,
    directions: Sequence[torch.Tensor] | None = None,
    keep_vectors: bool = True,
) -> Slice:
    r"""Slice of :math:`L_k` around :math:`x_k` for one sample (``y``, ``x_true`` of batch 1).

    ``n`` grid points per direction on ``[-span, span]`` (odd ``n`` puts the origin on the grid).
    ``directions`` overrides ``kinds`` with given tensors (shaped like one sample).
    """
    t0 = time.perf_counter()
    _check_single(y, x_true)
    with _eval_mode(model):
        if directions is None:
            dirs, meta, x_k = input_directions(
                model, y, x_true, k, kinds, seed=seed, sample=sample, scale=scale, eigvecs=eigvecs
            )
        else:
            with torch.no_grad():
                x_k = model(y, return_iterates=True).iterates[k]
            dirs = [d.reshape(x_k.shape).to(dtype=x_k.dtype, device=x_k.device) for d in directions]
            meta = [{"kind": "given", "index": i, "norm": float(d.norm())} for i, d in enumerate(dirs)]
        nd = len(dirs)
        ns = _as_pair(n, nd, "n")
        spans = _as_pair(span, nd, "span")
        coords = [grid_coordinates(int(ni), float(si)) for ni, si in zip(ns, spans, strict=False)]
        f = iterate_loss_fn(model, y, x_true, k)
        pts = iterate_points(x_k, dirs)
        cs = chunk_size if chunk_size is not None else chunk_size_for(model, memory_mb=memory_mb)
        tg = time.perf_counter()
        values, calls = evaluate_grid(
            lambda c: f(pts(c)), coords, chunk_size=cs, method=method, tune=tune and chunk_size is None
        )
        grid_time = time.perf_counter() - tg
        with torch.no_grad():
            center = float(f(x_k)[0])
    vectors = np.stack([d.detach().cpu().double().numpy().ravel() for d in dirs]) if keep_vectors else None
    return Slice(
        space="input",
        coords=tuple(coords),
        values=values,
        center_value=center,
        directions=tuple(meta),
        k=int(k),
        sample=sample,
        seed=int(seed),
        loss=LOSS_CONVENTION,
        dtype=str(x_k.dtype).replace("torch.", ""),
        method=method,
        chunk_size=int(calls["chunk_size"]),
        n_evals=int(values.size),
        wall_time=time.perf_counter() - t0,
        settings={
            "kinds": [m["kind"] for m in meta],
            "n": list(ns),
            "span": list(spans),
            "scale": scale,
            "memory_mb": memory_mb,
            "calls": calls["calls"],
            "chunk_cap": calls["chunk_cap"],
            "chunk_trials": calls["trials"],
            "grid_time": grid_time,
            "center_norm": float(x_k.norm()),
            "signal_shape": list(x_k.shape[1:]),
        },
        vectors=vectors,
    )


# -------------------------------------------------------------------------------------------------
# parameter space
# -------------------------------------------------------------------------------------------------
def parameter_directions(
    model: torch.nn.Module,
    kinds: Sequence[str] = ("filter", "filter"),
    *,
    seed: int = 0,
    ignore_bias: bool = True,
) -> tuple[list[dict[str, torch.Tensor]], list[dict[str, Any]]]:
    r"""Directions in parameter space, one dict ``name -> tensor`` per direction.

    ``"filter"`` (Li et al., 2018): :math:`d_{f} \leftarrow d_f\,\|\theta_f\| / \|d_f\|` for every filter
    ``f`` (slice along dim 0) of every weight with ``dim > 1``; 1-D parameters (biases, step sizes) get
    0 when ``ignore_bias`` (else they are scaled to their own norm).  ``"random"``: each tensor scaled
    to the norm of the parameter tensor.  Draws depend on ``(seed, index, parameter name)`` only.
    """
    check(len(kinds) in (1, 2), f"kinds={tuple(kinds)!r}: expected 1 or 2 directions")
    for kd in kinds:
        check(kd in PARAMETER_KINDS, f"parameter direction kind={kd!r}: expected one of {PARAMETER_KINDS}")
    params = {name: p.detach() for name, p in model.named_parameters()}
    out: list[dict[str, torch.Tensor]] = []
    meta: list[dict[str, Any]] = []
    for i, kd in enumerate(kinds):
        d: dict[str, torch.Tensor] = {}
        for name, p in params.items():
            r = _randn(p.shape, derive_seed(seed, "parameter", f"dir={i}", name), p)
            if p.dim() <= 1:
                if ignore_bias and kd == "filter":
                    d[name] = torch.zeros_like(p)
                else:
                    d[name] = r * (p.norm() / r.norm().clamp_min(1e-300))
            elif kd == "filter":
                pn = p.flatten(1).norm(dim=1)
                rn = r.flatten(1).norm(dim=1).clamp_min(1e-300)
                d[name] = r * (pn / rn).view(-1, *([1] * (p.dim() - 1)))
            else:
                d[name] = r * (p.norm() / r.norm().clamp_min(1e-300))
        norm = math.sqrt(sum(float(v.pow(2).sum()) for v in d.values()))
        out.append(d)
        meta.append(
            {
                "kind": kd,
                "index": i,
                "norm": norm,
                "seed": derive_seed(seed, "parameter", f"dir={i}"),
                "ignore_bias": bool(ignore_bias),
            }
        )
    if len(out) == 2 and meta[0]["norm"] > 0 and meta[1]["norm"] > 0:
        dot = sum(float((out[0][k] * out[1][k]).sum()) for k in out[0])
        for m in meta:
            m["cosine_between"] = dot / (meta[0]["norm"] * meta[1]["norm"])
    return out, meta


def parameter_loss_fn(
    model: torch.nn.Module, y: torch.Tensor, x_true: torch.Tensor
) -> Callable[[dict[str, torch.Tensor]], torch.Tensor]:
    """``f(params) -> scalar``: the training loss (mean over the batch of per-sample sums) at ``params``."""
    from torch.func import functional_call

    def f(params: dict[str, torch.Tensor]) -> torch.Tensor:
        out = functional_call(model, params, (y,))
        return (out - x_true).pow(2).flatten(1).sum(dim=1).mean()

    return f


def parameter_slice(
    model: torch.nn.Module,
    y: torch.Tensor,
    x_true: torch.Tensor,
    *,
    kinds: Sequence[str] = ("filter", "filter"),
    n: int | Sequence[int] = 21,
    span: float | Sequence[float] = 1.0,
    seed: int = 0,
    ignore_bias: bool = True,
    method: str = "batched",
    memory_mb: float = 256.0,
    chunk_size: int | None = None,
    tune: bool = True,
    keep_vectors: bool = False,
) -> Slice:
    r"""Slice of the training loss around θ along (filter-normalised) directions, over a batch of samples.

    Batched evaluation stacks ``chunk`` parameter sets and maps ``functional_call`` over them with
    ``torch.func.vmap`` (falling back to one point per call if the model cannot be vmapped).
    """
    t0 = time.perf_counter()
    check(y.shape[0] == x_true.shape[0], "y and x_true must hold the same number of samples")
    with _eval_mode(model):
        dirs, meta = parameter_directions(model, kinds, seed=seed, ignore_bias=ignore_bias)
        base = {name: p.detach() for name, p in model.named_parameters()}
        names = list(base)
        f = parameter_loss_fn(model, y, x_true)
        nd = len(dirs)
        ns = _as_pair(n, nd, "n")
        spans = _as_pair(span, nd, "span")
        coords = [grid_coordinates(int(ni), float(si)) for ni, si in zip(ns, spans, strict=False)]
        stacked = {name: torch.stack([d[name] for d in dirs]) for name in names}  # (nd, *shape)

        def params_at(c: torch.Tensor) -> dict[str, torch.Tensor]:
            c = c.to(dtype=base[names[0]].dtype, device=base[names[0]].device)
            return {name: base[name] + torch.tensordot(c, stacked[name], dims=1) for name in names}

        n_params = sum(p.numel() for p in base.values())
        if chunk_size is None:
            cs = chunk_size_for(model, memory_mb=memory_mb, batch=y.shape[0])
            itemsize = torch.empty(0, dtype=base[names[0]].dtype).element_size()
            cs = int(max(1, min(cs, (memory_mb * 2**20) // max(3 * n_params * itemsize, 1))))
        else:
            cs = int(chunk_size)
        used = method

        def batched(c: torch.Tensor) -> torch.Tensor:
            ps = params_at(c)
            return torch.func.vmap(f)(ps)

        def pointwise(c: torch.Tensor) -> torch.Tensor:
            return torch.stack([f(params_at(c[i])) for i in range(c.shape[0])])

        fn = batched if method == "batched" else pointwise
        tg = time.perf_counter()
        try:
            values, calls = evaluate_grid(
                fn, coords, chunk_size=cs, method=method, tune=tune and chunk_size is None
            )
        except Exception as exc:  # noqa: BLE001 - a model vmap cannot handle: fall back, and say so
            if method != "batched":
                raise
            used = f"pointwise (vmap failed: {type(exc).__name__})"
            values, calls = evaluate_grid(pointwise, coords, chunk_size=cs, method="pointwise")
        grid_time = time.perf_counter() - tg
        with torch.no_grad():
            center = float(f(base))
    vectors = None
    if keep_vectors:
        vectors = np.stack(
            [torch.cat([d[name].reshape(-1) for name in names]).cpu().double().numpy() for d in dirs]
        )
    dtype = base[names[0]].dtype
    return Slice(
        space="parameter",
        coords=tuple(coords),
        values=values,
        center_value=center,
        directions=tuple(meta),
        k=None,
        sample=None,
        seed=int(seed),
        loss=TRAIN_LOSS_CONVENTION,
        dtype=str(dtype).replace("torch.", ""),
        method=used,
        chunk_size=int(calls["chunk_size"]),
        n_evals=int(values.size),
        wall_time=time.perf_counter() - t0,
        settings={
            "kinds": [m["kind"] for m in meta],
            "n": list(ns),
            "span": list(spans),
            "ignore_bias": ignore_bias,
            "memory_mb": memory_mb,
            "calls": calls["calls"],
            "chunk_cap": calls["chunk_cap"],
            "chunk_trials": calls["trials"],
            "grid_time": grid_time,
            "n_samples": int(y.shape[0]),
            "n_params": int(n_params),
            "center_norm": math.sqrt(sum(float(p.pow(2).sum()) for p in base.values())),
        },
        vectors=vectors,
    )
