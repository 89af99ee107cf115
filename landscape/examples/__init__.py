"""Small trained checkpoints shipped with the package, so notebooks and examples run without training.

``toy_checkpoint("mse")`` and ``toy_checkpoint("sgd-jitter")`` are the run folders of
``landscape demo --seed 0``'s two models (toy denoising task, the ``small`` preset, K = 10), trained by
:mod:`landscape.examples.regenerate` (``make toy-checkpoints``), with the resume state (optimizer, RNG)
left out to keep them small.  They load through :func:`landscape.checkpoint.load_checkpoint` like any run
(every integrity check applies); ``PROVENANCE.json`` beside them records the command, the versions and
the sha256 of each file.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["TOY_STRATEGIES", "toy_checkpoint", "checkpoints_dir"]

#: The strategies of the shipped toy checkpoints (the two models of ``landscape demo``).
TOY_STRATEGIES = ("mse", "sgd-jitter")


def checkpoints_dir() -> Path:
    """The folder holding the shipped run folders (``toy-mse``, ``toy-sgd-jitter``)."""
    from importlib.resources import files

    root = files("landscape.examples") / "checkpoints"
    path = Path(str(root))
    if not path.is_dir():  # a zipped install: resources are not plain files
        raise FileNotFoundError(
            f"landscape's example checkpoints are not on disk ({root}): install landscape "
            "from a wheel or a source folder, not a zip"
        )
    return path


def toy_checkpoint(strategy: str = "mse") -> Path:
    """The run folder of the shipped toy checkpoint trained with ``strategy`` (``'mse'`` or ``'sgd-jitter'``).

    Example:
        >>> from landscape.checkpoint import load_checkpoint
        >>> ck = load_checkpoint(toy_checkpoint("sgd-jitter"))
        >>> ck.task.config()["name"], ck.model.n_iter
        ('denoise', 10)
    """
    if strategy not in TOY_STRATEGIES:
        raise ValueError(
            f"strategy={strategy!r}: the shipped toy checkpoints are {', '.join(TOY_STRATEGIES)}"
        )
    path = checkpoints_dir() / f"toy-{strategy}"
    if not (path / "checkpoint.pt").is_file():
        raise FileNotFoundError(
            f"{path / 'checkpoint.pt'} is missing: regenerate it with `make toy-checkpoints`"
        )
    return path
