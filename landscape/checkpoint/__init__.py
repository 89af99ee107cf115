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

The package: :mod:`~landscape.checkpoint.files` (the format tag, a run's files, the path a command reads,
the versions recorded), :mod:`~landscape.checkpoint.validate` (every check of a file before it is used),
:mod:`~landscape.checkpoint.save` (:func:`save_checkpoint` and how the model config is stored) and
:mod:`~landscape.checkpoint.load` (:func:`read_checkpoint`, :func:`load_checkpoint` and the
:class:`LoadedCheckpoint` it returns, with the typed :class:`~landscape.config.TrainConfig`).
"""

from __future__ import annotations

from landscape.checkpoint.files import (
    CHECKPOINT_NAME,
    FORMAT,
    FORMAT_VERSION,
    RUN_FILES,
    resolve_checkpoint_path,
    run_files,
    versions,
)
from landscape.checkpoint.load import LoadedCheckpoint, load_checkpoint, load_one_task, read_checkpoint
from landscape.checkpoint.save import save_checkpoint
from landscape.checkpoint.validate import (
    MAX_CHECKPOINT_BYTES,
    PROVENANCE_NAME,
    check_archive,
    check_consistent,
    check_finite_weights,
    check_provenance,
    check_resume_state,
    check_versions,
)

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "LoadedCheckpoint",
    "load_one_task",
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
    "CHECKPOINT_NAME",
    "RUN_FILES",
    "PROVENANCE_NAME",
]
