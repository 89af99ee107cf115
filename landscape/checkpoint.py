"""Checkpoints: written atomically, loaded with ``torch.load(weights_only=True)``.

A checkpoint is a plain dict of tensors, lists, dicts, strings and numbers (never a pickled object):

``format``/``format_version``, ``state_dict`` (model weights and buffers), ``model_config``,
``physics_config``, ``task_config`` and ``config`` (the full run config, JSON-compatible, with the
seed), ``metrics``, ``seed``, ``versions`` (landscape, torch, numpy, python), and for resuming a run:
``epoch``, ``history`` (the per-epoch log rows), ``optimizer`` (its ``state_dict``) and ``rng``
(the byte states of the run's torch generators).

Writes go to a temporary file in the target directory, are flushed and fsynced, then moved over the
target with :func:`os.replace` (:func:`landscape.io.atomic_write`), so a crash never leaves a
half-written file where a good one was.
"""

from __future__ import annotations

import errno
import json
import os
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from landscape import __version__
from landscape.data import task_from_config
from landscape.errors import check
from landscape.io import atomic_write, check_memory, format_bytes, json_safe, sha256_file
from landscape.models import LEGACY_KEYS, JitterConfig, ModelConfig, RegularizerConfig, build_model
from landscape.physics import physics_from_config
from landscape.strategies import strategy_from_config

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "LoadedCheckpoint",
    "save_checkpoint",
    "load_checkpoint",
    "read_checkpoint",
    "resolve_checkpoint_path",
    "versions",
    "check_versions",
    "check_finite_weights",
    "check_archive",
    "check_provenance",
    "check_consistent",
    "check_resume_state",
    "run_files",
    "MAX_CHECKPOINT_BYTES",
]

FORMAT = "landscape-checkpoint"
FORMAT_VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"
RUN_FILES = (CHECKPOINT_NAME, "metrics.json", "log.csv")
# the largest checkpoint landscape reads (its members' sizes added up); LANDSCAPE_MAX_CHECKPOINT_BYTES lowers it
MAX_CHECKPOINT_BYTES = 16 << 30
# torch writes its members uncompressed: a member expanding more than this is refused as a zip bomb
_MAX_EXPANSION = 20.0
#: beside shipped run folders (landscape/examples/checkpoints): the sha256 of every file of every run
PROVENANCE_NAME = "PROVENANCE.json"


# -------------------------------------------------------------------------------------------------
# save / load
# -------------------------------------------------------------------------------------------------
def versions() -> dict[str, str]:
    import numpy


    return {
        "landscape": str(__version__),
        "torch": str(torch.__version__),  # TorchVersion is a str subclass that weights_only refuses
        "numpy": str(numpy.__version__),
        "python": platform.python_version(),
    }


@dataclass
class LoadedCheckpoint:
    """A checkpoint rebuilt: the model (eval mode), its physics, the task, the run config and metrics.

    ``task.pairs(n, split=..., seed=...)`` regenerates exact test samples; ``config['seed']`` and
    ``config['data_seed']`` are the run's seeds.  ``extra`` holds the resume state (``epoch``,
    ``history``, ``optimizer``, ``rng``) and ``versions``.
    """

    model: Any
    physics: Any
    task: Any
    config: dict[str, Any]
    metrics: dict[str, Any]
    path: Path
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        """A short label: the strategy name."""
        return str(self.config.get("strategy", {}).get("name", self.path.parent.name))


def save_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module,
    task: Any,
    config: dict[str, Any],
    metrics: dict[str, Any] | None = None,
    *,
    epoch: int | None = None,
    history: list[dict[str, Any]] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    rng: dict[str, torch.Tensor] | None = None,
    strategy: Any = None,
    threads: int | None = None,
) -> Path:
    """Write a checkpoint atomically; ``config`` must be JSON-compatible (it is checked).

    ``threads``: torch's CPU thread count the run trained with (a resume reuses it: the reductions, and so
    the last bits of the weights, depend on it).

    ``strategy`` (the run's typed strategy; rebuilt from ``config['strategy']`` when not given) decides whether
    the model's jitter is left out of ``model_config``: it is when the strategy derives exactly that jitter,
    so σ and the noise rule are stored once, in ``config['strategy']``.
    """
    try:
        json.dumps(config, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"checkpoint config is not JSON-compatible: {exc}") from None
    payload: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "model_config": json_safe(_model_config_to_store(model, config, strategy)),
        "physics_config": json_safe(model.physics.config()),
        "task_config": json_safe(task.config()),
        "config": config,
        "metrics": json_safe(metrics or {}),
        "seed": config.get("seed"),
        "versions": versions(),
        "epoch": epoch,
        "history": json_safe(history or []),
        "optimizer": _to_cpu(optimizer.state_dict()) if optimizer is not None else None,
        "rng": {k: v.detach().cpu() for k, v in (rng or {}).items()},
    }
    if threads is not None:
        payload["threads"] = int(threads)
    return atomic_write(path, lambda f: torch.save(payload, f))


