"""Every check a checkpoint passes before it is used: the archive (sizes, zip bombs, CRC-32 of each
member: :func:`check_archive`), the pickle it would refuse (:func:`_pickle_globals`), the shipped files'
sha256 (:func:`check_provenance`), the release that wrote it (:func:`check_versions`), finite weights
(:func:`check_finite_weights`), its parts agreeing with each other (:func:`check_consistent`), the resume
state (:func:`check_resume_state`), and the model-config keys and weights this version knows."""

from __future__ import annotations

import json
import math
import os
import pickletools
import zipfile
import zlib
from dataclasses import fields as dc_fields
from pathlib import Path
from typing import Any

import torch

from landscape import __version__
from landscape.errors import check
from landscape.io import check_memory, format_bytes, json_safe, sha256_file
from landscape.models import LEGACY_KEYS, JitterConfig, ModelConfig, RegularizerConfig

__all__ = [
    "MAX_CHECKPOINT_BYTES",
    "PROVENANCE_NAME",
    "check_archive",
    "check_provenance",
    "check_versions",
    "check_finite_weights",
    "check_consistent",
    "check_resume_state",
]

# the largest checkpoint landscape reads (its members' sizes added up); LANDSCAPE_MAX_CHECKPOINT_BYTES lowers it
MAX_CHECKPOINT_BYTES = 16 << 30
# torch writes its members uncompressed: a member expanding more than this is refused as a zip bomb
_MAX_EXPANSION = 20.0
#: beside shipped run folders (landscape/examples/checkpoints): the sha256 of every file of every run
PROVENANCE_NAME = "PROVENANCE.json"


def _pickle_globals(p: Path, limit: int = 1 << 26) -> list[str] | None:
    """The globals a pickle stream would import, read with :mod:`pickletools` (nothing is executed).

    ``None`` when the file does not parse as a pickle.
    """
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
        if i.compress_type != zipfile.ZIP_STORED and i.file_size > _MAX_EXPANSION * max(
            i.compress_size, 1
        ) + (1 << 20):
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
        raise ValueError(
            f"{prov} cannot be read ({_first(exc)}): it should hold the sha256 of the shipped "
            f"checkpoint {real}"
        ) from None
    runs = record.get("runs") if isinstance(record, dict) else None
    run = runs.get(real.parent.name) if isinstance(runs, dict) else None
    files = run.get("files") if isinstance(run, dict) else None
    if not isinstance(files, dict) or real.name not in files:
        return
    for name, want in files.items():
        f = real.parent / str(name)
        if not f.is_file():
            raise ValueError(
                f"shipped file {f} is missing ({prov} lists it): reinstall landscape or run "
                "`make toy-checkpoints`"
            )
        have = sha256_file(f)
        if have != want:
            raise ValueError(
                f"shipped file {f} has sha256 {have[:16]}..., not the {str(want)[:16]}... {prov} "
                "records (changed or damaged): reinstall landscape or run `make toy-checkpoints`"
            )


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
    _check_history(payload.get("history"), epoch, columns, where)
    _check_optimizer_state(payload.get("optimizer"), list(model.parameters()), where)
    _check_rng(payload.get("rng"), generators, where)


def _check_history(hist: Any, epoch: int, columns: tuple[str, ...], where: str) -> None:
    """One row per epoch 0..epoch, with the log columns, finite numbers and non-decreasing ``steps``."""
    check(
        isinstance(hist, list) and len(hist) == epoch + 1,
        f"{where}: resume state history has {len(hist) if isinstance(hist, list) else hist!r} rows: "
        f"expected {epoch + 1} (epochs 0..{epoch})",
    )
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


def _check_optimizer_state(opt: Any, params: list[torch.nn.Parameter], where: str) -> None:
    """Adam's state (when saved): one entry per parameter, moments of its shape, finite, second moments >= 0."""
    if opt is None:
        return
    check(
        isinstance(opt, dict)
        and isinstance(opt.get("state"), dict)
        and isinstance(opt.get("param_groups"), list),
        f"{where}: resume state optimizer is not an optimizer state_dict",
    )
    ids = [i for g in opt["param_groups"] if isinstance(g, dict) for i in (g.get("params") or [])]
    check(
        len(ids) == len(params),
        f"{where}: resume state optimizer has {len(ids)} parameters: the model has {len(params)}",
    )
    for idx, param in zip(ids, params):
        st = opt["state"].get(idx)
        if st is None:
            continue
        check(isinstance(st, dict), f"{where}: optimizer state of parameter {idx} is not a dict")
        for key, t in st.items():
            _check_moment(t, key, idx, param, where)


def _check_moment(t: Any, key: str, idx: Any, param: torch.nn.Parameter, where: str) -> None:
    check(isinstance(t, torch.Tensor), f"{where}: optimizer state {idx}.{key} is not a tensor")
    if key == "step":
        check(
            t.numel() == 1 and bool(torch.isfinite(t).all()) and float(t) >= 0,
            f"{where}: optimizer state {idx}.step={t.tolist()!r}: expected a number >= 0",
        )
        return
    check(
        tuple(t.shape) == tuple(param.shape),
        f"{where}: optimizer state {idx}.{key} has shape {tuple(t.shape)}: the parameter has "
        f"{tuple(param.shape)}",
    )
    check(bool(torch.isfinite(t).all()), f"{where}: optimizer state {idx}.{key} holds NaN/Inf")
    if key == "exp_avg_sq":
        check(bool((t >= 0).all()), f"{where}: optimizer state {idx}.exp_avg_sq has negative entries")


def _check_rng(rng: Any, generators: dict[str, torch.Generator], where: str) -> None:
    """One byte tensor per generator, of the length that generator's state has."""
    check(isinstance(rng, dict), f"{where}: resume state rng is not a dict of generator states")
    missing = sorted(set(generators) - set(rng))
    check(not missing, f"{where}: resume state rng lacks the generator state(s) {missing}")
    for k, g in generators.items():
        t, want = rng[k], g.get_state()
        check(
            isinstance(t, torch.Tensor)
            and t.dtype == torch.uint8
            and t.dim() == 1
            and t.numel() == want.numel(),
            f"{where}: resume state rng[{k!r}] is "
            + (
                f"a {t.dtype} tensor of shape {tuple(t.shape)}"
                if isinstance(t, torch.Tensor)
                else type(t).__name__
            )
            + f": expected {want.numel()} bytes (torch.uint8)",
        )


def _unknown_config_keys(payload: dict[str, Any]) -> list[str]:
    """Keys of the saved model config that this version's config dataclasses do not have."""
    mc = payload.get("model_config")
    if not isinstance(mc, dict):
        return []
    unknown = [
        f"model.{k}" for k in sorted(set(mc) - {f.name for f in dc_fields(ModelConfig)} - set(LEGACY_KEYS))
    ]
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