def _model_config_to_store(model: torch.nn.Module, config: dict[str, Any], strategy: Any = None) -> dict[str, Any]:
    """The model config as saved: ``model.config()``.  It holds no noise: σ and the noise rule belong to the
    run's strategy and are stored once, in ``config['strategy']`` (``config`` and ``strategy`` are unused)."""
    return dict(model.config())


def _model_config_loaded(payload: dict[str, Any]) -> Any:
    """The :class:`~landscape.models.ModelConfig` of a checkpoint.

    Checkpoints written before the noise moved to the strategy may hold a ``jitter`` entry in their model
    config.  It must agree with the run's strategy: it is accepted when it is the strategy's noise rule
    (``strategy.noise``, after the alias ``relative`` -> ``per-sample-step``) or inactive (σ = 0: a clean
    network, what a default config wrote), and then left out; an active entry the strategy does not train
    with (or with no strategy in the config) is refused in one line."""
    mc = payload["model_config"]
    if isinstance(mc, dict) and "jitter" in mc:
        legacy = JitterConfig(**(mc["jitter"] or {}))
        strat = (payload.get("config") or {}).get("strategy")
        trained = strategy_from_config(strat).noise if isinstance(strat, dict) and strat.get("name") else None
        check(not legacy.active or legacy == trained,
              f"model_config.jitter={legacy.to_dict()} disagrees with the strategy's noise "
              f"{None if trained is None else trained.to_dict()}: the noise belongs to the strategy "
              f"(config.strategy), expected the same rule or sigma 0")
    return ModelConfig.from_dict(mc)


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def run_files(path: str | os.PathLike) -> list[Path]:
    """The files an input checkpoint stands for: itself, and the other files of its run folder
    (``metrics.json``, ``log.csv``) when it is a run's ``checkpoint.pt``.  No command may write them."""
    p = Path(path)
    if p.is_dir():
        p = p / CHECKPOINT_NAME
    files = [p]
    real = Path(os.path.realpath(p))  # a symlink stands for its run too
    for q in {p, real}:
        if q.name == CHECKPOINT_NAME:
            files += [q.parent / n for n in RUN_FILES if n != CHECKPOINT_NAME]
    return files


def resolve_checkpoint_path(path: str | os.PathLike) -> Path:
    """``path`` itself, or ``path/checkpoint.pt`` for a run directory; FileNotFoundError if absent."""
    p = Path(path)
    if p.is_dir():
        if not (p / CHECKPOINT_NAME).exists():
            raise FileNotFoundError(
                errno.ENOENT,
                f"directory {p} holds no {CHECKPOINT_NAME} (expected a checkpoint file or a run directory)",
                str(p / CHECKPOINT_NAME),
            )
        p = p / CHECKPOINT_NAME
    if not p.exists():
        raise FileNotFoundError(errno.ENOENT, "checkpoint not found", str(p))
    if not p.is_file():
        raise ValueError(f"checkpoint {p} is not a regular file")
    return p


def _reason(exc: Exception) -> str:
    """The informative line of a ``torch.load`` error (its weights-only message is long and generic)."""
    text = str(exc)
    m = re.search(r"GLOBAL ([\w.]+)", text)
    if m:
        return (
            f"unsafe content: it holds the Python object {m.group(1)}, which loading with weights_only=True "
            "refuses to import (it could run code)"
        )
    if "WeightsUnpickler error:" in text:
        tail = text.split("WeightsUnpickler error:", 1)[1]
        tail = tail.split("Check the documentation of torch.load", 1)[0]
        lines = [ln.strip() for ln in tail.splitlines() if ln.strip()]
        if lines:
            return "refused by weights_only: " + lines[0].split(". Please use")[0]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[0].split(". ")[0] if lines else type(exc).__name__


def _pickle_globals(p: Path, limit: int = 1 << 26) -> list[str] | None:
    """The globals a pickle stream would import, read with :mod:`pickletools` (nothing is executed).

    ``None`` when the file does not parse as a pickle.
    """
    import pickletools

    names: list[str] = []
    strings: list[str] = []
    try:
        with open(p, "rb") as fh:
            data = fh.read(limit)
        for op, arg, _ in pickletools.genops(data):
            if op.name == "GLOBAL":
                names.append(str(arg).replace(" ", "."))
            elif op.name == "STACK_GLOBAL":
                names.append(".".join(strings[-2:]))
            elif op.name == "INST":
                names.append(str(arg).replace(" ", "."))
            elif isinstance(arg, str):
                strings.append(arg)
    except Exception:  # noqa: BLE001 - not a (complete) pickle
        return names or None
    return names


def _load_payload(p: Path, map_location: str | torch.device) -> Any:
    """``torch.load(weights_only=True)`` of a zip-format checkpoint; a bare pickle is refused unread."""
    import zipfile

    with open(p, "rb") as fh:
        head = fh.read(4)
    if not zipfile.is_zipfile(p):
        if head.startswith(b"PK"):
            raise ValueError(f"checkpoint {p} is corrupt (a truncated or damaged zip archive)")
        names = _pickle_globals(p) if head[:1] == b"\x80" else None
        if names:
            shown = ", ".join(dict.fromkeys(names))
            raise ValueError(
                f"checkpoint {p} refused: unsafe content, a pickle that would import and run {shown[:120]} "
                "when loaded (landscape loads checkpoints with weights_only=True and never unpickles objects)"
            )
        if names is not None:
            raise ValueError(
                f"checkpoint {p} is not a landscape checkpoint (a plain pickle, not a torch zip file)"
            )
        raise ValueError(f"checkpoint {p} is corrupt or not a landscape checkpoint (not a torch zip file)")
    check_archive(p)
    try:
        return torch.load(p, map_location=map_location, weights_only=True)
    except OSError:
        raise
    except Exception as exc:  # truncated, a pickle with objects, ...
        first = _reason(exc)
        if first.startswith("unsafe"):
            raise ValueError(f"checkpoint {p} refused: {first}") from None
        raise ValueError(f"checkpoint {p} is corrupt or not a landscape checkpoint ({first[:200]})") from None


def check_archive(p: str | os.PathLike) -> int:
    """Refuse a zip archive that would inflate beyond the memory limits, or whose members are damaged.

    First only the central directory is read (``zipfile.ZipFile.infolist``): the declared sizes of the
    members are added up and compared with :data:`MAX_CHECKPOINT_BYTES` and the available memory
    (:func:`landscape.io.check_memory`), and a compressed member that would expand more than 20 times
    is refused (torch stores its members uncompressed, so only a crafted file has one).  Then every
    member is read in 1 MiB chunks and checked against the CRC-32 the archive records for it (torch's
    reader does not check it), so a flipped byte anywhere in the data is refused, not loaded.  Returns
    the total size.
    """
    import zipfile
    import zlib

    p = Path(p)
    try:
        with zipfile.ZipFile(p) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise ValueError(f"checkpoint {p} is corrupt (a damaged zip archive: {_first(exc)})") from None
    total = sum(int(i.file_size) for i in infos)
    limit = MAX_CHECKPOINT_BYTES
    env = os.environ.get("LANDSCAPE_MAX_CHECKPOINT_BYTES", "").strip()
    if env:
        try:
            limit = min(limit, int(float(env)))
        except ValueError:
            raise ValueError(f"LANDSCAPE_MAX_CHECKPOINT_BYTES={env!r}: expected a number of bytes") from None
    for i in infos:
        if i.compress_type != zipfile.ZIP_STORED and i.file_size > _MAX_EXPANSION * max(i.compress_size, 1) + (1 << 20):
            raise ValueError(
                f"checkpoint {p} refused: member {i.filename!r} would inflate from "
                f"{format_bytes(i.compress_size)} to {format_bytes(i.file_size)} (a zip bomb; "
                "landscape checkpoints are stored uncompressed)"
            )
    if total > limit:
        raise ValueError(
            f"checkpoint {p} refused: its members add up to {format_bytes(total)}, more than the "
            f"{format_bytes(limit)} a landscape checkpoint may hold"
        )
    check_memory(total, f"checkpoint {p} ({len(infos)} members)")
    with zipfile.ZipFile(p) as zf:  # every member against its CRC-32 (zipfile checks it at each member's end)
        for i in infos:
            try:
                with zf.open(i) as fh:
                    while fh.read(1 << 20):
                        pass
            except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, NotImplementedError) as exc:
                raise ValueError(
                    f"checkpoint {p} is corrupt: member {i.filename!r} fails its check ({_first(exc)}; "
                    "the file was damaged after it was written)"
                ) from None
    return total


def check_provenance(path: str | os.PathLike) -> None:
    """Refuse a shipped checkpoint whose files differ from the sha256 its ``PROVENANCE.json`` records.

    A run folder ``DIR/RUN`` is checked when ``DIR/PROVENANCE.json`` (the layout of the toy checkpoints in
    ``landscape/examples/checkpoints``, and of any copy of that folder) lists ``RUN`` with the file being
    loaded: every file it lists for ``RUN`` must exist and have that sha256.  Symlinks are followed to the
    real file first.  Nothing is checked for any other checkpoint.
    """
    real = Path(os.path.realpath(path))
    prov = real.parent.parent / PROVENANCE_NAME
    if not prov.is_file():
        return
    try:
        record = json.loads(prov.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{prov} cannot be read ({_first(exc)}): it should hold the sha256 of the shipped "
                         f"checkpoint {real}") from None
    runs = record.get("runs") if isinstance(record, dict) else None
    run = runs.get(real.parent.name) if isinstance(runs, dict) else None
    files = run.get("files") if isinstance(run, dict) else None
    if not isinstance(files, dict) or real.name not in files:
        return
    for name, want in files.items():
        f = real.parent / str(name)
        if not f.is_file():
            raise ValueError(f"shipped file {f} is missing ({prov} lists it): reinstall landscape or run "
                             "`make toy-checkpoints`")
        have = sha256_file(f)
        if have != want:
            raise ValueError(f"shipped file {f} has sha256 {have[:16]}..., not the {str(want)[:16]}... {prov} "
                             "records (changed or damaged): reinstall landscape or run `make toy-checkpoints`")


def _first(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0][:160] if lines else type(exc).__name__


def _version_tuple(v: object) -> tuple[int, ...]:
    parts = []
    for piece in str(v).split("+")[0].split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def _compatible_release(v: tuple[int, ...]) -> tuple[int, ...]:
    """The part of a version that must match: the major version, or major.minor while it is 0.x."""
    return v[:2] if v[:1] == (0,) else v[:1]


def _written_by(payload: dict[str, Any]) -> str:
    vers = payload.get("versions")
    if isinstance(vers, dict) and vers.get("landscape"):
        return f"landscape {vers['landscape']}"
    return "an unknown landscape version"


def check_versions(payload: dict[str, Any], where: str = "checkpoint") -> None:
    """``ValueError`` saying what differs when ``payload`` was written by an incompatible landscape release.

    Releases are compatible when they share their major version (major.minor while the major is 0).
    """
    vers = payload.get("versions")
    theirs = vers.get("landscape") if isinstance(vers, dict) else None
    if theirs is None:
        return
    a, b = _version_tuple(theirs), _version_tuple(__version__)
    if a and b and _compatible_release(a) != _compatible_release(b):
        raise ValueError(
            f"{where} was written by landscape {theirs}, this is landscape {__version__}: "
            f"the release {'.'.join(map(str, _compatible_release(a)))} differs from "
            f"{'.'.join(map(str, _compatible_release(b)))} (install landscape {theirs} to read it)"
        )


def check_finite_weights(state_dict: dict[str, Any], where: str = "checkpoint") -> None:
    """``ValueError`` naming the first tensor with NaN or Inf entries (a diverged run or a damaged file)."""
    for name, t in state_dict.items():
        if isinstance(t, torch.Tensor) and (t.is_floating_point() or t.is_complex()):
            bad = int((~torch.isfinite(t)).sum())
            if bad:
                raise ValueError(
                    f"{where} has non-finite weights: {bad} NaN/Inf value(s) in {name!r} "
                    "(the run diverged or the file is damaged)"
                )


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The raw checkpoint dict, validated (``torch.load(weights_only=True)``).

    Refuses (``ValueError``) anything that is not a plain landscape checkpoint: a pickle holding objects
    (it is never unpickled, so it cannot run code), a truncated, damaged (a member failing its CRC-32) or
    foreign file, a shipped checkpoint that differs from its ``PROVENANCE.json`` (:func:`check_provenance`),
    another ``format_version``, a file written by an incompatible landscape release, or NaN/Inf weights.
    """
    p = resolve_checkpoint_path(path)
    check_provenance(p)
    payload = _load_payload(p, map_location)
    check(
        isinstance(payload, dict) and payload.get("format") == FORMAT,
        f"checkpoint {p} is not a landscape checkpoint (no format={FORMAT!r} field)",
    )
    fv = payload.get("format_version")
    check(
        fv == FORMAT_VERSION,
        f"checkpoint {p} has format_version={fv!r} (written by {_written_by(payload)}): "
        f"this landscape reads version {FORMAT_VERSION}",
    )
    check_versions(payload, f"checkpoint {p}")
    missing = [k for k in ("state_dict", "model_config", "task_config", "config") if k not in payload]
    check(not missing, f"checkpoint {p} lacks {missing}")
    check(isinstance(payload["state_dict"], dict), f"checkpoint {p}: state_dict is not a dict of tensors")
    check_finite_weights(payload["state_dict"], f"checkpoint {p}")
    return payload


def _diff_keys(a: Any, b: Any, prefix: str) -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b), key=str):
            out += _diff_keys(a.get(k), b.get(k), f"{prefix}.{k}")
        return out
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        a, b = list(a), list(b)
    return [] if a == b else [prefix]


def check_consistent(payload: dict[str, Any], where: str = "checkpoint") -> None:
    """``ValueError`` when the parts of a checkpoint disagree with each other or with its weights.

    The model config is recorded twice (``model_config`` and the run config's ``model``), the task
    twice (``task_config`` and ``config.task``/``config.task_config``); an edit to one of them (say
    ``model_config.n_iter``, which a shared regularizer's weights cannot reveal) is refused naming the
    field.  The number of step sizes and regularizers in the weights must match ``n_iter``/``shared``.
    """
    mc, cfg = payload.get("model_config"), payload.get("config")
    check(isinstance(mc, dict), f"{where}: model_config is not a dict")
    check(isinstance(cfg, dict), f"{where}: config is not a dict")
    if isinstance(cfg.get("model"), dict):
        diff = _diff_keys(json_safe(mc), json_safe(cfg["model"]), "model")
        if diff:
            k = diff[0].split(".", 1)[1]
            raise ValueError(
                f"{where} is inconsistent: model_config.{k}={_get(mc, k)!r} but config.model.{k}="
                f"{_get(cfg['model'], k)!r} (the file was edited or damaged)"
            )
    tc = payload.get("task_config")
    if isinstance(tc, dict):
        if "task" in cfg and tc.get("name") != cfg.get("task"):
            raise ValueError(
                f"{where} is inconsistent: task_config.name={tc.get('name')!r} but config.task={cfg.get('task')!r}"
            )
        if isinstance(cfg.get("task_config"), dict):
            diff = _diff_keys(json_safe(tc), json_safe(cfg["task_config"]), "task")
            if diff:
                k = diff[0].split(".", 1)[1]
                raise ValueError(
                    f"{where} is inconsistent: task_config.{k}={_get(tc, k)!r} but config.task_config.{k}="
                    f"{_get(cfg['task_config'], k)!r} (the file was edited or damaged)"
                )
    sd = payload.get("state_dict") or {}
    n_iter, shared = mc.get("n_iter"), mc.get("shared", True)
    if isinstance(n_iter, int) and isinstance(sd.get("step_rho"), torch.Tensor):
        n_reg = 1 if shared else n_iter
        got = int(sd["step_rho"].numel())
        check(
            got == n_reg,
            f"{where} is inconsistent: model_config.n_iter={n_iter} (shared={shared}) needs {n_reg} step "
            f"size(s), the weights hold {got}",
        )
    regs = {k.split(".")[1] for k in sd if k.startswith("regularizers.")}
    if isinstance(n_iter, int) and regs:
        n_reg = 1 if shared else n_iter
        check(
            len(regs) == n_reg,
            f"{where} is inconsistent: model_config.n_iter={n_iter} (shared={shared}) needs {n_reg} "
            f"regularizer(s), the weights hold {len(regs)}",
        )


def _get(d: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return d


def _finite_number(v: Any) -> bool:
    import math

    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_resume_state(
    payload: dict[str, Any],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    generators: dict[str, torch.Generator],
    *,
    columns: tuple[str, ...] = (),
    where: str = "checkpoint",
) -> None:
    """``ValueError`` naming the field when the resume state of a checkpoint is damaged.

    Checked against the model being resumed and against each other: ``epoch`` (an integer >= 0, the
    last history row's), ``history`` (one row per epoch 0..epoch, with the log columns, finite numbers,
    non-decreasing ``steps``), ``optimizer`` (Adam's state: one entry per parameter, moments of the
    parameter's shape, finite, second moments >= 0) and ``rng`` (one byte tensor per generator, of the
    length that generator's state has).
    """
    epoch = payload.get("epoch")
    check(
        isinstance(epoch, int) and not isinstance(epoch, bool) and epoch >= 0,
        f"{where}: resume state epoch={epoch!r}: expected an integer >= 0",
    )
    hist = payload.get("history")
    check(isinstance(hist, list) and len(hist) == epoch + 1,
          f"{where}: resume state history has {len(hist) if isinstance(hist, list) else hist!r} rows: "
          f"expected {epoch + 1} (epochs 0..{epoch})")
    last_steps = 0
    for i, row in enumerate(hist):
        check(isinstance(row, dict), f"{where}: history row {i} is not a dict")
        missing = [c for c in columns if c not in row]
        check(not missing, f"{where}: history row {i} lacks {missing}")
        check(row.get("epoch") == i, f"{where}: history row {i} has epoch={row.get('epoch')!r}: expected {i}")
        for k, v in row.items():
            if k == "train_loss" and i == 0 and v is None:
                continue
            check(_finite_number(v), f"{where}: history row {i} has {k}={v!r}: expected a finite number")
        check(row.get("steps", 0) >= last_steps, f"{where}: history row {i} has fewer steps than row {i - 1}")
        last_steps = row.get("steps", 0)
    params = list(model.parameters())
    opt = payload.get("optimizer")
    if opt is not None:
        check(isinstance(opt, dict) and isinstance(opt.get("state"), dict) and isinstance(opt.get("param_groups"), list),
              f"{where}: resume state optimizer is not an optimizer state_dict")
        ids = [i for g in opt["param_groups"] if isinstance(g, dict) for i in (g.get("params") or [])]
        check(len(ids) == len(params),
              f"{where}: resume state optimizer has {len(ids)} parameters: the model has {len(params)}")
        for idx, param in zip(ids, params):
            st = opt["state"].get(idx)
            if st is None:
                continue
            check(isinstance(st, dict), f"{where}: optimizer state of parameter {idx} is not a dict")
            for key, t in st.items():
                check(isinstance(t, torch.Tensor), f"{where}: optimizer state {idx}.{key} is not a tensor")
                if key == "step":
                    check(t.numel() == 1 and bool(torch.isfinite(t).all()) and float(t) >= 0,
                          f"{where}: optimizer state {idx}.step={t.tolist()!r}: expected a number >= 0")
                    continue
                check(tuple(t.shape) == tuple(param.shape),
                      f"{where}: optimizer state {idx}.{key} has shape {tuple(t.shape)}: the parameter has "
                      f"{tuple(param.shape)}")
                check(bool(torch.isfinite(t).all()), f"{where}: optimizer state {idx}.{key} holds NaN/Inf")
                if key == "exp_avg_sq":
                    check(bool((t >= 0).all()), f"{where}: optimizer state {idx}.exp_avg_sq has negative entries")
    rng = payload.get("rng")
    check(isinstance(rng, dict), f"{where}: resume state rng is not a dict of generator states")
    missing = sorted(set(generators) - set(rng))
    check(not missing, f"{where}: resume state rng lacks the generator state(s) {missing}")
    for k, g in generators.items():
        t, want = rng[k], g.get_state()
        check(
            isinstance(t, torch.Tensor) and t.dtype == torch.uint8 and t.dim() == 1 and t.numel() == want.numel(),
            f"{where}: resume state rng[{k!r}] is "
            + (f"a {t.dtype} tensor of shape {tuple(t.shape)}" if isinstance(t, torch.Tensor) else type(t).__name__)
            + f": expected {want.numel()} bytes (torch.uint8)",
        )


def _unknown_config_keys(payload: dict[str, Any]) -> list[str]:
    """Keys of the saved model config that this version's config dataclasses do not have."""
    from dataclasses import fields as dc_fields


    mc = payload.get("model_config")
    if not isinstance(mc, dict):
        return []
    unknown = [f"model.{k}" for k in sorted(set(mc) - {f.name for f in dc_fields(ModelConfig)} - set(LEGACY_KEYS))]
    for key, cls in (("regularizer", RegularizerConfig), ("jitter", JitterConfig)):
        sub = mc.get(key)
        if isinstance(sub, dict):
            unknown += [f"model.{key}.{k}" for k in sorted(set(sub) - {f.name for f in dc_fields(cls)})]
    return unknown


def _state_dict_diff(model: torch.nn.Module, saved: dict[str, Any]) -> str:
    mine = model.state_dict()
    missing = sorted(set(mine) - set(saved))
    extra = sorted(set(saved) - set(mine))
    parts = []
    if missing:
        parts.append(f"missing weights {missing[:3]}" + (" ..." if len(missing) > 3 else ""))
    if extra:
        parts.append(f"unexpected weights {extra[:3]}" + (" ..." if len(extra) > 3 else ""))
    for k in sorted(set(mine) & set(saved)):
        if isinstance(saved[k], torch.Tensor) and tuple(saved[k].shape) != tuple(mine[k].shape):
            theirs, ours = tuple(saved[k].shape), tuple(mine[k].shape)
            parts.append(f"{k!r} has shape {theirs}, this model expects {ours}")
            break
    return "; ".join(parts)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Rebuild model (eval mode), physics, task and config from a checkpoint file or run directory.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a corrupt or incompatible one.
    """
    p = resolve_checkpoint_path(path)
    payload = read_checkpoint(p, map_location=map_location)
    unknown = _unknown_config_keys(payload)
    if unknown:
        raise ValueError(
            f"checkpoint {p} (written by {_written_by(payload)}) has config keys this version of landscape "
            f"does not know: {', '.join(unknown)}"
        )
    try:
        task = task_from_config(payload["task_config"])
        physics = physics_from_config(payload.get("physics_config") or task.physics.config())
        model_cfg = _model_config_loaded(payload)
        model = build_model(model_cfg, physics)
        dtype = getattr(torch, str(payload["config"].get("dtype", "float32")))
        model = model.to(dtype=dtype)
    except (KeyError, TypeError, RuntimeError, ValueError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(
            f"checkpoint {p} (written by {_written_by(payload)}) does not match this version of landscape: "
            f"{first[:200]}"
        ) from None
    diff = _state_dict_diff(model, payload["state_dict"])
    if diff:
        raise ValueError(
            f"checkpoint {p} (written by {_written_by(payload)}) does not match this version of landscape's "
            f"{model_cfg.arch} model: {diff}"
        )
    check_consistent(payload, f"checkpoint {p}")
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except (RuntimeError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"checkpoint {p} does not match this version of landscape: {first[:200]}") from None
    model = model.to(map_location)
    model.eval()
    extra = {k: payload.get(k) for k in ("epoch", "history", "optimizer", "rng", "versions", "seed", "threads")}
    return LoadedCheckpoint(
        model=model,
        physics=model.physics,
        task=task,
        config=payload["config"],
        metrics=payload.get("metrics") or {},
        path=p,
        extra=extra,
    )
